"""Command line interface: ``tsrnn forecast [CSV] ...`` (also ``python -m tsrnn``).

Design
------
One job: read a CSV of timestamped sensor rows (or the embedded weather year),
fit an :class:`~tsrnn.RNNForecaster` with a progress bar, print a backtest
table against the persistence and seasonal-naive baselines, and write the
forecast as CSV and, on request, as a PNG plot.

Errors the user can fix are :class:`~tsrnn.exceptions.InputError`: the CLI's
own (a missing file, text where numbers belong, a time column that does not
parse: :class:`UsageError`, a subclass) and every refusal of the data by the
forecaster's own checks (an unknown column, timestamps out of order, gaps,
too little data). ``main`` turns them, and only them, into a single
``tsrnn: error: ...`` line on stderr and exit status 2, the status argparse
uses for bad arguments. Training that fails on accepted data
(:class:`~tsrnn.exceptions.TrainingError`) is one ``tsrnn: training failed:``
line and status 1; anything else is a bug and shows its traceback (status 1).
The CLI parses the CSV and leaves every other check to
``RNNForecaster.validate_frame``, which runs them before training, so a bad
file fails in well under a second instead of after a minute of fitting.

Outputs are written to temporary files in the destination directory and moved
into place with ``os.replace`` only after everything has succeeded, so a failed
or interrupted run never leaves a truncated CSV or PNG behind, and an older
forecast at the same path is either kept whole or replaced whole.

tqdm and matplotlib are optional extras (``tsrnn[progress]``, ``tsrnn[plot]``):
without tqdm the progress is a plain line per epoch on stderr, and ``--plot``
without matplotlib is refused up front with a message saying what to install.
"""

import argparse
import os
import sys
import time
import warnings

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from tsrnn._atomic_write import write_outputs
from tsrnn._csv_input import (
    TimeFormat,
    UsageError,
    _first_line,
    _in_zone,
    load_frame,
    select_columns,
)
from tsrnn._forecaster import RNNForecaster
from tsrnn._parquet_fleet import is_parquet
from tsrnn._progress import Progress
from tsrnn.exceptions import InputError, ResampleWarning, TrainingError

__all__ = ["main", "UsageError"]

# The CLI uses the forecaster's defaults (chosen on the accuracy benchmark's
# suite, benchmarks/README.md), so that the command line and the Python API
# give the same forecast for the same data. Only the target of the embedded
# weather year and the horizon (a day of hourly rows, as the estimator's) are
# the CLI's own.
_EMBEDDED_TARGET = "temp_air"
_DEFAULTS = RNNForecaster().get_params()
# Shuffles per column for --importance. On the embedded weather's 13 columns
# the standard deviation over 5 shuffles was at most 0.05 (the target's, whose
# importance was 2.58) and under 0.01 for every other column, small enough to
# rank them, at 5 backtests per column.
_IMPORTANCE_REPEATS = 5


# --------------------------------------------------------------------------
# Argument parsing
# --------------------------------------------------------------------------


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _window(text):
    if text == "auto":
        return text
    return _positive_int(text)


def _hidden_sizes(text):
    """'32' -> (32,), '64,32' -> (64, 32): one width per stacked layer."""
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected layer widths like 32 or 64,32, got {text!r}"
        )
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"layer widths must be positive, got {text!r}")
    return sizes


def _quantile_list(text):
    """'0.1,0.9' -> (0.1, 0.5, 0.9); 'none' -> None (a mean forecast, no band).

    The median is always added: it is the point forecast, so the output CSV
    has a column named as the target whatever band is asked for.
    """
    if text.strip().lower() == "none":
        return None
    try:
        qs = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected quantiles like 0.1,0.5,0.9 or 'none', got {text!r}"
        )
    if not all(0 < q < 1 for q in qs):
        raise argparse.ArgumentTypeError(f"quantiles must lie strictly between 0 and 1, got {text!r}")
    if len(set(qs)) != len(qs):
        raise argparse.ArgumentTypeError(f"quantiles must be distinct, got {text!r}")
    return tuple(sorted(set(qs) | {0.5}))


def _season_lags(text):
    """'auto' -> 'auto', 'none' -> None, '168' or '168,336' -> [168, 336]."""
    word = text.strip().lower()
    if word in ("auto", "none"):
        return None if word == "none" else word
    try:
        lags = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected 'auto', 'none' or lags in steps like 168 or 168,336, got {text!r}"
        )
    if min(lags) < 1:
        raise argparse.ArgumentTypeError(f"lags must be positive numbers of steps, got {text!r}")
    return lags


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction like 0.1, got {text!r}")
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1, got {text!r}")
    return value


