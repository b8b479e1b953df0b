"""The training budget: which windows an epoch trains on, and the held-out sample.

Design
------
A fleet of 10,000 sensors holds millions of forecast origins. Training on all
of them every epoch makes the cost of a fit grow with the fleet, although a
network of a few thousand weights stops learning from more windows of the
same kind long before (neuralforecast trains a fixed ``max_steps`` of
``windows_batch_size`` sampled windows; darts caps ``max_samples_per_ts``).
With ``max_windows_per_epoch`` set and more windows than that, an epoch
trains on a sample of that many windows instead, drawn here.

Series first, then windows. The items of a training view are grouped by
series (``groups``: the number of consecutive items of each series). The
budget is shared equally among the series, a series never giving more
windows than it has ("water-filling": the largest share L with
``sum(min(n_s, L)) <= budget``, and the windows left over go one each to
series that still have some). So a short series is not drowned by long ones,
and no window is drawn twice in an epoch. Within a series the windows are a
stratified sample in time: its items are cut into as many consecutive runs
as it has draws, and one random item is taken from each run, so an epoch
sees every part of every series' history.

Purity. ``epoch_sample`` is a function of (seed, epoch, groups, budget)
only: it builds its own generator from ``SeedSequence([seed, epoch])``,
reads no pandas frame and no global state, so a dask worker that knows the
series lengths draws exactly what the client would, and the same
``random_state`` gives the same draws (and, the kernels being deterministic,
the same model at any thread count). The seed is drawn once per fit from
the estimator's ``random_state``, and only when the budget binds, so a fit
whose windows fit the budget consumes the random state exactly as before
and gives bitwise the model it gave before the budget existed.

The held-out sample. Early stopping compares epochs by their score on the
held-out block, so that block must not change between epochs:
``fixed_sample`` takes the same equal shares of it, without randomness, as
evenly spaced items of every series.
"""

import numpy as np


def _shares(groups, budget):
    """Items per series: equal shares of ``budget``, none above its size.

    Returns ``(take, spare)``: ``take[s] = min(groups[s], L)`` for the
    largest L that fits the budget, and ``spare`` the number of items the
    budget still allows (fewer than the series with ``groups[s] > L``).
    """
    groups = np.asarray(groups, np.int64)
    if groups.sum() <= budget:
        return groups.copy(), 0
    lo, hi = 0, int(groups.max())  # sum(min(n, lo)) <= budget < sum(min(n, hi))
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if np.minimum(groups, mid).sum() <= budget:
            lo = mid
        else:
            hi = mid
    take = np.minimum(groups, lo)
    return take, int(budget - take.sum())


def _starts(groups):
    return np.concatenate([[0], np.cumsum(groups)[:-1]]).astype(np.int64)


def _strata(groups, take):
    """(series of each draw, first item and size of its run within the series)."""
    series = np.repeat(np.arange(len(groups)), take)
    first_draw = np.repeat(_starts(take), take)
    j = np.arange(len(series)) - first_draw  # draw number within its series
    n, c = groups[series], take[series]
    # Runs [floor(j n / c), floor((j + 1) n / c)): c runs covering the n
    # items, each at least one item long since c <= n.
    a = (j * n) // c
    b = ((j + 1) * n) // c
    return series, a, b - a


def epoch_sample(groups, budget, seed, epoch, shuffle=True):
    """Item indices one epoch trains on, in training order.

    Parameters
    ----------
    groups : array-like of int
        Items of each series, the items of a series consecutive (series with
        no item are allowed and never drawn).
    budget : int
        Items to draw; all of them (each once) when there are no more.
    seed : int
        Drawn once per fit from the estimator's random state.
    epoch : int
        The epoch's number (``n_iter_`` before it), so that every epoch, and
        every ``partial_fit`` call, draws anew.
    shuffle : bool
        Return the draws in random order (else grouped by series, in time).

    Returns
    -------
    idx : ndarray of intp, ``min(budget, sum(groups))`` distinct items.
    """
    groups = np.asarray(groups, np.int64)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch)]))
    take, spare = _shares(groups, budget)
    if spare:
        # The leftover windows go to randomly chosen series that have more.
        room = np.flatnonzero(groups > take)
        take[rng.choice(room, spare, replace=False)] += 1
    series, a, size = _strata(groups, take)
    pos = a + (rng.random(len(series)) * size).astype(np.int64)
    idx = (_starts(groups)[series] + pos).astype(np.intp)
    if shuffle:
        idx = idx[rng.permutation(len(idx))]
    return idx


def fixed_sample(groups, budget):
    """Item indices of a deterministic sample: equal shares, evenly spaced.

    The held-out windows early stopping scores, fixed for the whole fit.
    All items (in order) when there are at most ``budget``.
    """
    groups = np.asarray(groups, np.int64)
    take, spare = _shares(groups, budget)
    if spare:
        # No randomness: the first series that have more get one more.
        take[np.flatnonzero(groups > take)[:spare]] += 1
    series, a, _ = _strata(groups, take)
    return (_starts(groups)[series] + a).astype(np.intp)


def series_groups(origins, offsets):
    """Consecutive items per series of sorted stacked ``origins`` (``offsets``: row starts)."""
    series = np.searchsorted(np.asarray(offsets), origins, side="right") - 1
    return np.bincount(series, minlength=len(offsets))
