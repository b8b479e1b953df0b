"""Export of fitted tsrnn estimators to ONNX, for serving without tsrnn.

Design
------
``to_onnx(estimator)`` returns an ``onnx.ModelProto`` built from standard
operators only (``LSTM``, ``GRU``, and elementwise and shape operators), so
any ONNX runtime can serve the model: no tsrnn, torch or custom operator at
inference. The exported model takes raw values and returns what ``predict``
(or ``predict_proba``) returns, to float32 rounding. The graphs are built
with ``onnx.helper``; the pieces shared by all estimators (the recurrent
layers, the head, the graph itself) live in ``_onnx_graph.py``, the
forecaster's stages in ``_onnx_forecaster.py``. This module holds the public
functions and the regressor's and classifier's graphs.

Opset: the default ONNX domain at version 17 (:data:`OPSET`). The
recurrent layers run in float32, whatever the estimator's ``dtype``:
onnxruntime's LSTM and GRU exist for float32 only, so a ``float64`` model is
rounded to float32 weights (its forecasts then agree with ``predict`` to
about 1e-6 relative instead of to rounding).

Contracts (input and output names, shapes and element types):

* ``RNNRegressor``: input ``"X"`` float32 ``(batch, steps, n_features_in_)``,
  a batch of sequences as ``predict`` takes them in 3-D. For a model of a
  2-D stream, the prediction for a row is that of the window ending at it:
  pass ``steps = window`` rows (fewer for the first ``window - 1`` rows of a
  stream, as ``predict`` does), e.g. ``sliding_window_view(X, window,
  axis=0).transpose(0, 2, 1)``. Output ``"predictions"`` float32,
  ``(batch,)`` for one target and ``(batch, n_outputs_)`` for several, as
  ``predict`` returns.
* ``RNNClassifier``: the same input; outputs ``"label"`` ``(batch,)`` with
  the type of ``classes_`` (int64, string, ...) and ``"probabilities"``
  float32 ``(batch, n_classes)`` in the order of ``classes_``, the two
  outputs skl2onnx gives a scikit-learn classifier (with ``zipmap=False``).
* ``RNNForecaster``: see ``_onnx_forecaster.py`` and :func:`to_onnx`.

Nothing in the graph validates its input: NaN in gives NaN out, where
``predict`` would raise.
"""

import json
import os
import uuid

import numpy as np

try:
    from onnx import TensorProto, numpy_helper
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "tsrnn.onnx needs the onnx package, an optional extra: "
        "pip install 'tsrnn[onnx]' (and onnxruntime to run the exported models)."
    ) from exc
from sklearn.utils.validation import check_is_fitted

from tsrnn._classifier import RNNClassifier
from tsrnn._forecaster import RNNForecaster
from tsrnn._onnx_graph import FLOAT, OPSET, GraphBuilder
from tsrnn._regressor import RNNRegressor

__all__ = ["OPSET", "save_onnx", "to_onnx"]


