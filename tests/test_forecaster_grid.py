"""freq=: readings snap to the nearest grid point (issue 25).

Jittered logger clocks, DST changes and regular data that must pass bit for
bit. The snapping itself is checked on ``snap_to_grid`` and on the regular
frames ``FrameLayout`` makes; a few tiny fits check that the forecaster's
``freq=`` uses it the same way.
"""
import warnings

import numpy as np
import pandas as pd
import pytest
from pandas.tseries.frequencies import to_offset

from tsrnn import RNNForecaster
from tsrnn._frames import FrameLayout
from tsrnn._time_grid import round_step, snap_to_grid
from tsrnn.exceptions import InputError, ResampleWarning

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

FAST = dict(window=8, horizon=4, hidden_layer_sizes=(4,), max_iter=2, random_state=0)


def jittered(n=1441, seconds=20, start="2024-03-01", tz=None, seed=0, freq="h"):
    """Hourly readings whose clock is off by up to ``seconds`` either way."""
    rng = np.random.default_rng(seed)
    exact = pd.date_range(start, periods=n, freq=freq, tz=tz, name="time")
    stamps = exact + pd.to_timedelta(rng.integers(-seconds, seconds + 1, n), unit="s")
    values = 10 + 5 * np.sin(np.arange(n) * 2 * np.pi / 24) + rng.normal(0, 0.3, n)
    return exact, pd.DataFrame({"temp": values}, index=stamps)


def regularized(X, freq, missing="interpolate"):
    """(frames, warnings) of FrameLayout put on the grid of ``freq``."""
    layout = FrameLayout.from_frame(X, "temp", None, None, missing)
    frames = layout.split(X, regularize=False)
    layout.set_step(frames, freq)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frames = {key: layout.regularize(f, key) for key, f in frames.items()}
    return layout, frames, [w.message for w in caught if w.category is ResampleWarning]


def test_jittered_readings_snap_to_the_nearest_hour_not_the_bin_below():
    exact, X = jittered()
    _, frames, caught = regularized(X, "h")
    out = frames[None]
    # Every reading finds its own hour: no empty hour, no hour with two.
    assert out.index.equals(exact.as_unit(out.index.unit))
    np.testing.assert_array_equal(out["temp"].to_numpy(), X["temp"].to_numpy())
    (warning,) = caught
    moved = int((X.index != exact).sum())
    assert (warning.moved, warning.averaged, warning.empty) == (moved, 0, 0)
    assert f"{moved:,} readings of 1,441 moved" in str(warning)
    assert "by up to 20s" in str(warning)
    # What floor bins made of the same file (the 25% empty hours).
    floored = X.resample("h").mean()
    assert floored["temp"].isna().mean() > 0.2


def test_regular_data_pass_bit_for_bit_and_silently():
    exact, X = jittered(n=300, seconds=0)
    _, frames, caught = regularized(X, "h")
    out = frames[None]
    # (The layout holds timestamps in its own unit; the lead's unit work decides it.)
    pd.testing.assert_frame_equal(out, X.set_axis(X.index.as_unit(out.index.unit)),
                                  check_exact=True, check_freq=False)
    assert caught == []
    # Off the hour (at :07) and with a gap, they keep their timestamps.
    late = X.set_axis(X.index + pd.Timedelta("7min")).drop(X.index[50] + pd.Timedelta("7min"))
    _, frames, caught = regularized(late, "h")
    out = frames[None]
    assert out.index[0] == late.index[0] and len(out) == 300
    pd.testing.assert_frame_equal(out.dropna(), late.set_axis(late.index.as_unit(out.index.unit)),
                                  check_exact=True, check_freq=False)
    assert [(w.moved, w.averaged, w.empty) for w in caught] == [(0, 0, 1)]
    # The fitted forecasters are the same with and without freq= on regular data.
    plain = RNNForecaster(target="temp", **FAST).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResampleWarning)
        snapped = RNNForecaster(target="temp", freq="h", **FAST).fit(X)
    np.testing.assert_array_equal(plain._flat, snapped._flat)
    pd.testing.assert_frame_equal(plain.predict(), snapped.predict(), check_exact=True)


def test_readings_on_one_point_are_averaged_and_empty_points_are_gaps():
    index = pd.DatetimeIndex(["2024-01-01 00:00:10", "2024-01-01 00:59:30",
                              "2024-01-01 01:00:20", "2024-01-01 03:00:00",
                              "2024-01-01 03:29:59", "2024-01-01 03:30:00"])
    X = pd.DataFrame({"temp": [1.0, 2.0, 4.0, 5.0, 7.0, 9.0]}, index=index)
    _, frames, (warning,) = regularized(X, "h")
    out = frames[None]["temp"]
    # 03:30:00 is exactly halfway: it goes to the earlier point, as a bin
    # labelled on its left would take it.
    assert list(out.index.strftime("%H:%M")) == ["00:00", "01:00", "02:00", "03:00"]
    np.testing.assert_array_equal(out.to_numpy(), [1.0, 3.0, np.nan, 7.0])
    assert (warning.moved, warning.averaged, warning.empty, warning.points) == (5, 2, 1, 4)
    assert "2 grid points averaged 5 readings" in str(warning)
    assert "1 grid point of 4 had no reading" in str(warning)


