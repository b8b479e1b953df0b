"""Calibrated bands (issue 15): conformal offsets, streaming adaptation, scores.

The band of a model whose pinball-trained quantiles are too narrow on new
data must cover what it promises once calibrated on held-out time; while
streaming, a change in the noise must be caught up with; backtest reports the
coverage; permutation importance ranks an informative covariate above noise.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.inspection import permutation_importance

import tsrnn._band_tracking
from tsrnn import RNNForecaster
from tsrnn._calibration import BandCalibration, conformal_rank, level_scaled
from tsrnn.exceptions import InputError

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

QUICK = dict(window=24, horizon=6, hidden_layer_sizes=8, max_iter=4, random_state=0)


def noisy_season(n, noise, seed=0, start="2024-01-01"):
    """A daily sine with Gaussian noise whose size may change along the rows."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    y = np.sin(2 * np.pi * t / 24) + np.broadcast_to(noise, (n,)) * rng.standard_normal(n)
    return pd.DataFrame({"y": y}, index=pd.date_range(start, periods=n, freq="h"))


# ----------------------------------------------------------------------
# The conformal arithmetic
# ----------------------------------------------------------------------
@pytest.mark.parametrize("n, tau, rank", [(9, 0.9, 9), (9, 0.1, 1), (8, 0.9, 9), (8, 0.1, 0),
                                          (99, 0.8, 80), (99, 0.2, 20)])
def test_conformal_rank(n, tau, rank):
    # ceil((n + 1) tau) for an upper quantile, floor((n + 1) tau) for a lower
    # one; 0 or n + 1 mean "too few residuals for this level".
    assert conformal_rank(n, tau) == rank


def test_offsets_make_held_out_coverage_exact():
    # Quantiles that are 1.0 too low everywhere: the offsets put them back,
    # step by step, so that the held-out truth falls below each as often as
    # its level says (up to the finite-sample rank).
    rng = np.random.default_rng(0)
    n, h = 199, 3
    actual = rng.standard_normal((n, h, 1)) * np.array([1.0, 2.0, 3.0])[None, :, None]
    levels = np.array([0.1, 0.5, 0.9])
    forecasts = np.zeros((n, h, 1, 3)) - 1.0
    cal = BandCalibration(levels, rate=0.1).fit(forecasts, actual)
    calibrated = forecasts + cal.offsets
    below = (actual[..., None] <= calibrated).mean(axis=0)  # (h, 1, 3)
    np.testing.assert_allclose(below[:, 0, 0], 0.1, atol=0.011)
    np.testing.assert_allclose(below[:, 0, 2], 0.9, atol=0.011)
    assert (cal.offsets[:, 0, 1] == 0).all()  # the median is the point forecast: untouched
    # The wider the noise of a step, the wider its offsets.
    assert np.all(np.diff(cal.offsets[:, 0, 2]) > 0) and np.all(np.diff(cal.offsets[:, 0, 0]) < 0)


def test_too_few_held_out_forecasts_leave_a_level_uncalibrated():
    cal = BandCalibration(np.array([0.05, 0.5, 0.95]), rate=0.1)
    cal.fit(np.zeros((10, 1, 1, 3)), np.ones((10, 1, 1)))  # 10 < 1/0.05 - 1
    assert cal.too_few == [0.05, 0.95] and not cal.calibrated.any()
    assert not cal.offsets.any()


# ----------------------------------------------------------------------
# The forecaster's band
# ----------------------------------------------------------------------
def test_calibrated_band_covers_what_it_promises():
    # A small network trained briefly: its own band is off; the calibrated
    # one covers close to 80% of data it never saw.
    df = noisy_season(1600, 0.5)
    train, test = df.iloc[:1200], df.iloc[1200:]
    raw = RNNForecaster(target="y", calibration=None, **QUICK).fit(train)
    cal = RNNForecaster(target="y", **QUICK).fit(train)
    band_raw = raw.backtest(test).intervals.loc["0.1-0.9"]
    band_cal = cal.backtest(test).intervals.loc["0.1-0.9"]
    assert band_raw["nominal"] == band_cal["nominal"] == pytest.approx(0.8)
    assert abs(band_cal["coverage"] - 0.8) < 0.05, band_cal
    assert abs(band_cal["coverage"] - 0.8) < abs(band_raw["coverage"] - 0.8)
    # The point forecast (the median) is not moved by calibration.
    np.testing.assert_array_equal(
        raw.backtest(test).forecasts["forecast"], cal.backtest(test).forecasts["forecast"]
    )