def to_onnx(estimator):
    """Convert a fitted estimator into an ONNX model.

    Parameters
    ----------
    estimator : RNNRegressor, RNNClassifier or RNNForecaster
        A fitted estimator.

    Returns
    -------
    model : onnx.ModelProto
        A model of opset :data:`OPSET` (17) that passes
        ``onnx.checker.check_model(model, full_check=True)``. Save it with
        :func:`save_onnx` or ``onnx.save``.

        * RNNRegressor: input ``"X"`` float32 ``(batch, steps,
          n_features_in_)``, features in the order of the training X
          (``feature_names_in_`` for a DataFrame), output
          ``"predictions"`` float32 ``(batch,)`` (one target) or
          ``(batch, n_outputs_)``. A stream model predicts row i from the
          window ending at it: ``steps = window`` rows.
        * RNNClassifier: the same input, outputs ``"label"`` ``(batch,)``
          (values of ``classes_``) and ``"probabilities"`` float32
          ``(batch, n_classes)``.
        * RNNForecaster: input ``"window"`` float32 ``(batch, window_,
          n_columns)``, the last ``window_`` rows before each forecast
          origin (the origin included) of the training frame's numeric
          columns, in the order of ``feature_names_in_`` (``series_id``
          and non-numeric columns left out); the list is also stored in the
          model's metadata as ``window_columns``. With known-future
          covariates, a second input ``"future"`` float32 ``(batch,
          horizon, n_known)`` holds their values for the ``horizon`` steps
          after the origin, in the order of ``known_future_``. With
          calendar inputs (``calendar=``), ``"timestamps"`` int64
          ``(batch, window_ + horizon)`` holds the wall-clock time of the
          window's rows and of the ``horizon`` steps after the origin, in
          whole seconds since 1970-01-01 (an aware index in its own zone);
          the graph computes the calendar columns from it. With seasonal
          lag inputs (``season_lags=``), ``"lagged"`` float32 ``(batch,
          window_ + horizon, n_lags * n_targets)`` holds, lag by lag, the
          raw targets that many steps before each of those rows (NaN
          where unknown). A
          forecaster of several series scaled per series
          (``scaling="series"``) takes ``"series"`` int64 ``(batch,)``,
          each row's position in ``series_ids_``. Output
          ``"forecast"`` float32 ``(batch, horizon, n_targets)`` in the
          order of ``target_``, with a last axis of ``len(quantiles_)``
          (in increasing order) when the forecaster has quantiles. Each row
          of the batch is one forecast, from any series of the training
          frame: the same numbers ``predict`` returns for that history.

    Raises
    ------
    TypeError
        ``estimator`` is not one of the three tsrnn estimators.
    sklearn.exceptions.NotFittedError
        ``estimator`` is not fitted.
    ValueError
        The fitted model uses something the graph cannot express: for the
        forecaster ``missing="interpolate"`` or ``"mask"`` (gap filling), for
        the regressor and classifier ``bidirectional=True`` or a target at
        every step; the message names it.

    Examples
    --------
    A regressor of 3-D sequences, served by onnxruntime:

    >>> import numpy as np
    >>> import onnxruntime as ort
    >>> from tsrnn import RNNRegressor
    >>> from tsrnn.onnx import to_onnx
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(64, 5, 2)), rng.normal(size=64)
    >>> reg = RNNRegressor(hidden_layer_sizes=8, max_iter=2, random_state=0).fit(X, y)
    >>> model = to_onnx(reg)
    >>> [i.name for i in model.graph.input], [o.name for o in model.graph.output]
    (['X'], ['predictions'])
    >>> session = ort.InferenceSession(model.SerializeToString())
    >>> (predictions,) = session.run(None, {"X": X[:4].astype(np.float32)})
    >>> bool(np.allclose(predictions, reg.predict(X[:4]), rtol=1e-5, atol=1e-6))
    True
    """
    if isinstance(estimator, RNNForecaster):
        from tsrnn._onnx_forecaster import forecaster_model

        check_is_fitted(estimator)
        return forecaster_model(estimator)
    if isinstance(estimator, (RNNRegressor, RNNClassifier)):
        check_is_fitted(estimator)
        # Not exported yet; refused so that no graph answers differently
        # from predict.
        if estimator._directions == 2:
            raise ValueError("to_onnx does not export bidirectional models yet.")
        if estimator._per_step:
            raise ValueError("to_onnx does not export models with a target at every "
                             "step yet.")
        if isinstance(estimator, RNNClassifier):
            return _classifier_model(estimator)
        return _regressor_model(estimator)
    raise TypeError(
        "to_onnx converts a fitted RNNRegressor, RNNClassifier or RNNForecaster, "
        f"got {type(estimator).__name__}."
    )


