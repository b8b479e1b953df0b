"""Training across dask workers by parameter averaging (``averaging_frequency``).

Design
------
DL4J trains one network over a Spark cluster with its
``ParameterAveragingTrainingMaster``: every worker starts from the same
parameters and updater state, trains ``averagingFrequency`` minibatches of
its own split of the data, and the master averages the parameters and the
updater state; the round repeats. This module does the same on the user's
dask ``Client``, inside the one training loop of ``_base.py``: the loop
draws an epoch's windows (``_sampling.py``) as always, and hands their
minibatches to :meth:`AveragedEpoch.train_minibatches` instead of training
them one after another in this process.

Shards. The fleet's partitions are dealt, in order and by their number of
windows, to as many shards as the cluster had workers when the fit began
(at most one per partition); shard s is pinned to worker s. An epoch's
windows are gathered per partition on the worker that holds the partition
(``_dask_fit._take``), and each shard's windows are put together on its
worker; only that sample travels between workers, and none of it to the
client. Each shard trains on its own windows, in the epoch's random order.

Rounds. The estimator, without what only the client needs (the kept
context, the per-series scales), is sent to every worker once per fit
(``scatter``). A round sends the flat weight buffer (parameters and Adam's
moments, ``_weights.py``), and every shard trains its next
``averaging_frequency`` minibatches from it with the estimator's own
``_train_step``; the client averages the shards' buffers (one ``np.mean``:
the flat buffer is what makes this one operation) and Adam's step count
moves by the most steps a shard took. A shard that ran out of minibatches
sits the last rounds out. Dropout draws from a generator seeded by (fit,
epoch, round, shard), so the same data, partitioning, ``random_state`` and
number of workers give the same model; the model depends on the number of
workers, as DL4J's does on its number of workers.

Failures. A worker that dies mid-round is dask's: the round's tasks are
retried elsewhere (``allow_other_workers``) from data dask recomputes; an
error it gives up on, or a diverged shard (``_Diverged``), raises out of the
round and the loop's fit leaves the estimator unfitted.
"""

import copy

import numpy as np
from distributed import futures_of

# What only the client uses: the rows kept for predict(), the band's
# trackers, the per-series scales. A fleet's are O(series): not sent.
_CLIENT_ONLY = ("_context", "_trackers", "_context_lengths", "_encoder", "series_ids_",
                "_calibration", "baseline_scores_")


def _trainer(est):
    """A shallow copy of ``est`` with what ``_train_step`` needs (the rest None)."""
    trainer = copy.copy(est)
    for name in _CLIENT_ONLY:
        # None rather than absent: a pickled estimator must have its state.
        if name in trainer.__dict__:
            trainer.__dict__[name] = None
    # The encoder without its per-series scales: the windows' layout
    # (future rows, inputs) is read from it on the workers.
    trainer._encoder = copy.copy(est._encoder)
    trainer._encoder.series_stats = {}
    return trainer


