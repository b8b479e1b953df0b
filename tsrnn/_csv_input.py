"""Reading the command line's CSV into a frame the forecaster can check.

Only what the file and the options decide is checked here: the file exists
and parses, the time column holds timestamps, the chosen columns hold
numbers.

Time columns come as data loggers and SCADA systems write them, and each is
parsed with what pandas provides (``to_datetime`` with ``utc=True`` or
``unit=``):

* text without UTC offsets: a naive index, or localised to ``--tz``;
* ISO 8601 text with UTC offsets: one tz-aware index. One offset throughout
  keeps it; offsets that change (at a DST change) are read as UTC instants,
  so no hour is lost or doubled, or in the ``--tz`` zone when given. A file
  that gives an offset on some rows but not others is refused: its other
  rows would have to be guessed;
* numbers: Unix time, in ``--time-unit`` or, without it, in seconds or
  milliseconds when the values fall in the years 1980-2100 in that unit.

:class:`TimeFormat` remembers which it was, so the forecast CSV writes its
timestamps the same way (ISO 8601 with offsets, or Unix time in the same
unit). Every message names the file, and the row and column when there is
one. Whether the data can be forecast (order, gaps, length, the target) is
``RNNForecaster.validate_frame``'s check.
"""
import os
import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tsrnn.exceptions import InputError


class UsageError(InputError):
    """A problem with the CSV or the options: reported in one line, exit 2.

    Examples
    --------
    :func:`tsrnn.cli.main` reports it on stderr and returns 2:

    >>> from tsrnn.cli import main
    >>> main(["forecast", "no-such-file.csv"])
    2
    """


def _shown(value):
    """A cell value as the user would recognise it in an error message."""
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _read_csv(path):
    """Read ``path`` into a DataFrame of strings and numbers, or raise UsageError."""
    if not os.path.exists(path):
        raise UsageError(f"no such file: {path}")
    if os.path.isdir(path):
        raise UsageError(f"{path} is a directory, not a CSV file")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise UsageError(f"{path} is empty")
    except pd.errors.ParserError as exc:
        raise UsageError(f"cannot parse {path} as CSV: {_first_line(exc)}")
    except UnicodeDecodeError:
        raise UsageError(f"cannot read {path}: it is not UTF-8 text")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}")
    if frame.shape[0] == 0:
        raise UsageError(f"{path} is empty: it has a header but no data rows")
    return frame


def _first_line(exc):
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


@dataclass(frozen=True)
class TimeFormat:
    """How the input wrote its timestamps, so that the forecast writes them alike.

    ``epoch_unit`` is the unit of Unix times ("s", "ms", "us", "ns") or
    None for text. Text with UTC offsets (or placed in a zone by ``--tz``)
    gives a tz-aware index, written as ISO 8601 with its offset
    (``2024-03-31T03:00:00+02:00``); naive text is written as pandas writes
    it.
    """

    epoch_unit: object = None

    def column(self, index):
        """The timestamps of ``index`` as the forecast CSV writes them."""
        if self.epoch_unit is not None:
            since = (index - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(1, unit=self.epoch_unit)
            values = since.to_numpy()
            whole = np.round(values)
            return pd.Index(whole.astype(np.int64) if (whole == values).all() else values)
        if index.tz is not None:
            return pd.Index([stamp.isoformat() for stamp in index])
        return index


# Unix times are recognised without --time-unit when every value falls in
# these years in seconds or in milliseconds. The ranges in the four units do
# not overlap (1980 in ms is 3.2e11, 2100 in s is 4.1e9), so the guess is
# never ambiguous; microseconds and nanoseconds are rare enough in sensor
# exports to need --time-unit.
_EPOCH_YEARS = (pd.Timestamp("1980-01-01", tz="UTC"), pd.Timestamp("2100-01-01", tz="UTC"))
_GUESSED_UNITS = ("s", "ms")

# A UTC offset (or Z) after a clock time: "T01:00:00+01:00", " 01:00Z",
# "01:00:00.5 -0500". A date alone ("2024-03-31") must not count, so a time
# with a colon has to come first.
_OFFSET = re.compile(r"\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$",
                     re.IGNORECASE)


def _epoch_seconds(unit):
    return pd.Timedelta(1, unit=unit).total_seconds()


def _refuse_missing_stamps(values, name, path):
    """A UsageError naming the first row of ``values`` (a column) without a timestamp."""
    missing = np.flatnonzero(values.isna().to_numpy())
    if missing.size:
        raise UsageError(f"row {missing[0] + 1} of {path} has no timestamp in column {name!r}")


def _parse_epoch(column, name, path, unit):
    """Unix times in ``unit`` (or guessed) as a UTC DatetimeIndex."""
    if pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column):
        numbers = pd.to_numeric(column, errors="coerce")
        bad = np.flatnonzero((numbers.isna() & column.notna()).to_numpy())
        where = f" (row {bad[0] + 1}: {_shown(column.iloc[bad[0]])})" if bad.size else ""
        raise UsageError(
            f"--time-unit {unit} reads Unix times, but time column {name!r} in {path} "
            f"does not hold numbers{where}; drop --time-unit for text timestamps"
        )
    _refuse_missing_stamps(column, name, path)
    low, high = column.min(), column.max()
    if unit is None:
        for guess in _GUESSED_UNITS:
            scale = _epoch_seconds(guess)
            if all(_EPOCH_YEARS[0].timestamp() <= v * scale < _EPOCH_YEARS[1].timestamp()
                   for v in (low, high)):
                unit = guess
                break
        else:
            raise UsageError(
                f"time column {name!r} in {path} holds numbers from {low} to {high}, "
                "which are not Unix times in the years 1980-2100 in seconds or "
                "milliseconds; if they are Unix times, give their unit with "
                "--time-unit s|ms|us|ns, otherwise choose the time column with "
                "--time-col"
            )
    try:
        stamps = pd.to_datetime(column, unit=unit, utc=True)
    except (ValueError, OverflowError):  # OutOfBoundsDatetime is a ValueError
        raise UsageError(
            f"time column {name!r} in {path} holds numbers from {low} to {high}, "
            f"beyond the dates pandas can hold as Unix times in {unit}; check "
            "--time-unit"
        )
    return pd.DatetimeIndex(stamps, name=name), TimeFormat(epoch_unit=unit)


