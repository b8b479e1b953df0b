"""ONNX export of a fitted RNNForecaster: predict()'s stages as graph stages.

Design
------
The graph repeats what ``RNNForecaster.predict`` does to the window before
one forecast origin, stage by stage, and each stage is one function below
that reads the fitted forecaster and adds its nodes:

1. :func:`model_inputs` - the raw window's columns into the model's order
   [targets, past covariates, known-future], standardised with ``scaler_``,
   or, for a forecaster scaled per series (``scaling="series"`` on several
   series), with the statistics of the series named by the ``"series"``
   input (each row's position in ``series_ids_``, gathered from a table of
   ``series_scales_``);
   then the calendar columns (``_calendar.py``), computed in the graph from
   the ``"timestamps"`` input with the same integer arithmetic; with
   known-future covariates or calendar columns, the 0/1 future-flag column
   and ``horizon`` more rows holding the scaled future values and the
   calendar of the steps after the origin (``Encoder.encode`` and
   ``ForecastWindows._gather``);
2. :func:`baseline` - the forecast the network corrects, from the same
   scaled window (``_baselines.py``: ``LagBaseline`` or ``LinearBaseline``);
3. :func:`network_inputs` and ``GraphBuilder.network`` - what the network
   reads of the window (``_network_inputs.py``: the targets relative to the
   origin), the recurrent layers and the head;
4. :func:`add_corrections` - the network's outputs, ordered (step, target,
   quantile), added to the baseline;
5. :func:`sort_quantiles` - the monotone rearrangement;
6. :func:`unscale` - back to the targets' units;
7. :func:`calibrate` - the band's conformal offsets learned in fit, added
   per (step, target, quantile) (for a target whose errors are relative to
   its level, times the level of the forecast, the mean of its median over
   the horizon), and the quantiles sorted again. These are
   the offsets of ``predict(X)``; the offsets ``update()`` tracks for the
   kept contexts belong to a running forecaster, not to its graph.

A new stage of ``predict`` (calibration offsets, an average over networks)
is one more function here, called in :func:`forecaster_model` at the place
``predict`` applies it; ``tests/test_onnx_forecaster.py`` fails for a fitted
attribute this module does not know, so a stage cannot be forgotten
silently.

Precision. ``predict`` scales in float64, runs the network in the model's
dtype and adds, sorts and unscales in float64; the graph does the same
(the network in float32, see ``_onnx_graph.py``), so the only differences
are the float32 input and output and the two runtimes' rounding inside the
network.

What cannot be exported. Gap filling (``missing="interpolate"`` or
``"mask"``): ``predict`` fills a gap from the whole history before the
window (time interpolation of closed gaps, the last observation carried
forward over open ones), which a graph fed one fixed window cannot
reproduce. ``to_onnx`` refuses such a forecaster rather than export a graph
that forecasts differently; the graph of a ``missing="raise"`` forecaster
expects complete windows, as ``predict`` does.
"""

import json

import numpy as np
from onnx import TensorProto

from tsrnn._baselines import LagBaseline, LinearBaseline
from tsrnn._calendar import CYCLES
from tsrnn._onnx_graph import DOUBLE, FLOAT, GraphBuilder

_ONNX_TYPE = {np.dtype(np.float32): FLOAT, np.dtype(np.float64): DOUBLE}


