"""RNNForecaster.fit(sample_weight=...): a weight per forecast origin (issue 14).

A weight belongs to a row of the frame as a forecast origin. It must follow
the row through the split into series and the regular grid, weigh the
network's loss, early stopping's score and the learned baseline, and a zero
weight must make the origin absent.

sklearn's generic checks are not run on the forecaster (it takes only
DataFrames and no y), so the properties its sample-weight checks test are
tested here: unit weights change nothing (check_sample_weights_invariance),
lists are accepted (check_sample_weights_list), a wrong shape is refused
(check_sample_weights_shape) and the weights are not modified
(check_sample_weights_not_overwritten). check_sample_weight_equivalence
(integer weights = repeated samples) cannot be expressed: repeating a row
of a time series changes every window that contains it. It is declared
failing for RNNRegressor/RNNClassifier for a related reason.
"""
import numpy as np
import pandas as pd
import pytest
from _forecaster_data import FAST, make_frame, make_panel
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, TimeSeriesSplit
from sklearn.utils.validation import has_fit_parameter

from tsrnn import RNNForecaster
from tsrnn._frames import FrameLayout
from tsrnn.exceptions import InputError

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def frame():
    return make_frame(360)


# The defaults where they matter (learned baseline with window="auto", the
# calibrated band, early stopping), on a tiny network.
DEFAULTS = dict(horizon=4, hidden_layer_sizes=8, max_iter=5, random_state=0)


def assert_same_fit(a, b):
    np.testing.assert_array_equal(a._flat, b._flat)
    assert a.window_ == b.window_ and a.baseline_ == b.baseline_
    assert a.baseline_scores_ == b.baseline_scores_
    assert a.validation_scores_ == b.validation_scores_
    assert a.loss_curve_ == b.loss_curve_
    if a._calibration is not None:
        np.testing.assert_array_equal(a._calibration.offsets, b._calibration.offsets)
    pd.testing.assert_frame_equal(a.predict(), b.predict())


@pytest.mark.parametrize("form", ["array", "list", "series", "shuffled series", "scalar"])
def test_unit_weights_give_exactly_the_unweighted_fit(frame, form):
    ones = np.ones(len(frame))
    weights = {
        "array": ones,
        "list": ones.tolist(),
        "series": pd.Series(ones, index=frame.index),
        # aligned by label, not by position
        "shuffled series": pd.Series(ones, index=frame.index).sample(frac=1, random_state=0),
        "scalar": 1.0,
    }[form]
    plain = RNNForecaster(target="y", **DEFAULTS).fit(frame)
    weighted = RNNForecaster(target="y", **DEFAULTS).fit(frame, sample_weight=weights)
    assert_same_fit(plain, weighted)


def test_constant_weights_are_the_unweighted_fit_with_alpha_divided(frame):
    # The loss, the early-stopping score and the baseline's ridge use the
    # weights relative to each other: a constant changes nothing there. The
    # L2 penalty is divided by the weight sum, as in MLPRegressor and
    # RNNRegressor, so a constant c acts as alpha / c. (A power of two keeps
    # every product exact, so the fits agree bitwise.)
    plain = RNNForecaster(target="y", alpha=0.0, **DEFAULTS).fit(frame)
    four = RNNForecaster(target="y", alpha=0.0, **DEFAULTS).fit(frame, sample_weight=4.0)
    assert_same_fit(plain, four)
    penalised = RNNForecaster(target="y", alpha=1e-3, **DEFAULTS).fit(
        frame, sample_weight=np.full(len(frame), 4.0))
    assert_same_fit(penalised, RNNForecaster(target="y", alpha=2.5e-4, **DEFAULTS).fit(frame))
    assert not np.array_equal(penalised._flat, plain._flat)


