"""Single-series latency: tsrnn inference against onnxruntime and torch (issue 13).

Run it with the OpenBLAS overrides of this machine removed (see README):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_latency.py

What it does, in order:
1. builds, for every cell, one set of float32 weights (tsrnn's init_params)
   and gives the same weights to all three contenders:
   - tsrnn: ``rnn_forward(cell, x, params, training=False)``;
   - onnxruntime: a hand-built graph of one standard ONNX operator, ``LSTM``
     (with its ``P`` input for the peephole cell) or ``GRU`` with
     ``linear_before_reset=1``, which is torch's and tsrnn's placement of the
     reset gate. The weights are converted to ONNX's gate order (LSTM i, o,
     f, c; GRU z, r, h) by ``tsrnn._onnx_graph.layer_weights``, the
     conversion ``tsrnn.onnx.to_onnx`` uses, as graph initializers, which
     onnxruntime may prepack once when the session is created;
   - torch: ``nn.LSTM`` / ``nn.GRU`` under ``torch.inference_mode()``. torch
     has no peephole LSTM, so the peephole rows time its plain LSTM, as a
     stand-in (as bench_cells.py does);
2. checks the outputs before timing anything: onnxruntime's Y and final
   states against tsrnn for every cell, and torch's against tsrnn for the
   cells torch has, to 1e-4 of the largest magnitude; exits with status 1 on
   a mismatch;
3. times the contenders interleaved in one process, each on one thread
   (tsrnn through threadpoolctl's OpenMP and BLAS limits, onnxruntime with
   ``intra_op_num_threads=1, inter_op_num_threads=1``, torch with
   ``torch.set_num_threads(1)``), and reports medians and ratios.

onnxruntime gets its input already time-major, (T, B, D) as its LSTM
operator wants it, so the transpose tsrnn does inside every call is not
billed to it; its outputs stay in the operator's layout. Both favour
onnxruntime, so a ratio at or below 1 is conservative.

4. times the forecaster's streaming calls (``--no-forecaster`` skips it): an
   ``RNNForecaster(target="temp_air", window=48, horizon=24)`` with its
   default band (quantiles 0.1/0.5/0.9, CQR, tracked online) fitted on the
   first 6000 hours of the embedded weather (a few epochs: latency does not
   depend on what the weights learned), then ``predict()`` from the kept
   context and ``update()`` with one new row (a DataFrame of one row, the
   next hour; the rows cycle through the rest of the year, restamped). Both
   go through the checks a user gets. For comparison, in the same
   interleaved run: the network's recurrent layer alone (``rnn_forward``
   on the window) and the exported model (``tsrnn.onnx.to_onnx``) in
   onnxruntime on the same window as a float32 array, which is all a
   deployed ONNX model does per row (no frame, no checks, no band
   tracking). Its output is checked against ``predict(history)`` first.
   Medians and 99th percentiles, the garbage collector left on (pandas
   makes garbage; a stream meets its pauses).

``--baseline DIR`` adds a fourth contender: tsrnn's functional.py and
compiled kernels from another checkout (built in place, e.g. a
``git worktree`` of the parent commit), timed interleaved with the rest, to
show a change against its parent side by side. Its results are checked
against this checkout's too.
"""
import argparse
import contextlib
import importlib
import os
import statistics
import sys
import time
import types
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402
    Contender,
    Report,
    cpu_busy_percent,
    cpu_model,
    print_slowing_env_warning,
    start_busy,
    stop_busy,
    threadpool_lines,
    time_interleaved,
    usable_cores,
)

try:
    from tsrnn import functional as F
except ImportError as exc:
    sys.exit(f"cannot import tsrnn.functional ({exc}); build the kernels first with "
             "`python setup.py build_ext --inplace` from the repository root")

try:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    # The weight conversion and the operator are the library's, as
    # tsrnn.onnx.to_onnx exports them.
    from tsrnn._onnx_graph import OPSET, layer_weights, recurrent_node
except ImportError:
    onnx = ort = None

torch = None  # imported in main() unless --no-torch: the import alone takes seconds

CELLS = ("lstm", "gru", "peephole")
# (batch, steps, inputs, hidden): the three single-series shapes and a
# batch of 64 for contrast.
SIZES = ((1, 48, 4, 32), (1, 168, 8, 64), (1, 24, 13, 32), (64, 48, 4, 32))
QUICK_SIZES = ((1, 12, 3, 8),)
TOL = 1e-4