def _first_bad_stamp(column, name, path):
    """Name the first value that is not a timestamp, or that breaks ranks.

    A value that parses alone may still disagree with the first one: one has
    a UTC offset and the other not.
    """
    aware = None
    for row, value in enumerate(column, start=1):
        try:
            stamp = pd.Timestamp(value)
            if pd.isna(stamp):
                raise ValueError
        except (ValueError, TypeError, OverflowError):
            raise UsageError(
                f"cannot parse timestamp {_shown(value)} in row {row} of column "
                f"{name!r} in {path}"
            )
        if aware is None:
            aware = (stamp.tz is not None, row, value)
        elif (stamp.tz is not None) != aware[0]:
            pair = [aware[1:], (row, value)]
            raise _mixed_offsets(name, path, *(pair if aware[0] else pair[::-1]))


def _mixed_offsets(name, path, with_offset, without):
    """The UsageError for a column that gives UTC offsets on some rows only.

    ``with_offset`` and ``without`` are (row, value) of one row of each kind.
    """
    return UsageError(
        f"the timestamps in column {name!r} of {path} give a UTC offset on some rows "
        f"but not on others: row {with_offset[0]} ({_shown(with_offset[1])}) has one, "
        f"row {without[0]} ({_shown(without[1])}) has none; write every timestamp "
        "with its offset, or none"
    )


def _parse_text(column, name, path):
    """Text timestamps as a DatetimeIndex: naive, one offset, or UTC."""
    first = column.dropna()
    first = first.iloc[0] if len(first) else None
    try:
        aware = first is not None and pd.Timestamp(first).tz is not None
    except (ValueError, TypeError, OverflowError):
        aware = False  # reported below, with its row
    if aware:
        has_offset = np.logical_or(
            column.astype(str).str.strip().str.contains(_OFFSET).to_numpy(bool),
            column.isna().to_numpy(),  # reported as missing below
        )
        if not has_offset.all():
            values = column.to_numpy()
            yes, no = int(np.argmax(has_offset)), int(np.argmin(has_offset))
            raise _mixed_offsets(name, path, (yes + 1, values[yes]), (no + 1, values[no]))
    # One offset throughout keeps it; offsets that change (DST) become UTC.
    # ISO 8601 first: exports mix "Z" and "+00:00", or drop zero seconds.
    attempts = [{}] if not aware else [
        {"format": "ISO8601"}, {"format": "ISO8601", "utc": True}, {"utc": True}]
    error = None
    for options in attempts:
        try:
            with warnings.catch_warnings():
                # pandas warns when it has to guess a format per element; a
                # failure is reported below, and a success needs no warning.
                warnings.simplefilter("ignore", UserWarning)
                # pandas 2 warns and returns objects for offsets that change,
                # where pandas 3 raises: either way, the next try (UTC) reads them.
                warnings.simplefilter("ignore", FutureWarning)
                stamps = pd.to_datetime(column, **options)
            if stamps.dtype.kind != "M":
                error = error or ValueError("mixed time zones")
                continue
            break
        except (ValueError, TypeError, OverflowError) as exc:
            error = error or exc
    else:
        _first_bad_stamp(column, name, path)
        raise UsageError(
            f"cannot parse the timestamps in column {name!r} of {path}: "
            f"{_first_line(error)}"
        )
    _refuse_missing_stamps(stamps, name, path)
    return pd.DatetimeIndex(stamps, name=name), TimeFormat()


