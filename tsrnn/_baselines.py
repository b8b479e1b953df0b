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
            # Converted before the reshape: that of the strided slice would
            # copy it once more (a fleet's backtest: 0.8 s of 3 s).
            parts.append(X[:, :, n_t:].astype(np.float64).reshape(len(X), -1))
        F = np.hstack(parts) if len(parts) > 1 else parts[0]
        anchor = self.anchor(X).astype(np.float64)  # (B, horizon, n_t)
        if Y is None:
            return F, anchor
        return F, anchor, (Y - anchor).reshape(len(Y), -1)

    def describe(self):
        extras = [self.anchor.describe()] + ["level"] * self.level + ["covariates"] * self.covariates
        return f"linear ({', '.join(extras)})"

    def fit(self, X, Y, sample_weight=None):
        """Fit on gathered windows X and the targets after them, Y (B, horizon, n_t).

        ``sample_weight`` (B,) weighs the windows, as relative weights (see
        ``_ridge_paths``): weights that are all equal fit as no weights.
        """
        F, _, T = self._design(X, Y)
        keep = ~np.isnan(T).any(axis=1)  # missing="mask": windows with a gap
        w = None
        if sample_weight is not None:
            w = np.asarray(sample_weight, np.float64)[keep]
            w = None if not len(w) or np.all(w == w[0]) else w / np.mean(w)
        scale = max(float(np.average(F[keep] ** 2, axis=0, weights=w).mean()
                          if w is not None else np.mean(F[keep] ** 2)), 1e-12)
        model = Ridge(alpha=self.alpha * scale).fit(F[keep], T[keep], sample_weight=w)
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


class _FullDesign:
    """Columns of every linear form and window inside one design matrix.

    Every candidate reads a subset of the features of the widest form (level
    and covariates) over the longest window: a shorter window is the tail of
    the longer one (the windows end at the same origin), and the forms add
    or drop whole blocks. So one Gram matrix, accumulated once over the
    training windows, holds every candidate's as a principal submatrix; the
    anchor changes only the targets. This makes the choice among twelve or
    more candidates cost about one ridge fit.
    """

    def __init__(self, longest, horizon, n_targets, n_inputs, n_rows):
        self.longest, self.n_targets = longest, n_targets
        self.n_cov, self.n_rows = n_inputs - n_targets, n_rows
        zero = np.zeros((horizon, n_targets), np.intp)
        self.full = LinearBaseline(longest, horizon, n_targets, zero, level=True,
                                   covariates=self.n_cov > 0, alpha=1.0)

    def features(self, X):
        return self.full._design(X)[0]

    def columns(self, window, level, covariates):
        """Column indices of (window, form) in the full design, in its order."""
        L, n_t = self.longest, self.n_targets
        cols = [np.arange((L - window) * n_t, L * n_t)]
        if level:
            cols.append(L * n_t + np.arange(n_t))
        if covariates:
            start = L * n_t + n_t
            cols.append(start + np.arange((L - window) * self.n_cov, self.n_rows * self.n_cov))
        return np.concatenate(cols)


def _ridge_paths(moments, cols, anchors, alphas):
    """Ridge fits of one design for every anchor and penalty, from the moments.

    This is the ridge solution with an intercept (centred moments), as
    ``sklearn.linear_model.Ridge`` computes it on a dense design with more
    rows than features. The anchors share the design, so one eigen
    decomposition of its Gram matrix serves every anchor and penalty (it is
    the cost: 1,300 features, a few days of 13 sensors, take seconds).
    With ``sample_weight``, every moment is a weighted sum (the weights scaled
    to a mean of 1, see ``select_baseline``): the weighted least squares with
    an intercept that ``Ridge.fit(sample_weight=...)`` solves, and with equal
    weights exactly the unweighted fit.

    Returns ``{anchor: [(coef, intercept), ...] per penalty}``, or None when
    there are no more usable windows than coefficients.
    """
    n = moments["n"]  # the sum of the weights
    if moments["count"] <= len(cols):
        return None
    mean_f = moments["sum_f"][cols] / n
    gram = moments["gram"][np.ix_(cols, cols)]
    # Penalties are relative to the mean squared feature value, so that one
    # grid suits any data set.
    scale = max(float(np.trace(gram)) / (n * len(cols)), 1e-12)
    gram -= n * np.outer(mean_f, mean_f)  # centred in place: it can be 20+ MB
    # The RRR driver's workspace is linear in the size (numpy's divide and
    # conquer needs two more matrices of the Gram's size); gram.T is the same
    # symmetric matrix in the Fortran order LAPACK works on in place.
    eigvals, eigvecs = scipy.linalg.eigh(gram.T, driver="evr", overwrite_a=True,
                                         check_finite=False)
    del gram
    shrink = [1.0 / (np.maximum(eigvals, 0.0) + alpha * scale) for alpha in alphas]
    paths = {}
    for anchor in anchors:
        mean_t = moments["sum_t"][anchor] / n
        cross = moments["cross"][anchor][cols] - n * np.outer(mean_f, mean_t)
        projected = eigvecs.T @ cross
        paths[anchor] = []
        for factor in shrink:
            coef = eigvecs @ (projected * factor[:, None])
            paths[anchor].append((coef, mean_t - mean_f @ coef))
    return paths


