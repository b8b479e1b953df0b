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

    def _residuals(self, Z, Y, n_heads):
        """Targets minus outputs, (n, horizon * n_targets, n_heads), 0 where masked."""
        U = Y[:, :, None] - Z.reshape(Z.shape[0], -1, n_heads)
        observed = ~np.isnan(U)
        return np.where(observed, U, 0), observed

    def _loss(self, Z, Y, sample_weight=None, heads=None):
        # Mean over the outputs, summed over rows, as RNNRegressor's loss.
        # With ``sample_weight`` (n,) each row's loss and gradient are scaled
        # by its origin's weight; the loop divides by the weight sum.
        # ``heads``: the levels of Z's outputs, the network's by default.
        heads = self._head_levels if heads is None else heads
        U, observed = self._residuals(Z, Y, len(heads))
        n_out = U.shape[1] * U.shape[2]
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
        """Minus the point forecast's mean loss per origin (weighted mean with weights).

        With a median head among the quantiles, only that head is scored:
        the point forecast is what early stopping must not make worse, and
        the band's width is corrected on the same held-out block afterwards
        (``_calibration.py``). Scoring every head gave the untrained model
        (every quantile on the baseline's forecast: a band of width zero)
        so poor a score that any epoch which widened the band beat it,
        whatever it did to the median, and early stopping could never keep
        the baseline. On the public suite that cost sand_point 0.649 ->
        0.692 and weather 0.697 -> 0.709 (MAE / seasonal naive, mean of
        three seeds; benchmarks/README.md). Without quantiles, or without
        0.5 among them, every head is scored.
        """
        heads = self._head_levels
        if 0.5 in heads and len(heads) > 1:
            Z = Z.reshape(Z.shape[0], -1, len(heads))[:, :, heads.index(0.5)]
            heads = [0.5]
        total = Z.shape[0] if sample_weight is None else float(
            np.sum(sample_weight, dtype=np.float64))
        return -self._loss(Z, Y, sample_weight, heads)[0] / total

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
        """Forecasts Z (rows, n_targets, n_q) as a frame on ``index`` (one row each).

        A fleet's forecasts are one frame with one MultiIndex, not a frame
        per series concatenated: 10,000 small frames and their future
        indexes were about half of a fleet's first ``predict()``.
        """
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
