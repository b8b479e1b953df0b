"""predict, backtest and update of a fitted forecaster on a dask fleet.

Design
------
A fitted forecaster forecasts each series from that series' rows alone, so a
fleet in a dask DataFrame is served partition by partition with the pandas
code (``map_partitions``), once every partition holds whole series
(``_dask_frames.check_whole_series``). The result is a dask DataFrame with
one pandas result per partition; computing it gives the pandas path's rows,
in the same order, with the same values and dtypes.

The model travels once. It enters the task graph as one ``dask.delayed``
object that every partition's task depends on: a distributed scheduler
computes it on one worker and copies it to each other worker that needs it,
once, instead of pickling it into every task.

dask has no MultiIndex, so the series id that the pandas path puts in the
index's first level stays where the input had it: a column next to the time
index (input with an id column), or the index with the timestamps in a
column (input indexed by the id). Every partition's output has an explicit
``meta`` built from the model's columns, so dask never runs the model on a
made-up frame to learn them.

``update`` changes the forecaster in this process, so its new rows are
brought here (they are the latest readings, a small frame next to the
history) and go through the pandas ``update`` in one call, which checks
every series before any context moves.
"""

import numpy as np
import pandas as pd

from tsrnn import _backtest
from tsrnn._dask_frames import (
    check_layout,
    check_whole_series,
    import_dask,
    is_dask_frame,
    partition_frame,
)
from tsrnn.exceptions import InputError


def _fleet_layout(model, ddf):
    """(series id name, time name, whether the id is ddf's index), or an error."""
    model._check_fitted()
    layout = model._frame_layout
    if not layout.multi:
        raise InputError(
            "A dask DataFrame holds a fleet, but this forecaster was fitted on one "
            "series; fit it on several (series_id=...) or pass a pandas frame."
        )
    id_name = layout.id_name
    check_layout(ddf, id_name)
    id_is_index = ddf.index.name == id_name and id_name not in ddf.columns
    return id_name, layout.time_name, id_is_index


def _features(model):
    return list(getattr(model, "feature_names_in_", [])) or None


def _to_output(forecast, id_is_index):
    """The pandas path's (id, timestamp) result with the id where the input had it."""
    return forecast.reset_index(level=1 if id_is_index else 0)


def _predict_partition(part, model, future, id_name, time_name, id_is_index, meta):
    frame = partition_frame(part, id_name, time_name, _features(model))
    if not len(frame):
        return meta
    return _to_output(model.predict(frame, future), id_is_index)


def _backtest_partition(part, model, start, stride, id_name, time_name, meta):
    frame = partition_frame(part, id_name, time_name, _features(model))
    if not len(frame):
        return meta
    return model.backtest(frame, start=start, stride=stride).forecasts


def _sample_frame(model, ddf, id_name, time_name):
    """A one-row partition in the model's pandas layout, with ddf's dtypes."""
    sample = ddf._meta_nonempty.iloc[:1]
    frame = partition_frame(sample, id_name, time_name, _features(model))
    if isinstance(frame.index, pd.MultiIndex):
        return frame.index.get_level_values(0), frame.index.get_level_values(1)
    return frame[id_name], frame.index


def _predict_meta(model, ddf, id_name, time_name, id_is_index):
    """An empty frame shaped as a partition's forecasts, from the model's columns."""
    ids, times = _sample_frame(model, ddf, id_name, time_name)
    names, targets, heads = model._forecast_columns()
    Z = np.zeros((1, len(model._frame_layout.targets), int(heads.max()) + 1))
    one = model._forecast_frame(Z, times.rename(time_name))
    forecast = pd.concat([one], keys=[ids.to_numpy()[0]], names=[id_name, time_name])
    return _to_output(forecast, id_is_index).iloc[:0]


def _backtest_meta(model, ddf, id_name, time_name):
    """An empty frame shaped as a partition's backtest forecasts."""
    ids, times = _sample_frame(model, ddf, id_name, time_name)
    h, n_t = model.horizon, len(model._frame_layout.targets)
    index = times.repeat(h + 1)
    zeros = np.zeros((1, h, n_t))
    n_q = 1 if model.quantiles_ is None else len(model.quantiles_)
    keys = pd.Index(ids[:1])
    frame = _backtest.forecasts_frame(
        index, np.zeros(1, dtype=np.intp), model._frame_layout.targets, zeros,
        model.quantiles_, np.zeros((1, h, n_t, n_q)), zeros, zeros, zeros,
        ids=keys, id_name=model._frame_layout.id_name,
    )
    return frame.iloc[:0]


def _shared_model(dask, model):
    # One graph key holds the model (not one copy per task); a fresh name
    # spares dask hashing the whole pickled model to make one.
    from uuid import uuid4

    return dask.delayed(model, name=f"tsrnn-forecaster-{uuid4().hex}", traverse=False)


def predict(model, ddf, future=None):
    """``model.predict`` of every partition of ``ddf``, as a dask DataFrame."""
    import_dask("predict on a dask DataFrame")
    import dask

    id_name, time_name, id_is_index = _fleet_layout(model, ddf)
    if is_dask_frame(future):
        raise TypeError(
            "future must be a pandas DataFrame (the known-future values of the "
            "horizon steps, small next to the history); call .compute() on it."
        )
    check_whole_series(ddf, id_name)
    meta = _predict_meta(model, ddf, id_name, time_name, id_is_index)
    shared = _shared_model(dask, model)
    if future is not None:
        future = dask.delayed(future, traverse=False)
    return ddf.map_partitions(
        _predict_partition, shared, future, id_name, time_name, id_is_index, meta,
        meta=meta, enforce_metadata=False,
    )


def backtest(model, ddf, start=None, stride=None):
    """The forecasts of ``model.backtest`` on every partition, as a dask DataFrame."""
    import_dask("backtest on a dask DataFrame")
    import dask

    id_name, time_name, _ = _fleet_layout(model, ddf)
    check_whole_series(ddf, id_name)
    meta = _backtest_meta(model, ddf, id_name, time_name)
    shared = _shared_model(dask, model)
    return ddf.map_partitions(
        _backtest_partition, shared, start, stride, id_name, time_name, meta,
        meta=meta, enforce_metadata=False,
    )


def update(model, ddf):
    """``model.update`` with the rows of ``ddf``, brought into this process."""
    id_name, time_name, _ = _fleet_layout(model, ddf)
    rows = ddf.compute()
    return model.update(partition_frame(rows, id_name, time_name, _features(model)))
