"""Exponential smoothing (Holt-Winters, additive ETS) as a learned baseline.

Design
------
The baselines of ``_baselines.py`` map a window of scaled target values to
the ``horizon`` values after it. Here that map is exponential smoothing run
over the window: a level, optionally a damped additive trend, optionally an
additive season of ``season`` steps (Hyndman et al., *Forecasting with
exponential smoothing*, 2008: ETS(A,N,N), (A,Ad,N), (A,N,A), (A,Ad,A)).

Where the state comes from. The smoothing runs over the window only, from an
initial state fitted to the whole window by least squares (level, slope and
zero-sum seasonal offsets). With its smoothing parameters fixed, every step
of that recursion and the least-squares start are linear in the window's
values, so the forecast is a fixed linear map of the window: a
``LinearBaseline`` whose coefficients are that map. It is therefore served by
the same code in ``predict``, ``update``, ``backtest`` and streaming contexts
(all of which hand the baseline one window per origin), pickles as a small
matrix, and exports to ONNX as the linear baseline does. Keeping the whole
history's state in the stream context instead would have needed a state per
series carried through every one of those paths, for a forecast that, with
the smoothing parameters the fits choose, forgets what lies beyond a window
of two seasons or more.

Because the map reproduces a constant window, the forecast minus the value at
the origin is the map applied to the window's changes from the origin: the
features and targets of the persistence-anchored linear candidates. Their
Gram matrix and cross products (``_baselines._moments``, accumulated once
over the training windows) give every grid point's squared training error in
O(window² x horizon), whatever the number of windows: the smoothing
parameters are chosen on the fitting origins only, per target column, by a
grid over all of them at once, and the held-out block then chooses among
the forms and windows (``baseline="smoothing"``).

Multiplicative seasons are not among the forms: the windows are standardised
(centred on the training mean), so a season proportional to the level has no
zero to be proportional to, and the forecast would no longer be a linear map.
Smoothing the logarithm of the distance from the raw zero instead (positive
targets, one scaler) was tried: on airline passengers the held-out block
preferred it and the test span did not (benchmarks/README.md).

With several series, one set of smoothing parameters serves them all, as
one ridge regression does: a window does not say which series it is from.
"""
import itertools

import numpy as np

from tsrnn._baselines import LinearBaseline

# Smoothing parameter grids. The trend's smoothing is a share of the level's
# (beta = alpha * beta_share keeps 0 <= beta <= alpha), and the season's is
# kept under 1 - alpha: the usual region of Hyndman et al. 2008 (sec. 10.2).
# About 500 points for the richest form: a finer grid (13 x 5 x 5 x 7, 1,875
# points) took 11.6 s for the four forms at a window of 192, horizon and
# season 48 (3.5 s now) on the loaded machine, and made the same held-out
# choices on the holdout group (benchmarks/README.md).
_ALPHAS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 0.9, 1.0)
_BETA_SHARES = (0.02, 0.1, 0.4)
_PHIS = (0.8, 0.9, 0.98, 1.0)
_GAMMAS = (0.0, 0.05, 0.15, 0.3, 0.5)
# Grid points whose maps are made at once: about this many values in the
# largest array (the maps, or the seasonal state), 32 MB in float64.
_CHUNK_VALUES = 1 << 22

# The forms: (trend, seasonal). A seasonal form needs a window of two seasons
# (the least-squares start sees every phase twice).
FORMS = ((False, False), (True, False), (False, True), (True, True))


def describe_form(trend, seasonal):
    parts = ["level"] + ["damped trend"] * trend + ["additive season"] * seasonal
    return ", ".join(parts)


def _grid(trend, seasonal):
    """(alpha, beta, phi, gamma) of every grid point of a form, as 4 arrays."""
    betas = _BETA_SHARES if trend else (0.0,)
    phis = _PHIS if trend else (1.0,)
    gammas = _GAMMAS if seasonal else (0.0,)
    points = [(a, a * b, p, g) for a, b, p, g in itertools.product(_ALPHAS, betas, phis, gammas)
              if g <= 1.0 - a]
    return tuple(np.array(col, np.float64) for col in zip(*points))


def _initial_state(window, trend, season):
    """Least-squares start: (p, window) map from the window to its state.

    Rows: the level before the first value, the slope (with a trend), and
    the seasonal offset of each phase (with a season; they sum to zero).
    """
    t = np.arange(1, window + 1, dtype=np.float64)
    cols = [np.ones(window)] + [t - (window + 1) / 2] * trend
    if season > 1:
        phase = (t.astype(np.intp) - 1) % season
        # Zero-sum coding: phase i < m - 1 is its own column, the last phase
        # is minus the sum of the others.
        dummies = np.zeros((window, season - 1))
        own = phase < season - 1
        dummies[own, phase[own]] = 1.0
        dummies[~own] = -1.0
        cols += list(dummies.T)
    D = np.column_stack(cols)
    coef = np.linalg.pinv(D)  # (p, window)
    level = coef[0].copy()
    if trend:
        # The fitted line at time 0, not at the window's middle.
        level -= coef[1] * (window + 1) / 2
    rows = [level, coef[1]] if trend else [level]
    if season > 1:
        offsets = coef[1 + trend:]
        rows += list(offsets) + [-offsets.sum(axis=0)]
    return np.vstack(rows)


