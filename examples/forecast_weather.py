"""Forecast tomorrow's air temperature from a year of hourly weather, in pandas
============================================================================

RNNForecaster takes a DataFrame indexed by time and returns one indexed by the
next ``horizon`` timestamps. Every numeric column is an input (here: humidity,
irradiance, wind, pressure...), the target column is what gets forecast, and
the default quantiles (0.1, 0.5, 0.9) give a band around the median, calibrated
on the last training weeks so that it holds about 80% of the actuals. Apart
from the target and the horizon, everything is the estimator's default.

The last four weeks are held out: the model never trains on them, and the
backtest forecasts 24 hours ahead from every hour of those weeks, next to the
two forecasts any model must beat: persistence (tomorrow = the last value) and
seasonal naive (tomorrow = the same hour today).

Run it::

    python examples/forecast_weather.py                  # about a minute on 2 cores
    python examples/forecast_weather.py --plot fc.png    # also draw the forecast
    python examples/forecast_weather.py --quick          # seconds, for smoke tests
"""
import argparse
import time

from tsrnn import RNNForecaster
from tsrnn.datasets import load_weather

HOLDOUT = 4 * 7 * 24  # four weeks of hours


def main(quick=False, plot=None):
    weather = load_weather()  # 8760 hourly rows of 2017, DatetimeIndex with freq "h"
    if quick:
        weather = weather.iloc[-2000:]
    train, test = weather.iloc[:-HOLDOUT], weather.iloc[-HOLDOUT:]

    # The defaults choose the window with the baseline the network corrects,
    # and stop training when the held-out block stops improving.
    tiny = {"window": 24, "hidden_layer_sizes": 8, "max_iter": 2} if quick else {}
    model = RNNForecaster(target="temp_air", horizon=24, random_state=0, **tiny)
    start = time.perf_counter()
    model.fit(train)
    print(f"trained {model.n_iter_} epochs on {len(train)} hours "
          f"in {time.perf_counter() - start:.1f}s; window {model.window_} hours, "
          f"baseline: {model.baseline_}")

    # test starts right after train, so the model uses the end of train as
    # history for the first forecasts of the held-out weeks.
    result = model.backtest(test)
    print(f"\n24 h ahead, every hour of the last {HOLDOUT // 24} days:")
    print(result.metrics.round(3).to_string())
    print("\nband coverage (share of actuals inside it) against its promise:")
    print(result.intervals.round(3).to_string())

    # Forecast the 24 hours after the end of the data.
    forecast = model.predict(weather)
    print("\nforecast for", forecast.index[0].date())
    print(forecast.round(2).to_string())

    if plot is not None:
        import matplotlib

        matplotlib.use("Agg")  # draw to a file, no window
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(10, 4), layout="constrained")
        model.plot(weather, ax=ax, n_history=96)
        fig.savefig(plot, dpi=100)
        print(f"\nwrote {plot}")
    return model, result, forecast


if __name__ == "__main__":
    # sphinx-gallery runs the script without its docstring.
    parser = argparse.ArgumentParser(description=(__doc__ or " ").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings, for smoke tests")
    parser.add_argument("--plot", metavar="PNG", help="write a plot of the forecast here")
    args = parser.parse_args()
    main(args.quick, args.plot)
