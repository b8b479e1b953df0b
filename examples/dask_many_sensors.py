"""Fit one forecaster per sensor, spread over a dask.distributed cluster
=====================================================================

A fleet of temperature sensors (sites) is forecast 24 hours ahead, each by its
own RNNForecaster. The fits are independent, so they are ideal dask tasks:
``client.map`` sends one fit per sensor to whichever worker is free and the
results come back as they finish. One model per sensor suits sensors that
behave differently; for many similar sensors, one global model over all of
them (``RNNForecaster(series_id=...)``) is the alternative.

The sensors are synthetic but realistic: every site is the embedded weather
year (``tsrnn.datasets.load_weather``) seen through a site-specific offset,
amplitude, lag and AR(1) noise, with relative humidity as a past covariate.

Threads. Each worker is a separate process with one task thread; the
recurrent kernels in it use OpenMP threads. To keep workers x OpenMP threads
<= cores (no oversubscription), the OpenMP thread count of each worker is set
to ``cores // workers`` through dask's ``distributed.nanny.pre-spawn-environ``
(the environment the nanny gives a worker before it starts; dask's default
there is OMP_NUM_THREADS=1). Each result reports the count its worker saw.

Run it::

    python examples/dask_many_sensors.py                  # 32 sensors, local cluster (README: run time)
    python examples/dask_many_sensors.py --quick          # seconds, for smoke tests
    python examples/dask_many_sensors.py --scheduler tcp://host:8786   # your cluster

Needs the dask extra: ``pip install "tsrnn[dask]"``.
"""
import argparse
import os
import time

import numpy as np
import pandas as pd

HORIZON = 24


def make_sensors(n_sensors, n_rows, seed=0):
    """{name: hourly frame with 'temp' and 'humidity'} for n_sensors sites."""
    from tsrnn.datasets import load_weather

    weather = load_weather()[["temp_air", "relative_humidity"]]
    rng = np.random.default_rng(seed)
    sensors = {}
    for k in range(n_sensors):
        lag = int(rng.integers(0, 6))  # hours: sites east/west of the station
        start = int(rng.integers(lag, len(weather) - n_rows + 1))
        # One contiguous slice per site, shifted by `lag` rows for the lag.
        part = weather.iloc[start - lag : start - lag + n_rows]
        noise = np.zeros(n_rows)
        eps = rng.normal(scale=0.4, size=n_rows)
        for i in range(1, n_rows):
            noise[i] = 0.9 * noise[i - 1] + eps[i]
        frame = pd.DataFrame(
            {
                "temp": rng.uniform(-3, 3)
                + rng.uniform(0.8, 1.2) * part["temp_air"].to_numpy()
                + noise,
                "humidity": part["relative_humidity"].to_numpy(),
            },
            index=weather.index[start : start + n_rows],
        )
        sensors[f"site-{k:03d}"] = frame
    return sensors


def fit_one(name, frame, params):
    """Runs on a worker: fit, backtest on the last 20% of rows, forecast.

    Returns plain data (no model), so results are small to send back.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    import tsrnn

    start = time.perf_counter()
    split = int(0.8 * len(frame))
    train, test = frame.iloc[:split], frame.iloc[split:]
    model = tsrnn.RNNForecaster(target="temp", horizon=HORIZON, random_state=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(train)
    metrics = model.backtest(test).metrics["MASE"]
    model.update(test)  # move the forecast origin to the end of the data
    forecast = model.predict()["temp"]
    return {
        "sensor": name,
        "mase_model": float(metrics["model"]),
        "mase_persistence": float(metrics["persistence"]),
        "epochs": model.n_iter_,
        "seconds": time.perf_counter() - start,
        "pid": os.getpid(),
        "omp_threads": tsrnn.max_threads(),
        "forecast": forecast,
    }


def run(client, sensors, params):
    from distributed import as_completed

    names = list(sensors)
    # Scatter the frames once so each task receives a reference, not a copy
    # embedded in the task graph.
    frames = client.scatter([sensors[n] for n in names])
    futures = client.map(fit_one, names, frames, params=params, pure=False)
    results = []
    for future in as_completed(futures):
        r = future.result()
        results.append(r)
        print(
            f"  {r['sensor']}: MASE {r['mase_model']:.3f} (persistence "
            f"{r['mase_persistence']:.3f}), {r['epochs']} epochs, {r['seconds']:.1f} s, "
            f"worker pid {r['pid']}, {r['omp_threads']} OpenMP thread(s)",
            flush=True,
        )
    return sorted(results, key=lambda r: r["sensor"])


def main(argv=None):
    # sphinx-gallery runs the script without its docstring.
    parser = argparse.ArgumentParser(description=(__doc__ or " ").splitlines()[0])
    parser.add_argument("--sensors", type=int, default=32)
    parser.add_argument("--rows", type=int, default=4000, help="hours per sensor")
    parser.add_argument("--workers", type=int, default=2,
                        help="local worker processes (ignored with --scheduler)")
    parser.add_argument("--scheduler", help="address of a running dask scheduler")
    parser.add_argument("--out", help="write all forecasts to this CSV")
    parser.add_argument("--quick", action="store_true",
                        help="4 small sensors and tiny models, for a smoke test")
    args = parser.parse_args(argv)

    from dask import config
    from distributed import Client, LocalCluster

    if args.quick:
        args.sensors, args.rows = min(args.sensors, 4), min(args.rows, 400)
        params = dict(window=24, hidden_layer_sizes=8, max_iter=2)
    else:
        params = dict(window=48, hidden_layer_sizes=32, max_iter=10, early_stopping=True)
    sensors = make_sensors(args.sensors, args.rows)
    print(f"{len(sensors)} sensors x {args.rows} hours, one RNNForecaster each")

    begin = time.perf_counter()
    if args.scheduler:
        # The cluster's own worker environment decides the OpenMP threads.
        with Client(args.scheduler) as client:
            results = run(client, sensors, params)
    else:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        omp = max(1, cores // args.workers)
        # Read by the nanny when it spawns each worker, so it is in the
        # worker's environment before the OpenMP runtime initialises.
        with config.set({"distributed.nanny.pre-spawn-environ.OMP_NUM_THREADS": omp}):
            with LocalCluster(n_workers=args.workers, threads_per_worker=1,
                              processes=True, host="127.0.0.1",
                              dashboard_address=None) as cluster, Client(cluster) as client:
                print(f"local cluster: {args.workers} workers x 1 task thread x "
                      f"{omp} OpenMP thread(s) on {cores} cores")
                results = run(client, sensors, params)
    elapsed = time.perf_counter() - begin

    table = pd.DataFrame(results).set_index("sensor")
    better = (table["mase_model"] < table["mase_persistence"]).sum()
    print(f"\n{len(table)} models in {elapsed:.1f} s on {table['pid'].nunique()} worker "
          f"process(es); beat persistence on {better}/{len(table)} sensors; "
          f"median MASE {table['mase_model'].median():.3f} "
          f"(persistence {table['mase_persistence'].median():.3f})")
    if args.out:
        forecasts = pd.concat(
            {r["sensor"]: r["forecast"] for r in results}, names=["sensor", "timestamp"]
        ).rename("temp_forecast")
        forecasts.to_csv(args.out)
        print(f"forecasts written to {args.out}")
    return table


if __name__ == "__main__":
    main()
