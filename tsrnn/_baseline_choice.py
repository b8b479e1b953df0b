"""The forecaster's choice of window and baseline at fit time.

``window="auto"`` and ``baseline="auto"`` (or ``"smoothing"``) are decided
together: the candidates (``select_baseline`` in ``_baselines.py``) are
fitted on the training origins and scored on the held-out block the network
is later validated and calibrated on.
"""
import numpy as np

from tsrnn._baselines import (
    MAX_FIT_WINDOWS,
    LagBaseline,
    LinearBaseline,
    evenly_spaced,
    select_baseline,
)
from tsrnn._windows import ForecastWindows, fit_origins, seasonal_lags
from tsrnn.exceptions import InputError


class BaselineChoice:
    """Mixin for ``RNNForecaster``: the window and the baseline the network corrects."""

    def _window_candidates(self, lengths):
        """Windows ``window="auto"`` chooses from: enough past for the season."""
        if self.window != "auto":
            return [self.window]
        h, season = self.horizon, self.season_
        wanted = {2 * h, 4 * h} | ({season + h} if season > 1 else set())
        # Each series must keep most of its rows as training windows.
        longest = (max(lengths) - h) // 3
        return sorted({max(1, min(w, longest)) for w in wanted})

    def _holdout_fraction(self, lengths):
        """Share of the rows held out for validation: at least 2 horizons' origins."""
        return max(self.validation_fraction, min(0.3, 3 * self.horizon / max(lengths)))

    def _fit_baseline(self, source):
        """The baseline forecast the network will correct (``_baselines.py``).

        Sets ``window_``: ``window="auto"`` is decided with the baseline.
        ``source`` gives the windows the choice reads (``StackedOrigins``
        for a pandas frame, ``_dask_fit.FleetOrigins`` for a fleet on dask
        workers); with ``sample_weight``, zero-weight origins are left out,
        and the others weigh the linear fits and the held-out scores as they
        weigh the network's loss.
        """
        n_t, h = len(self._frame_layout.targets), self.horizon
        lengths = source.lengths
        candidates = self._window_candidates(lengths)
        self.baseline_scores_ = None
        if self.baseline in ("auto", "smoothing"):
            smoothing_only = self.baseline == "smoothing"
            steps = np.arange(1, h + 1)
            try:
                (A, Y, W), fit, val = source.sample(
                    max(candidates), h, self._holdout_fraction(lengths), MAX_FIT_WINDOWS
                )
            except InputError:
                (A, Y, W), fit, val = (None, None, None), None, None

            def gather(window, origins):
                windows = ForecastWindows(
                    A, origins, window, h, self._frame_layout.n_past, n_t,
                    self._encoder.future_rows,
                )
                return windows._gather(np.arange(len(origins)))

            def targets(origins):
                return Y[origins[:, None] + steps]

            if fit is None:
                # Too short to hold out time for the choice: the shortest
                # window and a moderate penalty towards persistence.
                self.window_ = candidates[0]
                (A, Y, W), origins, _ = source.sample(self.window_, h)
                if smoothing_only:
                    # Or the form of exponential smoothing that fits the
                    # training windows best (nothing is held out).
                    baseline, self.window_, self.baseline_scores_ = select_baseline(
                        gather, targets, origins, origins, [self.window_], h, n_t, None,
                        None if W is None else W.__getitem__, season=self.season_,
                        smoothing_only=True,
                    )
                    return baseline
                persistence = np.zeros((h, n_t), np.intp)
                return LinearBaseline(
                    self.window_, h, n_t, persistence, level=False, covariates=False,
                    alpha=1.0,
                ).fit(gather(self.window_, origins), targets(origins),
                      None if W is None else W[origins])
            weights = None if W is None else W.__getitem__
            seasonal = seasonal_lags(h, self.season_)
            if self.season_ <= 1 or seasonal.max() >= max(candidates):
                seasonal = None
            baseline, self.window_, self.baseline_scores_ = select_baseline(
                gather, targets, fit, val, candidates, h, n_t, seasonal, weights,
                season=self.season_, smoothing_only=smoothing_only,
            )
            return baseline
        # A fixed baseline: the middle candidate (season + horizon when seasonal).
        self.window_ = candidates[len(candidates) // 2]
        lags = np.zeros((h, n_t), np.intp)
        seasonal = np.repeat(seasonal_lags(h, self.season_)[:, None], n_t, 1)
        if self.baseline == "seasonal" and seasonal.max() < self.window_:
            lags = seasonal
        return LagBaseline(lags, self.window_)


class StackedOrigins:
    """The windows of a stacked frame that the baseline's choice reads (pandas).

    ``A``, ``Y`` (and ``W``, the origins' weights, or None) are the stacked
    arrays of every series, ``offsets`` and ``lengths`` their rows.
    """

    def __init__(self, A, Y, offsets, lengths, W=None):
        self.A, self.Y, self.offsets, self.lengths, self.W = A, Y, offsets, lengths, W

    def sample(self, window, horizon, fraction=None, at_most=None):
        """``((A, Y, W), fit, val)``: arrays and origin rows into them.

        The training origins of ``window`` (``fit_origins``), and with a
        held-out ``fraction`` the held-out ones; with ``at_most``, that many
        of each, evenly spaced. An InputError when the series are too short.
        """
        fit, val = fit_origins(self.lengths, self.offsets, self.Y, window, horizon,
                               fraction, weights=self.W)
        if at_most is not None:
            fit = fit[evenly_spaced(len(fit), at_most)]
            val = None if val is None else val[evenly_spaced(len(val), at_most)]
        return (self.A, self.Y, self.W), fit, val
