"""Validated low-level API over the recurrent kernels.

Three functions, in the style of a deep-learning framework's functional layer::

    params = init_params(cell, input_size, hidden_size, num_layers=1)
    out, state, cache = rnn_forward(cell, x, params, state=None, training=True)
    dx, grads, dstate = rnn_backward(dout, cache, dstate=None)

A cache serves one backward call: the kernels write the gate gradients over
the stored activations (``retain_cache=True`` keeps it).

``params`` is a plain dict of NumPy arrays whose names, shapes and gate order are
exactly those of ``torch.nn.LSTM(...).state_dict()`` / ``torch.nn.GRU(...)``, so
a model trained in PyTorch loads with ``{k: v.numpy() for k, v in sd.items()}``
and the reverse works too. The peephole cell adds three diagonal vectors per
layer, ``weight_ci_l{k}``, ``weight_cf_l{k}`` and ``weight_co_l{k}`` (H,).

All validation happens here; ``tsrnn._cells`` only re-checks buffer shapes.
The user's batch-first arrays are copied once into the time-major, contiguous
layout the kernels use, which is also what makes read-only, Fortran-ordered
and strided inputs safe.
"""
import contextlib
import functools
from collections.abc import Mapping
from time import perf_counter as _perf_counter

import numpy as np
from sklearn.utils import check_random_state
from threadpoolctl import ThreadpoolController

from . import _cells, _load
from ._packing import check_lengths

__all__ = ["CELLS", "init_params", "rnn_forward", "rnn_backward", "param_shapes",
           "layer_param_shapes"]

#: The cells every function here takes: ``"lstm"``, ``"gru"`` (PyTorch's
#: gate order, reset gate after the hidden product) and ``"peephole"`` (an
#: LSTM whose gates also read the cell state).
CELLS = ("lstm", "gru", "peephole")
_N_GATES = {"lstm": 4, "gru": 3, "peephole": 4}
_CELL_CODE = {
    "lstm": _cells.CELL_LSTM,
    "gru": _cells.CELL_GRU,
    "peephole": _cells.CELL_PEEPHOLE,
}
_PEEPHOLE_NAMES = ("weight_ci", "weight_cf", "weight_co")

_blas_controller = None


def _single_threaded_blas():
    """Context limiting BLAS to one thread while the OpenMP kernels run.

    The kernels call BLAS from inside parallel regions; a threaded BLAS there
    oversubscribes the cores (measured ~50x slower). The controller is built
    once because scanning the loaded libraries is the expensive part.
    """
    global _blas_controller
    if _blas_controller is None:
        _blas_controller = ThreadpoolController().select(user_api="blas")
    return _blas_limited_to_one(_blas_controller.lib_controllers)


@contextlib.contextmanager
def _blas_limited_to_one(libs):
    # threadpoolctl's limit() re-reads the state of every library (~30 us, a
    # tenth of a small training step); reading and setting each BLAS's thread
    # count directly is a C call each, and a caller that already limited BLAS
    # (the estimators do, once per fit) pays only the reads.
    changed = [(lib, lib.num_threads) for lib in libs if lib.num_threads != 1]
    for lib, _ in changed:
        lib.set_num_threads(1)
    try:
        yield
    finally:
        for lib, n in changed:
            lib.set_num_threads(n)


# Below this many multiply-adds per layer call (T*B*G*H*(D+H)) a call runs on
# one thread: waking a second thread costs more than it saves, and far more
# when another process holds the other core and libgomp's woken thread
# spin-waits against it (measured 20-60x slower on a loaded 2-core machine).
_SERIAL_WORK = 1 << 21

# The reverse flags of a layer's directions, by number of directions.
_DIRECTIONS = {1: (False,), 2: (False, True)}

# Largest gate buffer of every step (bytes) that inference allocates, so that
# the kernel projects the input of all steps at once; beyond it, one step.
_ALL_STEPS_BYTES = 1 << 18


