"""``RNNForecaster.fit`` on a dask DataFrame: the fleet stays on the workers.

Design
------
A fleet stored as partitioned parquet may not fit in the memory of the
process that trains. The training loop (``_base.py``) never needs it there:
an epoch trains on the windows the training budget draws (``_sampling.py``,
a pure function of a seed, the epoch and the number of windows of each
series), the baseline's choice reads at most ``MAX_FIT_WINDOWS`` evenly
spaced windows, and early stopping and the band read a fixed sample of the
held-out block. Everything else fit learns from the data is a sum over
series. So this module is the forecaster's data adapter for a dask frame
(the counterpart of ``_prepare_fit``'s pandas body), and the loop is the
same one:

1. Per partition (the pandas code of the pandas path, on the worker): the
   partition in the forecaster's layout (``_dask_frames.partition_frame``),
   its series split and put on the time grid, with every check of a pandas
   fit; the scaler's moments of the partition. Kept on the workers.
2. On the client, reductions: the scaler (moments combined as Chan et al.
   combine variances), the step (one for all partitions), the season.
3. Per partition: each series' own statistics (``scaling="series"``), the
   series encoded into model arrays, kept on the workers; back come the
   series' statistics and lengths, the parts of the MASE scale and of the
   band's level rule, and the last rows of every series (the context of
   ``predict()``), all O(series), none O(rows).
4. The baseline and the window (``_baseline_choice.py``) from the windows
   its choice reads, fetched from the workers (``FleetOrigins``).
5. The training and held-out origins, per partition, kept on the workers;
   the client gets the number of each series' origins, which is all the
   sampler needs. The held-out sample is fetched once; every epoch's
   windows are fetched when the loop starts the epoch (``FleetWindows``,
   through the view's ``epoch`` hook), so the client holds one epoch's
   sample at a time: its memory is bounded by ``max_windows_per_epoch``,
   not by the fleet.

Fetching. Items (windows) are numbered in series order, series in partition
order, so an item names its partition through the partitions' item counts.
A worker returns, for each item asked, rows ``origin - window + 1 ..
origin + horizon`` of its model arrays; the client stacks them into a small
array in which each item's window sits at a known row, and a
``ForecastWindows`` over it gathers exactly the values the pandas path
gathers from the whole stack. So the same data with the same partitioning
and ``random_state`` give the same model, and (the sums of step 2 aside,
whose rounding depends on the partitioning) the model a pandas fit of the
concatenated partitions gives.

Only dask's collections are used: ``to_delayed`` per partition (its results
are arrays and dicts, not frames), ``dask.persist`` to keep them on the
workers and ``dask.compute`` for the reductions and fetches, with whatever
scheduler is active (the user's ``Client``, or dask's local one). A worker
lost mid-fit is dask's to recover: its partitions are recomputed from the
graph (re-read), and the fit continues with the same values; a failure dask
gives up on raises out of ``fit``, which then leaves the forecaster
unfitted (``_base._fit``).
"""

import copy
import warnings

import numpy as np
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import validate_data

from tsrnn._baselines import evenly_spaced
from tsrnn._calibration import level_parts, level_scaled_from_parts
from tsrnn._dask_frames import check_whole_series, partition_frame
from tsrnn._frames import FrameLayout, check_frame, default_season, where
from tsrnn._sampling import fixed_sample
from tsrnn._windows import (
    Encoder,
    check_no_infinity,
    check_origins,
    check_scaler,
    fit_origins,
    scaler_blocks,
    series_statistics,
    stack,
)
from tsrnn.exceptions import InputError
from tsrnn.metrics import _seasonal_naive_scale, _seasonal_naive_sums


# ----------------------------------------------------------------------
# On the workers: pure functions of one partition
# ----------------------------------------------------------------------
def _regular_series(part, layout, series_id, freq):
    """{key: regular frame} of one partition, its step and scaler moments."""
    frame = partition_frame(part, series_id)
    if not len(frame):
        return {"frames": {}, "offset": None, "scaler": None}
    layout = copy.copy(layout)  # set_step sets the step; the caller's stays as is
    frames = layout.split(frame, regularize=False)
    layout.set_step(frames, freq)
    frames = {key: layout.regularize(f, key) for key, f in frames.items()}
    raws = {key: f.to_numpy(np.float64) for key, f in frames.items()}
    check_no_infinity(raws, lambda key: frames[key].index, layout)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # overflow: check_scaler names it
        scaler = StandardScaler()
        for block in scaler_blocks(list(raws.values())):
            scaler.partial_fit(block)
    return {"frames": frames, "offset": layout.offset, "scaler": scaler}


