"""Peak memory of RNNRegressor.fit against the least memory a training step can need.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_memory.py

Issue 6 asks that the peak RSS of fit stay within 1.5x of a lower bound: the
data, plus the activations that backpropagation through time must store for
one minibatch. Per recurrent layer those are, in the model dtype:

* the layer input (T, B, D),
* the hidden states h (T, B, H),
* for the LSTM, the cell states c (T, B, H),
* the gate buffer (T, B, 5H) for the LSTM, (T, B, 4H) for the GRU,

which is what ``tsrnn.functional.RNNCache.nbytes`` counts (the script checks
that its formula matches). A training step cannot keep less without
recomputing the forward pass.

Each configuration runs in a fresh subprocess, so that nothing from an
earlier configuration (freed but not returned to the OS, grown thread pools)
is counted. The child process:

1. imports numpy and tsrnn and fits a tiny model once, so that the OpenMP
   and OpenBLAS thread pools, threadpoolctl's library scan and scikit-learn's
   lazy imports exist before anything is measured (these are fixed costs that
   do not grow with the problem; the child reports their size);
2. reads its RSS ("after imports"), creates the float32 stream X (rows, D) and
   y (rows,) and reads its RSS again ("after data");
3. resets the kernel's peak-RSS mark (``/proc/self/clear_refs``, Linux) and
   runs ``RNNRegressor(max_iter=1).fit(X, y)``;
4. reads the peak RSS (``VmHWM``, the same quantity as
   ``getrusage(RUSAGE_SELF).ru_maxrss``).

Two ratios come out, because "peak minus a baseline" can be read two ways:

* **ratio** = (peak - RSS after imports) / (data + activations). The data
  were created after the baseline, so they count on both sides. This is the
  issue's target, <= 1.5;
* **fit extra / activations** = (peak - RSS after data) / activations: what
  fit itself adds on top of data the caller already holds, against the
  activations alone. Stricter, since fit's own small copies (targets) count.

The script also prints a code-reading model of the arrays alive at the
largest moment of a training step (the end of ``rnn_backward``), so that a
measured ratio above 1.5 can be traced to named buffers. ``--tracemalloc``
reruns every configuration with tracemalloc, whose peak counts numpy's
allocations exactly (but not pages freed-yet-kept by the allocator), as a
cross-check of the RSS numbers.

Configurations put two full minibatches in the stream (rows = window - 1 +
2 * batch), so the peak of one step is seen and a second step shows whether
memory is reused, and keep the data small except in the "data" configuration,
which is a large stream with small activations: it checks that fit does not
copy the data or materialise the windows.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from collections import namedtuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402
    Report,
    cpu_model,
    peak_rss,
    print_slowing_env_warning,
    reset_peak_rss,
    rss,
    usable_cores,
)

MB = 1e6
Config = namedtuple("Config", "name cell batch window features hidden rows")


def _two_batches(cell, batch, window, features, hidden, name):
    return Config(name, cell, batch, window, features, hidden, window - 1 + 2 * batch)


CONFIGS = [
    _two_batches("lstm", 256, 128, 16, 128, "mid"),
    _two_batches("gru", 256, 128, 16, 128, "mid"),
    _two_batches("lstm", 512, 256, 16, 128, "big"),
    _two_batches("gru", 512, 256, 16, 128, "big"),
    # 400k rows x 64 sensors = 102 MB of float32 data, small activations.
    Config("data", "lstm", 2048, 8, 64, 32, 400_000),
]
QUICK_CONFIGS = [
    _two_batches("lstm", 64, 32, 8, 32, "quick"),
    _two_batches("gru", 64, 32, 8, 32, "quick"),
]
ITEMSIZE = 4  # float32, the estimators' default dtype


def activation_bytes(cfg):
    """Stored activations of one minibatch step (RNNCache.nbytes), one layer."""
    T, B, D, H = cfg.window, cfg.batch, cfg.features, cfg.hidden
    per_step = D + H + (H + 5 * H if cfg.cell == "lstm" else 4 * H)
    return T * B * per_step * ITEMSIZE


def data_bytes(cfg):
    return cfg.rows * (cfg.features + 1) * ITEMSIZE  # X (rows, D) and y (rows,)


def step_model(cfg):
    """Arrays alive at the end of rnn_backward, by reading the code.

    Sizes in bytes, for tsrnn/_network.py _loss_grad -> _forward_stack /
    rnn_forward -> rnn_backward with one layer, no dropout and the loss on
    the last step, plus the two arrays fit keeps for the whole epoch. A model
    of the code, not a measurement: the table prints it next to the measured
    numbers.
    """
    T, B, D, H = cfg.window, cfg.batch, cfg.features, cfg.hidden
    lstm = cfg.cell == "lstm"
    tbh, tbd = T * B * H * ITEMSIZE, T * B * D * ITEMSIZE
    return {
        # stored activations (the lower bound)
        "inp (T,B,D) time-major copy of the batch": tbd,
        "hs (T,B,H)": tbh,
        "cs (T,B,H)": tbh if lstm else 0,
        f"gates (T,B,{5 if lstm else 4}H)": (5 if lstm else 4) * tbh,
        # what the training step adds (the gate gradients overwrite gates)
        "Xb (B,T,D) gathered minibatch (_StreamData.batch)": tbd,
        "z (T*B, D+H+1) weight-gradient operand [x | 1 | h(t-1)]": T * B * (D + H + 1) * ITEMSIZE,
        "partial (T*B/2048 blocks, G*H, D+H+1) weight-gradient partial sums":
            (0 if T * B <= 2048 else -(-T * B // 2048))
            * (4 if lstm else 3) * H * (D + H + 1) * ITEMSIZE,
        # per fit, not per step
        "Y (rows, 1) float32 copy of y (_encode_targets)": cfg.rows * ITEMSIZE,
        "order (n_windows,) int64 shuffle order (_run_epochs)": (cfg.rows - T + 1) * 8,
    }


# ---------------------------------------------------------------- child


def child(cfg, threads, use_tracemalloc):
    import gc
    import warnings

    import numpy as np
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    from tsrnn import RNNRegressor

    warnings.simplefilter("ignore", ConvergenceWarning)
    limits = [threadpool_limits(threads, user_api="openmp"),
              threadpool_limits(threads, user_api="blas")]

    def estimator(window, hidden, batch):
        return RNNRegressor(hidden_layer_sizes=(hidden,), cell=cfg.cell, window=window,
                            batch_size=batch, max_iter=1, early_stopping=False,
                            shuffle=True, random_state=0)

    rss_start = rss()
    rng = np.random.default_rng(0)
    Xw = rng.standard_normal((64, cfg.features), dtype=np.float32)
    estimator(4, 4, 8).fit(Xw, Xw[:, 0].copy())  # warm up the runtimes (see docstring)
    del Xw
    gc.collect()
    rss_imports = rss()

    X = rng.standard_normal((cfg.rows, cfg.features), dtype=np.float32)
    y = rng.standard_normal(cfg.rows, dtype=np.float32)
    gc.collect()
    rss_data = rss()

    est = estimator(cfg.window, cfg.hidden, cfg.batch)
    traced = None
    if use_tracemalloc:
        import tracemalloc
        tracemalloc.start()
        before, _ = tracemalloc.get_traced_memory()
    reset = reset_peak_rss()
    peak_before = peak_rss()
    t0 = time.perf_counter()
    est.fit(X, y)
    seconds = time.perf_counter() - t0
    peak = peak_rss()
    if use_tracemalloc:
        _, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        traced = traced_peak - before
    for lim in limits:
        lim.restore_original_limits()
    return dict(rss_start=rss_start, rss_imports=rss_imports, rss_data=rss_data,
                peak=peak, peak_before=peak_before, peak_reset=reset, seconds=seconds,
                traced=traced, n_iter=int(est.n_iter_))


# ---------------------------------------------------------------- parent


def check_activation_formula():
    """The formula above must equal RNNCache.nbytes (cheap: tiny sizes)."""
    import numpy as np

    from tsrnn.functional import init_params, rnn_forward

    for cell in ("lstm", "gru"):
        cfg = Config("check", cell, 3, 5, 2, 4, 0)
        params = init_params(cell, cfg.features, cfg.hidden, dtype=np.float32, random_state=0)
        x = np.zeros((cfg.batch, cfg.window, cfg.features), np.float32)
        _, _, cache = rnn_forward(cell, x, params, training=True)
        if cache.nbytes != activation_bytes(cfg):
            sys.exit(f"activation_bytes({cell}) = {activation_bytes(cfg)} but RNNCache.nbytes "
                     f"= {cache.nbytes}: update the formula in bench_memory.py")


def run_child(cfg, threads, use_tracemalloc):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(cfg._asdict()),
           "--threads", str(threads)]
    if use_tracemalloc:
        cmd.append("--tracemalloc")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"child for {cfg} failed with status {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fmt_mb(n):
    return f"{n / MB:.1f}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2,
                    help="threads for the kernels and BLAS (default 2); memory barely depends on it")
    ap.add_argument("--quick", action="store_true", help="smoke run: two small configurations")
    ap.add_argument("--tracemalloc", action="store_true",
                    help="rerun each configuration under tracemalloc as a cross-check")
    ap.add_argument("--markdown", metavar="FILE", help="also write the tables here")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        cfg = Config(**json.loads(args.child))
        print(json.dumps(child(cfg, args.threads, args.tracemalloc)))
        return 0

    import numpy as np

    import tsrnn

    check_activation_formula()
    configs = QUICK_CONFIGS if args.quick else CONFIGS

    emit = Report()
    print_slowing_env_warning()
    emit("## Machine")
    emit()
    emit(f"CPU: {cpu_model()}, {usable_cores()} usable cores; Python {sys.version.split()[0]}, "
         f"numpy {np.__version__}, tsrnn {getattr(tsrnn, '__version__', '?')} from {os.path.dirname(tsrnn.__file__)}; "
         f"{args.threads} thread(s); float32")
    emit()

    results = []
    for cfg in configs:
        print(f"measuring {cfg.name} {cfg.cell} ...", file=sys.stderr, flush=True)
        res = run_child(cfg, args.threads, False)
        if args.tracemalloc:
            res["traced"] = run_child(cfg, args.threads, True)["traced"]
        results.append((cfg, res))

    emit("## Peak RSS of RNNRegressor.fit (max_iter=1) against the lower bound")
    emit()
    emit("bound = data (X and y) + stored activations of one minibatch step. ratio = "
         "(peak RSS - RSS after imports) / bound; the issue's target is <= 1.5. "
         "extra = peak RSS - RSS after data (what fit adds to data the caller holds). "
         "model = arrays alive at the end of rnn_backward by reading the code (not measured). "
         "MB = 10^6 bytes.")
    emit()
    head = ("| config | cell | B,T,D,H | rows | data MB | activations MB | bound MB "
            "| peak - imports MB | **ratio** | extra MB | extra / activations "
            "| model MB (model / activations) |"
            + (" tracemalloc peak MB |" if args.tracemalloc else "") + " fit s |")
    emit(head)
    emit("|" + "---|" * (head.count("|") - 1))
    for cfg, r in results:
        act, data = activation_bytes(cfg), data_bytes(cfg)
        bound = act + data
        over_imports = r["peak"] - r["rss_imports"]
        extra = r["peak"] - r["rss_data"]
        model = sum(step_model(cfg).values())
        line = (f"| {cfg.name} | {cfg.cell} | {cfg.batch},{cfg.window},{cfg.features},{cfg.hidden} "
                f"| {cfg.rows} | {fmt_mb(data)} | {fmt_mb(act)} | {fmt_mb(bound)} "
                f"| {fmt_mb(over_imports)} | **{over_imports / bound:.2f}** "
                f"| {fmt_mb(extra)} | {extra / act:.2f} "
                f"| {fmt_mb(model)} ({model / act:.2f}) |")
        if args.tracemalloc:
            line += f" {fmt_mb(r['traced'])} |"
        line += f" {r['seconds']:.2f} |"
        emit(line)
    emit()
    fixed = [r["rss_imports"] - r["rss_start"] for _, r in results]
    emit(f"Fixed cost of the warm-up fit (thread pools, BLAS buffers, lazy imports), excluded "
         f"from every row: {fmt_mb(min(fixed))}..{fmt_mb(max(fixed))} MB. RSS after imports: "
         f"{fmt_mb(min(r['rss_imports'] for _, r in results))}.."
         f"{fmt_mb(max(r['rss_imports'] for _, r in results))} MB.")
    if not all(r["peak_reset"] for _, r in results):
        emit("NOTE: the peak-RSS mark could not be reset (/proc/self/clear_refs); peaks "
             "below the import-time peak are invisible, so small rows may read too low.")
    emit()

    cfg = next((c for c, _ in results if c.cell == "lstm"), results[0][0])
    emit(f"Code-reading model of one step at its largest ({cfg.name} {cfg.cell}, "
         f"B,T,D,H = {cfg.batch},{cfg.window},{cfg.features},{cfg.hidden}):")
    emit()
    emit("| array | MB |")
    emit("|---|---|")
    for name, n in step_model(cfg).items():
        if n:
            emit(f"| {name} | {fmt_mb(n)} |")
    emit()

    if args.markdown:
        emit.save(args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
