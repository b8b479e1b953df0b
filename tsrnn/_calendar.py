"""Calendar inputs: cyclic encodings of the time of day, day of week and day of year.

Design
------
Many series follow the clock and the calendar: load peaks every evening,
traffic drops every weekend, temperature follows the year. A recurrent
network can learn a cycle from its window only when the window spans it; a
week of half-hours is 336 rows, a year of days 365. Told the phase of each
cycle at every row, it needs no such window. These phases are known for the
future too, from the timestamps alone, so they are known-future inputs: the
forecaster appends them to the inputs of every row, the ``horizon`` rows
after the origin included (``Encoder`` in ``_windows.py``).

Each cycle is the pair ``sin(2 pi phase), cos(2 pi phase)``: the two values
tell every phase apart and the end of a cycle meets its start (23:30 is next
to 00:00), which an hour number 0..23 would not (darts'
``add_encoders={"cyclic": ...}`` and neuralforecast's ``futr_exog_list``
with sin/cos features do the same; here the set is chosen from the
frequency instead of by the user).

Phases are computed from the wall-clock time (a time-zone-aware index is
read in its own zone: people keep the local clock), as whole seconds since
1970-01-01, so that a graph (``_onnx_forecaster.py``) computes them from an
int64 input with the same integer arithmetic:

* day: ``(s mod 86400) / 86400``, 0 at midnight;
* week: ``((s + 3 * 86400) mod 604800) / 604800``, 0 at Monday midnight
  (1970-01-01 was a Thursday);
* year: ``(s mod 31556952) / 31556952``, the mean Gregorian year of
  365.2425 days, 0 at 1970-01-01. It is a smooth annual cycle that stays
  within about a day of the calendar's day of year (leap days are spread over
  the years rather than inserted), and needs no calendar arithmetic.

Which cycles. A cycle is encoded when the step samples it at least twice
(hourly data have a day, monthly data do not) and at most ``MAX_STEPS``
times. Within windows of a few hundred rows, the phase of a longer cycle (a
year of hours, a day of 500 ms steps) barely moves: it acts as a trend, and
the network fits the held-out block's part of the cycle, which a forecast
made later in the year does not meet. On the suite's hourly weather data (one
year), the year's phase made the served forecast 0.868x seasonal naive
against 0.697x without calendar (seed 0; benchmarks/README.md). Hourly and
half-hourly data thus get the day and the week; daily data the week and the
year; monthly and quarterly the year; yearly data none.
"""

import numpy as np
import pandas as pd

# Period of each cycle in seconds, and the shift that puts its phase 0 where
# the calendar has it (Monday for the week).
CYCLES = {
    "day": (86_400, 0),
    "week": (7 * 86_400, 3 * 86_400),
    "year": (31_556_952, 0),
}
# A cycle is encoded when it spans at most this many steps (see Design).
MAX_STEPS = 1_000
_REFERENCE = pd.Timestamp("2001-01-01")


def _step_seconds(offset):
    """Length of one step in seconds (calendar steps: the mean of 12 steps).

    An anchored step is measured from a date on its anchor: from any other
    date the first step only reaches the anchor (``W-SAT`` from a Monday
    is 5 days, which made a year of weekly data 73 steps instead of 52).
    """
    if isinstance(offset, pd.offsets.Tick):
        return pd.Timedelta(offset).total_seconds()
    start = offset.rollforward(_REFERENCE)
    return ((start + 12 * offset) - start).total_seconds() / 12


def cycles_for(offset):
    """Names of the cycles a time step samples usefully (see Design)."""
    step = _step_seconds(offset)
    return [name for name, (period, _) in CYCLES.items()
            if step > 0 and 2 * step <= period <= MAX_STEPS * step]


def wall_seconds(index):
    """Whole seconds since 1970-01-01 of the wall-clock time of a DatetimeIndex (int64)."""
    if index.tz is not None:
        index = index.tz_localize(None)
    return index.as_unit("ns").asi8 // 1_000_000_000


class Calendar:
    """The calendar columns of a forecaster.

    Parameters
    ----------
    cycles : sequence of str
        Names among ``CYCLES``, in that order.
    """

    def __init__(self, cycles):
        self.cycles = tuple(cycles)

    @classmethod
    def from_parameter(cls, calendar, offset):
        """The Calendar of the ``calendar`` parameter for a time step, or None.

        "auto": the cycles the step samples (``cycles_for``); a list names
        them; None or an empty list (or "auto" at a step with none): None.
        """
        if calendar is None:
            return None
        if isinstance(calendar, str):
            if calendar != "auto":
                raise ValueError(
                    f"calendar must be 'auto', None or a list of {list(CYCLES)}, got "
                    f"{calendar!r}."
                )
            names = cycles_for(offset)
        else:
            names = list(calendar)
            unknown = [n for n in names if n not in CYCLES]
            if unknown:
                raise ValueError(
                    f"calendar names unknown cycle(s) {unknown}; choose among "
                    f"{list(CYCLES)}."
                )
            if len(set(names)) < len(names):
                raise ValueError(f"calendar names a cycle twice: {names}.")
            names = [n for n in CYCLES if n in names]
        return cls(names) if names else None

    @property
    def columns(self):
        """Names of the columns, two per cycle: ``calendar_<cycle>_sin`` and ``_cos``."""
        return [f"calendar_{name}_{f}" for name in self.cycles for f in ("sin", "cos")]

    def __len__(self):
        return 2 * len(self.cycles)

    def encode_seconds(self, seconds):
        """Columns (..., 2 * n_cycles) float64 of int64 wall-clock seconds (...)."""
        seconds = np.asarray(seconds, dtype=np.int64)
        out = np.empty(seconds.shape + (len(self),))
        for i, name in enumerate(self.cycles):
            period, shift = CYCLES[name]
            angle = ((seconds + shift) % period).astype(np.float64) / period * (2 * np.pi)
            out[..., 2 * i] = np.sin(angle)
            out[..., 2 * i + 1] = np.cos(angle)
        return out

    def encode(self, index):
        """Columns (len(index), 2 * n_cycles) float64 of a DatetimeIndex."""
        return self.encode_seconds(wall_seconds(index))


def seasons_for(offset):
    """Season lengths in steps of the cycles the step samples, shortest first.

    The cycle's period over the step, rounded (monthly data: a year is 12
    steps). Where the week is a season too, a year is 52 of its weeks, so
    that a lag of a year lands on the same weekday (a lag of 365 days would
    compare a Monday with a Sunday), and steps that skip days keep that:
    business days have 5 to the week and 260 to the year, where their mean
    step (7/5 of a day) would give 273. Hourly data give [24, 168],
    half-hourly [48, 336], daily [7, 364], business days [5, 260].
    """
    step = _step_seconds(offset)
    seasons = {name: int(round(CYCLES[name][0] / step)) for name in cycles_for(offset)}
    if "year" in seasons and "week" in seasons:
        seasons["year"] = 52 * seasons["week"]
    return list(seasons.values())

