"""Array inputs of RNNRegressor and RNNClassifier: 2-D streams and 3-D batches.

``ArrayRNN`` adds to the shared network and loop of ``BaseRNN`` what arrays
need: validation of X, y and sample_weight in scikit-learn's way, the
chronological validation split, and predictions per stream row, per sequence
or per step. The forecaster, whose input is a time-indexed frame, has its own
(``_forecaster.py``).

Sequences (issue 14). A 3-D batch may hold sequences of different lengths:
one that ends early is padded with NaN in every feature after its last step
(``sequence_lengths`` finds the lengths; the kernels never read the padding).
A NaN anywhere else is missing data and is refused, naming the sequence and
the step. A target at every step is y of shape ``(n_sequences, n_timesteps)``
for the classifier and ``(n_sequences, n_timesteps, n_outputs)`` for the
regressor, whose 2-D y already means n_outputs values per sequence
(``_targets_per_step``): the model is then a sequence labeller, fitted with a
loss at every valid step, and predicts ``(n_sequences, n_timesteps)`` (a
last axis of outputs for several). y's entries past a sequence's length are
ignored. The mode is fixed by the first fit (``_per_step``). ``bidirectional`` needs sequences (a stream's row must not
see the rows after it). Predictions on sequences can start from a given
state and return the final one (``initial_state`` / ``return_state``), the
form sklearn itself uses for extra outputs (``return_std``): that is how a
per-step model generates a sequence one step at a time.
"""

from abc import abstractmethod
from numbers import Integral

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import (
    _check_sample_weight,
    check_array,
    check_consistent_length,
    check_is_fitted,
    validate_data,
)

from tsrnn._base import BaseRNN
from tsrnn._data import SequenceData, StreamData, check_training_weights, input_ndim


def sequence_lengths(X):
    """Valid steps of each sequence of a NaN-padded 3-D X; None when none ends early.

    A step is padding when every feature is NaN; a sequence's length runs to
    its last step that is not. Raises ValueError for a sequence with no valid
    step and for a NaN before a sequence's last valid step.
    """
    missing = np.isnan(X)
    if not missing.any():
        return None
    empty = missing.all(axis=2)
    T = X.shape[1]
    blank = np.flatnonzero(empty.all(axis=1))
    if blank.size:
        raise ValueError(
            f"X[{blank[0]}] has no valid step: all its values are NaN. Every sequence "
            "needs at least one step."
        )
    # One past the last step that is not padding.
    lengths = T - np.argmin(empty[:, ::-1], axis=1)
    inside = missing.any(axis=2) & (np.arange(T) < lengths[:, None])
    if inside.any():
        i, t = np.argwhere(inside)[0]
        raise ValueError(
            f"X[{i}] has NaN at step {t}, before its last valid step {lengths[i] - 1}. "
            "NaN may only pad a sequence that ends early: every feature of every step "
            "after its last one. Fill or drop missing values inside a sequence."
        )
    return lengths if (lengths < T).any() else None


def _valid_steps(lengths, n, T):
    """(n, T) mask of the steps inside each sequence."""
    if lengths is None:
        return np.ones((n, T), dtype=bool)
    return np.arange(T) < lengths[:, None]


