"""Fleets (issue 21): the training budget, per-series scaling, early_stopping=False.

* ``_sampling.py``: equal shares per series (a short series gives all it
  has), distinct windows spread over each series' time, a pure function of
  (seed, epoch, sizes, budget); the held-out sample is fixed and capped;
* a budget above the training origins changes nothing, bitwise; a binding
  one trains ``max_windows_per_epoch`` windows an epoch, the same model for
  the same ``random_state`` at 1 and 2 threads, and caps the held-out block;
* ``RNNRegressor`` on a 2-D stream (and ``RNNClassifier`` on a 3-D batch)
  takes the same budget;
* ``scaling="series"``: a panel whose series are multiplied by ``10**k``
  (k = -3 .. 3) and shifted is forecast, series by series, as accurately as
  the unscaled one (within 2%); ``scaling="global"`` is not;
* ``early_stopping=False`` keeps the trained network;
* ``benchmarks/bench_fleet.py --quick`` runs.
"""
import os
import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_array_equal
from threadpoolctl import threadpool_limits

import tsrnn
from tsrnn import RNNForecaster, RNNRegressor
from tsrnn._sampling import epoch_sample, fixed_sample, series_groups
from tsrnn.datasets import load_weather

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = dict(window=12, horizon=4, hidden_layer_sizes=8, max_iter=2, random_state=0,
             quantiles=None)


def _series_of(idx, groups):
    return np.searchsorted(np.cumsum(groups), idx, side="right")


# ----------------------------------------------------------------------
# The sampler
# ----------------------------------------------------------------------
def test_equal_shares_distinct_windows_and_a_short_series_gives_all():
    groups = np.array([3, 100, 1000, 0, 5000])
    for budget in (10, 500, 2000, 6102):
        idx = epoch_sample(groups, budget, seed=1, epoch=0)
        assert len(idx) == budget and len(np.unique(idx)) == budget
        per_series = np.bincount(_series_of(idx, groups), minlength=5)
        assert per_series[3] == 0
        # No series gets more than its size; the ones below it differ by <= 1.
        assert (per_series <= groups).all()
        open_ = per_series < groups
        if open_.any():
            assert per_series[open_].max() - per_series[open_].min() <= 1
            assert (per_series[~open_] <= per_series[open_].min() + 1).all()
    # 500: the short series gives all 3, the 100-window one all 100, the rest
    # share 397 equally.
    per_series = np.bincount(_series_of(epoch_sample(groups, 500, 1, 0), groups), minlength=5)
    assert per_series[:2].tolist() == [3, 100] and sorted(per_series[2:]) == [0, 198, 199]
    # Within budget: every item once.
    assert_array_equal(np.sort(epoch_sample(groups, 10**6, 1, 0)), np.arange(groups.sum()))


