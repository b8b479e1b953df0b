"""The ONNX pieces every tsrnn export shares: recurrent layers, the head, a graph.

Design
------
``tsrnn.onnx`` turns fitted estimators into ONNX graphs made of standard
operators only, so any ONNX runtime runs them without custom kernels. This
module holds what the exports of all three estimators (and
``benchmarks/bench_latency.py``) share:

* :func:`layer_weights` converts one recurrent layer's weights from PyTorch's
  layout (tsrnn's) to the inputs of ONNX's ``LSTM`` / ``GRU`` operators. Only
  the gate order differs: ONNX wants LSTM gates as [i, o, f, c] where torch
  has [i, f, g, o], and GRU gates as [z, r, h] where torch has [r, z, n].
  The peephole cell is ONNX's LSTM with its ``P`` input, [p_i, p_o, p_f]:
  tsrnn's ``weight_ci`` / ``weight_cf`` act on c(t-1) and ``weight_co`` on
  c(t), exactly as ONNX's P terms do.
* :func:`recurrent_node` makes the operator. The GRU gets
  ``linear_before_reset=1``: torch (and tsrnn) apply the reset gate after the
  hidden matmul and its bias, ``r * (W_hn h + b_hn)``, which is ONNX's
  ``linear_before_reset=1``; the default 0 would be ``W_hn (r * h)``.
* :class:`GraphBuilder` collects nodes and constants under unique names and
  makes the checked ``ModelProto``; :meth:`GraphBuilder.network` adds the
  estimator's stack of recurrent layers and its dense head.

Opset. Every graph imports the default ONNX domain at :data:`OPSET` (17:
LSTM-14, GRU-14, Squeeze-13, Pad-13, TopK-11), which onnxruntime supports
since 1.13, and declares the oldest IR version that opset allows, so older
runtimes load the files too. The recurrent operators run in float32:
onnxruntime implements LSTM and GRU for float32 only (checked with
onnxruntime 1.32: "LSTM operator does not support double yet"), and only
time-major (``layout=0``), so the batch-first input is transposed first.
"""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tsrnn import __version__

OPSET = 17
FLOAT, DOUBLE = TensorProto.FLOAT, TensorProto.DOUBLE

# torch's gate blocks in ONNX's order: LSTM [i, o, f, c] from torch's
# [i, f, g, o]; GRU [z, r, h] from torch's [r, z, n].
_ONNX_GATE_BLOCKS = {"lstm": (0, 3, 1, 2), "peephole": (0, 3, 1, 2), "gru": (1, 0, 2)}


def _onnx_gate_order(a, cell, hidden_size):
    """Reorder the gate blocks (along axis 0) of a torch-layout array for ONNX."""
    return np.concatenate(
        [a[b * hidden_size : (b + 1) * hidden_size] for b in _ONNX_GATE_BLOCKS[cell]]
    )


def layer_weights(cell, params, layer=0):
    """ONNX inputs ``{"W", "R", "B"[, "P"]}`` of recurrent layer ``layer``.

    ``params`` holds the layer's arrays under torch's names
    (``weight_ih_l{layer}``, ...), as ``tsrnn.functional`` and the
    estimators' ``rnn_params_`` do. Each result is float32 with ONNX's leading
    ``num_directions`` axis of 1: W (1, G*H, D), R (1, G*H, H), B (1, 2*G*H)
    (input biases, then hidden biases), P (1, 3*H).
    """
    hidden = params[f"weight_hh_l{layer}"].shape[1]

    def order(name):
        return _onnx_gate_order(np.asarray(params[f"{name}_l{layer}"]), cell, hidden)

    out = {
        "W": order("weight_ih"),
        "R": order("weight_hh"),
        "B": np.concatenate([order("bias_ih"), order("bias_hh")]),
    }
    if cell == "peephole":
        out["P"] = np.concatenate(
            [np.asarray(params[f"weight_c{g}_l{layer}"]) for g in "iof"]
        )
    return {k: np.ascontiguousarray(v, dtype=np.float32)[None] for k, v in out.items()}


def recurrent_node(cell, inputs, outputs, hidden_size, name=None):
    """ONNX ``LSTM`` (lstm, peephole) or ``GRU`` node with tsrnn's equations.

    ``inputs`` are the names of X (T, B, D), W, R, B and, for the peephole
    cell, P; ``outputs`` the names of Y (T, 1, B, H), Y_h (1, B, H) and, for
    the LSTM cells, optionally Y_c. An empty name leaves an output out.
    """
    if cell == "peephole":
        if len(inputs) != 5:
            raise ValueError("a peephole layer takes X, W, R, B and P")
        # sequence_lens, initial_h and initial_c are absent: zero initial state.
        inputs = list(inputs[:4]) + ["", "", ""] + [inputs[4]]
    attrs = {"hidden_size": int(hidden_size)}
    if cell == "gru":
        attrs["linear_before_reset"] = 1
    op = "GRU" if cell == "gru" else "LSTM"
    return helper.make_node(op, list(inputs), list(outputs), name=name, **attrs)


