"""Big data: fit on 1,000,000 rows x 10 sensors with window 168, peak RSS vs data size.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_bigdata.py
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_bigdata.py --quick

The claim under test: training never materialises the windows. One million
rows with window 168 make 999,833 windows; as one (n_windows, 168, 10)
float32 array they would take 6.7 GB. tsrnn gathers each minibatch from a
strided view instead, so the peak resident memory of a fit should be the data
plus a few minibatches of activations.

Capped epochs. A full epoch over a million windows of 168 steps is 168
million recurrent steps; with the default 32 hidden units that is ~5 TFLOP
(forward + backward), 5-10 minutes on this 2-core machine, and almost all of
it repeats the same per-minibatch work. The script therefore stops the epoch
after ``--batches`` minibatches (default 200 of 64 windows): ``gen_batches``
in ``tsrnn._base``, called only by the epoch loop during these fits, is
wrapped to yield the first N slices. Shuffling is on, so those windows are
drawn from the whole million rows, and everything built per fit (the
validated copy of the data, the window view, the targets, the prefix
sequence, the forecaster's scaled arrays) is built in full. The time per
minibatch is measured and a full epoch's time is extrapolated from it (an
epoch of ``RNNForecaster`` is its ``max_windows_per_epoch`` budget, 20,000
windows by default, not every window).
``--batches 0`` runs the whole epoch. With early stopping the same cap
applies to the blocks of the validation pass (it also runs through
``gen_batches``): the memory of one block is what is measured.

Every configuration runs in a fresh child process, so the peak belongs to
that fit alone. The child:

1. imports tsrnn and fits a tiny model, so the thread pools, threadpoolctl's
   library scan and sklearn's lazy imports exist before anything is measured;
2. reads RSS ("baseline"), builds the data (float32 array for RNNRegressor;
   a float64 DataFrame with an hourly DatetimeIndex for RNNForecaster, the
   form pandas users hold) and reads RSS again;
3. resets the kernel's peak-RSS mark (``/proc/self/clear_refs``, Linux) and
   fits; reads the peak (``VmHWM``).

"fit overhead" = peak - RSS after the data: what fit adds to data the caller
already holds.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

MB = 2**20


def _status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _rss():
    return _status_kb("VmRSS") * 1024


def _peak():
    return _status_kb("VmHWM") * 1024


def _reset_peak():
    # Writing 5 resets VmHWM to the current RSS (Linux >= 4.0).
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def child(args):
    import itertools
    import warnings

    import numpy as np
    import pandas as pd
    from sklearn.exceptions import ConvergenceWarning

    import tsrnn
    import tsrnn._base
    from tsrnn import RNNForecaster, RNNRegressor

    warnings.simplefilter("ignore", ConvergenceWarning)
    # Warm-up: pools, library scan, lazy imports.
    RNNRegressor(window=4, hidden_layer_sizes=(4,), max_iter=1).fit(
        np.zeros((32, 2), np.float32), np.zeros(32, np.float32))

    batches = {"n": 0}
    original = tsrnn._base.gen_batches

    def counted(n, batch_size, **kwargs):
        it = original(n, batch_size, **kwargs)
        if args.batches:
            it = itertools.islice(it, args.batches)
        for s in it:
            batches["n"] += 1
            yield s

    tsrnn._base.gen_batches = counted

    baseline = _rss()
    rows, d, w, h = args.rows, args.sensors, args.window, args.horizon
    rng = np.random.default_rng(0)
    t = np.arange(rows, dtype=np.float64)
    if args.estimator == "regressor":
        X = (np.sin(2 * np.pi * t[:, None] / (24 * (1 + np.arange(d))))
             + 0.1 * rng.standard_normal((rows, d))).astype(np.float32)
        y = np.roll(X[:, 0], -6)
        data_bytes = X.nbytes + y.nbytes
        model = RNNRegressor(window=w, hidden_layer_sizes=(args.hidden,), max_iter=1,
                             batch_size=64, random_state=0)
        fit_args = (X, y)
        n_windows = rows - w + 1
    else:
        values = (np.sin(2 * np.pi * t[:, None] / (24 * (1 + np.arange(d))))
                  + 0.1 * rng.standard_normal((rows, d)))
        X = pd.DataFrame(values, columns=[f"s{i}" for i in range(d)],
                         index=pd.date_range("1900-01-01", periods=rows, freq="h"))
        del values
        data_bytes = int(X.memory_usage(index=True).sum())
        # "forecaster-es" also scores a validation block (the last 10% of the
        # rows) after the epoch: its windows must be gathered block by block
        # too (issue 12), or they alone would take 0.7 GB at the default size.
        early = args.estimator == "forecaster-es"
        model = RNNForecaster(target="s0", window=w, horizon=h, hidden_layer_sizes=args.hidden,
                              max_iter=1, batch_size=64, random_state=0,
                              early_stopping=early)
        fit_args = (X,)
        n_windows = rows - w - h + 1
    after_data = _rss()

    _reset_peak()
    start = time.perf_counter()
    model.fit(*fit_args)
    seconds = time.perf_counter() - start
    peak = _peak()
    n_batches = batches["n"]
    # An epoch trains at most max_windows_per_epoch windows (the forecaster's
    # default budget), not every window of the data.
    budget = model.max_windows_per_epoch
    epoch_windows = n_windows if budget is None else min(n_windows, budget)
    full_batches = -(-epoch_windows // 64)
    return {
        "estimator": type(model).__name__ + (
            " (early_stopping)" if getattr(model, "early_stopping", False) else ""),
        "rows": rows, "sensors": d, "window": w,
        "data_bytes": data_bytes,
        "materialised_bytes": n_windows * w * d * 4,
        "baseline": baseline, "after_data": after_data, "peak": peak,
        "batches": n_batches, "full_batches": full_batches,
        "fit_seconds": seconds,
        # The per-batch time includes fit's fixed costs (validation, views,
        # scaling), so the extrapolation slightly overestimates a full epoch.
        "epoch_seconds_estimate": seconds / n_batches * full_batches,
        "threads": tsrnn.max_threads(),
    }


def machine():
    import numpy as np
    from threadpoolctl import threadpool_info

    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    with open("/proc/meminfo") as f:
        total = int(f.readline().split()[1]) * 1024
    pools = ", ".join(f"{p['internal_api']} {p.get('version') or ''} x{p['num_threads']}"
                      for p in threadpool_info())
    return (f"{cpu}; {os.cpu_count()} logical cores available; {total / 2**30:.1f} GiB RAM; "
            f"Linux {platform.release()}; Python {platform.python_version()}, "
            f"numpy {np.__version__}; thread pools: {pools}; "
            f"load average {os.getloadavg()[0]:.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sensors", type=int, default=10)
    parser.add_argument("--window", type=int, default=168)
    parser.add_argument("--horizon", type=int, default=24, help="RNNForecaster only")
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--batches", type=int, default=200,
                        help="minibatches of 64 windows per epoch; 0 = the full epoch")
    kinds = ["regressor", "forecaster", "forecaster-es"]
    parser.add_argument("--estimators", nargs="+", default=kinds, choices=kinds)
    parser.add_argument("--quick", action="store_true", help="100k rows, 20 batches")
    parser.add_argument("--child", choices=kinds, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.rows, args.batches = min(args.rows, 100_000), min(args.batches or 20, 20)
    if args.child:
        args.estimator = args.child
        print(json.dumps(child(args)))
        return

    print(machine(), flush=True)
    results = []
    for est in args.estimators:
        cmd = [sys.executable, __file__, "--child", est] + [
            a for a in sys.argv[1:] if a != "--quick"] + (
            ["--rows", str(args.rows), "--batches", str(args.batches)] if args.quick else [])
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode:
            sys.exit(f"{est} child failed:\n{run.stderr}")
        results.append(json.loads(run.stdout.strip().splitlines()[-1]))

    print()
    print("| estimator | rows x sensors, window | data | windows if materialised "
          "| RSS baseline | RSS after data | peak RSS during fit | fit overhead "
          "| minibatches (of epoch) | fit time | full epoch (extrapolated) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['estimator']} | {r['rows']:,} x {r['sensors']}, {r['window']} "
            f"| {r['data_bytes'] / MB:.0f} MB | {r['materialised_bytes'] / 2**30:.2f} GiB "
            f"| {r['baseline'] / MB:.0f} MB | {r['after_data'] / MB:.0f} MB "
            f"| {r['peak'] / MB:.0f} MB | {(r['peak'] - r['after_data']) / MB:.0f} MB "
            f"| {r['batches']:,} of {r['full_batches']:,} | {r['fit_seconds']:.1f} s "
            f"| {r['epoch_seconds_estimate'] / 60:.0f} min |"
        )
    print(f"\nOpenMP threads: {results[0]['threads']}")


if __name__ == "__main__":
    main()
