"""Benchmark tsrnn's LSTM/GRU/peephole kernels against PyTorch CPU.

Run it with the OpenBLAS overrides of this machine removed (see README):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_cells.py

What it does, in order:
1. checks every tsrnn kernel against torch with identical weights (forward
   output, final state, dx and every parameter gradient) and exits with status
   1 on a mismatch, because timing a wrong kernel is meaningless;
2. measures the large-sgemm ceiling (numpy float32 matmul) at the same thread
   count;
3. times a training step (forward + backward) and an inference forward for
   each cell and size, tsrnn and torch on the same thread count, and prints a
   markdown table of speedups (torch time / tsrnn time, >1 means tsrnn wins),
   GFLOP/s and share of the ceiling;
4. with --scaling, times tsrnn (and torch, for reference) at 1 thread against
   --threads threads for the sizes with batch >= 64;
5. with --baseline DIR, also times the tsrnn of another checkout (built in
   place), interleaved with this one, and reports baseline / this per row:
   the A/B of a change against its parent on a shared machine.

torch is optional: without it the script checks nothing against a reference,
says so, and times tsrnn alone. --quick is a seconds-long smoke run for the
test suite.
"""
import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import scipy
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402
    Contender,
    Report,
    cpu_busy_percent,
    cpu_model,
    print_slowing_env_warning,
    sgemm_ceiling,
    start_busy,
    stop_busy,
    threadpool_lines,
    time_interleaved,
    usable_cores,
)

try:
    from tsrnn.functional import init_params, rnn_backward, rnn_forward
except ImportError as exc:
    sys.exit(f"cannot import tsrnn.functional ({exc}); build the kernels first with "
             "`pip install --no-build-isolation -e .` from the repository root")

try:
    import torch
except ImportError:  # the benchmark must still run where torch is absent
    torch = None

# Set by --baseline: tsrnn.functional of another checkout (see load_baseline).
BASELINE = None

CELLS = ("lstm", "gru", "peephole")
GATES = {"lstm": 4, "gru": 3, "peephole": 4}
# torch has no peephole LSTM; its plain LSTM is the nearest thing a user would
# otherwise reach for, and a peephole with zero peephole weights must equal it.
# Note that torch 2.13 runs nn.LSTM (forward and backward) through oneDNN's
# fused RNN primitive (aten::mkldnn_rnn_layer) but nn.GRU through plain MKL
# mm/addmm, so the two torch baselines are not equally strong.
TORCH_CELL = {"lstm": "lstm", "gru": "gru", "peephole": "lstm"}
REFERENCE_SIZES = ((32, 24, 4, 32), (64, 64, 8, 64), (128, 128, 16, 128), (64, 100, 8, 256))
QUICK_SIZE = (8, 12, 3, 16)
# Small odd shapes that the reference sizes do not exercise: a batch that does
# not split evenly into thread chunks, a batch of one, D > H.
EXTRA_CHECK_SIZES = ((5, 7, 3, 6), (1, 3, 9, 4))

# float32 tolerance, relative to the largest magnitude of the reference array.
# Sums over B*T for the weight gradients and T steps of recurrence put the
# honest float32 error near 1e-6..1e-5 of the scale; 2e-4 is still far below
# what a wrong gate order, a missed term or a transposed weight produces.
RTOL = 2e-4


def forward_flops(cell, batch, steps, inp, hidden):
    """FLOPs of one forward pass: the two GEMMs per step, elementwise work ignored."""
    return 2.0 * batch * steps * GATES[cell] * hidden * (inp + hidden)


def parse_size(text):
    parts = [int(p) for p in text.replace("x", ",").split(",")]
    if len(parts) != 4 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"size must be B,T,D,H with positive ints: {text!r}")
    return tuple(parts)


def fmt_size(size):
    return "{},{},{},{}".format(*size)


# ---------------------------------------------------------------- torch side


