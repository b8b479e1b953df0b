"""End to end: one epoch of RNNRegressor.fit against the same training loop in PyTorch.

Run it with the OpenBLAS overrides of this machine removed (see README):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_fit.py
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_fit.py --profile

bench_cells.py times the kernels alone. This script times what a user waits
for: a whole epoch of minibatch training on a 2-D sensor stream, including the
Python training loop around the kernels (window gathering, the dense head, the
loss, gradient clipping, Adam). The torch side is the loop a PyTorch user
would write for the same model, and it does the same work:

* the same model: one nn.LSTM / nn.GRU layer (batch_first) with hidden size H
  and an nn.Linear head on the last step's hidden state;
* the same data and the same windows: both sides get one float32 stream of
  shape (rows, features). tsrnn gathers each minibatch from a
  ``sliding_window_view`` of it. The torch loop builds the same view and
  gathers each minibatch by fancy indexing as well, then wraps the copy with
  ``torch.from_numpy``. Neither side materialises all windows up front;
* the same epoch: a shuffled order of the full windows in minibatches of B,
  plus tsrnn's "prefix" step (the first window - 1 rows as one sequence with a
  loss at every step, see the docstring of tsrnn/_base.py), so both take the
  same number of optimizer steps on the same targets;
* the same loss and optimizer: half the mean squared error, gradient
  clipping by global norm at 5.0 (tsrnn's default max_grad_norm), Adam with
  lr 0.005, betas (0.9, 0.999), eps 1e-8. The L2 penalty is off (alpha=0)
  because torch's weight_decay would also decay the biases;
* the same threads: n for tsrnn's OpenMP pool and its BLAS, n for torch
  (``torch.set_num_threads``) and any OpenMP pool it loads.

Before timing, the script checks that the two loops really compute the same
thing: from identical weights and the same shuffled order, one epoch of
``partial_fit`` and one epoch of the torch loop must end with the same epoch
loss and the same weights. It exits with status 1 if they do not.

Two things are timed per configuration and cell, in alternating order:

* **fit**: ``RNNRegressor(max_iter=1, ...).fit(X, y)`` against building the
  torch model and optimizer and running one epoch. tsrnn's fit also includes
  input validation, weight initialisation and the ConvergenceWarning.
  There is no validation pass because early_stopping=False;
* **epoch**: ``partial_fit(X, y)`` on an already fitted estimator, i.e. one
  epoch plus input validation, against one epoch of the torch loop on an
  existing model and optimizer.

``--profile`` instruments one tsrnn epoch to split its time into the
recurrent kernels and the Python and numpy work around them (see
``profile_epoch``).

``--no-onednn`` runs torch with oneDNN off. torch's CPU LSTM uses oneDNN's
fused LSTM by default (its GRU does not), so this separates "torch" from
"oneDNN" in the LSTM rows.

``--busy N`` starts N processes that spin (``python -c 'while True: pass'``,
each bounded by ``timeout``) before the timing and stops them after it, to
time a fit on a machine whose cores are shared (issue 21). Other processes
may load the machine too: the load average is reported either way.

``--compare-threads`` adds two tsrnn contenders to every row: the fit on one
thread, and the fit on ``--threads`` threads with tsrnn's load awareness off
(``tsrnn._load``: no more threads than other processes leave cores free), so
the table shows what the thread-count choice saves on a busy machine and
what it costs on an idle one. Every row reports the fit's throughput in
training windows per second of the whole fit.

The ``fleet-monthly`` and ``fleet-hourly`` configurations are the training
step shapes of issue 21, (B, T, D, H) = (64, 24, 1, 32) and (256, 96, 3, 32).

torch is optional: without it the script times tsrnn alone and says so.
``--quick`` is a smoke run of a few seconds, for the test suite.
"""
import argparse
import contextlib
import gc
import os
import statistics
import sys
import time
import warnings
from collections import namedtuple

import numpy as np
import scipy
import sklearn
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402
    Report,
    cpu_model,
    print_slowing_env_warning,
    start_busy,
    stop_busy,
    threadpool_lines,
    usable_cores,
)

try:
    import tsrnn
    import tsrnn._base as tsrnn_base
    import tsrnn._data as tsrnn_data
    import tsrnn._load as tsrnn_load
    import tsrnn._network as tsrnn_network
    import tsrnn.functional as tsrnn_functional
    from tsrnn import RNNRegressor
