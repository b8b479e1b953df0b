"""The forecast the network corrects: a baseline learned from the training data.

Design
------
The network never forecasts from scratch. For every origin it adds a
correction to a baseline forecast computed from the same window of scaled
target values, and it is trained on the differences. A baseline that is good
on its own leaves the network less to learn, keeps the forecast right about
the level of series that drift out of the range seen in training, and means
that a network which learned nothing still forecasts sensibly.

``LagBaseline`` repeats a past value per (step, target): the origin
(persistence) or the same phase of the last season (seasonal naive).

``LinearBaseline`` is a direct linear autoregression: ridge regression from
the window's target values to the ``horizon`` future values, one output per
step, fitted in closed form (the linear models of Zeng et al., 2023, which
beat many deep forecasters on long-horizon benchmarks). The window and the
future enter as changes from the value at the origin, so the ridge penalty
shrinks the forecast towards persistence, never towards the training mean: a
series whose level moves away from its past (a trend, a level shift) keeps
its level. Optionally the origin's value itself is one more feature, which
lets the model learn a pull back towards the mean where the data show one,
and the window's covariates (and known-future values) are features too.

:func:`select_baseline` chooses among persistence, seasonal naive and the
linear forms (with their penalty and, for ``window="auto"``, their window) by
their mean absolute error on held-out time: the last training windows, never
the future of the ones it fits on. On the public suite this choice beat every
single form (benchmarks/README.md); letting the linear model shrink towards
the training mean instead was worse where the level shifted after training
(heartrate: 1.77x seasonal naive, against 1.00x).

Each baseline maps gathered windows ``X`` (B, length, n_inputs), scaled and
causally filled, to forecasts (B, horizon, n_targets) in the scaled units.
"""

import numpy as np
import scipy.linalg
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error

# Ridge penalties tried, relative to the mean squared feature value (inputs
# are standardised, so the grid suits any data set).
_ALPHAS = np.logspace(-3, 3, 13)
# Windows used to fit a linear baseline: evenly spaced over the training
# origins. Its W x horizon coefficients are well determined long before this,
# and it keeps the design matrix small at a million rows.
MAX_FIT_WINDOWS = 20_000
# Gathered values per block when the candidates are fitted and scored.
_BLOCK_VALUES = 1 << 20


class LagBaseline:
    """Step k of target j repeats the value ``lags[k, j]`` rows before the origin."""

    def __init__(self, lags, window):
        self.lags, self.window = np.asarray(lags, np.intp), window

    def describe(self):
        return "persistence" if not self.lags.any() else "seasonal naive"

    def __call__(self, X):
        n_t = self.lags.shape[1]
        rows = self.window - 1 - self.lags  # (h, n_t)
        return X[:, rows, np.arange(n_t)]


class LinearBaseline:
    """Ridge regression of the next ``horizon`` values, as departures from an anchor.

    The forecast of step k is the anchor's (the origin's value, or the value
    of the same phase in the last season) plus a linear function of the
    window's target values, taken as changes from the origin. The ridge
    penalty therefore shrinks the forecast towards the anchor.

    Parameters
    ----------
    window, horizon, n_targets : int
    anchor : ndarray (horizon, n_targets) of int
        Rows before the origin whose value anchors each step (all 0:
        persistence; ``seasonal_lags``: seasonal naive).
    level : bool
        Also use the value at the origin as a feature (mean reversion).
    covariates : bool
        Also use every other input column of the window (and of the
        known-future rows after it, when there are any) as features.
    alpha : float
        Ridge penalty, relative to the mean squared feature value.
    """

    def __init__(self, window, horizon, n_targets, anchor, level, covariates, alpha):
        self.window, self.horizon, self.n_targets = window, horizon, n_targets
        self.anchor = LagBaseline(anchor, window)
        self.level, self.covariates, self.alpha = level, covariates, alpha

    def _design(self, X, Y=None):
        w, n_t = self.window, self.n_targets
        past = X[:, :w, :n_t].astype(np.float64)  # known-future rows come after
        origin = past[:, -1:, :]
        parts = [(past - origin).reshape(len(X), -1)]
        if self.level:
            parts.append(origin.reshape(len(X), -1))
        if self.covariates:
            parts.append(X[:, :, n_t:].reshape(len(X), -1).astype(np.float64))
        F = np.hstack(parts) if len(parts) > 1 else parts[0]
        anchor = self.anchor(X).astype(np.float64)  # (B, horizon, n_t)
        if Y is None:
            return F, anchor
        return F, anchor, (Y - anchor).reshape(len(Y), -1)

    def describe(self):
        extras = [self.anchor.describe()] + ["level"] * self.level + ["covariates"] * self.covariates
        return f"linear ({', '.join(extras)})"

    def fit(self, X, Y):
        """Fit on gathered windows X and the targets after them, Y (B, horizon, n_t)."""
        F, _, T = self._design(X, Y)
        keep = ~np.isnan(T).any(axis=1)  # missing="mask": windows with a gap
        scale = max(float(np.mean(F[keep] ** 2)), 1e-12)
        model = Ridge(alpha=self.alpha * scale).fit(F[keep], T[keep])
        self.coef_, self.intercept_ = model.coef_.T, model.intercept_
        return self

    def __call__(self, X):
        F, anchor = self._design(X)
        values = (F @ self.coef_ + self.intercept_).reshape(len(X), self.horizon, self.n_targets)
        return anchor + values


