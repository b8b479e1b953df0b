"""Behaviour of RNNRegressor / RNNClassifier beyond sklearn's generic checks.

Covers the data contract (windows over a stream, 3-D batches), the training
loop (gradients, Adam, clipping, early stopping, warm_start, partial_fit),
determinism, weight import/export and every input error. Models are tiny so the
whole file runs in seconds; quality is tested in test_estimators_quality.py.
"""

import pickle
import re

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.metrics import accuracy_score, r2_score
from threadpoolctl import threadpool_limits

from tsrnn._classifier import RNNClassifier
from tsrnn._regressor import RNNRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

SMALL = dict(hidden_layer_sizes=(6,), max_iter=3, random_state=0)


def stream(n=120, n_features=3, seed=0):
    """A smooth multi-sensor stream and a target that depends on past rows."""
    rng = np.random.RandomState(seed)
    t = np.arange(n)[:, None]
    X = np.sin(0.15 * t * np.arange(1, n_features + 1) + rng.uniform(0, 6, n_features))
    X = X + 0.05 * rng.randn(n, n_features)
    y = np.roll(X[:, 0], 2) * X[:, -1]
    return X, y


def sequences(n=40, n_steps=7, n_features=2, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, n_steps, n_features)
    y = X[:, :3, 0].sum(axis=1) - X[:, -1, -1]
    return X, y


# ----------------------------------------------------------------------------
# Data contract: one output per stream row from its window; 3-D batches
# ----------------------------------------------------------------------------

def test_stream_predict_returns_one_value_per_row():
    X, y = stream()
    reg = RNNRegressor(window=5, **SMALL).fit(X, y)
    assert reg.predict(X).shape == (len(X),)
    assert reg.predict(X[:3]).shape == (3,)
    Y2 = np.c_[y, -y, 2 * y]
    assert RNNRegressor(window=5, **SMALL).fit(X, Y2).predict(X).shape == (len(X), 3)
    labels = np.where(y > 0, "up", "down")
    clf = RNNClassifier(window=5, **SMALL).fit(X, labels)
    assert clf.predict(X).shape == (len(X),)
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2)
    assert_allclose(proba.sum(axis=1), 1)
    assert_array_equal(clf.predict(X), clf.classes_[proba.argmax(axis=1)])
    assert_allclose(np.exp(clf.predict_log_proba(X)), proba, rtol=1e-10)


def test_stream_prediction_depends_only_on_its_window():
    X, y = stream(n=60)
    w = 6
    reg = RNNRegressor(window=w, **SMALL).fit(X, y)
    before = reg.predict(X)
    j = 20
    X2 = X.copy()
    X2[j] += 5.0
    after = reg.predict(X2)
    # Rows before j do not see the change, nor rows whose window starts after j.
    assert_allclose(after[:j], before[:j], rtol=1e-6, atol=1e-7)
    assert_allclose(after[j + w :], before[j + w :], rtol=1e-6, atol=1e-7)
    # Every row whose window contains row j does.
    assert np.all(np.abs(after[j : j + w] - before[j : j + w]) > 1e-4)


def test_stream_rows_equal_3d_predictions_of_their_windows():
    """Row i of a stream == the 3-D prediction of rows max(0, i-w+1)..i."""
    X, y = stream(n=30)
    w = 5
    reg = RNNRegressor(window=w, **SMALL).fit(X, y)
    pred = reg.predict(X)
    for i in [0, 1, 3, 4, 5, 17, 29]:
        window = X[max(0, i - w + 1) : i + 1]
        assert_allclose(pred[i], reg.predict(window[None])[0], rtol=1e-5, atol=1e-6)
        # The same row predicted from a stream that starts at its window.
        assert_allclose(pred[i], reg.predict(window)[-1], rtol=1e-5, atol=1e-6)


def test_stream_shorter_than_window_fits_and_predicts():
    X, y = stream(n=4)
    reg = RNNRegressor(window=10, **SMALL).fit(X, y)
    assert reg.predict(X).shape == (4,)
    # A single row is a stream too.
    assert RNNRegressor(window=10, **SMALL).fit(X[:1], y[:1]).predict(X[:1]).shape == (1,)