@pytest.mark.parametrize("calibration", ["cqr", "split", None])
def test_quantiles_are_monotone_at_every_step(calibration):
    df = noisy_season(500, 0.3)
    f = RNNForecaster(target="y", quantiles=(0.05, 0.1, 0.5, 0.9, 0.95),
                      calibration=calibration, **QUICK).fit(df.iloc[:400])
    fc = f.backtest(df.iloc[400:]).forecasts
    q = fc[[f"forecast_q{q:g}" for q in f.quantiles_]].to_numpy()
    assert (np.diff(q, axis=1) >= 0).all()
    issued = f.predict()[[f"y_q{q:g}" for q in f.quantiles_]].to_numpy()
    assert (np.diff(issued, axis=1) >= 0).all()


def test_split_calibration_trains_the_median_only():
    df = noisy_season(500, 0.3)
    f = RNNForecaster(target="y", calibration="split", **QUICK).fit(df.iloc[:400])
    assert f.n_outputs_ == f.horizon  # one output per step, not three
    band = f.backtest(df.iloc[400:]).intervals.loc["0.1-0.9"]
    assert 0.6 < band["coverage"] < 0.95 and band["width"] > 0


def test_too_little_data_warns_and_keeps_the_band_uncalibrated():
    # 40 rows: 11 training windows of 24 + 6 rows, and no room for a
    # held-out block after them.
    df = noisy_season(40, 0.3)
    with pytest.warns(UserWarning, match="uncalibrated"):
        f = RNNForecaster(target="y", window=24, horizon=6, hidden_layer_sizes=4,
                          early_stopping=False, max_iter=2, random_state=0).fit(df)
    assert f._calibration is None
    assert f.predict().shape == (6, 4)


def test_backtest_reports_coverage_width_and_interval_score():
    df = noisy_season(500, 0.3)
    f = RNNForecaster(target="y", quantiles=(0.1, 0.25, 0.5, 0.75, 0.9), **QUICK).fit(
        df.iloc[:400]
    )
    result = f.backtest(df.iloc[400:])
    assert list(result.intervals.index) == ["0.1-0.9", "0.25-0.75"]
    fc = result.forecasts
    lo, hi = fc["forecast_q0.1"], fc["forecast_q0.9"]
    inside = (fc["actual"] >= lo) & (fc["actual"] <= hi)
    row = result.intervals.loc["0.1-0.9"]
    assert row["coverage"] == pytest.approx(inside.mean())
    assert row["width"] == pytest.approx((hi - lo).mean())
    miss = np.maximum(lo - fc["actual"], 0) + np.maximum(fc["actual"] - hi, 0)
    assert row["interval_score"] == pytest.approx(((hi - lo) + miss / 0.1).mean())
    assert RNNForecaster(target="y", quantiles=None, **QUICK).fit(df).backtest(
        df.iloc[300:]
    ).intervals.empty


# ----------------------------------------------------------------------
# Streaming: the band follows a change in the noise
# ----------------------------------------------------------------------
def _stream_coverage(f, df, start, stop):
    hits = []
    for i in range(start, stop):
        forecast = f.predict()
        f.update(df.iloc[i : i + 1])
        truth = df["y"].iloc[i]  # step 1 of the forecast from origin i - 1
        hits.append(forecast["y_q0.1"].iloc[0] <= truth <= forecast["y_q0.9"].iloc[0])
    return np.array(hits)


def test_streaming_band_catches_up_with_a_noise_shift():
    # The noise triples after row 1000. With the offsets of fit the band
    # keeps covering about a third; tracked online, it is back near 80%
    # within a few hundred rows.
    noise = np.where(np.arange(1500) < 1000, 0.3, 0.9)
    df = noisy_season(1500, noise, seed=3)
    kw = dict(target="y", window=24, horizon=6, hidden_layer_sizes=8, max_iter=3,
              random_state=0)
    fixed = RNNForecaster(calibration_rate=0.0, **kw).fit(df.iloc[:900])
    adaptive = RNNForecaster(**kw).fit(df.iloc[:900])
    for f in (fixed, adaptive):
        f.update(df.iloc[900:1000])
    hits_fixed = _stream_coverage(fixed, df, 1000, 1400)
    hits_adaptive = _stream_coverage(adaptive, df, 1000, 1400)
    assert hits_fixed[200:].mean() < 0.5
    assert hits_adaptive[200:].mean() > 0.7
    assert hits_adaptive[:100].mean() < hits_adaptive[200:].mean()  # it had to catch up


def test_streaming_predict_returns_the_issued_forecast_and_update_is_atomic():
    df = noisy_season(400, 0.3)
    f = RNNForecaster(target="y", **QUICK).fit(df.iloc[:300])
    f.update(df.iloc[300:320])
    issued = f.predict()
    # The same history given explicitly: same point forecast (the offsets
    # of the explicit path are fit's, the stream's have moved).
    explicit = f.predict(df.iloc[:320])
    np.testing.assert_allclose(issued["y"], explicit["y"], rtol=1e-6)
    pd.testing.assert_frame_equal(f.predict(), issued)  # no second draw
    # A refused update moves nothing.
    bad = df.iloc[320:322].copy()
    bad.iloc[1, 0] = np.inf
    with pytest.raises(InputError, match="inf"):
        f.update(bad)
    pd.testing.assert_frame_equal(f.predict(), issued)


# ----------------------------------------------------------------------
# Trending series (issue 24): errors relative to the level
# ----------------------------------------------------------------------
def growing(n, seed=0, growth=0.004):
    """A positive hourly series growing 0.4% a row, with a daily season and
    noise that both scale with the level (a multiplicative model)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    y = (10 * np.exp(growth * t) * (1 + 0.3 * np.sin(2 * np.pi * t / 24))
         * np.exp(0.05 * rng.standard_normal(n)))
    return pd.DataFrame({"y": y}, index=pd.date_range("2024-01-01", periods=n, freq="h"))


def test_level_scaled_follows_guerreros_rule():
    rng = np.random.default_rng(0)
    t = np.arange(480)
    season = np.sin(2 * np.pi * t / 24)
    multiplicative = 10 * np.exp(0.005 * t) * (1 + 0.2 * season + 0.05 * rng.standard_normal(480))
    additive = 10 + 0.05 * t + 2 * season + 0.5 * rng.standard_normal(480)
    assert level_scaled([multiplicative], 24) == (True, multiplicative.min())
    assert level_scaled([additive], 24)[0] is False
    # A value at or below zero: the level is no unit of the errors.
    assert level_scaled([multiplicative - multiplicative.min()], 24) == (False, 0.0)
    # Fewer than four blocks of a season: too few to tell.
    assert level_scaled([multiplicative[:90]], 24) == (False, 0.0)
    # Series are pooled block by block; gaps are skipped, not spread.
    gappy = multiplicative.copy()
    gappy[30:40] = np.nan
    assert level_scaled([gappy[:240], gappy[240:]], 24) == (True, np.nanmin(gappy))


def test_relative_offsets_scale_with_the_median_forecast():
    # Held-out forecasts at levels 10..100, truth off by a relative error:
    # the offsets are fractions, and a forecast at level 1000 gets a band
    # ten times as wide as one at 100. An additive target next to it keeps
    # additive offsets.
    rng = np.random.default_rng(0)
    n, h = 199, 2
    level = np.linspace(10, 100, n)[:, None] * np.ones(h)
    rel = rng.standard_normal((n, h))
    add = rng.standard_normal((n, h))
    actual = np.stack([level * (1 + 0.1 * rel), level + add], axis=-1)  # (n, h, 2)
    forecasts = np.repeat(np.stack([level, level], axis=-1)[..., None], 3, axis=-1)
    levels = np.array([0.1, 0.5, 0.9])
    cal = BandCalibration(levels, rate=0.1).fit(forecasts, actual, relative=[True, False],
                                                floor=[1.0, 0.0])
    calibrated = cal.apply(forecasts)
    below = (actual[..., None] <= calibrated).mean(axis=0)  # (h, 2, 3)
    np.testing.assert_allclose(below[..., 0], 0.1, atol=0.011)
    np.testing.assert_allclose(below[..., 2], 0.9, atol=0.011)
    np.testing.assert_allclose(cal.offsets[:, 0, 2], 0.128, atol=0.03)  # 1.28 sd of 10%
    np.testing.assert_allclose(cal.offsets[:, 1, 2], 1.28, atol=0.3)
    at = np.array([100.0, 1000.0])[:, None, None, None] * np.ones((2, h, 2, 3))
    width = np.diff(cal.apply(at)[..., [0, 2]], axis=-1)[..., 0]  # (2, h, 2)
    np.testing.assert_allclose(width[1, :, 0], 10 * width[0, :, 0])
    np.testing.assert_allclose(width[1, :, 1], width[0, :, 1])
    # Below the floor (a median near or under zero) the floor is the level.
    tiny = np.full((1, h, 2, 3), -1e-3)
    assert np.all(np.diff(cal.apply(tiny)[..., [0, 2]], axis=-1)[:, :, 0] > 0.1)


def test_shifted_relative_band_is_at_least_the_symmetric_band():
    # Held-out forecasts 6% below the truth, as a network trained on a
    # trend's earlier, lower rows makes them: the one-sided offsets lift
    # both edges, the lower one above the median, and a forecast after the
    # trend has slowed (no bias left) falls below that band most of the
    # time. A relative target's shifted band goes out to at least symmetric
    # CQR's edges: max(q_lo - y, y - q_hi), its ceil((n + 1) 0.8)-th
    # smallest, on both sides. The additive target next to it keeps its
    # one-sided offsets. (A band the offsets only widen keeps them too:
    # test_relative_offsets_scale_with_the_median_forecast.)
    rng = np.random.default_rng(1)
    n, h = 99, 2
    level = np.linspace(100, 200, n)[:, None] * np.ones(h)
    raw = np.stack([0.97 * level, level, 1.03 * level], axis=-1)  # (n, h, 3)
    noise = rng.standard_normal((n, h, 2))
    actual = level[..., None] * (1.06 + 0.02 * noise)  # (n, h, 2)
    forecasts = np.stack([raw, raw], axis=2)  # (n, h, 2, 3)
    levels = np.array([0.1, 0.5, 0.9])
    cal = BandCalibration(levels, rate=0.1).fit(forecasts, actual, relative=[True, False],
                                                floor=[1.0, 0.0])
    one_sided_relative = np.zeros((h, 3))
    for j, unit in ((0, level.mean(axis=1)), (1, np.ones(n))):
        for k in range(h):
            r = (actual[:, k, j, None] - raw[:, k]) / unit[:, None]  # (n, 3)
            one_sided = [np.sort(r[:, q])[conformal_rank(n, levels[q]) - 1] for q in (0, 2)]
            score = np.sort(np.maximum(-r[:, 0], r[:, 2]))[int(np.ceil((n + 1) * 0.8)) - 1]
            assert one_sided[0] > 0.03 * (1 if j == 0 else level.mean())  # above the median
            if j == 0:
                assert cal.offsets[k, j, 0] == min(one_sided[0], -score) == -score
                assert cal.offsets[k, j, 2] == max(one_sided[1], score)
                one_sided_relative[k, [0, 2]] = one_sided
            else:
                assert cal.offsets[k, j, 0] == one_sided[0]
                assert cal.offsets[k, j, 2] == one_sided[1]
    # The trend slows: the truth is the raw median's level, 2% noise.
    later = 300.0 * np.ones((n, h))
    later_raw = np.stack([0.97 * later, later, 1.03 * later], axis=-1)
    truth = later * (1 + 0.02 * rng.standard_normal((n, h)))
    band = cal.apply(np.stack([later_raw, later_raw], axis=2))[:, :, 0]  # (n, h, 3)
    band_one_sided = later_raw + one_sided_relative * later[..., None]
    inside = [np.mean((b[..., 0] <= truth) & (truth <= b[..., 2])) for b in (band, band_one_sided)]
    assert inside[0] >= 0.75 and inside[1] < 0.5, inside


def test_narrowed_relative_band_keeps_its_one_sided_offsets():
    # A raw band twice too wide, unbiased: the offsets move both edges in
    # (lower up, upper down), a narrowing and no shift, so the relative
    # target keeps them: the held-out truth falls below each edge as often
    # as its level says.
    rng = np.random.default_rng(2)
    n, h = 199, 2
    level = np.linspace(100, 200, n)[:, None] * np.ones(h)
    actual = (level * (1 + 0.05 * rng.standard_normal((n, h))))[..., None]  # (n, h, 1)
    forecasts = np.stack([0.87 * level, level, 1.13 * level], axis=-1)[:, :, None]
    cal = BandCalibration(np.array([0.1, 0.5, 0.9]), rate=0.1).fit(
        forecasts, actual, relative=[True], floor=[1.0])
    assert np.all(cal.offsets[:, 0, 0] > 0) and np.all(cal.offsets[:, 0, 2] < 0)
    below = (actual[..., None] <= cal.apply(forecasts)).mean(axis=0)  # (h, 1, 3)
    np.testing.assert_allclose(below[:, 0, 0], 0.1, atol=0.011)
    np.testing.assert_allclose(below[:, 0, 2], 0.9, atol=0.011)


def _as_before_issue_24(monkeypatch):
    """The band as it was: additive errors for every target."""
    monkeypatch.setattr(tsrnn._band_tracking, "level_scaled", lambda series, block: (False, 0.0))


def test_band_follows_a_trend_past_the_calibration_block(monkeypatch):
    # Trained on 500 rows, backtested on the next 400, over which the level
    # grows by a factor of five: additive offsets learned on the held-out
    # block, at a fifth of the test's level, covered 64%.
    df = growing(900)
    train, test = df.iloc[:500], df.iloc[500:]
    f = RNNForecaster(target="y", **QUICK).fit(train)
    assert f._calibration.relative.tolist() == [True]
    band = f.backtest(test).intervals.loc["0.1-0.9"]
    with monkeypatch.context() as m:
        _as_before_issue_24(m)
        before = RNNForecaster(target="y", **QUICK).fit(train).backtest(test)
    band_before = before.intervals.loc["0.1-0.9"]
    assert band_before["coverage"] < 0.70, band_before
    assert band["coverage"] >= 0.75, band
    assert band["interval_score"] < band_before["interval_score"]


def test_stationary_series_keeps_its_band(monkeypatch):
    # A positive series whose level does not move: Guerrero's rule keeps
    # additive errors, and the band is the one the forecaster gave before
    # issue 24, to the bit, from predict, the stream and the backtest.
    df = noisy_season(1600, 0.5) + 5.0
    train, test = df.iloc[:1200], df.iloc[1200:]
    f = RNNForecaster(target="y", **QUICK).fit(train)
    assert f._calibration.relative.tolist() == [False]
    with monkeypatch.context() as m:
        _as_before_issue_24(m)
        old = RNNForecaster(target="y", **QUICK).fit(train)
    np.testing.assert_array_equal(f._calibration.offsets, old._calibration.offsets)
    pd.testing.assert_frame_equal(f.predict(test.iloc[:100]), old.predict(test.iloc[:100]))
    for g in (f, old):
        g.update(test.iloc[:50])
    pd.testing.assert_frame_equal(f.predict(), old.predict())
    result, result_old = f.backtest(test.iloc[50:]), old.backtest(test.iloc[50:])
    pd.testing.assert_frame_equal(result.intervals, result_old.intervals)
    assert abs(result.intervals.loc["0.1-0.9", "coverage"] - 0.8) < 0.05


def test_relative_band_survives_pickling_and_streams():
    import pickle

    df = growing(700)
    f = RNNForecaster(target="y", **QUICK).fit(df.iloc[:500])
    assert f._calibration.relative.all()
    g = pickle.loads(pickle.dumps(f))
    pd.testing.assert_frame_equal(g.predict(), f.predict())
    for h in (f, g):
        h.update(df.iloc[500:560])
    pd.testing.assert_frame_equal(g.predict(), f.predict())
    forecast = f.predict()
    # The band is relative to the level it forecasts: wider than fit's
    # first forecast, at a level 27% higher.
    first = RNNForecaster(target="y", **QUICK).fit(df.iloc[:500]).predict()
    width = (forecast["y_q0.9"] - forecast["y_q0.1"]).mean()
    assert width > (first["y_q0.9"] - first["y_q0.1"]).mean()
    assert (forecast["y_q0.1"] <= forecast["y"]).all() and (forecast["y"] <= forecast["y_q0.9"]).all()


# ----------------------------------------------------------------------
# Which sensors matter
# ----------------------------------------------------------------------
def test_permutation_importance_ranks_the_informative_covariate_first():
    rng = np.random.default_rng(0)
    n = 900
    x = np.convolve(rng.standard_normal(n + 20), np.ones(5) / 5, "same")[:n]
    df = pd.DataFrame(
        {"y": np.roll(x, 2) + 0.05 * rng.standard_normal(n), "x": x,
         "noise": rng.standard_normal(n)},
        index=pd.date_range("2024-01-01", periods=n, freq="h"),
    )
    train, test = df.iloc[:700], df.iloc[700:]
    f = RNNForecaster(target="y", window=12, horizon=2, hidden_layer_sizes=8, max_iter=10,
                      random_state=0).fit(train)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = permutation_importance(f, test, test["y"], n_repeats=3, random_state=0)
    importance = dict(zip(test.columns, result.importances_mean))
    assert importance["x"] > 5 * max(importance["noise"], 0.01)
    assert importance["x"] > importance["noise"]


def test_score_with_true_targets_checks_them():
    df = noisy_season(300, 0.3)
    f = RNNForecaster(target="y", **QUICK).fit(df.iloc[:200])
    test = df.iloc[200:]
    assert f.score(test, test["y"]) == pytest.approx(f.score(test))
    with pytest.raises(InputError, match="same index as X"):
        f.score(test, test["y"].iloc[1:])
    with pytest.raises(TypeError, match="Series or DataFrame"):
        f.score(test, test["y"].to_numpy())
