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

``--dask`` (issue 22): the fleet as a parquet dataset, fitted, forecast and
backtested on a dask ``LocalCluster`` (``--workers 1,2``: each count in a
fresh child process, worker processes of one thread each):

    python benchmarks/bench_fleet.py --dask --sensors 1000,10000 --workers 1,2 \
        --json benchmarks/results/fleet_dask.json

* a first child writes the training rows and every sensor's last week as
  two parquet datasets, ``--partition-sensors`` whole sensors per file (one
  partition each); its memory is not the measured client's;
* then per worker count: ``fit`` on ``dd.read_parquet`` of the training
  rows, and with ``--averaging K`` also a fit with ``averaging_frequency=K``
  (parameter averaging across the workers); ``predict()`` for every sensor
  from the kept contexts; ``backtest`` of the week's dask frame, its count
  of forecasts and MAE reduced on the workers (the forecasts themselves
  stay there: ``.compute()`` of a stride-1 week of 10,000 sensors would
  gather 35M rows, 3.5 GB, through one worker);
* the client's peak RSS over the fit (``VmHWM`` of this process, reset
  before it) and the workers' (each worker's ``VmHWM``, reset at the same
  time, read with ``Client.run``), next to the parquet dataset's size on
  disk and the frame's size in memory.
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