def test_windows_are_spread_over_each_series_time():
    groups = np.array([1000, 400])
    idx = np.sort(epoch_sample(groups, 200, seed=3, epoch=5, shuffle=False))
    first = idx[idx < 1000]
    # 100 draws from 1,000 windows: one in each run of 10.
    assert_array_equal(first // 10, np.arange(100))
    second = idx[idx >= 1000] - 1000
    assert_array_equal(second // 4, np.arange(100))


def test_the_sample_is_a_pure_function_of_seed_epoch_and_sizes():
    groups = [50, 70, 20]
    a = epoch_sample(groups, 60, seed=4, epoch=2)
    assert_array_equal(a, epoch_sample(list(groups), 60, seed=4, epoch=2))
    np.random.seed(0)  # global state plays no part
    assert_array_equal(a, epoch_sample(np.array(groups), 60, seed=4, epoch=2))
    assert not np.array_equal(a, epoch_sample(groups, 60, seed=4, epoch=3))
    assert not np.array_equal(a, epoch_sample(groups, 60, seed=5, epoch=2))
    assert_array_equal(np.sort(a), np.sort(epoch_sample(groups, 60, 4, 2, shuffle=False)))


def test_fixed_sample_is_deterministic_equal_and_evenly_spaced():
    groups = [10, 10, 2]
    idx = fixed_sample(groups, 8)
    assert_array_equal(idx, fixed_sample(groups, 8))
    assert np.bincount(_series_of(idx, groups)).tolist() == [3, 3, 2]
    assert_array_equal(idx[:3], [0, 3, 6])
    assert_array_equal(fixed_sample(groups, 100), np.arange(22))


def test_series_groups():
    assert series_groups(np.array([3, 4, 12, 13, 14]), [0, 10, 20]).tolist() == [2, 3, 0]


# ----------------------------------------------------------------------
# The budget in the fit path
# ----------------------------------------------------------------------
def _panel(n_series=4, n=240):
    frames = []
    weather = load_weather()[["temp_air", "dew_point"]]
    for k in range(n_series):
        f = weather.iloc[500 * k : 500 * k + n].copy()
        f.insert(0, "site", f"s{k}")
        frames.append(f)
    return pd.concat(frames)


def test_a_budget_above_the_origins_changes_nothing_bitwise():
    single = load_weather()[["temp_air", "dew_point"]].iloc[:300]
    for X, extra in ((single, {}), (_panel(), {"series_id": "site"})):
        f = RNNForecaster(target="temp_air", **SMALL, **extra)
        n_origins = f.fit(X).t_ // f.n_iter_
        ref = RNNForecaster(target="temp_air", max_windows_per_epoch=None, **SMALL,
                            **extra).fit(X)
        at = RNNForecaster(target="temp_air", max_windows_per_epoch=n_origins, **SMALL,
                           **extra).fit(X)
        for other in (f, at):
            assert_array_equal(other._flat, ref._flat)
            assert other.loss_curve_ == ref.loss_curve_
            pd.testing.assert_frame_equal(other.predict(), ref.predict())


def test_a_binding_budget_trains_that_many_windows_and_caps_the_held_out_block():
    X = _panel()
    f = RNNForecaster(target="temp_air", series_id="site", max_windows_per_epoch=40,
                      **SMALL).fit(X)
    assert f.t_ == 40 * f.n_iter_
    full = RNNForecaster(target="temp_air", series_id="site", max_windows_per_epoch=None,
                         **SMALL).fit(X)
    assert full.t_ // full.n_iter_ > 500
    assert not np.array_equal(f._flat, full._flat)
    # The held-out sample: at most the budget, equal shares per series.
    _, _, val = f._prepare_fit(X, None, first_pass=False, incremental=False, classes=None)
    origins = val[0].origins
    assert len(origins) == 40
    per_series = np.bincount(np.searchsorted(np.arange(4) * 240, origins, side="right") - 1)
    assert per_series.tolist() == [10, 10, 10, 10]


def test_patience_starts_after_one_pass_over_the_windows():
    # tol=1e9: no epoch counts as an improvement, so patience alone stops.
    X = _panel()
    params = dict(target="temp_air", series_id="site", **{**SMALL, "max_iter": 60},
                  n_iter_no_change=1, tol=1e9)
    unbudgeted = RNNForecaster(max_windows_per_epoch=None, **params).fit(X)
    assert unbudgeted.n_iter_ == 2  # every epoch a pass: stops as MLP does
    n_windows = unbudgeted.t_ // unbudgeted.n_iter_
    budget = 40
    sampled = RNNForecaster(max_windows_per_epoch=budget, **params).fit(X)
    # 40-window epochs: patience waits until they add up to one pass.
    assert sampled.n_iter_ == -(-n_windows // budget) > 10
    # A budget that binds by little is a pass in 2 epochs: as before.
    assert RNNForecaster(max_windows_per_epoch=n_windows - 1, **params).fit(X).n_iter_ == 2
    # The regressor's stream, stopped on its training loss: the same rule.
    rng = np.random.default_rng(0)
    Xs = rng.standard_normal((400, 3))
    stream = dict(window=8, hidden_layer_sizes=4, max_iter=60, random_state=0,
                  n_iter_no_change=1, tol=1e9)
    # (The first epoch improves on an infinite loss.)
    assert RNNRegressor(**stream).fit(Xs, Xs[:, 0]).n_iter_ == 3
    # 393 windows in 50-window epochs: 8 to a pass.
    assert RNNRegressor(max_windows_per_epoch=50, **stream).fit(Xs, Xs[:, 0]).n_iter_ == 8


def test_same_random_state_same_model_at_1_and_2_threads_under_a_budget(threads_used):
    X = _panel()
    params = dict(target="temp_air", series_id="site", max_windows_per_epoch=192,
                  batch_size=64, window=12, horizon=4, hidden_layer_sizes=(32, 16),
                  max_iter=2, quantiles=None)
    out = []
    for threads in (1, 2):
        threads_used.clear()
        with threadpool_limits(threads, user_api="openmp"):
            assert tsrnn.max_threads() == threads
            f = RNNForecaster(random_state=3, **params).fit(X)
            out.append((f._flat.copy(), f.predict().to_numpy()))
        assert max(threads_used) == threads
    assert_array_equal(out[0][0], out[1][0])
    assert_array_equal(out[0][1], out[1][1])
    other = RNNForecaster(random_state=4, **params).fit(X)
    assert not np.array_equal(other._flat, out[0][0])


def test_regressor_stream_takes_the_same_budget():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 3))
    y = np.roll(X[:, 0], 2)
    params = dict(window=8, hidden_layer_sizes=4, max_iter=3, random_state=0)
    ref = RNNRegressor(**params).fit(X, y)
    same = RNNRegressor(max_windows_per_epoch=393, **params).fit(X, y)
    assert_array_equal(same._flat, ref._flat)  # 393 windows: within budget
    capped = RNNRegressor(max_windows_per_epoch=50, **params).fit(X, y)
    # Each epoch: the prefix's 7 rows and 50 windows.
    assert capped.t_ == 3 * (7 + 50)
    assert not np.array_equal(capped._flat, ref._flat)
    again = RNNRegressor(max_windows_per_epoch=50, **params).fit(X, y)
    assert_array_equal(again._flat, capped._flat)
    # partial_fit: one epoch of the budget per call, a fresh draw each time
    # (the epoch number is n_iter_).
    g = RNNRegressor(max_windows_per_epoch=50, **params)
    g.partial_fit(X, y)
    first = g._flat[0].copy()
    g.partial_fit(X, y)
    assert g.t_ == 2 * (7 + 50) and not np.array_equal(g._flat[0], first)


def test_a_batch_of_sequences_takes_the_same_budget():
    from tsrnn import RNNClassifier

    rng = np.random.default_rng(1)
    X = rng.standard_normal((30, 6, 2))
    y = (X[:, -1, 0] > 0).astype(int)
    params = dict(hidden_layer_sizes=4, max_iter=3, random_state=0)
    capped = RNNClassifier(max_windows_per_epoch=10, **params).fit(X, y)
    assert capped.t_ == 3 * 10
    full = RNNClassifier(max_windows_per_epoch=30, **params).fit(X, y)
    assert_array_equal(full._flat, RNNClassifier(**params).fit(X, y)._flat)
    assert not np.array_equal(capped._flat, full._flat)


def test_early_stopping_false_keeps_the_trained_network():
    X = load_weather()[["temp_air", "dew_point"]].iloc[:400]
    f = RNNForecaster(target="temp_air", early_stopping=False, **SMALL).fit(X)
    head = f._views()["head.weight"]
    assert np.abs(head).max() > 0  # trained, not the untrained (zero) head
    assert f.validation_scores_ is None and f.n_iter_ == SMALL["max_iter"]


# ----------------------------------------------------------------------
# Per-series scaling
# ----------------------------------------------------------------------
def _scaled_panel():
    """7 series from the weather; and the same, series k times 10**(k-3), shifted."""
    weather = load_weather()[["temp_air", "dew_point"]]
    plain, scaled, factors = [], [], {}
    for k in range(7):
        f = weather.iloc[1000 * k : 1000 * k + 400].copy()
        f.insert(0, "site", f"s{k}")
        plain.append(f)
        factor, shift = 10.0 ** (k - 3), 1000.0 * (k - 3)
        g = f.copy()
        g[["temp_air", "dew_point"]] = g[["temp_air", "dew_point"]] * factor + shift
        scaled.append(g)
        factors[f"s{k}"] = factor
    return pd.concat(plain), pd.concat(scaled), factors


def _per_series_mae(f, X, n_train):
    train = X.groupby("site").head(n_train)
    test = X.groupby("site").tail(len(X) // 7 - n_train)
    f.fit(train)
    forecasts = f.backtest(test, stride=4).forecasts
    err = (forecasts["forecast"] - forecasts["actual"]).abs()
    return err.groupby(forecasts["site"]).mean()


def test_series_scaled_by_powers_of_ten_and_shifted_forecast_alike():
    plain, scaled, factors = _scaled_panel()
    params = dict(target="temp_air", series_id="site", window=24, horizon=6,
                  hidden_layer_sizes=8, max_iter=3, random_state=0, quantiles=None)
    ref = _per_series_mae(RNNForecaster(**params), plain, 300)
    got = _per_series_mae(RNNForecaster(**params), scaled, 300)
    ratio = got / pd.Series(factors) / ref
    assert ((ratio - 1).abs() < 0.02).all(), ratio
    # One global scaler cannot: the small series drown (float32 inputs).
    glob = _per_series_mae(RNNForecaster(scaling="global", **params), scaled, 300)
    assert ((glob / pd.Series(factors) / ref - 1).abs() > 0.02).any()


def test_series_scales_attribute_and_streaming_use_them():
    _, scaled, factors = _scaled_panel()
    f = RNNForecaster(target="temp_air", series_id="site", **SMALL).fit(scaled)
    table = f.series_scales_
    assert list(table.index) == [f"s{k}" for k in range(7)]
    ratios = table[("scale", "temp_air")] / pd.Series(factors)
    assert ratios.max() / ratios.min() < 2  # each series' own spread
    # update(): the new rows of a series are scaled with its statistics, so
    # predict() after update() is what predict(X) gives on the same history.
    rows = []
    for _, last in scaled.groupby("site", sort=False):
        last = last.iloc[-1:]
        for i in (1, 2):
            r = last.copy()
            r.index = r.index + pd.Timedelta(hours=i)
            r[["temp_air", "dew_point"]] *= 1 + 0.01 * i
            rows.append(r)
    new = pd.concat(rows)
    f.update(new)
    history = pd.concat([scaled, new])
    history = pd.concat([g for _, g in history.groupby("site", sort=False)])
    pd.testing.assert_frame_equal(f.predict(), f.predict(history), rtol=1e-5)
    # A pickled forecaster keeps each series' statistics.
    again = pickle.loads(pickle.dumps(f))
    pd.testing.assert_frame_equal(again.series_scales_, f.series_scales_)
    pd.testing.assert_frame_equal(again.predict(history), f.predict(history))
    assert RNNForecaster(target="temp_air", series_id="site", scaling="global",
                         **SMALL).fit(scaled).series_scales_ is None


def test_the_scaler_is_fitted_block_by_block_on_a_fleet(monkeypatch):
    from sklearn.preprocessing import StandardScaler

    import tsrnn._windows

    X = _panel()
    values = X[["temp_air", "dew_point"]].to_numpy()
    params = dict(target="temp_air", series_id="site", **SMALL, max_windows_per_epoch=50)
    # Fewer rows than a block: exactly StandardScaler().fit, as before.
    one = StandardScaler().fit(values)
    f = RNNForecaster(**params).fit(X)
    assert_array_equal(f.scaler_.mean_, one.mean_)
    assert_array_equal(f.scaler_.var_, one.var_)
    # Blocks of at least 300 rows (here two series each): the same moments.
    monkeypatch.setattr(tsrnn._windows, "_SCALER_BLOCK_ROWS", 300)
    g = RNNForecaster(**params).fit(X)
    np.testing.assert_allclose(g.scaler_.mean_, one.mean_, rtol=1e-12)
    np.testing.assert_allclose(g.scaler_.var_, one.var_, rtol=1e-12)
    assert int(g.scaler_.n_samples_seen_) == len(X)


def test_the_backtest_replays_a_fleet_in_blocks_of_series(monkeypatch):
    import tsrnn._band_tracking

    X = _panel(n=300)
    train, test = X.groupby("site").head(240), X.groupby("site").tail(60)
    f = RNNForecaster(target="temp_air", series_id="site", window=12, horizon=4,
                      hidden_layer_sizes=8, max_iter=2, random_state=0).fit(train)
    assert f._tracks_in_backtest()  # the backtest replays the stream
    whole = f.backtest(test, stride=3)
    # Blocks of at most 50 forecasts: every series (more origins) alone.
    monkeypatch.setattr(tsrnn._band_tracking, "_REPLAY_BLOCK", 50)
    blocks = f.backtest(test, stride=3)
    pd.testing.assert_frame_equal(blocks.forecasts, whole.forecasts, rtol=1e-6)
    pd.testing.assert_frame_equal(blocks.intervals, whole.intervals, rtol=1e-6)


def test_bench_fleet_builds_sensors_of_their_own_level_and_scale():
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    try:
        import bench_fleet
    finally:
        sys.path.pop(0)
    frame = bench_fleet.make_fleet(6, n_rows=300, seed=1)
    assert frame.shape == (1800, 4) and frame["sensor"].nunique() == 6
    assert (frame.groupby("sensor").size() == 300).all()
    spread = frame.groupby("sensor")["temp_air"].std()
    level = frame.groupby("sensor")["temp_air"].mean()
    assert spread.max() / spread.min() > 2 and level.max() - level.min() > 10
    train, week = bench_fleet.split_last_week(frame, 300)
    assert len(week) == 6 * bench_fleet.WEEK and len(train) == 6 * (300 - bench_fleet.WEEK)


def test_bench_fleet_quick():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "bench_fleet.py"), "--quick",
         "--threads", "1"],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| sensors | training rows |" in proc.stdout
    assert "| 20 | 4,640 |" in proc.stdout
