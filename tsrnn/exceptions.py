"""Exceptions that tell a problem with the user's data from a failure of tsrnn.

Both subclass :class:`ValueError`, so code that catches ``ValueError`` keeps
working; the command line tells them apart (exit status 2 for
:class:`InputError`, 1 for :class:`TrainingError` and anything else).
"""

__all__ = ["InputError", "TrainingError"]


class InputError(ValueError):
    """The data given to an estimator cannot be used as it is.

    The message names the column, row, timestamp or shape at fault and says
    how to fix it: a missing column, a gap, timestamps out of order, too few
    rows for the window and horizon, values beyond the model's range.
    """


class TrainingError(ValueError):
    """Training failed on data that passed every check (the loss diverged).

    No model is kept: the estimator is left unfitted.
    """
