"""Step by step through a dask fleet's fit, predict and backtest, with worker memory.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/diagnose_dask_fleet.py \\
        --sensors 10000 --workers 2

Where ``bench_fleet.py --dask`` reports a run's totals, this prints a line
per step (every epoch of the fit, then ``predict()``, then the backtest of
each sensor's last week) with the seconds since the start and each worker's
resident memory, so a run that stalls or loses workers shows where. The
backtest's errors are reduced on the workers; ``--gather`` computes its
forecasts into this process instead, as ``.compute()`` does. The
fleet is ``bench_fleet.make_fleet`` written as parquet (``--partition-sensors``
sensors per file) into ``--dir``, reused when it is already there.
"""
import argparse
import os
import sys
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench_fleet  # noqa: E402


def _rss_mb():
    import psutil

    return round(psutil.Process().memory_info().rss / 1e6)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sensors", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--partition-sensors", type=int, default=250)
    ap.add_argument("--max-iter", type=int, default=None, help="default: the estimator's")
    ap.add_argument("--stride", type=int, default=1, help="the backtest's stride")
    ap.add_argument("--dir", default=None, help="parquet directory (default: one in /tmp)")
    ap.add_argument("--gather", action="store_true",
                    help="compute the backtest's forecasts into this process, instead of "
                         "reducing their errors on the workers")
    args = ap.parse_args()

    import dask
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    from tsrnn import RNNForecaster

    start = time.perf_counter()
    directory = args.dir or f"/tmp/tsrnn-fleet-{args.sensors}-{args.partition_sensors}"
    if not os.path.exists(directory):
        bench_fleet.write_parquet(types.SimpleNamespace(
            make_parquet=args.sensors, rows=2000, partition_sensors=args.partition_sensors,
            dir=directory))
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      host="127.0.0.1", dashboard_address=None) as cluster, \
            Client(cluster) as client:

        def step(*what):
            memory = sorted(client.run(_rss_mb).values())
            print(f"[{time.perf_counter() - start:7.1f} s, load {os.getloadavg()[0]:.1f}]",
                  *what, f"workers {memory} MB, client {_rss_mb()} MB", flush=True)

        step("parquet ready")
        train = dd.read_parquet(os.path.join(directory, "train"))
        week = dd.read_parquet(os.path.join(directory, "week"))
        params = dict(target="temp_air", series_id="sensor", horizon=24, random_state=0)
        if args.max_iter:
            params["max_iter"] = args.max_iter
        model = RNNForecaster(**params).fit(
            train, callback=lambda info: step("epoch", info["epoch"]))
        step("fit done,", model.n_iter_, "epochs")
        model.predict()
        step("predict done")
        forecasts = model.backtest(week, stride=args.stride)
        if args.gather:
            step("backtest gathered,", len(forecasts.compute()), "forecast rows")
        else:
            err = (forecasts["forecast"] - forecasts["actual"]).abs()
            count, total = dask.compute(err.count(), err.sum())
            step("backtest done,", count, "forecast rows, MAE", round(total / count, 4))


if __name__ == "__main__":
    main()
