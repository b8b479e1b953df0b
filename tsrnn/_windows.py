"""The forecaster's arrays: scaled series, stacked, and cut into windows.

Design
------
Encoding. Columns are ordered [targets, past covariates, known-future
covariates], each standardised by one StandardScaler fitted on the training
frame (NaN ignored by the scaler), then the calendar columns computed from
the timestamps (``_calendar.py``; sin/cos, already in [-1, 1], not scaled),
then the seasonal lag columns: for each long season S of ``season_lags``,
the targets S rows earlier (scaled; 0, the training mean, before the data
or in a gap). A lag of S >= horizon is known for the forecast period too,
so a weekly cycle reaches the network and the learned baseline through one
column per target instead of a window a week long.
Targets are inputs too (autoregression). With known-future covariates or
calendar columns the input sequence is ``window + horizon`` steps: the last
``horizon`` steps carry the future values of the known covariates and the
calendar, zeros (the training mean) in the target and past-covariate
columns, and a 0/1 "future" flag column. The head then reads the state after
the last future step. This needs no second network (decoder).

Missing values. During fit, gaps are filled by time interpolation (both
directions at the edges). At inference, filling must not look past the
origin: a gap that closed before the origin is interpolated, a gap still open
at the origin carries the last observation forward, and a column with nothing
observed yet is set to its training mean. ``ForecastWindows`` applies this per
origin with ``last_obs`` (index of the last observed row at or before each
row). With ``missing="mask"`` missing target values stay NaN in the training
targets and add nothing to the loss.

Windows. All series are stacked into one array; a forecast origin ``p`` is a
row index into it, and its input is rows ``p - window + 1 .. p`` (+ the future
rows). Inputs are gathered from a ``sliding_window_view`` of the stack only
for the origins asked for, so memory is O(data + batch). Origins never take
windows across two series. The training targets are changes from the
target's (scaled) value at the origin: the network corrects the persistence
forecast (see ``_forecaster.py`` for why).

Sample weights. ``sample_weight`` of fit is one weight per stacked row, the
weight of the origin at that row (``FrameLayout.split_weights`` carries it
through the split and the grid). ``fit_origins`` drops zero-weight origins
as it drops origins without an observed target, so they are absent from
training, validation, the baseline's choice and calibration; a training view
gives the others' weights with every minibatch.
"""

import warnings

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from tsrnn._baselines import LagBaseline
from tsrnn.exceptions import InputError

# Baselines gather their windows in blocks of about this many bytes.
_GATHER_BYTES = 2**22