def make_torch_module(cell, inp, hidden, params):
    cls = torch.nn.LSTM if TORCH_CELL[cell] == "lstm" else torch.nn.GRU
    mod = cls(inp, hidden, num_layers=1, batch_first=True)
    mod.float()
    torch_keys = set(mod.state_dict())
    missing = torch_keys - set(params)
    if missing:
        raise SystemExit(
            f"CHECK FAILED ({cell}): init_params lacks torch parameter names {sorted(missing)}"
        )
    mod.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in params.items()
                         if k in torch_keys})
    return mod


# ---------------------------------------------------------------- checking


def _state_arrays(state, cell):
    """Final (h,) or (h, c) from tsrnn's state as (B, H) arrays, or None.

    The contract does not pin the state's container, so accept an array, or a
    tuple/list of them, with an optional leading num_layers axis of length 1.
    """
    if state is None:
        return None
    arrays = [state] if isinstance(state, np.ndarray) else list(state)
    want = 2 if TORCH_CELL[cell] == "lstm" else 1
    if len(arrays) != want or not all(isinstance(a, np.ndarray) for a in arrays):
        return None
    out = []
    for a in arrays:
        if a.ndim == 3 and a.shape[0] == 1:
            a = a[0]
        if a.ndim != 2:
            return None
        out.append(a)
    return out


def _rel_err(got, ref):
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if got.shape != ref.shape:
        return np.inf, f"shape {got.shape} != torch {ref.shape}"
    if not np.all(np.isfinite(got)):
        return np.inf, "non-finite values"
    scale = max(np.max(np.abs(ref)) if ref.size else 0.0, 1e-6)
    return float(np.max(np.abs(got - ref)) / scale) if ref.size else 0.0, None


def check_cell(cell, size, seed=0):
    """Compare one tsrnn kernel with torch; return a list of failure strings.

    Peephole weights (the parameters torch does not have) are zeroed, so the
    peephole kernel must reproduce torch's LSTM exactly. The peephole terms
    themselves are the unit tests' business, not this script's.
    """
    batch, steps, inp, hidden = size
    params = init_params(cell, inp, hidden, num_layers=1, dtype=np.float32, random_state=seed)
    mod = make_torch_module(cell, inp, hidden, params)
    torch_keys = set(mod.state_dict())
    params = {k: (v if k in torch_keys else np.zeros_like(v)) for k, v in params.items()}

    rng = np.random.default_rng(seed + 1)
    x = rng.standard_normal((batch, steps, inp), dtype=np.float32)
    g = rng.standard_normal((batch, steps, hidden), dtype=np.float32)

    out, state, cache = rnn_forward(cell, x, params, training=True)
    dx, grads, _ = rnn_backward(g, cache)
    out_inf, state_inf, _ = rnn_forward(cell, x, params, training=False)

    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    out_t, state_t = mod(xt)
    # d/dθ of the linear loss sum(out * g) is exactly what dout=g feeds tsrnn.
    out_t.backward(torch.from_numpy(g))
    if TORCH_CELL[cell] == "lstm":
        state_ref = [state_t[0][0].detach().numpy(), state_t[1][0].detach().numpy()]
    else:
        state_ref = [state_t[0].detach().numpy()]

    failures = []

    def compare(name, got, ref):
        err, why = _rel_err(got, ref)
        if why is not None or err > RTOL:
            failures.append(f"{cell} {fmt_size(size)} {name}: "
                            + (why if why else f"max |diff| / max |torch| = {err:.2e} > {RTOL:.0e}"))
        return err

    worst = 0.0
    ref_out = out_t.detach().numpy()
    worst = max(worst, compare("forward out (training=True)", out, ref_out))
    worst = max(worst, compare("forward out (training=False)", out_inf, ref_out))
    for label, st in (("final state (training=True)", state),
                      ("final state (training=False)", state_inf)):
        got = _state_arrays(st, cell)
        if got is None:
            failures.append(f"{cell} {fmt_size(size)} {label}: unrecognised state "
                            f"{type(state).__name__}; expected h or (h, c) arrays")
            continue
        for part, a, r in zip("hc", got, state_ref):
            worst = max(worst, compare(f"{label} {part}", a, r))
    worst = max(worst, compare("dx", dx, xt.grad.numpy()))
    if set(grads) != set(params):
        failures.append(f"{cell} {fmt_size(size)}: grads keys {sorted(grads)} "
                        f"!= params keys {sorted(params)}")
    for name, p in mod.named_parameters():
        if name in grads:
            worst = max(worst, compare(f"grad {name}", grads[name], p.grad.numpy()))
    for name in sorted(set(grads) - torch_keys):
        if not np.all(np.isfinite(grads[name])):
            failures.append(f"{cell} {fmt_size(size)} grad {name}: non-finite values")
    return failures, worst


