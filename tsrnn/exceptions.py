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

    Examples
    --------
    >>> import pandas as pd
    >>> from tsrnn import RNNForecaster
    >>> from tsrnn.exceptions import InputError
    >>> df = pd.DataFrame({"temp": [1.0, 2.0, 3.0]},
    ...                   index=pd.date_range("2024-01-01", periods=3, freq="h"))
    >>> try:
    ...     RNNForecaster(target="pressure").fit(df)
    ... except InputError as exc:
    ...     print(type(exc).__name__, isinstance(exc, ValueError))
    InputError True
    """


class TrainingError(ValueError):
    """Training failed on data that passed every check (the loss diverged).

    No model is kept: the estimator is left unfitted.

    Examples
    --------
    >>> from tsrnn.exceptions import InputError, TrainingError
    >>> issubclass(TrainingError, ValueError), issubclass(TrainingError, InputError)
    (True, False)
    """
