"""The forecaster's kept context as arrays: what ``update()`` and ``predict()`` work on.

Design
------
A streaming forecaster is called once per new reading, so the cost of a call
is the cost of the pandas machinery around a small computation: concatenating
the new rows to the context, putting them on the time grid, encoding the
whole context, building windows and a result frame took milliseconds, the
network's forward pass on one window about 50 microseconds (issue 13). So
the context is kept as arrays, one ``SeriesContext`` per series:

* the raw values of the last ``max(window, season)`` rows (NaN where
  missing), as the frames fit and update saw them;
* the same rows encoded as the network's inputs (scaled, with the future
  flag column), each row encoded once, when it arrives;
* the timestamp of the last row; the others follow from the time step.

``update()`` first tries the fast ingest (``StreamingContext._ingest_fast``):
one series, a fixed time step, exactly the fitted columns, timestamps that
continue the context step by step and values that are finite and within the
model's range. Then it encodes only the new rows, in numpy. Anything else
(several series, resampling with ``freq=``, a skipped or repeated
timestamp, a missing value, a wrong column) takes the general path through
``FrameLayout``, which puts the rows on the grid and refuses bad data with
the messages that name the column, series and timestamp. Both paths end in
the same arrays, and everything after them is shared: the forecasts are
computed from windows cut from the encoded rows (``GatheredWindows``), so
they are the batch ``predict``'s, row for row. A window with a missing value
is the exception: its causal filling depends on the rows around the gap, so
it is encoded from the context's frame by ``Encoder.encode``, as a batch
``predict`` does.

The frames are still there for what needs them (``backtest`` prepending the
context, ``plot``, the general path): ``SeriesContext.frame()`` rebuilds one
from the arrays.
"""

import numpy as np
import pandas as pd

from tsrnn._frames import where
from tsrnn._time_grid import as_integer, from_integers
from tsrnn._windows import GatheredWindows, stack_inference
from tsrnn.exceptions import InputError


class TimeGrid:
    """The time grid of one series' context: its step as an integer, its future stamps.

    Shared by the successive contexts of a series (``SeriesContext.appended``
    and ``tail`` pass it on). For a fixed step (a ``Tick``), ``step`` is the
    step in the unit of the series' index, and the future index of a
    forecast is a slice of one longer range of stamps made ahead: building
    it with ``pd.date_range`` on every ``predict()`` took a third of the call
    (issue 13); a slice keeps its ``freq`` and costs a tenth of that. Other
    steps (months, business days) make each future index with
    ``FrameLayout.future_index``.

    Parameters
    ----------
    layout : FrameLayout
    unit : str
        Unit of the series' time index (``DatetimeIndex.unit``).
    """

    # Future stamps made beyond the horizon: a new range every this many steps.
    _AHEAD = 256

    def __init__(self, layout, unit):
        self.layout, self.unit = layout, unit
        self.step = None
        if isinstance(layout.offset, pd.offsets.Tick):
            self.step = as_integer(pd.Timedelta(layout.offset).as_unit(unit))
        self._stamps = None  # DatetimeIndex: the steps after some last timestamp

    def future_index(self, context, horizon, name):
        """The ``horizon`` timestamps after the last one of ``context``, named ``name``."""
        if self.step is None:
            return self.layout.future_index(context.last, horizon, name=name)
        stamps = self._stamps
        if stamps is not None and stamps.name == name:
            values = stamps.asi8
            step = values[1] - values[0]
            pos, off = divmod(context.last_value(stamps.unit) - values[0], step)
            # pos counts steps from the first stamp to the last row; the
            # forecast's first stamp is the next one.
            if not off and 0 <= pos + 1 and pos + 1 + horizon <= len(values):
                return stamps[pos + 1 : pos + 1 + horizon]
        self._stamps = self.layout.future_index(context.last, horizon + self._AHEAD, name=name)
        return self._stamps[:horizon]


def future_stamps(contexts, horizon, name):
    """The ``horizon`` timestamps after each context's last row, one run after another.

    For a fleet's ``predict()``: one sum over an array of last timestamps
    where every context has the same fixed step and index dtype, instead of
    a range per series (per-series ranges and frames were most of a first
    ``predict()`` of 10,000 sensors, benchmarks/README.md, "Patience from
    one pass over the windows"). Otherwise each context's own future index.
    """
    first = contexts[0]
    unit, dtype, step = first.grid.unit, first.index_dtype, first.grid.step
    if step is None or any(c.grid.step != step or c.grid.unit != unit
                           or c.index_dtype != dtype for c in contexts):
        parts = [c.future_index(horizon, name) for c in contexts]
        return parts[0].append(parts[1:])
    last = np.fromiter((c.stamp for c in contexts), np.int64, len(contexts))
    return from_integers((last[:, None] + step * np.arange(1, horizon + 1)).ravel(),
                         dtype, name)