class Encoder:
    """Scales and fills the frames of one layout into model arrays.

    Parameters
    ----------
    layout : FrameLayout
    scaler : fitted StandardScaler over ``layout.columns``
    dtype : numpy dtype of the model
    horizon : int
    series_stats : dict or None
    calendar : Calendar or None
        Calendar columns appended after the model columns (``_calendar.py``).
    lags : tuple of int
        Seasonal lags (each >= horizon): the targets that many rows earlier
        are columns after the calendar's.
    """

    def __init__(self, layout, scaler, dtype, horizon, series_stats=None, calendar=None,
                 lags=()):
        self.layout, self.scaler, self.dtype, self.horizon = layout, scaler, dtype, horizon
        self.calendar, self.lags = calendar, tuple(lags)
        # {series key: (mean, scale)} over the model columns, float64, with
        # scaling="series" on several series (empty otherwise): each series
        # is standardised by its own training statistics, so sensors in
        # other units and at other levels reach the network alike. A series
        # not seen in fit is scaled with ``scaler``'s (all series together).
        self.series_stats = {} if series_stats is None else series_stats

    # Pickles of forecasters made before calendar and lag columns existed
    # have none.
    calendar = None
    lags = ()

    @property
    def future_rows(self):
        """Whether the inputs run ``horizon`` rows past the origin (and have the flag)."""
        return bool(self.layout.known) or self.calendar is not None or bool(self.lags)

    def lag_columns(self, targets, n, key=None):
        """Seasonal lag columns (n, n_lags * n_targets) of the last ``n`` rows.

        ``targets`` (m, n_targets) raw targets of the rows up to the last of
        those (m >= n, NaN where missing; the rows before them are unknown):
        for row i, the scaled targets ``lag`` rows earlier, 0 (the training
        mean) where unknown or missing.
        """
        n_t = targets.shape[1]
        mean, scale = self.stats(key)
        scaled = np.nan_to_num((targets - mean[:n_t]) / scale[:n_t])
        out = np.zeros((n, len(self.lags) * n_t))
        m = len(targets)
        for i, lag in enumerate(self.lags):
            # Row j of the last n is row m - n + j of targets; its source m - n + j - lag.
            first = max(0, lag - (m - n))
            if first < n:
                out[first:, i * n_t : (i + 1) * n_t] = scaled[m - n + first - lag : m - lag]
        return out

    def stats(self, key):
        """(mean, scale) that standardise the model columns of series ``key``."""
        found = self.series_stats.get(key)
        if found is None:
            return self.scaler.mean_, self.scaler.scale_
        return found

    def item_scales(self, keys, offsets, origins):
        """Per-origin (mean, scale) of the targets, (n, n_targets) each, or None.

        ``keys`` and ``offsets`` name the stacked series and their first rows;
        None when every series is scaled with ``scaler`` (then
        :meth:`unscale_targets` uses it, as before per-series scaling).
        """
        if not self.series_stats or not any(k in self.series_stats for k in keys):
            return None
        n_t = len(self.layout.targets)
        mean = np.array([self.stats(k)[0][:n_t] for k in keys]).reshape(len(keys), n_t)
        scale = np.array([self.stats(k)[1][:n_t] for k in keys]).reshape(len(keys), n_t)
        series = np.searchsorted(np.asarray(offsets), np.asarray(origins), side="right") - 1
        return mean[series], scale[series]

    def encode(self, frame, key, fitting, future=None):
        """Model arrays of one regular series frame.

        Returns a dict: ``A`` scaled filled inputs (+ future flag column),
        ``Y`` scaled targets (NaN = not a training target), at inference
        ``R`` raw targets (NaN where missing) and ``Rff`` raw targets
        carried forward, and at
        inference with gaps ``causal = (last_obs, ffill)`` for causal filling
        (else None). With ``future`` (horizon, n_known) the arrays get
        ``horizon`` more rows (with calendar columns and no known-future
        covariates, ``future`` is (horizon, 0)), at the timestamps after
        the frame's.
        """
        layout = self.layout
        n_t, n_past = len(layout.targets), layout.n_past
        raw = frame.to_numpy(np.float64)
        observed = ~np.isnan(raw)
        gaps = not observed.all()
        if gaps:
            layout.check_gaps(frame, key)
        # The raw targets serve the backtest's actuals and baselines; a fit
        # needs only the model arrays (and a fleet's copies would add up).
        out = {"causal": None} if fitting else {"R": raw[:, :n_t], "causal": None}
        filled = raw
        if gaps:
            if fitting:
                filled = frame.interpolate(method="time", limit_direction="both")
            else:
                # Closed gaps only; known-future columns are known, so both ways.
                filled = frame.interpolate(method="time", limit_area="inside")
                kf = layout.known
                filled[kf] = frame[kf].interpolate(method="time", limit_direction="both")
            filled = filled.to_numpy(np.float64)
        mean, scale = self.stats(key)
        scaled = (filled - mean) / scale
        self.check_range(scaled, raw, frame.index, "X")
        # A column with nothing observed stays NaN -> 0, its training mean.
        A = np.nan_to_num(scaled)
        Y = A[:, :n_t].copy()
        if layout.missing == "mask":
            Y[~observed[:, :n_t]] = np.nan
        if not fitting:
            out["Rff"] = pd.DataFrame(raw[:, :n_t]).ffill().to_numpy()
        if gaps and not fitting:
            rows = np.arange(len(raw))[:, None]
            last_obs = np.maximum.accumulate(
                np.where(observed[:, :n_past], rows, -1), axis=0
            )
            ffill = pd.DataFrame(raw[:, :n_past]).ffill().to_numpy()
            ffill = np.nan_to_num((ffill - mean[:n_past]) / scale[:n_past])
            out["causal"] = (last_obs, ffill)
        if self.calendar is not None:
            A = np.hstack([A, self.calendar.encode(frame.index)])
        if self.lags:
            A = np.hstack([A, self.lag_columns(raw[:, :n_t], len(raw), key)])
        if self.future_rows:
            A = np.hstack([A, np.zeros((len(A), 1))])
        if future is not None:
            stamps = layout.future_index(frame.index[-1], self.horizon)
            A = np.vstack([A, self.future_block(future, key, stamps, raw[:, :n_t])])
            pad = np.full((self.horizon, n_t), np.nan)
            Y, out["R"], out["Rff"] = (np.vstack([a, pad]) for a in (Y, out["R"], out["Rff"]))
            if out["causal"] is not None:
                last_obs, ffill = out["causal"]
                out["causal"] = (
                    np.vstack([last_obs, np.repeat(last_obs[-1:], self.horizon, 0)]),
                    np.vstack([ffill, np.zeros((self.horizon, n_past))]),
                )
        out["A"] = A.astype(self.dtype, copy=False)
        out["Y"] = Y.astype(self.dtype, copy=False)
        return out

    def future_block(self, future, key=None, stamps=None, history=None):
        """Input rows (horizon, n_inputs) of known-future values (horizon, n_known).

        Zeros (the training mean) in the target and past-covariate columns and
        in the future flag, which the windows set (``ForecastWindows``); the
        calendar columns of ``stamps`` (the ``horizon`` timestamps after the
        origin) and the seasonal lag columns of ``history`` (raw targets up
        to the origin) when there are any.
        """
        n_past, n_cols = self.layout.n_past, len(self.layout.columns)
        n_cal = len(self.calendar or ())
        mean, scale = self.stats(key)
        block = np.zeros((self.horizon, self.n_inputs))
        scaled = (future - mean[n_past:]) / scale[n_past:]
        steps = [f"step {i} after the history" for i in range(1, self.horizon + 1)]
        self.check_range(scaled, future, steps, "future", first=n_past)
        block[:, n_past:n_cols] = scaled
        if self.calendar is not None:
            block[:, n_cols : n_cols + n_cal] = self.calendar.encode(stamps)
        if self.lags:
            # The horizon rows after the history: lags >= horizon reach into it.
            padded = np.vstack([history, np.full((self.horizon, history.shape[1]), np.nan)])
            block[:, n_cols + n_cal : -1] = self.lag_columns(padded, self.horizon, key)
        return block

    @property
    def n_inputs(self):
        """Columns of the model's inputs: the model's, calendar, lags and the flag."""
        return (len(self.layout.columns) + len(self.calendar or ())
                + len(self.lags) * len(self.layout.targets) + int(self.future_rows))

    def encode_rows(self, raw, checked=False, key=None, index=None, before=None):
        """Model inputs (n, n_inputs) of rows without gaps, one row at a time.

        Row for row what :meth:`encode` gives a frame whose rows are all
        observed (scaled, + the calendar columns of ``index``, their
        timestamps, + the seasonal lag columns, from these rows and the raw
        rows ``before`` them, + the future flag column); streaming encodes only
        the new rows with it. With ``checked``, None when a value is not
        finite or standardises beyond the dtype (the caller then takes the
        path that names it); otherwise the caller checks the range.
        """
        mean, scale = self.stats(key)
        scaled = (raw - mean) / scale
        if checked:
            # The largest magnitude is NaN when a value is: it fails the
            # comparison too, so every row that passes is finite and there
            # is nothing for nan_to_num to replace. (One reduction: np.all
            # of the comparison cost as much as encoding the row.)
            if not np.abs(scaled).max(initial=0.0) <= np.finfo(self.dtype).max:
                return None
            A = scaled
        else:
            A = np.nan_to_num(scaled)
        if self.calendar is not None:
            A = np.hstack([A, self.calendar.encode(index)])
        if self.lags:
            n_t = len(self.layout.targets)
            targets = raw[:, :n_t] if before is None else np.vstack([before[:, :n_t],
                                                                     raw[:, :n_t]])
            A = np.hstack([A, self.lag_columns(targets, len(raw), key)])
        if self.future_rows:
            A = np.hstack([A, np.zeros((len(A), 1))])
        return A.astype(self.dtype, copy=False)

    def check_range(self, scaled, raw, index, what, first=0):
        """Raise for inf, or values that standardise beyond the model's dtype.

        Either would otherwise reach the kernels (nan_to_num turns inf into
        1.8e308) and fail there with a message about their argument ``x``.
        """
        limit = np.finfo(self.dtype).max
        bad = np.abs(scaled) > limit  # NaN compares False: gaps are handled elsewhere
        if not bad.any():
            return
        row, j = (int(i) for i in np.argwhere(bad)[0])
        col, value = self.layout.columns[first + j], raw[row, j]
        place = f"{what} column {col!r} at {index[row]}"
        if np.isinf(value):
            raise InputError(f"{place} is {value}; replace it with a finite number.")
        raise InputError(
            f"{place} is {value:g}, which is outside the range of {self.dtype} "
            f"once standardised with the training mean and scale of {col!r}. "
            "Check the units, or fit with dtype=np.float64."
        )

    def unscale_targets(self, Z, scales=None, out=None):
        """Scaled target values (n, ..., n_targets, n_q) back to original units.

        ``scales``: the per-origin (mean, scale) of ``item_scales``, or None
        for ``scaler``'s. ``out=Z`` unscales in place (the same roundings
        as ``Z * scale + mean``, without a backtest's temporaries).
        """
        n_t = len(self.layout.targets)
        if scales is None:
            mean, scale = self.scaler.mean_[:n_t, None], self.scaler.scale_[:n_t, None]
        else:
            shape = (len(Z),) + (1,) * (Z.ndim - 3) + (n_t, 1)
            mean, scale = scales[0].reshape(shape), scales[1].reshape(shape)
        out = np.multiply(Z, scale, out=out)
        return np.add(out, mean, out=out)


