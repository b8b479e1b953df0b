"""The command line's fleet: a parquet dataset read lazily with dask, forecasts as parquet.

Design
------
``tsrnn forecast fleet.parquet --series-id sensor --target temp`` never
holds the fleet in one process. The dataset is read with
``dask.dataframe.read_parquet`` (only the columns the model uses), each
partition keeps its own rows, and every step is per partition: the split of
each series into training rows and held-out rows, the checks of the data
(``_dask_frames.validate_partitions``), the backtest's forecasts and their
scores (sums per partition, added up here) and the forecast itself, written
by the workers. A dataset written with ``partition_cols=[series id]``
(one directory per series) or by ``ddf.shuffle(series id).to_parquet``
already holds whole series per partition; one that does not is refused with
the fix.

The output is a parquet dataset (a directory of part files) that appears
whole or not at all: it is written into a temporary directory beside the
destination and renamed into place when complete (``_atomic_write``).

``--scheduler ADDRESS`` connects a ``distributed.Client`` to an existing
cluster for the run; without it dask's default local scheduler runs the
partitions in this process's threads.
"""

import numpy as np
import pandas as pd
from pandas.api.types import is_datetime64_any_dtype

from tsrnn._csv_input import UsageError

PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")


def is_parquet(path):
    """A parquet file or dataset directory, judged by its name or contents."""
    import os

    if path.lower().endswith(PARQUET_SUFFIXES):
        return True
    if os.path.isdir(path):
        for _, _, files in os.walk(path):
            if any(f.lower().endswith(PARQUET_SUFFIXES) for f in files):
                return True
    return False


def import_dask_dataframe():
    """``dask.dataframe``, or a UsageError naming the extra."""
    try:
        import dask.dataframe as dd
    except ImportError:
        raise UsageError(
            "reading a parquet fleet needs dask, which is not installed: "
            'pip install "tsrnn[dask]"'
        ) from None
    return dd


def connect(address):
    """A ``distributed.Client`` on the cluster at ``address``, or a UsageError."""
    try:
        from dask.distributed import Client
    except ImportError:
        raise UsageError(
            "--scheduler needs dask.distributed, which is not installed: "
            'pip install "tsrnn[dask]"'
        ) from None
    try:
        return Client(address, timeout="10s", set_as_default=True)
    except (OSError, TimeoutError, ValueError) as exc:
        raise UsageError(f"--scheduler {address}: cannot connect ({exc})") from None


def read_fleet(path, series_id, time_col, target, features):
    """The dataset as a dask DataFrame: an id column next to a DatetimeIndex.

    Only the id, time and model columns are read. The timestamps are the
    pandas index stored in the files, or ``time_col``, or the only datetime
    column; they become each partition's index without a global sort.
    """
    dd = import_dask_dataframe()
    try:
        ddf = dd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path} as parquet: {exc}") from None
    columns = list(ddf.columns)
    if series_id not in columns:
        raise UsageError(f"--series-id {series_id!r} is not a column of {path}; "
                         f"columns are {columns}")
    if isinstance(ddf.dtypes[series_id], pd.CategoricalDtype):
        # A directory per series (partition_cols) reads as a category: its
        # values are the ids.
        ddf[series_id] = ddf[series_id].astype(ddf.dtypes[series_id].categories.dtype)
    if time_col is None and is_datetime64_any_dtype(ddf._meta.index.dtype):
        time_name = ddf.index.name
    else:
        if time_col is None:
            stamps = [c for c in columns if is_datetime64_any_dtype(ddf.dtypes[c])]
            if len(stamps) != 1:
                raise UsageError(
                    f"{path} has {len(stamps)} timestamp columns ({stamps}) and no "
                    "timestamp index; name the time column with --time-col"
                )
            time_col = stamps[0]
        if time_col not in columns:
            raise UsageError(f"--time-col {time_col!r} is not a column of {path}; "
                             f"columns are {columns}")
        if not is_datetime64_any_dtype(ddf.dtypes[time_col]):
            raise UsageError(
                f"column {time_col!r} of {path} holds {ddf.dtypes[time_col]}, not "
                "timestamps; store it as a parquet timestamp"
            )
        meta = ddf._meta.set_index(time_col)
        ddf = ddf.map_partitions(pd.DataFrame.set_index, time_col, meta=meta)
        time_name = time_col
    model_columns = [c for c in ddf.columns if c != series_id]
    if target is not None and target not in model_columns:
        raise UsageError(f"--target {target!r} is not a column of {path}; columns are "
                         f"{model_columns}")
    if features is not None:
        unknown = [c for c in features if c not in model_columns]
        if unknown:
            raise UsageError(f"--features {unknown} are not columns of {path}; columns "
                             f"are {model_columns}")
        keep = ([] if target is None else [target]) + [c for c in features if c != target]
        ddf = ddf[[series_id] + keep]
    return ddf, time_name