class _Rows:
    """Storage of a series' kept rows, with room to grow.

    The successive contexts of a series view slices of one storage: a
    context grown by ``update()`` writes its new rows after the last row
    written, in place, and keeps the tail as a view. Copying the kept rows
    into new arrays at every call cost as much as encoding the row (issue
    13); this copies once per ``room`` rows. ``end`` is how far rows are
    written.
    """

    __slots__ = ("raw", "inputs", "gaps", "end")

    def __init__(self, raw, inputs, gaps, room):
        n = len(raw)
        self.raw = np.empty((n + room, raw.shape[1]), raw.dtype)
        self.inputs = np.empty((n + room, inputs.shape[1]), inputs.dtype)
        self.gaps = np.empty(n + room, bool)
        self.raw[:n], self.inputs[:n], self.gaps[:n] = raw, inputs, gaps
        self.end = n


class SeriesContext:
    """The kept rows of one series on its regular time grid.

    Parameters
    ----------
    raw : ndarray (n, n_columns) float64
        Values of the model columns (targets, past, known-future), NaN where
        missing.
    inputs : ndarray (n, n_inputs) of the model dtype
        The rows encoded (``Encoder.encode_rows``); valid for rows without
        a gap only.
    last : Timestamp or DatetimeIndex
        Timestamp of the last row, or an index ending with it (read when
        needed: making a Timestamp costs as much as encoding a row).
    stamp : int
        The last timestamp as an integer in the unit of the time index (as
        ``asi8``), which the stream compares and counts steps with.
    name : the time index's name
    index_dtype : dtype of the time index (its unit and time zone)
    grid : TimeGrid
    gaps : ndarray (n,) of bool or None
        Rows with a missing value; None computes them from ``raw``.
    n_clean : int or None
        How many of the last rows have no missing value (the windows of a
        stream end there); None computes it from ``gaps``.

    ``raw``, ``inputs`` and ``gaps`` are read as attributes: views of rows
    ``start`` to ``stop`` of a ``_Rows`` storage, shared with the contexts
    grown from this one.
    """

    def __init__(self, raw, inputs, last, stamp, name, index_dtype, grid, gaps=None,
                 n_clean=None):
        gaps = np.isnan(raw).any(axis=1) if gaps is None else gaps
        self._set(_Rows(raw, inputs, gaps, room=len(raw)), 0, len(raw), last, stamp, name,
                  index_dtype, grid, n_clean)

    def _set(self, rows, start, stop, last, stamp, name, index_dtype, grid, n_clean):
        self._rows, self.start, self.stop = rows, start, stop
        self._last, self.stamp = last, stamp
        self.name, self.index_dtype, self.grid = name, index_dtype, grid
        if n_clean is None:
            found = np.flatnonzero(self.gaps)
            n_clean = len(self) - 1 - found[-1] if len(found) else len(self)
        self.n_clean = int(n_clean)
        return self

    def _view(self, rows, start, stop, last, stamp, n_clean):
        """A context of rows ``start`` to ``stop`` of ``rows``, on this one's grid."""
        return SeriesContext.__new__(SeriesContext)._set(
            rows, start, stop, last, stamp, self.name, self.index_dtype, self.grid, n_clean)

    def __reduce__(self):
        # Only the viewed rows, not the storage's room.
        return SeriesContext, (self.raw, self.inputs, self._last, self.stamp, self.name,
                               self.index_dtype, self.grid, self.gaps, self.n_clean)

    @classmethod
    def from_frame(cls, frame, encoder, key=None):
        """The context of a regular frame of series ``key`` (checked for range)."""
        raw = frame.to_numpy(np.float64)
        # The range check of Encoder.encode, for rows the stream will use.
        mean, scale = encoder.stats(key)
        scaled = (raw - mean) / scale
        encoder.check_range(scaled, raw, frame.index, "X")
        index = frame.index
        return cls(raw, encoder.encode_rows(raw, key=key, index=index), index[-1],
                   int(index.asi8[-1]),
                   index.name, index.dtype, TimeGrid(encoder.layout, index.unit))

    @property
    def raw(self):
        return self._rows.raw[self.start : self.stop]

    @property
    def inputs(self):
        return self._rows.inputs[self.start : self.stop]

    @property
    def gaps(self):
        return self._rows.gaps[self.start : self.stop]

    @property
    def layout(self):
        return self.grid.layout

    @property
    def last(self):
        """Timestamp of the last row."""
        if isinstance(self._last, pd.DatetimeIndex):
            self._last = self._last[-1]
        return self._last

    def __len__(self):
        return self.stop - self.start

    @property
    def index(self):
        """The rows' timestamps (a regular DatetimeIndex)."""
        return pd.date_range(end=self.last, periods=len(self), freq=self.layout.offset,
                             name=self.name, unit=self.grid.unit)

    def frame(self):
        """The rows as the frame fit and update saw them (a new copy)."""
        return pd.DataFrame(self.raw.copy(), index=self.index, columns=self.layout.columns)

    def future_index(self, horizon, name):
        """The ``horizon`` timestamps after the last row (``TimeGrid``)."""
        return self.grid.future_index(self, horizon, name)

    def appended(self, raw, inputs, last, stamp, clean=False):
        """A context with rows appended; self is unchanged.

        ``raw`` and ``inputs`` are the new rows, ``last`` and ``stamp`` their
        last timestamp (as for the constructor); ``clean`` says that they have
        no missing value (otherwise it is found out).
        """
        n, rows = len(raw), self._rows
        start, stop = self.start, self.stop + n
        if rows.end != self.stop or stop > len(rows.raw):
            # No room left, or rows were written after this context's already
            # (grown from it by an update() that was then refused): new storage.
            rows = _Rows(self.raw, self.inputs, self.gaps, room=len(self) + n)
            start, stop = 0, len(self) + n
        rows.raw[stop - n : stop] = raw
        rows.inputs[stop - n : stop] = inputs
        rows.gaps[stop - n : stop] = False if clean else np.isnan(raw).any(axis=1)
        rows.end = stop
        return self._view(rows, start, stop, last, stamp, self.n_clean + n if clean else None)

    def tail(self, n):
        """The last n rows."""
        if len(self) <= n:
            return self
        return self._view(self._rows, self.stop - n, self.stop, self._last, self.stamp,
                          min(self.n_clean, n))

    def last_value(self, unit):
        """The last timestamp as an integer in ``unit`` (as ``asi8``)."""
        if unit == self.grid.unit:
            return self.stamp
        return as_integer(self.last.as_unit(unit))

    def clean(self, first, last):
        """Whether rows first .. last (positions) have no missing value."""
        if first >= len(self) - self.n_clean:
            return True
        return not self.gaps[first : last + 1].any()