class ArrayRNN(BaseRNN):
    """BaseRNN over a stream (2-D) or a batch of sequences (3-D)."""

    _parameter_constraints: dict = {
        **BaseRNN._parameter_constraints,
        "bidirectional": ["boolean"],
        "tbptt_length": [Interval(Integral, 1, None, closed="left"), None],
    }

    # Keyword arguments for validate_data's handling of y on 2-D input.
    _y_validation = {}

    @abstractmethod
    def _encode_targets(self, y, first_pass, incremental, classes):
        """Validated y -> training targets (first axis = rows or sequences).

        Sets ``n_outputs_`` (width of the head) on the first pass.
        """

    def _n_directions(self):
        return 2 if self.bidirectional else 1

    def _tbptt_length(self):
        return self.tbptt_length

    def _prepare_fit(self, X, y, first_pass, incremental, classes, sample_weight=None):
        dtype = np.dtype(self.dtype) if first_pass else self._flat.dtype
        X, y, lengths, sequences = self._validate_fit_data(X, y, first_pass, dtype)
        if self.bidirectional and not sequences:
            raise ValueError(
                "bidirectional=True needs a batch of sequences (3-D X): on a stream, "
                "the prediction for a row may not depend on the rows after it."
            )
        if self.bidirectional and self.tbptt_length is not None:
            raise ValueError(
                "tbptt_length cannot be used with bidirectional=True: the reverse "
                "direction reads each sequence from its end."
            )
        if sample_weight is not None:
            sample_weight = check_training_weights(sample_weight, X, dtype=X.dtype)
        per_step = sequences and self._targets_per_step(X, y)
        if not first_pass and per_step != self._per_step:
            fitted = "every step" if self._per_step else "each sequence"
            raise ValueError(
                f"This model was fitted with a target for {fitted}; y must keep that "
                "shape in warm_start and partial_fit."
            )
        if per_step:
            valid = _valid_steps(lengths, *X.shape[:2])
            y_valid = self._check_step_targets(y, valid)
            if y_valid.ndim == 2 and y_valid.shape[1] == 1:
                y_valid = y_valid[:, 0]  # one output per step: not a column vector
            Y_valid = self._encode_targets(y_valid, first_pass, incremental, classes)
            # Padded steps get a placeholder target that no loss reads.
            Y = np.zeros(valid.shape + Y_valid.shape[1:], Y_valid.dtype)
            Y[valid] = Y_valid
        else:
            Y = self._encode_targets(y, first_pass, incremental, classes)
        if first_pass:
            self._per_step = per_step
        train, val = self._split(X, Y, sequences, lengths, per_step, sample_weight)
        return X.shape[-1], train, val

    @abstractmethod
    def _targets_per_step(self, X, y):
        """Whether y (validated, any ndim) of 3-D X has a target at every step."""

    def _check_step_targets(self, y, valid):
        """The targets of the valid steps, flattened (n_valid, ...)."""
        y_valid = y[valid]
        if self._y_validation.get("y_numeric", False):
            finite = np.isfinite(y_valid.astype(np.float64)).reshape(len(y_valid), -1).all(1)
            if not finite.all():
                i, t = np.argwhere(valid)[np.argmin(finite)]
                raise ValueError(
                    f"y[{i}, {t}] is NaN or infinite, but step {t} lies inside sequence "
                    f"{i}. Only steps past a sequence's end may hold NaN."
                )
        return y_valid

    def _split(self, X, Y, sequences, lengths, per_step, W):
        """(training view, validation (X, Y, W) or None), the validation block last."""
        n = X.shape[0]
        if not self.early_stopping:
            if sequences:
                return SequenceData(X, Y, W, lengths, per_step), None
            return StreamData(X, Y, self.window, n, W), None
        n_val = int(np.ceil(self.validation_fraction * n))
        n_train = n - n_val
        if n_val < 2 or n_train < 1:
            raise ValueError(
                f"The validation set is too small: early_stopping holds out the last "
                f"{n_val} of {n} {'sequences' if sequences else 'rows'}, but needs at "
                "least 2 for validation and 1 for training. Increase "
                "validation_fraction or the size of your dataset."
            )
        W_train, W_val = (None, None) if W is None else (W[:n_train], W[n_train:])
        if sequences:
            l_train, l_val = (None, None) if lengths is None else (lengths[:n_train],
                                                                   lengths[n_train:])
            Y_val = Y[n_train:]
            if per_step:
                # Scored step by step: the valid steps' targets, flattened.
                valid = _valid_steps(l_val, n_val, X.shape[1])
                Y_val = Y_val[valid]
                W_val = None if W_val is None else np.broadcast_to(
                    W_val[:, None], valid.shape)[valid]
            train = SequenceData(X[:n_train], Y[:n_train], W_train, l_train, per_step)
            return train, ((X[n_train:], l_val), Y_val, W_val)
        # Validation rows keep their full history: their windows may start in
        # the training block, whose inputs are the known past.
        start = max(0, n_train - (self.window - 1))
        return StreamData(X, Y, self.window, n_train, W), (X[start:], Y[n_train:], W_val)

    def _predict_validation(self, X_val):
        if isinstance(X_val, tuple):
            X, lengths = X_val
            Z = self._raw_predict_sequences(X, lengths, per_step=self._per_step)
            return Z[_valid_steps(lengths, *X.shape[:2])] if self._per_step else Z
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

    def _raw_predict(self, X, initial_state=None, return_state=False):
        """Validate X (reset=False); return (raw outputs as float64, final state).

        Outputs are (n_rows, n_outputs) for a stream, (n_sequences, n_outputs)
        per sequence, (n_sequences, n_timesteps, n_outputs) per step (NaN past
        a sequence's length). The state is None unless ``return_state``.
        """
        check_is_fitted(self)
        X, lengths, sequences = self._validate_X(X)
        carry = initial_state is not None or return_state
        if not sequences:
            if self._directions == 2:
                raise ValueError(
                    "This model is bidirectional: it predicts batches of sequences "
                    "(3-D X), not streams."
                )
            if carry:
                raise ValueError(
                    "initial_state and return_state need a batch of sequences (3-D X): "
                    "a stream's rows are predicted from windows that start afresh."
                )
            return self._raw_predict_stream(X).astype(np.float64, copy=False), None
        if carry and self._directions == 2:
            raise ValueError(
                "initial_state and return_state need a unidirectional model: the "
                "reverse direction of a bidirectional one starts at each sequence's end."
            )
        state = self._check_state(initial_state, X.shape[0])
        Z, final = self._raw_predict_sequences(
            X, lengths, per_step=self._per_step, state=state, return_state=True)
        if return_state:
            final = [tuple(p[0] for p in st) if isinstance(st, tuple) else st[0]
                     for st in final]
        return Z.astype(np.float64, copy=False), (final if return_state else None)

    def _check_state(self, state, n):
        """initial_state as documented (per layer) -> rnn_forward's layout."""
        if state is None:
            return None
        sizes = self._hidden_sizes_fitted()
        lstm = self._cell != "gru"
        if not isinstance(state, (list, tuple)) or len(state) != len(sizes):
            raise ValueError(
                f"initial_state must be a list with one entry per recurrent layer "
                f"({len(sizes)}), as predictions with return_state=True return it."
            )
        out = []
        for k, (layer, units) in enumerate(zip(state, sizes)):
            if lstm and not (isinstance(layer, (list, tuple)) and len(layer) == 2):
                raise ValueError(f"initial_state[{k}] must be a tuple (h, c) for "
                                 f"cell={self._cell!r}.")
            parts = []
            for part in layer if lstm else (layer,):
                a = np.asarray(part, dtype=self._flat.dtype)
                if a.shape != (n, units):
                    raise ValueError(
                        f"initial_state[{k}] has shape {a.shape}, expected "
                        f"(n_sequences, units) = {(n, units)}."
                    )
                parts.append(a[None])
            out.append(tuple(parts) if lstm else parts[0])
        return out

    def _step_pairs(self, X, y, y_pred, sample_weight):
        """Per-step targets, predictions and weights of the valid steps, flattened.

        For ``score`` of a sequence labeller; None for any other input.
        """
        if not self._per_step or input_ndim(X) != 3:
            return None
        _, lengths, _ = self._validate_X(X)
        y = np.asarray(y)
        valid = _valid_steps(lengths, *y_pred.shape[:2])
        if y.shape[:2] != valid.shape:
            raise ValueError(f"y has shape {y.shape}, but X holds {valid.shape[0]} "
                             f"sequences of {valid.shape[1]} steps.")
        w = None
        if sample_weight is not None:
            w = np.broadcast_to(_check_sample_weight(sample_weight, y)[:, None],
                                valid.shape)[valid]
        return y[valid], y_pred[valid], w

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
        """(X, lengths): NaN may pad a sequence that ends early."""
        X = check_array(X, allow_nd=True, dtype=dtype, ensure_all_finite="allow-nan",
                        input_name="X", estimator=self)
        if X.shape[1] < 1 or X.shape[2] < 1:
            raise ValueError(
                "A 3-D X must have shape (n_sequences, n_timesteps, n_features) "
                f"with at least one time step and one feature; got {X.shape}."
            )
        self._check_n_features_3d(X, reset)
        return X, sequence_lengths(X)

    def _validate_X(self, X):
        """X for prediction: (array, lengths, is_3d). Raises ValueError on bad input."""
        ndim = input_ndim(X)
        dtype = self._flat.dtype
        if ndim == 3:
            return *self._check_3d(X, reset=False, dtype=dtype), True
        if ndim is not None and ndim > 3:
            raise ValueError(
                f"X must be 2-D (rows x features) or 3-D (sequences x steps x "
                f"features), got {ndim}-D."
            )
        X = validate_data(self, X, reset=False, dtype=dtype)
        return X, None, False

    def _validate_fit_data(self, X, y, reset, dtype):
        """Validate X and y for fitting, X converted to dtype: (X, y, lengths, is_3d)."""
        ndim = input_ndim(X)
        if ndim is not None and ndim > 3:
            raise ValueError(
                f"X must be 2-D (rows x features) or 3-D (sequences x steps x "
                f"features), got {ndim}-D."
            )
        if ndim != 3:
            X, y = validate_data(self, X, y, reset=reset, dtype=dtype, **self._y_validation)
            return X, y, None, False
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        X, lengths = self._check_3d(X, reset, dtype)
        numeric = self._y_validation.get("y_numeric", False)
        # NaN is allowed until it is known whether y has a target per step,
        # whose padded steps may hold anything.
        y = check_array(y, ensure_2d=False, allow_nd=True, ensure_all_finite=False,
                        dtype="numeric" if numeric else None, input_name="y",
                        estimator=self)
        check_consistent_length(X, y)
        if not self._targets_per_step(X, y):
            y = check_array(y, ensure_2d=False, dtype="numeric" if numeric else None,
                            input_name="y", estimator=self)
        return X, y, lengths, True

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags
