"""Memory (and time) of truncated BPTT against full BPTT in RNNRegressor.fit.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_tbptt.py

Backpropagation through time stores the activations of every step of a
minibatch: per layer the input, h, c and the gates, (T, B, D + 7H) values for
an LSTM (``RNNCache.nbytes``). With ``tbptt_length=k`` the sequences run in
segments of k steps and only one segment's activations exist at a time, so
that term shrinks by T / k while the data stays. Two shapes of problem:

* ``sequences``: a batch of long 3-D sequences with a target at every step
  (y of shape (n, T, 1)); every segment makes an update;
* ``stream``: a 2-D stream read through long windows (``window`` = T) with one
  target per window; only each window's last segment has a target, the
  others run forward without keeping activations.

Each (problem, tbptt_length) pair runs ``fit(max_iter=1)`` in a fresh
subprocess, which first fits a tiny model (so thread pools and lazy imports
exist), creates the data, resets the peak-RSS mark (``/proc/self/clear_refs``)
and reads ``VmHWM`` after the fit: "fit peak" is that peak minus the RSS
after the data, what fit adds to data the caller already holds. The table
prints the stored activations of one segment next to it (the formula is
checked against ``RNNCache.nbytes``), and the fit time: shorter segments cost
more calls and updates.
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
ITEMSIZE = 4  # float32
Problem = namedtuple("Problem", "name batch steps features hidden")
PROBLEMS = [Problem("sequences", 64, 2000, 8, 64), Problem("stream", 64, 1000, 8, 64)]
QUICK_PROBLEMS = [Problem("sequences", 8, 60, 3, 8), Problem("stream", 8, 40, 3, 8)]
LENGTHS = [None, 500, 100, 20]
QUICK_LENGTHS = [None, 10]


def segment_activation_bytes(p, k):
    """Stored activations of one LSTM segment: (k, B, D + H + H + 5H) float32."""
    steps = p.steps if k is None else min(k, p.steps)
    return steps * p.batch * (p.features + 7 * p.hidden) * ITEMSIZE


def make_data(p, rng):
    import numpy as np

    if p.name == "sequences":
        X = rng.standard_normal((p.batch, p.steps, p.features), dtype=np.float32)
        return X, rng.standard_normal((p.batch, p.steps, 1), dtype=np.float32)
    # Two minibatches of full windows.
    rows = p.steps - 1 + 2 * p.batch
    X = rng.standard_normal((rows, p.features), dtype=np.float32)
    return X, rng.standard_normal(rows, dtype=np.float32)


def child(p, k, threads):
    import gc
    import warnings

    import numpy as np
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    from tsrnn import RNNRegressor

    warnings.simplefilter("ignore", ConvergenceWarning)
    threadpool_limits(threads, user_api="openmp")
    threadpool_limits(threads, user_api="blas")
    rng = np.random.default_rng(0)
    X0 = rng.standard_normal((64, p.features), dtype=np.float32)
    RNNRegressor(hidden_layer_sizes=4, window=4, max_iter=1).fit(X0, X0[:, 0].copy())
    X, y = make_data(p, rng)
    gc.collect()
    rss_data = rss()
    est = RNNRegressor(hidden_layer_sizes=(p.hidden,), window=p.steps, batch_size=p.batch,
                       max_iter=1, tbptt_length=k, random_state=0)
    reset = reset_peak_rss()
    t0 = time.perf_counter()
    est.fit(X, y)
    seconds = time.perf_counter() - t0
    return dict(extra=peak_rss() - rss_data, reset=reset, seconds=seconds,
                updates=int(est._adam_t))


def check_formula():
    import numpy as np

    from tsrnn.functional import init_params, rnn_forward

    p = Problem("check", 3, 5, 2, 4)
    params = init_params("lstm", p.features, p.hidden, random_state=0)
    _, _, cache = rnn_forward("lstm", np.zeros((p.batch, p.steps, p.features), np.float32),
                              params)
    if cache.nbytes != segment_activation_bytes(p, None):
        sys.exit("segment_activation_bytes disagrees with RNNCache.nbytes: update it")


def run_child(p, k, threads):
    cmd = [sys.executable, os.path.abspath(__file__), "--child",
           json.dumps([p._asdict(), k]), "--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"child for {p.name}, tbptt_length={k} failed ({proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1,
                    help="threads for the kernels and BLAS (default 1)")
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny problems")
    ap.add_argument("--markdown", metavar="FILE", help="also write the table here")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        fields, k = json.loads(args.child)
        print(json.dumps(child(Problem(**fields), k, args.threads)))
        return 0

    import numpy as np

    import tsrnn

    check_formula()
    problems = QUICK_PROBLEMS if args.quick else PROBLEMS
    lengths = QUICK_LENGTHS if args.quick else LENGTHS
    emit = Report()
    print_slowing_env_warning()
    emit(f"CPU: {cpu_model()}, {usable_cores()} usable cores; numpy {np.__version__}; "
         f"tsrnn from {os.path.dirname(tsrnn.__file__)}; {args.threads} thread(s); float32, "
         "LSTM, one layer; fit(max_iter=1); MB = 10^6 bytes")
    emit()
    emit("| problem | B, T, D, H | tbptt_length | activations of one segment MB "
         "| fit peak over data MB | fit peak / full BPTT's | updates | fit s |")
    emit("|---|---|---|---|---|---|---|---|")
    any_unreset = False
    for p in problems:
        full = None
        for k in lengths:
            print(f"measuring {p.name}, tbptt_length={k} ...", file=sys.stderr, flush=True)
            r = run_child(p, k, args.threads)
            any_unreset |= not r["reset"]
            full = r["extra"] if full is None else full
            emit(f"| {p.name} | {p.batch}, {p.steps}, {p.features}, {p.hidden} "
                 f"| {'none (full BPTT)' if k is None else k} "
                 f"| {segment_activation_bytes(p, k) / MB:.1f} | {r['extra'] / MB:.1f} "
                 f"| {r['extra'] / full if full else float('nan'):.2f} | {r['updates']} "
                 f"| {r['seconds']:.2f} |")
    emit()
    if any_unreset:
        emit("NOTE: the peak-RSS mark could not be reset; peaks are since process start.")
    if args.markdown:
        emit.save(args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
