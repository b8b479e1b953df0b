"""What early stopping scores on the forecaster's held-out block.

The network's head starts at zero, so the untrained model is the learned
baseline, with every quantile on the baseline's forecast. Early stopping
scores the point forecast only (the median head when there is one): scoring
every head let any epoch that widened the band beat the untrained model,
however much it moved the median (``_forecast_heads.py``).
"""
import numpy as np
import pytest

from tsrnn import RNNForecaster

QUANTILES = [0.1, 0.5, 0.9]


def forecaster(heads, horizon=3):
    model = RNNForecaster(horizon=horizon)
    model._head_levels = list(heads)
    return model


def outputs(*per_head):
    """Head outputs (n, horizon * n_targets * n_heads) from one (n, horizon) array per head."""
    return np.stack(per_head, axis=-1).reshape(len(per_head[0]), -1)


@pytest.fixture
def block():
    rng = np.random.default_rng(0)
    Y = rng.standard_normal((40, 3))  # targets: changes from the baseline
    median = 0.5 * Y + 0.1 * rng.standard_normal(Y.shape)
    return Y, median


def test_only_the_median_head_is_scored(block):
    Y, median = block
    model = forecaster(QUANTILES)
    narrow = model._validation_score(outputs(median, median, median), Y)
    wide = model._validation_score(outputs(median - 1, median, median + 1), Y)
    absurd = model._validation_score(outputs(median + 50, median, median - 50), Y)
    assert narrow == wide == absurd
    # ... and it is minus the median's pinball loss: half its absolute error,
    # averaged over the outputs, per origin.
    assert narrow == pytest.approx(-0.5 * np.mean(np.abs(Y - median)))
    # The median alone decides: perfect scores 0, shifted scores worse.
    assert model._validation_score(outputs(median, Y, median), Y) == 0
    assert model._validation_score(outputs(median, median + 1, median), Y) < narrow


def test_the_untrained_model_scores_as_the_baselines_point_forecast(block):
    Y, _ = block
    model = forecaster(QUANTILES)
    zero = np.zeros_like(Y)
    untrained = model._validation_score(outputs(zero, zero, zero), Y)
    assert untrained == pytest.approx(-0.5 * np.mean(np.abs(Y)))
    # An epoch that only widens the band does not beat it.
    assert model._validation_score(outputs(zero - 1, zero, zero + 1), Y) == untrained


def test_without_a_median_every_quantile_is_scored(block):
    Y, median = block
    model = forecaster([0.1, 0.9])
    narrow = model._validation_score(outputs(median, median), Y)
    wide = model._validation_score(outputs(median - 1, median + 1), Y)
    assert wide != narrow


def test_a_mean_head_is_scored_by_its_squared_error(block):
    Y, mean = block
    model = forecaster([None])
    assert model._validation_score(outputs(mean), Y) == pytest.approx(
        -0.5 * np.mean((Y - mean) ** 2))


def test_weights_weigh_the_origins(block):
    Y, median = block
    model = forecaster(QUANTILES)
    Z = outputs(median - 1, median, median + 1)
    w = np.r_[np.ones(20), np.zeros(20)]
    assert model._validation_score(Z, Y, w) == pytest.approx(
        model._validation_score(Z[:20], Y[:20]))


def test_training_still_fits_every_head(block):
    # Only the validation score reads the median alone; the loss trains all.
    Y, median = block
    model = forecaster(QUANTILES)
    _, grad = model._loss(outputs(median - 1, median, median + 1), Y)
    grad = grad.reshape(len(Y), 3, 3)
    assert np.all(grad[..., 0] != 0) and np.all(grad[..., 2] != 0)