def _describe(regular):
    """What the client reduces from step 1: series, lengths, step, scaler."""
    return {
        "keys": list(regular["frames"]),
        "lengths": [len(f) for f in regular["frames"].values()],
        "offset": regular["offset"],
        "scaler": regular["scaler"],
    }


def _encode(regular, layout, scaler, dtype, horizon, per_series, season, keep,
            calendar, lags):
    """Model arrays of one partition's series, and its parts of the reductions."""
    frames = regular["frames"]
    n_t = len(layout.targets)
    raws = {key: f.to_numpy(np.float64) for key, f in frames.items()}
    stats = series_statistics(raws, scaler) if per_series else None
    encoder = Encoder(layout, scaler, dtype, horizon, stats, calendar, lags)
    targets = [raw[:, :n_t] for raw in raws.values()]
    block = season if season > 1 else 2
    state = {
        "keys": list(frames),
        "lengths": [len(f) for f in frames.values()],
        "stats": stats,
        "mase": _seasonal_naive_sums(targets, season) if targets else None,
        "level": [level_parts([y[:, j] for y in targets], block) for j in range(n_t)],
        # The rows predict() forecasts from (the longest window it may need).
        "tails": {key: f.iloc[-keep:] for key, f in frames.items()},
    }
    del raws, targets
    if frames:
        records = [encoder.encode(f, key, fitting=True) for key, f in frames.items()]
        state["A"], state["Y"], state["offsets"] = stack(records, ["A", "Y"])
    return state


def _summary(state):
    return {name: state[name] for name in ("keys", "lengths", "stats", "mase", "level")}


def _tails(state):
    return state["tails"]


def _origins(state, window, horizon, fraction):
    """The partition's training (and held-out) origins, and their counts per series."""
    if "A" not in state:
        empty = np.zeros(0, np.intp)
        val = None if fraction is None else empty
        return {"train": empty, "val": val, "train_groups": empty, "val_groups": val,
                "unweighted": [0, 0]}
    lengths, offsets = state["lengths"], state["offsets"]
    train, val, unweighted = fit_origins(lengths, offsets, state["Y"], window, horizon,
                                         fraction, check=False)
    out = {"train": train, "val": val, "unweighted": unweighted}
    for name, origins in (("train", train), ("val", val)):
        if origins is not None:
            series = np.searchsorted(offsets, origins, side="right") - 1
            out[name + "_groups"] = np.bincount(series, minlength=len(lengths))
    return out


def _counts(origins):
    return {name: origins.get(name) for name in ("train_groups", "val_groups", "unweighted")}


def _take(state, origins, which, items, before, after):
    """Rows ``origin - before + 1 .. origin + after`` of some items, stacked."""
    o = origins[which][items]
    rows = (o[:, None] + np.arange(1 - before, after + 1)).ravel()
    return state["A"][rows], state["Y"][rows]


# ----------------------------------------------------------------------
# On the client
# ----------------------------------------------------------------------
def _combine_scalers(scalers):
    """One StandardScaler from the scalers of disjoint row sets.

    Counts add, means are count-weighted, and the variance adds each part's
    spread about the overall mean (Chan, Golub and LeVeque); a column a
    part never observed (count 0) adds nothing. One part is returned as it
    is, so a dask frame of one partition scales exactly as pandas does.
    """
    scalers = [s for s in scalers if s is not None]
    if len(scalers) == 1:
        return scalers[0]
    n_cols = scalers[0].n_features_in_
    n = np.array([np.broadcast_to(s.n_samples_seen_, n_cols) for s in scalers], float)
    means = np.array([np.where(k > 0, s.mean_, 0.0) for s, k in zip(scalers, n)])
    variances = np.array([np.where(k > 0, s.var_, 0.0) for s, k in zip(scalers, n)])
    total = n.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):  # unobserved: NaN, as sklearn
        mean = (n * means).sum(axis=0) / total
        var = (n * (variances + (means - mean) ** 2)).sum(axis=0) / total
    scaler = StandardScaler()
    scaler.n_features_in_ = n_cols
    counts = total.astype(np.int64)
    scaler.n_samples_seen_ = counts[0] if np.ptp(counts) == 0 else counts
    scaler.mean_, scaler.var_ = mean, var
    # StandardScaler's rule for a constant column: a variance within rounding
    # of zero scales by 1 (sklearn.preprocessing._data._is_constant_feature).
    eps = np.finfo(np.float64).eps
    constant = var <= total * eps * var + (total * mean * eps) ** 2
    scale = np.sqrt(var)
    scale[constant | (scale == 0)] = 1.0
    scaler.scale_ = scale
    return scaler


class _Partitions:
    """The fleet's encoded partitions, kept on the workers, and their series."""

    def __init__(self, dask, states, keys, lengths, parts):
        self.dask, self.states = dask, states
        self.keys, self.lengths = keys, lengths
        self.parts = parts  # series of each partition, in order

    def origins(self, window, horizon, fraction):
        """Origins of every partition, kept on the workers (``FleetOrigins``)."""
        dask = self.dask
        delayed = dask.delayed(_origins, pure=True)
        kept = dask.persist(*[delayed(s, window, horizon, fraction) for s in self.states])
        counts = dask.compute(*[dask.delayed(_counts)(o) for o in kept])
        return FleetOrigins(self, kept, counts, window, horizon, fraction)


class FleetOrigins:
    """Forecast origins of a fleet on the workers: counts here, windows on demand.

    ``train_groups`` and ``val_groups`` count each series' origins. Items
    are numbered in series order; :meth:`fetch` brings some items' rows.
    ``sample`` is the baseline choice's source protocol (``StackedOrigins``).
    """

    def __init__(self, fleet, kept, counts, window, horizon, fraction):
        self.fleet, self.kept = fleet, kept
        self.window, self.horizon, self.fraction = window, horizon, fraction
        self.lengths = fleet.lengths
        self.groups = {}
        for which in ("train", "val"):
            per = [c[which + "_groups"] for c in counts]
            if per and per[0] is None:
                continue
            self.groups[which] = np.concatenate(
                [np.asarray(g, np.int64) for g in per]) if per else np.zeros(0, np.int64)
        self.unweighted = np.sum([c["unweighted"] for c in counts], axis=0)
        # First item of every partition (and the total), for item -> partition.
        self._bounds = {
            which: np.cumsum([0] + [int(g.sum()) for g in np.split(groups, np.cumsum(
                [len(p) for p in fleet.parts])[:-1])])
            for which, groups in self.groups.items()
        }

    def bounds(self, which):
        """The first item of every partition, and the number of items."""
        return self._bounds[which]

    def check(self):
        """``fit_origins``' errors for the fleet as a whole."""
        check_origins(int(self.groups["train"].sum()),
                      int(self.groups["val"].sum()) if "val" in self.groups else None,
                      self.unweighted, max(self.lengths), self.window, self.horizon,
                      self.fraction)

    def fetch(self, which, items, window=None):
        """(A, Y, origins, series) of ``items``: a small stack and their rows in it.

        ``series`` is each item's series number. The rows are those from
        ``window - 1`` before the origin to ``horizon`` after it.
        """
        window = self.window if window is None else window
        length = window + self.horizon
        items = np.asarray(items, np.int64)
        order = np.argsort(items, kind="stable")
        ranked = items[order]
        bounds = self._bounds[which]
        where_ = np.searchsorted(bounds, ranked, side="right") - 1
        dask = self.fleet.dask
        tasks = []
        for p in np.unique(where_):
            local = ranked[where_ == p] - bounds[p]
            tasks.append(dask.delayed(_take, pure=True)(
                self.fleet.states[p], self.kept[p], which, local, window, self.horizon))
        fetched = dask.compute(*tasks)
        A = np.concatenate([a for a, _ in fetched])
        Y = np.concatenate([y for _, y in fetched])
        # Item i's window is the rank(i)-th block of ``length`` rows.
        rank = np.empty(len(items), np.intp)
        rank[order] = np.arange(len(items))
        origins = rank * length + window - 1
        series_of = self._series_of(which, items)
        return A, Y, origins, series_of

    def _series_of(self, which, items):
        ends = np.cumsum(self.groups[which])
        return np.searchsorted(ends, items, side="right")

    def pick(self, at_most=None):
        """``StackedOrigins.sample``'s answer: at most ``at_most`` of each, evenly spaced."""
        picks = {}
        for which, groups in self.groups.items():
            n = int(groups.sum())
            picks[which] = np.arange(n) if at_most is None else evenly_spaced(n, at_most)
        A, Y, fit, _ = self.fetch("train", picks["train"])
        if "val" not in picks:
            return (A, Y, None), fit, None
        A_val, Y_val, val, _ = self.fetch("val", picks["val"])
        val = val + len(A)
        return (np.concatenate([A, A_val]), np.concatenate([Y, Y_val]), None), fit, val