# Rows of the training frame the scaler is fitted on at once (see scaler_blocks).
_SCALER_BLOCK_ROWS = 1 << 20


def scaler_blocks(arrays):
    """Consecutive arrays concatenated into blocks of at least ``_SCALER_BLOCK_ROWS`` rows.

    The scaler is fitted block by block (``partial_fit``), so that a fleet's
    values are never copied as a whole; a frame of fewer rows is one block,
    fitted exactly as ``StandardScaler().fit`` would fit it.
    """
    block, n = [], 0
    for a in arrays:
        block.append(a)
        n += len(a)
        if n >= _SCALER_BLOCK_ROWS:
            yield block[0] if len(block) == 1 else np.concatenate(block)
            block, n = [], 0
    if block:
        yield block[0] if len(block) == 1 else np.concatenate(block)


def series_statistics(raws, scaler):
    """{key: (mean, scale)} of the model columns of each series' rows.

    NaN is ignored, as StandardScaler ignores it; a column a series never
    observes takes ``scaler``'s moments, and a constant one the scale 1
    (StandardScaler's rule), so that it standardises to 0.
    """
    out = {}
    eps = 10 * np.finfo(np.float64).eps
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        for key, raw in raws.items():
            mean = np.nanmean(raw, axis=0)
            scale = np.sqrt(np.nanvar(raw, axis=0))
            unseen = np.isnan(mean)
            mean[unseen] = scaler.mean_[unseen]
            scale[unseen] = scaler.scale_[unseen]
            scale[~(scale > eps * np.maximum(1.0, np.abs(mean)))] = 1.0
            out[key] = (mean, scale)
    return out


