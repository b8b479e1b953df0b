"""RNNRegressor: a recurrent network regressor with scikit-learn's interface."""

import numpy as np
from sklearn.base import RegressorMixin, _fit_context
from sklearn.metrics import r2_score
from sklearn.utils.validation import column_or_1d

from tsrnn._arrays import ArrayRNN


class RNNRegressor(RegressorMixin, ArrayRNN):
    """Recurrent neural network regressor (LSTM, GRU or peephole LSTM).

    A stack of recurrent layers reads a sequence of rows; a dense linear layer
    on the top layer's last hidden state gives the prediction. The squared
    error is minimised with Adam on minibatches. Parameters shared with
    :class:`~sklearn.neural_network.MLPRegressor` have the same names and
    meanings.

    Two kinds of input are accepted, by fit and predict alike:

    **A stream**, 2-D ``(n_rows, n_features)`` (array or DataFrame): rows are
    time steps in order, columns are sensors, and ``y`` has one target per row.
    The prediction for row ``i`` is computed from rows
    ``max(0, i - window + 1) .. i`` only, so :meth:`predict` returns exactly one
    value per row. The first ``window - 1`` rows use the shorter history that
    exists. Training uses every row once per epoch: each row from
    ``window - 1`` on as the target of its full window, and the first
    ``window - 1`` rows through one sequence with a target at every step. A
    single row is therefore enough to fit (two rows for validation are needed
    with ``early_stopping``). Windows are never copied as a whole: each
    minibatch is gathered from a strided view, so memory stays
    O(data + batch_size * window).

    **A batch of sequences**, 3-D ``(n_sequences, n_timesteps, n_features)``,
    with one target per sequence: the prediction for a sequence comes from its
    last step. ``window`` is not used. Sequences may end early: pad them with
    NaN in every feature after their last step (any other NaN is an error
    that names the sequence and step). With y of shape ``(n_sequences,
    n_timesteps, n_outputs)`` there is a target at every step instead (use
    ``y[..., None]`` for one value per step; a 2-D y is ``n_outputs`` values
    per sequence): training puts a loss on every valid step and
    :meth:`predict` returns ``(n_sequences, n_timesteps)`` for one output,
    NaN past a sequence's end (y's entries there are ignored).

    ``n_features_in_`` is the number of features (sensors), the last axis.

    Parameters
    ----------
    hidden_layer_sizes : int or array-like of int, default=(32,)
        Width of each stacked recurrent layer, from the input upwards.

    cell : {"lstm", "gru", "peephole"}, default="lstm"
        Recurrent cell. "lstm" and "gru" use PyTorch's equations and gate
        order; "peephole" is the LSTM with Graves' peephole connections.

    window : int, default=16
        Number of rows (time steps) a stream prediction looks at: the row
        itself and the ``window - 1`` rows before it. Ignored for 3-D input.

    dropout : float, default=0.0
        Fraction of each recurrent layer's outputs zeroed during training
        (inverted dropout), including the top layer's output that feeds the
        dense output layer. Masks come from ``random_state``.

    alpha : float, default=0.0001
        Strength of the L2 penalty on the weights (not the biases).

    batch_size : int or "auto", default="auto"
        Number of windows (or sequences) per minibatch; "auto" means
        ``min(64, n_windows)``.

    learning_rate_init : float, default=0.005
        Adam's step size.

    max_iter : int, default=50
        Maximum number of epochs (passes over all rows).

    max_windows_per_epoch : int or None, default=None
        The training budget: the most windows (sequences for 3-D input) one
        epoch trains on. With more, each epoch trains on a fresh sample of
        this many, drawn with ``random_state`` and spread evenly over the
        stream's time (see the user guide's "Fleets" page); None (the
        default) trains on all of them, as MLPRegressor does. The cost of
        a fit is then at most ``max_iter * max_windows_per_epoch`` windows,
        however long the data: neuralforecast's ``max_steps *
        windows_batch_size`` (``batch_size`` is ``windows_batch_size``).

    shuffle : bool, default=True
        Whether to shuffle the order of windows in each epoch. The windows
        themselves always keep their rows in time order.

    random_state : int, RandomState instance or None, default=None
        Seeds initial weights, shuffling and dropout. Pass an int for
        reproducible results, which are then also identical for any number of
        threads. None draws a fresh seed from the operating system; numpy's
        global random state is never used or advanced.

    tol : float, default=1e-4
        Minimum improvement of the training loss (or, with early stopping,
        of the validation score) that resets the ``n_iter_no_change`` counter.

    verbose : bool, default=False
        Print the loss, validation score and elapsed time after each epoch.

    warm_start : bool, default=False
        Reuse the weights of the previous fit as initialisation (Adam's
        moments restart, as in MLP).

    early_stopping : bool, default=False
        Hold out the last ``validation_fraction`` of the data in time order
        (the last rows of a stream, the last sequences of a 3-D batch; never a
        random split, which would leak the future), stop when its R^2 score
        stops improving, and restore the weights of the best epoch.

    validation_fraction : float, default=0.1
        Fraction of rows (or sequences) held out for early stopping. The
        number held out is ``ceil(validation_fraction * n)``.

    beta_1 : float, default=0.9
        Adam's decay rate of the first moment estimate.

    beta_2 : float, default=0.999
        Adam's decay rate of the second moment estimate.

    epsilon : float, default=1e-8
        Adam's numerical-stability constant.

    n_iter_no_change : int, default=10
        Stop after this many epochs without an improvement of at least
        ``tol``. When ``max_windows_per_epoch`` binds, no stop comes before
        the epochs have drawn as many windows as one pass over the data:
        a sampled epoch is a share of a pass, and a network that has not
        yet seen its windows once is still learning, not overfitting.

    max_grad_norm : float or None, default=5.0
        Rescale each minibatch gradient to at most this Euclidean norm
        (clipping by the global norm); None disables clipping.

    forget_bias : float, default=1.0
        Initial bias of the forget gate of LSTM and peephole cells; ignored
        for GRU.

    dtype : {np.float32, np.float64, "float32", "float64"}, default=np.float32
        Floating-point type of the weights and all computations. Predictions
        are returned as float64.

    bidirectional : bool, default=False
        Read each sequence in both directions (torch's
        ``bidirectional=True``): every layer runs a second, reverse set of
        weights, and the outputs of both directions go side by side to the
        layer above and to the output layer. Only for 3-D X: a stream's rows
        must not see the future.

    tbptt_length : int or None, default=None
        Truncated backpropagation through time: process each sequence (or
        stream window) in segments of this many steps, carrying the state
        from one segment to the next but stopping the gradient at segment
        edges, with an optimizer step after every segment that has targets
        (DL4J's ``tBPTTLength``). Training memory then grows with
        ``tbptt_length`` instead of the sequence length. None (or a length of
        at least the sequence's) is full backpropagation through time.

    Attributes
    ----------
    loss_curve_ : list of float
        Training loss after each epoch (half the mean squared error plus the
        L2 penalty); continues across warm-started fits and partial_fit.

    best_loss_ : float or None
        Lowest training loss of the last fit; None with early stopping.

    validation_scores_ : list of float or None
        R^2 on the held-out block after each epoch; None without early stopping.

    best_validation_score_ : float or None
        Best validation R^2 of the last fit (the restored weights have it).

    n_iter_ : int
        Epochs run by the last fit (cumulative over partial_fit calls).

    t_ : int
        Number of training targets (rows, sequences or steps) seen by the
        optimizer.

    n_outputs_ : int
        Number of regression targets.

    n_features_in_ : int
        Number of features (sensors) seen during fit.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Column names of X, when it was a DataFrame with string column names.

    rnn_params_ : dict of str to ndarray
        Recurrent weights under PyTorch's names, as views into the model.

    head_weight_, head_bias_ : ndarray
        Weight (n_outputs, n_hidden_last) and bias of the dense output layer.

    See Also
    --------
    RNNClassifier : The same network for classification.
    sklearn.neural_network.MLPRegressor : The feed-forward counterpart.

    Notes
    -----
    Weights can be exported with :meth:`state_dict` and imported with
    :meth:`load_state_dict` in the format of ``torch.nn.LSTM`` / ``nn.GRU``
    plus an ``nn.Linear`` named ``head``.

    Examples
    --------
    >>> import numpy as np
    >>> from tsrnn import RNNRegressor
    >>> t = np.arange(400)
    >>> X = np.c_[np.sin(0.1 * t), np.cos(0.1 * t)]
    >>> y = np.sin(0.1 * (t + 5))
    >>> model = RNNRegressor(window=10, max_iter=5, random_state=0).fit(X, y)
    >>> model.predict(X).shape
    (400,)
    """

    _y_validation = {"multi_output": True, "y_numeric": True}

    def __init__(
        self,
        hidden_layer_sizes=(32,),
        *,
        cell="lstm",
        window=16,
        dropout=0.0,
        alpha=0.0001,
        batch_size="auto",
        learning_rate_init=0.005,
        max_iter=50,
        max_windows_per_epoch=None,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_grad_norm=5.0,
        forget_bias=1.0,
        dtype=np.float32,
        bidirectional=False,
        tbptt_length=None,
    ):
        super().__init__(
            hidden_layer_sizes,
            cell=cell,
            window=window,
            dropout=dropout,
            alpha=alpha,
            batch_size=batch_size,
            learning_rate_init=learning_rate_init,
            max_iter=max_iter,
            max_windows_per_epoch=max_windows_per_epoch,
            shuffle=shuffle,
            random_state=random_state,
            tol=tol,
            verbose=verbose,
            warm_start=warm_start,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            n_iter_no_change=n_iter_no_change,
            max_grad_norm=max_grad_norm,
            forget_bias=forget_bias,
            dtype=dtype,
        )
        self.bidirectional = bidirectional
        self.tbptt_length = tbptt_length

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to a stream or a batch of sequences.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_rows, n_features) or ndarray \
                of shape (n_sequences, n_timesteps, n_features)
            A stream (rows in time order) or a batch of sequences, NaN after
            the end of a sequence that ends early.

        y : array-like of shape (n_rows,), (n_rows, n_outputs) or \
                (n_sequences, n_timesteps, n_outputs)
            Targets, one per row of a stream, per sequence or per step.

        sample_weight : array-like of shape (n_rows,) or (n_sequences,), default=None
            Weight of each row's or sequence's targets in the loss; None
            weighs all alike.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        return self._fit(X, y, incremental=False, sample_weight=sample_weight)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """Update the model with one epoch over the given data.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_rows, n_features) or ndarray \
                of shape (n_sequences, n_timesteps, n_features)
            A stream (rows in time order) or a batch of sequences.

        y : array-like of shape (n_rows,), (n_rows, n_outputs) or \
                (n_sequences, n_timesteps, n_outputs)
            Targets, one per row of a stream, per sequence or per step.

        sample_weight : array-like of shape (n_rows,) or (n_sequences,), default=None
            Weight of each row's or sequence's targets in the loss.

        Returns
        -------
        self : object
            The updated estimator.
        """
        return self._fit(X, y, incremental=True, sample_weight=sample_weight)

    def predict(self, X, *, initial_state=None, return_state=False):
        """Predict one value per row of a stream, per sequence or per step.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_rows, n_features) or ndarray \
                of shape (n_sequences, n_timesteps, n_features)
            For a stream, the prediction of row ``i`` uses rows
            ``max(0, i - window + 1) .. i`` of this X.

        initial_state : list, default=None
            For sequences (3-D X) of a unidirectional model: the state to
            start each sequence from, as returned with ``return_state=True``
            (None: zeros). Continues sequences across calls, e.g. to generate
            one step at a time.

        return_state : bool, default=False
            Also return the state after each sequence's last step: a list with
            one entry per recurrent layer, ``h`` of shape (n_sequences, units)
            for ``cell="gru"``, a tuple ``(h, c)`` for the LSTM cells.

        Returns
        -------
        y : ndarray of shape (n_rows,), (n_sequences,), (n_sequences, \
                n_timesteps) or with a last axis of n_outputs
            Predictions (float64); per step, NaN past a sequence's end.

        state : list
            Only with ``return_state=True``.
        """
        Z, state = self._raw_predict(X, initial_state, return_state)
        y = Z[..., 0] if self.n_outputs_ == 1 else Z
        return (y, state) if return_state else y

    def score(self, X, y, sample_weight=None):
        """R^2 of :meth:`predict`; a sequence labeller is scored over all valid steps.

        Parameters
        ----------
        X : {array-like, DataFrame} or ndarray of shape (n_sequences, \
                n_timesteps, n_features)
            Test inputs, as for :meth:`predict`.

        y : array-like
            True targets, shaped as :meth:`predict`'s output.

        sample_weight : array-like of shape (n_rows,) or (n_sequences,), default=None
            Sample weights.

        Returns
        -------
        score : float
            R^2 (``sklearn.metrics.r2_score``).
        """
        pairs = self._step_pairs(X, y, self.predict(X), sample_weight)
        if pairs is None:
            return super().score(X, y, sample_weight)
        y_true, y_pred, weights = pairs
        return float(r2_score(y_true, y_pred, sample_weight=weights))

    def _targets_per_step(self, X, y):
        # A 2-D y is n_outputs values per sequence, whatever n_outputs is; a
        # value per step takes a third axis.
        if y.ndim == 3 and y.shape[1] != X.shape[1]:
            raise ValueError(
                f"y has shape {y.shape}: a 3-D y holds a target at every step, "
                f"(n_sequences, n_timesteps, n_outputs), and X has {X.shape[1]} steps."
            )
        return y.ndim == 3

    def _encode_targets(self, y, first_pass, incremental, classes):
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        Y = y.reshape(y.shape[0], -1)
        if first_pass:
            self.n_outputs_ = Y.shape[1]
        return Y.astype(np.dtype(self.dtype) if first_pass else self._flat.dtype)

    def _loss(self, Z, Y, sample_weight=None):
        # Half the squared error, averaged over outputs as in MLP's loss.
        diff = Z - Y
        if sample_weight is not None:
            diff_w = diff * sample_weight.astype(diff.dtype, copy=False)[:, None]
        else:
            diff_w = diff
        with np.errstate(over="ignore"):  # an inf loss is reported as divergence
            loss = 0.5 * float(np.sum(diff_w * diff, dtype=np.float64)) / Y.shape[1]
        return loss, diff_w / Y.shape[1]

    def _validation_score(self, Z, Y, sample_weight=None):
        return r2_score(Y, Z, sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
