"""Fleets: fit, predict and backtest one global RNNForecaster over N sensors.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_fleet.py
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_fleet.py \\
        --sensors 100,1000,10000 --json benchmarks/results/fleet.json
    python benchmarks/bench_fleet.py --quick     # a tiny fleet (the test suite runs this)

The fleet (issue 21). Every sensor is a stretch of the embedded weather
(``tsrnn.datasets.load_weather``: air temperature, dew point, relative
humidity, hourly) with its own phase (where in the year its 2,000 hours
start), level (an offset per column), scale (a factor between 0.1 and 10 per
column, so the fleet mixes units) and noise (Gaussian, 5% to 50% of each
column's spread). The frame is the form a pandas user holds: one long frame,
a ``sensor`` column and an hourly DatetimeIndex, float64 values.

What is measured, each size in a fresh child process with the defaults of
``RNNForecaster(target="temp_air", series_id="sensor", horizon=24,
random_state=0)``:

* fit on all but every sensor's last week (168 rows), its time, the epochs
  it ran and the time of an epoch (from the fit's ``callback``);
* ``predict()`` for every sensor, from the contexts kept by fit;
* ``backtest()`` over every sensor's last week: the week follows the
  training data, so its first forecasts use the kept context, and every hour
  of it with 24 hours after it is an origin (``--stride`` 1), and the MAE
  ratio to seasonal naive of those forecasts;
* the peak resident memory from the end of data creation to the end of the
  backtest (``VmHWM``, reset with ``/proc/self/clear_refs``), against the
  frame's own size (``DataFrame.memory_usage(deep=True)``) : the target is
  at most 3x the frame + 500 MB.

The machine is shared: the load average is printed with every row.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
MB = 2**20
COLUMNS = ["temp_air", "dew_point", "relative_humidity"]
WEEK = 168


def make_fleet(n_sensors, n_rows=2000, seed=0):
    """Long frame of ``n_sensors`` x ``n_rows`` hourly rows, columns ``sensor`` + COLUMNS.

    Built block by block into one preallocated array, so that making it
    takes little more memory than the frame itself.
    """
    import numpy as np
    import pandas as pd

    from tsrnn.datasets import load_weather

    base = load_weather()[COLUMNS].to_numpy(np.float64)
    if n_rows > len(base):
        raise ValueError(f"n_rows must be at most {len(base)}, the weather's length")
    rng = np.random.default_rng(seed)
    phase = rng.integers(0, len(base) - n_rows + 1, n_sensors)
    level = rng.normal(0.0, 50.0, (n_sensors, 1, 3))
    scale = 10.0 ** rng.uniform(-1.0, 1.0, (n_sensors, 1, 3))
    noise = rng.uniform(0.05, 0.5, (n_sensors, 1, 3)) * base.std(axis=0)
    values = np.empty((n_sensors * n_rows, 3))
    out = values.reshape(n_sensors, n_rows, 3)
    for a in range(0, n_sensors, 256):
        s = slice(a, min(n_sensors, a + 256))
        rows = phase[s, None] + np.arange(n_rows)
        block = base[rows] + noise[s] * rng.standard_normal(rows.shape + (3,))
        out[s] = level[s] + scale[s] * block
    index = pd.DatetimeIndex(
        np.tile(pd.date_range("2020-01-01", periods=n_rows, freq="h").to_numpy(), n_sensors),
        name="timestamp",
    )
    frame = pd.DataFrame(values, columns=COLUMNS, index=index, copy=False)
    frame.insert(0, "sensor", np.repeat(np.arange(n_sensors, dtype=np.int32), n_rows))
    return frame


def split_last_week(frame, n_rows):
    """(training frame, every sensor's last week) of a fleet frame."""
    import numpy as np

    last = np.tile(np.arange(n_rows) >= n_rows - WEEK, len(frame) // n_rows)
    return frame[~last], frame[last]


def child(args):
    import warnings

    import numpy as np
    from sklearn.exceptions import ConvergenceWarning

    import tsrnn
    from _common import peak_rss, reset_peak_rss, rss
    from tsrnn import RNNForecaster

    warnings.simplefilter("ignore", ConvergenceWarning)
    n, rows = args.child, args.rows
    frame = make_fleet(n, rows)
    frame_bytes = int(frame.memory_usage(index=True, deep=True).sum())
    train, week = split_last_week(frame, rows)
    del frame
    params = dict(target="temp_air", series_id="sensor", horizon=24, random_state=0)
    if args.max_iter:
        params["max_iter"] = args.max_iter
    if args.budget:
        params["max_windows_per_epoch"] = args.budget
    model = RNNForecaster(**params)
    epochs = []
    after_data = rss()
    reset_peak_rss()
    load = os.getloadavg()[0]
    start = time.perf_counter()
    model.fit(train, callback=epochs.append)
    fit_s = time.perf_counter() - start
    first_epoch = epochs[0]["elapsed"] if epochs else float("nan")
    # The epochs' own time: the callback's clock starts with the first epoch.
    epoch_s = (epochs[-1]["elapsed"] / len(epochs)) if epochs else float("nan")
    start = time.perf_counter()
    forecast = model.predict()
    predict_s = time.perf_counter() - start
    assert forecast.index.get_level_values(0).nunique() == n
    start = time.perf_counter()
    bt = model.backtest(week, stride=args.stride)
    backtest_s = time.perf_counter() - start
    peak = peak_rss()
    metrics = bt.metrics
    return {
        "sensors": n, "rows_per_sensor": rows, "train_rows": len(train),
        "frame_mb": frame_bytes / MB, "after_data_mb": after_data / MB, "peak_mb": peak / MB,
        "rss_target_mb": 3 * frame_bytes / MB + 500,
        "fit_s": fit_s, "outside_epochs_s": fit_s - (epochs[-1]["elapsed"] if epochs else 0.0),
        "epochs": int(model.n_iter_), "epoch_s": epoch_s, "first_epoch_s": first_epoch,
        "max_windows_per_epoch": model.max_windows_per_epoch,
        "epoch_curve": [e["validation_score"] for e in epochs],
        "window": int(model.window_), "baseline": model.baseline_,
        "predict_s": predict_s, "backtest_s": backtest_s,
        "backtest_forecasts": int(len(bt.forecasts)), "stride": args.stride,
        "mae_ratio_seasonal": float(metrics.loc["model", "MAE"]
                                    / metrics.loc["seasonal_naive", "MAE"]),
        "mae_ratio_persistence": float(metrics.loc["model", "MAE"]
                                       / metrics.loc["persistence", "MAE"]),
        "load_start": load, "load_end": os.getloadavg()[0],
        "threads": tsrnn.max_threads(), "numpy": np.__version__,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sensors", default="100,1000,10000",
                    help="comma-separated fleet sizes (default 100,1000,10000)")
    ap.add_argument("--rows", type=int, default=2000, help="hourly rows per sensor")
    ap.add_argument("--stride", type=int, default=1, help="hours between backtest origins")
    ap.add_argument("--max-iter", type=int, default=0, help="epochs (0: the default)")
    ap.add_argument("--budget", type=int, default=0,
                    help="max_windows_per_epoch (0: the default)")
    ap.add_argument("--quick", action="store_true",
                    help="a tiny fleet (20 sensors x 400 rows, 2 epochs): a smoke test")
    ap.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of the child")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    if args.quick:
        args.sensors, args.rows, args.max_iter = "20", 400, 2
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    results = []
    for n in [int(s) for s in args.sensors.split(",")]:
        cmd = [sys.executable, os.path.abspath(__file__), "--child", str(n),
               "--rows", str(args.rows), "--stride", str(args.stride),
               "--max-iter", str(args.max_iter), "--budget", str(args.budget)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode:
            sys.stderr.write(proc.stdout + proc.stderr)
            sys.exit(proc.returncode)
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        r = results[-1]
        print(f"# {n} sensors done: fit {r['fit_s']:.1f} s (load {r['load_start']:.1f})",
              file=sys.stderr, flush=True)
    print("| sensors | training rows | frame | peak RSS (target) | fit | of which outside "
          "the epochs | epochs x time | predict() all | backtest (forecasts) | MAE / seasonal "
          "naive | load |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['sensors']:,} | {r['train_rows']:,} | {r['frame_mb']:.1f} MB | "
              f"{r['peak_mb']:.0f} MB ({r['rss_target_mb']:.0f} MB) | {r['fit_s']:.1f} s | "
              f"{r['outside_epochs_s']:.1f} s | {r['epochs']} x {r['epoch_s']:.1f} s | "
              f"{r['predict_s']:.2f} s | {r['backtest_s']:.1f} s ({r['backtest_forecasts']:,}) | "
              f"{r['mae_ratio_seasonal']:.3f} | {r['load_start']:.1f}-{r['load_end']:.1f} |")
    if args.json:
        meta = {"command": " ".join(sys.argv), "machine": platform.platform(),
                "cores": os.cpu_count(), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                               time.gmtime())}
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