def run_checks(cells, sizes):
    failures = []
    worst = 0.0
    for cell in cells:
        for size in sizes:
            f, w = check_cell(cell, size)
            failures += f
            worst = max(worst, w)
    return failures, worst


# ---------------------------------------------------------------- timing


def tsrnn_limits(threads):
    """Thread limits for tsrnn: its OpenMP pool and the BLAS it calls.

    BLAS is limited too because tsrnn calls scipy's OpenBLAS, and "n threads"
    must mean n threads in total, as it does for torch.
    """
    @contextlib.contextmanager
    def ctx():
        with threadpool_limits(threads, user_api="openmp"), \
                threadpool_limits(threads, user_api="blas"):
            yield
    return ctx


def torch_limits(threads):
    @contextlib.contextmanager
    def ctx():
        old = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            with threadpool_limits(threads, user_api="openmp"):
                yield
        finally:
            torch.set_num_threads(old)
    return ctx


def _data(size):
    batch, steps, inp, hidden = size
    rng = np.random.default_rng(1)
    x = rng.standard_normal((batch, steps, inp), dtype=np.float32)
    g = rng.standard_normal((batch, steps, hidden), dtype=np.float32)
    return x, g


def load_baseline(path):
    """tsrnn.functional (and its compiled _cells) of another checkout.

    The checkout must be built in place (``python setup.py build_ext
    --inplace``). It is imported as the package ``tsrnn_baseline``, so both
    builds live in this process and can be timed interleaved.
    """
    import importlib
    import types

    pkg_dir = os.path.join(os.path.abspath(path), "tsrnn")
    if not os.path.isfile(os.path.join(pkg_dir, "functional.py")):
        sys.exit(f"--baseline {path}: no tsrnn/functional.py there")
    pkg = types.ModuleType("tsrnn_baseline")
    pkg.__path__ = [pkg_dir]  # functional's `from . import _cells` finds that build
    sys.modules["tsrnn_baseline"] = pkg
    return importlib.import_module("tsrnn_baseline.functional")


def tsrnn_contenders(cell, size, threads, functional=None):
    _, _, inp, hidden = size
    params = init_params(cell, inp, hidden, num_layers=1, dtype=np.float32, random_state=0)
    x, g = _data(size)
    fwd, bwd = (rnn_forward, rnn_backward) if functional is None else (
        functional.rnn_forward, functional.rnn_backward)

    def train():
        _, _, cache = fwd(cell, x, params, training=True)
        bwd(g, cache)

    def infer():
        fwd(cell, x, params, training=False)

    ctx = tsrnn_limits(threads)
    return Contender(train, context=ctx), Contender(infer, context=ctx)