def check_no_infinity(raws, index_of, layout):
    """Refuse an infinite value before the scaler sees it, naming column and timestamp.

    ``raws`` is {series key: (n, n_columns) float64 values of the model
    columns}, ``index_of(key)`` that series' time index. scikit-learn's
    scaler would refuse it too, but with a message about "Input X" that
    names neither.
    """
    for key, raw in raws.items():
        bad = np.isinf(raw)
        if bad.any():
            row, j = (int(i) for i in np.argwhere(bad)[0])
            where = "" if key is None else f" in series {key!r}"
            raise InputError(
                f"X column {layout.columns[j]!r}{where} at {index_of(key)[row]} is "
                f"{raw[row, j]}; replace it with a finite number (or NaN for a gap)."
            )


def check_scaler(scaler, layout):
    """Refuse columns the model cannot learn from instead of forecasting NaN."""
    mean, var = scaler.mean_, scaler.var_
    n_t = len(layout.targets)
    unobserved = np.isnan(mean[:n_t])
    if unobserved.any():
        col = layout.targets[int(np.argmax(unobserved))]
        raise InputError(f"Target column {col!r} has no observed value in X.")
    # A column with nothing observed has NaN moments (its inputs become the
    # training mean, 0); an observed one with non-finite moments overflowed.
    overflow = ~np.isnan(mean) & ~(np.isfinite(mean) & np.isfinite(var))
    if overflow.any():
        col = layout.columns[int(np.argmax(overflow))]
        raise InputError(
            f"Column {col!r} has values too large to standardise (its variance "
            "overflows float64). Rescale it, e.g. express it in larger units."
        )


