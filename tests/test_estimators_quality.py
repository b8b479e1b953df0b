"""The estimators learn real temporal structure, judged on held-out data.

Every split is chronological: the model is fitted on the first part of a
series and scored on the rows (or sequences) that come after it.
"""

import numpy as np
import pytest

from tsrnn._classifier import RNNClassifier
from tsrnn._regressor import RNNRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def multisine_forecast_task(n, horizon=5, seed=0):
    """Two noisy sensors of a three-period signal; y_t = the clean signal at t + horizon.

    Persistence (predicting the sensor's current value) is the baseline any
    forecaster has to beat; it ignores the periodic structure the window shows.
    """
    rng = np.random.RandomState(seed)
    t = np.arange(n + horizon)
    signal = (
        np.sin(2 * np.pi * t / 23)
        + 0.6 * np.sin(2 * np.pi * t / 7.3 + 1)
        + 0.3 * np.sin(2 * np.pi * t / 51)
    )
    X = np.c_[
        signal + 0.05 * rng.randn(len(t)),
        np.cos(2 * np.pi * t / 23) + 0.05 * rng.randn(len(t)),
    ][:n]
    return X, signal[horizon:]


@pytest.mark.parametrize("cell", ["lstm", "gru", "peephole"])
def test_regressor_beats_persistence_on_future_rows(cell):
    X, y = multisine_forecast_task(700)
    split = 500
    reg = RNNRegressor(
        cell=cell, hidden_layer_sizes=(16,), window=16, max_iter=25, random_state=0
    ).fit(X[:split], y[:split])
    # Predict the whole stream so held-out rows keep their full window.
    pred = reg.predict(X)[split:]
    mse = np.mean((pred - y[split:]) ** 2)
    persistence = np.mean((X[split:, 0] - y[split:]) ** 2)
    assert mse < 0.2 * persistence, (mse, persistence)


def nonlinear_autoregressive_stream(n, seed=0):
    """x_t = 0.4 x_{t-1} - 0.8 tanh(x_{t-2} x_{t-3}) + e_t, e ~ N(0, 0.3^2); y_t = x_{t+1}."""
    rng = np.random.RandomState(seed)
    x = np.zeros(n + 4)
    noise = 0.3 * rng.randn(n + 4)
    for t in range(3, n + 4):
        x[t] = 0.4 * x[t - 1] - 0.8 * np.tanh(x[t - 2] * x[t - 3]) + noise[t]
    return x[3:-1, None], x[4:]


def test_regressor_learns_nonlinear_autoregression():
    X, y = nonlinear_autoregressive_stream(1500)
    split = 1000
    reg = RNNRegressor(
        hidden_layer_sizes=(16,), window=6, max_iter=20, random_state=0
    ).fit(X[:split], y[:split])
    mse = np.mean((reg.predict(X)[split:] - y[split:]) ** 2)
    persistence = np.mean((X[split:, 0] - y[split:]) ** 2)
    # The best linear AR(3) model, fitted by least squares on the same rows:
    # the RNN must also capture the tanh(x x) interaction it cannot.
    lags = np.hstack([X[2:-1], X[1:-2], X[:-3], np.ones((len(X) - 3, 1))])
    coef = np.linalg.lstsq(lags[: split - 3], y[2 : split - 1], rcond=None)[0]
    linear = np.mean((lags[split - 2 :] @ coef - y[split:-1]) ** 2)
    assert mse < 0.75 * persistence, (mse, persistence)
    assert mse < linear, (mse, linear)


def peak_before_trough(n, n_steps=20, seed=0):
    """Noise plus one +2 spike and one -2 spike at random distinct steps.

    The class says which spike comes first. Both classes have the same
    mean, variance and set of values, so only the order tells them apart.
    """
    rng = np.random.RandomState(seed)
    X = 0.3 * rng.randn(n, n_steps, 1)
    peak = rng.randint(0, n_steps, n)
    trough = (peak + rng.randint(1, n_steps, n)) % n_steps
    X[np.arange(n), peak, 0] += 2.0
    X[np.arange(n), trough, 0] -= 2.0
    return X, np.where(peak < trough, "peak first", "trough first")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_classifier_learns_order_of_events_in_sequences(cell):
    X, y = peak_before_trough(500)
    clf = RNNClassifier(
        cell=cell, hidden_layer_sizes=(16,), max_iter=30, random_state=0
    ).fit(X[:350], y[:350])
    # A bag-of-values model cannot beat chance here: both classes hold the
    # same values, only in a different order.
    assert abs(np.mean(y[350:] == "peak first") - 0.5) < 0.1
    assert clf.score(X[350:], y[350:]) > 0.85


def test_classifier_on_a_stream_learns_direction_of_recent_change():
    """Label of row t: is the sensor higher than 3 rows ago? Needs the window."""
    rng = np.random.RandomState(0)
    t = np.arange(1200)
    x = np.sin(2 * np.pi * t / 17) + 0.5 * np.sin(2 * np.pi * t / 6.1 + 1)
    x = x + 0.1 * rng.randn(len(t))
    labels = np.r_[np.zeros(3, bool), x[3:] > x[:-3]]
    X = x[:, None]
    clf = RNNClassifier(hidden_layer_sizes=(12,), window=6, max_iter=15, random_state=0)
    clf.fit(X[:800], labels[:800])
    assert clf.score(X[800:], labels[800:]) > 0.85