def test_every_row_is_a_training_target_once_per_epoch(monkeypatch):
    """Full windows for rows >= window-1, one per-step prefix for the rest."""
    n, w = 50, 8
    X = np.random.RandomState(0).randn(n, 2)
    y = np.arange(n, dtype=float)  # a target names its row
    seen = []
    original = RNNRegressor._loss_grad

    def spy(self, Xb, Yb, per_step=False, **kw):
        seen.append((np.array(Xb), np.array(Yb), per_step))
        return original(self, Xb, Yb, per_step=per_step, **kw)

    monkeypatch.setattr(RNNRegressor, "_loss_grad", spy)
    reg = RNNRegressor(window=w, batch_size=16, **{**SMALL, "max_iter": 1}).fit(X, y)
    prefix = [(Xb, Yb) for Xb, Yb, per_step in seen if per_step]
    assert len(prefix) == 1
    assert_allclose(prefix[0][0], X[None, : w - 1], rtol=1e-6)
    assert_array_equal(prefix[0][1].ravel(), np.arange(w - 1))
    rows = []
    for Xb, Yb, per_step in seen:
        if not per_step:
            rows.extend(Yb.ravel().astype(int))
            for window, row in zip(Xb, Yb.ravel().astype(int)):
                assert_allclose(window, X[row - w + 1 : row + 1], rtol=1e-6)
    assert sorted(rows) == list(range(w - 1, n))
    assert reg.t_ == n
    reg.partial_fit(X, y)
    assert reg.t_ == 2 * n


def test_windows_are_gathered_per_batch_not_materialised():
    """Training and prediction memory is O(data + batch), not O(rows * window)."""
    import tracemalloc

    rng = np.random.RandomState(0)
    n, d, w = 6000, 16, 64
    X = rng.randn(n, d).astype(np.float32)
    y = X[:, 0].copy()
    full_copy = n * w * d * 4  # bytes of an (n_windows, window, d) float32 array
    reg = RNNRegressor(
        hidden_layer_sizes=(4,), window=w, max_iter=1, batch_size=256, random_state=0
    )
    tracemalloc.start()
    try:
        reg.fit(X, y)
        reg.predict(X)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < full_copy / 3, (peak, full_copy)


def test_3d_batch_fit_predict_and_n_features():
    X, y = sequences()
    reg = RNNRegressor(**SMALL).fit(X, y)
    assert reg.n_features_in_ == 2
    assert not hasattr(reg, "feature_names_in_")
    assert reg.predict(X).shape == (40,)
    # Sequences of another length are fine: only the feature axis is fixed.
    assert reg.predict(X[:5, :3]).shape == (5,)
    # A 2-D stream with the same sensors is accepted by the same model.
    assert reg.predict(X[0]).shape == (7,)
    with pytest.raises(ValueError, match="X has 3 features, but RNNRegressor is expecting 2"):
        reg.predict(np.zeros((4, 7, 3)))
    with pytest.raises(ValueError, match="X has 3 features, but RNNRegressor is expecting 2"):
        reg.predict(np.zeros((4, 3)))


def test_3d_window_parameter_is_irrelevant():
    X, y = sequences()
    a = RNNRegressor(window=2, **SMALL).fit(X, y).predict(X)
    b = RNNRegressor(window=50, **SMALL).fit(X, y).predict(X)
    assert_array_equal(a, b)


def test_3d_classifier_with_string_labels():
    X, y = sequences()
    labels = np.array(["low", "mid", "high"])[np.digitize(y, [-1, 1])]
    clf = RNNClassifier(**SMALL).fit(X, labels)
    assert_array_equal(clf.classes_, ["high", "low", "mid"])
    proba = clf.predict_proba(X)
    assert proba.shape == (40, 3)
    assert_allclose(proba.sum(axis=1), 1)
    assert_array_equal(clf.predict(X), clf.classes_[proba.argmax(axis=1)])
    assert_allclose(np.exp(clf.predict_log_proba(X)), proba, rtol=1e-10)


