"""RNNForecaster.backtest: rolling origins, baselines and metrics."""
import warnings

import numpy as np
import pandas as pd
import pytest
from _forecaster_data import FAST, make_frame
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import mean_absolute_error, root_mean_squared_error

from tsrnn import RNNForecaster
from tsrnn._backtest import Backtest


@pytest.fixture(scope="module")
def data():
    frame = make_frame(360)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = RNNForecaster(target="y", **FAST).fit(frame.iloc[:240])
    return frame, model


def test_result_layout(data):
    frame, f = data
    result = f.backtest(frame.iloc[240:])
    assert isinstance(result, Backtest) and result.season == 24
    assert list(result.forecasts.columns) == [
        "origin", "timestamp", "step", "target", "forecast", "persistence",
        "seasonal_naive", "actual",
    ]
    assert list(result.metrics.index) == ["model", "persistence", "seasonal_naive"]
    assert list(result.metrics.columns) == ["MAE", "RMSE", "MASE"]
    fc = result.forecasts
    assert (fc["timestamp"] - fc["origin"] == fc["step"] * pd.Timedelta("1h")).all()
    assert (fc["target"] == "y").all()


def test_baselines_and_actuals(data):
    frame, f = data
    fc = f.backtest(frame.iloc[240:]).forecasts
    y = frame["y"]
    np.testing.assert_array_equal(fc["actual"], y.loc[fc["timestamp"]])
    np.testing.assert_array_equal(fc["persistence"], y.loc[fc["origin"]])
    # horizon 4 < season 24: the value one day before the forecast timestamp.
    np.testing.assert_array_equal(
        fc["seasonal_naive"], y.loc[fc["timestamp"] - pd.Timedelta("24h")]
    )


def test_metrics_match_the_forecasts(data):
    frame, f = data
    result = f.backtest(frame.iloc[240:])
    fc = result.forecasts
    for name, column in [("model", "forecast"), ("persistence", "persistence"),
                         ("seasonal_naive", "seasonal_naive")]:
        row = result.metrics.loc[name]
        assert row["MAE"] == pytest.approx(mean_absolute_error(fc["actual"], fc[column]))
        assert row["RMSE"] == pytest.approx(
            root_mean_squared_error(fc["actual"], fc[column])
        )
        assert row["MASE"] == pytest.approx(row["MAE"] / f.mase_scale_[0])
    # The MASE scale is the training data's in-sample seasonal naive MAE.
    train = frame["y"].iloc[:240].to_numpy()
    assert f.mase_scale_[0] == pytest.approx(np.abs(train[24:] - train[:-24]).mean())


def test_batched_backtest_equals_one_predict_per_origin(data):
    frame, f = data
    fc = f.backtest(frame.iloc[240:], stride=37).forecasts
    for origin, group in fc.groupby("origin"):
        expected = f.predict(frame.loc[:origin])["y"].to_numpy()
        np.testing.assert_allclose(group["forecast"], expected, rtol=1e-5)


def test_start_and_stride(data):
    frame, f = data
    test = frame.iloc[240:]
    fc = f.backtest(test, start=test.index[10], stride=5).forecasts
    origins = fc["origin"].unique()
    assert origins[0] == test.index[10]
    assert (np.diff(origins) == pd.Timedelta("5h")).all()
    assert origins[-1] + 4 * pd.Timedelta("1h") <= test.index[-1]


def test_frame_not_following_the_training_data(data):
    frame, f = data
    later = frame.iloc[260:]  # a gap after the training rows: no context
    fc = f.backtest(later).forecasts
    assert fc["origin"].iloc[0] == later.index[f.window - 1]
    assert fc["origin"].iloc[-1] == later.index[-1 - f.horizon]
    # In-sample backtest of the training frame itself (as the CLI does).
    assert f.backtest(frame.iloc[:240]).forecasts["origin"].iloc[0] == frame.index[11]


def test_too_short_frame(data):
    frame, f = data
    with pytest.raises(ValueError, match="no forecast origin.*window=12.*horizon=4"):
        f.backtest(frame.iloc[300:310])
    with pytest.raises(ValueError, match="stride"):
        f.backtest(frame.iloc[240:], stride=0)


def test_seasonal_naive_needs_a_full_season_of_history():
    # window 12 < season 24 and no context: the first origins lack a
    # seasonal forecast, so metrics use only the origins where all exist.
    frame = make_frame(200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        f = RNNForecaster(target="y", **FAST).fit(frame.iloc[:120])
    result = f.backtest(frame.iloc[130:])
    fc = result.forecasts
    assert fc["seasonal_naive"].isna().any() and fc["forecast"].notna().all()
    ok = fc["seasonal_naive"].notna()
    assert result.metrics.loc["model", "MAE"] == pytest.approx(
        mean_absolute_error(fc.loc[ok, "actual"], fc.loc[ok, "forecast"])
    )


def test_several_targets_average_per_target_metrics():
    frame = make_frame(300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        f = RNNForecaster(target=["y", "x"], **FAST).fit(frame.iloc[:200])
    result = f.backtest(frame.iloc[200:])
    by_target = result.metrics_by_target
    assert list(by_target.index.get_level_values("target").unique()) == ["y", "x"]
    np.testing.assert_allclose(
        result.metrics.loc["model"], by_target.xs("model", level="model").mean()
    )


@pytest.mark.parametrize("tz", [None, "Europe/Berlin"])
def test_fleet_from_arrays_equals_the_frames_per_series(tz, monkeypatch):
    """A fleet's backtest from arrays (``_regular_series``) is the frames' bit for bit.

    Seasonal lags, a calendar and the default band (tracked in the replay);
    series of different lengths, one that follows its kept context, one
    with gaps, one that starts later and one not seen in fit; rows
    interleaved across series, as a frame sorted by time has them.
    """
    params = {k: v for k, v in FAST.items() if k != "quantiles"}
    parts, train = [], []
    for k, (key, n) in enumerate([(3, 330), (1, 300), (7, 280), (5, 260)]):
        f = make_frame(n, seed=k, level=20.0 + 10 * k)
        if tz is not None:
            f.index = f.index.tz_localize(tz)
        f.insert(0, "site", np.int32(key))
        if key != 5:  # not in fit
            train.append(f.iloc[:200])
        later = f.iloc[200:] if key != 7 else f.iloc[230:]  # 7 does not follow its context
        if key == 1:
            later = later.copy()
            later.iloc[[10, 11, 40], 1] = np.nan  # gaps
        parts.append(later)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = RNNForecaster(target="y", series_id="site", season_lags=[24],
                              calendar=["day"], missing="interpolate",
                              **params).fit(pd.concat(train))
    X = pd.concat(parts).sort_index(kind="stable")
    assert model._regular_series(X) is not None
    fast = model.backtest(X, stride=3)
    monkeypatch.setattr(RNNForecaster, "_regular_series", lambda self, X: None)
    frames = model.backtest(X, stride=3)
    assert fast.forecasts["site"].nunique() == 4
    pd.testing.assert_frame_equal(fast.forecasts, frames.forecasts, check_exact=True)
    pd.testing.assert_frame_equal(fast.metrics, frames.metrics, check_exact=True)
    pd.testing.assert_frame_equal(fast.intervals, frames.intervals, check_exact=True)