def test_zero_weight_origins_are_absent():
    # Two series with the same values: weighing one of them only must give
    # the same model whichever it is. That holds only if zero-weight origins
    # take no place in the minibatches, the baseline's fit and scores, the
    # early-stopping block and the calibration, i.e. if they are absent.
    one = make_frame(200)
    panel = pd.concat([one.assign(site="a"), one.assign(site="b")])
    is_a = (panel["site"] == "a").to_numpy().astype(float)
    kw = dict(target="y", series_id="site", **DEFAULTS)
    only_a = RNNForecaster(**kw).fit(panel, sample_weight=is_a)
    only_b = RNNForecaster(**kw).fit(panel, sample_weight=1.0 - is_a)
    np.testing.assert_array_equal(only_a._flat, only_b._flat)
    assert only_a.baseline_scores_ == only_b.baseline_scores_
    assert only_a.validation_scores_ == only_b.validation_scores_
    np.testing.assert_array_equal(only_a._calibration.offsets, only_b._calibration.offsets)
    both = RNNForecaster(**kw).fit(panel)
    assert not np.array_equal(both._flat, only_a._flat)


@pytest.fixture(scope="module")
def regime_change():
    """AR(1) with phi=0.9 for 300 hours, then phi=-0.9: train 600, test 200 rows."""
    rng = np.random.default_rng(0)
    y = np.zeros(800)
    for t in range(1, 800):
        y[t] = (0.9 if t < 300 else -0.9) * y[t - 1] + rng.normal()
    df = pd.DataFrame({"y": y}, index=pd.date_range("2024-01-01", periods=800, freq="h"))
    return df.iloc[:600], df.iloc[600:]


@pytest.mark.parametrize("baseline", ["auto", "persistence"])
def test_weights_move_the_fit_to_the_weighted_regime(regime_change, baseline):
    # Zero weight on the first regime: the learned baseline (ridge) and the
    # network (corrections to persistence) fit the second regime alone and
    # forecast its continuation better than a fit on both regimes.
    train, test = regime_change
    kw = dict(target="y", window=12, horizon=4, hidden_layer_sizes=16, max_iter=30,
              random_state=0, quantiles=None, baseline=baseline)
    both = RNNForecaster(**kw).fit(train)
    second = RNNForecaster(**kw).fit(
        train, sample_weight=pd.Series(np.arange(600) >= 300, index=train.index, dtype=float))
    assert not np.array_equal(both._flat, second._flat)
    mae_both = both.backtest(test).metrics.loc["model", "MAE"]
    mae_second = second.backtest(test).metrics.loc["model", "MAE"]
    assert mae_second < 0.97 * mae_both


def test_panel_weights_follow_the_rows_of_the_long_frame():
    panel = make_panel(150)  # a `site` column; the timestamps repeat across sites
    w = np.where(panel["site"] == "a", 1.0, 3.0)
    kw = dict(target="y", series_id="site", **FAST)
    by_row = RNNForecaster(**kw).fit(panel, sample_weight=w)
    # A Series with X's (duplicated) index is taken in row order.
    by_index = RNNForecaster(**kw).fit(panel, sample_weight=pd.Series(w, index=panel.index))
    np.testing.assert_array_equal(by_row._flat, by_index._flat)
    # With an (id, timestamp) MultiIndex, a Series is aligned by label.
    multi = make_panel(150, form="multiindex")
    series = pd.Series(w, index=multi.index).iloc[::-1]
    by_label = RNNForecaster(target="y", **FAST).fit(multi, sample_weight=series)
    np.testing.assert_array_equal(by_row._flat, by_label._flat)
    assert not np.array_equal(by_row._flat, RNNForecaster(**kw).fit(panel)._flat)


def test_weights_follow_rows_onto_the_resampled_grid():
    index = pd.DatetimeIndex(["2024-01-01 00:00", "2024-01-01 01:00", "2024-01-01 01:00",
                              "2024-01-01 03:00"])
    X = pd.DataFrame({"y": [1.0, 2.0, 4.0, 5.0]}, index=index)
    layout = FrameLayout.from_frame(X, "y", None, None, "interpolate")
    frames = layout.split(X, regularize=False)
    layout.set_step(frames, "h")
    frames = {k: layout.regularize(f, k) for k, f in frames.items()}
    w = layout.split_weights(X, np.array([1.0, 2.0, 4.0, 7.0]), frames)[None]
    # a bin's weight is the mean of its rows'; the empty 02:00 bin gets 0
    np.testing.assert_array_equal(w, [1.0, 3.0, 0.0, 7.0])
    # and a fit on a frame resampled this way takes the weights
    df = make_frame(240).drop(make_frame(240).index[[30, 31, 100]])
    f = RNNForecaster(target="y", freq="h", missing="interpolate", **FAST)
    f.fit(df, sample_weight=np.linspace(0.5, 2.0, len(df)))
    assert np.isfinite(f._flat).all()


def test_weights_are_not_modified_and_fit_has_the_parameter(frame):
    assert has_fit_parameter(RNNForecaster(), "sample_weight")
    w = np.linspace(0.1, 2.0, len(frame))
    kept = w.copy()
    RNNForecaster(target="y", **FAST).fit(frame, sample_weight=w)
    np.testing.assert_array_equal(w, kept)


def test_warm_start_and_validate_frame_take_weights(frame):
    w = np.linspace(0.1, 2.0, len(frame))
    kw = dict(target="y", warm_start=True, early_stopping=False, **FAST)
    f = RNNForecaster(**kw).fit(frame, sample_weight=w)
    first = f._flat[0].copy()
    f.fit(frame.iloc[100:], sample_weight=w[100:])
    assert not np.array_equal(first, f._flat[0])
    # the second fit used its weights
    g = RNNForecaster(**kw).fit(frame, sample_weight=w).fit(frame.iloc[100:])
    assert not np.array_equal(g._flat[0], f._flat[0])
    probe = RNNForecaster(target="y", **FAST)
    assert probe.validate_frame(frame, sample_weight=w) is probe
    with pytest.raises(InputError, match="Negative"):
        probe.validate_frame(frame, sample_weight=-w)
    assert not hasattr(probe, "_flat")


# score() is a backtest and takes no weights; sklearn says so.
@pytest.mark.filterwarnings("ignore:The scoring RNNForecaster.score does not support")
def test_gridsearchcv_passes_weights_fold_by_fold(frame):
    # Without metadata routing, GridSearchCV slices fit parameters by row
    # position; a Series then keeps the labels of the fold's rows.
    w = pd.Series(np.linspace(0.5, 2.0, len(frame)), index=frame.index)
    est = RNNForecaster(target="y", **{**FAST, "max_iter": 1})
    cv = TimeSeriesSplit(2)
    search = GridSearchCV(est, {"cell": ["lstm", "gru"]}, cv=cv)
    search.fit(frame, sample_weight=w)
    # Every fold's score is that of a fit on the fold's rows with the fold's
    # weights, and not that of a fit without them: a search that dropped the
    # weights, or gave a fold another fold's, would fail here.
    for i, cell in enumerate(search.cv_results_["param_cell"]):
        for k, (train, test) in enumerate(cv.split(frame)):
            fold = frame.iloc[train]
            weighted = clone(est).set_params(cell=cell).fit(fold, sample_weight=w.iloc[train])
            unweighted = clone(est).set_params(cell=cell).fit(fold)
            got = search.cv_results_[f"split{k}_test_score"][i]
            assert got == weighted.score(frame.iloc[test]), (cell, k)
            assert got != unweighted.score(frame.iloc[test]), (cell, k)


def _bad_weights(frame):
    n = len(frame)
    index = frame.index
    return {
        "negative": (np.r_[-1.0, np.ones(n - 1)], "Negative values"),
        "nan": (np.r_[np.nan, np.ones(n - 1)], "NaN"),
        "short": (np.ones(n - 1), r"shape == \(359,\), expected \(360,\)"),
        "2-D": (np.ones((n, 1)), "1D array"),
        "all zero": (np.zeros(n), "at least one non-zero"),
        "missing label": (pd.Series(1.0, index=index[1:]), "no weight for 1 of X's 360 rows"),
        "duplicated label": (pd.Series(1.0, index=index[[0, *range(n)]]),
                             "repeats the label"),
        "positions as labels": (pd.Series(np.ones(n)), "aligned to X's index by label"),
        # weight only in the held-out block (its last 10%): nothing to train on
        "no training weight": (np.r_[np.zeros(n - 20), np.ones(20)],
                               "zero at every training origin"),
        "no held-out weight": (np.r_[np.ones(n - 40), np.zeros(40)],
                               "zero at every origin of the held-out block"),
    }