def _blocks(idx, values_per_row):
    """``idx`` in consecutive blocks of about ``_BLOCK_VALUES`` gathered values."""
    size = max(1, _BLOCK_VALUES // max(values_per_row, 1))
    return [idx[i : i + size] for i in range(0, len(idx), size)]


def _ridge_path(probe, gather, targets, idx, n_inputs, alphas):
    """Ridge fits of ``probe``'s form for every penalty, from streamed moments.

    The design matrix of a wide form (a week of ten sensors is 1,680
    features) over 20,000 windows is a quarter of a gigabyte, and the
    solver copies it. Its Gram matrix is the same size as the feature count
    squared, so it is accumulated block by block instead; one eigen
    decomposition then gives every penalty. This is the ridge solution
    with an intercept (centred moments), as ``sklearn.linear_model.Ridge``
    computes it on a dense design with more rows than features.

    Returns ``[(coef, intercept), ...]`` per penalty, or None when there
    are no more usable windows than coefficients.
    """
    n, sum_f, sum_t, gram, cross, sum_sq = 0, 0.0, 0.0, 0.0, 0.0, 0.0
    for block in _blocks(idx, probe.window * n_inputs):
        F, _, T = probe._design(gather(probe.window, block), targets(block))
        keep = ~np.isnan(T).any(axis=1)  # missing="mask": windows with a gap
        F, T = F[keep], T[keep]
        n += len(F)
        sum_f, sum_t = sum_f + F.sum(axis=0), sum_t + T.sum(axis=0)
        gram, cross = gram + F.T @ F, cross + F.T @ T
        sum_sq += float(np.einsum("ij,ij->", F, F))
    if n == 0 or n <= np.shape(gram)[0]:
        return None
    mean_f, mean_t = sum_f / n, sum_t / n
    gram -= n * np.outer(mean_f, mean_f)  # centred in place: it can be 20+ MB
    cross_c = cross - n * np.outer(mean_f, mean_t)
    # Penalties are relative to the mean squared feature value, so that one
    # grid suits any data set.
    scale = max(sum_sq / (n * len(mean_f)), 1e-12)
    # The RRR driver's workspace is linear in the size; numpy's divide and
    # conquer needs two more matrices of the Gram's size.
    # (gram.T: the same symmetric matrix in the Fortran order LAPACK works in
    # place on, so it is not copied.)
    eigvals, eigvecs = scipy.linalg.eigh(gram.T, driver="evr", overwrite_a=True,
                                         check_finite=False)
    del gram
    projected = eigvecs.T @ cross_c
    path = []
    for alpha in alphas:
        coef = eigvecs @ (projected / (np.maximum(eigvals, 0.0) + alpha * scale)[:, None])
        path.append((coef, mean_t - mean_f @ coef))
    return path


def select_baseline(gather, targets, fit_idx, val_idx, windows, horizon, n_targets,
                    seasonal_lags):
    """The baseline with the least mean absolute error on held-out time.

    Candidates: persistence, seasonal naive (``seasonal_lags``, or None when
    there is no season the windows can see), and the linear baseline with
    and without the level feature and the covariates, for every window and
    penalty. Windows are gathered block by block, so memory stays O(features
    squared) whatever the number of origins.

    Parameters
    ----------
    gather : callable
        ``gather(window, idx)`` gives the windows (B, window, n_inputs) of
        some training origins, as the network would see them.
    targets : callable
        ``targets(idx)`` gives their scaled future targets (B, horizon, n_t).
    fit_idx, val_idx : ndarray of int
        Origins to fit on, and later origins whose targets were not fitted
        on, to score on. The chosen baseline stays fitted on ``fit_idx``
        only: the network is validated and the bands are calibrated on the
        same held-out block, which must stay unseen (refitting on it changed
        the suite's geometric mean by 0.001).
    windows : list of int
        Candidate window lengths.
    seasonal_lags : ndarray (horizon,) of int or None

    Returns
    -------
    baseline : LagBaseline or LinearBaseline
    window : int
        The window the baseline reads (the longest candidate for a lag
        baseline, which reads only its end).
    scores : dict
        Held-out MAE of every candidate.
    """
    longest = max(windows)
    n_inputs = gather(longest, val_idx[:1]).shape[2]
    lags = {"persistence": np.zeros(horizon, np.intp)}
    if seasonal_lags is not None:
        lags["seasonal"] = seasonal_lags
    lags = {name: np.repeat(lag[:, None], n_targets, 1) for name, lag in lags.items()}
    forms = [(anchor, level, cov) for anchor in lags for level in (False, True)
             for cov in (False, True) if cov is False or n_inputs > n_targets]

    # Every candidate is scored in one pass over the held-out windows: the
    # sum of absolute errors and the count of observed targets.
    fitted = {}
    for window in windows:
        for anchor, level, covariates in forms:
            if lags[anchor].max() >= window:
                continue  # the window does not reach back a season
            probe = LinearBaseline(window, horizon, n_targets, lags[anchor], level,
                                   covariates, alpha=1.0)
            path = _ridge_path(probe, gather, targets, fit_idx, n_inputs, _ALPHAS)
            if path is None:
                continue  # fewer windows than coefficients
            for alpha, (coef, intercept) in zip(_ALPHAS, path):
                fitted[((anchor, level, covariates), window, float(alpha))] = (probe, coef,
                                                                              intercept)
    abs_error = {(name, longest, None): 0.0 for name in lags}
    abs_error.update({key: 0.0 for key in fitted})
    count = 0
    for block in _blocks(val_idx, longest * n_inputs):
        Y = targets(block)
        observed = ~np.isnan(Y)
        count += int(observed.sum())
        X = gather(longest, block)
        for name, lag in lags.items():
            pred = LagBaseline(lag, longest)(X)
            abs_error[(name, longest, None)] += float(np.abs(Y - pred)[observed].sum())
        for window in windows:
            X = gather(window, block)
            for key, (probe, coef, intercept) in fitted.items():
                if key[1] == window:
                    F, anchor = probe._design(X)
                    pred = anchor + (F @ coef + intercept).reshape(len(X), horizon, n_targets)
                    abs_error[key] += float(np.abs(Y - pred)[observed].sum())
    scores = {key: (err / count if count else np.inf) for key, err in abs_error.items()}
    kind, window, alpha = min(scores, key=scores.get)
    if kind in lags:
        return LagBaseline(lags[kind], window), window, scores
    probe, coef, intercept = fitted[(kind, window, alpha)]
    anchor, level, covariates = kind
    baseline = LinearBaseline(window, horizon, n_targets, lags[anchor], level, covariates,
                              alpha)
    baseline.coef_, baseline.intercept_ = coef, intercept
    return baseline, window, scores


def evenly_spaced(n, at_most=MAX_FIT_WINDOWS):
    """Indices of at most ``at_most`` evenly spaced items of ``n``."""
    if n <= at_most:
        return np.arange(n)
    return np.linspace(0, n - 1, at_most).astype(np.intp)