def forecaster_model(f):
    """The ONNX model of a fitted RNNForecaster (see ``tsrnn.onnx.to_onnx``)."""
    check_expressible(f)
    g = GraphBuilder("tsrnn_RNNForecaster")
    layout, h = f._frame_layout, f.horizon
    columns = window_columns(f)
    window = g.add_input(
        "window", FLOAT, ["batch", f.window_, len(columns)],
        f"The last window_={f.window_} rows up to each forecast origin, raw values, "
        f"columns {columns}.",
    )
    future = None
    if layout.known:
        future = g.add_input(
            "future", FLOAT, ["batch", h, len(layout.known)],
            f"Known-future values for the horizon={h} steps after the origin, raw, "
            f"columns {layout.known}.",
        )
    timestamps = None
    calendar = f._encoder.calendar
    if calendar is not None:
        timestamps = g.add_input(
            "timestamps", TensorProto.INT64, ["batch", f.window_ + h],
            f"Wall-clock time of the window's {f.window_} rows and of the horizon={h} "
            "steps after the origin, in whole seconds since 1970-01-01 (the index's "
            "own time zone for an aware index: index.tz_localize(None).as_unit('s').asi8); the "
            f"calendar columns {calendar.columns} are computed from it.",
        )
    lagged = None
    if f._encoder.lags:
        lagged = g.add_input(
            "lagged", FLOAT, ["batch", f.window_ + h, len(f._encoder.lags) * len(layout.targets)],
            f"The targets {layout.targets} season_lags={list(f._encoder.lags)} steps before "
            f"each of the window's {f.window_} rows and the horizon={h} steps after the "
            "origin, raw, lag by lag (each lag's targets in the order of target_); NaN "
            "where unknown.",
        )
    series = None
    if f._encoder.series_stats:
        series = g.add_input(
            "series", TensorProto.INT64, ["batch"],
            f"Position of each row's series in series_ids_ (0 .. {len(f.series_ids_) - 1}): "
            "its window is standardised, and its forecast unscaled, with that "
            "series' statistics (series_scales_).",
        )
    stats = series_statistics(g, f, series)
    A = model_inputs(g, f, window, future, timestamps, lagged, columns, stats)
    base = baseline(g, f, A)
    Z = g.network(f, network_inputs(g, f, A))
    Z = add_corrections(g, f, Z, base)
    Z = sort_quantiles(g, f, Z)
    Z = unscale(g, f, Z, stats)
    Z = calibrate(g, f, Z)
    n_t = len(layout.targets)
    shape = ["batch", h, n_t]
    if f.quantiles_ is None:
        Z = g.op("Squeeze", [Z, g.ints([3], "axes")], "point_forecast")
    else:
        shape.append(len(f.quantiles_))
    g.add_output(
        g.cast(Z, FLOAT, "forecast_f32"), "forecast", FLOAT, shape,
        f"Forecasts of {layout.targets} for the horizon={h} steps after the origin"
        + ("" if f.quantiles_ is None else f", quantiles {f.quantiles_.tolist()}"),
    )
    meta = {
        "estimator": "RNNForecaster",
        "window_columns": json.dumps(columns),
        "future_columns": json.dumps(layout.known),
        "calendar_columns": json.dumps([] if calendar is None else calendar.columns),
        "season_lags": json.dumps(list(f._encoder.lags)),
        "targets": json.dumps(layout.targets),
        "quantiles": json.dumps(None if f.quantiles_ is None else f.quantiles_.tolist()),
        "window": f.window_,
        "horizon": h,
        "freq": f.freq_,
        "cell": f._cell,
        "baseline": type(f._baseline).__name__,
    }
    return g.model("tsrnn RNNForecaster: predict() from one window per batch row.", meta)


def check_expressible(f):
    """Raise a ValueError naming what the graph cannot do like ``predict``."""
    missing = f._frame_layout.missing
    if missing != "raise":
        raise ValueError(
            f"to_onnx cannot export a forecaster fitted with missing={missing!r}: "
            "predict fills gaps from the whole history before the window, which a "
            "graph fed one window cannot do. Refit with missing='raise' (and fill "
            "gaps before fitting and before each forecast)."
        )
    if not isinstance(f._baseline, (LagBaseline, LinearBaseline)):
        raise ValueError(
            f"to_onnx cannot export the baseline {type(f._baseline).__name__} "
            "of this forecaster."
        )


def window_columns(f):
    """Columns of the ``"window"`` input: the model's, in ``feature_names_in_`` order."""
    model_columns = f._frame_layout.columns
    names = getattr(f, "feature_names_in_", None)
    if names is None:  # non-string column names: the model's own order
        return list(model_columns)
    return [c for c in names.tolist() if c in set(model_columns)]


# ----------------------------------------------------------------------
# 1. Scaled model inputs (Encoder.encode, ForecastWindows._gather)
# ----------------------------------------------------------------------
def series_statistics(g, f, series):
    """(mean, scale) of the model columns: constants (n_cols,), or (B, 1, n_cols) per row.

    Per row when the forecaster is scaled per series: gathered by the
    ``series`` input from tables in the order of ``series_ids_``.
    """
    if series is None:
        scaler = f.scaler_
        return g.const(scaler.mean_, "mean"), g.const(scaler.scale_, "scale")
    stats = [f._encoder.stats(key) for key in f.series_ids_]
    out = []
    for i, name in enumerate(("mean", "scale")):
        table = g.const(np.array([s[i] for s in stats]), f"series_{name}_table")
        rows = g.op("Gather", [table, series], f"series_{name}", axis=0)
        out.append(g.op("Unsqueeze", [rows, g.ints([1], "axes")], f"series_{name}_b1c"))
    return tuple(out)