except ImportError as exc:
    sys.exit(f"cannot import tsrnn ({exc}); build it first with "
             "`pip install --no-build-isolation -e .` from the repository root")

try:
    import torch
except ImportError:  # the benchmark must still run where torch is absent
    torch = None
# Entering torch.backends.mkldnn.flags() says TF32 needs an Intel GPU; noise here.
warnings.filterwarnings("ignore", message="TF32 acceleration", category=UserWarning)

Config = namedtuple("Config", "rows features window hidden batch")

# "small" is tsrnn's own defaults (hidden 32, window 16, batch "auto" = 64),
# where the Python loop weighs most; "issue" is the size named in issue 6;
# "large" is the second, bigger configuration the issue asks for.
CONFIGS = {
    "small": Config(rows=20_000, features=8, window=16, hidden=32, batch=64),
    "issue": Config(rows=20_000, features=8, window=48, hidden=64, batch=64),
    "large": Config(rows=20_000, features=16, window=64, hidden=128, batch=128),
    # Issue 21's fleet shapes: a panel's monthly minibatches (64 windows of
    # 24 steps, one series value) and an hourly one (256 x 96, 3 columns).
    "fleet-monthly": Config(rows=20_000, features=1, window=24, hidden=32, batch=64),
    "fleet-hourly": Config(rows=8_000, features=3, window=96, hidden=32, batch=256),
}
QUICK_CONFIG = Config(rows=300, features=3, window=8, hidden=8, batch=16)
CHECK_CONFIG = Config(rows=200, features=3, window=10, hidden=8, batch=16)
CELLS = ("lstm", "gru")

# Optimizer and loss settings shared by both sides (tsrnn's defaults, alpha off).
LR, BETA_1, BETA_2, EPS, MAX_GRAD_NORM = 0.005, 0.9, 0.999, 1e-8, 5.0

# After one epoch from identical weights (and with the eps placement matched,
# see torch_step), the two loops differ only by float32 rounding: about 1e-7
# relative here. A missed loss term, a wrong loss scale, another clipping rule
# or a different window order shows up as 1e-3 or more.
CHECK_RTOL = 1e-4


def fmt_config(cfg):
    return (f"{cfg.rows} rows x {cfg.features} sensors, window {cfg.window}, "
            f"hidden {cfg.hidden}, batch {cfg.batch}")