def torch_contenders(cell, size, threads):
    _, _, inp, hidden = size
    params = init_params(cell, inp, hidden, num_layers=1, dtype=np.float32, random_state=0)
    mod = make_torch_module(cell, inp, hidden, params)
    x, g = _data(size)
    # x requires grad because tsrnn's timed backward returns dx (the default
    # input_grad=True); the 3x FLOP count of a training step assumes it too.
    xt = torch.from_numpy(x).requires_grad_(True)
    gt = torch.from_numpy(g)
    plist = list(mod.parameters())

    def clear_grads():
        # Untimed. With .grad = None torch allocates fresh gradient tensors in
        # backward, as tsrnn allocates its grads dict, instead of accumulating.
        for p in plist:
            p.grad = None
        xt.grad = None

    def train():
        out, _ = mod(xt)
        out.backward(gt)

    def infer():
        with torch.inference_mode():
            mod(xt)

    ctx = torch_limits(threads)
    return Contender(train, setup=clear_grads, context=ctx), Contender(infer, context=ctx)


def torch_sgemm(threads, n=2048):
    """GFLOP/s of torch's own float32 matmul, to read torch's share of the ceiling.

    torch multiplies with MKL, not OpenBLAS, so its kernels may exceed the
    OpenBLAS ceiling; this number says how much headroom torch starts with.
    """
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen)
    b = torch.randn(n, n, generator=gen)
    c = torch.empty(n, n)
    res = time_interleaved({"mm": Contender(lambda: torch.mm(a, b, out=c),
                                            context=torch_limits(threads))},
                           warmup=2, repeat=7, min_time=0.0)
    return 2.0 * n ** 3 / res["mm"][0] / 1e9


def timing_kw(args):
    return dict(warmup=args.warmup, repeat=args.repeat, min_time=args.min_time)


def measure_pair(a, b, args):
    """Time two contenders interleaved; return (median a, median b, fewest runs)."""
    res = time_interleaved({"a": a, "b": b}, **timing_kw(args))
    return res["a"][0], res["b"][0], min(res["a"][1], res["b"][1])


def measure_row(cell, size, args, threads, have_torch):
    ts_train, ts_infer = tsrnn_contenders(cell, size, threads)
    row = dict(cell=cell, size=size)
    if BASELINE is not None:
        # This build, its baseline (and torch) interleaved: train, then infer.
        bl_train, bl_infer = tsrnn_contenders(cell, size, threads, BASELINE)
        runs = []
        for mode, ts, bl, th in (("train", ts_train, bl_train, None),
                                 ("infer", ts_infer, bl_infer, None)):
            group = {"ts": ts, "bl": bl}
            if have_torch:
                group["th"] = torch_contenders(cell, size, threads)[0 if mode == "train" else 1]
            res = time_interleaved(group, **timing_kw(args))
            for key, (t, n) in res.items():
                row[f"{key}_{mode}"] = t
                runs.append(n)
        row["runs"] = min(runs)
        return row
    if have_torch:
        th_train, th_infer = torch_contenders(cell, size, threads)
        row["ts_train"], row["th_train"], n1 = measure_pair(ts_train, th_train, args)
        row["ts_infer"], row["th_infer"], n2 = measure_pair(ts_infer, th_infer, args)
    else:
        res = time_interleaved({"train": ts_train, "infer": ts_infer}, **timing_kw(args))
        (row["ts_train"], n1), (row["ts_infer"], n2) = res["train"], res["infer"]
    row["runs"] = min(n1, n2)
    return row


def baseline_table(rows):
    """This build against --baseline, both timed interleaved in this process."""
    head = ("| cell | B,T,D,H | train: baseline / this | infer: baseline / this "
            "| this train / infer ms | baseline train / infer ms | runs |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(
            f"| {r['cell']} | {fmt_size(r['size'])} "
            f"| **{r['bl_train'] / r['ts_train']:.3f}x** | **{r['bl_infer'] / r['ts_infer']:.3f}x** "
            f"| {ms(r['ts_train'])} / {ms(r['ts_infer'])} "
            f"| {ms(r['bl_train'])} / {ms(r['bl_infer'])} | {r['runs']} |")
    return lines


