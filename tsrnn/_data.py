"""Training views of the two input shapes of RNNRegressor and RNNClassifier.

A view is what the shared training loop (``BaseRNN._run_epochs``) iterates
over:

* ``n_items``: examples per epoch (windows or sequences);
* ``batch(idx)``: a ``Minibatch`` of some of them, or any tuple that fills
  its first fields: ``(X, Y)``, ``(X, Y, sample_weight)`` or
  ``(X, Y, sample_weight, lengths)``. ``sample_weight`` weighs each target
  (the loss is the weighted mean, as MLPRegressor's), shaped as the targets'
  leading axes: ``(B,)``, or ``(B, T)`` for a view with ``per_step``;
  ``lengths`` (B,) gives each sequence's valid steps (torch's
  ``pack_padded_sequence``);
* ``n_rows``: the number of targets an epoch sees (the loss curve's
  denominator, and what ``t_`` counts);
* ``prefix``: None, or one more tuple like ``batch``'s, whose targets are at
  every step (a stream's first rows);
* ``per_step`` (optional, default False): ``batch``'s targets are at every
  step, ``Y`` of shape (B, T, ...), rather than at each sequence's last step;
* ``n_rows_of(idx)``: the targets an epoch sees when it trains on the items
  ``idx`` only (and the prefix), for the training budget
  (``max_windows_per_epoch``, ``_sampling.py``);
* ``groups`` (optional, default one group of all items): items per series,
  the items of a series consecutive; the budget is shared among them.
* ``epoch(order)`` (optional): called before an epoch's first batch with
  the items it will train on (in order); returns the view that gives their
  batches. A view whose windows are not in this process (a fleet's on dask
  workers, ``_dask_fit.py``) fetches them here, once per epoch. The view
  it returns may train the epoch itself: ``train_minibatches(estimator,
  order, batch_size, per_step)`` (parameter averaging, ``_averaging.py``)
  returns the summed loss, as the loop's own minibatches would.

The forecaster has its own view of forecast windows with the same members
(``tsrnn._windows.ForecastWindows``).

Views never copy the data as a whole: a stream's windows are a strided view
(``sliding_window_view``) and a minibatch is gathered from it when it is
needed, so memory is O(data + batch), never O(rows * window).
"""

from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.utils.validation import _check_sample_weight


def check_training_weights(sample_weight, X, dtype):
    """``_check_sample_weight`` for training: finite, non-negative, not all zero.

    scikit-learn refuses weights that are all zero only from 1.9 on; with an
    older one such weights reached the loss as a division by zero.
    """
    sample_weight = _check_sample_weight(sample_weight, X, dtype=dtype,
                                         ensure_non_negative=True)
    if not np.any(sample_weight):
        raise ValueError("Sample weights must contain at least one non-zero number.")
    return sample_weight


def input_ndim(X):
    """ndim of an array-like without copying arrays and DataFrames."""
    ndim = getattr(X, "ndim", None)
    if ndim is None:
        try:
            ndim = np.asarray(X).ndim  # nested lists, objects with __array__
        except (TypeError, ValueError):  # ragged lists: left to check_array
            ndim = None
    return ndim


class Minibatch(NamedTuple):
    """What ``batch(idx)`` of a view gives the training loop (see above)."""

    X: np.ndarray
    Y: np.ndarray
    sample_weight: np.ndarray = None
    lengths: np.ndarray = None


class SequenceData:
    """Training view of a 3-D batch: item j is sequence j.

    Its target is ``Y[j]``: one value (or row of outputs) for the sequence,
    or with ``per_step`` one per step, ``Y`` of shape (n, T, ...), of which
    only the first ``lengths[j]`` count. ``lengths`` (None: every step is
    valid) marks sequences padded after their end; ``W`` is one weight per
    sequence, given to each of its targets.
    """

    prefix = None

    def __init__(self, X, Y, W=None, lengths=None, per_step=False):
        self.X, self.Y, self.W, self.lengths = X, Y, W, lengths
        self.per_step = per_step
        self.n_items = X.shape[0]
        if not per_step:
            self.n_rows = self.n_items
        elif lengths is None:
            self.n_rows = self.n_items * X.shape[1]
        else:
            self.n_rows = int(lengths.sum())

    def n_rows_of(self, idx):
        if not self.per_step:
            return len(idx)
        if self.lengths is None:
            return len(idx) * self.X.shape[1]
        return int(self.lengths[idx].sum())

    def batch(self, idx):
        X, Y = self.X[idx], self.Y[idx]
        W = None if self.W is None else self.W[idx]
        lengths = None if self.lengths is None else self.lengths[idx]
        if lengths is not None:
            # Steps past the longest sequence of the minibatch are padding
            # for all of it: leave them out.
            T = int(lengths.max())
            X = X[:, :T]
            if self.per_step:
                Y = Y[:, :T]
        if self.per_step and W is not None:
            W = np.broadcast_to(W[:, None], Y.shape[:2])
        return Minibatch(X, Y, W, lengths)


class StreamData:
    """Training view of the rows ``[0, stop)`` of a stream.

    Item j is the full window ending at row ``window - 1 + j`` (target: that
    row). ``prefix`` is the single sequence of the first ``min(stop, window - 1)``
    rows with one target per step, or None: the output at step t of a
    recurrent net sees only steps <= t, so one pass over those rows trains
    every short-history row once, as every other row is trained once. ``W``
    is one weight per row, given to the target of that row.
    """

    def __init__(self, X, Y, window, stop, W=None):
        self.n_rows = stop
        self.W = W
        n_prefix = min(stop, window - 1)
        self.prefix = None
        if n_prefix:
            self.prefix = Minibatch(
                X[None, :n_prefix], Y[None, :n_prefix],
                None if W is None else W[None, :n_prefix],
            )
        self.n_items = max(0, stop - window + 1)
        self.window = window
        if self.n_items:
            # (n_windows, window, n_features), a strided view of X: no copy.
            self.windows = sliding_window_view(X[:stop], window, axis=0).transpose(
                0, 2, 1
            )
            self.Y = Y[window - 1 : stop]

    def n_rows_of(self, idx):
        # The prefix's rows, trained every epoch, and one target per window.
        return self.n_rows - self.n_items + len(idx)

    def batch(self, idx):
        # Fancy indexing copies only this minibatch's windows.
        W = None if self.W is None else self.W[self.window - 1 + idx]
        return Minibatch(self.windows[idx], self.Y[idx], W)