def two_epoch_model(n_sensors):
    """(model, every sensor's last week): the fleet fitted for 2 epochs.

    For the benchmarks of the calls after fit (predict, backtest), whose
    cost does not depend on how long the network trained.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from tsrnn import RNNForecaster

    train, week = split_last_week(make_fleet(n_sensors), 2000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = RNNForecaster(target="temp_air", series_id="sensor", horizon=24,
                              random_state=0, max_iter=2).fit(train)
    return model, week


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
    params.update(json.loads(args.params))
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


def write_parquet(args):
    """Training rows and last weeks of a fleet as two parquet datasets in ``args.dir``."""
    n, rows, per = args.make_parquet, args.rows, args.partition_sensors
    frame = make_fleet(n, rows)
    frame_bytes = int(frame.memory_usage(index=True, deep=True).sum())
    train, week = split_last_week(frame, rows)
    del frame
    for name, part in (("train", train), ("week", week)):
        root = os.path.join(args.dir, name)
        os.makedirs(root, exist_ok=True)
        per_rows = len(part) // n * per
        for i, a in enumerate(range(0, len(part), per_rows)):
            part.iloc[a : a + per_rows].to_parquet(
                os.path.join(root, f"part-{i:05d}.parquet"), engine="pyarrow")
    disk = sum(os.path.getsize(os.path.join(d, f))
               for d, _, fs in os.walk(os.path.join(args.dir, "train")) for f in fs)
    return {"frame_mb": frame_bytes / MB, "train_parquet_mb": disk / MB,
            "train_rows": len(train), "partitions": -(-n // per)}


def _worker_peaks(client, reset=False):
    from _common import peak_rss, reset_peak_rss

    if reset:
        client.run(reset_peak_rss)
        return None
    return sorted(v / MB for v in client.run(peak_rss).values())


def _import_tsrnn():
    import tsrnn  # noqa: F401


def dask_child(args):
    """Fit, predict and backtest a parquet fleet on a LocalCluster of ``args.workers``."""
    import warnings

    import dask
    import dask.dataframe as dd
    import numpy as np
    from distributed import Client, LocalCluster
    from sklearn.exceptions import ConvergenceWarning

    from _common import peak_rss, reset_peak_rss, rss
    from tsrnn import RNNForecaster

    warnings.simplefilter("ignore", ConvergenceWarning)
    params = dict(target="temp_air", series_id="sensor", horizon=24,
                  random_state=args.random_state)
    if args.max_iter:
        params["max_iter"] = args.max_iter
    if args.budget:
        params["max_windows_per_epoch"] = args.budget
    params.update(json.loads(args.params))
    out = {"workers": args.dask_child, "sensors": args.sensors_n,
           "random_state": args.random_state}
    with LocalCluster(n_workers=args.dask_child, threads_per_worker=1, processes=True,
                      host="127.0.0.1", dashboard_address=None) as cluster, \
            Client(cluster) as client:
        # Workers import tsrnn before the clock starts (a worker's first task
        # would otherwise time the import).
        client.run(_import_tsrnn)
        train = dd.read_parquet(os.path.join(args.dir, "train"))
        week = dd.read_parquet(os.path.join(args.dir, "week"))
        out["partitions"] = train.npartitions
        fits = [("fit", {})]
        if args.averaging:
            fits.append(("averaged", {"averaging_frequency": args.averaging}))
        for name, extra in fits:
            epochs = []
            before = rss()
            reset_peak_rss()
            _worker_peaks(client, reset=True)
            load = os.getloadavg()[0]
            start = time.perf_counter()
            model = RNNForecaster(**params, **extra).fit(train, callback=epochs.append)
            out[name + "_s"] = time.perf_counter() - start
            out[name + "_client_peak_mb"] = peak_rss() / MB
            out[name + "_client_before_mb"] = before / MB
            out[name + "_worker_peak_mb"] = _worker_peaks(client)
            out[name + "_epochs"] = int(model.n_iter_)
            out[name + "_epoch_s"] = epochs[-1]["elapsed"] / len(epochs)
            out[name + "_outside_epochs_s"] = out[name + "_s"] - epochs[-1]["elapsed"]
            out[name + "_best_validation_score"] = float(model.best_validation_score_)
            out[name + "_load"] = [load, os.getloadavg()[0]]
            start = time.perf_counter()
            forecast = model.predict()
            out[name + "_predict_s"] = time.perf_counter() - start
            assert forecast.index.get_level_values(0).nunique() == args.sensors_n
            start = time.perf_counter()
            # The errors are reduced on the workers: a stride-1 week of
            # 10,000 sensors is 35M forecast rows (3.5 GB), which .compute()
            # would first concatenate in one worker (see dask.rst).
            forecasts = model.backtest(week, stride=args.stride)
            err = (forecasts["forecast"] - forecasts["actual"]).abs()
            count, total = dask.compute(err.count(), err.sum())
            out[name + "_backtest_s"] = time.perf_counter() - start
            out[name + "_backtest_forecasts"] = int(count)
            out[name + "_backtest_mae"] = float(total / count)
        out["window"], out["baseline"] = int(model.window_), model.baseline_
        out["numpy"] = np.__version__
    return out


def run_dask(args):
    import tempfile

    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"  # one core per worker process, as dask's nanny sets
    me = os.path.abspath(__file__)
    results = []
    for n in [int(s) for s in args.sensors.split(",")]:
        with tempfile.TemporaryDirectory(prefix="fleet-parquet-") as d:
            made = _run([sys.executable, me, "--make-parquet", str(n), "--dir", d,
                         "--rows", str(args.rows), "--partition-sensors",
                         str(args.partition_sensors)], env)
            for w in [int(s) for s in args.workers.split(",")]:
                r = _run([sys.executable, me, "--dask-child", str(w), "--sensors-n", str(n),
                          "--dir", d, "--rows", str(args.rows), "--stride", str(args.stride),
                          "--max-iter", str(args.max_iter), "--budget", str(args.budget),
                          "--averaging", str(args.averaging), "--params", args.params,
                          "--random-state", str(args.random_state)], env)
                r.update(made)
                results.append(r)
                print(f"# {n} sensors, {w} workers: fit {r['fit_s']:.1f} s "
                      f"(load {r['fit_load'][0]:.1f})", file=sys.stderr, flush=True)
    print("| sensors | partitions | parquet | workers | fit | epochs x time | client peak RSS "
          "| worker peak RSS | predict() all | backtest week (forecasts) | load |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        for name in ("fit", "averaged"):
            if name + "_s" not in r:
                continue
            label = "" if name == "fit" else f" averaged every {args.averaging}"
            workers = ", ".join(f"{m:.0f}" for m in r[name + "_worker_peak_mb"])
            print(f"| {r['sensors']:,} | {r['partitions']} | {r['train_parquet_mb']:.0f} MB | "
                  f"{r['workers']}{label} | {r[name + '_s']:.1f} s | "
                  f"{r[name + '_epochs']} x {r[name + '_epoch_s']:.1f} s | "
                  f"{r[name + '_client_peak_mb']:.0f} MB | {workers} MB | "
                  f"{r[name + '_predict_s']:.2f} s | {r[name + '_backtest_s']:.1f} s "
                  f"({r[name + '_backtest_forecasts']:,}) | "
                  f"{r[name + '_load'][0]:.1f}-{r[name + '_load'][1]:.1f} |")
    return results


def _run(cmd, env):
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        sys.stderr.write(proc.stdout + proc.stderr)
        sys.exit(proc.returncode)
    return json.loads(proc.stdout.strip().splitlines()[-1])


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
    ap.add_argument("--params", default="{}",
                    help='more RNNForecaster parameters, as JSON (e.g. \'{"season_lags": null}\')')
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--dask", action="store_true",
                    help="the fleet as parquet, on a dask LocalCluster (see the docstring)")
    ap.add_argument("--workers", default="1,2", help="--dask: worker processes, each count")
    ap.add_argument("--partition-sensors", type=int, default=250,
                    help="--dask: sensors per parquet file (partition)")
    ap.add_argument("--averaging", type=int, default=0,
                    help="--dask: also fit with averaging_frequency=K (0: not)")
    ap.add_argument("--random-state", type=int, default=0,
                    help="--dask: the forecaster's random_state (default 0)")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--make-parquet", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--dask-child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--sensors-n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    if args.make_parquet:
        print(json.dumps(write_parquet(args)))
        return
    if args.dask_child:
        print(json.dumps(dask_child(args)))
        return
    if args.quick:
        args.sensors, args.rows, args.max_iter = "20", 400, 2
        if args.dask:
            args.partition_sensors, args.workers = 5, "2"
    if args.dask:
        results = run_dask(args)
        _save(args, results)
        return
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    results = []
    for n in [int(s) for s in args.sensors.split(",")]:
        cmd = [sys.executable, os.path.abspath(__file__), "--child", str(n),
               "--rows", str(args.rows), "--stride", str(args.stride),
               "--max-iter", str(args.max_iter), "--budget", str(args.budget),
               "--params", args.params]
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
    _save(args, results)


def _save(args, results):
    if args.json:
        meta = {"command": " ".join(sys.argv), "machine": platform.platform(),
                "cores": os.cpu_count(), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                               time.gmtime())}
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