def model_inputs(g, f, window, future, timestamps, lagged, columns, stats):
    """(B, length, n_inputs) in the model's dtype, as ``_gather`` returns them."""
    layout = f._frame_layout
    n_past, n_cols, w = layout.n_past, len(layout.columns), f.window_
    x = g.cast(window, DOUBLE, "window_f64")
    order = [columns.index(c) for c in layout.columns]
    if order != list(range(n_cols)):
        x = g.op("Gather", [x, g.ints(order, "model_column_order")], "model_columns", axis=2)
    mean, scale = stats
    x = g.op("Div", [g.op("Sub", [x, mean]), scale], "scaled")
    # Calendar and seasonal lag columns, (B, w + h, n): the window's rows,
    # then the future rows'.
    extras = []
    if timestamps is not None:
        extras.append(calendar_columns(g, f._encoder.calendar, timestamps))
    if lagged is not None:
        extras.append(lag_columns(g, f, lagged, stats))
    calendar = None
    if extras:
        calendar = extras[0] if len(extras) == 1 else g.op("Concat", extras, "extras", axis=2)
        past = _slice(g, calendar, [0], [w], [1], "window_extras")
        x = g.op("Concat", [x, past], "scaled_and_extras", axis=2)
    if f._encoder.future_rows:
        # Window rows get the future flag 0; the horizon rows after them hold
        # zeros (the training mean) in the target and past columns, the scaled
        # known values, the calendar of their timestamps, and the flag 1.
        x = g.op("Pad", [x, g.ints([0, 0, 0, 0, 0, 1], "pads")], "flag_0")
        parts = []
        if future is not None:
            u = g.cast(future, DOUBLE, "future_f64")
            known_mean, known_scale = (
                _slice(g, v, [n_past], [n_cols], [-1], f"known_{name}")
                for v, name in zip(stats, ("mean", "scale"))
            )
            parts.append(g.op("Div", [g.op("Sub", [u, known_mean]), known_scale],
                              "future_scaled"))
        if calendar is not None:
            parts.append(_slice(g, calendar, [w], [np.iinfo(np.int64).max], [1],
                                "future_extras"))
        u = parts[0] if len(parts) == 1 else g.op("Concat", parts, "future_values", axis=2)
        front = n_past if future is not None else n_cols
        u = g.op("Pad", [u, g.ints([0, 0, front, 0, 0, 1], "pads")], "future_padded")
        flag = np.zeros(f._encoder.n_inputs)
        flag[-1] = 1
        u = g.op("Add", [u, g.const(flag, "flag_1")], "future_rows")
        x = g.op("Concat", [x, u], "window_and_future", axis=1)
    return g.cast(x, _ONNX_TYPE[f._flat.dtype], "model_inputs")


def lag_columns(g, f, lagged, stats):
    """(B, T, n_lags * n_t) float64: the lagged targets scaled, NaN as 0 (``Encoder.lag_columns``)."""
    n_t, n_lags = len(f._frame_layout.targets), len(f._encoder.lags)
    # The targets' statistics, once per lag: (n_t * n_lags,) or (B, 1, n_t * n_lags).
    repeats = [n_lags] if not f._encoder.series_stats else [1, 1, n_lags]
    mean, scale = (
        g.op("Tile", [_slice(g, v, [0], [n_t], [-1], f"lag_target_{name}"),
                      g.ints(repeats, "lag_repeats")], f"lag_{name}")
        for v, name in zip(stats, ("mean", "scale"))
    )
    x = g.cast(lagged, DOUBLE, "lagged_f64")
    x = g.op("Div", [g.op("Sub", [x, mean]), scale], "lagged_scaled")
    zero = g.const(np.float64(0.0), "zero")
    return g.op("Where", [g.op("IsNaN", [x], "lagged_nan"), zero, x], "lag_columns")