# ----------------------------------------------------------------------
# On the workers
# ----------------------------------------------------------------------
def _shard_windows(trainer, positions, *parts):
    """The shard's windows (a ForecastWindows) from its partitions' fetched rows."""
    from tsrnn._dask_fit import forecast_windows

    A = np.concatenate([a for a, _ in parts])
    Y = np.concatenate([y for _, y in parts])
    length = trainer.window_ + trainer.horizon
    origins = np.arange(len(A) // length) * length + trainer.window_ - 1
    return forecast_windows(trainer, A, origins[positions], Y)


def _train_round(trainer, flat, adam_t, seed, windows, batches):
    """``len(batches)`` minibatches from ``flat``: (flat, summed loss)."""
    from tsrnn._data import Minibatch
    from tsrnn.functional import _single_threaded_blas

    t = copy.copy(trainer)
    t._flat = flat.copy()
    t._adam_t = adam_t
    t._random_state = np.random.RandomState(seed)
    total = 0.0
    with _single_threaded_blas():
        for rows in batches:
            total += t._train_step(Minibatch(*windows.batch(rows)))
    return t._flat, total


# ----------------------------------------------------------------------
# On the client
# ----------------------------------------------------------------------
class ParameterAveraging:
    """An estimator's averaging rounds over the shards of a fleet (one per fit)."""

    def __init__(self, est, origins, client, frequency):
        self.est, self.origins, self.client, self.frequency = est, origins, client, frequency
        fleet = origins.fleet
        workers = sorted(client.scheduler_info()["workers"])
        per_part = np.diff(origins.bounds("train"))
        n_shards = max(1, min(len(workers), int(np.count_nonzero(per_part))))
        # Partitions dealt in order, cutting at equal shares of the windows.
        cuts = np.searchsorted(np.cumsum(per_part), np.arange(1, n_shards) *
                               per_part.sum() / n_shards, side="left") + 1
        self.shard_of_part = np.searchsorted(cuts, np.arange(len(fleet.states)), side="right")
        self.workers = [workers[s] for s in range(n_shards)]
        self.n_shards = n_shards
        # The partitions' arrays and origins, kept on the workers by
        # dask.persist: their futures, for tasks that read them where they are.
        self.states = [futures_of(x)[0] for x in fleet.states]
        self.kept = [futures_of(x)[0] for x in origins.kept]
        self.trainer = client.scatter(_trainer(est), broadcast=True)
        self.seed = int(est._random_state.randint(np.iinfo(np.int32).max))

    def epoch(self, order):
        return AveragedEpoch(self, order)


class AveragedEpoch:
    """One epoch's windows, sharded on the workers; trains by averaging rounds."""

    def __init__(self, rounds, order):
        # The epoch's order reaches train_minibatches from the loop itself.
        self.rounds = rounds

    def train_minibatches(self, est, order, batch_size, per_step=False):
        r, client = self.rounds, self.rounds.client
        origins = r.origins
        bounds = origins.bounds("train")
        part = np.searchsorted(bounds, order, side="right") - 1
        shard = r.shard_of_part[part]
        # This epoch's rows, gathered per partition where the partition is.
        fetched = {}
        for p in np.unique(part):
            local = np.sort(order[part == p]) - bounds[p]
            fetched[p] = client.submit(
                _take_future, r.states[p], r.kept[p], local,
                origins.window, origins.horizon, pure=False,
            )
        windows, batches = [], []
        for s in range(r.n_shards):
            mine = order[shard == s]
            parts = [p for p in sorted(fetched) if r.shard_of_part[p] == s]
            if not len(mine):
                windows.append(None)
                batches.append([])
                continue
            positions = np.searchsorted(np.sort(mine), mine)
            windows.append(client.submit(
                _shard_windows, r.trainer, positions, *[fetched[p] for p in parts],
                workers=[r.workers[s]], allow_other_workers=True, pure=False,
            ))
            idx = np.arange(len(mine))
            batches.append([idx[i : i + batch_size] for i in range(0, len(idx), batch_size)])
        del fetched
        k = r.frequency
        n_rounds = -(-max(len(b) for b in batches) // k)
        total = 0.0
        for j in range(n_rounds):
            flat = est._flat
            seed_base = [r.seed, est.n_iter_, j]
            futures, steps = [], []
            for s in range(r.n_shards):
                mine = batches[s][j * k : (j + 1) * k]
                if not mine:
                    continue
                futures.append(client.submit(
                    _train_round, r.trainer, flat, est._adam_t, seed_base + [s],
                    windows[s], mine, workers=[r.workers[s]], allow_other_workers=True,
                    pure=False,
                ))
                steps.append(len(mine))
            results = client.gather(futures)
            # The average of the shards' parameters and Adam moments.
            est._flat[...] = np.mean(np.stack([f for f, _ in results]), axis=0)
            est._adam_t += max(steps)
            total += sum(t for _, t in results)
        return total


def _take_future(state, origins, items, window, horizon):
    from tsrnn._dask_fit import _take

    return _take(state, origins, "train", items, window, horizon)