@pytest.mark.parametrize("case", list(_bad_weights(make_frame(360))))
def test_bad_weights_are_refused_with_an_input_error(frame, case):
    weights, message = _bad_weights(frame)[case]
    f = RNNForecaster(target="y", **FAST)
    with pytest.raises(InputError, match=message):
        f.fit(frame, sample_weight=weights)
    assert not hasattr(f, "_flat")  # a refused fit leaves no model


def test_long_frame_series_with_another_index_is_refused():
    panel = make_panel(100)
    weights = pd.Series(1.0, index=panel.index[::-1])  # same labels, other order
    with pytest.raises(InputError, match="cannot be aligned by label"):
        RNNForecaster(target="y", series_id="site", **FAST).fit(panel, sample_weight=weights)


def test_no_held_out_weight_leaves_the_band_uncalibrated_without_early_stopping(frame):
    # Calibration only: as for a block too short, train on everything, warn,
    # and keep the band as trained.
    w = np.r_[np.ones(len(frame) - 40), np.zeros(40)]
    f = RNNForecaster(target="y", **{**FAST, "quantiles": (0.1, 0.5, 0.9)},
                      early_stopping=False)
    with pytest.warns(UserWarning, match="sample_weight is zero throughout it"):
        f.fit(frame, sample_weight=w)
    assert f._calibration is None


def test_weighted_ridge_baseline_is_ridge_on_the_weighted_windows():
    # The streamed ridge (every candidate of baseline="auto") and the direct
    # one (the fallback for data too short to hold out) against sklearn's
    # Ridge(sample_weight=...), with the weights scaled to a mean of 1.
    from sklearn.linear_model import Ridge

    from tsrnn._baselines import LinearBaseline, _FullDesign, _moments, _ridge_paths

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 6, 2))
    Y = rng.normal(size=(300, 3, 1)) + X[:, -1:, :1]
    w = rng.uniform(0.1, 3.0, size=300)
    w[:50] = 0.0
    base = LinearBaseline(6, 3, 1, np.zeros((3, 1), np.intp), level=True, covariates=True,
                          alpha=0.3)
    F, _, T = base._design(X, Y)
    rel = w / w.mean()
    scale = np.average(F**2, axis=0, weights=rel).mean()
    ref = Ridge(alpha=0.3 * scale).fit(F, T, sample_weight=rel)
    direct = LinearBaseline(6, 3, 1, np.zeros((3, 1), np.intp), True, True, 0.3).fit(
        X, Y, sample_weight=w)
    np.testing.assert_allclose(direct.coef_, ref.coef_.T, rtol=1e-6, atol=1e-10)
    idx = np.arange(300)
    design = _FullDesign(6, 3, 1, 2, 6)
    lags = {"persistence": np.zeros((3, 1), np.intp)}
    moments = _moments(design, lambda _, i: X[i], lambda i: Y[i], idx, lags, weights=rel)
    paths = _ridge_paths(moments, design.columns(6, True, True), ["persistence"], [0.3])
    [(coef, intercept)] = paths["persistence"]
    np.testing.assert_allclose(coef, ref.coef_.T, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(intercept, ref.intercept_, rtol=1e-6, atol=1e-10)
    # Equal weights are no weights.
    same = LinearBaseline(6, 3, 1, np.zeros((3, 1), np.intp), True, True, 0.3)
    np.testing.assert_array_equal(same.fit(X, Y, np.full(300, 2.5)).coef_,
                                  direct.fit(X, Y).coef_)