def _float_format(text):
    """A printf-style format for one float, as ``DataFrame.to_csv`` takes it."""
    try:
        shown = text % 1.5
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(
            f"expected a format for one number like %.6g or %.3f, got {text!r}"
        )
    try:
        float(shown)
    except ValueError:
        # "%.3f degC" would write cells that no longer read back as numbers.
        raise argparse.ArgumentTypeError(
            f"{text!r} writes {shown!r} for 1.5, which is not a number"
        )
    return text


def _column_list(text):
    names = [part.strip() for part in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected column names separated by commas, got {text!r}")
    return names


def build_parser():
    parser = argparse.ArgumentParser(
        prog="tsrnn",
        description="Fast LSTM/GRU forecasting for timestamped sensor data.",
    )
    from tsrnn import __version__

    parser.add_argument("--version", action="version", version=f"tsrnn {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    fc = commands.add_parser(
        "forecast",
        help="fit a recurrent forecaster to a CSV and forecast the next steps",
        description=(
            "Fit an LSTM/GRU forecaster to a CSV of timestamped rows, print a "
            "backtest against persistence and seasonal-naive baselines, and write "
            "the forecast of the next HORIZON steps. Without CSV, the embedded "
            "hourly weather year (tsrnn.datasets.load_weather) is forecast."
        ),
    )
    fc.add_argument(
        "csv", nargs="?", metavar="FILE",
        help="input CSV: one row per time step, a time column and numeric columns; "
        "or a parquet file or dataset directory holding a fleet (with --series-id, "
        "read lazily with dask) (default: the embedded weather data)",
    )
    fc.add_argument(
        "--series-id", metavar="COL",
        help="parquet input: the column naming each series of the fleet; one model "
        "is fitted to all of them and every series is forecast",
    )
    fc.add_argument(
        "--scheduler", metavar="ADDRESS",
        help="parquet input: run on the existing dask cluster at this scheduler "
        "address, e.g. tcp://10.0.0.5:8786 (default: dask's local threads)",
    )
    fc.add_argument(
        "--target", metavar="COL",
        help=f"column to forecast (default: {_EMBEDDED_TARGET!r} for the embedded "
        "data, else the only numeric column)",
    )
    fc.add_argument(
        "--time-col", metavar="COL",
        help="column holding the timestamps (default: the first column)",
    )
    fc.add_argument(
        "--time-unit", choices=("s", "ms", "us", "ns"),
        help="the time column holds Unix times in this unit (default: text "
        "timestamps, or Unix seconds or milliseconds when the numbers are dates "
        "in 1980-2100 in that unit)",
    )
    fc.add_argument(
        "--tz", metavar="ZONE",
        help="time zone of the forecast, e.g. Europe/Berlin: timestamps with UTC "
        "offsets or Unix times are converted to it, timestamps without offsets are "
        "local times there (default: timestamps with one UTC offset keep it, "
        "changing offsets become UTC)",
    )
    fc.add_argument(
        "--features", type=_column_list, metavar="COL,COL",
        help="input columns besides the target (default: every other column)",
    )
    fc.add_argument("--horizon", type=_positive_int, default=_DEFAULTS["horizon"],
                    metavar="N", help="number of future steps to forecast (default: %(default)s)")
    fc.add_argument("--window", type=_window, default=_DEFAULTS["window"],
                    metavar="N|auto", help="number of past steps the model reads; 'auto' "
                    "chooses it with the baseline on held-out time (default: %(default)s)")
    fc.add_argument("--cell", choices=("lstm", "gru", "peephole"), default="lstm",
                    help="recurrent cell (default: %(default)s)")
    fc.add_argument("--hidden", type=_hidden_sizes,
                    default=",".join(map(str, _DEFAULTS["hidden_layer_sizes"])),
                    metavar="N[,N]", help="width of each recurrent layer (default: %(default)s)")
    fc.add_argument("--quantiles", type=_quantile_list,
                    default=",".join(map(str, _DEFAULTS["quantiles"])),
                    metavar="Q,Q", help="quantiles of the forecast band (the median is always "
                    "added as the point forecast), or 'none' for a mean forecast "
                    "without band (default: %(default)s)")
    fc.add_argument("--season-lags", type=_season_lags, default=_DEFAULTS["season_lags"],
                    metavar="auto|none|N[,N]", help="the target that many steps earlier as "
                    "an input, for seasons longer than the window: 'auto' takes the week "
                    "of hourly and half-hourly data and the year of daily data, 'none' "
                    "turns it off (default: %(default)s)")
    fc.add_argument("--max-iter", type=_positive_int, default=_DEFAULTS["max_iter"],
                    metavar="N", help="maximum number of training epochs; training stops "
                    "earlier when the validation score stalls (default: %(default)s)")
    fc.add_argument("--seed", type=int, default=0, metavar="N",
                    help="random seed; the same seed gives the same forecast "
                    "(default: %(default)s)")
    fc.add_argument("--test-size", type=_fraction, default=0.1, metavar="F",
                    help="fraction of the last rows held out for the backtest "
                    "(at least HORIZON rows); the model never trains on them "
                    "(default: %(default)s)")
    fc.add_argument("--missing", choices=("raise", "interpolate", "mask"),
                    default="raise",
                    help="empty cells: refuse them, interpolate them, or interpolate "
                    "the inputs but never train on filled-in targets (default: %(default)s)")
    fc.add_argument("--freq", metavar="FREQ",
                    help="pandas frequency of the rows, e.g. h or 15min: each reading "
                    "moves to the nearest point of that grid, readings on one point are "
                    "averaged and points without one are missing values (default: "
                    "inferred from the timestamps, which must then be regular)")
    fc.add_argument("--out", metavar="PATH",
                    help="where to write the forecast: a CSV, or for parquet input a "
                    "parquet dataset directory, replaced whole (default: forecast.csv, "
                    "or forecast.parquet for parquet input)")
    fc.add_argument("--float-format", type=_float_format, default="%.6g", metavar="FMT",
                    help="printf-style format of the forecast CSV's numbers, e.g. %%.3f "
                    "(default: %(default)s, six significant digits)")
    fc.add_argument("--importance", action="store_true",
                    help="after the backtest, print how much each column matters: the "
                    "backtest's MASE when that column is shuffled, minus the MASE as it is "
                    f"(permutation importance, {_IMPORTANCE_REPEATS} shuffles per column)")
    fc.add_argument("--plot", metavar="PATH",
                    help="also write a plot of history, forecast and band (PNG; "
                    "needs matplotlib)")
    return parser


# --------------------------------------------------------------------------
# Input
# --------------------------------------------------------------------------


# --------------------------------------------------------------------------
# Progress
# --------------------------------------------------------------------------


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------


def _check_writable(path, option):
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UsageError(f"{option} {path}: directory {directory} does not exist")
    if os.path.isdir(path):
        raise UsageError(f"{option} {path} is a directory")
    if not os.access(directory, os.W_OK):
        raise UsageError(f"{option} {path}: cannot write to directory {directory}")


def _check_writable_directory(path, option):
    """An output directory: replaceable whole, so a file there is refused too."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UsageError(f"{option} {path}: directory {directory} does not exist")
    if os.path.lexists(path) and not os.path.isdir(path):
        raise UsageError(f"{option} {path} is a file; a parquet forecast is a directory")
    if not os.access(directory, os.W_OK):
        raise UsageError(f"{option} {path}: cannot write to directory {directory}")


def _plot_writer(model, data, args, source):
    def write(tmp):
        # Figure without pyplot: no GUI backend and no global figure state.
        from matplotlib.figure import Figure

        fig = Figure(figsize=(10, 4), layout="constrained")
        ax = fig.add_subplot()
        # Four horizons of history put the forecast in context.
        n_history = min(len(data), max(model.window_, 4 * args.horizon))
        model.plot(data, ax=ax, n_history=n_history)
        ax.set_title(f"{ax.get_title()} ({os.path.basename(source)})")
        fig.savefig(tmp, dpi=100)

    return write


# --------------------------------------------------------------------------
# The job
# --------------------------------------------------------------------------


# Forecaster parameters named in its messages, and the options that set them.
_OPTIONS = {
    "target=": "--target COL", "target column": "--target COL", "window=": "--window N", "horizon=": "--horizon N",
    "freq=": "--freq FREQ", "missing=": "--missing interpolate|mask",
    "`missing`": "--missing interpolate|mask",
    "season_lags": "--season-lags",
}


def _with_options(message):
    """A forecaster message with the options that set the parameters it names."""
    options = list(dict.fromkeys(
        option for keyword, option in _OPTIONS.items() if keyword in message
    ))
    return message + (f" (command line: {', '.join(options)})" if options else "")


def _input_error(exc, source):
    """The forecaster's InputError about the data, as a one-line UsageError."""
    # The forecaster's hints name its Python parameters; add their options.
    return UsageError(_with_options(f"cannot fit {source}: {_first_line(exc)}"))


def _network_report(model):
    """What the network adds to its baseline on the held-out block, or None.

    The forecast is the baseline's alone when no epoch beat it by
    ``min_network_gain`` (early stopping then keeps the untrained network):
    a user reading only the backtest could not tell the two apart.
    """
    initial = getattr(model, "initial_validation_score_", None)
    if not initial:  # None (nothing held out, or an older pickle), or 0
        return None
    if model.best_validation_score_ == initial:
        return (f"network: no epoch beat the baseline on the held-out block by "
                f"{model.min_network_gain:.0%} (min_network_gain), so the forecast is "
                "the baseline's")
    gain = (model.best_validation_score_ - initial) / abs(initial)
    return f"network: its corrections cut the baseline's held-out loss by {gain:.1%}"


def _count(n, noun):
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _forecast(args, out):
    lags = args.season_lags
    if isinstance(lags, list) and min(lags) < args.horizon:
        raise UsageError(
            f"--season-lags {','.join(map(str, lags))}: each lag must be at least "
            f"--horizon {args.horizon} steps (a shorter lag is unknown for the last "
            "steps of the forecast)"
        )
    if args.plot is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise UsageError(
                "--plot needs matplotlib, which is not installed: "
                "pip install 'tsrnn[plot]' (or matplotlib), or drop --plot"
            )
        _check_writable(args.plot, "--plot")
    fleet = args.csv is not None and is_parquet(args.csv)
    if args.out is None:
        args.out = "forecast.parquet" if fleet else "forecast.csv"
    if fleet:
        _check_writable_directory(args.out, "--out")
        return _forecast_fleet(args, out)
    for option in ("series_id", "scheduler"):
        if getattr(args, option) is not None:
            raise UsageError(f"--{option.replace('_', '-')} reads a parquet fleet; "
                             f"{args.csv or 'the embedded weather data'} is not parquet")
    _check_writable(args.out, "--out")

    if args.csv is None:
        from tsrnn.datasets import load_weather

        source = "the embedded weather data"
        if args.time_unit is not None:
            raise UsageError("--time-unit reads a CSV's time column; the embedded "
                             "weather data have timestamps")
        frame = load_weather()
        if args.tz is not None:
            frame.index = _in_zone(frame.index, args.tz, frame.index.name, source)
        target = args.target if args.target is not None else _EMBEDDED_TARGET
        time_format = TimeFormat()
    else:
        source = args.csv
        frame, time_format = load_frame(args.csv, args.time_col, args.time_unit, args.tz)
        target = args.target
    frame = select_columns(frame, target, args.features, source)
    # The backtest block must hold one horizon; the forecaster checks the rest.
    n_test = max(args.horizon, round(args.test_size * len(frame)))
    if n_test >= len(frame):
        raise UsageError(
            f"{source} has {len(frame)} rows: too few to hold out the last {n_test} "
            "for the backtest and train on the rest (--horizon, --test-size)"
        )
    train, test = train_test_split(frame, test_size=n_test, shuffle=False)

    model = RNNForecaster(
        target=target,
        window=args.window,
        horizon=args.horizon,
        cell=args.cell,
        hidden_layer_sizes=args.hidden,
        quantiles=args.quantiles,
        freq=args.freq,
        missing=args.missing,
        season_lags=args.season_lags,
        max_iter=args.max_iter,
        random_state=args.seed,
    )
    where = f"{source} (its first {len(train)} rows; the backtest holds out the last {n_test})"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResampleWarning)
        try:
            try:
                model.validate_frame(train)
            except InputError:
                # Too short for a validation block, or bad data: without early
                # stopping, only bad data is still refused.
                model.set_params(early_stopping=False).validate_frame(train)
        except InputError as exc:
            raise _input_error(exc, where) from None
    try:
        # The backtest and the forecast read the held-out rows too: bad data
        # there is refused now, not after training.
        model._check_rows(frame)
    except InputError as exc:
        raise _input_error(exc, source) from None
    # What --freq did to the training rows, once: main() silences the same
    # report from fit, backtest, predict and plot.
    notes = list(dict.fromkeys(
        str(w.message) for w in caught if issubclass(w.category, ResampleWarning)
    ))
    for w in caught:  # recording swallowed the others: show them as before
        if not issubclass(w.category, ResampleWarning):
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    target = target if target is not None else train.columns[0]
    print(
        f"tsrnn: forecasting {target!r} {args.horizon} steps ahead from {source} "
        f"({len(frame)} rows, {frame.index[0]} to {frame.index[-1]}, "
        f"{_count(frame.shape[1], 'column')})\n"
        f"model: {args.cell}, window {args.window}, hidden "
        f"{','.join(map(str, args.hidden))}, at most {_count(args.max_iter, 'epoch')}"
        + ("" if model.early_stopping else " (too few rows for early stopping)")
        + f"; trained on the first {len(train)} rows, backtested on the last {n_test}",
        file=out, flush=True,
    )
    for note in notes:
        print(f"note: in the training rows, {_with_options(note)}", file=out, flush=True)
    progress = Progress(args.max_iter)
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            # The progress bar already shows that training ran to --max-iter.
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(train, callback=progress)
    finally:
        progress.close()
    lags = model._encoder.lags
    print(f"trained {_count(model.n_iter_, 'epoch')} in "
          f"{time.perf_counter() - start:.1f}s; window {model.window_}, "
          f"baseline: {model.baseline_}"
          + (f"; the target {', '.join(map(str, lags))} steps earlier as input"
             if lags else ""), file=out)
    network = _network_report(model)
    if network:
        print(network, file=out)

    # The backtest block follows the training rows, so the forecaster prepends
    # the end of the training data as context: every origin of the block is
    # forecast, from data the model was not trained on.
    try:
        result = model.backtest(test)
    except InputError as exc:
        raise _input_error(exc, source) from None
    print(f"\nbacktest: forecasts from every row of the last {n_test}, "
          f"{args.horizon} steps ahead; seasonal naive repeats the value "
          f"{_count(result.season, 'step')} earlier; MASE is MAE over the seasonal "
          "naive MAE on the training rows:", file=out)
    print(result.metrics.to_string(float_format=lambda v: f"{v:.4f}"), file=out)
    if result.intervals is not None and len(result.intervals):
        print("\nbands: the share of actuals inside each band (coverage) against its "
              "promise (nominal), its mean width, and the interval score (lower is "
              "better):", file=out)
        print(result.intervals.to_string(float_format=lambda v: f"{v:.3f}"), file=out)
    if np.isnan(model.mase_scale_).any():
        print(f"note: MASE is NaN: on the training rows, the value {result.season} "
              "steps earlier predicts the target without error (a constant series, "
              "or one that repeats exactly with its season), so there is no scale "
              "to divide by; compare the MAE instead.", file=out)

    if args.importance:
        _print_importance(model, test, args, out)

    # The forecast starts after the last row of the whole file.
    forecast = model.predict(frame)
    print(f"\nforecast of {target!r}:", file=out)
    print(forecast.to_string(float_format=lambda v: f"{v:.3f}"), file=out)

    # Timestamps as the input wrote them (ISO 8601 with offsets, Unix time).
    written = forecast.set_axis(time_format.column(forecast.index))
    writers = [(args.out, lambda tmp: written.to_csv(
        tmp, index_label="timestamp", float_format=args.float_format))]
    if args.plot is not None:
        writers.append((args.plot, _plot_writer(model, frame, args, source)))
    write_outputs(writers)
    print(f"\nwrote {args.out}" + (f" and {args.plot}" if args.plot else ""), file=out)


