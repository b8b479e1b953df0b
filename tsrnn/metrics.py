"""Forecast accuracy metrics and scorers for model selection with scikit-learn.

MAE and RMSE come from :mod:`sklearn.metrics`. This module adds the mean
absolute scaled error (MASE, Hyndman & Koehler 2006), which sklearn lacks, and
three scorers that evaluate an :class:`~tsrnn.RNNForecaster` (or a Pipeline
ending in one) by an honest rolling-origin backtest, for ``scoring=`` in
:class:`~sklearn.model_selection.GridSearchCV` and friends.

Scorers follow sklearn's "greater is better" convention, so they return the
*negated* error, like sklearn's ``neg_mean_absolute_error``.
"""

import numpy as np
from sklearn.metrics import mean_absolute_error

__all__ = [
    "mean_absolute_scaled_error",
    "mae_scorer",
    "rmse_scorer",
    "mase_scorer",
]


def _seasonal_naive_mae(series, season):
    """Per-column in-sample MAE of the forecast ``y[t - season]``.

    ``series`` is a sequence of 2-D arrays (n_rows, n_outputs), one per
    independent series: differences never cross from one series to the next.
    NaN values are skipped. A column with no pair of observed values gets NaN.
    """
    errors = [np.abs(y[season:] - y[:-season]) for y in series if len(y) > season]
    if not errors:
        return np.full(series[0].shape[1] if len(series) else 1, np.nan)
    errors = np.concatenate(errors)
    counts = np.sum(~np.isnan(errors), axis=0)
    sums = np.nansum(errors, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def mean_absolute_scaled_error(
    y_true, y_pred, *, y_train, season=1, multioutput="uniform_average"
):
    """Mean absolute scaled error.

    The MAE of the forecasts divided by the in-sample MAE of the seasonal
    naive forecast (``y[t - season]``) on the training data. Values below 1
    mean the forecasts beat that naive forecast's one-step in-sample error.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,) or (n_samples, n_outputs)
        Observed values.

    y_pred : array-like of the same shape as y_true
        Forecasts.

    y_train : array-like of shape (n_train,) or (n_train, n_outputs)
        Training series, in time order, that defines the scale.

    season : int, default=1
        Season length in steps; 1 gives the non-seasonal MASE.

    multioutput : {"uniform_average", "raw_values"}, default="uniform_average"
        Average the per-output errors, or return them.

    Returns
    -------
    mase : float or ndarray of shape (n_outputs,)
        NaN or inf when the training series is too short or constant.
    """
    y_true = np.asarray(y_true, dtype=float)
    y_train = np.asarray(y_train, dtype=float)
    if y_train.ndim == 1:
        y_train = y_train[:, None]
    mae = mean_absolute_error(y_true, y_pred, multioutput="raw_values")
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = mae / _seasonal_naive_mae([y_train], int(season))
    if multioutput == "raw_values":
        return scores
    if multioutput != "uniform_average":
        raise ValueError(
            f"multioutput must be 'uniform_average' or 'raw_values', got {multioutput!r}."
        )
    return float(np.mean(scores))


def _final_forecaster(estimator, X):
    """(forecaster, X) with X passed through the transformers of any Pipeline."""
    from sklearn.pipeline import Pipeline

    while isinstance(estimator, Pipeline):
        if len(estimator.steps) > 1:
            X = estimator[:-1].transform(X)
        estimator = estimator[-1]
    if not hasattr(estimator, "backtest"):
        raise TypeError(
            "tsrnn's forecast scorers need an RNNForecaster, or a Pipeline ending in "
            f"one; got {type(estimator).__name__}."
        )
    return estimator, X


def _make_scorer(metric):
    def scorer(estimator, X, y=None):
        forecaster, X = _final_forecaster(estimator, X)
        return -float(forecaster.backtest(X).metrics.loc["model", metric])

    scorer.__name__ = f"neg_{metric.lower()}_scorer"
    scorer.__qualname__ = scorer.__name__
    scorer.__doc__ = (
        f"Negated {metric} of a rolling-origin backtest on X (greater is better).\n\n"
        "Call as ``scorer(estimator, X, y=None)``: ``estimator`` is a fitted\n"
        "RNNForecaster or a Pipeline ending in one, and ``y`` is ignored. See\n"
        "``RNNForecaster.backtest`` for the forecast origins and the context used."
    )
    return scorer


mae_scorer = _make_scorer("MAE")
rmse_scorer = _make_scorer("RMSE")
mase_scorer = _make_scorer("MASE")