def steps_per_epoch(cfg):
    """Optimizer steps in one epoch: full-window minibatches plus the prefix."""
    n_windows = max(0, cfg.rows - cfg.window + 1)
    return -(-n_windows // cfg.batch) + (1 if cfg.window > 1 else 0)


def make_stream(cfg, seed=0):
    """A float32 sensor stream (rows, features) and a target per row.

    Smooth periodic sensors plus noise, and a target that depends on recent
    rows, so the data looks like what the estimator is for. The values do not
    change the work done; float32 in, so neither side pays a conversion.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(cfg.rows, dtype=np.float64)[:, None]
    periods = rng.uniform(20, 400, cfg.features)
    phases = rng.uniform(0, 2 * np.pi, cfg.features)
    X = np.sin(2 * np.pi * t / periods + phases) + 0.1 * rng.standard_normal((cfg.rows, cfg.features))
    y = np.roll(X[:, 0], 3) + 0.5 * X[:, -1] * X[:, 0]
    return X.astype(np.float32), y.astype(np.float32)


# ---------------------------------------------------------------- tsrnn side


def make_estimator(cfg, cell, seed=0):
    return RNNRegressor(
        hidden_layer_sizes=(cfg.hidden,), cell=cell, window=cfg.window,
        batch_size=cfg.batch, max_iter=1, early_stopping=False, shuffle=True,
        alpha=0.0, learning_rate_init=LR, beta_1=BETA_1, beta_2=BETA_2,
        epsilon=EPS, max_grad_norm=MAX_GRAD_NORM, random_state=seed,
    )


def tsrnn_limits(threads):
    """n threads for tsrnn's OpenMP kernels and for the BLAS numpy/scipy call."""
    @contextlib.contextmanager
    def ctx():
        with threadpool_limits(threads, user_api="openmp"), \
                threadpool_limits(threads, user_api="blas"):
            yield
    return ctx


# ---------------------------------------------------------------- torch side


# --no-onednn sets this: torch's CPU LSTM runs on oneDNN's fused LSTM
# primitive by default (its GRU does not), which is much of why its LSTM is
# fast; turning it off shows torch's own ATen kernels.
TORCH_ONEDNN = True


def torch_limits(threads):
    @contextlib.contextmanager
    def ctx():
        old = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            with threadpool_limits(threads, user_api="openmp"), \
                    torch.backends.mkldnn.flags(enabled=TORCH_ONEDNN):
                yield
        finally:
            torch.set_num_threads(old)
    return ctx


def make_torch_model(cfg, cell, seed=0):
    torch.manual_seed(seed)
    cls = torch.nn.LSTM if cell == "lstm" else torch.nn.GRU
    rnn = cls(cfg.features, cfg.hidden, num_layers=1, batch_first=True)
    head = torch.nn.Linear(cfg.hidden, 1)
    params = list(rnn.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=LR, betas=(BETA_1, BETA_2), eps=EPS)
    return rnn, head, params, opt


class TorchStream:
    """The torch loop's view of the stream, built exactly as tsrnn's _StreamData.

    ``windows`` is a strided view (no copy); ``batch`` copies one minibatch's
    windows with fancy indexing, which gives a C-contiguous (B, T, D) array
    that ``torch.from_numpy`` wraps without another copy.
    """

    def __init__(self, X, y, window):
        Y = y.reshape(-1, 1)
        n_prefix = min(len(X), window - 1)
        self.prefix = None
        if n_prefix:
            self.prefix = (torch.from_numpy(np.ascontiguousarray(X[None, :n_prefix])),
                           torch.from_numpy(np.ascontiguousarray(Y[None, :n_prefix])))
        self.n_items = max(0, len(X) - window + 1)
        if self.n_items:
            self.windows = sliding_window_view(X, window, axis=0).transpose(0, 2, 1)
            self.Y = Y[window - 1:]

    def batch(self, idx):
        return torch.from_numpy(self.windows[idx]), torch.from_numpy(self.Y[idx])


def torch_step(rnn, head, params, opt, xb, yb, per_step=False, exact_eps=False):
    """One Adam step; returns the minibatch loss as a float.

    ``exact_eps`` is for the equivalence check only. torch adds Adam's eps to
    the bias-corrected sqrt(v), tsrnn (like scikit-learn's MLP) to the raw
    sqrt(v), i.e. tsrnn's eps acts like torch's eps / sqrt(1 - beta_2**t).
    That is irrelevant for training, but Adam's first steps move every weight
    by about lr * g / (|g| + eps), so for weights with gradients near 1e-7 the
    two placements give visibly different weights. Setting torch's eps to
    tsrnn's effective value before each step makes the two updates the same
    formula. The timed loop uses torch's plain Adam, as a user would.
    """
    opt.zero_grad(set_to_none=True)
    out, _ = rnn(xb)
    z = head(out if per_step else out[:, -1])
    loss = 0.5 * torch.nn.functional.mse_loss(z, yb)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
    if exact_eps:
        state = opt.state.get(params[0], {})
        t = int(state["step"]) + 1 if "step" in state else 1
        opt.param_groups[0]["eps"] = EPS / np.sqrt(1 - BETA_2 ** t)
    opt.step()
    return loss.item()


def torch_epoch(model, data, batch, rng, order=None, exact_eps=False):
    """One epoch in tsrnn's order: shuffle, the prefix sequence, the minibatches.

    Returns the row-weighted mean loss, as tsrnn's ``loss_curve_`` entry.
    """
    rnn, head, params, opt = model
    if order is None:
        order = np.arange(data.n_items)
        rng.shuffle(order)
    total, n_rows = 0.0, 0
    if data.prefix is not None:
        xp, yp = data.prefix
        total += yp.shape[1] * torch_step(rnn, head, params, opt, xp, yp, per_step=True,
                                          exact_eps=exact_eps)
        n_rows += yp.shape[1]
    for start in range(0, data.n_items, batch):
        xb, yb = data.batch(order[start:start + batch])
        total += xb.shape[0] * torch_step(rnn, head, params, opt, xb, yb, exact_eps=exact_eps)
        n_rows += xb.shape[0]
    return total / n_rows


def torch_state_dict(model):
    rnn, head, _, _ = model
    state = {k: v.detach().numpy().copy() for k, v in rnn.state_dict().items()}
    state.update({"head." + k: v.detach().numpy().copy() for k, v in head.state_dict().items()})
    return state


# ---------------------------------------------------------------- equivalence check


def check_same_training(cell, threads, seed=0):
    """Failure strings if one epoch of tsrnn and of the torch loop differ.

    Both start from torch's initial weights (loaded into tsrnn with
    load_state_dict, which also resets Adam) and visit the windows in the
    order ``RandomState(seed)`` shuffles them, which is the first thing
    partial_fit draws from its random state. The epoch loss and every weight
    after the epoch are compared.
    """
    cfg = CHECK_CONFIG
    X, y = make_stream(cfg, seed=1)
    model = make_torch_model(cfg, cell, seed=seed)
    est = make_estimator(cfg, cell, seed=seed)
    failures = []
    with tsrnn_limits(threads)(), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.partial_fit(X, y)  # only to create the model with the right shapes
        est.load_state_dict(torch_state_dict(model))
        est.partial_fit(X, y)
    data = TorchStream(X, y, cfg.window)
    order = np.arange(data.n_items)
    np.random.RandomState(seed).shuffle(order)
    with torch_limits(threads)():
        torch_loss = torch_epoch(model, data, cfg.batch, None, order=order, exact_eps=True)
    ts_loss = est.loss_curve_[-1]
    if not abs(ts_loss - torch_loss) <= CHECK_RTOL * abs(torch_loss):
        failures.append(f"{cell}: epoch loss tsrnn {ts_loss:.6g} != torch {torch_loss:.6g}")
    worst = 0.0
    ts_state = est.state_dict()
    for name, ref in torch_state_dict(model).items():
        got = ts_state[name]
        err = float(np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-6))
        worst = max(worst, err)
        if not err <= CHECK_RTOL:
            failures.append(f"{cell}: weight {name} after one epoch: "
                            f"max|diff|/max|torch| = {err:.2e} > {CHECK_RTOL:.0e}")
    return failures, worst


