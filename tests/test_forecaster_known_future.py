"""Known-future covariates: given with their future values at forecast time."""
import warnings

import numpy as np
import pandas as pd
import pytest
from _forecaster_data import FAST, make_frame, make_panel
from sklearn.exceptions import ConvergenceWarning

from tsrnn import RNNForecaster


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def future_hours(frame, horizon=4, index_name="timestamp"):
    index = pd.date_range(
        frame.index[-1] + pd.Timedelta("1h"), periods=horizon, freq="h", name=index_name
    )
    return pd.DataFrame({"hour": index.hour.astype(float)}, index=index)


@pytest.fixture(scope="module")
def frame():
    return make_frame(300)


@pytest.fixture(scope="module")
def fitted(frame):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return RNNForecaster(target="y", known_future=["hour"], **FAST).fit(frame)


def test_roles_and_input_layout(fitted):
    assert fitted.known_future_ == ["hour"]
    assert fitted.past_covariates_ == ["x"]
    # Inputs: y, x, hour, the future flag and the default weekly lag of y
    # (season_lags="auto"), over window + horizon steps.
    assert fitted._encoder.lags == (168,)
    assert fitted.rnn_params_["weight_ih_l0"].shape[1] == 5


def test_predict_needs_future_values(frame, fitted):
    with pytest.raises(ValueError, match=r"known_future=\['hour'\] needs future="):
        fitted.predict()
    forecast = fitted.predict(future=future_hours(frame))
    assert forecast.index[0] == frame.index[-1] + pd.Timedelta("1h")
    assert forecast.shape == (4, 1)


def test_future_values_change_the_forecast(frame, fitted):
    future = future_hours(frame)
    shifted = future.assign(hour=(future["hour"] + 12) % 24)
    assert not np.allclose(fitted.predict(future=future), fitted.predict(future=shifted))


def test_incomplete_future_names_the_timestamp(frame, fitted):
    future = future_hours(frame).iloc[:3]
    with pytest.raises(ValueError, match=r"no value of 'hour' at 2024-01-13 15:00"):
        fitted.predict(future=future)
    with pytest.raises(ValueError, match="future lacks the known-future column"):
        fitted.predict(future=future.rename(columns={"hour": "h"}))
    plain = RNNForecaster(target="y", **FAST).fit(frame)
    with pytest.raises(ValueError, match="only used with known_future"):
        plain.predict(future=future)


def test_backtest_uses_the_known_future_values_from_the_frame(frame, fitted):
    frame_bt = frame.iloc[200:]
    fc = fitted.backtest(frame_bt, stride=41).forecasts
    for origin, group in fc.groupby("origin"):
        # The history the backtest had: its frame (which does not continue
        # the kept context), so a weekly lag before its first row is the
        # training mean in both.
        history = frame_bt.loc[:origin]
        expected = fitted.predict(history, future=future_hours(history))["y"]
        np.testing.assert_allclose(group["forecast"], expected, rtol=1e-5)


def test_known_future_setpoints_are_learned():
    # y follows a random planned setpoint: unpredictable from the past alone.
    rng = np.random.default_rng(0)
    n = 800
    setpoint = np.repeat(rng.integers(0, 5, n // 8 + 1), 8)[:n].astype(float)
    y = 2 * setpoint + rng.normal(scale=0.2, size=n)
    df = pd.DataFrame(
        {"y": y, "setpoint": setpoint}, index=pd.date_range("2024", periods=n, freq="h")
    )
    params = dict(window=12, horizon=4, hidden_layer_sizes=16, max_iter=20, random_state=0)
    blind = RNNForecaster(target="y", **params).fit(df.iloc[:600])
    informed = RNNForecaster(target="y", known_future=["setpoint"], **params)
    informed.fit(df.iloc[:600])
    mae_blind = blind.backtest(df.iloc[600:]).metrics.loc["model", "MAE"]
    metrics = informed.backtest(df.iloc[600:]).metrics
    # Measured: 0.55 with the setpoints vs 1.12 without (persistence 1.13).
    assert metrics.loc["model", "MAE"] < 0.7 * mae_blind
    assert metrics.loc["model", "MAE"] < metrics.loc["persistence", "MAE"]


def test_several_series_take_future_values_per_series():
    panel = make_panel(n=100)
    f = RNNForecaster(target="y", series_id="site", known_future=["hour"], **FAST)
    f.fit(panel)
    end = panel.index[-1]
    future = pd.concat(
        {key: future_hours(panel[panel["site"] == key]) for key in ("a", "b")},
        names=["site", "timestamp"],
    )
    forecast = f.predict(future=future)
    assert forecast.shape == (8, 1)
    assert forecast.xs("b", level="site").index[0] == end + pd.Timedelta("1h")
    as_column = future.reset_index(level="site")
    pd.testing.assert_frame_equal(f.predict(future=as_column), forecast)
    with pytest.raises(ValueError, match="no rows for series 'b'"):
        f.predict(future=future.xs("a", level="site", drop_level=False))