class StreamingContext:
    """Mixin for ``RNNForecaster``: the kept contexts, their growth and their windows.

    ``self._context`` is ``{series key: SeriesContext}``.
    """

    def _keep(self):
        """Rows kept per series."""
        # Seasonal lag columns read the targets that many rows before the window.
        return max(self.window_ + max(self._encoder.lags, default=0), self.season_)

    def _set_context(self, frames):
        """Keep the tails of regular frames {key: frame} (at fit)."""
        self._context = {
            key: SeriesContext.from_frame(f.iloc[-self._keep() :], self._encoder, key)
            for key, f in frames.items()
        }

    def _ingest_fast(self, X):
        """{None: (grown context, n_old)} for the rows of X, or None.

        None means that X needs the general path (``_ingest``): anything but
        rows of exactly the fitted columns that continue the one series'
        context step by step with finite values in the model's range. This
        path does every check of validate_data (same feature names) and of
        the general path, on arrays.
        """
        layout = self._frame_layout
        ctx = self._context.get(None)
        names = getattr(self, "feature_names_in_", None)
        index = X.index
        if (ctx is None or layout.multi or layout.resample or not len(X) or names is None
                or ctx.grid.step is None  # not a fixed step
                or not isinstance(index, pd.DatetimeIndex)
                or index.dtype != ctx.index_dtype):
            return None
        columns = X.columns.tolist()
        if columns != names.tolist():
            return None
        stamps = index.asi8
        # Same dtype as the context's index: the same unit as its stamp.
        step, last = ctx.grid.step, ctx.stamp
        if len(stamps) == 1:
            if stamps[0] != last + step:
                return None
        elif not np.array_equal(stamps, last + step * np.arange(1, len(stamps) + 1)):
            return None
        try:
            if layout.columns == columns:
                raw = X.to_numpy(np.float64)
            else:
                raw = X[layout.columns].to_numpy(np.float64)
        except (TypeError, ValueError):
            return None  # e.g. a nullable column holding pd.NA
        inputs = self._encoder.encode_rows(raw, checked=True, index=index, before=ctx.raw)
        if inputs is None:
            return None  # a gap, inf or a value beyond the dtype: named by _ingest
        # encode_rows(checked=True) passed: every new value is finite.
        grown = ctx.appended(raw, inputs, index, int(stamps[-1]), clean=True)
        return {None: (grown, len(ctx))}

    def _ingest(self, X):
        """{key: (grown context, n_old)} for the rows of X, through the frames.

        Puts the new rows of every series on the time grid after the kept
        ones and refuses them (InputError naming the series, column and
        timestamp) when they do not follow, are irregular, have gaps that
        ``missing`` does not allow or values beyond the model's range.
        """
        layout = self._frame_layout
        grown = {}
        for key, new in layout.split(X, regularize=False).items():
            old = self._context.get(key)
            if old is not None and len(new) and new.index[0] <= old.last:
                raise InputError(
                    f"update() needs rows after {old.last}, the last timestamp seen"
                    f"{where(key)}; the new rows start at {new.index[0]}."
                )
            combined = new if old is None else pd.concat([old.frame(), new])
            # The kept rows are on the grid already: with freq=, the new rows
            # snap to that grid, and the kept ones stay where they are.
            combined = layout.regularize(combined, key,
                                         anchor=None if old is None else old.last)
            layout.check_gaps(combined, key)
            grown[key] = (SeriesContext.from_frame(combined, self._encoder, key),
                          0 if old is None else len(old))
        return grown

    def _future_rows(self, key, ctx, origins, future, dtype):
        """The rows after each origin (len(origins), horizon, n_inputs), as windows gather them.

        Zeros in the target and past columns, the known values ``future``
        (horizon, n_known), the calendar of the timestamps after each
        origin and the seasonal lag columns, and the future flag set.
        """
        h, encoder = self.horizon, self._encoder
        n_t = len(self._frame_layout.targets)
        last = len(ctx) - 1
        stamps = None if encoder.calendar is None else ctx.future_index(h, ctx.name)
        block = encoder.future_block(future, key, stamps, ctx.raw[:, :n_t])
        block[:, -1] = 1
        if (encoder.calendar is None and not encoder.lags) or list(origins) == [last]:
            return np.broadcast_to(block.astype(dtype), (len(origins),) + block.shape)
        # Several origins: the calendar and lag columns of the context's rows
        # and of the steps after its end, cut for each origin.
        n_cols = len(self._frame_layout.columns)
        extra = np.vstack([ctx.inputs[:, n_cols:-1], block[:, n_cols:-1]])
        rows = np.asarray(origins)[:, None] + np.arange(1, h + 1)
        out = np.repeat(block[None], len(origins), axis=0)
        out[:, :, n_cols:-1] = extra[rows]
        return out.astype(dtype)

    def _context_windows(self, items):
        """Windows of some origins of some contexts, in one batch.

        ``items`` is a list of ``(key, context, origins, future)``, origins
        being positions in the context and future (horizon, n_known) the
        known-future values or None. The windows are cut from the encoded
        rows when none of them holds a gap; otherwise every context is
        encoded from its frame with causal filling, as the batch predict
        encodes its history (``Encoder.encode``, ``ForecastWindows``).
        """
        w, encoder = self.window_, self._encoder
        if encoder.calendar is not None or encoder.lags:
            # The calendar and the seasonal lags of the rows after each
            # origin are known, future= or not (then it holds no known values).
            n_known = len(self._frame_layout.known)
            items = [(key, ctx, o, np.empty((self.horizon, 0)) if f is None and not n_known
                      else f) for key, ctx, o, f in items]
        if all(ctx.clean(min(o) - w + 1, max(o)) for _, ctx, o, _ in items):
            parts = []
            for key, ctx, origins, future in items:
                if len(origins) == 1:
                    X = ctx.inputs[None, origins[0] - w + 1 : origins[0] + 1]
                else:
                    X = np.stack([ctx.inputs[p - w + 1 : p + 1] for p in origins])
                if future is not None:
                    # The future rows as ForecastWindows gathers them: zeros
                    # in the past columns, the known values, the calendar,
                    # the flag set.
                    X = np.concatenate([X, self._future_rows(key, ctx, origins, future,
                                                             X.dtype)], axis=1)
                parts.append(X)
            X = parts[0] if len(parts) == 1 else np.concatenate(parts)
            windows = GatheredWindows(X, self._baseline, self._network_inputs)
            # One "series" per item: its origins are its own rows.
            counts = [len(o) for _, _, o, _ in items]
            windows.scales = self._encoder.item_scales(
                [key for key, _, o, _ in items], np.cumsum([0] + counts[:-1]),
                np.arange(sum(counts)))
            return windows
        records = [self._encoder.encode(ctx.frame(), key, fitting=False, future=future)
                   for key, ctx, _, future in items]
        # encode's future rows follow the context's last row; the rows after
        # an earlier origin are context rows with their own calendar, as a
        # backtest reads them (the windows zero their target and past columns).
        A, offsets, causal = stack_inference(records, self._frame_layout.n_past)
        origins = np.concatenate([o + np.asarray(p) for o, (_, _, p, _) in zip(offsets, items)])
        return self._windows(A, origins, causal=causal,
                             series=([key for key, _, _, _ in items], offsets))
