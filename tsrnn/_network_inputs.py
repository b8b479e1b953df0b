"""What the forecaster's network reads: the gathered window, re-expressed.

Design
------
The baseline (``_baselines.py``) reads the gathered window (B, length,
n_inputs) of scaled inputs; the network reads what :class:`NetworkInputs`
makes of it. With ``network_inputs="relative"`` (the default) the target
columns of the window's past rows become changes from their value at the
origin; the covariates, and the known-future rows after the origin, are
left as they are.

Why. Scaling (per series or for all) uses the whole training frame, so the
most recent rows of a trending series (the held-out block early stopping
scores, and every forecast after the fit) sit at levels the network trained
on rarely or never. A network that reads levels then corrects the baseline
from inputs outside what it learned, and on such panels early stopping kept
the untrained network (issue 21: us_employment, 147 series). Taken
relative to the origin, the window shows its shape, which the recent
windows share with the training windows: RevIN's per-window normalisation
(Kim et al., 2022) reduced to its location, because the baseline, not the
network, carries the level. Keeping the levels as extra columns beside the
changes undid the gain (benchmarks/README.md, "The network earns its
place").
"""


class NetworkInputs:
    """Maps gathered windows to the network's inputs.

    Parameters
    ----------
    kind : {"relative", "level"}
        "relative": the targets of the window as changes from the origin;
        "level": the gathered window unchanged.
    window, n_targets : int
        The window's past rows, and the target columns (the first ones).
    """

    def __init__(self, kind, window, n_targets):
        self.kind, self.window, self.n_targets = kind, window, n_targets

    @property
    def identity(self):
        """True when the network reads the gathered windows as they are."""
        return self.kind == "level"

    def __call__(self, X):
        """The network's inputs of gathered windows X (B, length, n_inputs), in place."""
        if self.identity:
            return X
        w, n_t = self.window, self.n_targets
        # X[:, :w, :n_t] -= X[:, w - 1, :n_t], the origin row last: it is
        # the value the others are taken from.
        X[:, : w - 1, :n_t] -= X[:, w - 1 : w, :n_t]
        X[:, w - 1, :n_t] = 0
        return X
