"""Array inputs of RNNRegressor and RNNClassifier: 2-D streams and 3-D batches.

``ArrayRNN`` adds to the shared network and loop of ``BaseRNN`` what arrays
need: validation of X and y in scikit-learn's way, the chronological
validation split, and predictions per stream row or per sequence. The
forecaster, whose input is a time-indexed frame, has its own
(``_forecaster.py``).
"""

from abc import abstractmethod

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.utils.validation import (
    check_array,
    check_consistent_length,
    check_is_fitted,
    validate_data,
)

from tsrnn._base import BaseRNN
from tsrnn._data import SequenceData, StreamData, input_ndim


class ArrayRNN(BaseRNN):
    """BaseRNN over a stream (2-D) or a batch of sequences (3-D)."""

    # Keyword arguments for validate_data's handling of y on 2-D input.
    _y_validation = {}

    @abstractmethod
    def _encode_targets(self, y, first_pass, incremental, classes):
        """Validated y -> training targets (first axis = rows or sequences).

        Sets ``n_outputs_`` (width of the head) on the first pass.
        """

    def _prepare_fit(self, X, y, first_pass, incremental, classes):
        dtype = np.dtype(self.dtype) if first_pass else self._flat.dtype
        X, y, sequences = self._validate_fit_data(X, y, first_pass, dtype)
        Y = self._encode_targets(y, first_pass, incremental, classes)
        train, val = self._split(X, Y, sequences)
        return X.shape[-1], train, val

    def _split(self, X, Y, sequences):
        """(training view, validation (X, Y) or None), the validation block last."""
        n = X.shape[0]
        if not self.early_stopping:
            data = SequenceData(X, Y) if sequences else StreamData(X, Y, self.window, n)
            return data, None
        n_val = int(np.ceil(self.validation_fraction * n))
        n_train = n - n_val
        if n_val < 2 or n_train < 1:
            raise ValueError(
                f"The validation set is too small: early_stopping holds out the last "
                f"{n_val} of {n} {'sequences' if sequences else 'rows'}, but needs at "
                "least 2 for validation and 1 for training. Increase "
                "validation_fraction or the size of your dataset."
            )
        if sequences:
            return SequenceData(X[:n_train], Y[:n_train]), (X[n_train:], Y[n_train:])
        # Validation rows keep their full history: their windows may start in
        # the training block, whose inputs are the known past.
        start = max(0, n_train - (self.window - 1))
        return StreamData(X, Y, self.window, n_train), (X[start:], Y[n_train:])

    def _predict_validation(self, X_val):
        if X_val.ndim == 3:
            return self._raw_predict_sequences(X_val)
        # A stream's validation block comes with the history before it.
        return self._raw_predict_stream(X_val)

    # ------------------------------------------------------------------
    # Prediction
    # ------------------------------------------------------------------
    def _raw_predict_stream(self, X):
        """Raw outputs (n_rows, n_outputs) for a stream, one per row."""
        n, w = X.shape[0], self.window
        Z = np.empty((n, self.n_outputs_), dtype=self._flat.dtype)
        n_prefix = min(n, w - 1)
        if n_prefix:
            # Step t of this single sequence sees rows 0..t: the short-history
            # predictions of all the first rows in one pass.
            top, _ = self._forward_stack(X[None, :n_prefix], training=False)
            Z[:n_prefix] = self._head(top[0])
        if n >= w:
            windows = sliding_window_view(X, w, axis=0).transpose(0, 2, 1)
            Z[w - 1 :] = self._raw_predict_sequences(windows)
        return Z

    def _raw_predict(self, X):
        """Validate X (reset=False) and return raw outputs, float64."""
        check_is_fitted(self)
        X, sequences = self._validate_X(X)
        if sequences:
            Z = self._raw_predict_sequences(X)
        else:
            Z = self._raw_predict_stream(X)
        return Z.astype(np.float64, copy=False)

    # ------------------------------------------------------------------
    # Input validation
    # ------------------------------------------------------------------
    def _check_n_features_3d(self, X, reset):
        n_features = X.shape[2]
        if reset:
            self.n_features_in_ = n_features
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        elif n_features != self.n_features_in_:
            raise ValueError(
                f"X has {n_features} features, but {type(self).__name__} is "
                f"expecting {self.n_features_in_} features as input."
            )

    def _check_3d(self, X, reset, dtype):
        X = check_array(X, allow_nd=True, dtype=dtype, input_name="X", estimator=self)
        if X.shape[1] < 1 or X.shape[2] < 1:
            raise ValueError(
                "A 3-D X must have shape (n_sequences, n_timesteps, n_features) "
                f"with at least one time step and one feature; got {X.shape}."
            )
        self._check_n_features_3d(X, reset)
        return X

    def _validate_X(self, X):
        """X for prediction: (array, is_3d). Raises ValueError on bad input."""
        ndim = input_ndim(X)
        dtype = self._flat.dtype
        if ndim == 3:
            return self._check_3d(X, reset=False, dtype=dtype), True
        if ndim is not None and ndim > 3:
            raise ValueError(
                f"X must be 2-D (rows x features) or 3-D (sequences x steps x "
                f"features), got {ndim}-D."
            )
        X = validate_data(self, X, reset=False, dtype=dtype)
        return X, False

    def _validate_fit_data(self, X, y, reset, dtype):
        """Validate X and y for fitting, X converted to dtype: (X, y, is_3d)."""
        ndim = input_ndim(X)
        if ndim is not None and ndim > 3:
            raise ValueError(
                f"X must be 2-D (rows x features) or 3-D (sequences x steps x "
                f"features), got {ndim}-D."
            )
        if ndim != 3:
            X, y = validate_data(self, X, y, reset=reset, dtype=dtype, **self._y_validation)
            return X, y, False
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        X = self._check_3d(X, reset, dtype)
        numeric = self._y_validation.get("y_numeric", False)
        y = check_array(
            y,
            ensure_2d=False,
            dtype="numeric" if numeric else None,
            input_name="y",
            estimator=self,
        )
        check_consistent_length(X, y)
        return X, y, True


    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags
