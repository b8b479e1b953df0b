"""dask DataFrames as fleets: recognising them, whole series, per-partition checks.

Design
------
A fleet too large for one process arrives as a ``dask.dataframe.DataFrame``
in the long layout: either a ``series_id`` column next to a DatetimeIndex
(what ``ddf.shuffle("sensor")`` keeps), or the series id as the index and the
timestamps in a column (what ``ddf.set_index("sensor")`` gives; dask has no
MultiIndex). Everything the forecaster does to such a frame is done per
partition, by the pandas code that serves a pandas frame, so a partition must
hold whole series: a series cut in two would be two short series, with a
forecast from the wrong end. :func:`check_whole_series` refuses that, naming
the series, the partitions and the fix.

:func:`partition_frame` turns one partition into the pandas layout the
forecaster takes; :func:`check_partition` runs, on one partition, the checks
``fit`` makes on a pandas frame (columns, sorted and regular timestamps, gaps,
infinite values), so an error raised on a worker names the series and the
timestamp exactly as the pandas path would. :func:`validate_partitions` runs
both over a whole dask frame and returns a small per-series summary.

dask stays optional: :func:`is_dask_frame` looks for dask only in the
modules already imported, so a user who never passed a dask object never
imports it, and the pandas paths do not change.
"""

import sys

import numpy as np
import pandas as pd
from pandas.api.types import is_datetime64_any_dtype

from tsrnn._frames import FrameLayout, check_frame, where
from tsrnn._windows import check_no_infinity
from tsrnn.exceptions import InputError

#: The optional dependency, as the user installs it.
EXTRA = 'pip install "tsrnn[dask]"'

#: Columns of the per-series summary of :func:`validate_partitions`.
SUMMARY_COLUMNS = ["series", "partition", "rows", "first", "last", "step"]


def is_dask_frame(X):
    """True if X is a ``dask.dataframe.DataFrame``; never imports dask itself.

    An object can only be a dask frame if dask.dataframe was imported by
    whoever made it, so an unimported module means a plain answer of False.
    """
    module = sys.modules.get("dask.dataframe")
    return module is not None and isinstance(X, module.DataFrame)


def import_dask(purpose):
    """``dask.dataframe``, or an ImportError naming the extra that brings it."""
    try:
        import dask.dataframe as dd
    except ImportError as exc:
        raise ImportError(
            f"{purpose} needs dask, an optional dependency of tsrnn; install it "
            f"with {EXTRA}."
        ) from exc
    return dd


def _id_is_index(ddf, series_id):
    return ddf.index.name == series_id and series_id not in ddf.columns


def check_layout(ddf, series_id):
    """Refuse a dask frame whose series cannot be found: an id column or index."""
    if series_id is None:
        raise InputError(
            "A dask DataFrame holds a fleet: pass series_id='<column>' (the column "
            "or index naming each series) to the forecaster."
        )
    if series_id not in ddf.columns and ddf.index.name != series_id:
        raise InputError(
            f"series_id={series_id!r} is neither a column nor the index of the dask "
            f"DataFrame; columns are {list(ddf.columns)}, index {ddf.index.name!r}."
        )


def _ids_of(part, series_id, partition_info=None):
    """(series, partition): the distinct series ids of one partition."""
    ids = part.index if _id_is_index(part, series_id) else part[series_id]
    number = -1 if partition_info is None else partition_info["number"]
    return pd.DataFrame({"series": pd.Series(pd.unique(ids), dtype=object),
                         "partition": np.int64(number)})


def check_whole_series(ddf, series_id):
    """Refuse a dask frame whose partitions split a series.

    An index on the id with known divisions (``ddf.set_index(series_id)``)
    holds whole series by construction and is accepted without reading the
    data; otherwise the id column alone is read, partition by partition.

    Raises
    ------
    InputError
        A series found in two or more partitions, named with those partitions
        and the fix.
    """
    check_layout(ddf, series_id)
    if _id_is_index(ddf, series_id) and ddf.known_divisions:
        return
    meta = pd.DataFrame({"series": pd.Series([], dtype=object),
                         "partition": pd.Series([], dtype=np.int64)})
    # Only the id is selected before the function runs, so a parquet
    # source reads that one column.
    ids = ddf[[]] if _id_is_index(ddf, series_id) else ddf[[series_id]]
    seen = ids.map_partitions(_ids_of, series_id, meta=meta).compute()
    _raise_if_split(seen.reset_index(drop=True))


def _raise_if_split(seen):
    """InputError for the first series of ``seen`` (series, partition) in two partitions."""
    repeated = seen["series"].duplicated(keep=False)
    if not repeated.any():
        return
    key = seen.loc[repeated, "series"].iloc[0]
    parts = sorted(set(seen.loc[seen["series"] == key, "partition"].tolist()))
    n = seen.loc[repeated, "series"].nunique()
    others = f" ({n} series are split)" if n > 1 else ""
    raise InputError(
        f"Series {key!r} is split across partitions {parts}{others}; each partition "
        "must hold whole series. Put every series in one partition first: "
        "ddf = ddf.set_index(<series id>) (sorted, with known divisions), or "
        "ddf = ddf.shuffle(<series id>)."
    )


def partition_frame(part, series_id, time_name=None, feature_names=None):
    """One partition as the pandas frame the forecaster takes.

    A partition with the id as a column and a DatetimeIndex is already in
    the pandas layout. One indexed by the id gets its timestamps from the
    column ``time_name`` (or from its only datetime column) and becomes the
    same layout: an id column next to a DatetimeIndex, or an (id, timestamp)
    MultiIndex when ``feature_names`` (the columns the model was fitted on)
    do not include the id.

    dask's ``shuffle`` and ``set_index`` move rows between partitions
    without keeping their order, so each series' rows are put back in time
    order here (a stable sort, only when they are out of order); duplicated
    timestamps are still refused by the checks.
    """
    if _id_is_index(part, series_id):
        if time_name is None or time_name not in part.columns:
            stamps = [c for c in part.columns if is_datetime64_any_dtype(part[c])]
            if len(stamps) != 1:
                raise InputError(
                    f"A dask DataFrame indexed by {series_id!r} needs its timestamps "
                    f"in one datetime column; it has {len(stamps)} ({stamps}). Keep "
                    "one, or index it by time and keep the id as a column."
                )
            time_name = stamps[0]
        part = part.reset_index().set_index(time_name)
    elif series_id not in part.columns:
        raise InputError(
            f"series_id={series_id!r} is neither a column nor the index of the dask "
            f"DataFrame; columns are {list(part.columns)}, index {part.index.name!r}."
        )
    part = _in_time_order(part, series_id)
    if feature_names is not None and series_id not in feature_names:
        frame = part.drop(columns=series_id)
        frame.index = pd.MultiIndex.from_arrays([part[series_id], part.index])
        return frame
    if feature_names is not None and list(part.columns) != list(feature_names) \
            and set(feature_names) <= set(part.columns):
        part = part[list(feature_names)]
    return part


def _in_time_order(part, series_id):
    """``part`` with each series' rows in time order, series in order of appearance."""
    if not isinstance(part.index, pd.DatetimeIndex) or len(part) < 2:
        return part  # the checks name what is wrong
    codes = pd.factorize(part[series_id])[0]
    order = np.lexsort((part.index.asi8, codes))
    if (order == np.arange(len(order))).all():
        return part
    return part.iloc[order]


def check_partition(part, forecaster, series_id=None, time_name=None):
    """Run ``fit``'s frame checks on one partition; a per-series summary.

    ``forecaster`` supplies the parameters (target, known_future, series_id,
    freq, missing). The checks are those a pandas frame gets before
    training: the columns and their types, sorted timestamps without
    duplicates, one regular step (or the snap to ``freq=``), gaps under
    ``missing="raise"`` and infinite values, each error naming the column,
    series and timestamp. The summary has one row per series:
    ``SUMMARY_COLUMNS`` (partition is filled in by the caller; step is the
    step's alias, the same for every series of the partition).
    """
    series_id = forecaster.series_id if series_id is None else series_id
    frame = partition_frame(part, series_id, time_name)
    check_frame(frame, "X")
    if not len(frame):
        return _summary_meta()
    layout = FrameLayout.from_frame(frame, forecaster.target, forecaster.known_future,
                                    series_id, forecaster.missing)
    frames = layout.split(frame, regularize=False)
    layout.set_step(frames, forecaster.freq)
    rows = []
    for key, f in frames.items():
        f = layout.regularize(f, key)
        raw = f.to_numpy(np.float64)
        check_no_infinity({key: raw}, lambda _: f.index, layout)
        layout.check_gaps(f, key)
        rows.append((key, -1, len(f), f.index[0], f.index[-1], layout.offset.freqstr))
    summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    return summary.astype({"partition": np.int64, "rows": np.int64})


def _summary_meta():
    return pd.DataFrame({
        "series": pd.Series([], dtype=object),
        "partition": pd.Series([], dtype=np.int64),
        "rows": pd.Series([], dtype=np.int64),
        "first": pd.Series([], dtype="datetime64[ns]"),
        "last": pd.Series([], dtype="datetime64[ns]"),
        "step": pd.Series([], dtype=object),
    })


def _check_numbered(part, forecaster, series_id, time_name, partition_info=None):
    summary = check_partition(part, forecaster, series_id, time_name)
    summary["partition"] = -1 if partition_info is None else partition_info["number"]
    # One unit for the stamps of every partition, whatever their own.
    return summary.astype({"first": "datetime64[ns]", "last": "datetime64[ns]",
                           "series": object})


def validate_partitions(ddf, forecaster, time_name=None):
    """Check a dask fleet for ``fit``: whole series, then each partition's data.

    Returns the per-series summary (``SUMMARY_COLUMNS``, a pandas frame), in
    partition order. Raises the InputError or TypeError of the first
    partition that fails, naming the series and timestamp, or an InputError
    if partitions split a series or the series have different steps.
    """
    series_id = forecaster.series_id
    check_whole_series(ddf, series_id)
    summary = ddf.map_partitions(_check_numbered, forecaster, series_id, time_name,
                                 meta=_summary_meta()).compute()
    summary = summary.reset_index(drop=True)
    # Divisions that are known say nothing of a series whose id equals a
    # boundary in another partition's data; the summary sees every series.
    _raise_if_split(summary[["series", "partition"]])
    steps = summary["step"].unique()
    if len(steps) > 1:
        first = summary.iloc[0]
        other = summary[summary["step"] != first["step"]].iloc[0]
        raise InputError(
            f"Series have different frequencies: {first['step']}{where(first['series'])} "
            f"and {other['step']}{where(other['series'])}. Pass freq= to resample them "
            "all to one step."
        )
    return summary
