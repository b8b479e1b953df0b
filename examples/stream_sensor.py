"""Stream a weather sensor through a fitted forecaster, one reading at a time
==========================================================================

A gateway receives one row per hour. After fitting on the first months,
each new row goes to ``update()``, which checks it, checks the forecasts the
row completes (the quantile band follows what it sees) and forecasts from the
new origin; ``predict()`` then returns that forecast as a DataFrame. The
script times both calls and prints their latency percentiles, and checks
that every streamed forecast is the one a batch ``predict`` on the whole
history gives: the median exactly (to float rounding), the band up to the
offsets ``update()`` tracked (``calibration_rate``).

Run it::

    python examples/stream_sensor.py            # about half a minute on 2 cores
    python examples/stream_sensor.py --quick    # seconds, for smoke tests
"""
import argparse
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from tsrnn import RNNForecaster
from tsrnn.datasets import load_weather


def main(quick=False):
    weather = load_weather()  # 8760 hourly rows of 2017
    n_fit, n_stream = (1000, 200) if quick else (4000, 720)
    model = RNNForecaster(
        target="temp_air",
        window=24 if quick else 48,
        horizon=6 if quick else 24,
        hidden_layer_sizes=8 if quick else 32,
        max_iter=2 if quick else 5,  # latency does not depend on the epochs
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(weather.iloc[:n_fit])
    print(f"fitted on {n_fit} hours; streaming the next {n_stream}, one row at a time")

    t_update, t_predict, worst_median, band_shift = [], [], 0.0, 0.0
    # One thread, as on a small gateway (and a fair single-series timing).
    with threadpool_limits(1):
        for i in range(n_fit, n_fit + n_stream):
            row = weather.iloc[i : i + 1]  # the new reading, a one-row DataFrame
            t0 = time.perf_counter()
            model.update(row)
            t1 = time.perf_counter()
            forecast = model.predict()
            t2 = time.perf_counter()
            t_update.append(t1 - t0)
            t_predict.append(t2 - t1)
            # The same forecast from the whole history, in one batch call.
            batch = model.predict(weather.iloc[: i + 1])
            assert forecast.index.equals(batch.index)
            median = forecast["temp_air"].to_numpy()
            worst_median = max(worst_median, float(np.max(
                np.abs(median - batch["temp_air"].to_numpy()) / np.abs(median).clip(1))))
            band = forecast.filter(like="_q").to_numpy() - batch.filter(like="_q").to_numpy()
            band_shift = max(band_shift, float(np.abs(band).max()))

    print(f"\nlatency over {n_stream} rows, one thread (ms):")
    print(f"{'':10s} {'p50':>7s} {'p90':>7s} {'p99':>7s}")
    for name, times in (("update", t_update), ("predict", t_predict)):
        p50, p90, p99 = np.percentile(np.array(times) * 1e3, [50, 90, 99])
        print(f"{name:10s} {p50:7.3f} {p90:7.3f} {p99:7.3f}")
    print(f"\nstreamed vs batch predict: median forecasts agree to {worst_median:.1e} "
          f"(relative); the band moved by up to {band_shift:.2f} degC, the offsets "
          "update() tracked")
    assert worst_median <= 1e-5, "streamed forecasts differ from batch predict"
    print(f"last forecast, from the origin {forecast.index[0] - forecast.index.freq}:")
    print(forecast.head(3).round(2).to_string())


if __name__ == "__main__":
    # sphinx-gallery runs the script without its docstring.
    ap = argparse.ArgumentParser(description=(__doc__ or " ").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small model and stream (seconds)")
    main(**vars(ap.parse_args()))