# ---------------------------------------------------------------- timing


def timed(fn):
    """(wall seconds, CPU seconds of this process) of one call of ``fn``.

    CPU time is the cross-check for a shared machine: on one thread it is the
    work done, whether or not the thread was descheduled in between. On more
    threads it also counts OpenMP threads spinning at barriers, so there it
    is no cleaner than wall time.
    """
    gc.collect()  # untimed: a collection of the previous run's garbage is not billed here
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def time_alternating(contenders, rounds):
    """Per contender: (median wall s, median CPU s, wall samples), alternating runs.

    Runs go A B C D, D C B A, ... Each call is seconds long, so single calls
    alternate (no blocks needed: the OpenMP/BLAS spin-wait after a parallel
    region is far shorter than a call). Reversing the order every round puts
    slow drift of the outside load evenly on both sides. One untimed warm-up
    call each comes first.
    """
    names = list(contenders)
    for name in names:
        fn, ctx = contenders[name]
        with ctx():
            fn()
    wall = {name: [] for name in names}
    cpu = {name: [] for name in names}
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            fn, ctx = contenders[name]
            with ctx():
                w, c = timed(fn)
            wall[name].append(w)
            cpu[name].append(c)
    return {name: (statistics.median(wall[name]), statistics.median(cpu[name]), wall[name])
            for name in names}


def load_blind(threads):
    """tsrnn_limits(threads) with tsrnn's load awareness (tsrnn._load) off."""
    @contextlib.contextmanager
    def ctx():
        old = tsrnn_load.ENABLED
        tsrnn_load.ENABLED = False
        try:
            with tsrnn_limits(threads)():
                yield
        finally:
            tsrnn_load.ENABLED = old
    return ctx