class FleetWindows:
    """The training view of a fleet: each epoch's windows fetched from the workers.

    The members of ``_data.py``'s protocol; ``epoch(order)`` fetches the
    items an epoch trains on and returns a ``ForecastWindows`` over them
    that answers ``batch`` with the global item numbers the loop uses.
    """

    prefix = None

    def __init__(self, origins, est, averaging=None):
        self.origins, self.est, self.averaging = origins, est, averaging
        self.groups = origins.groups["train"]
        self.n_items = self.n_rows = int(self.groups.sum())
        self._all = None  # every item, when an epoch reads them all (no budget)
        self._rounds = None

    def n_rows_of(self, idx):
        return len(idx)

    def epoch(self, order):
        if self.averaging is not None:
            # Trained on the workers (``_averaging.py``); set up at the first
            # epoch, when the weights and the random state exist.
            if self._rounds is None:
                from tsrnn._averaging import ParameterAveraging

                client, frequency = self.averaging
                self._rounds = ParameterAveraging(self.est, self.origins, client, frequency)
            return self._rounds.epoch(order)
        if len(order) == self.n_items:
            if self._all is None:
                self._all = self._fetch(np.arange(self.n_items))
            return self._all
        return self._fetch(order)

    def _fetch(self, items):
        items = np.sort(items)
        A, Y, origins, _ = self.origins.fetch("train", items)
        return _ItemView(forecast_windows(self.est, A, origins, Y), items)


class _ItemView:
    """``batch`` of a ForecastWindows over fetched ``items``, by global item number."""

    def __init__(self, windows, items):
        self.windows, self.items = windows, items

    def batch(self, idx):
        return self.windows.batch(np.searchsorted(self.items, idx))