def _forecast_fleet(args, out):
    """The job on a parquet fleet: one model for every series, run with dask."""
    from contextlib import nullcontext

    from tsrnn import _parquet_fleet as fleet
    from tsrnn._dask_frames import check_whole_series, validate_partitions

    source = args.csv
    if args.series_id is None:
        raise UsageError(f"{source} is parquet: a fleet; name the column identifying "
                         "each series with --series-id")
    for option in ("plot", "importance", "time_unit", "tz", "float_format"):
        if getattr(args, option) not in (None, False, "%.6g"):
            raise UsageError(f"--{option.replace('_', '-')} is for CSV input; "
                             f"{source} is a parquet fleet")
    fleet.import_dask_dataframe()
    with fleet.connect(args.scheduler) if args.scheduler else nullcontext():
        ddf, time_name = fleet.read_fleet(source, args.series_id, args.time_col,
                                          args.target, args.features)
        check_whole_series(ddf, args.series_id)
        model = RNNForecaster(
            target=args.target, series_id=args.series_id, window=args.window,
            horizon=args.horizon, cell=args.cell, hidden_layer_sizes=args.hidden,
            quantiles=args.quantiles, freq=args.freq, missing=args.missing,
            season_lags=args.season_lags, max_iter=args.max_iter, random_state=args.seed,
        )
        train, test = fleet.split_fleet(ddf, args.series_id, args.horizon, args.test_size)
        try:
            summary = validate_partitions(train, model, time_name)
        except InputError as exc:
            raise _input_error(exc, f"{source} (its training rows)") from None
        target = model.target if model.target is not None else "the only numeric column"
        print(
            f"tsrnn: forecasting {target!r} {args.horizon} steps ahead for "
            f"{len(summary):,} series of {source} ({summary['rows'].sum():,} "
            f"training rows in {_count(ddf.npartitions, 'partition')}, "
            f"{summary['first'].min()} to {summary['last'].max()})\n"
            f"model: {args.cell}, window {args.window}, hidden "
            f"{','.join(map(str, args.hidden))}, at most {_count(args.max_iter, 'epoch')}; "
            f"each series holds out its last {args.test_size:g} (at least "
            f"{_count(args.horizon, 'row')}) for the backtest",
            file=out, flush=True,
        )
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(train)
        print(f"trained {_count(model.n_iter_, 'epoch')} in "
              f"{time.perf_counter() - start:.1f}s; window {model.window_}, "
              f"correcting a {model.baseline_} baseline", file=out, flush=True)
        try:
            metrics = fleet.fleet_metrics(model.backtest(test), model.target_,
                                          model.mase_scale_)
        except InputError as exc:
            raise _input_error(exc, source) from None
        print(f"\nbacktest: forecasts from every held-out row of every series, "
              f"{args.horizon} steps ahead, scored over the whole fleet:", file=out)
        print(metrics.to_string(float_format=lambda v: f"{v:.4f}"), file=out)
        fleet.write_forecast(model.predict(ddf), args.out, args.series_id)
    print(f"\nwrote {args.out}: the next {_count(args.horizon, 'step')} of every series "
          "(parquet dataset)", file=out)


