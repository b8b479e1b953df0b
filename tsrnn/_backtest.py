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
    intervals : DataFrame
        One row per band, the pairs of quantiles ``(q, 1 - q)`` the model
        forecasts (e.g. ``"0.1-0.9"``), with columns ``nominal`` (the share of
        actuals the band promises to contain, ``1 - 2q``), ``coverage`` (the
        share it contained), ``width`` (mean width, in the target's units) and
        ``interval_score`` (the mean Winkler score: the width plus ``2/(2q)``
        times the distance by which an actual fell outside; lower is better
        and rewards narrow bands that keep their promise). Empty without
        quantiles. With several targets, the mean over targets.
    intervals_by_target : DataFrame
        The same for each target: index (target, band).
    """

    forecasts: pd.DataFrame
    metrics: pd.DataFrame
    metrics_by_target: pd.DataFrame
    season: int
    intervals: pd.DataFrame = None
    intervals_by_target: pd.DataFrame = None


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


def interval_scores(targets, quantiles, Z, actual):
    """(by target, mean over targets) of every symmetric band's quality.

    ``Z`` (n, horizon, n_targets, n_q) holds the quantile forecasts, sorted;
    ``actual`` (n, horizon, n_targets). Scored where the actual exists.
    """
    columns = ["nominal", "coverage", "width", "interval_score"]
    rows = []
    if quantiles is not None:
        levels = list(np.round(quantiles, 12))
        for lo_level in [q for q in levels if q < 0.5]:
            if round(1 - lo_level, 12) not in levels:
                continue
            lo, hi = levels.index(lo_level), levels.index(round(1 - lo_level, 12))
            alpha = 2 * lo_level
            for j, target in enumerate(targets):
                y = actual[:, :, j]
                keep = np.isfinite(y)
                y, low, high = y[keep], Z[:, :, j, lo][keep], Z[:, :, j, hi][keep]
                if not len(y):
                    continue
                # Winkler (1972): width, plus 2/alpha times any miss.
                score = (high - low) + (2 / alpha) * (
                    np.maximum(low - y, 0) + np.maximum(y - high, 0)
                )
                rows.append((target, f"{lo_level:g}-{1 - lo_level:g}", 1 - alpha,
                             np.mean((y >= low) & (y <= high)), np.mean(high - low),
                             np.mean(score)))
    by_target = pd.DataFrame(rows, columns=["target", "band", *columns]).set_index(
        ["target", "band"]
    )
    mean = by_target.groupby(level="band", sort=False).mean()
    return by_target, mean


def forecasts_frame(index, origins, targets, point, quantiles, Z,
                    persistence, seasonal, actual, ids=None, id_name=None):
    """The long DataFrame of :attr:`Backtest.forecasts`.

    ``index`` is the DatetimeIndex of the stacked rows and ``origins`` (n,)
    the rows of the origins; the timestamps are taken from the index, so
    they keep its unit and time zone. The arrays are (n, horizon,
    n_targets), ``Z`` (n, horizon, n_targets, n_q). ``ids``, for a fleet,
    is an Index (n,) of each origin's series, in the dtype of the input's id.
    """
    n, h, n_t = actual.shape
    shape = (n, h, n_t)
    data = {}
    if ids is not None:
        # An Index (n,) of the origins' series, repeated so its dtype stays.
        data[id_name or "series"] = ids.repeat(h * n_t)
    steps = np.arange(1, h + 1)
    data["origin"] = index.take(np.broadcast_to(origins[:, None, None], shape).ravel())
    rows = origins[:, None, None] + steps[None, :, None]
    data["timestamp"] = index.take(np.broadcast_to(rows, shape).ravel())
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
