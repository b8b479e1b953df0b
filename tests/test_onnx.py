"""ONNX export of RNNRegressor and RNNClassifier, run by onnxruntime.

Every exported graph must give what the estimator's predict / predict_proba
give, for every cell, one and two layers, 3-D batches and the windows of a
2-D stream, and pass onnx.checker with shape inference. "Equal to 1e-5
relative" is checked as |got - want| <= 1e-5 * (|want| + max |want|): the
two runtimes sum in different orders, so a prediction close to zero is
compared at the scale of the others.
"""
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.exceptions import ConvergenceWarning, NotFittedError

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from tsrnn import RNNClassifier, RNNRegressor  # noqa: E402
from tsrnn.onnx import OPSET, save_onnx, to_onnx  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CELLS = ("lstm", "gru", "peephole")
LAYERS = {"1 layer": (8,), "2 layers": (8, 5)}
WINDOW = 6


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def assert_close(got, want, rtol=1e-5, scale=None):
    """``got`` equals ``want`` to ``rtol`` of ``scale`` (default: of ``want``'s largest)."""
    want = np.asarray(want, dtype=np.float64)
    scale = np.abs(want).max() if scale is None else scale
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale)


def session(model):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def run(model, X):
    return session(model).run(None, {"X": np.asarray(X, dtype=np.float32)})


def stream_windows(X, window=WINDOW):
    """(n - window + 1, window, n_features): the full window ending at each row."""
    return sliding_window_view(X, window, axis=0).transpose(0, 2, 1)


@pytest.fixture(scope="module")
def stream():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3)).astype(np.float32)
    Y = np.c_[np.cumsum(X[:, 0]) * 0.1, X[:, 1] - X[:, 2], 3.0 + X[:, 0]]
    return X, Y


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 9, 3)).astype(np.float32)
    return X, X[:, -3:, :].sum(axis=(1, 2))


def check_model(model, inputs, outputs):
    onnx.checker.check_model(model, full_check=True)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", OPSET)]
    assert OPSET == 17
    assert [i.name for i in model.graph.input] == inputs
    assert [o.name for o in model.graph.output] == outputs
    ops = {n.op_type for n in model.graph.node}
    assert ops & {"LSTM", "GRU"}
    assert all(n.domain in ("", "ai.onnx") for n in model.graph.node)  # standard ops only


# ----------------------------------------------------------------------
# RNNRegressor
# ----------------------------------------------------------------------
@pytest.mark.parametrize("layers", LAYERS.values(), ids=LAYERS.keys())
@pytest.mark.parametrize("cell", CELLS)
def test_regressor_stream_windows_and_batches_match_predict(cell, layers, stream, batch):
    X, Y = stream
    model = RNNRegressor(layers, cell=cell, window=WINDOW, max_iter=2, random_state=0).fit(X, Y)
    exported = to_onnx(model)
    check_model(exported, ["X"], ["predictions"])
    rnn_nodes = [n for n in exported.graph.node if n.op_type in ("LSTM", "GRU")]
    assert len(rnn_nodes) == len(layers)
    for node in rnn_nodes:
        assert node.op_type == ("GRU" if cell == "gru" else "LSTM")
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if cell == "gru":
            assert attrs["linear_before_reset"] == 1  # torch's reset-gate placement
        # The peephole weights are the LSTM operator's 8th input, P.
        assert (len(node.input) == 8 and node.input[7] != "") == (cell == "peephole")
    want = model.predict(X)
    # Full windows: row i from rows i - window + 1 .. i.
    (got,) = run(exported, stream_windows(X))
    assert got.dtype == np.float32 and got.shape == (len(X) - WINDOW + 1, 3)
    assert_close(got, want[WINDOW - 1 :])
    # The first rows of a stream have shorter histories: sequences of 1 .. window-1 rows.
    for i in (0, 2, WINDOW - 2):
        assert_close(run(exported, X[None, : i + 1])[0], want[i : i + 1])
    # 3-D batches: one output per sequence, any number of steps.
    Xb = batch[0]
    assert_close(run(exported, Xb)[0], model.predict(Xb))
    assert_close(run(exported, Xb[:1])[0], model.predict(Xb[:1]))  # batch of one