def prepare_fit(est, X, first_pass, sample_weight=None):
    """``_prepare_fit`` of a dask DataFrame: ``(n_features, train, val)``."""
    import dask

    if sample_weight is not None:
        raise TypeError(
            "sample_weight is not supported with a dask DataFrame; fit on a pandas "
            "frame to weigh the origins."
        )
    if not first_pass:
        raise ValueError(
            "warm_start and partial_fit are not supported with a dask DataFrame: each "
            "fit on a fleet starts afresh (warm_start=False)."
        )
    averaging = None
    if est.averaging_frequency is not None:
        averaging = (_client(), est.averaging_frequency)
    series_id = est.series_id
    check_whole_series(X, series_id)
    meta = partition_frame(X._meta, series_id)
    check_frame(meta, "X")
    validate_data(est, meta, reset=True, skip_check_array=True)
    layout = FrameLayout.from_frame(meta, est.target, est.known_future, series_id,
                                    est.missing)
    quantiles = est._check_quantiles()
    n_outputs = est.horizon * len(layout.targets) * len(est._heads(quantiles))

    # 1. Series on the grid, per partition, and the scaler's moments.
    regular = dask.persist(*[
        dask.delayed(_regular_series, pure=True)(p, layout, series_id, est.freq)
        for p in X.to_delayed()
    ])
    described = dask.compute(*[dask.delayed(_describe)(r) for r in regular])
    keys = [k for d in described for k in d["keys"]]
    if not keys:
        raise InputError("X has no rows.")
    offset, first = None, None
    for d in described:
        if d["offset"] is None:
            continue
        if offset is not None and d["offset"] != offset:
            raise InputError(
                f"Series have different frequencies: {offset.freqstr}{where(first)} and "
                f"{d['offset'].freqstr}{where(d['keys'][0])}. Pass freq= to resample "
                "them all to one step."
            )
        if offset is None:
            offset, first = d["offset"], d["keys"][0]
    layout.offset, layout.resample = offset, est.freq is not None
    scaler = _combine_scalers([d["scaler"] for d in described])
    check_scaler(scaler, layout)

    est._frame_layout = layout
    est.quantiles_ = quantiles
    est._head_levels = est._heads(quantiles)
    est.n_outputs_ = n_outputs
    est.season_ = default_season(layout.offset) if est.season is None else est.season
    est.series_ids_ = keys

    # 3. Encoded series on the workers; their statistics here.
    lengths = [n for d in described for n in d["lengths"]]
    # The same calendar and seasonal lag columns as _prepare_fit's encoder.
    calendar, lags = est._time_columns(layout.offset)
    # The rows predict() may need: the longest window, with the lag columns'
    # rows before it (_keep).
    keep = max(max(est._window_candidates(lengths)) + max(lags, default=0), est.season_)
    dtype = np.dtype(est.dtype)
    encode = dask.delayed(_encode, pure=True)
    states = dask.persist(*[
        encode(r, layout, scaler, dtype, est.horizon, est.scaling == "series",
               est.season_, keep, calendar, lags)
        for r in regular
    ])
    del regular  # the frames: the encoded arrays replace them on the workers
    summaries = dask.compute(*[dask.delayed(_summary)(s) for s in states])
    stats = {}
    for s in summaries:
        stats.update(s["stats"] or {})
    est._encoder = Encoder(layout, scaler, dtype, est.horizon, stats or None, calendar, lags)
    mase = [s["mase"] for s in summaries if s["mase"] is not None]
    est.mase_scale_ = _seasonal_naive_scale(
        np.sum([m[0] for m in mase], axis=0), np.sum([m[1] for m in mase], axis=0),
        np.nanmax([m[2] for m in mase], axis=0),
    )
    n_t = len(layout.targets)
    chosen = []
    for j in range(n_t):
        parts = [s["level"][j] for s in summaries]
        chosen.append(level_scaled_from_parts(min(p[0] for p in parts),
                                              np.sum([p[1] for p in parts], axis=0)))
    est._level_scaling = ([c[0] for c in chosen], [c[1] for c in chosen])
    fleet = _Partitions(dask, states, keys, lengths, [d["keys"] for d in described])

    # 4. The baseline and the window, from the windows their choice reads.
    est._choose_baseline(_BaselineSource(fleet))

    # 5. Origins on the workers; the held-out sample here.
    holdout = est.early_stopping or est._calibrates()
    fraction = est._holdout_fraction(lengths) if holdout else None
    origins = fleet.origins(est.window_, est.horizon, fraction)
    try:
        origins.check()
    except InputError:
        if est.early_stopping or not holdout:
            raise
        origins = fleet.origins(est.window_, est.horizon, None)
        origins.check()
        warnings.warn(
            "Too few rows to hold out a block for calibrating the quantiles (it must "
            f"span horizon={est.horizon} rows after window={est.window_}); the band "
            "is left uncalibrated.",
            UserWarning, stacklevel=5,
        )

    val = None
    if "val" in origins.groups:
        groups = origins.groups["val"]
        items = (np.arange(int(groups.sum())) if est.max_windows_per_epoch is None
                 else fixed_sample(groups, est.max_windows_per_epoch))
        A, Y, at, series = origins.fetch("val", items)
        windows = forecast_windows(est, A, at, Y)
        # Item i's series is keys[series[i]]: one "series" per item.
        n = np.arange(len(items))
        windows.scales = est._encoder.item_scales([keys[s] for s in series], n, n)
        val = (windows, windows.targets())
    tails = {}
    for t in dask.compute(*[dask.delayed(_tails)(s) for s in states]):
        tails.update(t)
    est._set_context(tails)
    est._calibration, est._trackers = None, {}
    est._context_lengths = dict(zip(keys, lengths))
    train = FleetWindows(origins, est, averaging)
    return est._encoder.n_inputs, train, val


def forecast_windows(est, A, origins, Y):
    """The training windows of ``origins`` in fetched rows ``A``, ``Y``."""
    return est._windows(A, origins, Y=Y)


def _client():
    """The dask.distributed Client that parameter averaging trains on."""
    try:
        from distributed import default_client

        return default_client()
    except (ImportError, ValueError):
        raise ValueError(
            "averaging_frequency trains on the workers of a dask.distributed Client, "
            "and none is running; start one first (Client(LocalCluster()) or "
            "Client('tcp://scheduler:8786')), or set averaging_frequency=None to "
            "train in this process."
        ) from None


class _BaselineSource:
    """The baseline's choice reads its windows from the fleet (``StackedOrigins``)."""

    def __init__(self, fleet):
        self.fleet, self.lengths = fleet, fleet.lengths

    def sample(self, window, horizon, fraction=None, at_most=None):
        origins = self.fleet.origins(window, horizon, fraction)
        origins.check()
        return origins.pick(at_most)