def test_3d_pickle_clone_and_determinism():
    from sklearn.base import clone

    X, y = sequences()
    reg = RNNRegressor(**SMALL).fit(X, y)
    pred = reg.predict(X)
    assert_array_equal(pickle.loads(pickle.dumps(reg)).predict(X), pred)
    assert_array_equal(clone(reg).fit(X, y).predict(X), pred)
    assert not hasattr(clone(reg), "n_features_in_")


def test_3d_fit_after_2d_fit_resets_feature_names():
    pd = pytest.importorskip("pandas")
    X, y = stream()
    df = pd.DataFrame(X[:, :2], columns=["a", "b"])
    reg = RNNRegressor(**SMALL).fit(df, y)
    assert list(reg.feature_names_in_) == ["a", "b"]
    X3, y3 = sequences()
    reg.fit(X3, y3)
    assert not hasattr(reg, "feature_names_in_")
    assert reg.n_features_in_ == 2


# ----------------------------------------------------------------------------
# Gradients, optimizer, clipping, dropout
# ----------------------------------------------------------------------------

def _numeric_gradient_check(est, X, Y, per_step, rng, n_coords=40):
    """Central differences of _loss_grad's loss against its gradient row."""
    seed = 123

    def loss():
        est._random_state = np.random.RandomState(seed)  # same dropout masks
        return est._loss_grad(X, Y, per_step=per_step)

    loss()
    grad = est._flat[1].copy()
    params = est._flat[0]
    eps = 1e-6
    for j in rng.choice(params.size, size=min(n_coords, params.size), replace=False):
        old = params[j]
        params[j] = old + eps
        up = loss()
        params[j] = old - eps
        down = loss()
        params[j] = old
        assert_allclose((up - down) / (2 * eps), grad[j], rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("cell", ["lstm", "gru", "peephole"])
@pytest.mark.parametrize("task", ["regression", "binary", "multiclass"])
@pytest.mark.parametrize("per_step", [False, True])
def test_loss_gradient_matches_finite_differences(cell, task, per_step):
    rng = np.random.RandomState(0)
    X = rng.randn(20, 3)
    y = {
        "regression": rng.randn(20, 2),
        "binary": rng.randint(0, 2, 20),
        "multiclass": rng.randint(0, 3, 20),
    }[task]
    Est = RNNRegressor if task == "regression" else RNNClassifier
    est = Est(
        hidden_layer_sizes=(4, 3), cell=cell, window=4, max_iter=1, alpha=0.1,
        dropout=0.2, dtype=np.float64, random_state=0,
    ).fit(X, y)
    Y = est._encode_targets(y, False, True, None)
    Xb = np.stack([X[i : i + 4] for i in range(5)])
    Yb = np.stack([Y[i : i + 4] for i in range(5)]) if per_step else Y[3:8]
    _numeric_gradient_check(est, Xb, Yb, per_step, rng)


def test_adam_step_matches_sklearn_adam():
    from sklearn.neural_network._stochastic_optimizers import AdamOptimizer

    X, y = sequences()
    reg = RNNRegressor(
        hidden_layer_sizes=(3,), max_iter=1, max_grad_norm=None, dtype=np.float64,
        learning_rate_init=0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-7, random_state=0,
    ).fit(X, y)
    reg._flat[2:] = 0
    reg._adam_t = 0
    params = [reg._flat[0].copy()]
    adam = AdamOptimizer(params, 0.01, 0.8, 0.99, 1e-7)
    rng = np.random.RandomState(0)
    for _ in range(3):
        g = rng.randn(params[0].size)
        reg._flat[1] = g
        reg._optimizer_step()
        adam.update_params(params, [g])
        assert_allclose(reg._flat[0], params[0], rtol=1e-12, atol=1e-14)


def test_gradient_clipping_by_global_norm():
    X, y = sequences()
    reg = RNNRegressor(max_grad_norm=0.5, **SMALL).fit(X, y)
    g = np.random.RandomState(0).randn(reg._flat.shape[1]).astype(np.float32)
    reg._flat[1] = g
    reg._optimizer_step()
    clipped = reg._flat[1]
    assert np.linalg.norm(clipped) == pytest.approx(0.5, rel=1e-5)
    assert_allclose(clipped / np.linalg.norm(clipped), g / np.linalg.norm(g), rtol=1e-4)
    reg.set_params(max_grad_norm=None)
    reg._flat[1] = g
    reg._optimizer_step()
    assert_array_equal(reg._flat[1], g)


def test_dropout_only_in_training():
    X, y = sequences()
    reg = RNNRegressor(dropout=0.5, **SMALL).fit(X, y)
    # No dropout at inference: predictions depend neither on the rate nor on
    # the random state that draws the training masks.
    before = reg.predict(X)
    reg.set_params(dropout=0.9)
    reg._random_state = np.random.RandomState(123)
    assert_array_equal(reg.predict(X), before)
    top1, _ = reg._forward_stack(X[:4].astype(np.float32), training=True)
    top2, _ = reg._forward_stack(X[:4].astype(np.float32), training=True)
    assert not np.array_equal(top1, top2)
    assert np.mean(top1 == 0) > 0.3  # about half of the units are dropped


# ----------------------------------------------------------------------------
# Training loop: stopping, early stopping, warm start, partial_fit
# ----------------------------------------------------------------------------

def test_training_loss_decreases_and_curves_are_recorded():
    X, y = stream()
    reg = RNNRegressor(window=6, hidden_layer_sizes=(8,), max_iter=15, random_state=0)
    reg.fit(X, y)
    assert len(reg.loss_curve_) == reg.n_iter_ == 15
    assert reg.loss_curve_[-1] < 0.7 * reg.loss_curve_[0]
    assert reg.best_loss_ == min(reg.loss_curve_)
    assert reg.validation_scores_ is None and reg.best_validation_score_ is None


def test_tol_and_n_iter_no_change_on_training_loss():
    X, y = stream()
    # With a huge tol no epoch counts as an improvement: MLP's rule stops
    # after n_iter_no_change + 2 epochs.
    reg = RNNRegressor(window=4, tol=1e9, n_iter_no_change=2, **{**SMALL, "max_iter": 50})
    reg.fit(X, y)
    assert reg.n_iter_ == 4
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        RNNRegressor(window=4, tol=0.0, **SMALL).fit(X, y)


def _shifted_stream(n=200, seed=0):
    """y = x0 in the first 3/4 of the rows, y = -x0 in the last quarter."""
    rng = np.random.RandomState(seed)
    X = rng.randn(n, 2)
    y = X[:, 0].copy()
    y[3 * n // 4 :] *= -1
    return X, y


def test_early_stopping_validates_on_the_last_rows_and_restores_best():
    X, y = _shifted_stream()
    reg = RNNRegressor(
        window=3, hidden_layer_sizes=(8,), max_iter=20, early_stopping=True,
        validation_fraction=0.25, n_iter_no_change=20, learning_rate_init=0.01,
        random_state=0,
    ).fit(X, y)
    scores = reg.validation_scores_
    assert len(scores) == reg.n_iter_ == 20
    # The validation block has the opposite relation, so fitting the training
    # rows makes it worse: the best epoch is not the last one...
    assert reg.best_validation_score_ == max(scores) > scores[-1]
    # ...and the model now holds the best epoch's weights, scored on exactly
    # the last ceil(0.25 * n) rows.
    n_val = int(np.ceil(0.25 * len(X)))
    restored = r2_score(y[-n_val:], reg.predict(X)[-n_val:])
    assert restored == pytest.approx(reg.best_validation_score_, abs=1e-5)
    assert reg.best_loss_ is None


def test_early_stopping_with_3d_holds_out_last_sequences():
    X, y = sequences(n=60)
    y[-15:] = -y[-15:]
    clf = RNNClassifier(
        hidden_layer_sizes=(8,), max_iter=8, early_stopping=True,
        validation_fraction=0.25, random_state=0,
    ).fit(X, y > 0)
    restored = accuracy_score(y[-15:] > 0, clf.predict(X[-15:]))
    assert restored == pytest.approx(clf.best_validation_score_)
    assert clf.best_validation_score_ == max(clf.validation_scores_)


def test_early_stopping_stops_when_validation_stalls():
    X, y = _shifted_stream()
    reg = RNNRegressor(
        window=3, hidden_layer_sizes=(4,), max_iter=100, early_stopping=True,
        validation_fraction=0.25, n_iter_no_change=3, random_state=0,
    ).fit(X, y)
    assert reg.n_iter_ < 100


def test_early_stopping_needs_enough_rows():
    X, y = stream(n=10)
    reg = RNNRegressor(early_stopping=True, validation_fraction=0.1, **SMALL)
    with pytest.raises(ValueError, match="validation set is too small"):
        reg.fit(X, y)


def test_warm_start_continues_from_previous_weights():
    X, y = stream()
    reg = RNNRegressor(window=5, warm_start=True, **SMALL).fit(X, y)
    before = reg.state_dict()
    curve = list(reg.loss_curve_)
    reg.set_params(max_iter=1, learning_rate_init=1e-9)
    reg.fit(X, y)
    for name, value in reg.state_dict().items():
        assert_allclose(value, before[name], atol=1e-6)
    assert reg.loss_curve_[:3] == curve and len(reg.loss_curve_) == 4
    # Without warm_start the same call starts again from a fresh draw.
    reg.set_params(warm_start=False)
    reg.fit(X, y)
    assert not np.allclose(reg.state_dict()["weight_hh_l0"], before["weight_hh_l0"])


def test_warm_start_cannot_change_the_architecture():
    X, y = stream()
    reg = RNNRegressor(window=5, warm_start=True, **SMALL).fit(X, y)
    reg.set_params(hidden_layer_sizes=(7,))
    with pytest.raises(ValueError, match="must keep cell, hidden_layer_sizes"):
        reg.fit(X, y)


def test_partial_fit_first_call_equals_one_epoch_of_fit():
    X, y = stream()
    a = RNNRegressor(window=5, hidden_layer_sizes=(6,), random_state=0).partial_fit(X, y)
    b = RNNRegressor(window=5, hidden_layer_sizes=(6,), max_iter=1, random_state=0).fit(X, y)
    assert_array_equal(a.predict(X), b.predict(X))
    assert a.n_iter_ == 1


def test_partial_fit_keeps_learning():
    X, y = stream()
    reg = RNNRegressor(window=5, hidden_layer_sizes=(8,), random_state=0)
    for _ in range(12):
        reg.partial_fit(X, y)
    assert reg.n_iter_ == 12 and len(reg.loss_curve_) == 12
    assert reg.loss_curve_[-1] < 0.7 * reg.loss_curve_[0]
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping"):
        RNNRegressor(early_stopping=True).partial_fit(X, y)


def test_classifier_partial_fit_classes():
    X, y = stream()
    labels = np.digitize(y, [-0.3, 0.3])  # 0, 1, 2
    clf = RNNClassifier(window=4, **SMALL)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        clf.partial_fit(X, labels)
    # The first chunk needs not contain every class.
    clf.partial_fit(X[:30], np.where(labels[:30] == 2, 1, labels[:30]), classes=[0, 1, 2])
    assert_array_equal(clf.classes_, [0, 1, 2])
    clf.partial_fit(X[30:], labels[30:])
    assert clf.predict_proba(X).shape == (len(X), 3)
    with pytest.raises(ValueError, match="not the same as on the first call"):
        clf.partial_fit(X, labels, classes=[0, 1])
    with pytest.raises(ValueError, match="not in classes_"):
        clf.partial_fit(X[:5], [0, 1, 2, 3, 1])


def test_classifier_warm_start_needs_same_classes():
    X, y = stream()
    clf = RNNClassifier(window=4, warm_start=True, **SMALL).fit(X, y > 0)
    with pytest.raises(ValueError, match="same classes"):
        clf.fit(X, np.digitize(y, [-0.3, 0.3]))


def test_verbose_prints_loss_validation_and_time(capsys):
    X, y = stream()
    RNNRegressor(window=4, verbose=True, early_stopping=True, **SMALL).fit(X, y)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    assert re.fullmatch(
        r"Epoch 1, loss = [\d.]+, validation score = -?[\d.]+, [\d.]+ s", lines[0]
    )


# ----------------------------------------------------------------------------
# Determinism and the global random state
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("cell", ["lstm", "gru", "peephole"])
def test_same_random_state_same_predictions_at_1_and_2_threads(cell):
    X, y = stream(n=150)
    X3, y3 = sequences(n=70)  # > one kernel chunk, with a remainder
    kw = dict(cell=cell, window=6, hidden_layer_sizes=(8, 5), dropout=0.1, max_iter=2,
              batch_size=40, random_state=7)
    preds = []
    for threads in (1, 2, 1):
        with threadpool_limits(threads, user_api="openmp"):
            reg = RNNRegressor(**kw).fit(X, y)
            preds.append((reg.predict(X), reg.fit(X3, y3).predict(X3)))
    for a, b in preds[1:]:
        assert_array_equal(a, preds[0][0])
        assert_array_equal(b, preds[0][1])
    other = RNNRegressor(**{**kw, "random_state": 8}).fit(X, y).predict(X)
    assert not np.array_equal(other, preds[0][0])


@pytest.mark.parametrize("random_state", [None, 0, np.random.RandomState(0)])
def test_global_numpy_rng_is_untouched(random_state):
    X, y = stream(n=40)
    np.random.seed(42)
    expected = np.random.random_sample(5)
    np.random.seed(42)
    RNNClassifier(window=4, hidden_layer_sizes=(4,), max_iter=2, dropout=0.2,
                  random_state=random_state).fit(X, y > 0).predict(X)
    assert_array_equal(np.random.random_sample(5), expected)


def test_random_state_none_gives_different_models():
    X, y = stream(n=40)
    a = RNNRegressor(window=4, hidden_layer_sizes=(4,), max_iter=1).fit(X, y)
    b = RNNRegressor(window=4, hidden_layer_sizes=(4,), max_iter=1).fit(X, y)
    assert not np.array_equal(a.predict(X), b.predict(X))


# ----------------------------------------------------------------------------
# Weights: flat buffer, views, export / import, PyTorch
# ----------------------------------------------------------------------------

def test_weights_use_torch_names_and_live_in_one_buffer():
    X, y = stream()
    reg = RNNRegressor(cell="peephole", hidden_layer_sizes=(5, 4), window=4,
                       max_iter=1, random_state=0).fit(X, y)
    params = reg.rnn_params_
    assert params["weight_ih_l0"].shape == (20, 3)
    assert params["weight_hh_l0"].shape == (20, 5)
    assert params["weight_ih_l1"].shape == (16, 5)
    assert params["bias_hh_l1"].shape == (16,)
    assert params["weight_co_l1"].shape == (4,)
    assert reg.head_weight_.shape == (1, 4) and reg.head_bias_.shape == (1,)
    n_params = sum(v.size for v in params.values()) + 5
    assert reg._flat.shape == (4, n_params)
    # Views survive pickling as views of the unpickled buffer.
    clone = pickle.loads(pickle.dumps(reg))
    for value in clone.rnn_params_.values():
        assert np.shares_memory(value, clone._flat)
    before = clone.predict(X)
    clone.rnn_params_["weight_hh_l0"][...] *= 2
    assert not np.allclose(clone.predict(X), before)
    assert_array_equal(reg.predict(X), before)


def test_unfitted_weight_properties_raise():
    reg = RNNRegressor()
    for name in ["rnn_params_", "head_weight_", "head_bias_"]:
        assert not hasattr(reg, name)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        reg.state_dict()


def test_state_dict_round_trip_and_errors():
    X, y = stream()
    a = RNNRegressor(window=4, **SMALL).fit(X, y)
    b = RNNRegressor(window=4, **{**SMALL, "random_state": 1}).fit(X, y)
    state = a.state_dict()
    state["head.bias"][...] = 99  # a copy: the model is unchanged
    assert a.head_bias_[0] != 99
    b.load_state_dict(a.state_dict())
    assert_array_equal(b.predict(X), a.predict(X))
    assert b._adam_t == 0 and not b._flat[2:].any()
    bad = a.state_dict()
    del bad["bias_hh_l0"]
    with pytest.raises(ValueError, match=r"missing keys \['bias_hh_l0'\]"):
        b.load_state_dict(bad)
    bad = a.state_dict()
    bad["weight_hh_l0"] = bad["weight_hh_l0"][:, :2]
    with pytest.raises(ValueError, match=r"state_dict\['weight_hh_l0'\] has shape"):
        b.load_state_dict(bad)
    bad = a.state_dict()
    bad["head.weight"][0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        b.load_state_dict(bad)
    assert_array_equal(b.predict(X), a.predict(X))  # failed loads change nothing


@pytest.mark.parametrize("cell,num_layers", [("lstm", 1), ("gru", 1), ("lstm", 2)])
def test_load_torch_weights_reproduces_torch(cell, num_layers):
    torch = pytest.importorskip("torch")
    X, y = sequences(n=30, n_features=3)
    torch.manual_seed(0)
    rnn = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](
        3, 5, num_layers=num_layers, batch_first=True, dtype=torch.float64
    )
    head = torch.nn.Linear(5, 1, dtype=torch.float64)
    with torch.no_grad():
        out, _ = rnn(torch.from_numpy(X))
        expected = head(out[:, -1]).numpy().ravel()
    reg = RNNRegressor(cell=cell, hidden_layer_sizes=(5,) * num_layers, max_iter=1,
                       dtype=np.float64, random_state=0).fit(X, y)
    state = dict(rnn.state_dict())
    state.update({"head." + k: v for k, v in head.state_dict().items()})
    reg.load_state_dict(state)
    assert_allclose(reg.predict(X), expected, rtol=1e-10, atol=1e-12)
    # And back: the exported dict loads into torch unchanged.
    exported = reg.state_dict()
    rnn.load_state_dict({k: torch.from_numpy(v) for k, v in exported.items()
                         if not k.startswith("head.")})


# ----------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("Est", [RNNRegressor, RNNClassifier])
def test_bad_input_raises_value_error(Est):
    X, y = stream(n=30)
    y = y > 0
    X3, y3 = sequences(n=10)
    y3 = y3 > 0
    est = Est(**SMALL)
    X_nan = X.copy()
    X_nan[3, 1] = np.nan
    X_inf = X3.copy()
    X_inf[1, 2, 0] = np.inf
    cases = [
        (X_nan, y, "Input X contains NaN"),
        (X_inf, y3, "Input X contains infinity"),
        (X[:, 0], y, "Expected 2D array, got 1D array"),
        (X3[..., None], y3, "X must be 2-D .* or 3-D .*, got 4-D"),
        (X[:0], y[:0], "0 sample"),
        (X3[:0], y3[:0], "0 sample"),
        (X3[:, :0], y3, "at least one time step"),
        (X, y[:-1], "inconsistent numbers of samples"),
        (X3, y3[:-1], "inconsistent numbers of samples"),
    ]
    for bad_X, bad_y, message in cases:
        with pytest.raises(ValueError, match=message):
            est.fit(bad_X, bad_y)
    y_nan = np.where(y, 1.0, 0.0)
    y_nan[0] = np.nan
    with pytest.raises(ValueError, match="Input y contains NaN"):
        est.fit(X, y_nan)
    with pytest.raises(ValueError, match="y contains NaN"):
        est.fit(X3, np.r_[np.nan, y3[1:]])
    est.fit(X, y)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        est.predict(X_nan)
    with pytest.raises(ValueError, match="Input X contains infinity"):
        est.predict(X_inf)
    with pytest.raises(ValueError, match="got 4-D"):
        est.predict(X3[..., None])


@pytest.mark.parametrize(
    "params,message",
    [
        ({"cell": "rnn"}, "'cell' parameter .* must be a str among"),
        ({"window": -3}, "'window' parameter .* must be an int in the range"),
        ({"window": 0}, "'window' parameter"),
        ({"hidden_layer_sizes": (4, 0)}, "hidden_layer_sizes must be a positive"),
        ({"dropout": 1.0}, "'dropout' parameter"),
        ({"max_grad_norm": 0}, "'max_grad_norm' parameter"),
        ({"dtype": np.float16}, "'dtype' parameter"),
    ],
)
def test_bad_parameters_raise_value_error(params, message):
    X, y = stream(n=20)
    with pytest.raises(ValueError, match=message):
        RNNRegressor(**params).fit(X, y)


def test_classifier_needs_two_classes():
    X, y = stream(n=20)
    with pytest.raises(ValueError, match="at least 2 classes"):
        RNNClassifier(**SMALL).fit(X, np.zeros(20))


def test_divergence_raises_and_leaves_no_fitted_model():
    X, y = stream(n=40)
    reg = RNNRegressor(window=4, dtype=np.float64, **SMALL)
    with pytest.raises(ValueError, match="Training diverged: the loss became inf"):
        reg.fit(X, y * 1e200)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        reg.predict(X)
    assert not hasattr(reg, "loss_curve_")
    # The estimator is still usable.
    assert reg.fit(X, y).predict(X).shape == (40,)


def test_read_only_and_strided_inputs():
    X, y = stream(n=60)
    reg = RNNRegressor(window=5, **SMALL)
    expected = reg.fit(X, y).predict(X)
    Xr = X.copy()
    Xr.flags.writeable = False
    assert_array_equal(reg.fit(Xr, y).predict(Xr), expected)
    Xf = np.asfortranarray(X)
    assert_array_equal(reg.fit(Xf, y).predict(Xf), expected)
    wide = np.zeros((60, 6))
    wide[:, ::2] = X
    assert_array_equal(reg.fit(wide[:, ::2], y).predict(wide[:, ::2]), expected)


def test_float64_and_float32_models_agree():
    X, y = stream(n=60)
    p32 = RNNRegressor(window=5, max_iter=1, hidden_layer_sizes=(6,), random_state=0,
                       learning_rate_init=1e-3).fit(X, y)
    p64 = RNNRegressor(window=5, max_iter=1, hidden_layer_sizes=(6,), random_state=0,
                       learning_rate_init=1e-3, dtype="float64").fit(X, y)
    assert p32._flat.dtype == np.float32 and p64._flat.dtype == np.float64
    assert p32.predict(X).dtype == np.float64
    assert_allclose(p32.predict(X), p64.predict(X), rtol=1e-3, atol=1e-4)


def test_keyboard_interrupt_keeps_a_usable_model(monkeypatch):
    X, y = stream(n=40)
    reg = RNNRegressor(window=4, hidden_layer_sizes=(4,), max_iter=10, random_state=0)
    calls = {"n": 0}
    original = RNNRegressor._train_step

    def interrupted(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(RNNRegressor, "_train_step", interrupted)
    with pytest.warns(UserWarning, match="interrupted"):
        reg.fit(X, y)
    assert np.isfinite(reg.predict(X)).all()


@pytest.mark.parametrize("Est", [RNNRegressor, RNNClassifier])
def test_refused_refit_leaves_the_estimator_unfitted(Est):
    # A fresh fit that fails validation must not leave the previous model
    # answering predict as if it were the result of that fit.
    rng = np.random.RandomState(0)
    X, y = rng.normal(size=(30, 4)), np.arange(30) % 2
    est = Est(window=3, max_iter=1, random_state=0).fit(X, y)
    bad = rng.normal(size=(30, 2))
    bad[5, 1] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        est.fit(bad, y)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        est.predict(X)