def measure_scaling(cell, size, args, threads, with_torch):
    """1 thread against ``threads`` threads, each pair interleaved."""
    row = dict(cell=cell, size=size)
    one, many = tsrnn_contenders(cell, size, 1), tsrnn_contenders(cell, size, threads)
    tr1, trn, _ = measure_pair(one[0], many[0], args)
    in1, inn, _ = measure_pair(one[1], many[1], args)
    row["ts1"], row["tsn"] = (tr1, in1), (trn, inn)
    if with_torch:
        one, many = torch_contenders(cell, size, 1), torch_contenders(cell, size, threads)
        tr1, trn, _ = measure_pair(one[0], many[0], args)
        in1, inn, _ = measure_pair(one[1], many[1], args)
        row["th1"], row["thn"] = (tr1, in1), (trn, inn)
    return row


# ---------------------------------------------------------------- reporting


def _git_revision():
    """Short commit of the checkout being measured, '+dirty' if it has edits."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        rev = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--", "tsrnn"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (rev or "unknown") + ("+dirty" if dirty else "")


def machine_lines(threads):
    """Markdown bullets describing the machine and the libraries that ran."""
    lines = [
        f"- Run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"tsrnn commit {_git_revision()}",
        f"- CPU: {cpu_model()}, {usable_cores()} usable cores (os.cpu_count() = {os.cpu_count()})",
        f"- Python {sys.version.split()[0]}, numpy {np.__version__}, scipy {scipy.__version__}, "
        + (f"torch {torch.__version__}" if torch is not None else "torch not installed"),
        f"- Threads per contender: {threads}",
        "- Native thread pools (threadpoolctl):",
    ]
    lines += ["  - " + line for line in threadpool_lines()]
    if torch is not None:
        cfg = torch.__config__.show()
        blas = "MKL" if "BLAS_INFO=mkl" in cfg else "see torch.__config__.show()"
        lines.append(
            f"- torch BLAS: {blas} (linked statically, invisible to threadpoolctl), "
            f"oneDNN available: {torch.backends.mkldnn.is_available()}, "
            f"CPU capability: {torch.backends.cpu.get_cpu_capability()}"
        )
    return lines


def ms(t):
    return f"{t * 1e3:.3g}"


def pct(gflops, ceiling):
    share = 100 * gflops / ceiling
    return f"{gflops:.1f} ({share:.0f}%)" if share >= 10 else f"{gflops:.2g} ({share:.1f}%)"


def results_table(rows, ceiling, have_torch):
    if have_torch:
        head = ("| cell | B,T,D,H | train speedup | infer speedup | tsrnn train GFLOP/s (% ceil) "
                "| torch train GFLOP/s (% ceil) | tsrnn infer GFLOP/s (% ceil) "
                "| torch infer GFLOP/s (% ceil) | tsrnn train / infer ms | torch train / infer ms "
                "| runs |")
    else:
        head = ("| cell | B,T,D,H | tsrnn train GFLOP/s (% ceil) | tsrnn infer GFLOP/s (% ceil) "
                "| tsrnn train / infer ms | runs |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        fl = forward_flops(r["cell"], *r["size"])
        ts_tr, ts_in = 3 * fl / r["ts_train"] / 1e9, fl / r["ts_infer"] / 1e9
        if have_torch:
            th_tr, th_in = 3 * fl / r["th_train"] / 1e9, fl / r["th_infer"] / 1e9
            lines.append(
                f"| {r['cell']} | {fmt_size(r['size'])} "
                f"| **{r['th_train'] / r['ts_train']:.2f}x** | **{r['th_infer'] / r['ts_infer']:.2f}x** "
                f"| {pct(ts_tr, ceiling)} | {pct(th_tr, ceiling)} "
                f"| {pct(ts_in, ceiling)} | {pct(th_in, ceiling)} "
                f"| {ms(r['ts_train'])} / {ms(r['ts_infer'])} "
                f"| {ms(r['th_train'])} / {ms(r['th_infer'])} | {r['runs']} |"
            )
        else:
            lines.append(
                f"| {r['cell']} | {fmt_size(r['size'])} | {pct(ts_tr, ceiling)} "
                f"| {pct(ts_in, ceiling)} | {ms(r['ts_train'])} / {ms(r['ts_infer'])} "
                f"| {r['runs']} |"
            )
    return lines


def scaling_table(rows, threads, have_torch):
    head = (f"| cell | B,T,D,H | tsrnn train speedup {threads}T vs 1T "
            f"| tsrnn infer speedup {threads}T vs 1T "
            f"| tsrnn train ms 1T / {threads}T | tsrnn infer ms 1T / {threads}T |")
    if have_torch:
        head += f" torch train {threads}T vs 1T | torch infer {threads}T vs 1T |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        line = (f"| {r['cell']} | {fmt_size(r['size'])} "
                f"| **{r['ts1'][0] / r['tsn'][0]:.2f}x** | **{r['ts1'][1] / r['tsn'][1]:.2f}x** "
                f"| {ms(r['ts1'][0])} / {ms(r['tsn'][0])} | {ms(r['ts1'][1])} / {ms(r['tsn'][1])} |")
        if have_torch:
            if r.get("th1"):
                line += (f" {r['th1'][0] / r['thn'][0]:.2f}x | {r['th1'][1] / r['thn'][1]:.2f}x |")
            else:
                line += " (as lstm) | (as lstm) |"
        lines.append(line)
    return lines


# ---------------------------------------------------------------- main


def wait_for_idle(limit, threshold=10.0, quiet_windows=2, window=5.0):
    """Block until other processes leave the CPU alone, or ``limit`` seconds pass."""
    deadline = time.monotonic() + limit
    quiet = 0
    while quiet < quiet_windows:
        busy = cpu_busy_percent(window)
        if busy is None:
            print("NOTE: cannot read /proc/stat; not waiting for an idle CPU.", flush=True)
            return
        quiet = quiet + 1 if busy < threshold else 0
        if quiet < quiet_windows and time.monotonic() > deadline:
            print(f"NOTE: the CPU was still {busy:.0f}% busy after {limit:.0f} s; "
                  "timing anyway.", flush=True)
            return
        if quiet == 0:
            print(f"waiting for an idle CPU ({busy:.0f}% busy) ...", file=sys.stderr, flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2,
                    help="threads for every contender (default 2)")
    ap.add_argument("--sizes", type=parse_size, nargs="+", default=None, metavar="B,T,D,H",
                    help="sizes as batch,time,input,hidden (default: the four reference sizes)")
    ap.add_argument("--cells", nargs="+", choices=CELLS, default=list(CELLS))
    ap.add_argument("--repeat", type=int, default=10,
                    help="minimum timed runs per measurement; fast ones get more (default 10)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=0.3,
                    help="seconds of timed runs to aim for per measurement (default 0.3)")
    ap.add_argument("--scaling", action="store_true",
                    help="also time tsrnn at 1 thread vs --threads for sizes with batch >= 64")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: one small size, few repeats, no scaling")
    ap.add_argument("--no-torch", action="store_true", help="time tsrnn alone even if torch exists")
    ap.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                    help="before timing, wait up to SECONDS for the CPU to be idle "
                         "(other processes under 10%% busy for 10 s); useful on a shared machine")
    ap.add_argument("--markdown", metavar="FILE", help="also write machine info and tables here")
    ap.add_argument("--busy", type=int, default=0, metavar="N",
                    help="start N spinning processes for the timing (a shared machine, "
                         "issue 21); the WARNING at the end then applies by design")
    ap.add_argument("--baseline", metavar="DIR",
                    help="also time tsrnn from this checkout (built in place), interleaved "
                         "with this one: the A/B of a change against its parent")
    args = ap.parse_args(argv)
    global BASELINE
    if args.baseline:
        BASELINE = load_baseline(args.baseline)

    if args.quick:
        args.sizes = args.sizes or [QUICK_SIZE]
        args.repeat, args.warmup, args.min_time = 3, 1, 0.0
        args.scaling = False
    sizes = args.sizes or list(REFERENCE_SIZES)
    threads = args.threads
    have_torch = torch is not None and not args.no_torch

    emit = Report()
    warn = print_slowing_env_warning()
    if not have_torch:
        print("NOTE: torch is not available (or --no-torch); tsrnn is timed alone and "
              "NOT checked against a reference.", flush=True)
    if threads > (usable_cores() or threads):
        print(f"NOTE: --threads {threads} exceeds the {usable_cores()} usable cores; "
              "numbers will be oversubscribed.", flush=True)

    # Checks first: a kernel that disagrees with torch is not worth timing.
    if have_torch:
        check_sizes = list(dict.fromkeys(list(sizes) + list(EXTRA_CHECK_SIZES)))
        print(f"Checking {', '.join(args.cells)} against torch on sizes "
              f"{', '.join(fmt_size(s) for s in check_sizes)} ...", flush=True)
        with threadpool_limits(threads, user_api="openmp"), threadpool_limits(threads, user_api="blas"):
            failures, worst = run_checks(args.cells, check_sizes)
        if failures:
            print("CHECK FAILED: tsrnn disagrees with torch given the same weights:", file=sys.stderr)
            for f in failures:
                print("  " + f, file=sys.stderr)
            print("Not timing a kernel that computes the wrong thing.", file=sys.stderr)
            return 1
        print(f"Checks passed (worst max|diff|/max|torch| = {worst:.1e}, tolerance {RTOL:.0e}).",
              flush=True)

    if args.wait_idle > 0:
        wait_for_idle(args.wait_idle)

    ceiling = sgemm_ceiling(threads)
    ceiling_scipy = sgemm_ceiling(threads, lib="scipy")
    emit("## Machine")
    emit()
    for line in machine_lines(threads):
        emit(line)
    emit(f"- Ceiling: numpy float32 2048x2048 matmul on {threads} thread(s) = {ceiling:.1f} GFLOP/s "
         f"(scipy's OpenBLAS, which tsrnn calls: {ceiling_scipy:.1f} GFLOP/s)")
    if have_torch:
        emit(f"- For reference, torch.mm (MKL) on the same matmul: "
             f"{torch_sgemm(threads):.1f} GFLOP/s")
    if warn:
        emit(warn)
    emit()

    spinners = start_busy(args.busy) if args.busy else []
    try:
        load_start = os.getloadavg()[0]
        busy_start = cpu_busy_percent(2.0)
        rows = []
        for cell in args.cells:
            for size in sizes:
                print(f"timing {cell} {fmt_size(size)} ...", file=sys.stderr, flush=True)
                rows.append(measure_row(cell, size, args, threads, have_torch))
    finally:
        stop_busy(spinners)
    if args.busy:
        emit(f"Timed with {args.busy} spinning process(es) started by the script "
             "(--busy; stopped before the scaling table, if any).")
        emit()

    if BASELINE is not None:
        emit(f"## This build against --baseline {args.baseline}, {threads} thread(s) each")
        emit()
        emit("Ratio = baseline time / this build's time (>1: this build faster); "
             "both builds timed interleaved in one process.")
        emit()
        for line in baseline_table(rows):
            emit(line)
        emit()
        tr = [r["bl_train"] / r["ts_train"] for r in rows]
        inf = [r["bl_infer"] / r["ts_infer"] for r in rows]
        emit(f"Geometric mean, baseline / this: train {statistics.geometric_mean(tr):.3f}x, "
             f"infer {statistics.geometric_mean(inf):.3f}x.")
        emit()

    emit(f"## tsrnn vs torch, {threads} thread(s) each" if have_torch
         else f"## tsrnn alone, {threads} thread(s)")
    emit()
    emit(("Speedup = torch time / tsrnn time (>1: tsrnn faster). " if have_torch else "")
         + "GFLOP/s counts 2*B*T*G*H*(D+H) per forward (G=4 LSTM/peephole, 3 GRU), 3x that "
         "per training step (forward + backward incl. dx); % ceil is the share of the sgemm "
         "ceiling above. Times are medians; 'runs' is the fewest timed runs behind any median "
         "in the row."
         + (" The peephole rows compare against torch's plain LSTM (torch has no peephole)."
            if have_torch and "peephole" in args.cells else ""))
    emit()
    for line in results_table(rows, ceiling, have_torch):
        emit(line)
    emit()

    if have_torch:
        tr = [r["th_train"] / r["ts_train"] for r in rows]
        inf = [r["th_infer"] / r["ts_infer"] for r in rows]
        emit(f"Geometric-mean speedup: train {statistics.geometric_mean(tr):.2f}x, "
             f"infer {statistics.geometric_mean(inf):.2f}x. "
             f"tsrnn slower than torch in {sum(v < 1 for v in tr)}/{len(tr)} train and "
             f"{sum(v < 1 for v in inf)}/{len(inf)} infer rows.")
        emit()

    if args.scaling:
        big = [s for s in sizes if s[0] >= 64]
        if threads < 2:
            emit("Scaling skipped: --threads is 1.")
        elif not big:
            emit("Scaling skipped: no size with batch >= 64.")
        else:
            srows = []
            for cell in args.cells:
                for size in big:
                    print(f"scaling {cell} {fmt_size(size)} ...", file=sys.stderr, flush=True)
                    # torch's peephole stand-in is its LSTM, already scaled in the lstm rows.
                    with_torch = have_torch and (cell == "lstm" or TORCH_CELL[cell] == cell
                                                 or "lstm" not in args.cells)
                    srows.append(measure_scaling(cell, size, args, threads, with_torch))
            emit(f"## Thread scaling, 1 vs {threads} threads (batch >= 64)")
            emit()
            emit(f"Ratio = time on 1 thread / time on {threads} threads "
                 f"(ideal {threads:.2f}x).")
            emit()
            for line in scaling_table(srows, threads, have_torch):
                emit(line)
            emit()

    # Measured again at the end: if it moved, something else was using the CPU.
    ceiling_end = sgemm_ceiling(threads)
    drift = ceiling_end / ceiling - 1
    load_end = os.getloadavg()[0]
    busy_end = cpu_busy_percent(2.0)
    busy_txt = ", ".join("n/a" if b is None else f"{b:.0f}%" for b in (busy_start, busy_end))
    emit(f"Ceiling re-measured after the run: {ceiling_end:.1f} GFLOP/s "
         f"({100 * drift:+.0f}% vs start). CPU busy while this script slept, before and "
         f"after timing: {busy_txt}. 1-min load average {load_start:.2f} at the start of "
         f"timing, {load_end:.2f} at the end.")
    # Any outside load spoils more than the absolute times: on 2 cores torch's
    # and tsrnn's thread pools react to a stolen core very differently, so the
    # ratios move too (LSTM 128,128,16,128 inference read 0.43x idle and 4.7x
    # under a load of 3). Hence a loud warning rather than a footnote.
    busy = max((b for b in (busy_start, busy_end) if b is not None), default=0.0)
    if abs(drift) > 0.10 or busy > 15 or max(load_start, load_end) > threads + 0.5:
        emit("WARNING: another process was using the CPU during this run (see above). "
             "Absolute times, GFLOP/s AND the speedup ratios are unreliable; "
             "rerun on an idle machine.")

    if args.markdown:
        emit.save(args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
