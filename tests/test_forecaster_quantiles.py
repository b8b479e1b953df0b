"""Probabilistic forecasts: pinball loss, column layout, held-out coverage."""
import warnings

import numpy as np
import pytest
from _forecaster_data import FAST, make_frame
from sklearn.exceptions import ConvergenceWarning

from tsrnn import RNNForecaster


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def test_columns_with_the_median():
    frame = make_frame(200)
    f = RNNForecaster(target=["y", "x"], **FAST | {"quantiles": (0.9, 0.1, 0.5)}).fit(frame)
    np.testing.assert_array_equal(f.quantiles_, [0.1, 0.5, 0.9])
    assert f.n_outputs_ == 4 * 2 * 3
    forecast = f.predict()
    assert list(forecast.columns) == [
        "y", "y_q0.1", "y_q0.5", "y_q0.9", "x", "x_q0.1", "x_q0.5", "x_q0.9",
    ]
    np.testing.assert_array_equal(forecast["y"], forecast["y_q0.5"])
    values = forecast[["y_q0.1", "y_q0.5", "y_q0.9"]].to_numpy()
    assert (np.diff(values, axis=1) >= 0).all()  # no quantile crossing


def test_columns_without_the_median():
    frame = make_frame(200)
    # 200 rows leave too few held-out forecasts to calibrate the 0.95 level
    with pytest.warns(UserWarning, match=r"too few to calibrate the quantile\(s\) \[0.95\]"):
        f = RNNForecaster(target="y", **FAST | {"quantiles": [0.2, 0.95]}).fit(frame)
    assert list(f.predict().columns) == ["y_q0.2", "y_q0.95"]
    fc = f.backtest(frame.iloc[100:]).forecasts
    assert {"forecast_q0.2", "forecast_q0.95"} <= set(fc.columns)
    # The point forecast of the metrics is the level closest to 0.5.
    np.testing.assert_array_equal(fc["forecast"], fc["forecast_q0.2"])


def test_pinball_loss_and_gradient():
    f = RNNForecaster(target="y", quantiles=(0.1, 0.9), horizon=2)
    f.quantiles_ = np.array([0.1, 0.9])
    f._head_levels = [0.1, 0.9]  # what fit sets: the levels the outputs are trained for
    rng = np.random.default_rng(0)
    Y = rng.normal(size=(5, 2))
    Y[0, 1] = np.nan  # masked target: no loss, no gradient
    Z = rng.normal(size=(5, 4))
    loss, dZ = f._loss(Z, Y)
    U = Y[:, :, None] - Z.reshape(5, 2, 2)
    q = np.array([0.1, 0.9])
    expected = np.nansum(np.maximum(q * U, (q - 1) * U)) / 4
    assert loss == pytest.approx(expected)
    np.testing.assert_array_equal(dZ.reshape(5, 2, 2)[0, 1], 0.0)
    eps = 1e-6
    numeric = np.zeros_like(Z)
    for idx in np.ndindex(Z.shape):
        Zp, Zm = Z.copy(), Z.copy()
        Zp[idx] += eps
        Zm[idx] -= eps
        numeric[idx] = (f._loss(Zp, Y)[0] - f._loss(Zm, Y)[0]) / (2 * eps)
    np.testing.assert_allclose(dZ, numeric, atol=1e-6)


def test_empirical_coverage_on_held_out_data_is_near_nominal():
    # Measured: about 0.82 for the nominal 0.80 of the 0.1-0.9 band.
    frame = make_frame(1600, seed=3)
    f = RNNForecaster(
        target="y", window=24, horizon=4, hidden_layer_sizes=16,
        quantiles=(0.1, 0.5, 0.9), max_iter=10, random_state=0,
    ).fit(frame.iloc[:1200])
    fc = f.backtest(frame.iloc[1200:]).forecasts
    below = (fc["actual"] < fc["forecast_q0.1"]).mean()
    above = (fc["actual"] > fc["forecast_q0.9"]).mean()
    coverage = 1 - below - above
    assert 0.72 <= coverage <= 0.88, coverage
    assert 0.03 <= below <= 0.17 and 0.03 <= above <= 0.17, (below, above)
    median_below = (fc["actual"] < fc["forecast_q0.5"]).mean()
    assert 0.4 <= median_below <= 0.6
