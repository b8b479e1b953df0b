"""The forecaster's band calibration: learned after training, tracked while streaming.

``_calibration.py`` holds the mathematics (conformal offsets, online
quantile tracking); this mixin is where ``RNNForecaster`` uses it:

* after training, the offsets are learned on the held-out block's forecasts
  (``_after_training``, the hook of the fit path in ``_base.py``), as
  fractions of the forecast's level for a target whose spread grows with
  its level (``_choose_level_scaling``, decided in fit on the raw training
  rows);
* ``update()`` checks the forecasts it issued earlier against the truth that
  arrives and moves the offsets (one ``SeriesTracker`` per series), then
  issues forecasts from every new origin, so that each carries the offsets
  a stream would have had at that time;
* ``backtest()`` replays its span the same way, so that its coverage is the
  coverage a stream of ``update()`` calls would have seen.

Without a calibrated band (``quantiles=None`` or ``calibration=None``), or
with known-future covariates (whose future values only ``predict(future=...)``
receives), there is nothing to track and these methods do nothing.
"""
import numpy as np

from tsrnn._calibration import (
    BandCalibration,
    SeriesTracker,
    level_scaled,
    replay_streams,
    warn_too_few,
)


# Forecasts a backtest's replay makes at once (see ``_replay_stream``).
_REPLAY_BLOCK = 1 << 17


def _span_groups(spans, size):
    """Consecutive spans in groups of about ``size`` origins (at least one span each)."""
    group, n = [], 0
    for span in spans:
        if group and n + len(span) > size:
            yield group
            group, n = [], 0
        group.append(span)
        n += len(span)
    if group:
        yield group