def fmt_size(size):
    return "{},{},{},{}".format(*size)


def parse_size(text):
    parts = [int(p) for p in text.replace("x", ",").split(",")]
    if len(parts) != 4 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"size must be B,T,D,H with positive ints: {text!r}")
    return tuple(parts)


# ---------------------------------------------------------------- contenders


def onnx_model(cell, params, inp, hidden):
    """A one-operator ONNX graph holding ``params`` as initializers.

    Its input X is time-major (T, B, D) and its outputs are the operator's
    own, Y (T, 1, B, H), Y_h and Y_c, so nothing but the recurrent layer is
    timed.
    """
    weights = layer_weights(cell, params, 0)
    inits = [numpy_helper.from_array(a, name) for name, a in weights.items()]
    outputs = ["Y", "Y_h"] + (["Y_c"] if cell != "gru" else [])
    node = recurrent_node(cell, ["X", *weights], outputs, hidden)
    graph = helper.make_graph(
        [node], f"tsrnn_{cell}",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "B", inp])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT,
                                       ["T", 1, "B", hidden] if o == "Y" else [1, "B", hidden])
         for o in outputs],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model)
    return model


def onnx_session(model):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


def torch_module(cell, params, inp, hidden):
    cls = torch.nn.GRU if cell == "gru" else torch.nn.LSTM
    mod = cls(inp, hidden, batch_first=True).float()
    keys = mod.state_dict().keys()
    mod.load_state_dict({k: torch.from_numpy(np.array(params[k])) for k in keys})
    mod.eval()
    return mod


def tsrnn_limits():
    with threadpool_limits(1, user_api="openmp"), threadpool_limits(1, user_api="blas"):
        yield


@contextlib.contextmanager
def torch_limits():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def load_baseline(path):
    """tsrnn.functional (and its _cells) of another checkout, as a separate package."""
    pkg_dir = os.path.join(os.path.abspath(path), "tsrnn")
    if not os.path.isfile(os.path.join(pkg_dir, "functional.py")):
        sys.exit(f"--baseline {path}: no tsrnn/functional.py there")
    pkg = types.ModuleType("tsrnn_baseline")
    pkg.__path__ = [pkg_dir]  # functional's `from . import _cells` finds that build
    sys.modules["tsrnn_baseline"] = pkg
    return importlib.import_module("tsrnn_baseline.functional")


# ---------------------------------------------------------------- checking


def rel_err(got, ref):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    if got.shape != ref.shape:
        return np.inf
    return float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-6))


def check(cell, size, ts_result, ort_out, torch_out, base_result):
    """Failure strings for one cell and size; empty when everything agrees."""
    out, state = ts_result
    parts = list(state) if cell != "gru" else [state]
    failures, worst = [], 0.0

    def cmp(what, got, ref):
        nonlocal worst
        err = rel_err(got, ref)
        worst = max(worst, err)
        if not err <= TOL:
            failures.append(f"{cell} {fmt_size(size)} {what}: max|diff|/max|ref| = {err:.2e}")

    if ort_out is not None:
        # ONNX: Y (T, 1, B, H), Y_h (1, B, H), Y_c (1, B, H).
        cmp("onnxruntime Y", ort_out[0][:, 0].transpose(1, 0, 2), out)
        for name, got, ref in zip(("Y_h", "Y_c"), ort_out[1:], parts):
            cmp(f"onnxruntime {name}", got, ref)
    if torch_out is not None and cell != "peephole":
        y, st = torch_out
        cmp("torch out", y, out)
        for name, got, ref in zip("hc", st if cell != "gru" else (st,), parts):
            cmp(f"torch {name}_n", got, ref)
    if base_result is not None:
        bout, bstate = base_result
        cmp("baseline out", bout, out)
        for got, ref in zip(list(bstate) if cell != "gru" else [bstate], parts):
            cmp("baseline state", got, ref)
    return failures, worst


# ---------------------------------------------------------------- forecaster