def _print_importance(model, test, args, out):
    """Permutation importance of every column over the backtest rows.

    Each column of the backtest block is shuffled in turn and the block is
    backtested again against the unshuffled truth (``RNNForecaster.score``
    with y), so shuffling the target measures how much the forecasts use its
    history.
    """
    from sklearn.inspection import permutation_importance

    targets = model.target_
    result = permutation_importance(
        model, test, test[targets], n_repeats=_IMPORTANCE_REPEATS, random_state=args.seed,
    )
    table = pd.DataFrame(
        {"importance": result.importances_mean, "std": result.importances_std},
        index=pd.Index(test.columns, name="column"),
    ).sort_values("importance", ascending=False)
    print(f"\nimportance: rise in the backtest's MASE when a column is shuffled "
          f"(mean and standard deviation over {_IMPORTANCE_REPEATS} shuffles of the "
          f"last {len(test)} rows; near 0: the forecasts do not use it):", file=out)
    print(table.to_string(float_format=lambda v: f"{v:.4f}"), file=out)


def main(argv=None):
    """Run the command line; return the exit status.

    0 on success, 2 for bad input or options, 1 when training fails; any
    other error propagates with its traceback (Python exits with 1).

    Parameters
    ----------
    argv : list of str or None, default=None
        The arguments after the program name; None reads ``sys.argv``.

    Returns
    -------
    status : int
        The exit status.

    Examples
    --------
    The ``tsrnn`` console script and ``python -m tsrnn`` call this; from
    Python, pass the arguments as a list:

    >>> from tsrnn.cli import main
    >>> main(["forecast", "--max-iter", "1", "--out", "forecast.csv"])  # doctest: +SKIP
    0
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():
            # _forecast prints what --freq did as a note, once; the warning
            # repeats at every later call on the same rows.
            warnings.simplefilter("ignore", ResampleWarning)
            if args.command == "forecast":
                _forecast(args, sys.stdout)
    except InputError as exc:
        # One line, whatever the message holds (a column name may contain a
        # newline), so that scripts can grep it.
        print(f"tsrnn: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except TrainingError as exc:
        print(f"tsrnn: training failed: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    return 0