def measure(cfg, cell, threads, rounds, have_torch, compare_threads=False):
    X, y = make_stream(cfg)
    contenders = {}
    ts_ctx = tsrnn_limits(threads)

    def ts_fit():
        make_estimator(cfg, cell).fit(X, y)

    with ts_ctx():
        est = make_estimator(cfg, cell).fit(X, y)

    def ts_epoch():
        est.partial_fit(X, y)

    contenders["tsrnn fit"] = (ts_fit, ts_ctx)
    contenders["tsrnn epoch"] = (ts_epoch, ts_ctx)
    if compare_threads:
        contenders["tsrnn fit 1 thread"] = (ts_fit, tsrnn_limits(1))
        contenders["tsrnn fit load-blind"] = (ts_fit, load_blind(threads))
    if have_torch:
        th_ctx = torch_limits(threads)
        rng = np.random.RandomState(0)

        def th_fit():
            # What a torch user's fit does: model, optimizer, data view, epoch.
            model = make_torch_model(cfg, cell)
            torch_epoch(model, TorchStream(X, y, cfg.window), cfg.batch, rng)

        model = make_torch_model(cfg, cell)
        data = TorchStream(X, y, cfg.window)

        def th_epoch():
            torch_epoch(model, data, cfg.batch, rng)

        contenders["torch fit"] = (th_fit, th_ctx)
        contenders["torch epoch"] = (th_epoch, th_ctx)
    return time_alternating(contenders, rounds)


# ---------------------------------------------------------------- profile


class _Timers:
    """Accumulated wall time of named functions, patched in for one epoch."""

    def __init__(self):
        self.total = {}
        self.calls = {}
        self._undo = []

    def wrap(self, owner, attr, name):
        fn = getattr(owner, attr)
        total, calls = self.total, self.calls
        total.setdefault(name, 0.0)
        calls.setdefault(name, 0)

        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                total[name] += time.perf_counter() - t0
                calls[name] += 1

        self._undo.append((owner, attr, owner.__dict__.get(attr, _MISSING)))
        setattr(owner, attr, wrapper)

    def wrap_context(self, owner, attr, name):
        """Time a function returning a context manager: the call, enter and exit."""
        fn = getattr(owner, attr)
        total = self.total
        total.setdefault(name, 0.0)
        self.calls.setdefault(name, 0)
        calls = self.calls

        @contextlib.contextmanager
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            cm = fn(*args, **kwargs)
            cm.__enter__()
            total[name] += time.perf_counter() - t0
            try:
                yield
            finally:
                t1 = time.perf_counter()
                cm.__exit__(None, None, None)
                total[name] += time.perf_counter() - t1
                calls[name] += 1

        self._undo.append((owner, attr, owner.__dict__.get(attr, _MISSING)))
        setattr(owner, attr, wrapper)

    def restore(self):
        for owner, attr, old in reversed(self._undo):
            if old is _MISSING:
                delattr(owner, attr)
            else:
                setattr(owner, attr, old)
        self._undo.clear()


_MISSING = object()


