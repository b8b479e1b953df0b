"""Training views of the two input shapes of RNNRegressor and RNNClassifier.

A view is what the shared training loop (``BaseRNN._run_epochs``) iterates
over: ``n_items`` examples, ``batch(idx)`` gathers the inputs and targets of
some of them, ``n_rows`` is the number of targets an epoch sees, and
``prefix`` is an optional extra sequence with a target at every step. The
forecaster has its own view of forecast windows with the same members
(``tsrnn._windows.ForecastWindows``).

Views never copy the data as a whole: a stream's windows are a strided view
(``sliding_window_view``) and a minibatch is gathered from it when it is
needed, so memory is O(data + batch), never O(rows * window).
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def input_ndim(X):
    """ndim of an array-like without copying arrays and DataFrames."""
    ndim = getattr(X, "ndim", None)
    if ndim is None:
        try:
            ndim = np.asarray(X).ndim  # nested lists, objects with __array__
        except (TypeError, ValueError):  # ragged lists: left to check_array
            ndim = None
    return ndim


class SequenceData:
    """Training view of a 3-D batch: item j is sequence j with target ``Y[j]``."""

    prefix = None

    def __init__(self, X, Y):
        self.X, self.Y = X, Y
        self.n_items = self.n_rows = X.shape[0]

    def batch(self, idx):
        return self.X[idx], self.Y[idx]


class StreamData:
    """Training view of the rows ``[0, stop)`` of a stream.

    Item j is the full window ending at row ``window - 1 + j`` (target: that
    row). ``prefix`` is the single sequence of the first ``min(stop, window - 1)``
    rows with one target per step, or None: the output at step t of a
    recurrent net sees only steps <= t, so one pass over those rows trains
    every short-history row once, as every other row is trained once.
    """

    def __init__(self, X, Y, window, stop):
        self.n_rows = stop
        n_prefix = min(stop, window - 1)
        self.prefix = (X[None, :n_prefix], Y[None, :n_prefix]) if n_prefix else None
        self.n_items = max(0, stop - window + 1)
        if self.n_items:
            # (n_windows, window, n_features), a strided view of X: no copy.
            self.windows = sliding_window_view(X[:stop], window, axis=0).transpose(
                0, 2, 1
            )
            self.Y = Y[window - 1 : stop]

    def batch(self, idx):
        # Fancy indexing copies only this minibatch's windows.
        return self.windows[idx], self.Y[idx]