def calendar_columns(g, calendar, timestamps):
    """(B, T, 2 * n_cycles) float64: sin and cos of each cycle's phase (``Calendar``).

    ``((s + shift) mod period) / period * 2 pi`` in int64 then float64, the
    operations of ``Calendar.encode_seconds`` in its order (ONNX's integer
    Mod takes the divisor's sign, as numpy's %).
    """
    columns = []
    for name in calendar.cycles:
        period, shift = CYCLES[name]
        s = g.op("Add", [timestamps, g.const(np.int64(shift), f"{name}_shift")], f"{name}_s")
        m = g.op("Mod", [s, g.const(np.int64(period), f"{name}_period")], f"{name}_mod")
        phase = g.op("Div", [g.cast(m, DOUBLE, f"{name}_mod_f64"),
                             g.const(np.float64(period), f"{name}_period_f64")],
                     f"{name}_phase")
        angle = g.op("Mul", [phase, g.const(np.float64(2 * np.pi), "two_pi")], f"{name}_angle")
        for fn in ("Sin", "Cos"):
            value = g.op(fn, [angle], f"{name}_{fn.lower()}")
            columns.append(g.op("Unsqueeze", [value, g.ints([2], "axes")],
                                f"{name}_{fn.lower()}_col"))
    return columns[0] if len(columns) == 1 else g.op("Concat", columns, "calendar", axis=2)


# ----------------------------------------------------------------------
# 2. The baseline forecast (_baselines.py)
# ----------------------------------------------------------------------
def _slice(g, x, starts, ends, axes, hint):
    return g.op("Slice", [x, g.ints(starts, "starts"), g.ints(ends, "ends"),
                          g.ints(axes, "axes")], hint)


def baseline(g, f, A):
    """Baseline forecasts (B, horizon, n_targets), float64, in scaled units."""
    b, n_t = f._baseline, len(f._frame_layout.targets)
    X = g.cast(A, DOUBLE, "baseline_inputs")  # baselines compute in float64
    w = b.window
    past = _slice(g, X, [0, 0], [w, n_t], [1, 2], "past_targets")  # (B, w, n_t)
    if isinstance(b, LagBaseline):
        return _lag_values(g, past, b, n_t, "lag_baseline")
    # LinearBaseline._design: window changes from the origin [, the origin]
    # [, every other input column of the whole window], then F @ coef_,
    # added to the anchor (persistence or seasonal naive).
    origin = _slice(g, past, [w - 1], [w], [1], "origin")  # (B, 1, n_t)
    parts = [g.op("Reshape", [g.op("Sub", [past, origin]), g.ints([0, -1])], "changes")]
    if b.level:
        parts.append(g.op("Reshape", [origin, g.ints([0, -1])], "level"))
    if b.covariates:
        cov = _slice(g, X, [n_t], [np.iinfo(np.int64).max], [2], "covariate_columns")
        parts.append(g.op("Reshape", [cov, g.ints([0, -1])], "covariates"))
    F = parts[0] if len(parts) == 1 else g.op("Concat", parts, "design", axis=1)
    values = g.op("Add", [g.op("MatMul", [F, g.const(b.coef_, "linear_coef")]),
                          g.const(b.intercept_, "linear_intercept")], "linear_values")
    values = g.op("Reshape", [values, g.ints([0, b.horizon, n_t])], "linear_changes")
    anchor = _lag_values(g, past, b.anchor, n_t, "linear_anchor")
    return g.op("Add", [anchor, values], "linear_baseline")


def _lag_values(g, past, lag_baseline, n_t, hint):
    """X[:, w - 1 - lags[k, j], j] for every (step k, target j), one Gather."""
    flat = g.op("Reshape", [past, g.ints([0, -1])], f"{hint}_flat")
    rows = lag_baseline.window - 1 - lag_baseline.lags
    idx = rows * n_t + np.arange(n_t)
    return g.op("Gather", [flat, g.ints(idx, f"{hint}_index")], hint, axis=1)