def _split_partition(part, series_id, horizon, test_size, keep_test):
    """Each series' training rows, or its held-out last rows."""
    out = []
    for key, rows in part.groupby(series_id, sort=False):
        n = len(rows)
        n_test = max(horizon, round(test_size * n))
        if n_test >= n:
            raise UsageError(
                f"series {key!r} has {n} rows: too few to hold out the last "
                f"{n_test} for the backtest and train on the rest (--horizon, "
                "--test-size)"
            )
        out.append(rows.iloc[n - n_test:] if keep_test else rows.iloc[: n - n_test])
    return pd.concat(out) if out else part


def split_fleet(ddf, series_id, horizon, test_size):
    """(training rows, held-out rows) of every series, per partition.

    Each series holds out its last ``max(horizon, test_size * rows)`` rows,
    as the CSV path holds out the last rows of its one series. The held-out
    rows follow the training rows, so the backtest prepends the end of each
    series' training rows kept by fit, and forecasts from the last training
    row on.
    """
    train = ddf.map_partitions(_split_partition, series_id, horizon, test_size, False,
                               meta=ddf._meta)
    test = ddf.map_partitions(_split_partition, series_id, horizon, test_size, True,
                              meta=ddf._meta)
    return train, test


_MODELS = ("model", "persistence", "seasonal_naive")


def _error_sums(forecasts, targets):
    """Per target and model: sum of |error|, sum of error**2 and count."""
    rows = []
    ok = (forecasts["actual"].notna() & forecasts["persistence"].notna()
          & forecasts["seasonal_naive"].notna())
    for target in targets:
        keep = ok & (forecasts["target"] == target)
        actual = forecasts.loc[keep, "actual"].to_numpy(np.float64)
        for name, column in zip(_MODELS, ("forecast", "persistence", "seasonal_naive")):
            error = forecasts.loc[keep, column].to_numpy(np.float64) - actual
            rows.append((target, name, np.abs(error).sum(), np.square(error).sum(),
                         len(error)))
    return pd.DataFrame(rows, columns=["target", "model", "abs", "square", "n"])


def fleet_metrics(forecasts, targets, mase_scale):
    """The backtest table of the CSV path (MAE, RMSE, MASE), summed over partitions.

    Scored, as ``Backtest.metrics``, over the rows where the actual and both
    baselines exist; each metric is the mean over targets.
    """
    meta = pd.DataFrame({"target": pd.Series([], dtype=object),
                         "model": pd.Series([], dtype=object),
                         "abs": pd.Series([], dtype=np.float64),
                         "square": pd.Series([], dtype=np.float64),
                         "n": pd.Series([], dtype=np.int64)})
    sums = forecasts.map_partitions(_error_sums, targets, meta=meta).compute()
    sums = sums.groupby(["target", "model"], sort=False)[["abs", "square", "n"]].sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        mae = sums["abs"] / sums["n"]
        table = pd.DataFrame({"MAE": mae, "RMSE": np.sqrt(sums["square"] / sums["n"])})
        scale = pd.Series(np.asarray(mase_scale, dtype=np.float64), index=targets)
        table["MASE"] = mae / scale.reindex(table.index.get_level_values("target")).to_numpy()
    metrics = table.groupby(level="model", sort=False).mean().loc[list(_MODELS)]
    metrics.index.name = None
    return metrics


def write_forecast(forecast, path, series_id=None):
    """Write the dask forecast frame as a parquet dataset at ``path``, whole or not at all.

    The columns are those of the pandas forecast's ``reset_index()``: the
    series id, the timestamp, then the forecasts.
    """
    from tsrnn._atomic_write import replace_directory

    table = forecast.reset_index()
    if series_id is not None:
        table = table[[series_id] + [c for c in table.columns if c != series_id]]
    replace_directory(path, lambda tmp: table.to_parquet(tmp, write_index=False,
                                                          overwrite=False))