def smoothing_maps(window, horizon, season, alpha, beta, phi, gamma, trend, seasonal):
    """Linear maps (n, horizon, window) of the ETS forecasts of a window.

    ``alpha``, ``beta``, ``phi``, ``gamma`` are arrays (n,) of smoothing
    parameters (ignored where the form has no trend or season). Row ``k`` of
    map ``i`` gives step ``k + 1``'s forecast from the window's values.
    The recursion is the error-correction form of the additive-error models
    (Hyndman et al. 2008, table 2.2): with e the one-step error,
    level += phi * slope + alpha * e, slope = phi * slope + beta * e, and
    the phase's seasonal offset += gamma * e. It runs once, over the
    window's unit vectors, for every grid point together.
    """
    m = season if seasonal else 1
    start = _initial_state(window, trend, m)  # (p, window)
    n = len(alpha)
    a, b, p, g = (np.asarray(v, np.float64)[:, None] for v in (alpha, beta, phi, gamma))
    level = np.broadcast_to(start[0], (n, window)).copy()
    slope = (np.broadcast_to(start[1], (n, window)).copy() if trend
             else np.zeros((n, window)))
    offsets = (np.broadcast_to(start[1 + trend:], (n, m, window)).copy() if seasonal
               else None)
    for t in range(window):  # value t is the unit vector e_t
        expected = level + p * slope  # one-step forecast of the level
        error = -expected  # the one-step error e_t - expected, less the season's part
        error[:, t] += 1.0
        if seasonal:
            error -= offsets[:, t % m]
            offsets[:, t % m] += g * error
        level = expected + a * error
        slope = p * slope + b * error
    steps = np.arange(1, horizon + 1)
    # phi + phi^2 + ... + phi^k, the damped trend's reach at step k.
    reach = np.cumsum(p ** steps[None, :], axis=1)  # (n, horizon)
    maps = level[:, None, :] + reach[:, :, None] * slope[:, None, :]
    if seasonal:
        maps = maps + offsets[:, (window + steps - 1) % m, :]
    return maps


class SmoothingBaseline(LinearBaseline):
    """Exponential smoothing over the window, as the linear map it is.

    A ``LinearBaseline`` anchored on persistence, reading the window's
    target changes only, whose coefficients are the ETS forecast's map: it
    forecasts, pickles and exports as one. ``params`` records the smoothing
    parameters of each target column (dicts), for ``describe``.
    """

    def __init__(self, window, horizon, n_targets, trend, seasonal, season, params):
        super().__init__(window, horizon, n_targets, np.zeros((horizon, n_targets), np.intp),
                         level=False, covariates=False, alpha=0.0)
        self.trend, self.seasonal, self.season, self.params = trend, seasonal, season, params

    def describe(self):
        return f"exponential smoothing ({describe_form(self.trend, self.seasonal)})"

    def fit(self, X, Y, sample_weight=None):
        # The ridge fit of the parent would replace the smoothing map.
        raise TypeError("a SmoothingBaseline is fitted from the candidates' moments "
                        "(tsrnn._ets.fit_smoothing), not by ridge regression")


def stack_maps(maps, n_targets):
    """(window * n_t, horizon * n_t) coefficients from one (horizon, window) map per target.

    The design's rows are (row, target) and its outputs (step, target), both
    target-minor, as ``LinearBaseline._design`` lays them out.
    """
    horizon, window = maps[0].shape
    coef = np.zeros((window, n_targets, horizon, n_targets))
    for j, M in enumerate(maps):
        coef[:, j, :, j] = M.T
    return coef.reshape(window * n_targets, horizon * n_targets)


def fit_smoothing(gram, cross, longest, window, horizon, n_targets, season, trend, seasonal):
    """The least-squares grid point of one form and window, per target column.

    ``gram`` and ``cross`` are the persistence-anchored candidates' moments
    (``_baselines._moments``): sums over the fitting windows of f f^T and
    f t^T, with f the longest window's changes from the origin (row-major,
    target-minor, then the origin and covariates, which are not read here)
    and t the future's changes from it (step-major, target-minor).

    Returns a fitted :class:`SmoothingBaseline`, or None when the window is
    too short for the form.
    """
    if seasonal and (season <= 1 or window < 2 * season):
        return None
    if trend and window < 3:
        return None
    grid = _grid(trend, seasonal)
    moments = []
    for j in range(n_targets):
        rows = np.arange(longest - window, longest) * n_targets + j
        outs = np.arange(horizon) * n_targets + j
        # (window, window) and (window, horizon): this target's moments.
        moments.append((gram[np.ix_(rows, rows)], cross[np.ix_(rows, outs)]))
    best = [(np.inf, None, None)] * n_targets  # (error, map, grid index) per target
    size = max(1, _CHUNK_VALUES // (window * max(horizon, season if seasonal else 1)))
    for lo in range(0, len(grid[0]), size):
        maps = smoothing_maps(window, horizon, season, *(v[lo : lo + size] for v in grid),
                              trend, seasonal)
        flat = maps.reshape(-1, window)
        for j, (G, C) in enumerate(moments):
            # Squared training error up to a constant: tr(M G M^T) - 2 tr(M C).
            sse = (np.einsum("nkw,nkw->n", (flat @ G).reshape(maps.shape), maps)
                   - 2.0 * np.einsum("nkw,wk->n", maps, C))
            i = int(np.argmin(sse))
            if sse[i] < best[j][0]:  # ties keep the earlier grid point
                best[j] = (sse[i], maps[i].copy(), lo + i)
    chosen = [M for _, M, _ in best]
    params = [{name: float(v[i]) for name, v in zip(("alpha", "beta", "phi", "gamma"), grid)}
              for _, _, i in best]
    baseline = SmoothingBaseline(window, horizon, n_targets, trend, seasonal,
                                 season if seasonal else 1, params)
    baseline.coef_ = stack_maps(chosen, n_targets)
    baseline.intercept_ = np.zeros(horizon * n_targets)
    return baseline
