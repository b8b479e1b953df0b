"""What the forecaster's network outputs are, how they are trained and read.

The head emits ``horizon x n_targets x n_heads`` values in C order (step,
target, head). A head is a quantile level trained by the pinball loss, or
the mean trained by the squared error when no quantiles are asked for.
``calibration="split"`` trains the median only and widens it into the band
afterwards. The outputs are corrections to the learned baseline's forecast
(``_baselines.py``), in scaled units.
"""
import functools

import numpy as np
import pandas as pd

from tsrnn._baselines import evenly_spaced


class ForecastHeads:
    """Mixin for ``RNNForecaster``: the head's levels, its loss and its columns."""

    def _calibrates(self):
        return self.calibration is not None and self.quantiles is not None

    def _heads(self, quantiles):
        """Quantile levels of the network's outputs: what the loss trains."""
        if quantiles is None:
            return [None]  # the mean, by the squared error
        if self.calibration == "split":
            return [0.5]  # the median; the band comes from its residuals
        return list(quantiles)

    def _check_quantiles(self):
        if self.quantiles is None:
            return None
        quantiles = np.unique(np.asarray(self.quantiles, dtype=float))
        if quantiles.ndim != 1 or not len(quantiles) or not np.all(
            (quantiles > 0) & (quantiles < 1)
        ):
            raise ValueError(
                "quantiles must be a non-empty sequence of levels strictly "
                f"between 0 and 1, got {self.quantiles!r}."
            )
        return quantiles

    def _residuals(self, Z, Y):
        """Targets minus outputs, (n, horizon * n_targets, n_heads), 0 where masked."""
        U = Y[:, :, None] - Z.reshape(Z.shape[0], -1, len(self._head_levels))
        observed = ~np.isnan(U)
        return np.where(observed, U, 0), observed

    def _loss(self, Z, Y, sample_weight=None):
        # Mean over the outputs, summed over rows, as RNNRegressor's loss.
        # With ``sample_weight`` (n,) each row's loss and gradient are scaled
        # by its origin's weight; the loop divides by the weight sum.
        U, observed = self._residuals(Z, Y)
        n_out = U.shape[1] * U.shape[2]
        heads = self._head_levels
        w = None
        if sample_weight is not None:
            w = sample_weight.astype(U.dtype, copy=False)[:, None, None]
        if heads == [None]:
            terms = U * U
            dZ = -U / n_out
            if w is not None:
                terms, dZ = terms * w, dZ * w
            loss = 0.5 * float(np.sum(terms, dtype=np.float64)) / n_out
        else:
            q = np.asarray(heads, dtype=U.dtype)
            terms = np.maximum(q * U, (q - 1) * U)
            # d pinball / dz = -q above the quantile, 1 - q below.
            dZ = np.where(U > 0, -q, 1 - q) * observed / n_out
            if w is not None:
                terms, dZ = terms * w, dZ * w
            loss = float(np.sum(terms, dtype=np.float64)) / n_out
        return loss, dZ.reshape(Z.shape).astype(Z.dtype, copy=False)

    def _validation_score(self, Z, Y, sample_weight=None):
        """Minus the mean loss per origin; with weights, the weighted mean."""
        if sample_weight is None:
            return -self._loss(Z, Y)[0] / Z.shape[0]
        total = float(np.sum(sample_weight, dtype=np.float64))
        return -self._loss(Z, Y, sample_weight)[0] / total

    def _residual_levels(self, train):
        """The head's starting outputs: each level of the baseline's training errors.

        Per (step, target, head): the quantile ``tau`` of the training
        targets' changes from the baseline; the median (or mean) head starts
        at zero, on the baseline's forecast itself. Starting it at the
        training errors' median as well moved the suite's point forecasts
        away from the baseline where the training span's drift did not last
        (heartrate 1.00 -> 1.04x seasonal naive, wineind 1.00 -> 1.06x).
        A quantile head starting at zero would put every quantile on the baseline's
        forecast, and the pinball loss of such a band is so poor that any
        trained epoch beat it on the validation block, however much its
        median hurt: early stopping could not keep the baseline (on the
        suite, sand_point's forecast was 10% worse with the network than
        the baseline alone, miami's 2%). At most ``MAX_FIT_WINDOWS``
        evenly spaced origins are read, as for the baseline's fit.
        """
        U = train.targets(evenly_spaced(train.n_items)).astype(np.float64)
        U = U.reshape(len(U), -1)  # (n, horizon * n_targets)
        start = np.zeros((U.shape[1], len(self._head_levels)))
        seen = ~np.isnan(U).all(axis=0)
        for i, tau in enumerate(self._head_levels):
            if tau not in (None, 0.5):
                start[seen, i] = np.nanquantile(U[:, seen], tau, axis=0)
        return start.ravel()

    def _point_correction_helps(self, val):
        """Whether the network's point forecast beats the baseline's on held-out time.

        ``val`` is the held-out block as early stopping scores it. Early
        stopping keeps the epoch that forecast the block best, and on a
        block of a few dozen origins that is partly luck: the kept epoch's
        gain over the baseline is then noise, and the test span pays for it
        (heartrate, 150 readings: 1.04x seasonal naive with the network's
        correction, 1.00x without). So the correction must beat the
        baseline by more than one standard error of the mean difference in
        absolute error (the one-standard-error rule). Consecutive origins
        share ``horizon - 1`` target rows, so their differences are
        correlated; the standard error is the Diebold-Mariano test's
        (1995), with the Newey-West variance over ``horizon - 1`` lags.
        """
        point = self._point_head()
        if point is None:
            return True  # no median or mean head: the band is all there is
        windows, Y, *weights = val
        Z = self._predict_validation(windows)
        Z = Z.reshape(len(Z), -1, len(self._head_levels))[:, :, point]
        observed = ~np.isnan(Y)
        n_seen = np.maximum(observed.sum(axis=1), 1)
        # Y holds the changes from the baseline: its own error is |Y|.
        gain = (np.abs(Y) - np.abs(Y - Z)).astype(np.float64)
        gain = np.where(observed, gain, 0).sum(axis=1) / n_seen  # (n_origins,)
        if weights and weights[0] is not None:
            w = weights[0].astype(np.float64)
            gain = gain * (w / w.mean())
        if len(gain) < 2 * self.horizon:
            return False  # too few origins to tell a gain from luck
        return bool(gain.mean() > np.sqrt(_newey_west_variance(gain, self.horizon - 1)
                                          / len(gain)))

    def _point_head(self):
        """Index of the median or mean head among the head levels, or None."""
        heads = self._head_levels
        if 0.5 in heads:
            return heads.index(0.5)
        return 0 if heads == [None] else None

    def _drop_point_correction(self):
        """Make the point forecast the baseline's: zero its head's rows."""
        point, n_heads = self._point_head(), len(self._head_levels)
        views = self._views()
        views["head.weight"][point::n_heads] = 0
        views["head.bias"][point::n_heads] = 0

    def _point_index(self):
        """Quantile index of the point forecast: the one closest to 0.5."""
        if self.quantiles_ is None:
            return 0
        return int(np.argmin(np.abs(self.quantiles_ - 0.5)))

    def _forecast_columns(self):
        """(names, target index, quantile index) of the forecast frame's columns.

        Per target: the target's name (the median when 0.5 is a quantile,
        the mean without quantiles), then ``f"{target}_q{q:g}"`` per quantile.
        """
        quantiles = None if self.quantiles_ is None else tuple(self.quantiles_.tolist())
        return _column_plan(tuple(self._frame_layout.targets), quantiles)

    def _forecast_frame(self, Z, index):
        """One series' forecast Z (horizon, n_targets, n_q) as a frame on ``index``."""
        names, targets, heads = self._forecast_columns()
        # One 2-D array and a ready column index, not a dict of columns: a
        # frame built column by column took longer than a streamed forecast
        # (issue 13).
        return pd.DataFrame(Z[:, targets, heads], index=index, columns=names)


@functools.lru_cache(maxsize=64)
def _column_plan(targets, quantiles):
    # Cached: the same few column layouts are asked for on every predict().
    # An Index is immutable, so frames may share it.
    names, rows, heads = [], [], []
    for j, target in enumerate(targets):
        if quantiles is None:
            names.append(target), rows.append(j), heads.append(0)
            continue
        if 0.5 in quantiles:
            names.append(target), rows.append(j), heads.append(quantiles.index(0.5))
        for k, q in enumerate(quantiles):
            names.append(f"{target}_q{q:g}"), rows.append(j), heads.append(k)
    return pd.Index(names), np.array(rows), np.array(heads)


def _newey_west_variance(x, lags):
    """Long-run variance of a series with autocorrelation up to ``lags`` (Bartlett weights)."""
    x = x - x.mean()
    n = len(x)
    variance = x @ x / n
    for k in range(1, min(lags, n - 1) + 1):
        variance += 2 * (1 - k / (lags + 1)) * (x[k:] @ x[:-k]) / n
    return variance
