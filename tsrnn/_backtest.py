"""Rolling-origin evaluation: baselines, metrics and the Backtest result.

Design
------
A backtest forecasts from many origins at once (``RNNForecaster.backtest``);
this module scores those forecasts. Every model is compared with the two
forecasts any model must beat, computed at the same origins from the data up
to each origin: persistence (the last observed value) and seasonal naive (the
value one season before each forecast step, repeating the last observed
season). MAE and RMSE come from :mod:`sklearn.metrics`; MASE divides the MAE
by the in-sample seasonal-naive MAE of the training data (``tsrnn.metrics``).
"""

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import mean_absolute_error, root_mean_squared_error


@dataclass
class Backtest:
    """Result of :meth:`RNNForecaster.backtest`.

    Attributes
    ----------
    forecasts : DataFrame
        One row per (origin, forecast timestamp, target), in that order, with
        columns ``origin`` (last observation used), ``timestamp``, ``step``
        (1 .. horizon), ``target``, ``forecast`` (point forecast), one
        ``forecast_q{q:g}`` column per quantile when the model has quantiles,
        ``persistence``, ``seasonal_naive`` and ``actual`` (NaN where not
        observed). Multi-series backtests start with the series-id column.
    metrics : DataFrame
        Index ``["model", "persistence", "seasonal_naive"]``, columns
        ``["MAE", "RMSE", "MASE"]``, over the rows where the actual and both
        baseline forecasts exist. With several targets, each metric is the mean
        of the per-target metrics. MASE is NaN where it is undefined (see
        ``RNNForecaster.mase_scale_``).
    metrics_by_target : DataFrame
        The same metrics for each target: index (target, model).
    season : int
        Season length (steps) of the seasonal naive forecast and of MASE.
    """

    forecasts: pd.DataFrame
    metrics: pd.DataFrame
    metrics_by_target: pd.DataFrame
    season: int


def baselines(Rff, origins, first_row, horizon, season):
    """Persistence and seasonal-naive forecasts, each (n_origins, horizon, n_t).

    ``Rff`` holds the raw targets carried forward over gaps (so both
    baselines use only data up to the origin); ``first_row`` is the first
    row of each origin's series: before it the seasonal naive forecast does
    not exist (NaN), and the index must not reach into the previous series.
    """
    steps = np.arange(1, horizon + 1)
    persistence = np.broadcast_to(Rff[origins][:, None, :], (len(origins), horizon, Rff.shape[1]))
    lag = steps - season * np.ceil(steps / season).astype(int)  # <= 0: same phase, last season
    lagged = origins[:, None] + lag
    seasonal = np.where(
        (lagged >= first_row[:, None])[..., None], Rff[np.maximum(lagged, 0)], np.nan
    )
    return persistence, seasonal


def score(targets, point, persistence, seasonal, actual, mase_scale):
    """(metrics by target, metrics) of the model and both baselines.

    Scored over the (origin, step) pairs where the actual and both baselines
    exist, so the three rows of the table are comparable.
    """
    models = {"model": point, "persistence": persistence, "seasonal_naive": seasonal}
    ok = np.isfinite(actual) & np.isfinite(persistence) & np.isfinite(seasonal)
    rows = []
    for j, target in enumerate(targets):
        keep = ok[:, :, j]
        y = actual[:, :, j][keep]
        for name, pred in models.items():
            p = pred[:, :, j][keep]
            if len(y):
                mae = mean_absolute_error(y, p)
                rmse = root_mean_squared_error(y, p)
            else:
                mae = rmse = np.nan
            # mase_scale_ is NaN where MASE is undefined: the ratio is NaN too.
            rows.append((target, name, mae, rmse, np.float64(mae) / mase_scale[j]))
    by_target = pd.DataFrame(
        rows, columns=["target", "model", "MAE", "RMSE", "MASE"]
    ).set_index(["target", "model"])
    with warnings.catch_warnings():
        # A mean over no target with a defined MASE is NaN, as it should be.
        warnings.simplefilter("ignore", RuntimeWarning)
        metrics = by_target.groupby(level="model", sort=False).mean()
    metrics.index.name = None
    return by_target, metrics.loc[list(models)]


def forecasts_frame(origin_ts, timestamps, targets, point, quantiles, Z,
                    persistence, seasonal, actual, ids=None, id_name=None):
    """The long DataFrame of :attr:`Backtest.forecasts`.

    ``origin_ts`` (n,), ``timestamps`` (n, horizon); the arrays are
    (n, horizon, n_targets), ``Z`` (n, horizon, n_targets, n_q).
    """
    n, h, n_t = actual.shape
    shape = (n, h, n_t)
    data = {}
    if ids is not None:
        data[id_name or "series"] = np.broadcast_to(ids[:, None, None], shape).ravel()
    steps = np.arange(1, h + 1)
    data["origin"] = np.broadcast_to(origin_ts[:, None, None], shape).ravel()
    data["timestamp"] = np.broadcast_to(timestamps[:, :, None], shape).ravel()
    data["step"] = np.broadcast_to(steps[None, :, None], shape).ravel()
    data["target"] = np.broadcast_to(np.asarray(targets, dtype=object), shape).ravel()
    data["forecast"] = point.ravel()
    if quantiles is not None:
        for k, q in enumerate(quantiles):
            data[f"forecast_q{q:g}"] = Z[..., k].ravel()
    data["persistence"] = persistence.ravel()
    data["seasonal_naive"] = seasonal.ravel()
    data["actual"] = actual.ravel()
    return pd.DataFrame(data)