def _moments(design, gather, targets, idx, lags, weights=None):
    """Weighted sums over the windows of ``idx`` that every candidate's fit needs.

    The Gram matrix and feature sums of ``design``'s full feature set, and
    per anchor (``lags``: {name: (horizon, n_t) lags}) the target sums and
    cross products; ``weights`` (len(idx),) or None.
    """
    moments = {"n": 0.0, "count": 0, "sum_f": 0.0, "gram": 0.0,
               "sum_t": dict.fromkeys(lags, 0.0), "cross": dict.fromkeys(lags, 0.0)}
    for pos in _blocks(np.arange(len(idx)), design.n_rows * (design.n_targets + design.n_cov)):
        block = idx[pos]
        X, Y = gather(design.longest, block), targets(block)
        keep = ~np.isnan(Y).reshape(len(Y), -1).any(axis=1)  # missing="mask": gaps
        X, Y = X[keep], Y[keep].astype(np.float64)
        F = design.features(X)
        moments["count"] += len(F)
        if weights is None:
            # No weights: the plain sums, without copies of the block.
            moments["n"] += len(F)
            Fw, root, Fr = F, None, F
        else:
            # sum_i w_i f_i f_i^T as (sqrt(w) F)^T (sqrt(w) F): one symmetric
            # product, and with unit weights exactly the unweighted one.
            w = weights[pos][keep][:, None]
            root = np.sqrt(w)
            Fw, Fr = F * w, F * root
            moments["n"] += float(np.sum(w))
        moments["sum_f"] = moments["sum_f"] + Fw.sum(axis=0)
        moments["gram"] = moments["gram"] + Fr.T @ Fr
        for name, lag in lags.items():
            T = (Y - LagBaseline(lag, design.longest)(X)).reshape(len(Y), -1)
            Tr = T if root is None else T * root
            Tw = T if root is None else T * w
            moments["sum_t"][name] = moments["sum_t"][name] + Tw.sum(axis=0)
            moments["cross"][name] = moments["cross"][name] + Fr.T @ Tr
    return moments


