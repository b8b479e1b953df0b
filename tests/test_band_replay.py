"""A backtest's replay of the band, all series in step, against one tracker per series.

``replay_streams`` must issue exactly what a ``SeriesTracker`` per series
issues when each origin observes its row and then issues (the update()
stream), bit for bit: the backtest's band is documented as the band a
stream would have had.
"""
import numpy as np
import pytest

from tsrnn._calibration import BandCalibration, SeriesTracker, replay_streams

QUANTILES = (0.1, 0.5, 0.9)


def calibration(rng, h, n_t, relative):
    forecasts = np.sort(rng.normal(50, 5, size=(40, h, n_t, len(QUANTILES))), axis=-1)
    actual = rng.normal(50, 6, size=(40, h, n_t))
    return BandCalibration(QUANTILES, 0.1).fit(
        forecasts, actual, relative=[relative] * n_t, floor=[1.0] * n_t)


def one_tracker_per_series(cal, raw, actual, lengths):
    out, start = [], 0
    for n in lengths:
        tracker = SeriesTracker(cal, raw.shape[1], 0)
        for i in range(n):
            if i:
                tracker.observe(start + i, actual[start + i])
            out.append(tracker.issue(start + i, raw[start + i]))
        start += n
    return np.array(out)


@pytest.mark.parametrize("relative", [False, True])
@pytest.mark.parametrize("lengths", [[30], [30, 1, 5, 30, 12], [3, 3]])
def test_replay_in_step_equals_a_tracker_per_series(relative, lengths):
    rng = np.random.default_rng(len(lengths) + relative)
    h, n_t = 6, 2
    cal = calibration(rng, h, n_t, relative)
    raw = rng.normal(50, 5, size=(sum(lengths), h, n_t, len(QUANTILES)))
    actual = rng.normal(50, 8, size=(sum(lengths), n_t))
    actual[rng.random(actual.shape) < 0.1] = np.nan  # a missing truth checks nothing
    got = replay_streams(cal, raw, actual, lengths)
    want = one_tracker_per_series(cal, raw, actual, lengths)
    np.testing.assert_array_equal(got, want)
    # The tracking really moved the band: the last forecasts differ from the
    # ones issued with the offsets of fit.
    fixed = np.sort(cal.apply(raw), axis=-1)
    assert not np.array_equal(got[-1], fixed[-1])