def test_regressor_one_target_gives_a_vector(batch):
    X, y = batch
    model = RNNRegressor(8, cell="gru", max_iter=2, random_state=0).fit(X, y)
    exported = to_onnx(model)
    assert [d.dim_param or d.dim_value for d in
            exported.graph.output[0].type.tensor_type.shape.dim] == ["batch"]
    (got,) = run(exported, X)
    assert got.shape == (len(X),)
    assert_close(got, model.predict(X))


def test_float64_model_runs_in_float32(stream):
    # onnxruntime's LSTM is float32 only: the export rounds a float64 model's
    # weights, so it agrees with predict to float32 rounding, not better.
    X, Y = stream
    model = RNNRegressor(8, window=WINDOW, max_iter=2, random_state=0, dtype=np.float64)
    model.fit(X.astype(np.float64), Y)
    exported = to_onnx(model)
    assert {i.data_type for i in exported.graph.initializer if i.name.startswith("W_")} == {
        onnx.TensorProto.FLOAT
    }
    (got,) = run(exported, stream_windows(X))
    assert_close(got, model.predict(X)[WINDOW - 1 :], rtol=1e-4)


# ----------------------------------------------------------------------
# RNNClassifier
# ----------------------------------------------------------------------
def labels(X, kind):
    s = X[..., 0] if X.ndim == 2 else X[:, -1, 0]
    if kind == "binary":
        return (s > 0).astype(np.int64) + 3  # int labels 3 and 4
    return np.where(s > 0.5, "high", np.where(s < -0.5, "low", "mid"))


@pytest.mark.parametrize("kind", ["binary", "multiclass"])
@pytest.mark.parametrize("layers", LAYERS.values(), ids=LAYERS.keys())
@pytest.mark.parametrize("cell", CELLS)
def test_classifier_matches_predict_and_predict_proba(cell, layers, kind, stream, batch):
    X = stream[0]
    clf = RNNClassifier(layers, cell=cell, window=WINDOW, max_iter=2, random_state=0)
    clf.fit(X, labels(X, kind))
    exported = to_onnx(clf)
    check_model(exported, ["X"], ["label", "probabilities"])
    label, proba = run(exported, stream_windows(X))
    assert proba.dtype == np.float32 and proba.shape == (len(X) - WINDOW + 1, len(clf.classes_))
    assert_close(proba, clf.predict_proba(X)[WINDOW - 1 :])
    np.testing.assert_array_equal(label, clf.predict(X)[WINDOW - 1 :])
    if kind == "binary":
        assert label.dtype == np.int64
    meta = {p.key: p.value for p in exported.metadata_props}
    assert json.loads(meta["classes"]) == clf.classes_.tolist()
    Xb = batch[0]
    label, proba = run(exported, Xb)
    assert_close(proba, clf.predict_proba(Xb))
    np.testing.assert_array_equal(label, clf.predict(Xb))


def test_classifier_labels_keep_their_type(batch):
    X = batch[0]
    y = X[:, -1, 0] > 0
    for classes in (y, np.where(y, 1.0, -1.0), np.where(y, 7, -7).astype(np.int32)):
        clf = RNNClassifier(8, max_iter=1, random_state=0).fit(X, classes)
        label, _ = run(to_onnx(clf), X)
        np.testing.assert_array_equal(label, clf.predict(X))
        assert label.dtype == clf.classes_.dtype


def test_classifier_tiny_probabilities_keep_their_precision(batch):
    # Saturated binary output: P(class 0) is tiny. 1 - sigmoid(z) in float32
    # would round it to 0, and onnxruntime's Sigmoid(-z) was 1% off.
    X = batch[0]
    clf = RNNClassifier(8, max_iter=1, random_state=0).fit(X, X[:, -1, 0] > 0)
    clf.load_state_dict({**clf.state_dict(), "head.bias": np.array([12.0])})
    _, proba = run(to_onnx(clf), X)
    want = clf.predict_proba(X)
    assert want[:, 0].max() < 1e-4
    assert_close(proba[:, 0], want[:, 0])