def stack(records, names):
    """Concatenate arrays of several series: [arrays...] + [row offsets]."""
    offsets = np.cumsum([0] + [len(r["A"]) for r in records[:-1]])
    return [np.concatenate([r[name] for r in records]) for name in names] + [offsets]


def stack_inference(records, n_past):
    """(A, offsets, causal) of several series encoded for inference."""
    A, offsets = stack(records, ["A"])
    causal = None
    if any(r["causal"] is not None for r in records):
        last_obs, ffill = [], []
        for r, o in zip(records, offsets):
            lo, ff = r["causal"] or (
                np.repeat(np.arange(len(r["A"]))[:, None], n_past, 1),
                np.zeros((len(r["A"]), n_past)),
            )
            # -1 ("nothing observed yet") becomes o - 1: before the series.
            last_obs.append(lo + o)
            ffill.append(ff)
        causal = (np.concatenate(last_obs), np.concatenate(ffill).astype(A.dtype))
    return A, offsets, causal


def fit_origins(lengths, offsets, Y, window, horizon, validation_fraction=None,
                weights=None, check=True):
    """Training origins and, with a validation fraction, validation origins.

    Origins whose horizon holds no observed target (``missing="mask"``) are
    dropped: they would only dilute the batches. So are origins whose
    ``weights`` (one per stacked row, the weight of the origin at that row)
    are zero: a zero weight means the origin is absent, in the loss, the
    validation score, the baseline's fit and the band's calibration. With
    ``validation_fraction``, the last ``ceil(fraction * n)`` rows of every
    series are validation targets and training targets end before them.
    Returns ``(train, val)``, val None without a fraction. With
    ``check=False`` (a fleet's partitions, each only part of the data),
    ``(train, val, unweighted)`` without the checks, which
    :func:`check_origins` then makes on the totals.
    """
    w, h = window, horizon
    # Observed targets in rows 0 .. r-1.
    seen = np.concatenate([[0], np.cumsum(~np.isnan(Y).all(axis=1))])
    train, val, unweighted = [], [], [0, 0]
    for n, o in zip(lengths, offsets):
        origins = np.arange(w - 1, n - h)
        origins = origins[seen[o + origins + h + 1] > seen[o + origins + 1]]
        cut = n if validation_fraction is None else n - int(np.ceil(validation_fraction * n))
        # Origins there would be without weights, for the messages below.
        unweighted[0] += int(np.sum(origins + h <= cut - 1))
        unweighted[1] += int(np.sum(origins >= cut - 1))
        if weights is not None:
            origins = origins[weights[o + origins] > 0]
        if validation_fraction is not None:
            val.append(o + origins[origins >= cut - 1])
            origins = origins[origins + h <= cut - 1]
        train.append(o + origins)
    train = np.concatenate(train)
    val = np.concatenate(val) if validation_fraction is not None else None
    if not check:
        return train, val, unweighted
    check_origins(len(train), None if val is None else len(val), unweighted, max(lengths),
                  window, horizon, validation_fraction)
    return train, val