class GraphBuilder:
    """Collects the nodes, constants, inputs and outputs of one ONNX graph.

    Every node output and constant gets a fresh name from a hint, so the
    export functions pass names around and never have to invent unique ones.
    """

    def __init__(self, name):
        self.name = name
        self.nodes, self.initializers = [], []
        self.inputs, self.outputs = [], []
        self._used = set()

    def fresh(self, hint):
        """A name not used yet in this graph, built from ``hint``."""
        name, k = hint, 1
        while name in self._used:
            name, k = f"{hint}_{k}", k + 1
        self._used.add(name)
        return name

    def const(self, value, hint, dtype=None):
        """Name of a constant (an initializer) holding ``value``."""
        array = np.asarray(value, dtype=dtype)
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def ints(self, values, hint="shape"):
        """Name of an int64 constant: shapes, axes, indices."""
        return self.const(np.asarray(values, dtype=np.int64), hint)

    def op(self, op_type, inputs, hint=None, n_outputs=1, **attrs):
        """Add a node; returns its output's name (a list when ``n_outputs > 1``)."""
        outs = [self.fresh(hint or op_type.lower()) for _ in range(n_outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, **attrs))
        return outs[0] if n_outputs == 1 else outs

    def cast(self, x, to, hint=None):
        """``x`` as the ONNX element type ``to``."""
        return self.op("Cast", [x], hint or "cast", to=to)

    def add_input(self, name, elem_type, shape, doc=""):
        self._used.add(name)
        self.inputs.append(helper.make_tensor_value_info(name, elem_type, shape, doc))
        return name

    def add_output(self, value, name, elem_type, shape, doc=""):
        """Expose ``value`` as the graph output ``name``."""
        self._used.add(name)
        self.nodes.append(helper.make_node("Identity", [value], [name]))
        self.outputs.append(helper.make_tensor_value_info(name, elem_type, shape, doc))

    # ------------------------------------------------------------------
    # The estimators' network: recurrent layers and the dense head
    # ------------------------------------------------------------------
    def network(self, estimator, x):
        """Raw outputs (B, n_outputs), float32, of a fitted estimator's network.

        ``x`` is the name of its float32 input (B, T, D), batch-first as
        tsrnn's. The top layer's final hidden state feeds the head, as in
        ``BaseRNN._raw_predict_sequences``.
        """
        cell, params = estimator._cell, estimator.rnn_params_
        n_layers = sum(1 for k in params if k.startswith("weight_ih_l"))
        h = self.op("Transpose", [x], "time_major", perm=[1, 0, 2])  # (T, B, D)
        for k in range(n_layers):
            hidden = params[f"weight_hh_l{k}"].shape[1]
            weights = [
                self.const(a, f"{key}_l{k}") for key, a in layer_weights(cell, params, k).items()
            ]
            y, y_h = self.fresh(f"Y_l{k}"), self.fresh(f"Y_h_l{k}")
            last = k == n_layers - 1
            # A lower layer's whole sequence feeds the next; the top layer's
            # final state feeds the head.
            outputs = ["", y_h] if last else [y, ""]
            self.nodes.append(recurrent_node(cell, [h] + weights, outputs, hidden, f"{cell}_l{k}"))
            if not last:
                h = self.op("Squeeze", [y, self.ints([1], "axes")], f"seq_l{k}")  # (T, B, H)
        top = self.op("Squeeze", [y_h, self.ints([0], "axes")], "top_state")  # (B, H)
        weight = np.asarray(estimator.head_weight_, dtype=np.float32)
        bias = np.asarray(estimator.head_bias_, dtype=np.float32)
        z = self.op("MatMul", [top, self.const(weight.T, "head_weight_t")], "head_matmul")
        return self.op("Add", [z, self.const(bias, "head_bias")], "raw_outputs")

    # ------------------------------------------------------------------
    # The model
    # ------------------------------------------------------------------
    def model(self, doc, metadata=None):
        """The checked ``ModelProto`` of the graph built so far."""
        graph = helper.make_graph(
            self.nodes, self.name, self.inputs, self.outputs, initializer=self.initializers
        )
        opsets = [helper.make_opsetid("", OPSET)]
        model = helper.make_model(
            graph,
            opset_imports=opsets,
            ir_version=helper.find_min_ir_version_for(opsets),
            producer_name="tsrnn",
            producer_version=__version__,
            doc_string=doc,
        )
        if metadata:
            helper.set_model_props(model, {k: str(v) for k, v in metadata.items()})
        # full_check also runs shape inference, which catches a mis-wired node
        # here rather than in the user's runtime.
        onnx.checker.check_model(model, full_check=True)
        return model

