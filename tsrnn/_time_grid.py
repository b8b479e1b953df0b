"""Time-grid arithmetic: timestamp units, snapping readings to a grid, steps.

Design
------
What ``FrameLayout`` (``_frames.py``) needs to put a series on the grid of
its time step, written on DatetimeIndexes and integers alone, with no frame
and no series: the unit a grid is kept in (``in_step_unit``), the grid
point nearest each reading (``snap_to_grid``), a median step rounded to a
whole unit (``round_step``) and the advice for jittered clocks
(``jitter_advice``). Messages name the series through ``place`` (``" in
series 'b'"`` or nothing), which the caller makes.
"""

import os
import sys

import numpy as np
import pandas as pd
import sklearn
from pandas.tseries.frequencies import to_offset

from tsrnn.exceptions import InputError


_UNITS = ("s", "ms", "us", "ns")


def in_step_unit(index, offset, place=""):
    """``index`` in its own unit, or in the coarsest finer unit that holds ``offset``.

    Timestamps keep the unit they came in (pandas 3 reads strings in
    microseconds, parquet often holds seconds), so that forecasts share the
    unit of the user's own frames. Only a fixed step that the unit cannot
    hold (a 500 ms grid on an index in seconds) moves the index to a finer
    unit.
    """
    if not isinstance(offset, pd.offsets.Tick) or index.unit not in _UNITS:
        return index
    step = pd.Timedelta(offset)
    for unit in _UNITS[_UNITS.index(index.unit):]:
        if step % pd.Timedelta(1, unit) == pd.Timedelta(0):
            break
    if unit == index.unit:
        return index
    try:
        return index.as_unit(unit)
    except pd.errors.OutOfBoundsDatetime:
        raise InputError(
            f"The time index{place} runs from {index.min()} to {index.max()}, "
            f"beyond what timestamps in {unit!r} hold, the unit that a step of "
            f"{offset.freqstr} needs."
        ) from None


def as_integer(stamp):
    """A Timestamp or Timedelta as an integer in its own unit (``Timestamp.value``
    is always in nanoseconds, whatever the unit)."""
    return int(stamp.asm8.view("i8"))


def from_integers(values, dtype, name=None):
    """A DatetimeIndex of ``dtype`` from int64 ``values`` in its unit.

    The values count from the epoch in UTC, as a time-zone-aware index's
    ``asi8`` does, so that one array sum builds many series' timestamps.
    """
    tz = getattr(dtype, "tz", None)
    unit = dtype.unit if tz is not None else np.datetime_data(dtype)[0]
    stamps = pd.DatetimeIndex(np.asarray(values, np.int64).view(f"M8[{unit}]"), name=name)
    return stamps if tz is None else stamps.tz_localize("UTC").tz_convert(tz)



def snap_to_grid(index, offset, anchor=None):
    """(grid, positions): the grid of ``offset`` the readings of ``index`` snap to.

    ``positions[i]`` is the grid point nearest to ``index[i]`` (rows in any
    order); ``grid`` runs from the first to the last point any reading took.
    A reading exactly halfway between two points goes to the earlier one, as
    a resample bin labelled on its left would take it.

    Where the grid lies: through ``anchor`` when it is given (``update()``
    passes the last kept timestamp, so the kept rows never move). Else, when
    every reading sits a whole number of steps after the earliest one
    (regular data, perhaps with gaps or duplicates), the grid passes through
    the readings, so such data keep their timestamps exactly. Otherwise it
    is the grid ``resample`` would use: whole steps from midnight of the
    first day (or, for calendar offsets such as month starts, from the
    period start before it). Distances are
    taken in absolute time, on the integer nanoseconds: a tz-aware index
    across a DST change is no special case, and wall-clock rounding
    (``DatetimeIndex.round``), ambiguous in the repeated autumn hour, is
    never needed.
    """
    stamps = index.as_unit("ns")
    first, last = stamps.min(), stamps.max()
    # A day is a calendar day (local midnight across DST), as pandas 3 has
    # it; pandas 2 counts Day among the fixed Ticks.
    if isinstance(offset, pd.offsets.Tick) and not isinstance(offset, pd.offsets.Day):
        grid, positions = _snap_fixed(stamps, first, pd.Timedelta(offset).value, offset, anchor)
    else:
        grid, positions = _snap_calendar(stamps, first, last, offset, anchor)
    # Keep the index's unit where the grid fits in it (pandas 3 reads
    # timestamps in us or s); a finer grid stays in ns.
    grid = grid.as_unit("ns")
    if index.unit != "ns":
        per_unit = pd.Timedelta(1, unit=index.unit).value
        if not (grid.asi8 % per_unit).any():
            grid = grid.as_unit(index.unit)
    return grid, positions