def check_origins(n_train, n_val, unweighted, longest, window, horizon,
                  validation_fraction=None):
    """Refuse data with no training origin, or no held-out one (see ``fit_origins``).

    ``unweighted``: the training and held-out origins there would be
    without the weights; ``longest``: the longest series' rows.
    """
    w, h = window, horizon
    if not n_train and unweighted[0]:
        raise InputError(
            "sample_weight is zero at every training origin: a forecast origin "
            f"needs window={w} rows up to it and horizon={h} rows after it"
            + (
                f", before the last {validation_fraction:g} of each series (the "
                "held-out block)"
                if validation_fraction is not None else ""
            )
            + "; give some of those rows a positive weight."
        )
    if not n_train:
        raise InputError(
            f"Too few rows to train: an example needs window={w} + horizon={h} = "
            f"{w + h} consecutive rows, but the longest series has {longest}"
            + (
                f" (early_stopping keeps its last {validation_fraction:g} "
                "for validation)"
                if validation_fraction is not None else ""
            )
            + "."
        )
    if validation_fraction is None:
        return
    if not n_val and unweighted[1]:
        raise InputError(
            "sample_weight is zero at every origin of the held-out block (the last "
            f"{validation_fraction:g} of each series' rows, which early stopping, "
            "the choice of the baseline and the band's calibration score on); give "
            "some of its rows a positive weight."
        )
    if not n_val:
        raise InputError(
            f"The validation block is too short: early_stopping holds out the last "
            f"{validation_fraction:g} of each series' rows, which must span "
            f"at least horizon={h} rows. Increase validation_fraction or the data."
        )


