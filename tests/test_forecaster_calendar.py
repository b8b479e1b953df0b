"""Calendar inputs (``calendar=``) and seasonal lag inputs (``season_lags=``):
which cycles and lags, their values, and that every path that forecasts
(predict with and without X, update, backtest, the stream's issued
forecasts) gives the network the same rows."""
import warnings

import numpy as np
import pandas as pd
import pytest
from _forecaster_data import FAST, make_frame
from pandas.tseries.frequencies import to_offset
from sklearn.exceptions import ConvergenceWarning

from tsrnn import RNNForecaster
from tsrnn._calendar import Calendar, cycles_for, seasons_for, wall_seconds

H = FAST["horizon"]


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


@pytest.mark.parametrize("freq, cycles", [
    ("500ms", []), ("min", []), ("10min", ["day"]), ("30min", ["day", "week"]),
    ("h", ["day", "week"]), ("D", ["week", "year"]), ("B", ["week", "year"]),
    ("W", ["year"]), ("MS", ["year"]), ("ME", ["year"]), ("QS", ["year"]),
    ("YS", []),
])
def test_auto_cycles_follow_the_step(freq, cycles):
    assert cycles_for(to_offset(freq)) == cycles
    cal = Calendar.from_parameter("auto", to_offset(freq))
    assert (cal.cycles if cal else []) == tuple(cycles) or (cal is None and not cycles)


def test_phases_are_the_wall_clock_and_calendar():
    cal = Calendar(["day", "week", "year"])
    # Monday 2024-01-01 06:00 in Berlin: a quarter of the day, Monday (week
    # phase 0.25 / 7), and within a day of the start of the year.
    index = pd.DatetimeIndex(["2024-01-01 06:00"]).tz_localize("Europe/Berlin")
    (day_s, day_c, week_s, week_c, year_s, year_c), = cal.encode(index)
    assert day_s == pytest.approx(1.0) and day_c == pytest.approx(0.0, abs=1e-12)
    assert np.arctan2(week_s, week_c) == pytest.approx(2 * np.pi * 0.25 / 7)
    assert abs(np.arctan2(year_s, year_c)) < 2 * np.pi * 1.5 / 365.2425
    # The same wall time in another zone (or none) encodes the same.
    naive = pd.DatetimeIndex(["2024-01-01 06:00"])
    np.testing.assert_array_equal(cal.encode(naive), cal.encode(index))
    assert wall_seconds(naive)[0] == wall_seconds(index.tz_convert("UTC").tz_localize(None))[0] + 3600


@pytest.mark.parametrize("calendar, message", [
    ("yes", "'calendar' parameter"), (["day", "month"], "unknown cycle"),
    (["day", "day"], "twice"),
])
def test_bad_calendar_is_refused(calendar, message):
    with pytest.raises(ValueError, match=message):
        RNNForecaster("y", calendar=calendar, **FAST).fit(make_frame(200))


def test_no_cycle_at_the_step_means_no_calendar_columns():
    df = make_frame(120, freq="YS")
    f = RNNForecaster("y", calendar="auto", **FAST).fit(df)
    assert f._encoder.calendar is None
    g = RNNForecaster("y", **FAST).fit(df)
    np.testing.assert_array_equal(f.predict().to_numpy(), g.predict().to_numpy())


def strong_head(f):
    """Large head weights: the network's corrections, calendar inputs included, count."""
    rng = np.random.default_rng(0)
    state = f.state_dict()
    state["head.weight"] = rng.normal(size=state["head.weight"].shape)
    state["head.bias"] = rng.normal(size=state["head.bias"].shape)
    return f.load_state_dict(state)


CONFIGS = [dict(calendar=["day", "week"]), dict(season_lags=[24, 48]),
           dict(calendar="auto", season_lags="auto", known_future=["hour"]),
           dict(calendar="auto", season_lags=[24], baseline="smoothing")]


@pytest.fixture(scope="module", params=range(len(CONFIGS)))
def fitted(request):
    df = make_frame(400)
    f = RNNForecaster("y", **CONFIGS[request.param], **FAST).fit(df.iloc[:300])
    return strong_head(f), df