def test_weights_follow_the_nearest_point():
    index = pd.DatetimeIndex(["2024-01-01 00:00:10", "2024-01-01 00:59:30",
                              "2024-01-01 01:00:20", "2024-01-01 03:00:00"])
    X = pd.DataFrame({"temp": [1.0, 2.0, 4.0, 5.0]}, index=index)
    layout, frames, _ = regularized(X, "h")
    w = layout.split_weights(X, np.array([1.0, 2.0, 4.0, 7.0]), frames)[None]
    np.testing.assert_array_equal(w, [1.0, 3.0, 0.0, 7.0])
    # Rows given out of order carry their own weights.
    order = [3, 1, 0, 2]
    w = layout.split_weights(X.iloc[order], np.array([7.0, 2.0, 1.0, 4.0]), frames)[None]
    np.testing.assert_array_equal(w, [1.0, 3.0, 0.0, 7.0])


@pytest.mark.parametrize("start", ["2024-03-29", "2024-10-25"])  # spring forward, fall back
def test_dst_change_is_no_gap(start):
    exact, X = jittered(n=120, start=start, tz="Europe/Berlin")
    _, frames, (warning,) = regularized(X, "h")
    out = frames[None]
    assert out.index.equals(exact.as_unit(out.index.unit))
    assert (warning.averaged, warning.empty) == (0, 0)
    # Daily readings keep local midnight across the change (a calendar day).
    days = pd.date_range(start, periods=10, freq="D", tz="Europe/Berlin")
    late = days + pd.Timedelta("3min")
    grid, positions = snap_to_grid(late.delete(4), pd.offsets.Day())
    assert grid.equals(late.as_unit(grid.unit)) and list(positions) == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    grid, _ = snap_to_grid(late.insert(4, days[4] + pd.Timedelta("50min")), pd.offsets.Day())
    assert grid.equals(days.as_unit(grid.unit))


def test_inferred_step_is_the_rounded_median_and_the_error_says_so():
    _, X = jittered()
    with pytest.raises(InputError) as info:
        RNNForecaster(target="temp", **FAST).fit(X)
    message = str(info.value)
    assert "readings arrive every 1h" in message
    assert "up to 20s of jitter" in message
    assert "freq='h'" in message and "3603s" not in message
    # And passing that freq fits.
    with pytest.warns(ResampleWarning, match="moved to the nearest point") as record:
        f = RNNForecaster(target="temp", freq="h", **FAST).fit(X)
    # The warning points at the user's call, not at the snapping inside.
    assert {w.filename for w in record if w.category is ResampleWarning} == {__file__}
    assert f.freq_ == "h" and f.predict().index[0] == pd.Timestamp("2024-04-30 01:00")


def test_jitter_with_gaps_counts_them_in_the_advice():
    _, X = jittered(n=300)
    X = X.drop(X.index[[40, 41, 120]])
    with pytest.raises(InputError, match=r"freq='h'.*3 grid points would have no reading"):
        RNNForecaster(target="temp", **FAST).fit(X)


def test_predict_refuses_jitter_with_the_fitted_step():
    exact, X = jittered(n=300)
    f = RNNForecaster(target="temp", **FAST).fit(X.set_axis(exact))
    with pytest.raises(InputError, match=r"every 1h with up to 20s of jitter.*freq='h'"):
        f.predict(X)


@pytest.mark.parametrize("step, expected", [
    ("3603s", "h"), ("3597s", "h"), ("15min2s", "15min"), ("90min", "90min"),
    ("23h58min", "D"), ("7s", "7s"), ("10100ms", "10s"),
])
def test_round_step(step, expected):
    assert round_step(pd.Timedelta(step)) == to_offset(expected)


def test_update_snaps_new_rows_to_the_kept_grid():
    # Regular readings at :07 past the hour, then a jittery stretch: the
    # kept rows must not move to :00, and the new ones join their grid.
    exact = pd.date_range("2024-01-01 00:07", periods=240, freq="h", name="time")
    values = np.sin(np.arange(240) * 2 * np.pi / 24)
    X = pd.DataFrame({"temp": values}, index=exact)
    f = RNNForecaster(target="temp", freq="h", missing="interpolate", **FAST).fit(X.iloc[:200])
    late = pd.to_timedelta(np.random.default_rng(0).integers(-20, 21, 40), unit="s")
    with pytest.warns(ResampleWarning, match="moved to the nearest point"):
        f.update(X.iloc[200:].set_axis(exact[200:] + late))
    kept = f._context[None].frame()
    assert kept.index.equals(exact[-len(kept):].as_unit(kept.index.unit))
    np.testing.assert_array_equal(kept["temp"].to_numpy(), values[-len(kept):])
    assert f.predict().index[0] == exact[-1] + pd.Timedelta("1h")


def test_another_step_is_not_called_jitter():
    exact, X = jittered(n=300, seconds=0)
    f = RNNForecaster(target="temp", **FAST).fit(X)
    quarter = pd.DataFrame({"temp": np.arange(400.0)},
                           index=pd.date_range("2024-03-01", periods=400, freq="15min"))
    with pytest.raises(InputError, match="not regular") as info:
        f.predict(quarter)
    assert "jitter" not in str(info.value)
    # Readings a quarter step or more off the grid are irregular, not jittered.
    rng = np.random.default_rng(0)
    scattered = X.set_axis(exact + pd.to_timedelta(rng.integers(-1500, 1500, 300), unit="s"))
    with pytest.raises(InputError, match="not regular") as info:
        RNNForecaster(target="temp", **FAST).fit(scattered.sort_index())
    assert "jitter" not in str(info.value)
