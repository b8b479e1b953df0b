"""Exceptions that tell a problem with the user's data from a failure of tsrnn.

Both subclass :class:`ValueError`, so code that catches ``ValueError`` keeps
working; the command line tells them apart (exit status 2 for
:class:`InputError`, 1 for :class:`TrainingError` and anything else).

An estimator pickled by another version of tsrnn loads with an
:class:`InconsistentVersionWarning`, or is refused with an
:class:`InconsistentVersionError` when the running version cannot use its
state (see ``tsrnn/_persistence.py``).
"""
import pickle

from sklearn.exceptions import InconsistentVersionWarning as _SklearnVersionWarning

__all__ = [
    "InconsistentVersionError",
    "InconsistentVersionWarning",
    "InputError",
    "ResampleWarning",
    "TrainingError",
]


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


def _pickled_by(version):
    if version is None:
        return "an earlier tsrnn that did not record its version"
    return f"tsrnn {version}"


class InconsistentVersionWarning(_SklearnVersionWarning):
    """An estimator is unpickled by another version of tsrnn than wrote it.

    Its state has everything the running version reads, but the numbers may
    not mean what they meant: predictions can differ or be wrong. Refit the
    estimator with the running version, or load it with the one that wrote
    it. A subclass of scikit-learn's warning of the same name, so filters
    and handlers written for scikit-learn's estimators catch it too.

    Attributes
    ----------
    estimator_name : str
    original_tsrnn_version : str or None
        The version that pickled the estimator; None for pickles written
        before tsrnn recorded it.
    current_tsrnn_version : str
    original_sklearn_version, current_sklearn_version : str or None
        The same for scikit-learn, as scikit-learn's warning has them.

    Examples
    --------
    >>> import pickle, warnings
    >>> from tsrnn import RNNRegressor
    >>> from tsrnn.exceptions import InconsistentVersionWarning
    >>> blob = pickle.dumps(RNNRegressor(window=24))
    >>> with warnings.catch_warnings():
    ...     # Refuse an estimator written by another version, rather than warn.
    ...     warnings.simplefilter("error", InconsistentVersionWarning)
    ...     model = pickle.loads(blob)    # this version wrote it: no warning
    >>> model.window
    24
    """

    def __init__(self, *, estimator_name, original_tsrnn_version, current_tsrnn_version,
                 original_sklearn_version, current_sklearn_version):
        super().__init__(estimator_name=estimator_name,
                         current_sklearn_version=current_sklearn_version,
                         original_sklearn_version=original_sklearn_version)
        self.original_tsrnn_version = original_tsrnn_version
        self.current_tsrnn_version = current_tsrnn_version

    def __str__(self):
        return (
            f"Unpickling {self.estimator_name} written by "
            f"{_pickled_by(self.original_tsrnn_version)} with tsrnn "
            f"{self.current_tsrnn_version}. Its state has everything this version "
            "reads, but what it means may have changed, so predictions may differ "
            f"or be wrong. Refit it with tsrnn {self.current_tsrnn_version}, or "
            "load it with the version that wrote it."
        )


class InconsistentVersionError(ValueError, pickle.UnpicklingError):
    """An unpickled estimator lacks state that the running tsrnn needs.

    Raised while unpickling (``pickle.load``, ``joblib.load``), instead of
    an ``AttributeError`` later in ``predict``: the estimator was written by
    another version of tsrnn, whose fitted state the running version cannot
    use. The message names both versions and what is missing. Refit the
    estimator with the running version, or load it with the one that wrote
    it. Also a :class:`pickle.UnpicklingError`, so code that handles
    unreadable pickles handles this one.

    Attributes
    ----------
    estimator_name : str
    original_tsrnn_version : str or None
        None for pickles written before tsrnn recorded its version.
    current_tsrnn_version : str
    missing : list of str
        What the state lacks, as paths from the estimator
        (``"_calibration.gains"``).

    Examples
    --------
    >>> import pickle
    >>> from tsrnn import RNNRegressor
    >>> from tsrnn.exceptions import InconsistentVersionError
    >>> blob = pickle.dumps(RNNRegressor(window=24))
    >>> try:
    ...     model = pickle.loads(blob)
    ... except InconsistentVersionError as exc:
    ...     print(f"refit: written by {exc.original_tsrnn_version}, lacks {exc.missing}")
    ... else:
    ...     print(model.window)
    24
    """

    def __init__(self, *, estimator_name, original_tsrnn_version, current_tsrnn_version,
                 missing):
        self.estimator_name = estimator_name
        self.original_tsrnn_version = original_tsrnn_version
        self.current_tsrnn_version = current_tsrnn_version
        self.missing = list(missing)
        written = _pickled_by(original_tsrnn_version)
        if original_tsrnn_version == current_tsrnn_version:
            written = f"another build of tsrnn {original_tsrnn_version}"
        # An older layout can lack many attributes: name a few.
        lacks = ", ".join(self.missing[:5])
        if len(self.missing) > 5:
            lacks += f" and {len(self.missing) - 5} more"
        super().__init__(
            f"This {estimator_name} was pickled by {written} and cannot be used by "
            f"tsrnn {current_tsrnn_version}: its state lacks {lacks}, "
            f"which tsrnn {current_tsrnn_version} reads. Refit it with tsrnn "
            f"{current_tsrnn_version}, or load it with the version that wrote it."
        )

    def __reduce__(self):
        # Keyword-only __init__: rebuild from the attributes (an error raised
        # in a joblib worker is pickled back to the parent).
        return _rebuild_error, (self.estimator_name, self.original_tsrnn_version,
                                self.current_tsrnn_version, self.missing)


def _rebuild_error(estimator_name, original, current, missing):
    return InconsistentVersionError(estimator_name=estimator_name,
                                    original_tsrnn_version=original,
                                    current_tsrnn_version=current, missing=missing)


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
