"""Shared machinery of the tsrnn estimators: data views, training loop, weights.

Design
------
Model. A stack of recurrent layers followed by a dense output layer (the
"head") on the top layer's hidden state. Each recurrent layer is one
``tsrnn.functional`` call with ``num_layers=1``, so layers may have different
widths (``hidden_layer_sizes`` as in MLPRegressor). Dropout is inverted dropout
on the output sequence of every recurrent layer, including the top one that
feeds the head, with masks drawn from the estimator's RandomState. (torch's
``nn.LSTM(dropout=p)`` skips the top layer, which would make ``dropout`` a
no-op for the default single layer.)

Data. Two input shapes reach the same model:

* a stream (2-D, rows are time steps): the prediction for row i comes from the
  window of rows ``max(0, i - window + 1) .. i``. Windows are strided views of
  the stream (``sliding_window_view``); a minibatch is gathered from the view
  when it is needed, so memory is O(data + batch), never O(rows * window).
  The first ``window - 1`` rows have less history. Because the output at step t
  of a recurrent net sees only steps <= t, one pass over those rows (a batch of
  one "prefix" sequence) yields all their predictions at once. Training treats
  them the same way: every epoch contains the prefix sequence once, with a loss
  at every step, besides the minibatches of full windows. So every row
  contributes exactly one loss term, as it contributes one prediction, and a
  stream of a single row is already enough to fit.
* a batch of sequences (3-D, ``(n_sequences, n_timesteps, n_features)``): one
  output per sequence, from its last step. ``window`` plays no role.

Weights. One flat buffer ``_flat`` of shape (4, n_params) holds the parameters
(row 0), their gradients (row 1) and Adam's two moment estimates (rows 2, 3), so
the optimizer step, gradient clipping and best-weight snapshots are whole-row
operations. ``_layout`` lists (name, offset, shape) for every array under
PyTorch's names: ``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``,
``bias_hh_l{k}`` (+ ``weight_c{i,f,o}_l{k}`` for peephole cells) and
``head.weight`` (n_outputs, H), ``head.bias`` (n_outputs,) as in ``nn.Linear``.
All weights precede all biases, so the L2 penalty (weights only, as in MLP)
applies to the single slice ``[:_n_decay]``. Per-array views are built on
demand by properties and never stored: a pickled view would become a copy cut
off from the buffer.

Loss scaling follows MLP: the loss of a minibatch is the mean over its target
rows plus ``0.5 * alpha * ||W||^2 / n_rows``; ``loss_curve_`` holds the
row-weighted mean over each epoch.
"""

import math
import time
import warnings
from abc import ABCMeta, abstractmethod
from numbers import Integral, Real

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state, gen_batches
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.validation import (
    check_array,
    check_consistent_length,
    check_is_fitted,
    validate_data,
)

from tsrnn.functional import _single_threaded_blas, init_params, rnn_backward, rnn_forward

# Inference runs blocks of windows whose gathered inputs and activations take
# about this many bytes. A constant, not a function of the thread count, so
# results do not depend on the machine's parallelism.
_PREDICT_BLOCK_BYTES = 2**22


def _input_ndim(X):
    """ndim of an array-like without copying arrays and DataFrames."""
    ndim = getattr(X, "ndim", None)
    if ndim is None:
        try:
            ndim = np.asarray(X).ndim  # nested lists, objects with __array__
        except (TypeError, ValueError):  # ragged lists: left to check_array
            ndim = None
    return ndim


class _SequenceData:
    """Training view of a 3-D batch: item j is sequence j with target ``Y[j]``."""

    prefix = None

    def __init__(self, X, Y):
        self.X, self.Y = X, Y
        self.n_items = self.n_rows = X.shape[0]

    def batch(self, idx):
        return self.X[idx], self.Y[idx]