# ----------------------------------------------------------------------
# 3. The network's inputs
# ----------------------------------------------------------------------
def network_inputs(g, f, A):
    """What the network reads of the scaled window, in its float32 (``_network_inputs.py``).

    With ``network_inputs="relative"`` the targets of the window's rows
    become changes from the origin's (in the model's dtype, as ``predict``
    subtracts them); the covariates, and the known-future rows after the
    window, are left as they are.
    """
    net = f._network_inputs
    if not net.identity:
        w, n_t, end = net.window, net.n_targets, np.iinfo(np.int64).max
        past = _slice(g, A, [0, 0], [w, n_t], [1, 2], "window_targets")  # (B, w, n_t)
        origin = _slice(g, past, [w - 1], [w], [1], "origin_targets")  # (B, 1, n_t)
        rows = g.op("Sub", [past, origin], "target_changes")
        # Covariates, calendar or lag columns, or the future flag.
        if f._encoder.n_inputs > n_t:
            others = _slice(g, A, [0, n_t], [w, end], [1, 2], "window_covariates")
            rows = g.op("Concat", [rows, others], "relative_window", axis=2)
        if f._encoder.future_rows:
            after = _slice(g, A, [w], [end], [1], "future_rows")
            rows = g.op("Concat", [rows, after], "relative_inputs", axis=1)
        A = rows
    return A if f._flat.dtype == np.float32 else g.cast(A, FLOAT, "network_inputs")


# ----------------------------------------------------------------------
# 4-6. Corrections, sorting, units (RNNForecaster._forecast)
# ----------------------------------------------------------------------
def add_corrections(g, f, Z, base):
    """Network outputs (B, n_outputs) + baseline: (B, horizon, n_targets, n_q), float64.

    With ``calibration="split"`` the network has one output per (step,
    target), the median, and every quantile starts from it.
    """
    n_t = len(f._frame_layout.targets)
    n_heads = len(f._head_levels)
    Z = g.op("Reshape", [g.cast(Z, DOUBLE, "raw_f64"), g.ints([0, f.horizon, n_t, n_heads])],
             "corrections")
    base = g.op("Unsqueeze", [base, g.ints([3], "axes")], "baseline_per_quantile")
    Z = g.op("Add", [Z, base], "scaled_forecast")
    if f.quantiles_ is not None and n_heads != len(f.quantiles_):
        Z = g.op("Tile", [Z, g.ints([1, 1, 1, len(f.quantiles_)], "repeats")],
                 "median_per_quantile")
    return Z


def sort_quantiles(g, f, Z):
    """Each (step, target)'s quantiles in increasing order (monotone rearrangement)."""
    if f.quantiles_ is None or len(f.quantiles_) == 1:
        return Z
    values, _ = g.op("TopK", [Z, g.ints([len(f.quantiles_)], "k")], "sorted", n_outputs=2,
                     axis=-1, largest=0, sorted=1)
    return values


def calibrate(g, f, Z):
    """The band's offsets learned on held-out time (``_calibration.py``), then sorted."""
    cal = getattr(f, "_calibration", None)
    if cal is None:
        return Z
    offsets = g.const(cal.offsets[None], "calibration_offsets")
    if cal.relative.any():
        # BandCalibration.scale: a relative target's offsets are fractions
        # of its level, max(mean over the horizon of |median|, floor); an
        # additive one's are multiplied by 1.
        median = g.op("Gather", [Z, g.ints([cal.middle], "median_index")], "median", axis=3)
        mean = g.op("ReduceMean", [g.op("Abs", [median], "abs_median")], "mean_abs_median",
                    axes=[1], keepdims=1)
        level = g.op("Max", [mean, g.const(cal.floor[:, None], "level_floor", np.float64)],
                     "level")
        relative = cal.relative[:, None].astype(np.float64)
        scale = g.op("Add", [g.op("Mul", [level, g.const(relative, "relative")], "scaled_level"),
                             g.const(1.0 - relative, "additive")], "offset_scale")
        offsets = g.op("Mul", [offsets, scale], "scaled_offsets")
    Z = g.op("Add", [Z, offsets], "calibrated")
    return sort_quantiles(g, f, Z)


def unscale(g, f, Z, stats):
    """Scaled forecasts back to the targets' units (``Encoder.unscale_targets``)."""
    n_t = len(f._frame_layout.targets)
    # (n_t, 1) constants, or (B, 1, n_t, 1) per row: against Z (B, h, n_t, n_q).
    mean, scale = (
        g.op("Unsqueeze", [_slice(g, v, [0], [n_t], [-1], f"target_{name}"),
                           g.ints([-1], "axes")], f"target_{name}_q")
        for v, name in zip(stats, ("mean", "scale"))
    )
    Z = g.op("Mul", [Z, scale])
    return g.op("Add", [Z, mean], "forecast_f64")