def _snap_fixed(stamps, first, step, offset, anchor):
    """snap_to_grid for a fixed step (h, min, s: a Tick) in integer nanoseconds.

    The same as the calendar version below, without building and searching
    the grid: every frame of a forecaster with ``freq=`` passes here, at
    every predict and update.
    """
    t = stamps.asi8
    if anchor is not None:
        origin = anchor.as_unit("ns").value
    elif not ((t - first.value) % step).any():
        origin = first.value
    else:
        origin = first.normalize().value
    # Nearest point, ties to the earlier one: ceil((x - step/2) / step) in
    # integers. x is measured from the data's own origin, so 2x stays in
    # int64 for any series shorter than 146 years.
    x = t - origin
    k = -((step - 2 * x) // (2 * step))
    start = k.min()
    grid = pd.date_range(first + pd.Timedelta(origin + start * step - first.value, unit="ns"),
                         periods=k.max() - start + 1, freq=offset)
    return grid, k - start


def _snap_calendar(stamps, first, last, offset, anchor):
    """snap_to_grid for calendar offsets (day, week, month): search the grid."""
    through = pd.date_range(first, last, freq=offset)
    if anchor is not None:
        anchor = anchor.as_unit("ns")
        # Back from the anchor to before the first reading, then on past the last.
        before = len(pd.date_range(first - offset, anchor, freq=offset)) + 2
        grid = pd.date_range(end=anchor, periods=before, freq=offset).append(
            pd.date_range(anchor, max(last, anchor) + offset, freq=offset)[1:])
    elif stamps.isin(through).all():
        grid = through
    else:
        # The period start before the first reading (rollback), and the
        # point after the last bounds the search; date_range keeps it.
        grid = pd.date_range(offset.rollback(first.normalize()), last + offset, freq=offset)
    g, t = grid.as_unit("ns").asi8, stamps.asi8
    hi = np.searchsorted(g, t)  # g[hi - 1] < t <= g[hi]
    lo = np.maximum(hi - 1, 0)
    hi = np.minimum(hi, len(g) - 1)
    positions = np.where(t - g[lo] <= g[hi] - t, lo, hi)
    start = positions.min()
    return grid[start:positions.max() + 1], positions - start


def round_step(step):
    """A median step rounded to a sensible unit: 3603 s -> 1 h, 15 min 2 s -> 15 min.

    The coarsest of day, hour, minute, second, ms, us that moves the step by
    at most 5% of itself, so jitter is rounded away but a real step of
    90 min stays 90 min (rounding it to hours would change it by a third).
    """
    for unit in ("D", "h", "min", "s", "ms", "us"):
        rounded = step.round(unit)
        if rounded > pd.Timedelta(0) and abs(rounded - step) <= step * 0.05:
            if unit == "D":
                return pd.offsets.Day(rounded.days)
            return to_offset(rounded)
    return to_offset(step)


def _duration(offset_or_delta):
    """'1h', '15min', '20s': a step or a span as a pandas alias with its count."""
    text = to_offset(offset_or_delta).freqstr
    return text if text[0].isdigit() else f"1{text}"


def span(nanoseconds):
    """A span for messages: '20s', '3603s', '1500ms' rather than '0 days 00:00:20'."""
    span = pd.Timedelta(int(nanoseconds), unit="ns")
    if span >= pd.Timedelta("1ms"):
        span = span.round("ms")
    return _duration(span) if span > pd.Timedelta(0) else "0s"


def counted(n, noun):
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def distances(index, grid, positions):
    """How far (ns) each reading of ``index`` is from the grid point it snapped to."""
    return np.abs(index.as_unit("ns").asi8 - grid.as_unit("ns").asi8[positions])


# Packages whose frames a warning skips, so that it points at the user's
# call (fit, predict, update) however deep the snapping ran.
_INTERNAL_DIRS = tuple(os.path.dirname(path) + os.sep for path in (__file__, sklearn.__file__))


def user_stacklevel():
    """The stacklevel of the first frame outside tsrnn and scikit-learn."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(_INTERNAL_DIRS):
        frame, level = frame.f_back, level + 1
    return level

def jitter_advice(index, place, expected):
    """The message for readings off a regular grid by clock jitter, or None.

    The step is ``expected`` or the median step between readings rounded
    to a sensible unit (``round_step``). The readings are jittered when
    snapping them to that step moves some of them; an index that is
    regular but for gaps or duplicates moves none and gets the plainer
    messages of ``_raise_irregular`` and ``_check_order``.
    """
    if len(index) < 3:
        return None
    steps = np.diff(np.sort(index.as_unit("ns").asi8))
    steps = steps[steps > 0]
    if not steps.size:
        return None
    inferred = round_step(pd.Timedelta(int(np.median(steps)), unit="ns"))
    if expected is not None and inferred != expected:
        return None  # another step altogether, not the fitted one with jitter
    offset = expected or inferred
    grid, positions = snap_to_grid(index, offset)
    shift = distances(index, grid, positions)
    # Jitter is a small part of the step; readings a quarter step or more
    # off the grid are irregular, and "jitter" would misdescribe them.
    if not shift.any() or len(grid) < 2 or shift.max() >= np.diff(grid.as_unit("ns").asi8).min() / 4:
        return None
    counts = np.bincount(positions, minlength=len(grid))
    alias = offset.freqstr
    median = span(np.median(steps))
    found = "" if expected is not None or median == _duration(offset) else (
        f" (the median step, {median}, rounded)"
    )
    extra = []
    if (counts >= 2).any():
        extra.append(f"{counted(int((counts >= 2).sum()), 'grid point')} would average "
                     "2 or more readings")
    if (counts == 0).any():
        extra.append(f"{counted(int((counts == 0).sum()), 'grid point')} would have "
                     "no reading (missing values, handled by `missing`)")
    extra = f"; {' and '.join(extra)}" if extra else ""
    return (
        f"The index{place} is not regular: readings arrive every "
        f"{_duration(offset)}{found} with up to "
        f"{span(shift.max())} of jitter. Pass "
        f"freq='{alias}' to snap each reading to the nearest {_duration(offset)} "
        f"grid point{extra}."
    )