class _StreamData:
    """Training view of the rows ``[0, stop)`` of a stream.

    Item j is the full window ending at row ``window - 1 + j`` (target: that
    row). ``prefix`` is the single sequence of the first ``min(stop, window - 1)``
    rows with one target per step, or None.
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


class _Diverged(Exception):
    pass


class BaseRNN(BaseEstimator, metaclass=ABCMeta):
    """Recurrent network + dense head trained with Adam (base of the estimators).

    Warning: use the subclasses RNNRegressor and RNNClassifier.
    """

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "cell": [StrOptions({"lstm", "gru", "peephole"})],
        "window": [Interval(Integral, 1, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [
            Interval(Integral, 1, None, closed="left"),
            Options(Real, {np.inf}),
        ],
        "max_grad_norm": [Interval(Real, 0, None, closed="neither"), None],
        "forget_bias": [Interval(Real, None, None, closed="neither")],
        "dtype": [
            Options(type, {np.float32, np.float64}),
            StrOptions({"float32", "float64"}),
        ],
    }

    @abstractmethod
    def __init__(
        self,
        hidden_layer_sizes,
        *,
        cell,
        window,
        dropout,
        alpha,
        batch_size,
        learning_rate_init,
        max_iter,
        shuffle,
        random_state,
        tol,
        verbose,
        warm_start,
        early_stopping,
        validation_fraction,
        beta_1,
        beta_2,
        epsilon,
        n_iter_no_change,
        max_grad_norm,
        forget_bias,
        dtype,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.cell = cell
        self.window = window
        self.dropout = dropout
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_grad_norm = max_grad_norm
        self.forget_bias = forget_bias
        self.dtype = dtype

    # ------------------------------------------------------------------
    # Hooks of the subclasses (regression vs. classification)
    # ------------------------------------------------------------------
    # Keyword arguments for validate_data's handling of y on 2-D input.
    _y_validation = {}

    @abstractmethod
    def _encode_targets(self, y, first_pass, incremental, classes):
        """Validated y -> training targets (first axis = rows or sequences).

        Sets ``n_outputs_`` (width of the head) on the first pass.
        """

    @abstractmethod
    def _loss(self, Z, Y):
        """Summed loss over the rows of ``Z`` (n, n_outputs) and its gradient."""

    @abstractmethod
    def _validation_score(self, Z, Y):
        """Score of raw outputs ``Z`` against encoded targets (higher is better)."""

    # ------------------------------------------------------------------
    # Weights: one flat buffer, views by name
    # ------------------------------------------------------------------
    def _build_layout(self, n_features, n_outputs):
        """(layout, n_decay) for the current parameters and data shape."""
        hidden = self._hidden_sizes()
        gates = 3 if self.cell == "gru" else 4
        weights, biases = [], []
        width = n_features
        for k, h in enumerate(hidden):
            weights += [(f"weight_ih_l{k}", (gates * h, width))]
            weights += [(f"weight_hh_l{k}", (gates * h, h))]
            if self.cell == "peephole":
                weights += [(f"weight_c{g}_l{k}", (h,)) for g in "ifo"]
            biases += [(f"bias_ih_l{k}", (gates * h,)), (f"bias_hh_l{k}", (gates * h,))]
            width = h
        weights.append(("head.weight", (n_outputs, width)))
        biases.append(("head.bias", (n_outputs,)))
        layout, offset = [], 0
        for name, shape in weights + biases:
            layout.append((name, offset, shape))
            offset += math.prod(shape)
        n_decay = sum(math.prod(shape) for _, shape in weights)
        return tuple(layout), n_decay

    def _views(self, row=0):
        """{name: view} of one row of the buffer (0 params, 1 gradients)."""
        flat = self._flat[row]
        return {
            name: flat[start : start + math.prod(shape)].reshape(shape)
            for name, start, shape in self._layout
        }

    def _layer_views(self, k, row=0):
        """Views of recurrent layer k under the ``_l0`` names functional expects."""
        suffix = f"_l{k}"
        return {
            name[: -len(suffix)] + "_l0": view
            for name, view in self._views(row).items()
            if name.endswith(suffix)
        }

    def _initialize(self, n_features):
        """Allocate the buffer and draw initial weights from ``_random_state``."""
        dtype = np.dtype(self.dtype)
        self._layout, self._n_decay = self._build_layout(n_features, self.n_outputs_)
        self._cell = self.cell
        n_params = sum(math.prod(shape) for _, _, shape in self._layout)
        self._flat = np.zeros((4, n_params), dtype=dtype)
        self._adam_t = 0
        forget_bias = None if self.cell == "gru" else self.forget_bias
        width = n_features
        for k, h in enumerate(self._hidden_sizes()):
            seed = self._random_state.randint(np.iinfo(np.int32).max)
            layer = init_params(
                self.cell, width, h, 1, dtype=dtype, random_state=seed,
                forget_bias=forget_bias,
            )
            for name, view in self._layer_views(k).items():
                view[...] = layer[name]
            width = h
        # nn.Linear's default initialisation.
        bound = 1.0 / np.sqrt(width)
        head = self._views()
        head["head.weight"][...] = self._random_state.uniform(
            -bound, bound, head["head.weight"].shape
        )
        head["head.bias"][...] = self._random_state.uniform(
            -bound, bound, head["head.bias"].shape
        )
        self.n_iter_ = 0
        self.t_ = 0
        self.loss_curve_ = []
        self.validation_scores_ = None
        self.best_validation_score_ = None
        self.best_loss_ = np.inf
        self._no_improvement_count = 0

    @property
    def rnn_params_(self):
        """Recurrent weights as ``{torch name: array}``, views into the model.

        Keys follow ``torch.nn.LSTM`` / ``torch.nn.GRU`` (``weight_ih_l0``,
        ``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``, ... and
        ``weight_ci_l0`` etc. for peephole cells), which is also the layout of
        ``tsrnn.functional``. Writing into these arrays changes the model; use
        :meth:`state_dict` for copies.
        """
        check_is_fitted(self)
        return {k: v for k, v in self._views().items() if not k.startswith("head.")}

    @property
    def head_weight_(self):
        """Output-layer weight (n_outputs, n_hidden_last), a view into the model."""
        check_is_fitted(self)
        return self._views()["head.weight"]

    @property
    def head_bias_(self):
        """Output-layer bias (n_outputs,), a view into the model."""
        check_is_fitted(self)
        return self._views()["head.bias"]

    def state_dict(self):
        """Copies of all trained weights under PyTorch's names.

        Returns
        -------
        state : dict of str to ndarray
            The recurrent weights (see :attr:`rnn_params_`) and the output
            layer as ``"head.weight"`` (n_outputs, n_hidden_last) and
            ``"head.bias"`` (n_outputs,), the names ``nn.Linear`` registered
            as ``head`` would have. For a single-layer torch model
            ``{**rnn.state_dict(), **{"head." + k: v for k, v in
            linear.state_dict().items()}}`` has exactly these keys and shapes.
        """
        check_is_fitted(self)
        return {name: view.copy() for name, view in self._views().items()}

    def load_state_dict(self, state_dict):
        """Replace the weights with those of ``state_dict`` (e.g. from PyTorch).

        The estimator must already be fitted or initialised for data of the
        right shape (for instance ``partial_fit`` on a few rows, or ``fit`` with
        ``max_iter=1``), so that ``n_features_in_``, the number of outputs and,
        for a classifier, ``classes_`` are known. Keys and shapes must match
        :meth:`state_dict` exactly. Values may be NumPy arrays or torch tensors.
        Adam's moment estimates are reset, because they describe the old
        weights; ``warm_start`` and ``partial_fit`` then continue from the
        loaded weights.

        Parameters
        ----------
        state_dict : dict of str to array-like
            New weights, in the format returned by :meth:`state_dict`.

        Returns
        -------
        self : object
            The estimator with the new weights.
        """
        check_is_fitted(self)
        views = self._views()
        missing = sorted(set(views) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(views))
        if missing or unexpected:
            raise ValueError(
                f"state_dict does not match this model: missing keys {missing}, "
                f"unexpected keys {unexpected}."
            )
        values = {}
        for name, view in views.items():
            value = state_dict[name]
            if hasattr(value, "detach"):  # a torch tensor
                value = value.detach().cpu().numpy()
            value = np.asarray(value)
            if value.shape != view.shape:
                raise ValueError(
                    f"state_dict[{name!r}] has shape {value.shape}, expected "
                    f"{view.shape}."
                )
            if not np.all(np.isfinite(value)):
                raise ValueError(f"state_dict[{name!r}] contains NaN or inf.")
            values[name] = value
        # Copy only after every check passed, so a failed load changes nothing.
        for name, value in values.items():
            views[name][...] = value
        self._flat[1:] = 0
        self._adam_t = 0
        return self

    # ------------------------------------------------------------------
    # Forward / backward of one minibatch
    # ------------------------------------------------------------------
    def _hidden_sizes(self):
        sizes = self.hidden_layer_sizes
        if not hasattr(sizes, "__iter__"):
            sizes = [sizes]
        sizes = list(sizes)
        if not sizes or any(
            not isinstance(h, Integral) or isinstance(h, bool) or h < 1 for h in sizes
        ):
            raise ValueError(
                "hidden_layer_sizes must be a positive integer or a non-empty "
                f"sequence of positive integers, got {self.hidden_layer_sizes!r}."
            )
        return [int(h) for h in sizes]

    def _n_layers(self):
        return sum(1 for name, _, _ in self._layout if name.startswith("weight_ih_l"))

    def _forward_stack(self, X, training):
        """Run the recurrent layers on X (B, T, D).

        Returns the top layer's output (B, T, H) and, when training, the
        per-layer (cache, dropout mask) pairs that ``_backward_stack`` needs.
        """
        h, tape = X, []
        for k in range(self._n_layers()):
            h, _, cache = rnn_forward(
                self._cell, h, self._layer_views(k), training=training
            )
            mask = None
            if training and self.dropout > 0:
                keep = self._random_state.random_sample(h.shape) >= self.dropout
                mask = keep.astype(h.dtype) / h.dtype.type(1.0 - self.dropout)
                h = h * mask
            tape.append((cache, mask))
        return h, tape

    def _backward_stack(self, dtop, tape, last_step_only=False):
        """Backpropagate d(loss)/d(top output) into the gradient row.

        ``dtop`` is (B, T, H), or (B, H) for the last step only when
        ``last_step_only``: then it enters the top layer as the gradient of
        its final state, and no (B, T, H) array of zeros is built.
        """
        d = dtop
        for k in reversed(range(len(tape))):
            cache, mask = tape[k]
            if mask is not None:
                d = d * (mask[:, -1] if last_step_only and k == len(tape) - 1 else mask)
            if last_step_only and k == len(tape) - 1:
                dh = d[None]
                dstate = (dh, np.zeros_like(dh)) if self._cell != "gru" else dh
                d, grads, _ = rnn_backward(None, cache, dstate, input_grad=k > 0)
            else:
                d, grads, _ = rnn_backward(d, cache, input_grad=k > 0)
            for name, view in self._layer_views(k, row=1).items():
                view[...] = grads[name]

    def _head(self, H):
        """Raw outputs (n, n_outputs) of the dense layer on hidden states (n, H)."""
        params = self._views()
        return H @ params["head.weight"].T + params["head.bias"]

    def _loss_grad(self, X, Y, per_step=False):
        """Loss of one minibatch; writes its gradient into the buffer's row 1.

        Parameters
        ----------
        X : ndarray of shape (B, T, n_features)
            Input sequences, any strides.
        Y : ndarray
            Encoded targets: shape (B, ...) for the last step of each sequence,
            or (B, T, ...) with one target per step when ``per_step`` is True.
        per_step : bool
            Put a loss on every step instead of the last step only.

        Returns
        -------
        loss : float
            Mean loss over the target rows, plus the L2 penalty.
        """
        top, tape = self._forward_stack(X, training=True)
        B, T, H = top.shape
        states = top.reshape(B * T, H) if per_step else top[:, -1]
        targets = Y.reshape(B * T, *Y.shape[2:]) if per_step else Y
        n = states.shape[0]
        Z = self._head(states)
        loss_sum, dZ = self._loss(Z, targets)
        if not np.isfinite(loss_sum):
            # _train_step reports the divergence. Backpropagating the inf would
            # fail first, inside functional, with a message about `dout`.
            return loss_sum
        dZ = (dZ / n).astype(top.dtype, copy=False)

        grads, params = self._views(1), self._views()
        grads["head.weight"][...] = dZ.T @ states
        grads["head.bias"][...] = dZ.sum(axis=0)
        d_states = dZ @ params["head.weight"]
        if per_step:
            self._backward_stack(d_states.reshape(B, T, H), tape)
        else:
            self._backward_stack(d_states, tape, last_step_only=True)

        weights = self._flat[0, : self._n_decay]
        self._flat[1, : self._n_decay] += (self.alpha / n) * weights
        penalty = 0.5 * self.alpha * float(np.sum(weights * weights, dtype=np.float64)) / n
        return loss_sum / n + penalty

    def _optimizer_step(self):
        """Clip the gradient row by its norm, then take one Adam step."""
        param, grad, m, v = self._flat
        if self.max_grad_norm is not None:
            # np.sum's pairwise summation, unlike a threaded BLAS dot, gives the
            # same bits for any number of threads.
            norm = float(np.sqrt(np.sum(grad * grad, dtype=np.float64)))
            if norm > self.max_grad_norm:
                grad *= self.max_grad_norm / norm
        self._adam_t += 1
        m *= self.beta_1
        m += (1 - self.beta_1) * grad
        v *= self.beta_2
        v += (1 - self.beta_2) * grad * grad
        lr = (
            self.learning_rate_init
            * np.sqrt(1 - self.beta_2**self._adam_t)
            / (1 - self.beta_1**self._adam_t)
        )
        param -= (lr * m / (np.sqrt(v) + self.epsilon)).astype(param.dtype, copy=False)

    # ------------------------------------------------------------------
    # Inference
    # ------------------------------------------------------------------
    def _block_size(self, n_steps):
        # Per window and step: the input row, and per layer the functional
        # layer's output, cell state and gate buffer (at most 7 * H values).
        width = self.n_features_in_ + 7 * sum(self._hidden_sizes_fitted())
        return max(1, _PREDICT_BLOCK_BYTES // (n_steps * width * self._flat.itemsize))

    def _hidden_sizes_fitted(self):
        return [
            shape[1] for name, _, shape in self._layout if name.startswith("weight_hh_l")
        ]

    def _raw_predict_sequences(self, X):
        """Raw outputs (n_sequences, n_outputs) for a 3-D batch."""
        Z = np.empty((X.shape[0], self.n_outputs_), dtype=self._flat.dtype)
        for rows in gen_batches(X.shape[0], self._block_size(X.shape[1])):
            top, _ = self._forward_stack(X[rows], training=False)
            Z[rows] = self._head(top[:, -1])
        return Z

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
        ndim = _input_ndim(X)
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
        ndim = _input_ndim(X)
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

    # ------------------------------------------------------------------
    # Fitting
    # ------------------------------------------------------------------
    def _fit(self, X, y, incremental=False, classes=None):
        fitted = hasattr(self, "_flat")
        first_pass = not fitted or (not self.warm_start and not incremental)
        try:
            return self._fit_checked(X, y, incremental, classes, first_pass)
        except _Diverged as exc:
            # A model with non-finite weights must not look fitted.
            self._forget_fit()
            raise ValueError(
                f"Training diverged: {exc}. No model was kept. Scale X and y "
                "(e.g. StandardScaler), lower learning_rate_init, or set "
                "max_grad_norm."
            ) from None
        except Exception:
            # A refused fresh fit must not leave the previous model looking
            # like its result (warm and incremental fits keep their state).
            if first_pass:
                self._forget_fit()
            raise

    def _forget_fit(self):
        """Drop every fitted attribute, so the estimator is unfitted again."""
        for name in list(vars(self)):
            if name not in self._get_param_names():
                delattr(self, name)

    def _fit_checked(self, X, y, incremental, classes, first_pass):
        self._hidden_sizes()  # fail early on a bad hidden_layer_sizes
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        dtype = np.dtype(self.dtype) if first_pass else self._flat.dtype
        X, y, sequences = self._validate_fit_data(X, y, first_pass, dtype)
        Y = self._encode_targets(y, first_pass, incremental, classes)
        # None means fresh OS entropy rather than numpy's global RandomState,
        # which an estimator must never advance.
        self._random_state = (
            np.random.RandomState()
            if self.random_state is None
            else check_random_state(self.random_state)
        )

        # Split before initialising: a validation block too small for early
        # stopping must fail before any weights exist, or the estimator would
        # look fitted (with random weights) after the failed fit.
        train, val = self._split(X, Y, sequences)
        if first_pass:
            self._initialize(X.shape[-1])
        else:
            self._check_architecture(X.shape[-1])
            if not incremental:
                # As MLP: a warm-started fit gets a fresh optimizer.
                self._flat[1:] = 0
                self._adam_t = 0
        self._run_epochs(train, val, incremental)
        return self

    def _check_architecture(self, n_features):
        layout, _ = self._build_layout(n_features, self.n_outputs_)
        if (
            layout != self._layout
            or self.cell != self._cell
            or np.dtype(self.dtype) != self._flat.dtype
        ):
            raise ValueError(
                "warm_start and partial_fit must keep cell, hidden_layer_sizes, "
                "dtype and the number of outputs of the fitted model; refit with "
                "warm_start=False to change them."
            )

    def _split(self, X, Y, sequences):
        """(training view, validation (X, Y) or None), the validation block last."""
        n = X.shape[0]
        if not self.early_stopping:
            data = _SequenceData(X, Y) if sequences else _StreamData(X, Y, self.window, n)
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
            return _SequenceData(X[:n_train], Y[:n_train]), (X[n_train:], Y[n_train:])
        # Validation rows keep their full history: their windows may start in
        # the training block, whose inputs are the known past.
        start = max(0, n_train - (self.window - 1))
        return _StreamData(X, Y, self.window, n_train), (X[start:], Y[n_train:])

    def _batch_size(self, n_items):
        if self.batch_size == "auto":
            return max(1, min(64, n_items))
        return max(1, min(self.batch_size, n_items))

    def _run_epochs(self, train, val, incremental):
        # BLAS is limited once here rather than in every kernel call: each
        # limit costs a tenth of a small training step, and the loop's own
        # matrix products (the dense head) are too small to want threads.
        with _single_threaded_blas():
            self._run_epochs_limited(train, val, incremental)

    def _run_epochs_limited(self, train, val, incremental):
        batch_size = self._batch_size(train.n_items)
        order = np.arange(train.n_items)
        best_params = None
        # Convergence is judged per fit call (a warm-started fit may see other
        # data); the curves keep growing across calls, as in MLP.
        if val is not None:
            if self.validation_scores_ is None:
                self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
            self._no_improvement_count = 0
        elif not incremental or self.best_loss_ is None:
            self.best_loss_ = np.inf
            self._no_improvement_count = 0
        if incremental:
            max_iter = 1
        else:
            self.n_iter_ = 0
            max_iter = self.max_iter
        start = time.perf_counter()
        try:
            for _ in range(max_iter):
                if self.shuffle:
                    self._random_state.shuffle(order)
                total = 0.0
                if train.prefix is not None:
                    Xp, Yp = train.prefix
                    total += self._train_step(Xp, Yp, per_step=True) * Yp.shape[1]
                for rows in gen_batches(train.n_items, batch_size):
                    Xb, Yb = train.batch(order[rows])
                    total += self._train_step(Xb, Yb) * Xb.shape[0]
                self.n_iter_ += 1
                self.t_ += train.n_rows
                self.loss_curve_.append(total / train.n_rows)
                improved = self._update_no_improvement_count(val)
                if improved and val is not None:
                    best_params = self._flat[0].copy()
                if self.verbose:
                    msg = f"Epoch {self.n_iter_}, loss = {self.loss_curve_[-1]:.8f}"
                    if val is not None:
                        msg += f", validation score = {self.validation_scores_[-1]:.6f}"
                    print(f"{msg}, {time.perf_counter() - start:.2f} s")
                if incremental:
                    break
                if self._no_improvement_count > self.n_iter_no_change:
                    what = "Validation score" if val is not None else "Training loss"
                    if self.verbose:
                        print(
                            f"{what} did not improve more than tol={self.tol} for "
                            f"{self.n_iter_no_change} consecutive epochs. Stopping."
                        )
                    break
            else:
                if not incremental:
                    warnings.warn(
                        f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) "
                        "reached and the optimization hasn't converged yet.",
                        ConvergenceWarning,
                    )
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
        if best_params is not None:
            self._flat[0] = best_params

    def _train_step(self, X, Y, per_step=False):
        loss = self._loss_grad(X, Y, per_step=per_step)
        if not np.isfinite(loss):
            raise _Diverged(f"the loss became {loss} in epoch {self.n_iter_ + 1}")
        self._optimizer_step()
        if not np.isfinite(self._flat[0]).all():
            raise _Diverged(f"the weights became non-finite in epoch {self.n_iter_ + 1}")
        return loss

    def _update_no_improvement_count(self, val):
        """MLP's stopping rule; True when the validation score is a new best."""
        if val is None:
            loss = self.loss_curve_[-1]
            if loss > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            self.best_loss_ = min(self.best_loss_, loss)
            return False
        X_val, Y_val = val
        if X_val.ndim == 3:
            Z = self._raw_predict_sequences(X_val)
        else:
            Z = self._raw_predict_stream(X_val)[-Y_val.shape[0] :]
        score = self._validation_score(Z, Y_val)
        self.validation_scores_.append(score)
        if score < self.best_validation_score_ + self.tol:
            self._no_improvement_count += 1
        else:
            self._no_improvement_count = 0
        if score > self.best_validation_score_:
            self.best_validation_score_ = score
            return True
        return False

    def __sklearn_is_fitted__(self):
        # validate_data sets n_features_in_ before fit can still fail; only
        # weights make a model.
        return hasattr(self, "_flat")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags
