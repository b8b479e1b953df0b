"""The forecaster's view of a pandas frame: columns, series, time grid, gaps.

Design
------
``FrameLayout`` is learned from the training frame and kept by the
forecaster. It knows which columns are targets, past covariates and
known-future covariates, whether the frame holds one series or several (a
``series_id`` column or an (id, timestamp) MultiIndex), the time step, and
what to do with gaps. Every frame the forecaster receives later (``predict``,
``update``, ``backtest``) goes through the same layout, so it is cut into
series, put on the same regular grid and checked the same way.

Time grid. Without ``freq=`` the index must already be regular, and the
step is inferred from it. An index that is regular but for clock jitter is
refused, with advice rather than silently moved timestamps: the message gives
the median step rounded to a whole unit ("every 1h with up to 20s of
jitter; pass freq='h'"), so the user opts in to changing their timestamps.
With ``freq=`` every reading snaps to the **nearest** point of the grid
(``snap_to_grid`` in ``_time_grid.py``), in absolute time, so a DST change is no gap and a
reading 20 s early is not floored into the previous bin; points that got
several readings hold their mean, points that got none are gaps for
``missing``, and a :class:`~tsrnn.exceptions.ResampleWarning` counts both.

Every problem with the data is an :class:`~tsrnn.exceptions.InputError` that
names the column, series and timestamp at fault and says how to fix it. A
frame that is not a DataFrame, or an index that is not a DatetimeIndex, is a
``TypeError``.
"""

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.api.types import is_numeric_dtype
from pandas.tseries.frequencies import to_offset

from tsrnn._time_grid import (
    as_integer,
    counted,
    distances,
    in_step_unit,
    jitter_advice,
    snap_to_grid,
    span,
    user_stacklevel,
)
from tsrnn.exceptions import InputError, ResampleWarning


def check_frame(X, name):
    if not isinstance(X, pd.DataFrame):
        raise TypeError(
            f"{name} must be a pandas DataFrame with a DatetimeIndex (or an "
            f"(id, timestamp) MultiIndex), got {type(X).__name__}."
        )



def where(key):
    """' in series <key>' for messages, or nothing for a single series."""
    return "" if key is None else f" in series {key!r}"