def select_baseline(gather, targets, fit_idx, val_idx, windows, horizon, n_targets,
                    seasonal_lags, weights=None, season=1, smoothing_only=False):
    """The baseline with the least mean absolute error on held-out time.

    Candidates: persistence, seasonal naive (``seasonal_lags``, or None when
    there is no season the windows can see), and the linear baseline with
    and without the level feature and the covariates, for every window and
    penalty. With ``smoothing_only`` the candidates are instead exponential
    smoothing's forms (``_ets.py``: level, damped trend, additive season of
    ``season`` steps) for every window. (Among the others, on the suite and
    the holdout group, the held-out block chose it on 4 of 14 data sets, and
    the test span made two 12-13% better and two 26-40% worse:
    benchmarks/README.md.) Windows are gathered block by block and the
    linear candidates share one Gram matrix (``_FullDesign``), so memory
    stays O(features squared) whatever the number of origins.

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
    weights : callable or None
        ``weights(idx)`` gives the ``sample_weight`` of some origins (n,).
        The linear candidates are then fitted by weighted least squares and
        scored by the weighted mean absolute error, each origin's errors
        counting with its weight, as in the network's loss and validation
        score. Weights are relative: scaled to a mean of 1 over the usable
        windows, so that the data term keeps its size and the penalty grid
        means the same; equal weights give exactly the unweighted choice.

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
    probe = gather(longest, val_idx[:1])
    n_rows, n_inputs = probe.shape[1:]
    design = _FullDesign(longest, horizon, n_targets, n_inputs, n_rows)
    lags = {"persistence": np.zeros(horizon, np.intp)}
    if seasonal_lags is not None:
        lags["seasonal"] = seasonal_lags
    lags = {name: np.repeat(lag[:, None], n_targets, 1) for name, lag in lags.items()}
    designs = [(level, cov) for level in (False, True) for cov in (False, True)
               if cov is False or n_inputs > n_targets]

    fit_weights = None
    if weights is not None:
        fit_weights = weights(fit_idx).astype(np.float64)
        usable = ~np.isnan(targets(fit_idx)).reshape(len(fit_idx), -1).any(axis=1)
        if usable.any():
            fit_weights = fit_weights / np.mean(fit_weights[usable])

    moments = _moments(design, gather, targets, fit_idx, lags, fit_weights)

    fitted = {}
    for window in [] if smoothing_only else windows:
        # A seasonal anchor needs a window that reaches back a season.
        anchors = [name for name, lag in lags.items() if lag.max() < window]
        for level, covariates in designs:
            cols = design.columns(window, level, covariates)
            paths = _ridge_paths(moments, cols, anchors, _ALPHAS)
            if paths is None:
                continue  # fewer windows than coefficients
            for anchor, path in paths.items():
                for alpha, (coef, intercept) in zip(_ALPHAS, path):
                    key = ((anchor, level, covariates), window, float(alpha))
                    fitted[key] = (cols, coef, intercept)
    smoothing = {}
    if smoothing_only:
        # _ets builds on this module, hence the import here.
        from tsrnn import _ets

        for window in windows:
            for trend, seasonal in _ets.FORMS:
                model = _ets.fit_smoothing(moments["gram"], moments["cross"]["persistence"],
                                           longest, window, horizon, n_targets, season,
                                           trend, seasonal)
                if model is not None:
                    key = (("exponential smoothing", _ets.describe_form(trend, seasonal)),
                           window, None)
                    smoothing[key] = (design.columns(window, False, False), model)
    del moments

    # Every candidate is scored in one pass over the held-out windows: the
    # sum of absolute errors and the count of observed targets.
    abs_error = {} if smoothing_only else {(name, longest, None): 0.0 for name in lags}
    abs_error.update({key: 0.0 for key in fitted})
    abs_error.update({key: 0.0 for key in smoothing})
    count = 0
    for block in _blocks(val_idx, n_rows * n_inputs):
        Y = targets(block)
        observed = ~np.isnan(Y)
        w = None
        if weights is None:
            count += int(observed.sum())
        else:
            w = np.broadcast_to(weights(block).astype(np.float64)[:, None, None], Y.shape)
            count += float(w[observed].sum())
        X = gather(longest, block)
        anchors = {name: LagBaseline(lag, longest)(X) for name, lag in lags.items()}
        for name, pred in anchors.items():
            if (name, longest, None) in abs_error:
                abs_error[(name, longest, None)] += _total(np.abs(Y - pred), observed, w)
        F = design.features(X)
        for key, (cols, coef, intercept) in fitted.items():
            anchor = anchors[key[0][0]]
            pred = anchor + (F[:, cols] @ coef + intercept).reshape(anchor.shape)
            abs_error[key] += _total(np.abs(Y - pred), observed, w)
        for key, (cols, model) in smoothing.items():
            anchor = anchors["persistence"]
            pred = anchor + (F[:, cols] @ model.coef_).reshape(anchor.shape)
            abs_error[key] += _total(np.abs(Y - pred), observed, w)
    scores = {key: (err / count if count else np.inf) for key, err in abs_error.items()}
    kind, window, alpha = min(scores, key=scores.get)
    if kind in lags:
        return LagBaseline(lags[kind], window), window, scores
    if (kind, window, alpha) in smoothing:
        return smoothing[(kind, window, alpha)][1], window, scores
    _, coef, intercept = fitted[(kind, window, alpha)]
    anchor, level, covariates = kind
    baseline = LinearBaseline(window, horizon, n_targets, lags[anchor], level, covariates,
                              alpha)
    baseline.coef_, baseline.intercept_ = coef, intercept
    return baseline, window, scores


def _total(errors, observed, weights=None):
    """Sum of the observed errors, each times its weight when there are weights.

    The products are in the errors' dtype, as the plain sum is, so unit
    weights give exactly the unweighted sum.
    """
    if weights is not None:
        errors = errors * weights.astype(errors.dtype, copy=False)
    return float(errors[observed].sum())


def evenly_spaced(n, at_most=MAX_FIT_WINDOWS):
    """Indices of at most ``at_most`` evenly spaced items of ``n``."""
    if n <= at_most:
        return np.arange(n)
    return np.linspace(0, n - 1, at_most).astype(np.intp)

