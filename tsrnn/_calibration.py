"""Forecast bands that keep their promise: conformal offsets, adapted online.

Design
------
Quantiles trained with the pinball loss are honest on the data they were
trained on and too narrow on new data once the network has fitted noise. The
forecaster therefore shifts every quantile by an offset learned on held-out
time (the last part of the training span, which the network never trained
on), separately for each horizon step and target:

* ``"cqr"`` (conformalised quantile regression, Romano et al. 2019, in its
  one-sided form): the residuals ``y - q_tau`` of quantile ``tau`` on the
  held-out forecasts give the offset ``c_tau``, their ``ceil((n + 1) tau)``-th
  smallest value for an upper quantile and their ``floor((n + 1) tau)``-th for
  a lower one. With exchangeable residuals, ``y <= q_tau + c_tau`` then holds
  with probability at least ``tau`` (at most ``tau`` for a lower quantile),
  so a ``[q_lo, q_hi]`` band covers at least ``hi - lo``. The learned shape of
  the band stays; only its position and width are corrected. The median is
  the point forecast and is left as it is.
* ``"split"`` (split conformal): the same, with the point forecast in place
  of each quantile, for a network trained on the point forecast alone.

Streaming. Exchangeability breaks when the noise of a sensor changes. While
the forecaster is updated with new observations, every forecast it issued is
checked against the truth when it arrives, and each offset then follows
online quantile tracking, the adaptive conformal inference of Gibbs & Candes
(2021) in the form of Angelopoulos, Candes & Tibshirani (2023, "conformal
PID control", its proportional term):
``offset += rate * spread * (tau - [y <= q])``. A quantile exceeded more often
than it promises moves outwards, one too wide moves in, and unlike a level
read from a fixed pool of residuals it can follow noise larger than any seen
in calibration. ``spread`` is the mean absolute deviation of the held-out
residuals at that step, so ``rate`` (``calibration_rate``) is free of units:
at 0.1 an offset can move by one spread in about 10 misses. Offsets are
kept per (series, step, target, quantile); each update is O(horizon).

Errors relative to the level. A positive series that grows (a trend, a
season whose swing grows with the level: ``airpassengers``) makes errors
that grow with it, so the held-out block's errors, made at a lower level
than the forecasts that follow, are too small for them: on the holdout
group's airpassengers the band covered 51%, and 33-42% on a weekly series
growing 0.4% a week (benchmarks/README.md). For such a target every
residual is divided by its forecast's level (the mean over the horizon of
its median, no less than the smallest training value), the offsets are
quantiles of these relative errors, and each forecast's band is its level
times them: the multiplicative error of ETS(M, ., .) models, and
split conformal with a scale (normalised conformal prediction, Lei et al.
2018). Whether a target's errors scale with its level is decided on its
training rows, before any forecast is scored, by Guerrero's (1993) rule
as R's ``forecast::BoxCox.lambda`` applies it: cut the series into blocks of
one season (two rows without a season), and take the errors as relative
when the blocks' standard deviations divided by their means vary less from
block to block than the standard deviations alone (``level_scaled``). A
series with a value at or below zero, or too few blocks, stays additive:
its level is no unit of its errors. On a series whose level does not move,
the two choices give almost the same band. Where a relative target's
one-sided offsets shift its band rather than widen or narrow it (both edges
moved the same way: the held-out forecasts were biased), its edges go out
to at least those of symmetric CQR (``_widen_symmetric``): the bias the
block showed on a trend need not last past it.
"""

import warnings

import numpy as np


def conformal_rank(n, tau):
    """1-based rank of the residual giving quantile ``tau``'s offset, or 0/n+1.

    0 (lower quantile) or ``n + 1`` (upper) means that ``n`` residuals are too
    few to reach the level: the offset is unbounded.
    """
    if tau > 0.5:
        return int(np.ceil((n + 1) * tau - 1e-9))
    return int(np.floor((n + 1) * tau + 1e-9))


class BandCalibration:
    """Per-step, per-quantile offsets of one forecaster, adapted while streaming.

    Parameters
    ----------
    quantiles : ndarray (n_q,)
        The forecaster's quantile levels.
    rate : float
        Learning rate of the online tracking, in spreads per miss.

    Attributes
    ----------
    offsets : ndarray (h, n_t, n_q)
        Offsets learned by :meth:`fit`, added to the uncalibrated quantiles.
    spread : ndarray (h, n_t)
        Mean absolute deviation of the held-out residuals of each step.
    calibrated : ndarray (n_q,) of bool
        The quantiles that get an offset (not the median, not too extreme
        for the number of held-out forecasts).
    too_few : list of float
        Levels the held-out forecasts were too few to calibrate.
    n_heldout : int
        Held-out forecasts per step (the fewest over steps and targets).
    gains : ndarray (h, n_t, n_q)
        ``rate * spread``: how far one miss moves each offset; 0 for the
        quantiles that are not calibrated.
    """

    def __init__(self, quantiles, rate):
        self.quantiles = np.asarray(quantiles, dtype=float)
        self.rate = rate
        self.middle = int(np.argmin(np.abs(self.quantiles - 0.5)))

    def fit(self, forecasts, actual, relative=None, floor=None):
        """Learn offsets from held-out forecasts (n, h, n_t, n_q) and truth (n, h, n_t).

        ``relative`` (n_t,) bool marks the targets whose offsets are
        fractions of the forecast's level (``scale``), no smaller than
        ``floor`` (n_t,) (``level_scaled``); None: every target additive.
        """
        n_t = actual.shape[-1]
        self.relative = np.zeros(n_t, bool) if relative is None else np.asarray(relative, bool)
        self.floor = np.zeros(n_t) if floor is None else np.asarray(floor, dtype=float)
        # (n, h, n_t, n_q), in units of each forecast's scale
        residuals = (actual[..., None] - forecasts) / self.scale(forecasts)[..., None]
        observed = ~np.isnan(actual)
        self.n_heldout = int(observed.sum(axis=0).min()) if observed.size else 0
        self.too_few = [
            float(tau) for tau in self.quantiles
            if tau != 0.5 and conformal_rank(self.n_heldout, tau) in (0, self.n_heldout + 1)
        ]
        self.calibrated = np.array(
            [tau != 0.5 and float(tau) not in self.too_few for tau in self.quantiles]
        )
        _, h, n_t, n_q = residuals.shape
        self.offsets = np.zeros((h, n_t, n_q))
        self.spread = np.zeros((h, n_t))
        middle = self.middle
        for k in range(h):
            for j in range(n_t):
                r = residuals[observed[:, k, j], k, j]  # (m, n_q)
                if not len(r):
                    continue
                ordered = np.sort(r, axis=0)
                centre = r[:, middle]
                self.spread[k, j] = np.mean(np.abs(centre - np.median(centre)))
                for q in np.flatnonzero(self.calibrated):
                    rank = conformal_rank(len(r), self.quantiles[q])
                    self.offsets[k, j, q] = ordered[min(max(rank, 1), len(r)) - 1, q]
                if self.relative[j]:
                    self._widen_symmetric(self.offsets[k, j], r)
        # Made once: every streamed row observes one truth, and these
        # products cost as much as the rest of an observation (issue 13).
        self.gains = (self.rate * self.spread)[:, :, None] * self.calibrated
        return self

    def _widen_symmetric(self, offsets, r):
        """Where the offsets shift a band, move its edges out to at least symmetric CQR's.

        ``offsets`` (n_q,) of one step and target, updated in place, ``r``
        (m, n_q) its held-out residuals. The one-sided offsets correct each
        edge of a band (tau, 1 - tau) separately. When they move both edges
        the same way, the held-out block's forecasts were biased, not too
        narrow or too wide: on a trending series the network trained on
        the trend's earlier, lower rows fell short of the level there
        (airpassengers: the truth above the whole raw band), and the band
        learned there leans the same way for every later forecast, wherever
        the trend goes next. Relative errors carry the spread past the
        block; nothing says its bias lasts. So such a band's edges go out to
        at least those of symmetric CQR (Romano et al. 2019), which scores
        each held-out forecast by how far its truth fell outside the raw
        band on the worse side, ``max(q_lo - y, y - q_hi)``, and moves both
        edges out by the score's ``ceil((m + 1)(1 - 2 tau))``-th smallest
        value: the union of two bands that each cover 1 - 2 tau of
        exchangeable forecasts. A band the offsets only widen or narrow
        (both edges out, or both in) is left as it is.
        """
        taus = self.quantiles
        for lo in np.flatnonzero(self.calibrated & (taus < 0.5)):
            hi = np.flatnonzero(self.calibrated & np.isclose(taus, 1 - taus[lo]))
            if not len(hi):
                continue
            hi = hi[0]
            if not (offsets[lo] > 0 and offsets[hi] > 0 or offsets[lo] < 0 and offsets[hi] < 0):
                continue  # no shift: the band is widened or narrowed only
            rank = int(np.ceil((len(r) + 1) * (taus[hi] - taus[lo]) - 1e-9))
            if rank > len(r):
                continue  # too few forecasts for this band's symmetric form
            score = np.sort(np.maximum(-r[:, lo], r[:, hi]))[rank - 1]
            offsets[lo] = min(offsets[lo], -score)
            offsets[hi] = max(offsets[hi], score)

    def scale(self, raw):
        """The unit of each forecast's offsets, (..., n_t) from raw (..., n_t, n_q).

        1 for an additive target; for a relative one the level of the
        forecast: the mean over its horizon of the uncalibrated median
        (which calibration leaves alone), one level for all its steps.
        Guerrero's rule compares blocks of a season, so what it shows is
        that the spread follows the level from season to season, not
        within one; the median step by step would also narrow the band in
        every trough of the season (on wineind, a monthly series with a
        deep season, it cost 9% in interval score; benchmarks/README.md).
        """
        if not self.relative.any():
            return np.ones(raw.shape[:-1])
        level = np.abs(raw[..., self.middle]).mean(axis=-2, keepdims=True)  # (..., 1, n_t)
        level = np.maximum(level, self.floor)
        return np.where(self.relative, level, 1.0) * np.ones(raw.shape[:-1])

    def apply(self, raw, offsets=None):
        """Calibrated quantiles (unsorted) of raw forecasts (..., n_t, n_q)."""
        offsets = self.offsets if offsets is None else offsets
        if not self.relative.any():
            # The common case stays one addition: update() issues a
            # forecast per streamed row (issue 13).
            return raw + offsets
        return raw + offsets * self.scale(raw)[..., None]

    def observe(self, offsets, steps, issued, actual):
        """Track the offsets of some steps after their forecasts met one truth.

        ``offsets`` (h, n_t, n_q) is a series' current offsets, updated in
        place; ``steps`` (m,) distinct horizon steps (0-based); ``issued``
        (m, n_t, n_q) the calibrated quantiles that were returned for them;
        ``actual`` (n_t,). Offsets are in units of ``scale``, and so are the
        gains: a miss moves a relative offset by a share of the level. The
        steps are distinct (one forecast per origin
        covers a row at each step), so every offset moves at most once and
        the order of the forecasts does not matter.
        """
        below = actual[:, None] <= issued  # (m, n_t, n_q)
        move = self.gains[steps] * (self.quantiles - below)
        missing = np.isnan(actual)
        if missing.any():
            move[:, missing] = 0.0  # a missing truth checks nothing
        offsets[steps] += move


def level_scaled(series, block):
    """Whether a target's errors are better taken relative to its level, and the floor.

    ``series``: one 1-D array of training values (NaN: not observed) per
    series. Guerrero's rule (module docstring) between its two ends,
    additive (lambda = 1) and relative (lambda = 0): cut each series into
    blocks of ``block`` rows, aligned to its end, and compare the
    coefficient of variation over blocks of ``sd / mean`` with that of
    ``sd``. Returns ``(relative, floor)``, the floor being the smallest
    training value, below which a forecast's level is not trusted.
    """
    means, sds, lowest = _level_blocks(series, block)
    if not means or not lowest > 0:
        return False, 0.0
    m, sd = np.concatenate(means), np.concatenate(sds)
    if len(m) < 4 or not sd.mean() > 0:
        # Too few blocks to see the spread follow the level.
        return False, 0.0

    def variation(x):
        return np.std(x) / np.mean(x)

    return bool(variation(sd / m) < variation(sd)), lowest


def _level_blocks(series, block):
    """Per series, the means and sds of its full blocks; the smallest value."""
    means, sds, lowest = [], [], np.inf
    for y in series:
        y = np.asarray(y, dtype=float)
        if not np.isfinite(y).any():
            continue
        lowest = min(lowest, float(np.nanmin(y)))
        n = len(y) // block * block
        blocks = y[len(y) - n:].reshape(-1, block)
        full = np.sum(~np.isnan(blocks), axis=1) >= 2
        if not full.any():
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows are dropped
            means.append(np.nanmean(blocks[full], axis=1))
            sds.append(np.nanstd(blocks[full], axis=1, ddof=1))
    return means, sds, lowest


def level_parts(series, block):
    """The parts of :func:`level_scaled` that add up over groups of series.

    A dask fleet's partitions each give theirs; :func:`level_scaled_from_parts`
    decides on their sum (and the smallest ``lowest``). Returns ``(lowest,
    sums)``: sums = [blocks, sum and sum of squares of sd / mean, of sd].
    """
    means, sds, lowest = _level_blocks(series, block)
    if not means:
        return lowest, np.zeros(5)
    m, sd = np.concatenate(means), np.concatenate(sds)
    with np.errstate(divide="ignore", invalid="ignore"):  # a block of mean 0
        r = sd / m
    return lowest, np.array([len(m), r.sum(), (r * r).sum(), sd.sum(), (sd * sd).sum()])


def level_scaled_from_parts(lowest, sums):
    """:func:`level_scaled`'s rule from summed :func:`level_parts`.

    The same decision, with the spreads from sums of squares rather than
    from the blocks themselves (equal up to rounding).
    """
    n, r1, r2, s1, s2 = sums
    if not n or not lowest > 0 or n < 4 or not s1 / n > 0:
        return False, 0.0

    def variation(total, squares):
        mean = total / n
        return np.sqrt(max(squares / n - mean * mean, 0.0)) / mean

    return bool(variation(r1, r2) < variation(s1, s2)), lowest


def warn_too_few(levels, n):
    """Say which quantiles stay uncalibrated, and why."""
    warnings.warn(
        f"Only {n} held-out forecasts per horizon step: too few to calibrate the "
        f"quantile(s) {levels} (a level tau needs at least 1/min(tau, 1 - tau) - 1). "
        "Those quantiles are left as trained, uncalibrated; fit on more data or "
        "raise validation_fraction to calibrate them.",
        UserWarning,
        stacklevel=4,
    )


def replay_streams(calibration, raw, actual, lengths):
    """The forecasts a stream issues, for several series at once (a backtest's replay).

    ``raw`` (N, h, n_t, n_q) holds the uncalibrated forecasts of every origin
    of the series, series after series (``lengths`` origins each, in time
    order), and ``actual`` (N, n_t) the truth at each origin's row. Returns
    the calibrated, sorted forecasts (N, h, n_t, n_q): what one
    ``SeriesTracker`` per series, starting from the offsets learned in fit,
    issues when every origin observes its row and then issues, bit for bit.
    The series move in step, one origin at a time, so a fleet's replay is
    a loop over the origins of one series, not over every origin (issue 21:
    per origin, the trackers of 10,000 sensors took 50 of the backtest's
    87 s).
    """
    lengths = np.asarray(lengths)
    h = raw.shape[1]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.intp)
    offsets = np.repeat(calibration.offsets[None], len(lengths), axis=0)
    # The forecast issued from a series' origin j, kept at ring[series, j % h]
    # while its truth arrives: the pending forecasts of a SeriesTracker.
    ring = np.empty((len(lengths), h) + raw.shape[1:])
    out = np.empty_like(raw)
    for i in range(int(lengths.max(initial=0))):
        live = np.flatnonzero(lengths > i)
        pos = starts[live] + i
        if i:
            # Origin i - 1 - k reaches this row at its step k (SeriesTracker.observe).
            steps = np.arange(min(i, h))
            issued = ring[live[:, None], ((i - 1 - steps) % h)[None, :], steps[None, :]]
            truth = actual[pos]
            below = truth[:, None, :, None] <= issued
            move = calibration.gains[steps] * (calibration.quantiles - below)
            move = np.where(np.isnan(truth)[:, None, :, None], 0.0, move)
            offsets[live[:, None], steps[None, :]] += move
        issued = np.sort(calibration.apply(raw[pos], offsets[live]), axis=-1)
        ring[live, i % h] = issued
        out[pos] = issued
    return out


class SeriesTracker:
    """The forecasts issued for one series that still await their truth.

    Positions count the rows of the series seen so far (fit, then update),
    from 0. ``offsets`` starts as the calibration's and is then tracked.
    """

    def __init__(self, calibration, horizon, n_seen):
        self.calibration, self.horizon, self.n_seen = calibration, horizon, n_seen
        self.offsets = calibration.offsets.copy()
        self.pending = {}  # origin position -> issued quantiles (h, n_t, n_q)

    def issue(self, origin, raw):
        """The calibrated forecast from ``origin`` (kept until its truth arrives)."""
        issued = np.sort(self.calibration.apply(raw, self.offsets), axis=-1)
        self.pending[origin] = issued
        return issued

    def observe(self, row, actual):
        """Check every pending forecast that covers ``row`` against ``actual`` (n_t,)."""
        # All due forecasts at once: a loop of per-forecast numpy calls
        # cost more than the rest of a streamed update.
        due = [o for o in self.pending if 1 <= row - o <= self.horizon]
        if due:
            steps = np.array([row - o - 1 for o in due])
            # np.array, not np.stack: the same array at a third of the cost.
            issued = np.array([self.pending[o][row - o - 1] for o in due])
            self.calibration.observe(self.offsets, steps, issued, actual)
        for origin in [o for o in self.pending if o <= row - self.horizon]:
            del self.pending[origin]
