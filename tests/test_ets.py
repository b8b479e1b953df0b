"""Exponential smoothing as a baseline candidate (tsrnn/_ets.py).

The smoothing map is checked in closed form (alpha = 1 is persistence, a
constant stays constant, a noiseless trend plus season is forecast exactly)
and against statsmodels' ETSModel run from the same initial state with the
same parameters; its parameters are chosen from the candidates' moments as
from the squared errors of the windows themselves; and a forecaster fitted
with ``baseline="smoothing"`` serves the same forecast in predict, update,
backtest, a pickle, a panel and the ONNX export.
"""
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from _forecaster_data import make_trend_season
from sklearn.exceptions import ConvergenceWarning

from tsrnn import RNNForecaster
from tsrnn._baselines import _FullDesign
from tsrnn._ets import (FORMS, SmoothingBaseline, _grid, _initial_state, fit_smoothing,
                        smoothing_maps)

SMALL = dict(horizon=6, season=12, hidden_layer_sizes=8, max_iter=3, random_state=0,
             baseline="smoothing")


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)  # too few to calibrate, at times
        yield


def maps_of(window, horizon, season, trend, seasonal, alpha, beta=0.0, phi=1.0, gamma=0.0):
    return smoothing_maps(window, horizon, season, np.array([alpha]), np.array([beta]),
                          np.array([phi]), np.array([gamma]), trend, seasonal)[0]


def test_alpha_one_level_is_persistence():
    x = np.random.default_rng(0).normal(size=(5, 10))
    M = maps_of(10, 3, 1, trend=False, seasonal=False, alpha=1.0)
    np.testing.assert_allclose(x @ M.T, np.repeat(x[:, -1:], 3, axis=1), atol=1e-12)


@pytest.mark.parametrize("trend, seasonal", FORMS)
def test_every_grid_point_keeps_a_constant(trend, seasonal):
    alpha, beta, phi, gamma = _grid(trend, seasonal)
    maps = smoothing_maps(24, 5, 12, alpha, beta, phi, gamma, trend, seasonal)
    np.testing.assert_allclose(maps.sum(axis=2), 1.0, atol=1e-9)


@pytest.mark.parametrize("alpha, beta, gamma", [(0.3, 0.1, 0.2), (1.0, 0.5, 0.0),
                                                (0.05, 0.0, 0.9)])
def test_noiseless_trend_and_season_are_forecast_exactly(alpha, beta, gamma):
    y = make_trend_season(60)["y"].to_numpy()
    W, h = 36, 12
    M = maps_of(W, h, 12, trend=True, seasonal=True, alpha=alpha, beta=beta, gamma=gamma)
    np.testing.assert_allclose(M @ y[:W], y[W : W + h], rtol=0, atol=1e-9)
    # Damped (phi < 1), the trend's reach falls short: the test can fail.
    damped = maps_of(W, h, 12, trend=True, seasonal=True, alpha=alpha, beta=beta, phi=0.9,
                     gamma=gamma)
    assert np.abs(damped @ y[:W] - y[W : W + h]).max() > 0.1