def _threading(batch, work):
    """Return (thread cap, chunk rows) for one layer call.

    One thread below ``_SERIAL_WORK`` multiply-adds; above, one thread or
    the OpenMP thread count (OMP_NUM_THREADS, threadpoolctl), whichever
    ``_load.choose`` measured faster for calls of this size: on a shared
    machine a parallel region whose second thread waits for a busy core ran
    3-10x slower than one thread, and on an oversubscribed one two threads
    got twice the share. The callers report each layer call's kernel time
    to ``_load.record``.

    One chunk per thread, 8 to 64 rows: bigger chunks amortise the per-step
    overhead of the recurrent micro-kernel, and one chunk per thread balances
    the static schedule. Each row's arithmetic is the same whichever chunk
    holds it (tests/test_functional.py checks this bitwise), so following the
    thread count here never makes results depend on it.
    """
    n_threads = 1 if work < _SERIAL_WORK else _load.choose(work, max(1, _cells.max_threads()))
    per_thread = -(-batch // n_threads)
    return n_threads, int(min(64, max(8, -(-per_thread // 8) * 8)))


def _check_cell(cell):
    if not isinstance(cell, str) or cell not in CELLS:
        raise ValueError(f"unknown cell {cell!r}; expected one of {CELLS}")
    return cell


def _is_lstm(cell):
    return cell != "gru"


def layer_param_shapes(cell, input_size, hidden_size, layer=0, bidirectional=False):
    """Names and shapes of the parameters of one recurrent layer.

    The single definition of the weight layout: :func:`param_shapes`,
    :func:`init_params` and the validation of ``params`` build on it, and so
    should any other code that lays weights out (the estimators' flat
    buffer). Returns ``{name: shape}`` in the order of ``torch.nn.LSTM``'s
    state_dict for that layer, then the peephole vectors:
    ``weight_ih_l{layer}`` (G*H, input_size), ``weight_hh_l{layer}`` (G*H, H),
    ``bias_ih_l{layer}`` and ``bias_hh_l{layer}`` (G*H,), and for the peephole
    cell ``weight_ci_l{layer}``, ``weight_cf_l{layer}``, ``weight_co_l{layer}``
    (H,); G is 4 (i, f, g, o) for the LSTM cells and 3 (r, z, n) for the GRU.
    A bidirectional layer has the same arrays again for its reverse direction,
    named with torch's ``_reverse`` suffix (``weight_ih_l0_reverse``, ...).
    As in torch, the names that start with ``bias_`` are the biases and every
    other array is a weight.

    Examples
    --------
    >>> from tsrnn.functional import layer_param_shapes
    >>> layer_param_shapes("gru", input_size=3, hidden_size=8, layer=1)
    {'weight_ih_l1': (24, 3), 'weight_hh_l1': (24, 8), 'bias_ih_l1': (24,), 'bias_hh_l1': (24,)}
    >>> list(layer_param_shapes("gru", 3, 8, bidirectional=True))[4:6]
    ['weight_ih_l0_reverse', 'weight_hh_l0_reverse']
    """
    _check_cell(cell)
    gh = _N_GATES[cell] * hidden_size
    shapes = {}
    for suffix in ("", "_reverse") if bidirectional else ("",):
        shapes[f"weight_ih_l{layer}{suffix}"] = (gh, input_size)
        shapes[f"weight_hh_l{layer}{suffix}"] = (gh, hidden_size)
        shapes[f"bias_ih_l{layer}{suffix}"] = (gh,)
        shapes[f"bias_hh_l{layer}{suffix}"] = (gh,)
        if cell == "peephole":
            for name in _PEEPHOLE_NAMES:
                shapes[f"{name}_l{layer}{suffix}"] = (hidden_size,)
    return shapes


def param_shapes(cell, input_size, hidden_size, num_layers=1, bidirectional=False):
    """Names and shapes of the parameters of a stacked recurrent net.

    Returns a dict ``{name: shape}``: :func:`layer_param_shapes` of each layer
    in turn, the first taking ``input_size`` inputs and the others the
    output of the layer below: ``hidden_size``, or ``2 * hidden_size`` when
    ``bidirectional`` (both directions' outputs side by side, as in torch).

    Examples
    --------
    >>> from tsrnn.functional import param_shapes
    >>> shapes = param_shapes("lstm", input_size=3, hidden_size=8, num_layers=2)
    >>> shapes["weight_ih_l0"], shapes["weight_ih_l1"]
    ((32, 3), (32, 8))
    >>> param_shapes("lstm", 3, 8, num_layers=2, bidirectional=True)["weight_ih_l1"]
    (32, 16)
    """
    shapes = {}
    width = hidden_size * (2 if bidirectional else 1)
    for k in range(num_layers):
        shapes.update(layer_param_shapes(
            cell, input_size if k == 0 else width, hidden_size, layer=k,
            bidirectional=bidirectional))
    return shapes


def _check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


def init_params(cell, input_size, hidden_size, num_layers=1, dtype=np.float32,
                random_state=None, forget_bias=None, bidirectional=False):
    """Initialise the weights of a stacked LSTM, GRU or peephole LSTM.

    Every array is drawn from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), as
    PyTorch does, in the order of :func:`param_shapes`.

    Parameters
    ----------
    cell : {"lstm", "gru", "peephole"}
    input_size, hidden_size, num_layers : int
    dtype : float32 or float64
    random_state : int, RandomState instance or None
    forget_bias : float or None
        For the LSTM cells, set ``bias_ih[H:2H]`` to this value and
        ``bias_hh[H:2H]`` to zero, so the forget gate starts open. Ignored by
        the GRU.
    bidirectional : bool, default=False
        Add a reverse direction to every layer, under torch's names
        (``weight_ih_l0_reverse``, ...); :func:`rnn_forward` then runs both.

    Returns
    -------
    params : dict of ndarray
        Keyed and shaped as ``torch.nn.LSTM``'s (``GRU``'s) state_dict.

    Examples
    --------
    >>> from tsrnn.functional import init_params
    >>> params = init_params("lstm", input_size=3, hidden_size=8, random_state=0)
    >>> list(params)
    ['weight_ih_l0', 'weight_hh_l0', 'bias_ih_l0', 'bias_hh_l0']
    >>> params["weight_hh_l0"].shape, params["weight_hh_l0"].dtype
    ((32, 8), dtype('float32'))
    """
    _check_cell(cell)
    input_size = _check_positive_int(input_size, "input_size")
    hidden_size = _check_positive_int(hidden_size, "hidden_size")
    num_layers = _check_positive_int(num_layers, "num_layers")
    dtype = _check_dtype(dtype)
    rng = check_random_state(random_state)
    bound = 1.0 / np.sqrt(hidden_size)
    params = {}
    shapes = param_shapes(cell, input_size, hidden_size, num_layers, bool(bidirectional))
    for name, shape in shapes.items():
        params[name] = rng.uniform(-bound, bound, size=shape).astype(dtype)
    if forget_bias is not None and _is_lstm(cell):
        h = hidden_size
        for name in shapes:
            if name.startswith("bias_ih_l"):
                params[name][h:2 * h] = forget_bias
            elif name.startswith("bias_hh_l"):
                params[name][h:2 * h] = 0
    return params


class _Layer:
    """One direction of one layer: weights in kernel form, plus its activations.

    ``mask`` is the dropout mask of the layer's output (both directions side
    by side), kept on its forward direction.
    """

    __slots__ = ("w_ih", "w_hh", "b_ih", "b_hh", "peep", "inp", "hs", "cs",
                 "gates", "h0", "c0", "mask")


class RNNCache:
    """Activations kept by :func:`rnn_forward` for :func:`rnn_backward`.

    Opaque to users: its memory is the stored activations of every layer
    (time-major), which dominate the memory of training.
    """

    __slots__ = ("cell", "dtype", "layers", "n_dirs", "packing", "batch", "time",
                 "input_size", "hidden_size", "nbytes", "consumed")


@functools.lru_cache(maxsize=64)
def _expected_layout(cell, input_size, hidden_size, num_layers, bidirectional):
    """(tuple of (name, shape), frozenset of names, list of names, tuple of
    shapes) of param_shapes, cached: it is rebuilt on every call otherwise, a
    sizeable part of a batch-1 call. The list is not to be modified."""
    layout = tuple(param_shapes(cell, input_size, hidden_size, num_layers,
                                bidirectional).items())
    return (layout, frozenset(name for name, _ in layout), [name for name, _ in layout],
            tuple(shape for _, shape in layout))


class _CheckedParams:
    """``params`` checked by :func:`_validate_params`, in kernel form.

    ``layers`` holds one _Layer of contiguous weights per layer and
    direction, in torch's order: layer k's direction d is
    ``layers[k * n_dirs + d]`` (d = 1 the reverse one). ``arrays`` are the
    same weights in the order of ``names``.
    """

    __slots__ = ("dtype", "input_size", "hidden_size", "layers", "n_dirs", "names", "arrays")

    def check_values(self):
        """Raise ValueError for a NaN or inf weight."""
        bad = _cells.first_nonfinite(self.arrays)
        if bad >= 0:
            raise ValueError(f"params[{self.names[bad]!r}] contains NaN or inf")


def _validate_params(cell, params, values=True):
    """``params`` checked, as a ``_CheckedParams``.

    Their names, shapes and dtype and, with ``values``, that they hold no NaN
    or inf. Without ``values`` the result is for a caller that runs the same
    weights many times (``_forward_checked``): it checks the values on every
    call, since weights may change in place.
    """
    if type(params) is not dict and not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict of arrays, got {type(params).__name__}")
    if "weight_ih_l0" not in params or "weight_hh_l0" not in params:
        raise ValueError("params is missing 'weight_ih_l0' or 'weight_hh_l0'")
    num_layers = 1
    while f"weight_ih_l{num_layers}" in params:
        num_layers += 1
    # Bidirectional when the reverse weights are there, as a torch
    # state_dict of nn.LSTM(bidirectional=True) has them.
    bidirectional = "weight_ih_l0_reverse" in params
    w_ih0, w_hh0 = params["weight_ih_l0"], params["weight_hh_l0"]
    if type(w_ih0) is not np.ndarray or type(w_hh0) is not np.ndarray:
        w_ih0, w_hh0 = np.asarray(w_ih0), np.asarray(w_hh0)
    if w_ih0.ndim != 2 or w_hh0.ndim != 2:
        raise ValueError("params 'weight_ih_l0' and 'weight_hh_l0' must be 2-D")
    input_size, hidden_size = w_ih0.shape[1], w_hh0.shape[1]
    if input_size < 1 or hidden_size < 1:
        raise ValueError("params describe an empty layer (input or hidden size 0)")
    # Plain loops and set comparisons below, not generators: at batch 1 this
    # function is a large share of the call.
    expected, names, order, shapes = _expected_layout(cell, input_size, hidden_size,
                                                      num_layers, bidirectional)
    if len(params) != len(expected) or not params.keys() >= names:
        what = f"{num_layers}-layer {'bidirectional ' if bidirectional else ''}{cell}"
        missing = [name for name, _ in expected if name not in params]
        if missing:
            raise ValueError(f"params for a {what} is missing {missing}")
        unexpected = sorted(set(params) - names)
        raise ValueError(f"params has keys that a {what} does not use: {unexpected}")
    arrays = [params[name] for name in order]
    # The usual case, contiguous arrays of the right shapes and one float
    # dtype (finite when values are checked), in one C call; anything else
    # goes through the checks below, which convert or say what is wrong.
    plain = _cells.plain_weights(arrays, shapes, values)
    if not plain:
        # ndarrays as they are: np.asarray costs ~0.1 us even on one.
        for i, a in enumerate(arrays):
            if type(a) is not np.ndarray:
                arrays[i] = np.asarray(a)
        dtype = arrays[0].dtype
        not_float = dtype != np.float32 and dtype != np.float64
        for i, ((name, shape), a) in enumerate(zip(expected, arrays)):
            if not_float or a.dtype != dtype:
                raise ValueError(
                    "params must all have one dtype, float32 or float64; got "
                    f"{sorted({str(a.dtype) for a in arrays})}"
                )
            if a.shape != shape:
                raise ValueError(f"params[{name!r}] has shape {a.shape}, expected {shape}")
            if not a.flags.c_contiguous:
                arrays[i] = np.ascontiguousarray(a)
    dtype = arrays[0].dtype
    checked = _CheckedParams()
    checked.names, checked.arrays = order, arrays
    if values and not plain:
        checked.check_values()
    # Each direction's arrays, in layer_param_shapes' order: weight_ih,
    # weight_hh, bias_ih, bias_hh, then the peephole cell's weight_ci, _cf, _co.
    n_dirs = 2 if bidirectional else 1
    per_dir = len(expected) // (num_layers * n_dirs)
    layers = []
    for start in range(0, len(arrays), per_dir):
        mine = arrays[start:start + per_dir]
        lay = _Layer()
        lay.w_ih, lay.w_hh, lay.b_ih, lay.b_hh = mine[:4]
        # (w_ci, w_cf, w_co) for the peephole cell; rnn_forward stacks them
        # (or gives the other cells an empty placeholder) when backward
        # needs them.
        lay.peep = tuple(mine[4:])
        layers.append(lay)
    checked.dtype, checked.input_size, checked.hidden_size = dtype, input_size, hidden_size
    checked.layers, checked.n_dirs = layers, n_dirs
    return checked


def _as_real_array(a, name):
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {a.dtype}")
    return a


def _time_major(a, dtype, name):
    """Copy a batch-first (B, T, F) array to a contiguous time-major one."""
    out = np.ascontiguousarray(a.transpose(1, 0, 2), dtype=dtype)
    if _cells.first_nonfinite((out,)) >= 0:
        raise ValueError(f"{name} contains NaN or inf (after conversion to {dtype})")
    return out


def _validate_state(state, cell, n_states, batch, hidden_size, dtype, name):
    """Return (h, c) as contiguous (L, B, H) copies; c is None for the GRU.

    L = n_states is num_layers, twice that for a bidirectional net."""
    shape = (n_states, batch, hidden_size)
    if state is None:
        h = np.zeros(shape, dtype)
        return h, (np.zeros(shape, dtype) if _is_lstm(cell) else None)
    if _is_lstm(cell):
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise ValueError(f"{name} for a {cell} must be a tuple (h, c)")
        parts = [(state[0], f"{name}[0] (h)"), (state[1], f"{name}[1] (c)")]
    else:
        parts = [(state, name)]
    out = []
    for value, label in parts:
        a = _as_real_array(value, label)
        if a.shape != shape:
            raise ValueError(
                f"{label} has shape {a.shape}, expected (num_layers * num_directions, "
                f"batch, hidden) = {shape}"
            )
        a = np.array(a, dtype=dtype, order="C", copy=True)
        if _cells.first_nonfinite((a,)) >= 0:
            raise ValueError(f"{label} contains NaN or inf")
        out.append(a)
    return out[0], (out[1] if len(out) == 2 else None)


def rnn_forward(cell, x, params, state=None, training=True, *, dropout=0.0,
                random_state=None, lengths=None):
    """Run a stacked recurrent net over a batch of sequences.

    Parameters
    ----------
    cell : {"lstm", "gru", "peephole"}
    x : array-like of shape (batch, time, input)
        Any real dtype; converted to the dtype of ``params``.
    params : dict of ndarray
        As returned by :func:`init_params` or a torch ``state_dict``. The net
        is bidirectional when ``params`` holds the ``_reverse`` weights.
    state : None, ndarray or tuple of ndarray
        Initial state, zeros when None. ``(h, c)`` for the LSTM cells, ``h``
        for the GRU, each of shape (num_layers * num_directions, batch,
        hidden), in torch's order (layer 0 forward, layer 0 reverse, ...).
    training : bool
        When False, no activations are kept and ``cache`` is None.
    dropout : float in [0, 1)
        Inverted dropout on the output of every layer but the last, applied
        only when ``training`` is True (as ``torch.nn.LSTM(dropout=...)``).
    random_state : int, RandomState instance or None
        Source of the dropout masks.
    lengths : array-like of int, shape (batch,), optional
        Valid steps of each sequence, 1 to time (torch's
        ``pack_padded_sequence``). A sequence's steps past its length are
        never computed or read (they may hold anything, NaN included): its
        output there is zero, its final state is the state after its last
        valid step, and the reverse direction of a bidirectional layer starts
        at its last valid step. None means every sequence has all steps.

    Returns
    -------
    out : ndarray of shape (batch, time, hidden * num_directions)
        Hidden state of the top layer at every step, both directions side by
        side when bidirectional. Without ``lengths``, a read-only batch-first
        view of the cached time-major buffer (copy it to modify it).
    state : ndarray or tuple of ndarray
        Final state, laid out as the initial state.
    cache : RNNCache or None
        What :func:`rnn_backward` needs; None when ``training`` is False.

    Examples
    --------
    >>> import numpy as np
    >>> from tsrnn.functional import init_params, rnn_forward
    >>> params = init_params("gru", input_size=3, hidden_size=8, num_layers=2,
    ...                      random_state=0)
    >>> x = np.zeros((4, 10, 3), dtype=np.float32)     # batch, time, features
    >>> out, h, cache = rnn_forward("gru", x, params, training=False)
    >>> out.shape, h.shape, cache is None
    ((4, 10, 8), (2, 4, 8), True)
    """
    _check_cell(cell)
    return _forward(cell, x, _validate_params(cell, params), state, training, dropout,
                    random_state, lengths)


def _forward_checked(cell, x, checked, state=None, lengths=None):
    """``rnn_forward(..., training=False)`` with params checked beforehand.

    ``checked`` is ``_validate_params(cell, params, values=False)``, made
    once by a caller that runs the same weights many times (the estimators'
    inference: checking the names and shapes of every array took a fifth of
    a batch-1 forward, issue 13). The weights' values are checked here, on
    every call.
    """
    checked.check_values()
    return _forward(cell, x, checked, state, False, 0.0, None, lengths)


def _forward(cell, x, checked, state, training, dropout, random_state, lengths):
    """``rnn_forward`` once ``cell`` and ``params`` are checked (``_CheckedParams``)."""
    dtype, input_size, hidden_size = checked.dtype, checked.input_size, checked.hidden_size
    layers, n_dirs = checked.layers, checked.n_dirs
    x = _as_real_array(x, "x")
    if x.ndim != 3:
        raise ValueError(f"x must be 3-D (batch, time, input), got shape {x.shape}")
    batch, time, feat = x.shape
    if batch == 0 or time == 0:
        raise ValueError(f"x needs at least one sequence and one time step, got shape {x.shape}")
    if feat != input_size:
        raise ValueError(f"x has input size {feat} but the params expect {input_size}")
    if not (isinstance(dropout, (int, float, np.floating)) and 0 <= dropout < 1):
        raise ValueError(f"dropout must be a float in [0, 1), got {dropout!r}")
    packing = None if lengths is None else check_lengths(lengths, batch, time)
    n_states = len(layers)
    if state is None and not training:
        h0 = c0 = (None,) * n_states  # the kernel starts from zeros itself
    else:
        h0, c0 = _validate_state(state, cell, n_states, batch, hidden_size, dtype, "state")
    if packing is None:
        inp = _time_major(x, dtype, "x")
        rows = time * batch
        batch_sizes = None
    else:
        inp = packing.pack(x, dtype, "x")
        rows = packing.n_rows
        batch_sizes = packing.batch_sizes
        if h0[0] is not None:
            h0, c0 = packing.to_kernel(h0), packing.to_kernel(c0)
    rng = check_random_state(random_state) if (training and dropout > 0) else None

    code = _CELL_CODE[cell]
    lstm = _is_lstm(cell)
    peephole = cell == "peephole"
    gh = _N_GATES[cell] * hidden_size
    width = (5 if lstm else 4) * hidden_size
    # Gates of every step let the kernel project the input of all steps in
    # one pass (see forward_layer); inference keeps one step once that
    # buffer would outgrow the cache, so its memory does not grow with T.
    all_steps = training or rows * width * dtype.itemsize <= _ALL_STEPS_BYTES
    # Row buffers: (time, batch, width) time-major, or (N, width) packed.
    # Inference keeps two steps of c and, for long inputs, one of the gates
    # (see forward_layer).
    if packing is None:
        h_shape, g_shape = (time, batch, hidden_size), (time, batch, width)
    else:
        h_shape, g_shape = (rows, hidden_size), (rows, width)
    c_shape = h_shape if training else (2, batch, hidden_size)
    if not all_steps:
        g_shape = (batch, width)
    num_layers = n_states // n_dirs
    h_n = np.empty((n_states, batch, hidden_size), dtype)
    c_n = np.empty((n_states, batch, hidden_size), dtype) if lstm else None
    no_c = np.empty((0, hidden_size), dtype) if training else None
    nbytes = 0
    # No BLAS limit here: forward_layer calls no BLAS.
    for k in range(num_layers):
        work = rows * gh * (inp.shape[-1] + hidden_size)
        n_threads, chunk = _threading(batch, work)
        timed, spent = work >= _SERIAL_WORK, 0.0
        for reverse in _DIRECTIONS[n_dirs]:
            i = k * n_dirs + reverse
            lay = layers[i]
            hs = np.empty(h_shape, dtype)
            cs = np.empty(c_shape, dtype) if lstm else None
            gates = np.empty(g_shape, dtype)
            if timed:
                t0 = _perf_counter()
            _cells.forward_layer(code, inp, lay.w_ih, lay.w_hh, lay.b_ih, lay.b_hh,
                                 lay.peep, h0[i], c0[i] if lstm else None, hs, cs, gates,
                                 h_n[i], c_n[i] if lstm else None, chunk, training,
                                 n_threads, batch_sizes, reverse)
            if timed:
                spent += _perf_counter() - t0
            if training:
                # What backward reads; it wants arrays, even empty.
                lay.h0, lay.c0 = h0[i], (c0[i] if lstm else no_c)
                lay.inp, lay.hs, lay.gates = inp, hs, gates
                lay.cs = cs if lstm else np.empty((0, 0), dtype)
                lay.peep = np.array(lay.peep) if peephole else no_c
                nbytes += hs.nbytes + lay.cs.nbytes + gates.nbytes
            # Both directions side by side, as torch lays out a bidirectional
            # layer's output (the next layer's input).
            out = np.concatenate((out, hs), axis=-1) if reverse else hs
        if timed:
            # How long this thread count took (see _threading).
            _load.record(work, _cells.max_threads(), n_threads, spent)
        if training:
            nbytes += inp.nbytes
            mask = layers[k * n_dirs].mask = None
            if rng is not None and k < num_layers - 1:
                keep = rng.random_sample(out.shape) >= dropout
                mask = layers[k * n_dirs].mask = keep.astype(dtype) / dtype.type(1 - dropout)
                out = out * mask
        inp = out

    if packing is None:
        # A read-only batch-first view of the top layer's time-major h(t): no
        # copy, and the next rnn_forward call (a stacked model's next layer)
        # finds its time-major input already contiguous. Read-only because
        # backward reads the same memory.
        out = inp.transpose(1, 0, 2)
        out.flags.writeable = False
    else:
        out = packing.unpack(inp, time)
        h_n = packing.to_user(h_n)
        c_n = packing.to_user(c_n) if lstm else None
    final = (h_n, c_n) if lstm else h_n
    if not training:
        return out, final, None
    cache = RNNCache()
    cache.cell, cache.dtype, cache.layers, cache.n_dirs = cell, dtype, layers, n_dirs
    cache.packing = packing
    cache.batch, cache.time = batch, time
    cache.input_size, cache.hidden_size = input_size, hidden_size
    cache.nbytes = nbytes
    cache.consumed = False
    return out, final, cache


def rnn_backward(dout, cache, dstate=None, *, input_grad=True, retain_cache=False):
    """Backpropagate through time.

    Parameters
    ----------
    dout : array-like of shape (batch, time, hidden * num_directions) or None
        Gradient of the loss w.r.t. ``out``; None means zeros (a loss on the
        final state only, which then goes in ``dstate``; no (batch, time,
        hidden) array of zeros is allocated). With ``lengths``, the entries
        past a sequence's length are ignored.
    cache : RNNCache
        From ``rnn_forward(..., training=True)``.
    dstate : None, ndarray or tuple of ndarray
        Gradient w.r.t. the final state, laid out as the state; None is zeros.
    input_grad : bool, default=True
        When False, ``dx`` is not computed and None is returned in its place
        (the first layer of a model, whose input is data).
    retain_cache : bool, default=False
        Backward writes its gate gradients over the activations stored in the
        cache, which saves a buffer as large as the cache's biggest array, and
        so uses the cache up: a second call raises ValueError. With True the
        cache is copied first and stays usable (like ``retain_graph`` in
        torch).

    Returns
    -------
    dx : ndarray of shape (batch, time, input), or None
        Without ``lengths``, a batch-first view of a time-major buffer (so a
        stacked model's next ``rnn_backward`` takes it without a copy); with
        them, zero past each sequence's length.
    grads : dict of ndarray, the keys and shapes of ``params``
    dstate : gradient w.r.t. the initial state, laid out as the state

    Examples
    --------
    The gradients of ``out.sum()`` with respect to the input, the weights and
    the initial state:

    >>> import numpy as np
    >>> from tsrnn.functional import init_params, rnn_backward, rnn_forward
    >>> params = init_params("lstm", input_size=3, hidden_size=8, random_state=0)
    >>> x = np.ones((4, 10, 3), dtype=np.float32)
    >>> out, (h, c), cache = rnn_forward("lstm", x, params)
    >>> dx, grads, (dh0, dc0) = rnn_backward(np.ones_like(out), cache)
    >>> dx.shape, grads["weight_hh_l0"].shape, dh0.shape
    ((4, 10, 3), (32, 8), (1, 4, 8))
    """
    if not isinstance(cache, RNNCache):
        raise TypeError(
            "cache must be the RNNCache returned by rnn_forward(..., training=True)"
        )
    if cache.consumed:
        raise ValueError(
            "this cache was used up by an earlier rnn_backward call, which writes "
            "its gradients over the stored activations; run rnn_forward again, or "
            "pass retain_cache=True to the first rnn_backward call"
        )
    cell, dtype, layers, packing = cache.cell, cache.dtype, cache.layers, cache.packing
    batch, time, hidden = cache.batch, cache.time, cache.hidden_size
    n_dirs = cache.n_dirs
    n_states = len(layers)
    num_layers = n_states // n_dirs
    lstm = _is_lstm(cell)
    if packing is None:
        lead, rows = (time, batch), time * batch  # time-major (T, B, width) buffers
        batch_sizes = np.full(time, batch, np.intp)
    else:
        lead, rows = (packing.n_rows,), packing.n_rows  # or packed (N, width)
        batch_sizes = packing.batch_sizes
    if dout is None:
        # One step of zeros, which the kernel reads at every step.
        dhs = np.zeros((batch, hidden * n_dirs), dtype)
    else:
        dout = _as_real_array(dout, "dout")
        if dout.shape != (batch, time, hidden * n_dirs):
            raise ValueError(
                f"dout has shape {dout.shape}, expected (batch, time, hidden * "
                f"num_directions) = {(batch, time, hidden * n_dirs)}"
            )
        if packing is None:
            dhs = _time_major(dout, dtype, "dout")
        else:
            dhs = packing.pack(dout, dtype, "dout")
    # Copies: the kernels use these as running buffers and leave the gradient
    # w.r.t. the initial state in them.
    dh, dc = _validate_state(dstate, cell, n_states, batch, hidden, dtype, "dstate")
    if packing is not None:
        dh, dc = packing.to_kernel(dh), packing.to_kernel(dc)

    code = _CELL_CODE[cell]
    gh = _N_GATES[cell] * hidden
    no_c = np.empty((0, hidden), dtype)
    grads = {}
    cache.consumed = not retain_cache
    with _single_threaded_blas():
        for k in range(num_layers - 1, -1, -1):
            d_in = layers[k * n_dirs].inp.shape[-1]
            want_dx = k > 0 or input_grad
            work = rows * gh * (d_in + hidden)
            n_threads, chunk = _threading(batch, work)
            timed, spent = work >= _SERIAL_WORK, 0.0
            dx = None
            for d in range(n_dirs):
                i = k * n_dirs + d
                lay = layers[i]
                # Each direction's share of the layer output's gradient.
                dhs_d = dhs if n_dirs == 1 else np.ascontiguousarray(
                    dhs[..., d * hidden:(d + 1) * hidden])
                dx_d = np.empty(lead + (d_in,) if want_dx else (0, d_in), dtype)
                # The kernel overwrites the gates with their gradients.
                gates = lay.gates.copy() if retain_cache else lay.gates
                g = {
                    "weight_ih": np.empty((gh, d_in), dtype),
                    "weight_hh": np.empty((gh, hidden), dtype),
                    "bias_ih": np.empty(gh, dtype),
                    "bias_hh": np.empty(gh, dtype),
                }
                dpeep = np.empty(lay.peep.shape, dtype)
                if timed:
                    t0 = _perf_counter()
                _cells.backward_layer(
                    code, lay.inp, lay.w_ih, lay.w_hh, lay.peep, lay.h0, lay.c0,
                    lay.hs, lay.cs, gates, dhs_d, dh[i], dc[i] if lstm else no_c,
                    dx_d, g["weight_ih"], g["weight_hh"], g["bias_ih"],
                    g["bias_hh"], dpeep, chunk, n_threads, batch_sizes, d == 1,
                )
                if timed:
                    spent += _perf_counter() - t0
                suffix = f"_l{k}" + ("_reverse" if d == 1 else "")
                for name, value in g.items():
                    grads[name + suffix] = value
                if cell == "peephole":
                    for j, name in enumerate(_PEEPHOLE_NAMES):
                        grads[name + suffix] = dpeep[j].copy()
                if want_dx:
                    # Both directions read the same input.
                    dx = dx_d if dx is None else np.add(dx, dx_d, out=dx)
            if timed:
                # Backward does about twice the arithmetic of forward.
                _load.record(work, _cells.max_threads(), n_threads, spent, weight=2.0)
            mask = layers[(k - 1) * n_dirs].mask if k > 0 else None
            dhs = dx if mask is None else dx * mask

    order = param_shapes(cell, cache.input_size, hidden, num_layers, n_dirs == 2)
    grads = {name: grads[name] for name in order}
    if not input_grad:
        dx = None
    elif packing is None:
        dx = dhs.transpose(1, 0, 2)
    else:
        dx = packing.unpack(dhs, time)
    if packing is not None:
        dh = packing.to_user(dh)
        dc = packing.to_user(dc) if lstm else None
    return dx, grads, ((dh, dc) if lstm else dh)