def forecaster_contenders(quick, have_ort):
    """({name: Contender}, description) of the forecaster's streaming calls."""
    import pandas as pd
    import pandas.tseries.frequencies

    from tsrnn import RNNForecaster
    from tsrnn.datasets import load_weather

    df = load_weather()
    # No seasonal lag input (season_lags="auto" is the default since issue
    # 23): the rnn_forward and onnxruntime contenders feed the window's
    # columns alone, as in the recorded tables of benchmarks/README.md.
    if quick:
        n_fit, params = 400, dict(window=12, horizon=4, hidden_layer_sizes=8, max_iter=1,
                                  season_lags=None)
    else:
        n_fit, params = 6000, dict(window=48, horizon=24, max_iter=3, season_lags=None)
    print(f"fitting RNNForecaster{params} on {n_fit} rows of the weather ...",
          file=sys.stderr, flush=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning of the few epochs
        with threadpool_limits(1, user_api="openmp"), threadpool_limits(1, user_api="blas"):
            f = RNNForecaster(target="temp_air", random_state=0, **params).fit(df.iloc[:n_fit])
    rest = df.iloc[n_fit:]
    step = pd.tseries.frequencies.to_offset(f.freq_)
    state = {"i": 0, "last": df.index[n_fit - 1], "row": None}

    def next_row():
        # The next hour: the rest of the year's rows in turn, restamped so the
        # stream never runs out (untimed).
        row = rest.iloc[state["i"] % len(rest) : state["i"] % len(rest) + 1].copy()
        state["i"] += 1
        state["last"] = state["last"] + step
        row.index = pd.DatetimeIndex([state["last"]], name=df.index.name)
        state["row"] = row

    limits = contextlib.contextmanager(tsrnn_limits)
    w = f.window_
    window = df.iloc[n_fit - w : n_fit][f.feature_names_in_].to_numpy(np.float32)[None]
    x = ((window[0] - f.scaler_.mean_) / f.scaler_.scale_).astype(np.float32)[None]
    contenders = {
        "predict()": Contender(f.predict, context=limits),
        "update(1 row)": Contender(lambda: f.update(state["row"]), setup=next_row,
                                   context=limits),
        "rnn_forward": Contender(
            lambda: F.rnn_forward(f._cell, x, f._layer_views(0), training=False),
            context=limits),
    }
    desc = dict(params=params, n_fit=n_fit, window=w, n_columns=window.shape[2],
                cell=f.cell, baseline=f.baseline_, checked=None)
    if have_ort:
        from tsrnn.onnx import to_onnx

        sess = onnx_session(to_onnx(f))
        feed = {"window": window}
        got = sess.run(None, feed)[0]  # (1, horizon, n_targets, n_q)
        want = f.predict(df.iloc[:n_fit])
        want = want[[c for c in want.columns if "_q" in c]].to_numpy()
        err = rel_err(got[0, :, 0, :], want)
        if not err <= TOL:
            sys.exit(f"CHECK FAILED: onnxruntime's forecast differs from predict: {err:.2e}")
        desc["checked"] = err
        contenders["onnxruntime"] = Contender(lambda: sess.run(None, feed))
    return contenders, desc


def time_samples(contenders, repeat, rounds):
    """All timed runs per contender, in alternating blocks (first of each untimed)."""
    samples = {name: [] for name in contenders}
    for name, c in contenders.items():
        c.run_block(0, warm=5)
    for r in range(rounds):
        for name, c in contenders.items():
            samples[name] += c.run_block(max(1, repeat // rounds))
    return samples


def report_forecaster(emit, desc, samples):
    p = desc["params"]
    emit("## Forecaster calls, one thread (streaming)")
    emit()
    emit(f"RNNForecaster(target='temp_air', window={p['window']}, horizon={p['horizon']}, "
         "season_lags=None) "
         f"with its default band (quantiles 0.1/0.5/0.9, CQR, tracked by update()), "
         f"{desc['cell']} cell, fitted on {desc['n_fit']} rows of the embedded weather "
         f"({desc['n_columns']} columns; baseline {desc['baseline']}). "
         "predict() forecasts from the kept context; update() takes a one-row DataFrame "
         "(the next hour), checks it, checks the forecasts it completes and issues the "
         "next one. rnn_forward is the recurrent layer alone on the window; onnxruntime "
         "runs the exported model (tsrnn.onnx.to_onnx) on the window as a float32 array"
         + ("" if desc["checked"] is None
            else f" (checked against predict(history): {desc['checked']:.1e} relative)")
         + ". Ratios are medians over the named call's median.")
    emit()
    ort = "onnxruntime" in samples
    head = "| call | median µs | p99 µs | / rnn_forward |" + (" / onnxruntime |" if ort else "")
    emit(head + " runs |")
    emit("|" + "---|" * (head.count("|")))
    med = {n: statistics.median(v) for n, v in samples.items()}
    for name, v in samples.items():
        p99 = float(np.percentile(v, 99))
        line = (f"| {name} | {med[name] * 1e6:.1f} | {p99 * 1e6:.1f} | "
                f"{med[name] / med['rnn_forward']:.2f}x |")
        if ort:
            line += f" {med[name] / med['onnxruntime']:.2f}x |"
        emit(line + f" {len(v)} |")
    emit()


# ---------------------------------------------------------------- main


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=parse_size, nargs="+", default=None, metavar="B,T,D,H")
    ap.add_argument("--cells", nargs="+", choices=CELLS, default=list(CELLS))
    ap.add_argument("--baseline", metavar="DIR",
                    help="also time tsrnn from this checkout (built in place)")
    ap.add_argument("--repeat", type=int, default=50,
                    help="minimum timed runs per contender (default 50)")
    ap.add_argument("--min-time", type=float, default=0.3,
                    help="seconds of timed runs to aim for per contender and row")
    ap.add_argument("--rounds", type=int, default=7,
                    help="alternating blocks per contender and row (default 7)")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--quick", action="store_true", help="smoke run: one tiny size")
    ap.add_argument("--markdown", metavar="FILE", help="also write the results here")
    ap.add_argument("--no-forecaster", action="store_true",
                    help="skip the forecaster's predict()/update() timing")
    ap.add_argument("--forecaster-runs", type=int, default=2000,
                    help="timed runs per forecaster call (default 2000, for the p99)")
    ap.add_argument("--forecaster-only", action="store_true",
                    help="time the forecaster's calls only, not the kernel table")
    ap.add_argument("--busy", type=int, default=0, metavar="N",
                    help="start N spinning processes for the timing (under load, issue 24)")
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes = args.sizes or list(QUICK_SIZES)
        args.repeat, args.min_time, args.rounds = 5, 0.0, 2
    sizes = args.sizes or list(SIZES)
    have_ort = ort is not None
    global torch
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            torch = None
    have_torch = torch is not None and not args.no_torch
    base = load_baseline(args.baseline) if args.baseline else None

    emit = Report()
    warn = print_slowing_env_warning()
    if not have_ort:
        print("NOTE: onnx/onnxruntime are not installed; timing tsrnn (and torch) only.")

    rows, failures, worst = [], [], 0.0
    for cell in ([] if args.forecaster_only else args.cells):
        for size in sizes:
            batch, steps, inp, hidden = size
            params = F.init_params(cell, inp, hidden, dtype=np.float32, random_state=0)
            x = np.random.default_rng(1).standard_normal((batch, steps, inp), dtype=np.float32)
            x_tm = np.ascontiguousarray(x.transpose(1, 0, 2))
            contenders, outputs = {}, {}

            def ts_call(F=F, cell=cell, x=x, params=params):
                return F.rnn_forward(cell, x, params, training=False)[:2]

            contenders["tsrnn"] = Contender(ts_call, context=contextlib.contextmanager(tsrnn_limits))
            with contextlib.contextmanager(tsrnn_limits)():
                ts_result = ts_call()
            if have_ort:
                sess = onnx_session(onnx_model(cell, params, inp, hidden))
                feed = {"X": x_tm}
                contenders["onnxruntime"] = Contender(lambda sess=sess, feed=feed: sess.run(None, feed))
                outputs["ort"] = sess.run(None, feed)
            if have_torch:
                mod = torch_module(cell, params, inp, hidden)
                xt = torch.from_numpy(x)

                def torch_call(mod=mod, xt=xt):
                    with torch.inference_mode():
                        return mod(xt)

                contenders["torch"] = Contender(torch_call, context=torch_limits)
                with torch_limits():
                    y, st = torch_call()
                outputs["torch"] = (y.numpy(), tuple(s.numpy() for s in st)
                                    if cell != "gru" else st.numpy())
            if base is not None:
                def base_call(B=base, cell=cell, x=x, params=params):
                    return B.rnn_forward(cell, x, params, training=False)[:2]

                contenders["baseline"] = Contender(
                    base_call, context=contextlib.contextmanager(tsrnn_limits))
                with contextlib.contextmanager(tsrnn_limits)():
                    outputs["baseline"] = base_call()
            f, w = check(cell, size, ts_result, outputs.get("ort"), outputs.get("torch"),
                         outputs.get("baseline"))
            failures += f
            worst = max(worst, w)
            rows.append((cell, size, contenders))
    if failures:
        print("CHECK FAILED: the contenders disagree given the same weights:", file=sys.stderr)
        for f in failures:
            print("  " + f, file=sys.stderr)
        return 1
    print(f"Checks passed (worst max|diff|/max|ref| = {worst:.1e}, tolerance {TOL:.0e}).",
          flush=True)

    emit("## Machine")
    emit()
    emit(f"- Run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    emit(f"- CPU: {cpu_model()}, {usable_cores()} usable cores; kernels' SIMD width "
         f"{F._cells.simd_width_bits()} bits")
    emit(f"- Python {sys.version.split()[0]}, numpy {np.__version__}"
         + (f", onnxruntime {ort.__version__}, onnx {onnx.__version__}" if have_ort else "")
         + (f", torch {torch.__version__}" if have_torch else ""))
    emit(f"- tsrnn imported from {os.path.dirname(os.path.dirname(F.__file__))}")
    emit("- One thread per contender. Native thread pools:")
    for line in threadpool_lines():
        emit("  - " + line)
    if warn:
        emit(warn)
    emit()

    fc = None if args.no_forecaster else forecaster_contenders(args.quick, have_ort)
    spinners = start_busy(args.busy) if args.busy else []
    try:
        load_start = os.getloadavg()[0]
        busy_start = cpu_busy_percent(2.0)
        results = []
        for cell, size, contenders in rows:
            print(f"timing {cell} {fmt_size(size)} ...", file=sys.stderr, flush=True)
            res = time_interleaved(contenders, warmup=10, repeat=args.repeat,
                                   min_time=args.min_time, max_repeat=5000, rounds=args.rounds)
            results.append((cell, size, {k: v[0] for k, v in res.items()},
                            min(v[1] for v in res.values())))
        fc_samples = None
        if fc is not None:
            print("timing the forecaster's calls ...", file=sys.stderr, flush=True)
            fc_samples = time_samples(fc[0], repeat=args.forecaster_runs if not args.quick else 5,
                                      rounds=args.rounds)
        load_end = os.getloadavg()[0]
        busy_end = cpu_busy_percent(2.0)
    finally:
        stop_busy(spinners)
    if args.busy:
        emit(f"Timed with {args.busy} spinning process(es) started by the script (--busy).")
        emit()

    if args.forecaster_only:
        results = []
    names = ["tsrnn"] + [n for n in ("onnxruntime", "torch", "baseline")
                         if any(n in r[2] for r in results)]
    head = "| cell | B,T,D,H | " + " | ".join(f"{n} µs" for n in names)
    if "onnxruntime" in names:
        head += " | **tsrnn / onnxruntime**"
    if "torch" in names:
        head += " | tsrnn / torch"
    if "baseline" in names:
        head += " | tsrnn / baseline"
    head += " | runs |"
    if results:
        emit("## Inference latency, one thread each (medians)")
        emit()
        emit("Ratios are tsrnn's time over the other's: below 1, tsrnn is faster. "
             "The peephole rows' torch column is torch's plain LSTM.")
        emit()
        emit(head)
        emit("|" + "---|" * (head.count("|") - 1))
        for cell, size, t, runs in results:
            line = f"| {cell} | {fmt_size(size)} | " + " | ".join(f"{t[n] * 1e6:.1f}" for n in names)
            if "onnxruntime" in names:
                line += f" | **{t['tsrnn'] / t['onnxruntime']:.2f}x**"
            if "torch" in names:
                line += f" | {t['tsrnn'] / t['torch']:.2f}x"
            if "baseline" in names:
                line += f" | {t['tsrnn'] / t['baseline']:.2f}x"
            emit(line + f" | {runs} |")
        emit()
    if fc_samples is not None:
        report_forecaster(emit, fc[1], fc_samples)
    busy = ", ".join("n/a" if b is None else f"{b:.0f}%" for b in (busy_start, busy_end))
    emit(f"CPU busy while this script slept, before and after timing: {busy}. "
         f"1-min load average {load_start:.2f} at the start of timing, {load_end:.2f} at the end.")
    if max(b or 0 for b in (busy_start, busy_end)) > 15 or max(load_start, load_end) > 1.5:
        emit("WARNING: another process was using the CPU during this run. The contenders "
             "were timed interleaved, so the ratios hold up better than the absolute times, "
             "but rerun on an idle machine before quoting either.")
    if args.markdown:
        emit.save(args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