def save_onnx(estimator, path):
    """Export a fitted estimator with :func:`to_onnx` and write it to ``path``.

    The file is written next to its destination under a temporary name and
    renamed into place once complete, so a failure never leaves a partial
    file at ``path`` (nor replaces one that was there).

    Parameters
    ----------
    estimator : RNNRegressor, RNNClassifier or RNNForecaster
        A fitted estimator.
    path : str or os.PathLike
        Destination file, e.g. ``"model.onnx"``.

    Returns
    -------
    model : onnx.ModelProto
        The model that was written.

    Examples
    --------
    >>> import os, tempfile
    >>> import onnx
    >>> from tsrnn import RNNForecaster
    >>> from tsrnn.datasets import load_weather
    >>> from tsrnn.onnx import save_onnx
    >>> df = load_weather()[["temp_air", "dew_point"]].iloc[:500]
    >>> f = RNNForecaster(target="temp_air", window=24, horizon=6, max_iter=2,
    ...                   random_state=0).fit(df)
    >>> path = os.path.join(tempfile.mkdtemp(), "forecaster.onnx")
    >>> _ = save_onnx(f, path)
    >>> [o.name for o in onnx.load(path).graph.output]
    ['forecast']
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}.")
    model = to_onnx(estimator)
    path = os.fspath(path)
    # A fresh name beside the destination, created with the permissions of any
    # new file (tempfile's would be 0600, unreadable by a serving account),
    # and renamed over it only once it is complete.
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)),
                       f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "xb") as f:
            f.write(model.SerializeToString())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return model


# ----------------------------------------------------------------------
# RNNRegressor and RNNClassifier
# ----------------------------------------------------------------------
def _sequence_input(g, estimator):
    return g.add_input(
        "X", FLOAT, ["batch", "steps", estimator.n_features_in_],
        "Sequences (batch, steps, n_features), batch-first. For a stream model, "
        f"the window of {estimator.window} rows ending at the row to predict.",
    )


def _metadata(estimator):
    meta = {"estimator": type(estimator).__name__, "cell": estimator._cell,
            "window": estimator.window}
    if hasattr(estimator, "feature_names_in_"):
        meta["feature_names_in"] = json.dumps(estimator.feature_names_in_.tolist())
    return meta


def _regressor_model(est):
    g = GraphBuilder("tsrnn_RNNRegressor")
    z = g.network(est, _sequence_input(g, est))
    if est.n_outputs_ == 1:
        # predict returns (n,) for a single target, as scikit-learn regressors do.
        z = g.op("Reshape", [z, g.ints([-1])], "flat")
        shape = ["batch"]
    else:
        shape = ["batch", est.n_outputs_]
    g.add_output(z, "predictions", FLOAT, shape, "RNNRegressor.predict")
    return g.model("tsrnn RNNRegressor: predict(X) of a batch of sequences.", _metadata(est))


def _label_tensor(classes):
    """``classes_`` as an array ONNX can hold, and its ONNX element type.

    Labels keep their type: strings become an ONNX string tensor, numbers and
    bools a tensor of their dtype.
    """
    classes = np.asarray(classes)
    if classes.dtype.kind in "OUS":
        values = classes.tolist()
        if not all(isinstance(c, str) for c in values):
            raise TypeError(
                "to_onnx supports class labels that are all strings or all numbers "
                f"(or bool); classes_ holds {sorted({type(c).__name__ for c in values})}."
            )
        classes = np.array(values, dtype=object)
    return classes, numpy_helper.from_array(classes, "classes").data_type


def _classifier_model(est):
    g = GraphBuilder("tsrnn_RNNClassifier")
    z = g.network(est, _sequence_input(g, est))
    classes, label_type = _label_tensor(est.classes_)
    if est.n_outputs_ == 1:
        # One logit z: P(classes_) = softmax([0, z]) = [sigmoid(-z), sigmoid(z)].
        # onnxruntime's Sigmoid loses the relative precision of outputs near 0
        # (it measured 1% off at 7.6e-6), its Softmax keeps it.
        pair = g.op("Pad", [z, g.ints([0, 1, 0, 0], "pads")], "zero_and_logit")
        proba = g.op("Softmax", [pair], "proba", axis=1)
        # The label is classes_[1] where z > 0, as predict decides.
        positive = g.op("Greater", [z, g.const(np.zeros(1, np.float32), "zero")])
        code = g.op("Reshape", [g.cast(positive, TensorProto.INT64), g.ints([-1])], "code")
    else:
        proba = g.op("Softmax", [z], "proba", axis=1)
        # From the logits, as predict decides: the same argmax, ties included.
        code = g.op("ArgMax", [z], "code", axis=1, keepdims=0)
    label = g.op("Gather", [g.const(classes, "classes"), code], "label_values", axis=0)
    g.add_output(label, "label", label_type, ["batch"], "RNNClassifier.predict")
    g.add_output(proba, "probabilities", FLOAT, ["batch", len(classes)],
                 "RNNClassifier.predict_proba, columns in the order of classes_")
    meta = _metadata(est)
    meta["classes"] = json.dumps(classes.tolist())
    return g.model(
        "tsrnn RNNClassifier: predict(X) and predict_proba(X) of a batch of sequences.", meta
    )
