"""Forecast accuracy metrics and scorers for model selection with scikit-learn.

MAE and RMSE come from :mod:`sklearn.metrics`. This module adds the mean
absolute scaled error (MASE, Hyndman & Koehler 2006), which sklearn lacks, and
three scorers that evaluate an :class:`~tsrnn.RNNForecaster` (or a Pipeline
ending in one) by an honest rolling-origin backtest, for ``scoring=`` in
:class:`~sklearn.model_selection.GridSearchCV` and friends.

Scorers follow sklearn's "greater is better" convention, so they return the
*negated* error, like sklearn's ``neg_mean_absolute_error``.
"""

import warnings

import numpy as np
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import mean_absolute_error

__all__ = [
    "mean_absolute_scaled_error",
    "mae_scorer",
    "rmse_scorer",
    "mase_scorer",
]


# A seasonal-naive error this small next to the data's magnitude is rounding,
# not forecast error: a series that repeats exactly with its season (or a
# constant one) leaves ~1e-14 of its magnitude. MASE is undefined there.
_NEGLIGIBLE_SCALE = 1e-10


def _seasonal_naive_mae(series, season):
    """Per-column in-sample MAE of the forecast ``y[t - season]``.

    ``series`` is a sequence of 2-D arrays (n_rows, n_outputs), one per
    independent series: differences never cross from one series to the next.
    NaN values are skipped. A column with no pair of observed values, or whose
    MAE is negligible next to its largest absolute value (see
    ``_NEGLIGIBLE_SCALE``), gets NaN: MASE is undefined for it.
    """
    sums, counts, magnitude = _seasonal_naive_sums(series, season)
    return _seasonal_naive_scale(sums, counts, magnitude)


def _seasonal_naive_sums(series, season):
    """(sum of absolute errors, their count, largest |value|) per column.

    The parts of :func:`_seasonal_naive_mae` that add up over groups of
    series (a dask fleet's partitions): sums and counts add, magnitudes
    take the maximum.
    """
    n_cols = series[0].shape[1] if len(series) else 1
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf: a NaN error
        errors = [np.abs(y[season:] - y[:-season]) for y in series if len(y) > season]
    if not errors:
        return np.zeros(n_cols), np.zeros(n_cols, np.int64), np.full(n_cols, np.nan)
    errors = np.concatenate(errors)
    counts = np.sum(~np.isnan(errors), axis=0)
    sums = np.nansum(errors, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        magnitude = np.nanmax(np.abs(np.concatenate(series)), axis=0)
    return sums, counts, magnitude


def _seasonal_naive_scale(sums, counts, magnitude):
    """The MASE denominators from :func:`_seasonal_naive_sums`' parts."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mae = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return np.where(mae > _NEGLIGIBLE_SCALE * magnitude, mae, np.nan)


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
        NaN, with an ``UndefinedMetricWarning``, for an output whose training
        series is too short for one seasonal difference, or whose seasonal
        naive forecast has no error on it (a constant series, or one that
        repeats exactly with its season): MASE has no scale there.

    Examples
    --------
    >>> from tsrnn.metrics import mean_absolute_scaled_error
    >>> y_train = [1.0, 2.0, 3.0, 2.0, 1.0]    # one-step naive MAE: 1.0
    >>> mean_absolute_scaled_error([2.0, 3.0], [2.5, 2.5], y_train=y_train)
    0.5
    """
    y_true = np.asarray(y_true, dtype=float)
    y_train = np.asarray(y_train, dtype=float)
    if y_train.ndim == 1:
        y_train = y_train[:, None]
    mae = mean_absolute_error(y_true, y_pred, multioutput="raw_values")
    scale = _seasonal_naive_mae([y_train], int(season))
    if np.isnan(scale).any():
        warnings.warn(
            "MASE is undefined: the seasonal naive forecast has no error on the "
            "training series (too short, constant, or exactly seasonal), so there "
            "is no scale to divide by; returning NaN.",
            UndefinedMetricWarning,
            stacklevel=2,
        )
    scores = mae / scale
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
        if metric == "MASE":
            return forecaster.score(X)  # warns when MASE is undefined
        return -float(forecaster.backtest(X).metrics.loc["model", metric])

    scorer.__name__ = f"neg_{metric.lower()}_scorer"
    scorer.__qualname__ = scorer.__name__
    scorer.__doc__ = (
        f"Negated {metric} of a rolling-origin backtest on X (greater is better).\n\n"
        "Call as ``scorer(estimator, X, y=None)``: ``estimator`` is a fitted\n"
        "RNNForecaster or a Pipeline ending in one, and ``y`` is ignored. See\n"
        "``RNNForecaster.backtest`` for the forecast origins and the context used.\n\n"
        "Examples\n"
        "--------\n"
        ">>> from sklearn.model_selection import GridSearchCV, TimeSeriesSplit\n"
        ">>> from tsrnn import RNNForecaster\n"
        f">>> from tsrnn.metrics import {scorer.__name__.removeprefix('neg_')}\n"
        ">>> search = GridSearchCV(RNNForecaster(target=\"temp_air\"),\n"
        "...                       {\"window\": [24, 48]}, cv=TimeSeriesSplit(3),\n"
        f"...                       scoring={scorer.__name__.removeprefix('neg_')})\n"
    )
    return scorer


mae_scorer = _make_scorer("MAE")
rmse_scorer = _make_scorer("RMSE")
mase_scorer = _make_scorer("MASE")
