"""Where the forecaster's network starts, and when its point correction is kept.

The untrained model is the learned baseline with a band of the baseline's own
training errors; after training, the network's correction of the point
forecast stays only if it beats the baseline on the held-out block by more
than the block's noise (``_forecast_heads.py``).
"""
import types

import numpy as np
import pandas as pd
import pytest

from tsrnn import RNNForecaster

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

QUICK = dict(window=24, horizon=6, hidden_layer_sizes=8, random_state=0)


def hourly(y, start="2024-01-01"):
    return pd.DataFrame({"y": y}, index=pd.date_range(start, periods=len(y), freq="h"))


def random_walk(n, seed=0):
    return hourly(np.cumsum(np.random.default_rng(seed).standard_normal(n)))


def untrained(**params):
    """A forecaster whose one epoch cannot move the weights it started from."""
    return RNNForecaster(max_iter=1, learning_rate_init=1e-12, early_stopping=False,
                         calibration=None, **QUICK, **params)


def windows_of(y, window, horizon):
    """(inputs ending at each origin, the ``horizon`` values after it)."""
    origins = np.arange(window - 1, len(y) - horizon)
    future = y[origins[:, None] + np.arange(1, horizon + 1)]
    return origins, future


# ----------------------------------------------------------------------
# The starting band
# ----------------------------------------------------------------------
def test_head_starts_at_the_baselines_training_error_quantiles():
    frame = random_walk(600)
    model = untrained(baseline="persistence", quantiles=(0.1, 0.5, 0.9)).fit(frame)
    y = frame["y"].to_numpy()
    origins, future = windows_of(y, model.window_, model.horizon)
    errors = (future - y[origins, None]) / model.scaler_.scale_[0]  # scaled units
    bias = model.head_bias_.reshape(model.horizon, 3)
    # Fit origins only (the held-out block is not trained on): their
    # quantiles, not those of every window, but close for a random walk.
    np.testing.assert_allclose(bias[:, 0], np.quantile(errors, 0.1, axis=0), atol=0.1)
    np.testing.assert_allclose(bias[:, 2], np.quantile(errors, 0.9, axis=0), atol=0.1)
    # The spread grows with the step, as a random walk's does.
    assert np.all(np.diff(bias[:, 2] - bias[:, 0]) > 0)
    np.testing.assert_allclose(bias[:, 1], 0, atol=1e-9)  # the median is the baseline's
    np.testing.assert_allclose(model.head_weight_, 0, atol=1e-9)


def test_untrained_band_covers_the_training_span_as_its_levels_say():
    frame = random_walk(800, seed=1)
    model = untrained(baseline="persistence", quantiles=(0.1, 0.5, 0.9)).fit(frame)
    fc = model.backtest(frame).forecasts
    inside = (fc["forecast_q0.1"] <= fc["actual"]) & (fc["actual"] <= fc["forecast_q0.9"])
    assert inside.mean() == pytest.approx(0.8, abs=0.03)
    # The median is persistence itself.
    np.testing.assert_allclose(fc["forecast"], fc["persistence"], atol=1e-4)


def test_mean_head_starts_at_zero():
    model = untrained(baseline="persistence", quantiles=None).fit(random_walk(400))
    np.testing.assert_allclose(model.head_bias_, 0, atol=1e-9)


# ----------------------------------------------------------------------
# Keeping the point correction
# ----------------------------------------------------------------------
def judge(gain_per_origin, horizon, weights=None):
    """``_point_correction_helps`` on a held-out block whose baseline errs by 1.

    ``gain_per_origin`` (n,) is how much closer than the baseline the point
    head is at every step of each origin.
    """
    n = len(gain_per_origin)
    model = RNNForecaster(horizon=horizon)
    model._head_levels = [0.1, 0.5, 0.9]
    Y = np.ones((n, horizon))  # targets as changes from the baseline
    Z = np.repeat(np.asarray(gain_per_origin, float)[:, None], horizon, axis=1)
    outputs = np.stack([Z - 1, Z, Z + 1], axis=-1).reshape(n, -1)
    model._predict_validation = lambda windows: outputs
    return model._point_correction_helps((types.SimpleNamespace(), Y, weights))


def test_correction_is_kept_when_it_beats_the_baseline_beyond_the_noise():
    rng = np.random.default_rng(0)
    assert judge(0.3 + 0.1 * rng.standard_normal(120), horizon=6)


def test_correction_is_dropped_when_its_gain_is_noise():
    rng = np.random.default_rng(0)
    gain = 0.3 * rng.standard_normal(120)
    gain -= gain.mean() - 0.01  # a positive mean, far inside one standard error
    assert not judge(gain, horizon=6)


def test_correction_is_dropped_when_the_block_is_too_short_to_judge():
    # Fewer than two horizons of origins: not one clear gain.
    assert not judge(np.full(11, 0.5), horizon=6)
    assert judge(np.full(12, 0.5) + np.linspace(0, 0.01, 12), horizon=6)


def test_weights_count_in_the_judgement():
    gain = np.r_[np.full(60, 0.5), np.full(60, -0.6)]
    assert not judge(gain, horizon=6)
    weights = np.r_[np.ones(60), np.zeros(60)]
    assert judge(gain, horizon=6, weights=weights)


def test_a_random_walk_keeps_persistence_as_its_point_forecast():
    # Nothing forecasts a random walk better than its last value: the
    # network's correction is noise, and the point forecast is persistence.
    frame = random_walk(1500, seed=3)
    model = RNNForecaster(baseline="persistence", max_iter=10, **QUICK).fit(frame)
    assert model.point_correction_ is False
    fc = model.predict()
    np.testing.assert_allclose(fc["y"], frame["y"].iloc[-1], atol=1e-4)
    # The band still comes from the trained quantile heads, calibrated.
    assert (fc["y_q0.9"] > fc["y_q0.1"]).all()


def test_a_mean_reverting_series_keeps_the_correction():
    # Persistence is a poor forecast of white noise around a daily cycle;
    # the network's correction clearly beats it on held-out time.
    t = np.arange(1500)
    y = np.sin(2 * np.pi * t / 24) + 0.3 * np.random.default_rng(4).standard_normal(len(t))
    model = RNNForecaster(baseline="persistence", max_iter=10, **QUICK).fit(hourly(y))
    assert model.point_correction_ is True
    assert model.head_weight_.any()


def test_no_heldout_block_keeps_the_correction():
    model = RNNForecaster(early_stopping=False, calibration=None, max_iter=2,
                          **QUICK).fit(random_walk(300))
    assert model.point_correction_ is True


def test_newey_west_variance():
    from tsrnn._forecast_heads import _newey_west_variance

    x = np.random.default_rng(0).standard_normal(500)
    assert _newey_west_variance(x, 0) == pytest.approx(np.var(x))
    # Each value repeated 6 times (as overlapping 6-step forecasts share
    # their errors): the long-run variance of the mean is about 6x larger.
    blocks = np.repeat(x[:100], 6)
    ratio = _newey_west_variance(blocks, 5) / np.var(blocks)
    assert 3 < ratio < 6.5
