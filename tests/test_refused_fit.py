"""A fit that raises leaves no model behind (issue 12, bug 1).

Before the fix, a refit of RNNForecaster refused for too few rows kept the
new frame's scaler next to the old weights, and predict() answered from that
half-updated model, up to 90 degrees off. Every estimator, for every reason a
fit can be refused (bad data, a warm start that would change the model, a
diverging loss), must end unfitted: predict raises NotFittedError. A
partial_fit whose data are refused before training starts keeps its model
unchanged instead, as a stream of minibatches expects; one that diverges
while training drops it.
"""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from tsrnn import RNNClassifier, RNNForecaster, RNNRegressor
from tsrnn.datasets import load_weather
from tsrnn.exceptions import InputError, TrainingError

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

SMALL = dict(hidden_layer_sizes=(4,), window=4, max_iter=2, random_state=0)


@pytest.fixture(scope="module")
def weather():
    return load_weather()[["temp_air", "dew_point"]].iloc[:2000]


def _stream(n=60):
    rng = np.random.RandomState(0)
    X = rng.randn(n, 3)
    return X, X[:, 0] + 0.1 * rng.randn(n)


def test_forecaster_refit_on_too_few_rows_drops_the_old_model(weather):
    # The example of the issue, verbatim.
    f = RNNForecaster(target="temp_air", window=24, horizon=6, max_iter=2,
                      random_state=0).fit(weather)
    assert np.isfinite(f.predict(weather).to_numpy()).all()
    with pytest.raises(InputError, match="Too few rows to train"):
        f.fit((weather * 100 + 1000).iloc[:20])
    with pytest.raises(NotFittedError, match="not fitted yet"):
        f.predict(weather)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        f.backtest(weather)
    assert not hasattr(f, "n_features_in_") and not hasattr(f, "loss_curve_")


@pytest.mark.parametrize(
    "make_bad, error, match",
    [
        (lambda w: w.iloc[:20], InputError, "Too few rows"),
        (lambda w: w.assign(temp_air=w["temp_air"].where(w.index.hour != 5)),
         InputError, "missing value"),
        (lambda w: w.drop(columns="temp_air"), InputError, "target column 'temp_air'"),
        (lambda w: w.iloc[::-1], InputError, "not sorted"),
        (lambda w: w["temp_air"], TypeError, "must be a pandas DataFrame"),
    ],
    ids=["too-few-rows", "gap", "no-target", "unsorted", "not-a-frame"],
)
def test_forecaster_every_refused_refit_leaves_it_unfitted(weather, make_bad, error, match):
    f = RNNForecaster(target="temp_air", window=24, horizon=6, max_iter=1,
                      random_state=0).fit(weather)
    with pytest.raises(error, match=match):
        f.fit(make_bad(weather))
    with pytest.raises(NotFittedError, match="not fitted yet"):
        f.predict()


def test_forecaster_divergence_leaves_it_unfitted(weather):
    f = RNNForecaster(target="temp_air", window=24, horizon=6, max_iter=1,
                      random_state=0).fit(weather)
    with warnings.catch_warnings():
        # Divergence is reported once, in words, not by numpy's overflow warnings.
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(TrainingError, match="Training diverged"):
            f.set_params(learning_rate_init=1e38, max_grad_norm=None).fit(weather)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        f.predict()


@pytest.mark.parametrize("Estimator", [RNNRegressor, RNNClassifier])
def test_array_estimator_refit_on_bad_data_drops_the_old_model(Estimator):
    X, y = _stream()
    y = y if Estimator is RNNRegressor else y > 0
    est = Estimator(**SMALL).fit(X, y)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        est.fit(np.where(X > 1, np.nan, X), y)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        est.predict(X)


@pytest.mark.parametrize("Estimator", [RNNRegressor, RNNClassifier])
def test_refused_warm_start_drops_the_old_model(Estimator):
    X, y = _stream()
    y = y if Estimator is RNNRegressor else y > 0
    est = Estimator(warm_start=True, **SMALL).fit(X, y)
    est.set_params(hidden_layer_sizes=(5,))
    with pytest.raises(ValueError, match="must keep cell, hidden_layer_sizes"):
        est.fit(X, y)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        est.predict(X)


def test_regressor_divergence_drops_the_old_model():
    X, y = _stream()
    reg = RNNRegressor(dtype=np.float64, **SMALL).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(TrainingError, match="Training diverged"):
            reg.fit(X, y * 1e200)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        reg.predict(X)


def test_partial_fit_refused_before_training_keeps_the_model():
    X, y = _stream()
    reg = RNNRegressor(**SMALL).partial_fit(X, y)
    before, weights = reg.predict(X), reg._flat.copy()
    with pytest.raises(ValueError, match="X has 2 features"):
        reg.partial_fit(X[:, :2], y)
    assert_array_equal(reg._flat, weights)
    assert_array_equal(reg.predict(X), before)


def test_partial_fit_that_diverges_drops_the_model():
    X, y = _stream()
    reg = RNNRegressor(dtype=np.float64, **SMALL).partial_fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.raises(TrainingError, match="Training diverged"):
            reg.partial_fit(X, y * 1e200)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        reg.predict(X)