# pandas 3 says that a local time does not exist (or is ambiguous) with a
# ValueError; pandas 2 lets pytz's own exceptions through.
try:
    from pytz.exceptions import InvalidTimeError as _PytzTimeError
except ImportError:  # pandas 3 does not need pytz
    _LOCALIZE_ERRORS = (ValueError, TypeError)
else:
    _LOCALIZE_ERRORS = (ValueError, TypeError, _PytzTimeError)


def _in_zone(index, tz, name, path):
    """``index`` converted to (aware) or placed in (naive) the zone ``tz``."""
    try:
        pd.Timestamp(0, tz=tz)
    except (KeyError, ValueError, TypeError):  # ZoneInfoNotFoundError is a KeyError
        raise UsageError(
            f"--tz {tz}: unknown time zone; give an IANA name such as "
            "Europe/Berlin, America/New_York or UTC"
        )
    if index.tz is not None:
        return index.tz_convert(tz)
    try:
        # "infer" places the repeated autumn hour by the order of the rows.
        return index.tz_localize(tz, ambiguous="infer", nonexistent="raise")
    except _LOCALIZE_ERRORS as exc:
        raise UsageError(
            f"cannot place the timestamps of column {name!r} in {path} in {tz}: "
            f"{_first_line(exc).rstrip('.')}; write them with their UTC offsets "
            "(2024-03-31T03:00:00+02:00), or drop --tz"
        )


def _parse_times(column, name, path, unit=None, tz=None):
    """(DatetimeIndex, TimeFormat) of a time column, naming the first bad value.

    Their order and spacing are the forecaster's to check.
    """
    numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    if unit is not None or numeric:
        index, form = _parse_epoch(column, name, path, unit)
    else:
        index, form = _parse_text(column, name, path)
    if tz is not None:
        index = _in_zone(index, tz, name, path)
    return index, form


def load_frame(path, time_col=None, time_unit=None, tz=None):
    """(frame, TimeFormat): the CSV at ``path`` indexed by its timestamps.

    The time column (``time_col``, default the first column) becomes the
    index, read as ``_parse_times`` says (``time_unit`` for Unix times,
    ``tz`` to convert or place the timestamps in a zone). The other columns
    are left as read; :func:`select_columns` checks them. Empty cells stay
    NaN for the forecaster's ``missing`` handling.
    """
    frame = _read_csv(path)
    if time_col is None:
        time_col = frame.columns[0]
    elif time_col not in frame.columns:
        raise UsageError(
            f"time column {time_col!r} is not in {path}; its columns are "
            f"{', '.join(map(str, frame.columns))}"
        )
    index, form = _parse_times(frame.pop(time_col), time_col, path, time_unit, tz)
    if frame.shape[1] == 0:
        raise UsageError(f"{path} has a time column but no data columns")
    frame.index = index
    return frame, form


def _check_numeric(frame, columns, path):
    for name in columns:
        column = frame[name]
        if pd.api.types.is_numeric_dtype(column):
            continue
        # read_csv leaves a column as text when any cell is not a number.
        numbers = pd.to_numeric(column, errors="coerce")
        bad = np.flatnonzero((numbers.isna() & column.notna()).to_numpy())
        where = f" (row {bad[0] + 1}: {_shown(column.iloc[bad[0]])})" if bad.size else ""
        raise UsageError(
            f"column {name!r} in {path} is not numeric{where}; pick the input "
            "columns with --features"
        )


def select_columns(frame, target, features, path):
    """The target and the ``--features`` columns of ``frame``, as float64.

    Only what the CSV and the options decide is checked here (named feature
    columns exist, the chosen columns hold numbers); whether the target
    exists and can be forecast is the forecaster's check.
    """
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    if features is not None:
        unknown = [c for c in features if c not in columns]
        if unknown:
            raise UsageError(
                f"feature column {unknown[0]!r} is not in {path}; its columns are "
                f"{', '.join(columns)}"
            )
        keep = list(dict.fromkeys(([target] if target in columns else []) + features))
        frame = frame[keep]
    _check_numeric(frame, frame.columns, path)
    return frame.astype("float64")