class BandTracking:
    """Mixin for ``RNNForecaster``: the calibrated band over fit, update and backtest."""

    def _tracks(self):
        """Whether update() checks issued forecasts and tracks the offsets.

        It needs no input beyond the series itself, so not with known-future
        covariates, whose future values only predict(future=...) is given.
        """
        return self._calibration is not None and not self._frame_layout.known

    def _issue_due(self, key, combined, n_old):
        """Uncalibrated forecasts {position in combined: (h, n_t, n_q)} to issue.

        ``combined`` (a ``SeriesContext``) is a series' kept rows followed by
        its new ones, the first ``n_old`` of them old: every new row is an origin, and so is the
        last old one if nothing was issued from it yet.
        """
        if not self._tracks():
            return {}
        tracker = self._trackers.get(key)
        first = tracker.n_seen - n_old if tracker is not None and n_old else 0
        pending = tracker.pending if tracker is not None and n_old else {}
        origins = [p for p in range(max(n_old - 1, self.window_ - 1), len(combined))
                   if first + p not in pending]
        if not origins:
            return {}
        windows = self._context_windows([(key, combined, origins, None)])
        return dict(zip(origins, self._forecast(windows, calibrated=False)))

    def _tracks_in_backtest(self):
        return (getattr(self, "_calibration", None) is not None
                and self._calibration.rate > 0)

    def _replay_stream(self, A, causal, R, spans, origins, series=None):
        """Backtest forecasts issued as a stream would have issued them.

        Every origin of each series' span issues a forecast (stride 1), in
        time order; each actual updates the offsets of the forecasts it
        completes before the next is issued (a ``SeriesTracker`` per series,
        run for all the series of a block in step by ``replay_streams``),
        starting from the offsets learned in fit. Returns the forecasts of
        ``origins``. ``series`` = (keys, offsets) of the stacked series.
        """
        every = np.concatenate(spans)
        # Only the forecasts of ``origins`` are kept (a fleet's replay issues
        # millions): ``every`` is sorted, the series being stacked in order.
        wanted = np.zeros(len(every), bool)
        wanted[np.searchsorted(every, origins)] = True
        issued, at, kept = None, 0, 0
        # Whole series at a time, about _REPLAY_BLOCK forecasts a block, so
        # the raw forecasts of a fleet's replay never exist all at once.
        for group in _span_groups(spans, _REPLAY_BLOCK):
            rows = group[0] if len(group) == 1 else np.concatenate(group)
            raw = self._forecast(self._windows(A, rows, causal=causal, series=series),
                                 calibrated=False)
            if issued is None:
                issued = np.empty((int(wanted.sum()),) + raw.shape[1:])
            lengths = [len(span) for span in group]
            forecasts = replay_streams(self._calibration, raw, R[rows], lengths)
            keep = wanted[at : at + len(rows)]
            issued[kept : kept + int(keep.sum())] = forecasts[keep]
            kept += int(keep.sum())
            at += len(rows)
        # Back to the order of ``origins`` (sorted as well, from the same spans).
        return issued[np.searchsorted(every[wanted], origins)]

    def _issued_forecasts(self):
        """Forecasts from the end of every kept context, with tracked offsets.

        A list of one (horizon, n_targets, n_q) array per context, in the
        order of ``_context``. A forecast issued from the last origin already
        (by update()) is returned as it was issued; the others are issued now.
        """
        due = []
        for key, frame in self._context.items():
            tracker = self._trackers.get(key)
            if tracker is None:
                tracker = self._trackers[key] = SeriesTracker(
                    self._calibration, self.horizon, len(frame)
                )
            if tracker.n_seen - 1 not in tracker.pending:
                due.append((key, frame, tracker))
        if due:
            # One batch for every series still to issue (a fleet's 10,000
            # forecasts after fit: one network pass, not 10,000).
            windows = self._context_windows(
                [(key, frame, [len(frame) - 1], None) for key, frame, _ in due]
            )
            for (_, _, tracker), raw in zip(due, self._forecast(windows, calibrated=False)):
                tracker.issue(tracker.n_seen - 1, raw)
        return [
            self._trackers[key].pending[self._trackers[key].n_seen - 1] for key in self._context
        ]

    def _track(self, key, combined, n_old, raw):
        """Check the forecasts the new rows complete, then issue the new ones.

        In time order, so each forecast carries the offsets tracked up to its
        origin, as a stream would have seen them (``_calibration.py``).
        """
        if not self._tracks():
            return
        tracker = self._trackers.get(key)
        if tracker is None or n_old == 0:
            tracker = self._trackers[key] = SeriesTracker(self._calibration, self.horizon, 0)
        first = tracker.n_seen - n_old  # position of combined's first row
        targets = combined.raw[:, : len(self._frame_layout.targets)]
        for p in range(max(n_old - 1, 0), len(combined)):
            if p >= n_old:
                tracker.observe(first + p, targets[p])
            if p in raw:
                tracker.issue(first + p, raw[p])
        tracker.n_seen = first + len(combined)

    def _choose_level_scaling(self, series):
        """Per target: are its errors relative to its level (``level_scaled``)?

        ``series``: the training rows of every series, raw float64 (n, n_t)
        arrays (the model's float32 copy turns a 0 into a tiny positive
        number). All of them, the held-out block included: a held-out block
        alone spans too little of a trend to show the spread follow the
        level. Sets ``_level_scaling``, (relative, floor) lists; fit calls
        this once, with the scaler, and a warm start keeps it.
        """
        block = self.season_ if self.season_ > 1 else 2
        chosen = [level_scaled([y[:, j] for y in series], block)
                  for j in range(len(self._frame_layout.targets))]
        self._level_scaling = ([c[0] for c in chosen], [c[1] for c in chosen])

    def _after_training(self, train, val):
        """Learn the band's offsets on the held-out forecasts (``_calibration.py``)."""
        if val is None or not self._calibrates():
            return
        windows = val[0]
        raw = self._forecast(windows, calibrated=False)
        n_t = len(self._frame_layout.targets)
        actual = windows.future_targets(slice(None)).astype(np.float64)
        actual = self._encoder.unscale_targets(actual[..., None], windows.scales)[..., 0]
        relative, floor = self._level_scaling
        self._calibration = BandCalibration(self.quantiles_, self.calibration_rate).fit(
            raw, actual.reshape(len(raw), self.horizon, n_t), relative, floor
        )
        if self._calibration.too_few:
            warn_too_few(self._calibration.too_few, self._calibration.n_heldout)
        self._trackers = {
            key: SeriesTracker(self._calibration, self.horizon, n)
            for key, n in self._context_lengths.items()
        }
