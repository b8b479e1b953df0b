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

import numpy as np
from sklearn.utils import check_random_state
from threadpoolctl import ThreadpoolController

from . import _cells

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

# Largest gate buffer of every step (bytes) that inference allocates, so that
# the kernel projects the input of all steps at once; beyond it, one step.
_ALL_STEPS_BYTES = 1 << 18


def _threading(batch, work):
    """Return (thread cap, chunk rows) for one layer call.

    One chunk per thread, 8 to 64 rows: bigger chunks amortise the per-step
    overhead of the recurrent micro-kernel, and one chunk per thread balances
    the static schedule. Each row's arithmetic is the same whichever chunk
    holds it (tests/test_functional.py checks this bitwise), so following the
    thread count here never makes results depend on it.
    """
    n_threads = 1 if work < _SERIAL_WORK else max(1, _cells.max_threads())
    per_thread = -(-batch // n_threads)
    return n_threads, int(min(64, max(8, -(-per_thread // 8) * 8)))


def _check_cell(cell):
    if not isinstance(cell, str) or cell not in CELLS:
        raise ValueError(f"unknown cell {cell!r}; expected one of {CELLS}")
    return cell


def _is_lstm(cell):
    return cell != "gru"


def layer_param_shapes(cell, input_size, hidden_size, layer=0):
    """Names and shapes of the parameters of one recurrent layer.

    The single definition of the weight layout: :func:`param_shapes`,
    :func:`init_params` and the validation of ``params`` build on it, and so
    should any other code that lays weights out (the estimators' flat
    buffer). Returns ``{name: shape}`` in the order of ``torch.nn.LSTM``'s
    state_dict for that layer, then the peephole vectors: ``weight_ih_l{layer}`` (G*H, input_size), ``weight_hh_l{layer}``
    (G*H, H), ``bias_ih_l{layer}`` and ``bias_hh_l{layer}`` (G*H,), and for the
    peephole cell ``weight_ci_l{layer}``, ``weight_cf_l{layer}``,
    ``weight_co_l{layer}`` (H,); G is 4 (i, f, g, o) for the LSTM cells and 3
    (r, z, n) for the GRU. As in torch, the names that start with ``bias_``
    are the biases and every other array is a weight.

    Examples
    --------
    >>> from tsrnn.functional import layer_param_shapes
    >>> layer_param_shapes("gru", input_size=3, hidden_size=8, layer=1)
    {'weight_ih_l1': (24, 3), 'weight_hh_l1': (24, 8), 'bias_ih_l1': (24,), 'bias_hh_l1': (24,)}
    """
    _check_cell(cell)
    gh = _N_GATES[cell] * hidden_size
    shapes = {
        f"weight_ih_l{layer}": (gh, input_size),
        f"weight_hh_l{layer}": (gh, hidden_size),
        f"bias_ih_l{layer}": (gh,),
        f"bias_hh_l{layer}": (gh,),
    }
    if cell == "peephole":
        for name in _PEEPHOLE_NAMES:
            shapes[f"{name}_l{layer}"] = (hidden_size,)
    return shapes


def param_shapes(cell, input_size, hidden_size, num_layers=1):
    """Names and shapes of the parameters of a stacked recurrent net.

    Returns a dict ``{name: shape}``: :func:`layer_param_shapes` of each layer
    in turn, the first taking ``input_size`` inputs and the others
    ``hidden_size``.

    Examples
    --------
    >>> from tsrnn.functional import param_shapes
    >>> shapes = param_shapes("lstm", input_size=3, hidden_size=8, num_layers=2)
    >>> shapes["weight_ih_l0"], shapes["weight_ih_l1"]
    ((32, 3), (32, 8))
    """
    shapes = {}
    for k in range(num_layers):
        shapes.update(layer_param_shapes(
            cell, input_size if k == 0 else hidden_size, hidden_size, layer=k))
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
                random_state=None, forget_bias=None):
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
    for name, shape in param_shapes(cell, input_size, hidden_size, num_layers).items():
        params[name] = rng.uniform(-bound, bound, size=shape).astype(dtype)
    if forget_bias is not None and _is_lstm(cell):
        h = hidden_size
        for k in range(num_layers):
            params[f"bias_ih_l{k}"][h:2 * h] = forget_bias
            params[f"bias_hh_l{k}"][h:2 * h] = 0
    return params


class _Layer:
    """Per-layer weights in kernel form, plus the forward activations."""

    __slots__ = ("w_ih", "w_hh", "b_ih", "b_hh", "peep", "inp", "hs", "cs",
                 "gates", "h0", "c0", "mask")


class RNNCache:
    """Activations kept by :func:`rnn_forward` for :func:`rnn_backward`.

    Opaque to users: its memory is the stored activations of every layer
    (time-major), which dominate the memory of training.
    """

    __slots__ = ("cell", "dtype", "layers", "batch", "time", "input_size",
                 "hidden_size", "nbytes", "consumed")


@functools.lru_cache(maxsize=64)
def _expected_layout(cell, input_size, hidden_size, num_layers):
    """(tuple of (name, shape), frozenset of names) of param_shapes, cached: it
    is rebuilt on every call otherwise, a sizeable part of a batch-1 call."""
    layout = tuple(param_shapes(cell, input_size, hidden_size, num_layers).items())
    return layout, frozenset(name for name, _ in layout)


def _validate_params(cell, params):
    """Return (dtype, input_size, hidden_size, per-layer contiguous weights)."""
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict of arrays, got {type(params).__name__}")
    if "weight_ih_l0" not in params or "weight_hh_l0" not in params:
        raise ValueError("params is missing 'weight_ih_l0' or 'weight_hh_l0'")
    num_layers = 1
    while f"weight_ih_l{num_layers}" in params:
        num_layers += 1
    w_ih0 = np.asarray(params["weight_ih_l0"])
    w_hh0 = np.asarray(params["weight_hh_l0"])
    if w_ih0.ndim != 2 or w_hh0.ndim != 2:
        raise ValueError("params 'weight_ih_l0' and 'weight_hh_l0' must be 2-D")
    input_size, hidden_size = w_ih0.shape[1], w_hh0.shape[1]
    if input_size < 1 or hidden_size < 1:
        raise ValueError("params describe an empty layer (input or hidden size 0)")
    # Plain loops and set comparisons below, not generators: at batch 1 this
    # function is a large share of the call.
    expected, names = _expected_layout(cell, input_size, hidden_size, num_layers)
    if len(params) != len(expected) or not params.keys() >= names:
        missing = [name for name, _ in expected if name not in params]
        if missing:
            raise ValueError(f"params for a {num_layers}-layer {cell} is missing {missing}")
        unexpected = sorted(set(params) - names)
        raise ValueError(f"params has keys that a {cell} does not use: {unexpected}")
    arrays = [np.asarray(params[name]) for name, _ in expected]
    dtypes = {a.dtype for a in arrays}
    if len(dtypes) != 1 or arrays[0].dtype not in (np.float32, np.float64):
        raise ValueError(
            "params must all have one dtype, float32 or float64; got "
            f"{sorted(str(d) for d in dtypes)}"
        )
    dtype = arrays[0].dtype
    for i, ((name, shape), a) in enumerate(zip(expected, arrays)):
        if a.shape != shape:
            raise ValueError(f"params[{name!r}] has shape {a.shape}, expected {shape}")
        if not a.flags.c_contiguous:
            arrays[i] = np.ascontiguousarray(a)
    bad = _cells.first_nonfinite(arrays)
    if bad >= 0:
        raise ValueError(f"params[{expected[bad][0]!r}] contains NaN or inf")
    # Each layer's arrays, in layer_param_shapes' order: weight_ih, weight_hh,
    # bias_ih, bias_hh, then the peephole cell's weight_ci, _cf, _co.
    per_layer = len(expected) // num_layers
    layers = []
    for k in range(num_layers):
        mine = arrays[k * per_layer:(k + 1) * per_layer]
        lay = _Layer()
        lay.w_ih, lay.w_hh, lay.b_ih, lay.b_hh = mine[:4]
        # (w_ci, w_cf, w_co) for the peephole cell; rnn_forward stacks them
        # (or gives the other cells an empty placeholder) when backward
        # needs them.
        lay.peep = tuple(mine[4:])
        layers.append(lay)
    return dtype, input_size, hidden_size, layers


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


def _validate_state(state, cell, num_layers, batch, hidden_size, dtype, name):
    """Return (h, c) as contiguous (L, B, H) copies; c is None for the GRU."""
    shape = (num_layers, batch, hidden_size)
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
                f"{label} has shape {a.shape}, expected (num_layers, batch, hidden) = {shape}"
            )
        a = np.array(a, dtype=dtype, order="C", copy=True)
        if _cells.first_nonfinite((a,)) >= 0:
            raise ValueError(f"{label} contains NaN or inf")
        out.append(a)
    return out[0], (out[1] if len(out) == 2 else None)


def rnn_forward(cell, x, params, state=None, training=True, *, dropout=0.0,
                random_state=None):
    """Run a stacked recurrent net over a batch of sequences.

    Parameters
    ----------
    cell : {"lstm", "gru", "peephole"}
    x : array-like of shape (batch, time, input)
        Any real dtype; converted to the dtype of ``params``.
    params : dict of ndarray
        As returned by :func:`init_params` or a torch ``state_dict``.
    state : None, ndarray or tuple of ndarray
        Initial state, zeros when None. ``(h, c)`` for the LSTM cells, ``h``
        for the GRU, each of shape (num_layers, batch, hidden).
    training : bool
        When False, no activations are kept and ``cache`` is None.
    dropout : float in [0, 1)
        Inverted dropout on the output of every layer but the last, applied
        only when ``training`` is True (as ``torch.nn.LSTM(dropout=...)``).
    random_state : int, RandomState instance or None
        Source of the dropout masks.

    Returns
    -------
    out : ndarray of shape (batch, time, hidden)
        Hidden state of the top layer at every step: a read-only batch-first
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
    dtype, input_size, hidden_size, layers = _validate_params(cell, params)
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
    if state is None and not training:
        h0 = c0 = (None,) * len(layers)  # the kernel starts from zeros itself
    else:
        h0, c0 = _validate_state(state, cell, len(layers), batch, hidden_size, dtype, "state")
    inp = _time_major(x, dtype, "x")
    rng = check_random_state(random_state) if (training and dropout > 0) else None

    code = _CELL_CODE[cell]
    lstm = _is_lstm(cell)
    peephole = cell == "peephole"
    n_gates = _N_GATES[cell]
    gh = n_gates * hidden_size
    width = (5 if lstm else 4) * hidden_size
    # Gates of every step let the kernel project the input of all steps in
    # one pass (see forward_layer); inference keeps one step once that
    # buffer would outgrow the cache, so its memory does not grow with T.
    all_steps = training or time * batch * width * dtype.itemsize <= _ALL_STEPS_BYTES
    num_layers = len(layers)
    h_n = np.empty((num_layers, batch, hidden_size), dtype)
    c_n = np.empty((num_layers, batch, hidden_size), dtype) if lstm else None
    nbytes = 0
    # No BLAS limit here: forward_layer calls no BLAS.
    for k, lay in enumerate(layers):
        # Inference keeps two steps of c (see forward_layer).
        hs = np.empty((time, batch, hidden_size), dtype)
        cs = np.empty((time if training else 2, batch, hidden_size), dtype) if lstm else None
        gates = np.empty((time if all_steps else 1, batch, width), dtype)
        n_threads, chunk = _threading(batch, time * batch * gh * (inp.shape[2] + hidden_size))
        _cells.forward_layer(code, inp, lay.w_ih, lay.w_hh, lay.b_ih, lay.b_hh, lay.peep,
                             h0[k], c0[k] if lstm else None, hs, cs, gates,
                             h_n[k], c_n[k] if lstm else None, chunk, training, n_threads)
        if training:
            # What backward reads; its typed buffers want arrays, even empty.
            no_c = np.empty((0, hidden_size), dtype)
            lay.h0, lay.c0 = h0[k], (c0[k] if lstm else no_c)
            lay.inp, lay.hs, lay.gates, lay.mask = inp, hs, gates, None
            lay.cs = cs if lstm else np.empty((0, 0, 0), dtype)
            lay.peep = np.array(lay.peep) if peephole else no_c
            nbytes += inp.nbytes + hs.nbytes + lay.cs.nbytes + gates.nbytes
        inp = hs
        if rng is not None and k < num_layers - 1:
            keep = rng.random_sample(hs.shape) >= dropout
            lay.mask = keep.astype(dtype) / dtype.type(1 - dropout)
            inp = hs * lay.mask

    # A read-only batch-first view of the top layer's time-major h(t): no
    # copy, and the next rnn_forward call (a stacked model's next layer) finds
    # its time-major input already contiguous. Read-only because backward
    # reads the same memory.
    out = hs.transpose(1, 0, 2)
    out.flags.writeable = False
    final = (h_n, c_n) if lstm else h_n
    if not training:
        return out, final, None
    cache = RNNCache()
    cache.cell, cache.dtype, cache.layers = cell, dtype, layers
    cache.batch, cache.time = batch, time
    cache.input_size, cache.hidden_size = input_size, hidden_size
    cache.nbytes = nbytes
    cache.consumed = False
    return out, final, cache


def rnn_backward(dout, cache, dstate=None, *, input_grad=True, retain_cache=False):
    """Backpropagate through time.

    Parameters
    ----------
    dout : array-like of shape (batch, time, hidden) or None
        Gradient of the loss w.r.t. ``out``; None means zeros (a loss on the
        final state only, which then goes in ``dstate``; no (batch, time,
        hidden) array of zeros is allocated).
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
        A batch-first view of a time-major buffer (so a stacked model's next
        ``rnn_backward`` takes it without a copy).
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
    cell, dtype, layers = cache.cell, cache.dtype, cache.layers
    batch, time, hidden = cache.batch, cache.time, cache.hidden_size
    lstm = _is_lstm(cell)
    if dout is None:
        # One step of zeros, which the kernel reads at every step.
        dhs = np.zeros((1, batch, hidden), dtype)
    else:
        dout = _as_real_array(dout, "dout")
        if dout.shape != (batch, time, hidden):
            raise ValueError(
                f"dout has shape {dout.shape}, expected (batch, time, hidden) = "
                f"{(batch, time, hidden)}"
            )
        dhs = _time_major(dout, dtype, "dout")
    # Copies: the kernels use these as running buffers and leave the gradient
    # w.r.t. the initial state in them.
    dh, dc = _validate_state(dstate, cell, len(layers), batch, hidden, dtype, "dstate")

    code = _CELL_CODE[cell]
    gh = _N_GATES[cell] * hidden
    no_c = np.empty((0, hidden), dtype)
    no_da = np.empty((0, 0, 0), dtype)
    grads = {}
    cache.consumed = not retain_cache
    with _single_threaded_blas():
        for k in range(len(layers) - 1, -1, -1):
            lay = layers[k]
            d_in = lay.inp.shape[2]
            dx = np.empty((time, batch, d_in), dtype) if (k > 0 or input_grad) else no_da
            # The kernel overwrites the gates with their gradients.
            gates = lay.gates.copy() if retain_cache else lay.gates
            g = {
                "weight_ih": np.empty((gh, d_in), dtype),
                "weight_hh": np.empty((gh, hidden), dtype),
                "bias_ih": np.empty(gh, dtype),
                "bias_hh": np.empty(gh, dtype),
            }
            dpeep = np.empty(lay.peep.shape, dtype)
            n_threads, chunk = _threading(batch, time * batch * gh * (d_in + hidden))
            _cells.backward_layer(
                code, lay.inp, lay.w_ih, lay.w_hh, lay.peep, lay.h0, lay.c0,
                lay.hs, lay.cs, gates, dhs, dh[k], dc[k] if lstm else no_c,
                dx, g["weight_ih"], g["weight_hh"], g["bias_ih"],
                g["bias_hh"], dpeep, chunk, n_threads,
            )
            for name, value in g.items():
                grads[f"{name}_l{k}"] = value
            if cell == "peephole":
                for i, name in enumerate(_PEEPHOLE_NAMES):
                    grads[f"{name}_l{k}"] = dpeep[i].copy()
            dhs = dx if k == 0 or layers[k - 1].mask is None else dx * layers[k - 1].mask

    order = param_shapes(cell, cache.input_size, hidden, len(layers))
    grads = {name: grads[name] for name in order}
    dx = dhs.transpose(1, 0, 2) if input_grad else None
    return dx, grads, ((dh, dc) if lstm else dh)