def seasonal_lags(horizon, season):
    """Rows before the origin holding the seasonal-naive value of each step.

    Step k (1-based) repeats the value of the same phase in the last observed
    season: ``season * ceil(k / season) - k`` rows before the origin (0, the
    origin itself, when k is a multiple of the season).
    """
    steps = np.arange(1, horizon + 1)
    return season * -(-steps // season) - steps


class ForecastWindows:
    """Inputs (and training targets) of a set of forecast origins.

    Behaves as a read-only 3-D array of shape (n_origins, length, n_inputs)
    whose row slices gather the network inputs of those origins (``shape``,
    ``ndim``, ``windows[a:b]``), so the network's blocked prediction runs
    over it without the whole array ever existing, and as a training view
    (``n_items``, ``n_rows``, ``batch``, ``prefix``) for the training loop.

    The network forecasts each step as a change from a baseline forecast
    made from the same window (``_baselines.py``).

    Parameters
    ----------
    A : ndarray (n_rows, n_inputs)
        Stacked, scaled, filled model inputs of all series.
    origins : ndarray of int
        Row index of the last observed row of each item.
    window, horizon : int
    n_past, n_targets : int
        Number of leading columns (targets + past covariates) that are
        unknown after the origin, and of targets among them.
    future : bool
        Inputs run ``horizon`` steps past the origin (known-future covariates).
        The last column of A is then the future flag.
    Y : ndarray (n_rows, n_targets) or None
        Scaled targets (NaN = not observed), for training.
    causal : (last_obs, ffill) or None
        ``last_obs`` (n_rows, n_past) int: row of the last observed value at
        or before each row (``offset - 1`` of the series when none);
        ``ffill`` (n_rows, n_past): scaled last observation (0 when none).
        Given at inference when the data have gaps.
    baseline : callable or None
        Maps gathered windows (B, length, n_inputs) to the baseline forecast
        (B, horizon, n_targets) the network corrects (``_baselines.py``);
        None: persistence.
    W : ndarray (n_rows,) or None
        Weight of the origin at each row (``sample_weight``), for training:
        ``batch`` then gives each item's weight, in the model's dtype.
    """

    prefix = None  # no short-history sequence: every origin has a full window
    ndim = 3
    # Training views: origins per series (set by the forecaster), which the
    # training budget shares its draws among (``_sampling.py``).
    groups = None
    # Per-origin (mean, scale) of the targets with per-series scaling
    # (``Encoder.item_scales``), for unscaling the forecasts; None: global.
    scales = None

    def __init__(self, A, origins, window, horizon, n_past, n_targets, future, Y=None,
                 causal=None, baseline=None, W=None, network_inputs=None):
        self.origins = np.asarray(origins, dtype=np.intp)
        self.n_items = self.n_rows = len(self.origins)
        self.window, self.horizon, self.n_past, self.future = window, horizon, n_past, future
        self.n_targets = n_targets
        if baseline is None:
            baseline = LagBaseline(np.zeros((horizon, n_targets), np.intp), window)
        self.baseline = baseline
        self.length = window + horizon if future else window
        self.shape = (self.n_items, self.length, A.shape[1])
        # The network's inputs (``_network_inputs.py``); None: the windows as gathered.
        self.network_inputs = network_inputs
        self._A = A
        # (n_rows - length + 1, length, n_inputs): a strided view, no copy.
        self._inputs = sliding_window_view(A, self.length, axis=0).transpose(0, 2, 1)
        self._Y = Y
        self.causal = causal
        self._W = W

    def __getitem__(self, rows):
        if isinstance(rows, slice):
            # The network's blocks are slices: np.arange(n_items)[rows] made
            # an array of every origin for each block (a fleet's replay:
            # 38,000 blocks of 131,072, 1.5 s).
            return self.inputs(np.arange(*rows.indices(self.n_items)))
        return self.inputs(np.arange(self.n_items)[rows])

    def _gather(self, idx):
        """Scaled, causally filled inputs of some origins (a copy)."""
        p = self.origins[idx]
        X = self._inputs[p - self.window + 1]  # fancy indexing: a copy of the batch
        if self.causal is not None:
            last_obs, ffill = self.causal
            rows = (p - self.window + 1)[:, None] + np.arange(self.window)  # (B, W)
            # A row after the last observation at or before p is in a gap that
            # is still open at the origin: carry that observation forward.
            open_gap = rows[:, :, None] > last_obs[p][:, None, :]  # (B, W, n_past)
            past = X[:, : self.window, : self.n_past]
            carried = np.broadcast_to(ffill[p][:, None, :], past.shape)
            past[open_gap] = carried[open_gap]
        if self.future:
            X[:, self.window :, : self.n_past] = 0
            X[:, self.window :, -1] = 1
        return X

    def inputs(self, idx):
        X = self._gather(idx)
        return X if self.network_inputs is None else self.network_inputs(X)

    def baselines(self, idx=slice(None)):
        """Baseline forecasts (n, horizon, n_targets) of some origins.

        Their windows are gathered a block at a time, as prediction does.
        """
        idx = np.arange(self.n_items)[idx]
        out = np.empty((len(idx), self.horizon, self.n_targets))
        block = max(1, _GATHER_BYTES // (self.length * self.shape[2] * self._A.itemsize))
        # Plain slices: sklearn's gen_batches validates its arguments on every
        # call, which costs more than a streamed forecast's baseline.
        for rows in (slice(i, min(i + block, len(idx))) for i in range(0, len(idx), block)):
            out[rows] = self.baseline(self._gather(idx[rows]))
        return out

    def future_targets(self, idx):
        """Scaled targets of the ``horizon`` rows after some origins (B, h, n_t)."""
        return self._Y[self.origins[idx][:, None] + np.arange(1, self.horizon + 1)]

    def targets(self, idx=slice(None)):
        """Training targets of some origins: changes from the baselines, flattened."""
        idx = np.arange(self.n_items)[idx]
        Y = self.future_targets(idx) - self.baselines(idx)
        return Y.reshape(len(idx), -1).astype(self._A.dtype, copy=False)

    def weights(self, idx=slice(None)):
        """Weights of some origins (n,) in the model's dtype, or None."""
        if self._W is None:
            return None
        return self._W[self.origins[idx]].astype(self._A.dtype)

    def n_rows_of(self, idx):
        return len(idx)

    def batch(self, idx):
        X = self._gather(idx)
        Y = self.future_targets(idx) - self.baseline(X)
        Y = Y.reshape(len(idx), -1).astype(X.dtype, copy=False)
        if self.network_inputs is not None:
            X = self.network_inputs(X)  # after the baseline has read the window
        if self._W is None:
            return X, Y
        return X, Y, self.weights(idx)


class GatheredWindows:
    """Inputs of some forecast origins, already gathered into one array.

    The inference side of :class:`ForecastWindows` (``shape``, ``n_items``,
    row slices, ``baselines``) over an array (B, length, n_inputs) that the
    streaming context cut from the rows it keeps (``_stream_context.py``).

    Parameters
    ----------
    X : ndarray (B, length, n_inputs)
    baseline : callable, as for ForecastWindows
    """

    ndim = 3
    scales = None  # as ForecastWindows.scales

    def __init__(self, X, baseline, network_inputs=None):
        self.X, self.baseline = X, baseline
        self.shape, self.n_items = X.shape, len(X)
        self.network_inputs = network_inputs

    def __getitem__(self, rows):
        net = self.network_inputs
        if net is None or net.identity:
            return self.X[rows]
        return net(np.array(self.X[rows]))  # a copy: X is the baseline's too

    def baselines(self):
        return np.asarray(self.baseline(self.X), dtype=np.float64)