def future_of(f, df, n):
    """``future=`` of predict for the history df.iloc[:n]."""
    return df.iloc[n : n + H][["hour"]] if f.known_future_ else None


@pytest.mark.parametrize("freq, seasons", [
    ("h", [24, 168]), ("30min", [48, 336]), ("D", [7, 364]), ("MS", [12]), ("QS", [4]),
    ("YS", []),
    # Anchored steps measured from their anchor: weekly data ending on
    # Saturday have 52 weeks to the year (not 73), month ends 12 months.
    ("W-SAT", [52]), ("W", [52]), ("ME", [12]), ("QE", [4]),
    # Business days: 5 to the week, and a year of 52 of those weeks.
    ("B", [5, 260]),
])
def test_seasons_follow_the_step(freq, seasons):
    assert seasons_for(to_offset(freq)) == seasons


def test_auto_season_lags_are_the_longer_seasons():
    df = make_frame(400)
    f = RNNForecaster("y", season_lags="auto", **FAST).fit(df)
    assert f._encoder.lags == (168,) and f.season_ == 24
    assert len(f._context[None]) == f.window_ + 168
    with pytest.raises(ValueError, match="at least horizon"):
        RNNForecaster("y", season_lags=[2], **FAST).fit(df)


def test_default_adds_the_weekly_lag_to_hourly_data_and_none_to_monthly():
    # season_lags="auto" is the default: hourly data get one input column,
    # the targets a week earlier, and the kept context reaches back that
    # week; monthly data have no season longer than the year, so they get
    # none and fit exactly as with season_lags=None.
    def n_inputs(f):
        return f.rnn_params_["weight_ih_l0"].shape[1]

    assert RNNForecaster("y").get_params()["season_lags"] == "auto"
    hourly = RNNForecaster("y", **FAST).fit(make_frame(400))
    weekly = RNNForecaster("y", season_lags=[168], **FAST).fit(make_frame(400))
    off = RNNForecaster("y", season_lags=None, **FAST).fit(make_frame(400))
    assert hourly._encoder.lags == (168,) and off._encoder.lags == ()
    assert n_inputs(hourly) == n_inputs(weekly) > n_inputs(off)
    np.testing.assert_array_equal(hourly.predict().to_numpy(), weekly.predict().to_numpy())
    assert len(hourly._context[None]) == hourly.window_ + 168
    assert len(off._context[None]) == max(off.window_, off.season_)
    monthly = RNNForecaster("y", **FAST).fit(make_frame(200, freq="MS"))
    monthly_off = RNNForecaster("y", season_lags=None, **FAST).fit(make_frame(200, freq="MS"))
    assert monthly._encoder.lags == ()
    assert n_inputs(monthly) == n_inputs(monthly_off)
    np.testing.assert_array_equal(monthly.predict().to_numpy(), monthly_off.predict().to_numpy())


def test_lag_columns_hold_the_targets_a_season_earlier():
    df = make_frame(300)
    f = RNNForecaster("y", season_lags=[24], **FAST).fit(df)
    A = f._encoder.encode(df, None, fitting=True)["A"]
    mean, scale = f.scaler_.mean_[0], f.scaler_.scale_[0]
    lag = A[:, len(f._frame_layout.columns)]
    np.testing.assert_allclose(lag[24:], (df["y"].to_numpy()[:-24] - mean) / scale, rtol=1e-5)
    assert not lag[:24].any()  # before the data: the training mean


def test_calendar_reaches_the_network():
    df = make_frame(400)
    f = strong_head(RNNForecaster("y", calendar=["day", "week"], **FAST).fit(df.iloc[:300]))
    assert f._encoder.calendar.cycles == ("day", "week")
    # One input per column, four calendar columns and the future flag, and
    # the windows run horizon rows past the origin.
    assert f._flat is not None and f._encoder.future_rows
    g = RNNForecaster("y", calendar=["day", "week"], **FAST).fit(df.iloc[:300])
    assert g.n_features_in_ == 3
    shifted = df.iloc[:300].copy()
    shifted.index = shifted.index + pd.Timedelta("5h")  # other phases, same values
    a = f.predict(df.iloc[:300], future=future_of(f, df, 300))
    b = f.predict(shifted, future=None if not f.known_future_ else
                  future_of(f, df, 300).set_axis(future_of(f, df, 300).index
                                                 + pd.Timedelta("5h")))
    assert not np.allclose(a.to_numpy(), b.to_numpy())


def test_every_path_gives_the_same_forecasts(fitted):
    f, df = fitted
    f = pickle_copy(f)
    direct = f.predict(df.iloc[:300], future=future_of(f, df, 300))
    np.testing.assert_allclose(f.predict(future=future_of(f, df, 300)).to_numpy(),
                               direct.to_numpy(), rtol=1e-6)
    # The stream: update row by row (the fast path), then a block (several
    # origins issued at once), then predict() against predict(X).
    for i in range(300, 306):
        f.update(df.iloc[i : i + 1])
    f.update(df.iloc[306:310])
    np.testing.assert_allclose(f.predict(future=future_of(f, df, 310)).to_numpy(),
                               f.predict(df.iloc[:310], future=future_of(f, df, 310)).to_numpy(),
                               rtol=1e-6)
    # A backtest's forecast from an origin is predict(X) of the history to it.
    bt = f.backtest(df.iloc[310:])
    origin = df.index[330]
    got = bt.forecasts[bt.forecasts["origin"] == origin]["forecast"].to_numpy()
    assert len(got) == H
    want = f.predict(df.iloc[:331], future=future_of(f, df, 331))["y"].to_numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_stream_with_a_gap_encodes_from_the_frames():
    # A window with a missing value is encoded from the context's frame
    # (Encoder.encode with the future rows after the context): the same
    # forecast as predict(X) over the same rows.
    df = make_frame(340)
    f = strong_head(RNNForecaster("y", calendar="auto", season_lags=[24], missing="interpolate",
                                  calibration=None, **FAST).fit(df.iloc[:300]))
    gappy = df.iloc[300:320].copy()
    gappy.iloc[-3, 0] = np.nan
    f.update(gappy)
    history = pd.concat([df.iloc[:300], gappy])
    np.testing.assert_allclose(f.predict().to_numpy(), f.predict(history).to_numpy(),
                               rtol=1e-6)


def test_calendar_with_known_future_columns():
    df = make_frame(300)
    f = strong_head(RNNForecaster("y", known_future=["hour"], calendar="auto", **FAST)
                    .fit(df.iloc[:250]))
    future = df.iloc[250:250 + H][["hour"]]
    a = f.predict(df.iloc[:250], future=future)
    b = f.predict(future=future)
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=1e-6)


def test_warm_start_keeps_the_calendar():
    df = make_frame(300)
    f = RNNForecaster("y", calendar="auto", warm_start=True, **FAST).fit(df)
    f.fit(df)
    f.set_params(calendar=None)
    with pytest.raises(ValueError, match="calendar"):
        f.fit(df)


def test_weekly_pattern_is_learned_from_the_calendar():
    # A daily and a weekly cycle that a 12-row window cannot see (nor reach
    # back a season for seasonal naive): with the calendar the learned
    # baseline (ridge on the covariates, calendar included) finds both.
    index = pd.date_range("2024-01-01", periods=24 * 7 * 10, freq="h")
    rng = np.random.default_rng(0)
    hours = np.arange(len(index))
    y = (3.0 * np.sin(2 * np.pi * hours / 24) + 2.0 * np.cos(2 * np.pi * hours / 168)
         + rng.normal(scale=0.3, size=len(index)))
    df = pd.DataFrame({"y": y}, index=index)
    scores = {}
    for calendar in (None, "auto"):
        # No seasonal lag: the default weekly lag column would show the
        # baseline the weekly cycle too, and this is about the calendar.
        f = RNNForecaster("y", calendar=calendar, window=12, horizon=24, max_iter=1,
                          hidden_layer_sizes=4, quantiles=None, random_state=0,
                          season_lags=None)
        f.fit(df.iloc[:-24 * 14])
        scores[calendar] = -f.score(df.iloc[-24 * 14:])
    assert scores["auto"] < 0.5 * scores[None]


def pickle_copy(f):
    import pickle
    return pickle.loads(pickle.dumps(f))