@pytest.mark.parametrize("trend, seasonal", FORMS)
def test_matches_statsmodels_ets_from_the_same_start(trend, seasonal):
    ets = pytest.importorskip("statsmodels.tsa.exponential_smoothing.ets")
    rng = np.random.default_rng(1)
    W, h, m = 36, 8, 4
    x = np.cumsum(rng.normal(size=W)) + np.tile([1.0, -2.0, 0.5, 0.5], W // m)
    a, b, p, g = 0.3, 0.06, 0.9, 0.2
    ours = maps_of(W, h, m, trend, seasonal, a, b if trend else 0.0, p if trend else 1.0,
                   g if seasonal else 0.0) @ x
    start = _initial_state(W, trend, m if seasonal else 1) @ x
    known = {"initial_level": start[0]}
    fixed = {"smoothing_level": a}
    if trend:
        known["initial_trend"] = start[1]
        fixed |= {"smoothing_trend": b, "damping_trend": p}
    if seasonal:
        known["initial_seasonal"] = start[1 + trend:]  # the first value's phase first
        fixed["smoothing_seasonal"] = g
    model = ets.ETSModel(x, error="add", trend="add" if trend else None, damped_trend=trend,
                         seasonal="add" if seasonal else None,
                         seasonal_periods=m if seasonal else None,
                         initialization_method="known", **known)
    with model.fix_params(fixed):
        theirs = model.fit(disp=False).forecast(h)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("trend, seasonal", FORMS)
def test_parameters_from_the_moments_minimise_the_windows_squared_error(trend, seasonal):
    # The grid point fit_smoothing picks from the Gram matrix and cross
    # products is the one whose forecasts of the windows themselves have the
    # least squared error.
    rng = np.random.default_rng(2)
    n, W, h, m, n_t = 400, 24, 6, 12, 2
    t = np.arange(n + W + h)
    series = (np.cumsum(rng.normal(scale=0.3, size=(len(t), n_t)), axis=0)
              + 2 * np.sin(2 * np.pi * t / m)[:, None] + rng.normal(size=(len(t), n_t)))
    X = np.stack([series[i : i + W] for i in range(n)])  # (n, W, n_t)
    Y = np.stack([series[i + W : i + W + h] for i in range(n)])
    design = _FullDesign(W, h, n_t, n_t, W)
    F = design.features(X)
    T = (Y - X[:, -1:, :]).reshape(n, -1)
    model = fit_smoothing(F.T @ F, F.T @ T, W, W, h, n_t, m, trend, seasonal)
    alpha, beta, phi, gamma = _grid(trend, seasonal)
    maps = smoothing_maps(W, h, m, alpha, beta, phi, gamma, trend, seasonal)
    for j in range(n_t):
        sse = ((np.einsum("nkw,bw->nbk", maps, X[:, :, j]) - Y[None, :, :, j]) ** 2).sum((1, 2))
        best = int(np.argmin(sse))
        assert model.params[j] == {"alpha": alpha[best], "beta": beta[best],
                                   "phi": phi[best], "gamma": gamma[best]}
    np.testing.assert_allclose(model(X), np.stack(
        [X[:, :, j] @ maps_of(W, h, m, trend, seasonal, **model.params[j]).T
         for j in range(n_t)], axis=2), atol=1e-10)


def test_too_short_a_window_has_no_seasonal_form():
    gram, cross = np.eye(20), np.zeros((20, 6))
    assert fit_smoothing(gram, cross, 20, 20, 6, 1, 12, False, True) is None
    assert fit_smoothing(gram, cross, 20, 20, 6, 1, 12, False, False) is not None


def test_is_not_refitted_as_a_ridge():
    model = SmoothingBaseline(24, 6, 1, True, True, 12, [])
    with pytest.raises(TypeError, match="fit_smoothing"):
        model.fit(np.zeros((3, 24, 1)), np.zeros((3, 6, 1)))


# ---------------------------------------------------------------------------
# A forecaster that chose it
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fitted():
    frame = make_trend_season(150)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = RNNForecaster(target="y", **SMALL).fit(frame.iloc[:120])
    return f, frame


def test_the_held_out_choice_takes_the_exact_form(fitted):
    f, frame = fitted
    assert f.baseline_ == "exponential smoothing (level, damped trend, additive season)"
    assert isinstance(f._baseline, SmoothingBaseline)
    # Only smoothing's forms were candidates, each at every window it fits.
    assert {key[0][0] for key in f.baseline_scores_} == {"exponential smoothing"}
    assert len(f.baseline_scores_) > 4
    best = min(f.baseline_scores_, key=f.baseline_scores_.get)
    assert best[0] == ("exponential smoothing", "level, damped trend, additive season")
    assert f._baseline.params[0]["phi"] == 1.0  # the undamped trend is the exact one


def test_auto_does_not_try_it():
    # On the suite and the holdout group it lost as often as it won among
    # the auto candidates (benchmarks/README.md): "auto" is what it was.
    f = RNNForecaster(target="y", **(SMALL | {"baseline": "auto"})).fit(make_trend_season(120))
    assert not isinstance(f._baseline, SmoothingBaseline)
    assert not any(key[0][0] == "exponential smoothing" for key in f.baseline_scores_)


def test_too_short_to_hold_out_chooses_the_form_on_the_training_windows():
    # 22 rows, window 12, horizon 6: no training origin ends before the
    # held-out block, so the forms are fitted and scored on every origin.
    f = RNNForecaster(target="y", window=12, early_stopping=False,
                      **(SMALL | {"season": 4})).fit(make_trend_season(22))
    assert isinstance(f._baseline, SmoothingBaseline) and f.window_ == 12
    assert len(f.baseline_scores_) == len(FORMS)
    assert min(f.baseline_scores_, key=f.baseline_scores_.get)[0][1] == \
        f.baseline_.removeprefix("exponential smoothing (").removesuffix(")")
    assert np.isfinite(f.predict()["y"]).all()


def test_predict_update_backtest_and_pickle_agree(fitted):
    f, frame = fitted
    served = [f.predict(frame.iloc[:n]) for n in (125, 130)]
    # The baseline alone is exact here: the forecast is close to the truth.
    truth = frame["y"].iloc[125:131].to_numpy()
    assert np.abs(served[0]["y"].to_numpy() - truth).max() < 0.05 * np.ptp(frame["y"])
    stream = pickle.loads(pickle.dumps(f))
    pd.testing.assert_frame_equal(stream.predict(frame.iloc[:125]), served[0])
    stream.update(frame.iloc[120:125])
    pd.testing.assert_frame_equal(stream.predict(), served[0], rtol=1e-6)
    stream.update(frame.iloc[125:130])
    pd.testing.assert_frame_equal(stream.predict(), served[1], rtol=1e-6)
    result = f.backtest(frame.iloc[120:], stride=5)
    got = result.forecasts.set_index("origin")
    for n, want in zip((125, 130), served):
        at = got.loc[frame.index[n - 1], "forecast"].to_numpy()
        np.testing.assert_allclose(at, want["y"].to_numpy(), rtol=1e-6)


def test_panel_of_series():
    frames = []
    for k, key in enumerate(("a", "b")):
        one = make_trend_season(120, start="2001-01-01")
        one["y"] = one["y"] * (1 + k) + 5 * k
        one.insert(0, "site", key)
        frames.append(one)
    panel = pd.concat(frames)
    f = RNNForecaster(target="y", series_id="site", **SMALL).fit(panel)
    assert f.baseline_.startswith("exponential smoothing")
    out = f.predict()
    assert set(out.index.get_level_values(0)) == {"a", "b"} and np.isfinite(out["y"]).all()
    again = pickle.loads(pickle.dumps(f))
    pd.testing.assert_frame_equal(again.predict(), out)


def test_onnx_export_equals_predict(fitted):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from tsrnn.onnx import to_onnx

    f, frame = fitted
    model = to_onnx(f)
    w, cuts = f.window_, (121, 127, 140)
    window = np.stack([frame[["y"]].to_numpy()[n - w : n] for n in cuts]).astype(np.float32)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"window": window})[0]
    want = np.stack([f.predict(frame.iloc[:n])[[f"y_q{q:g}" for q in f.quantiles_]].to_numpy()
                     for n in cuts])
    np.testing.assert_allclose(got[:, :, 0, :], want, rtol=1e-5,
                               atol=1e-5 * np.abs(want).max())