def profile_epoch(cfg, cell, threads):
    """Split one tsrnn epoch (partial_fit) into kernel time and loop overhead.

    Timers are patched around the functions of the training loop for one
    instrumented epoch. Each category below is exclusive (nested timers are
    subtracted), so the rows add up to the instrumented total. The timers
    cost about a microsecond per call, a few hundred microseconds per step at
    most; the uninstrumented epoch is timed too, to show that.

    Returns (rows, instrumented seconds, uninstrumented seconds, steps).
    """
    X, y = make_stream(cfg)
    ctx = tsrnn_limits(threads)
    with ctx(), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = make_estimator(cfg, cell).fit(X, y)
        plain = statistics.median(timed(lambda: est.partial_fit(X, y))[0] for _ in range(3))
        cells = tsrnn_functional._cells
        t = _Timers()
        t.wrap(cells, "forward_layer", "forward_layer")
        t.wrap(cells, "backward_layer", "backward_layer")
        t.wrap(tsrnn_network, "rnn_forward", "rnn_forward")
        t.wrap(tsrnn_network, "rnn_backward", "rnn_backward")
        t.wrap_context(tsrnn_functional, "_single_threaded_blas", "blas limit")
        t.wrap(tsrnn_functional, "_time_major", "_time_major")
        t.wrap(tsrnn_functional, "_validate_params", "_validate_params")
        t.wrap(tsrnn_data.StreamData, "batch", "batch")
        B = tsrnn_base.BaseRNN
        t.wrap(B, "_train_step", "_train_step")
        t.wrap(B, "_loss_grad", "_loss_grad")
        t.wrap(B, "_optimizer_step", "_optimizer_step")
        t.wrap(B, "_forward_stack", "_forward_stack")
        t.wrap(B, "_backward_stack", "_backward_stack")
        t.wrap(B, "_head", "_head")
        t.wrap(type(est), "_loss", "_loss")
        t.wrap(B, "_run_epochs", "_run_epochs")
        try:
            gc.collect()
            t0 = time.perf_counter()
            est.partial_fit(X, y)
            total = time.perf_counter() - t0
        finally:
            t.restore()
    s = t.total
    kernels_f, kernels_b = s["forward_layer"], s["backward_layer"]
    functional = s["rnn_forward"] + s["rnn_backward"]
    rows = [
        ("kernel: forward_layer (Cython/OpenMP)", kernels_f),
        ("kernel: backward_layer (Cython/OpenMP)", kernels_b),
        ("functional: threadpoolctl BLAS limit per call", s["blas limit"]),
        ("functional: time-major copies + finite checks", s["_time_major"]),
        ("functional: weight validation (_validate_params)", s["_validate_params"]),
        ("functional: rest (buffers, bias sum, output transpose)",
         functional - kernels_f - kernels_b - s["blas limit"] - s["_time_major"]
         - s["_validate_params"]),
        ("_base: layer views + grads copied into the flat buffer",
         s["_forward_stack"] + s["_backward_stack"] - functional),
        ("_base: head forward (_head)", s["_head"]),
        ("_base: loss and its gradient (_loss)", s["_loss"]),
        ("_base: head gradients, dtop, L2 penalty (rest of _loss_grad)",
         s["_loss_grad"] - s["_forward_stack"] - s["_backward_stack"] - s["_head"] - s["_loss"]),
        ("_base: clipping + Adam (_optimizer_step)", s["_optimizer_step"]),
        ("_base: finite checks of loss and weights (_train_step)",
         s["_train_step"] - s["_loss_grad"] - s["_optimizer_step"]),
        ("_base: minibatch gathering (_StreamData.batch)", s["batch"]),
        ("_base: epoch loop (shuffle, gen_batches, bookkeeping)",
         s["_run_epochs"] - s["_train_step"] - s["batch"]),
        ("partial_fit: input validation, target encoding", total - s["_run_epochs"]),
    ]
    return rows, total, plain, t.calls["_train_step"]


def profile_table(rows, total):
    lines = ["| where | ms | share |", "|---|---|---|"]
    for name, sec in rows:
        lines.append(f"| {name} | {sec * 1e3:.1f} | {100 * sec / total:.1f}% |")
    kern = rows[0][1] + rows[1][1]
    lines.append(f"| **kernels** | **{kern * 1e3:.1f}** | **{100 * kern / total:.1f}%** |")
    lines.append(f"| **everything else** | **{(total - kern) * 1e3:.1f}** "
                 f"| **{100 * (total - kern) / total:.1f}%** |")
    return lines


# ---------------------------------------------------------------- reporting


