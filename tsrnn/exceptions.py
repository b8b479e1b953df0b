"""Exceptions that tell a problem with the user's data from a failure of tsrnn.

Both subclass :class:`ValueError`, so code that catches ``ValueError`` keeps
working; the command line tells them apart (exit status 2 for
:class:`InputError`, 1 for :class:`TrainingError` and anything else).
"""

__all__ = ["InputError", "ResampleWarning", "TrainingError"]


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


class ResampleWarning(UserWarning):
    """``freq=`` moved, averaged or missed readings to put them on its grid.

    Each reading snaps to the nearest point of the grid. The message and the
    attributes say, for one series, how many readings moved (``moved``), how
    many grid points averaged two or more readings (``averaged``), and how
    many of the ``points`` got none (``empty``: missing values, handled by
    ``missing``). Data already on the grid raise no warning.

    Examples
    --------
    >>> import warnings
    >>> import pandas as pd
    >>> from tsrnn import RNNForecaster
    >>> from tsrnn.exceptions import ResampleWarning
    >>> stamps = pd.date_range("2024-01-01", periods=200, freq="h")
    >>> jitter = pd.to_timedelta([(-1) ** i * 20 for i in range(200)], unit="s")
    >>> df = pd.DataFrame({"temp": range(200)}, index=stamps + jitter, dtype=float)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     _ = RNNForecaster(target="temp", freq="h", window=8, horizon=4,
    ...                       max_iter=1).validate_frame(df)
    >>> [(w.message.moved, w.message.averaged, w.message.empty)
    ...  for w in caught if w.category is ResampleWarning]
    [(200, 0, 0)]
    """

    def __init__(self, message, moved=0, averaged=0, empty=0, points=0, series=None):
        super().__init__(message)
        self.moved, self.averaged, self.empty = moved, averaged, empty
        self.points, self.series = points, series
