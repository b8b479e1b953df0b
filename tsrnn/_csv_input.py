"""Reading the command line's CSV into a frame the forecaster can check.

Only what the file and the options decide is checked here: the file exists
and parses, the time column holds timestamps, the chosen columns hold
numbers. Every message names the file, and the row and column when there is
one. Whether the data can be forecast (order, gaps, length, the target) is
``RNNForecaster.validate_frame``'s check.
"""
import os
import warnings

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


def _parse_times(column, name, path):
    """Parse a column of timestamps into a DatetimeIndex, naming the first bad value.

    Their order and spacing are the forecaster's to check.
    """
    if pd.api.types.is_numeric_dtype(column):
        raise UsageError(
            f"time column {name!r} in {path} holds numbers, not timestamps "
            "(choose the time column with --time-col)"
        )
    try:
        with warnings.catch_warnings():
            # pandas warns when it has to guess a format per element; a
            # failure is reported below, and a success needs no warning.
            warnings.simplefilter("ignore", UserWarning)
            stamps = pd.to_datetime(column)
    except (ValueError, TypeError, OverflowError) as exc:
        # Find the first value that is not a timestamp on its own, to name it.
        for row, value in enumerate(column, start=1):
            try:
                if pd.isna(pd.Timestamp(value)):
                    raise ValueError
            except (ValueError, TypeError, OverflowError):
                raise UsageError(
                    f"cannot parse timestamp {_shown(value)} in row {row} of column "
                    f"{name!r} in {path}"
                )
        raise UsageError(
            f"cannot parse the timestamps in column {name!r} of {path}: {_first_line(exc)}"
        )
    missing = np.flatnonzero(stamps.isna().to_numpy())
    if missing.size:
        raise UsageError(f"row {missing[0] + 1} of {path} has no timestamp in column {name!r}")
    if not isinstance(stamps.dtype, (np.dtype, pd.DatetimeTZDtype)) or stamps.dtype.kind != "M":
        # Mixed time zones come back as objects instead of one datetime dtype.
        raise UsageError(
            f"the timestamps in column {name!r} of {path} do not share one time zone"
        )
    return pd.DatetimeIndex(stamps, name=name)


def load_frame(path, time_col=None):
    """The CSV at ``path`` as a DataFrame indexed by its sorted timestamps.

    The time column (``time_col``, default the first column) becomes the
    index. The other columns are left as read; :func:`select_columns` checks
    them. Empty cells stay NaN for the forecaster's ``missing`` handling.
    """
    frame = _read_csv(path)
    if time_col is None:
        time_col = frame.columns[0]
    elif time_col not in frame.columns:
        raise UsageError(
            f"time column {time_col!r} is not in {path}; its columns are "
            f"{', '.join(map(str, frame.columns))}"
        )
    index = _parse_times(frame.pop(time_col), time_col, path)
    if frame.shape[1] == 0:
        raise UsageError(f"{path} has a time column but no data columns")
    frame.index = index
    return frame


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