def default_season(offset):
    """Season length in steps for a frequency: one day for sub-daily data.

    Sub-daily steps that divide a day give the steps per day; daily data give
    7 (a week); monthly 12 and quarterly 4 (a year); anything else 1, which
    makes the seasonal naive forecast the persistence forecast.
    """
    name = type(offset).__name__
    # Day is a Tick in pandas 2 but not in pandas 3: test it first.
    if name == "Day" and offset.n == 1:
        return 7
    if isinstance(offset, pd.offsets.Tick):
        step = pd.Timedelta(offset)
        day = pd.Timedelta(days=1)
        if step < day and day % step == pd.Timedelta(0):
            return int(day // step)
        return 1
    if "Month" in name and offset.n == 1:
        return 12
    if "Quarter" in name and offset.n == 1:
        return 4
    return 1


@dataclass
class FrameLayout:
    """Column roles, series layout, time step and gap policy of a forecaster.

    Build it with :meth:`from_frame` on the training frame.
    """

    targets: list
    past: list
    known: list
    multi: bool
    series_id: object
    id_name: object
    time_name: object
    offset: object = None
    resample: bool = False
    missing: str = "raise"
    # The series id's dtype in the training frame when it is a numpy one
    # (None for one series, for text ids, and in layouts pickled before it
    # was kept): predict() labels its forecasts with it (``id_index``); the
    # backtest labels its rows with X's (``series_ids``).
    id_dtype: object = None

    @property
    def columns(self):
        """Model columns in their order: targets, past, known-future."""
        return self.targets + self.past + self.known

    @property
    def n_past(self):
        """Leading columns unknown after the forecast origin."""
        return len(self.targets) + len(self.past)

    # ------------------------------------------------------------------
    # Construction
    # ------------------------------------------------------------------
    @classmethod
    def from_frame(cls, X, target, known_future, series_id, missing):
        """Decide the column roles from the training frame (no time step yet)."""
        id_col = series_id if not isinstance(X.index, pd.MultiIndex) else None
        if id_col is not None and id_col not in X.columns:
            raise InputError(
                f"series_id={id_col!r} is not a column of X; columns are "
                f"{list(X.columns)}."
            )
        candidates = [c for c in X.columns if c != id_col]
        numeric = [c for c in candidates if is_numeric_dtype(X[c])]
        if target is None:
            if len(numeric) != 1:
                raise InputError(
                    "target=None needs a frame with exactly one numeric column; X has "
                    f"{numeric}. Pass target='<column>' or a list of columns."
                )
            targets = numeric
        elif isinstance(target, str):
            targets = [target]
        else:
            targets = list(target)
        known = list(known_future or [])
        for role, cols in (("target", targets), ("known_future", known)):
            for col in cols:
                if col not in X.columns:
                    raise InputError(
                        f"{role} column {col!r} is not in X; columns are "
                        f"{list(X.columns)}."
                    )
                if not is_numeric_dtype(X[col]):
                    raise TypeError(
                        f"{role} column {col!r} must be numeric, got dtype {X[col].dtype}."
                    )
        if not targets:
            raise InputError("target must name at least one column.")
        both = sorted(set(targets) & set(known), key=str)
        if both or len(set(targets)) < len(targets) or len(set(known)) < len(known):
            repeated = both or [c for c in targets + known if (targets + known).count(c) > 1]
            raise InputError(
                "Columns may appear only once in target and known_future; repeated: "
                f"{repeated}."
            )
        multi = isinstance(X.index, pd.MultiIndex) or id_col is not None
        id_name, time_name = index_names(X, series_id)
        id_dtype = None
        if isinstance(X.index, pd.MultiIndex):
            id_dtype = X.index.levels[0].dtype
        elif id_col is not None:
            id_dtype = X[id_col].dtype
        if not isinstance(id_dtype, np.dtype):
            # Text ids: pandas infers its own string dtype from the keys,
            # whichever one the frame had (a dask frame read from parquet
            # holds pyarrow strings, the same data in pandas object or str).
            id_dtype = None
        return cls(
            targets=targets,
            past=[c for c in numeric if c not in targets and c not in known],
            known=known,
            multi=multi,
            series_id=series_id,
            id_name=id_name,
            time_name=time_name,
            missing=missing,
            id_dtype=id_dtype,
        )

    def structure(self):
        """What a warm-started fit must keep: the columns and series layout."""
        return (tuple(self.targets), tuple(self.past), tuple(self.known), self.multi)

    def set_step(self, frames, freq):
        """Fix the time step: ``freq`` (resampling to it) or inferred from frames."""
        if freq is not None:
            offset = to_offset(freq)
            # "0h" or "-1h" would divide by zero or run backwards in resample.
            if offset.n <= 0:
                raise InputError(f"freq must be a positive time step, got {freq!r}.")
            self.resample = True
        else:
            offset = None
            for key, frame in frames.items():
                self._check_order(frame.index, key)
                found = frame.index.freq
                if found is None and len(frame) >= 3:
                    found = pd.DatetimeIndex(frame.index.to_numpy(), freq="infer").freq
                if found is None:
                    self._raise_irregular(frame.index, key)
                if offset is not None and found != offset:
                    raise InputError(
                        f"Series have different frequencies: {offset.freqstr} and "
                        f"{found.freqstr}{where(key)}. Pass freq= to resample "
                        "them all to one step."
                    )
                offset = found
        self.offset = offset

    # ------------------------------------------------------------------
    # Frames in, regular series out
    # ------------------------------------------------------------------
    def split(self, X, regularize=True):
        """{series key: frame of the model's columns (float64)}.

        The key is None for a single series. With ``regularize`` every frame
        is put on the regular grid of the time step (which must be set).
        """
        if isinstance(X.index, pd.MultiIndex):
            if X.index.nlevels != 2:
                raise InputError(
                    "A MultiIndex must have two levels, (series id, timestamp); got "
                    f"{X.index.nlevels} levels {list(X.index.names)}."
                )
            if not self.multi:
                raise InputError(
                    "This forecaster was fitted on a single series; X has an "
                    "(id, timestamp) MultiIndex."
                )
            frames = {key: g.droplevel(0) for key, g in X.groupby(level=0, sort=False)}
        elif self.series_id is not None:
            if self.series_id not in X.columns:
                raise InputError(
                    f"series_id={self.series_id!r} is not a column of X; columns are "
                    f"{list(X.columns)}."
                )
            # Only the model columns are grouped: selecting them in each of a
            # fleet's groups afterwards cost 5 ms a series (10,000: 46 s).
            model = X[[c for c in self.columns if c in X.columns]]
            frames = dict(iter(model.groupby(X[self.series_id], sort=False)))
        else:
            if self.multi:
                raise InputError(
                    "This forecaster was fitted on several series; X must have an "
                    "(id, timestamp) MultiIndex or the series_id column."
                )
            frames = {None: X}
        missing_cols = [c for c in self.columns if c not in X.columns]
        if missing_cols:
            raise InputError(
                f"X lacks the column(s) {missing_cols} used in fit; it has "
                f"{list(X.columns)}."
            )
        out = {}
        for key, frame in frames.items():
            if not isinstance(frame.index, pd.DatetimeIndex):
                raise TypeError(
                    f"The time index{where(key)} must be a DatetimeIndex, got "
                    f"{type(frame.index).__name__}; convert it with "
                    "df.index = pd.to_datetime(df.index)."
                )
            if frame.columns.tolist() != self.columns:
                frame = frame[self.columns]
            out[key] = frame.astype(np.float64)
        # update() accepts an empty frame (nothing new); everything that
        # needs timestamps from X does not.
        if not out or (regularize and not all(len(f) for f in out.values())):
            raise InputError("X has no rows.")
        if regularize:
            out = {key: self.regularize(frame, key) for key, frame in out.items()}
        return out

    def split_regular(self, X):
        """A fleet frame's series as one array, or None: ``(keys, raw, starts, stamps)``.

        What :meth:`split` makes of a frame with the ``series_id`` column,
        without a frame per series: a backtest of 10,000 sensors spent more
        time in the groups, grids and frames of ``split`` and their
        per-series encoding than outside the network and the baselines
        (benchmarks/README.md, "A faster fleet backtest"). ``keys`` are
        split's (the ids in the order they first appear, as Python
        scalars), ``raw`` (n, n_columns) float64 the model columns of every
        series' rows, series after series in X's order, ``starts``
        (n_series + 1,) where each series' rows begin, and ``stamps`` (n,)
        the rows' timestamps as integers in the unit of X's index.

        None unless X is a frame that :meth:`split` accepts as it is: integer
        or string ids without missing ones, numeric numpy model columns, a
        fixed step (no ``freq=``) that the index's unit holds, and every
        series sorted with exactly one step between its rows. Every other
        frame takes :meth:`split`, which also names what is wrong with it.
        """
        index = X.index
        if (isinstance(index, pd.MultiIndex) or self.series_id is None or self.resample
                or not isinstance(self.offset, pd.offsets.Tick) or not len(X)
                or not isinstance(index, pd.DatetimeIndex)
                or self.series_id not in X.columns
                or any(c not in X.columns for c in self.columns)
                or in_step_unit(index, self.offset) is not index):
            return None
        ids = X[self.series_id]
        if not (ids.dtype.kind in "iu" or isinstance(ids.dtype, pd.StringDtype)):
            return None
        model = X[self.columns]
        if not all(isinstance(t, np.dtype) and t.kind in "iuf" for t in model.dtypes):
            return None
        codes, uniques = pd.factorize(ids, sort=False)  # groupby(sort=False)'s order
        if (codes < 0).any():
            return None  # missing ids: groupby drops those rows
        # Rows grouped by series, each series' rows in X's order.
        order = None if (np.diff(codes) >= 0).all() else np.argsort(codes, kind="stable")
        raw, stamps = model.to_numpy(np.float64), index.asi8
        if order is not None:
            raw, stamps = raw[order], stamps[order]
        starts = np.concatenate([[0], np.cumsum(np.bincount(codes))])
        step = as_integer(pd.Timedelta(self.offset).as_unit(index.unit))
        inside = np.ones(len(X) - 1, bool)
        inside[starts[1:-1] - 1] = False  # a series' first row follows another series
        if not (np.diff(stamps)[inside] == step).all():
            return None
        return uniques.tolist(), raw, starts, stamps

    def series_ids(self, X, keys):
        """``keys`` of ``split(X)`` as an Index with the dtype of X's series id.

        The groupby that split X hands its keys back as Python scalars; a
        table with one row per forecast (a fleet's backtest: millions) keeps
        the id's own dtype (an int32 id as int32, not as Python objects).
        """
        if isinstance(X.index, pd.MultiIndex):
            dtype = X.index.levels[0].dtype
        else:
            dtype = X[self.series_id].dtype
        return pd.Index(keys, dtype=dtype)

    def id_index(self, keys):
        """Series ``keys`` as an Index of the training frame's id dtype (``id_dtype``).

        Inferred instead when a key does not fit it: predict(X) may bring
        a series fit never saw, under an id wider than the training ones.
        """
        try:
            return pd.Index(keys, dtype=self.id_dtype)
        except (OverflowError, TypeError, ValueError):
            return pd.Index(keys)

    def regularize(self, frame, key, anchor=None):
        """``frame`` on the regular grid of the time step, or an InputError.

        The grid keeps the unit of the frame's index (``in_step_unit``). With
        ``freq=``, ``anchor`` is a timestamp the grid must pass through (see
        ``snap_to_grid``).
        """
        index = in_step_unit(frame.index, self.offset, where(key))
        if index is not frame.index:
            frame = frame.set_axis(index)
        if self.resample:
            return self._snap(frame, key, anchor)
        self._check_order(frame.index, key)
        regular = pd.date_range(frame.index[0], periods=len(frame), freq=self.offset,
                                unit=frame.index.unit)
        if not frame.index.equals(regular):
            self._raise_irregular(frame.index, key, expected=self.offset)
        frame = frame.copy(deep=False)
        frame.index = regular.rename(frame.index.name)
        return frame

    def _snap(self, frame, key, anchor=None):
        """``frame`` snapped onto the grid of ``freq=`` (see ``snap_to_grid``)."""
        grid, positions = snap_to_grid(frame.index, self.offset, anchor)
        counts = np.bincount(positions, minlength=len(grid))
        shift = distances(frame.index, grid, positions)
        if shift.max() == 0 and (counts == 1).all():
            # Already on the grid, one reading per point: the values pass
            # bit for bit, only sorted.
            frame = frame.iloc[np.argsort(positions, kind="stable")]
            return frame.set_axis(grid.rename(frame.index.name))
        snapped = frame.groupby(positions).mean().reindex(np.arange(len(grid)))
        snapped.index = grid.rename(frame.index.name)
        self._report_snap(key, len(frame), shift, counts, len(grid))
        return snapped

    def _report_snap(self, key, n, shift, counts, n_points):
        moved = int(np.count_nonzero(shift))
        several = counts >= 2
        empty = int(np.count_nonzero(counts == 0))
        alias = self.offset.freqstr
        parts = []
        if moved:
            parts.append(
                f"{counted(moved, 'reading')} of {n:,} moved to the nearest point "
                f"(by up to {span(shift.max())})"
            )
        if several.any():
            parts.append(
                f"{counted(int(several.sum()), 'grid point')} averaged "
                f"{int(counts[several].sum()):,} readings (2 or more each)"
            )
        if empty:
            parts.append(
                f"{counted(empty, 'grid point')} of {n_points:,} had no reading and "
                "are missing values, handled by `missing`"
            )
        warnings.warn(
            ResampleWarning(f"freq='{alias}'{where(key)}: " + "; ".join(parts) + ".",
                            moved=moved, averaged=int(several.sum()), empty=empty,
                            points=n_points, series=key),
            stacklevel=user_stacklevel(),
        )

    def split_weights(self, X, weights, frames):
        """{key: weights (len(frame),)} of the regular ``frames`` split from X.

        ``weights`` (len(X),) holds one weight per row of X, in X's order;
        each series gets its rows' weights, and they follow the rows onto the
        regular grid. Without resampling the grid only checks the rows, so
        the weights stay as they are. With ``freq=``, a grid point is the
        mean of the rows that snapped to it, and so is its weight; a point no
        row snapped to (a gap, inserted as a row of NaN) has weight 0: the
        user gave no weight for that time, and an origin there would end on
        filled-in values.
        """
        if isinstance(X.index, pd.MultiIndex):
            positions = X.groupby(level=0, sort=False).indices
            times = X.index.get_level_values(1)
        elif self.series_id is not None:
            positions = X.groupby(self.series_id, sort=False).indices
            times = X.index
        else:
            positions, times = {None: np.arange(len(X))}, X.index
        out = {}
        for key, frame in frames.items():
            pos = positions[key]
            w = weights[pos]
            if self.resample:
                # The same snap as regularize's: the rows' times decide it.
                grid, points = snap_to_grid(times[pos], self.offset)
                counts = np.bincount(points, minlength=len(grid))
                sums = np.bincount(points, weights=w, minlength=len(grid))
                with np.errstate(invalid="ignore"):  # 0/0 at empty points
                    mean = pd.Series(sums / counts, index=grid.as_unit("ns"))
                index = frame.index.as_unit("ns")
                w = mean.reindex(index).fillna(0.0).to_numpy(np.float64)
            out[key] = w
        return out

    def check_gaps(self, frame, key):
        """With ``missing="raise"``, refuse a frame with an empty cell."""
        if self.missing != "raise":
            return
        na = frame.isna().to_numpy()
        if not na.any():
            return
        row = int(np.argmax(na.any(axis=1)))
        col = frame.columns[int(np.argmax(na[row]))]
        hint = " (with freq=, a grid point no reading snapped to is a gap)" if self.resample else ""
        raise InputError(
            f"Column {col!r}{where(key)} has a missing value at "
            f"{frame.index[row]}, its first gap{hint}. Fill the gaps yourself (e.g. "
            "X.interpolate(method='time')), or pass missing='interpolate' to fill "
            "them, or missing='mask' to fill the inputs but never train on "
            "filled-in targets."
        )

    def future(self, future, frames, horizon):
        """{key: (horizon, n_known) raw array} of known-future values."""
        if not self.known:
            if future is not None:
                raise InputError(
                    "future= is only used with known_future covariates; this "
                    "forecaster has none."
                )
            return {}
        if future is None:
            raise InputError(
                f"known_future={self.known} needs future=: a DataFrame with "
                f"these columns for the {horizon} timestamps after the history."
            )
        check_frame(future, "future")
        missing_cols = [c for c in self.known if c not in future.columns]
        if missing_cols:
            raise InputError(f"future lacks the known-future column(s) {missing_cols}.")
        if not self.multi:
            by_key = {None: future}
        elif isinstance(future.index, pd.MultiIndex):
            by_key = {k: g.droplevel(0) for k, g in future.groupby(level=0, sort=False)}
        elif self.series_id is not None and self.series_id in future.columns:
            by_key = dict(iter(future.groupby(self.series_id, sort=False)))
        else:
            raise InputError(
                "With several series, future needs an (id, timestamp) MultiIndex or "
                "the series_id column."
            )
        out = {}
        for key, frame in frames.items():
            expected = self.future_index(frame.index[-1], horizon)
            if key not in by_key:
                raise InputError(f"future has no rows for series {key!r}.")
            values = by_key[key][self.known]
            values = values[~values.index.duplicated()].reindex(expected)
            na = values.isna().to_numpy()
            if na.any():
                row = int(np.argmax(na.any(axis=1)))
                col = self.known[int(np.argmax(na[row]))]
                raise InputError(
                    f"future has no value of {col!r}{where(key)} at "
                    f"{expected[row]}; it needs the {horizon} timestamps "
                    f"{expected[0]} .. {expected[-1]}."
                )
            out[key] = values.to_numpy(np.float64)
        return out

    def future_index(self, last, horizon, name=None):
        """The ``horizon`` timestamps after the timestamp ``last``."""
        return pd.date_range(last + self.offset, periods=horizon, freq=self.offset, name=name,
                             unit=last.unit)

    # ------------------------------------------------------------------
    # Messages
    # ------------------------------------------------------------------
    def _check_order(self, index, key):
        # Rows are counted from 1, as in the file the frame came from.
        if not index.is_monotonic_increasing:
            bad = int(np.argmax(np.diff(index.asi8) < 0)) + 1
            raise InputError(
                f"The index{where(key)} is not sorted: row {bad + 1} ({index[bad]}) is "
                f"earlier than row {bad} ({index[bad - 1]}). Sort it with "
                "X.sort_index(), or pass freq= to resample it."
            )
        if index.has_duplicates:
            bad = int(np.argmax(index.duplicated()))
            raise InputError(
                f"The index{where(key)} has duplicated timestamps, first "
                f"{index[bad]} (row {bad + 1}). Aggregate them, e.g. "
                "X.groupby(level=0).mean(), or pass freq= (e.g. freq='h') to let the "
                "forecaster resample with the mean."
            )

    def _raise_irregular(self, index, key, expected=None):
        jitter = jitter_advice(index, where(key), expected)
        if jitter is not None:
            raise InputError(jitter)
        diffs = index[1:] - index[:-1]
        # Fewer than 3 timestamps are regular at any step they show: only an
        # inference from too few rows brings them here.
        too_few = len(index) < 3 and index.freq is None and expected is None
        if expected is None:
            expected = pd.Series(diffs).mode().iloc[0] if len(diffs) else None
            alias = to_offset(expected).freqstr if expected is not None else "h"
        else:
            alias = expected.freqstr
        if too_few:
            detail = f"{len(index)} timestamps are too few to infer a frequency"
        else:
            regular = pd.date_range(index[0], periods=len(index), freq=alias, unit=index.unit)
            i = int(np.argmax(index != regular))
            detail = (
                f"{index[i]} (row {i + 1}) follows {index[i - 1]} after "
                f"{index[i] - index[i - 1]}, but the step is {alias}"
            )
        raise InputError(
            f"The index{where(key)} is not regular: {detail}. Resample it, "
            f"e.g. X.resample('{alias}').mean(), or pass freq='{alias}' to let the "
            "forecaster resample (empty steps become missing values, handled by "
            "`missing`)."
        )


def index_names(X, series_id):
    """(series-id name or None, timestamp index name) of a frame."""
    if isinstance(X.index, pd.MultiIndex):
        return X.index.names[0], X.index.names[1]
    return series_id, X.index.name