# ----------------------------------------------------------------------
# Every architecture: hypothesis over the shapes
# ----------------------------------------------------------------------
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cell=st.sampled_from(CELLS),
    hidden=st.lists(st.integers(1, 6), min_size=1, max_size=3),
    n_features=st.integers(1, 4),
    n_outputs=st.integers(1, 3),
    steps=st.integers(1, 5),
    n_sequences=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_any_architecture_matches_predict(cell, hidden, n_features, n_outputs, steps,
                                          n_sequences, seed):
    # Width-1 layers, one feature, one step, a batch of one: the shapes where a
    # Squeeze or Reshape would drop the wrong axis. Random weights of order
    # one, so every layer matters.
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_sequences, steps, n_features)).astype(np.float32)
    y = rng.normal(size=(n_sequences, n_outputs)).squeeze(axis=1 if n_outputs == 1 else ())
    model = RNNRegressor(hidden, cell=cell, max_iter=1, random_state=0).fit(X, y)
    model.load_state_dict({k: rng.normal(size=v.shape) for k, v in model.state_dict().items()})
    (got,) = run(to_onnx(model), X)
    # Weights of order one: float32 rounding is of the order of the terms that
    # make an output, even when they cancel to a small one (hypothesis found
    # -3.6e-4 from a peephole layer of width 2, off by 6e-8).
    assert_close(got, model.predict(X), scale=max(1.0, np.abs(model.predict(X)).max()))


# ----------------------------------------------------------------------
# Errors, saving, no torch
# ----------------------------------------------------------------------
def test_unfitted_and_foreign_estimators_are_refused():
    with pytest.raises(NotFittedError, match="RNNRegressor instance is not fitted"):
        to_onnx(RNNRegressor())
    from sklearn.linear_model import Ridge

    with pytest.raises(TypeError, match="converts a fitted RNNRegressor.*got Ridge"):
        to_onnx(Ridge())


def test_save_onnx_writes_a_loadable_file(tmp_path, batch):
    X, y = batch
    model = RNNRegressor(8, max_iter=1, random_state=0).fit(X, y)
    path = tmp_path / "model.onnx"
    returned = save_onnx(model, path)
    assert returned.SerializeToString() == onnx.load(path).SerializeToString()
    (got,) = session(onnx.load(path)).run(None, {"X": X})
    assert_close(got, model.predict(X))
    assert os.listdir(tmp_path) == ["model.onnx"]  # no temporary file left
    # Permissions of any new file (the umask's), not a temporary file's 0600.
    (tmp_path / "plain").write_bytes(b"")
    assert path.stat().st_mode == (tmp_path / "plain").stat().st_mode


def test_save_onnx_refuses_a_bad_path(tmp_path, batch):
    X, y = batch
    model = RNNRegressor(8, max_iter=1, random_state=0).fit(X, y)
    with pytest.raises(TypeError, match="path must be a str or os.PathLike, got int"):
        save_onnx(model, 3)
    with pytest.raises(FileNotFoundError, match="no_such_dir"):
        save_onnx(model, tmp_path / "no_such_dir" / "model.onnx")
    (tmp_path / "model.onnx").mkdir()
    with pytest.raises(IsADirectoryError, match="model.onnx"):
        save_onnx(model, tmp_path / "model.onnx")
    assert os.listdir(tmp_path) == ["model.onnx"]  # the temporary file was removed


def test_save_onnx_failure_leaves_the_old_file(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"old")
    with pytest.raises(NotFittedError, match="not fitted"):
        save_onnx(RNNRegressor(), path)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["model.onnx"]


def test_export_never_imports_torch():
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from tsrnn import RNNRegressor\n"
        "from tsrnn.onnx import to_onnx\n"
        "X = np.random.default_rng(0).normal(size=(30, 2))\n"
        "to_onnx(RNNRegressor(4, window=3, max_iter=1, random_state=0).fit(X, X[:, 0]))\n"
        "print('torch' in sys.modules)\n"
    )
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True,
                          text=True, timeout=120, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_without_onnx_the_import_says_which_extra():
    code = (
        "import sys; sys.modules['onnx'] = None\n"  # as if onnx were not installed
        "import tsrnn\n"  # the package itself does not need onnx
        "try:\n"
        "    import tsrnn.onnx\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "pip install 'tsrnn[onnx]'" in proc.stdout


@pytest.mark.parametrize("kw, y_shape, match", [
    (dict(bidirectional=True), (6,), "does not export bidirectional models"),
    ({}, (6, 4, 1), "does not export models with a target at every step"),
])
def test_models_the_graph_cannot_express_are_refused(kw, y_shape, match):
    rng = np.random.RandomState(0)
    model = RNNRegressor(hidden_layer_sizes=3, max_iter=1, random_state=0, **kw)
    model.fit(rng.randn(6, 4, 2), rng.randn(*y_shape))
    with pytest.raises(ValueError, match=match):
        to_onnx(model)