def machine_lines(threads):
    lines = [
        f"CPU: {cpu_model()}, {usable_cores()} usable cores (os.cpu_count() = {os.cpu_count()})",
        f"Python {sys.version.split()[0]}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"scikit-learn {sklearn.__version__}, tsrnn {getattr(tsrnn, '__version__', '?')} from {os.path.dirname(tsrnn.__file__)}, "
        + (f"torch {torch.__version__}" if torch is not None else "torch not installed"),
        f"Threads per contender: {threads}",
        "Native thread pools (threadpoolctl):",
    ]
    lines += ["  " + line for line in threadpool_lines()]
    if torch is not None:
        lines.append(f"torch oneDNN (mkldnn) {'on' if TORCH_ONEDNN else 'OFF (--no-onednn)'}, "
                     f"available: {torch.backends.mkldnn.is_available()}, "
                     f"CPU capability: {torch.backends.cpu.get_cpu_capability()}")
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="threads for both sides (default 2)")
    ap.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=["issue", "large"],
                    help="configurations to time (default: issue large)")
    ap.add_argument("--cells", nargs="+", choices=CELLS, default=list(CELLS))
    ap.add_argument("--rounds", type=int, default=5,
                    help="timed runs per contender, alternating (default 5)")
    ap.add_argument("--profile", action="store_true",
                    help="also break one tsrnn epoch down into kernels and loop overhead "
                         "for every configuration in --profile-configs")
    ap.add_argument("--profile-configs", nargs="+", choices=list(CONFIGS),
                    default=["small", "issue", "large"])
    ap.add_argument("--no-timing", action="store_true", help="skip the timing (e.g. profile only)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: one tiny configuration, one round, profile included")
    ap.add_argument("--no-torch", action="store_true", help="time tsrnn alone even if torch exists")
    ap.add_argument("--no-onednn", action="store_true",
                    help="run torch with oneDNN (mkldnn) off: its LSTM then uses ATen's kernels")
    ap.add_argument("--markdown", metavar="FILE", help="also write machine info and tables here")
    ap.add_argument("--busy", type=int, default=0, metavar="N",
                    help="start N spinning processes for the timing (a shared machine)")
    ap.add_argument("--compare-threads", action="store_true",
                    help="also time tsrnn's fit on 1 thread and with its load awareness off")
    args = ap.parse_args(argv)
    global TORCH_ONEDNN
    TORCH_ONEDNN = not args.no_onednn

    configs = {name: CONFIGS[name] for name in args.configs}
    profile_configs = {name: CONFIGS[name] for name in args.profile_configs}
    if args.quick:
        configs = profile_configs = {"quick": QUICK_CONFIG}
        args.rounds, args.profile = 1, True
    threads = args.threads
    have_torch = torch is not None and not args.no_torch
    # Every fit with max_iter=1 "fails to converge"; that is the point here.
    warnings.simplefilter("ignore", ConvergenceWarning)

    emit = Report()
    warn = print_slowing_env_warning()
    if not have_torch:
        print("NOTE: torch is not available (or --no-torch); tsrnn is timed alone and "
              "the training loops are NOT checked against torch.", flush=True)

    if have_torch:
        print(f"Checking that one epoch of tsrnn and of the torch loop agree "
              f"({fmt_config(CHECK_CONFIG)}) ...", flush=True)
        failures, worst = [], 0.0
        for cell in args.cells:
            f, w = check_same_training(cell, threads)
            failures += f
            worst = max(worst, w)
        if failures:
            print("CHECK FAILED: the torch loop does not train like tsrnn:", file=sys.stderr)
            for f in failures:
                print("  " + f, file=sys.stderr)
            print("Not timing two loops that do different work.", file=sys.stderr)
            return 1
        print(f"Checks passed (worst weight max|diff|/max|torch| after one epoch = {worst:.1e}, "
              f"tolerance {CHECK_RTOL:.0e}).", flush=True)

    emit("## Machine")
    emit()
    for line in machine_lines(threads):
        emit(line)
    if warn:
        emit(warn)
    emit()

    busy = start_busy(args.busy, 3600) if args.busy else []
    if busy:
        time.sleep(1.0)  # let them start before the load is read
    load_start = os.getloadavg()[0]
    if not args.no_timing:
        rows = []
        try:
            for name, cfg in configs.items():
                for cell in args.cells:
                    print(f"timing {name} {cell} ...", file=sys.stderr, flush=True)
                    rows.append((name, cfg, cell, measure(cfg, cell, threads, args.rounds,
                                                          have_torch, args.compare_threads)))
        finally:
            load_mid = os.getloadavg()[0]
            stop_busy(busy)
            busy = []
        emit(f"## One epoch, tsrnn vs torch, {threads} thread(s) each" if have_torch
             else f"## One epoch, tsrnn alone, {threads} thread(s)")
        emit()
        emit(f"Busy processes started by the script: {args.busy}. 1-min load average "
             f"{load_start:.2f} when timing started, {load_mid:.2f} when it ended.")
        emit()
        emit("Times are medians of --rounds runs in alternating order (wall seconds). "
             + ("Ratio = torch time / tsrnn time (>1: tsrnn faster). " if have_torch else "")
             + "fit = RNNRegressor(max_iter=1).fit vs model + optimizer + one epoch in torch; "
             "epoch = partial_fit on a fitted estimator vs one epoch on an existing torch model. "
             + ("The CPU-time ratio uses process CPU seconds, which on one thread ignore "
                "descheduling by other processes." if have_torch else ""))
        emit()
        for name, cfg, _, _ in rows[:: len(args.cells)]:
            emit(f"- {name}: {fmt_config(cfg)}, {steps_per_epoch(cfg)} steps per epoch")
        emit()
        if have_torch:
            head = ("| config | cell | fit ratio | epoch ratio | epoch ratio, CPU time "
                    "| tsrnn fit s | torch fit s | tsrnn epoch s | torch epoch s "
                    "| tsrnn ms/step | torch ms/step | tsrnn fit windows/s "
                    "| torch fit windows/s | runs |")
        else:
            head = ("| config | cell | tsrnn fit s | tsrnn epoch s | tsrnn ms/step "
                    "| tsrnn fit windows/s | runs |")
        emit(head)
        emit("|" + "---|" * (head.count("|") - 1))
        for name, cfg, cell, res in rows:
            n = steps_per_epoch(cfg)
            n_windows = cfg.rows - cfg.window + 1
            tf, te = res["tsrnn fit"][0], res["tsrnn epoch"][0]
            runs = len(res["tsrnn fit"][2])
            if have_torch:
                hf, he = res["torch fit"][0], res["torch epoch"][0]
                cpu_ratio = res["torch epoch"][1] / res["tsrnn epoch"][1]
                emit(f"| {name} | {cell} | **{hf / tf:.2f}x** | **{he / te:.2f}x** "
                     f"| {cpu_ratio:.2f}x | {tf:.3g} | {hf:.3g} | {te:.3g} | {he:.3g} "
                     f"| {1e3 * te / n:.3g} | {1e3 * he / n:.3g} | {n_windows / tf:,.0f} "
                     f"| {n_windows / hf:,.0f} | {runs} |")
            else:
                emit(f"| {name} | {cell} | {tf:.3g} | {te:.3g} | {1e3 * te / n:.3g} "
                     f"| {n_windows / tf:,.0f} | {runs} |")
        emit()
        if args.compare_threads:
            emit(f"tsrnn's fit at {threads} threads (load-aware, the default) against the "
                 f"same fit on 1 thread and at {threads} threads with the load awareness "
                 "off (wall-time medians; ratio = the other's time / the default's, >1: "
                 "the default is faster):")
            emit()
            emit("| config | cell | default fit s | 1 thread fit s | load-blind fit s "
                 "| 1 thread / default | load-blind / default | default windows/s |")
            emit("|---|---|---|---|---|---|---|---|")
            for name, cfg, cell, res in rows:
                tf = res["tsrnn fit"][0]
                t1, tb = res["tsrnn fit 1 thread"][0], res["tsrnn fit load-blind"][0]
                emit(f"| {name} | {cell} | {tf:.3g} | {t1:.3g} | {tb:.3g} | {t1 / tf:.2f}x "
                     f"| {tb / tf:.2f}x | {(cfg.rows - cfg.window + 1) / tf:,.0f} |")
            emit()
        emit("All runs, wall seconds in the order they ran, to judge the noise:")
        emit()
        for name, cfg, cell, res in rows:
            parts = [f"{k}: " + ", ".join(f"{v:.3g}" for v in samples)
                     for k, (_, _, samples) in res.items()]
            emit(f"- {name} {cell}: " + "; ".join(parts))
        emit()

    if args.profile:
        emit(f"## Where one tsrnn epoch goes ({threads} thread(s))")
        emit()
        for name, cfg in profile_configs.items():
            for cell in args.cells:
                print(f"profiling {name} {cell} ...", file=sys.stderr, flush=True)
                prows, total, plain, steps = profile_epoch(cfg, cell, threads)
                emit(f"### {name} {cell}: {fmt_config(cfg)}")
                emit()
                emit(f"One instrumented partial_fit epoch: {total * 1e3:.0f} ms for {steps} steps "
                     f"({total / steps * 1e6:.0f} us/step); without the timers: "
                     f"{plain * 1e3:.0f} ms (median of 3).")
                emit()
                for line in profile_table(prows, total):
                    emit(line)
                emit()

    stop_busy(busy)  # when --no-timing left them running for the profile
    load_end = os.getloadavg()[0]
    emit(f"1-min load average {load_start:.2f} at the start, {load_end:.2f} at the end.")
    if max(load_start, load_end) > threads + 0.5:
        emit("WARNING: other processes were using the CPU during this run; absolute "
             "times are unreliable, ratios less so (runs alternate).")

    if args.markdown:
        emit.save(args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
