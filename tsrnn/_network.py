"""The network of the tsrnn estimators, one minibatch at a time.

Design
------
Model. A stack of recurrent layers followed by a dense output layer (the
"head") on the top layer's hidden state. Each recurrent layer is one
``tsrnn.functional`` call with ``num_layers=1``, so layers may have different
widths (``hidden_layer_sizes`` as in MLPRegressor). Dropout is inverted dropout
on the output sequence of every recurrent layer, including the top one that
feeds the head, with masks drawn from the estimator's RandomState. (torch's
``nn.LSTM(dropout=p)`` skips the top layer, which would make ``dropout`` a
no-op for the default single layer.) The weights live in one flat buffer,
see ``_weights.py``; ``_base.py`` initialises them and trains them.

Sequences (issue 14). A minibatch may carry ``lengths`` (each sequence's
valid steps; ``functional`` packs them, so padded steps cost nothing), and
its targets may sit at every valid step (``per_step``) rather than at each
sequence's last step. The "last step" of a sequence is then its last valid
step; for a bidirectional net, the output the head reads is the forward
direction's state there beside the reverse direction's state at step 0
(both final states, so their gradient enters ``rnn_backward`` as
``dstate``). ``sample_weight`` weighs each target: the loss is the weighted
mean, and the L2 penalty is divided by the weight sum instead of the count,
as in MLP; a minibatch whose weights are all zero makes no update.

States. ``rnn_forward``'s final states, one entry per layer (``h`` or
``(h, c)``, each (directions, B, H)), start a later call (truncated BPTT's
next segment, a prediction continued by the caller); ``take_state`` and
``put_state`` select and write the rows of the sequences still running.

Weight views. Every forward pass reads each layer's arrays by name. Naming
them from the flat buffer took as long as a batch-1 forward of a small
model (issue 13), so they are made once per buffer and kept in
``_cached_weights`` (``CachedWeights``). Views see every in-place change of
the buffer (training steps, ``load_state_dict``); a new buffer (a refit)
makes new views. Attributes named ``_cached_*`` are left out of pickles,
where a view would become a copy cut off from its buffer, and are rebuilt
on first use.
"""

import numpy as np

from tsrnn._weights import FlatWeights
from tsrnn.functional import _forward_checked, _validate_params, rnn_backward, rnn_forward

# Inference runs blocks of windows whose gathered inputs and activations take
# about this many bytes. A constant, not a function of the thread count, so
# results do not depend on the machine's parallelism.
_PREDICT_BLOCK_BYTES = 2**22


class CachedWeights:
    """The parameter views that a forward pass reads, for one weight buffer.

    Attributes
    ----------
    flat : ndarray
        The buffer the views belong to (``_flat``).
    layers : list of dict
        Per recurrent layer, its views under functional's ``_l0`` names.
    checked : list
        The same, checked by functional once (names, shapes, dtype), for
        inference (``_forward_checked``).
    head_weight_t : ndarray (H, n_outputs)
        The head's weight, transposed (a view).
    head_bias : ndarray (n_outputs,)
    width : int
        Values per window and step that inference holds (see ``_block_size``).
    """

    def __init__(self, net):
        self.flat = net._flat
        self.layers = [net._layer_views(k) for k in range(net._n_layers())]
        self.checked = [_validate_params(net._cell, p, values=False) for p in self.layers]
        views = net._views()
        self.head_weight_t, self.head_bias = views["head.weight"].T, views["head.bias"]
        # Per window and step: the input row, and per layer and direction the
        # functional layer's output, cell state and gate buffer (at most 7 * H
        # values).
        n_inputs = net._layout[0][2][1]  # weight_ih_l0 comes first: (G*H, D)
        self.width = n_inputs + 7 * sum(net._hidden_sizes_fitted()) * net._directions


class RecurrentNetwork(FlatWeights):
    """Mixin: forward, loss gradient, backward and inference of the network.

    The host (``BaseRNN``) provides the ``_loss`` hook, ``dropout``,
    ``alpha``, ``_random_state``, ``_cell`` and ``_directions`` (set when it
    initialises a model), and ``n_outputs_``.
    """

    def __getstate__(self):
        # The caches hold views of the weight buffer (see the module
        # docstring); the unpickled estimator rebuilds them.
        state = super().__getstate__()
        return {name: value for name, value in state.items()
                if not name.startswith("_cached_")}

    def _weights(self):
        """``CachedWeights`` of the current buffer, made on first use."""
        cached = self.__dict__.get("_cached_weights")
        if cached is None or cached.flat is not self._flat:
            cached = self._cached_weights = CachedWeights(self)
        return cached

    def _forward_stack(self, X, training, *, lengths=None, state=None, dropout=None,
                       return_state=False):
        """Run the recurrent layers on X (B, T, D).

        Returns the top layer's output (B, T, H * directions) and, when
        training, the per-layer (cache, dropout mask) pairs that
        ``_backward_stack`` needs; with ``return_state``, also each layer's
        final state (as ``rnn_forward`` returns it). ``lengths`` (B,) are the
        sequences' valid steps, ``state`` the layers' initial states (None:
        zeros). Dropout masks are drawn when training, or when ``dropout``
        says so (truncated BPTT's forward-only segments).
        """
        h, tape, final = X, [], []
        weights = self._weights()
        for k, params in enumerate(weights.layers):
            st = None if state is None else state[k]
            if training:
                h, last, cache = rnn_forward(self._cell, h, params, st, training=True,
                                             lengths=lengths)
            else:
                h, last, cache = _forward_checked(self._cell, h, weights.checked[k], st,
                                                  lengths=lengths)
            mask = None
            if (training if dropout is None else dropout) and self.dropout > 0:
                keep = self._random_state.random_sample(h.shape) >= self.dropout
                mask = keep.astype(h.dtype) / h.dtype.type(1.0 - self.dropout)
                h = h * mask
            tape.append((cache, mask))
            final.append(last)
        return (h, tape, final) if return_state else (h, tape)

    def _last_outputs(self, top, rows, ends=None):
        """What the head reads for one target per sequence: (len(rows), W).

        Row i of ``rows`` ends at step ``ends[i]`` (None: every row at the
        last step, and ``rows`` may be a slice): the forward direction's
        output there and, when bidirectional, the reverse direction's output
        at step 0 (where it ends). Both are final states.
        """
        out = top[rows, -1] if ends is None else top[rows, ends]
        if self._directions == 2:
            half = top.shape[2] // 2
            out = np.concatenate((out[:, :half], top[rows, 0, half:]), axis=1)
        return out

    def _backward_stack(self, dtop, tape, ends=None):
        """Backpropagate d(loss)/d(top output) into the gradient row.

        ``dtop`` is (B, T, W), or with ``ends`` (B, W): the gradient of the
        outputs ``_last_outputs`` read at those steps. It then enters the top
        layer as the gradient of its final state, and no (B, T, W) array of
        zeros is built.
        """
        d = dtop
        top = len(tape) - 1
        for k in reversed(range(len(tape))):
            cache, mask = tape[k]
            if ends is not None and k == top:
                B = d.shape[0]
                if mask is not None:
                    d = d * self._last_outputs(mask, np.arange(B), ends)
                # (B, directions * H) -> (directions, B, H), the layout of h_n.
                dh = np.ascontiguousarray(
                    d.reshape(B, self._directions, -1).transpose(1, 0, 2))
                dstate = (dh, np.zeros_like(dh)) if self._cell != "gru" else dh
                d, grads, _ = rnn_backward(None, cache, dstate, input_grad=k > 0)
            else:
                if mask is not None:
                    d = d * mask
                d, grads, _ = rnn_backward(d, cache, input_grad=k > 0)
            for name, view in self._layer_views(k, row=1).items():
                view[...] = grads[name]

    def _head(self, H):
        """Raw outputs (n, n_outputs) of the dense layer on hidden states (n, H)."""
        weights = self._weights()
        return H @ weights.head_weight_t + weights.head_bias

    def _loss_grad(self, X, Y, per_step=False, *, sample_weight=None, lengths=None,
                   state=None, target_rows=None, return_state=False):
        """Loss of one minibatch; writes its gradient into the buffer's row 1.

        Parameters
        ----------
        X : ndarray of shape (B, T, n_features)
            Input sequences, any strides.
        Y : ndarray
            Encoded targets: shape (B, ...) for the last step of each sequence,
            or (B, T, ...) with one target per step when ``per_step`` is True.
        per_step : bool
            Put a loss on every (valid) step instead of the last step only.
        sample_weight : ndarray of shape Y.shape[:1] or Y.shape[:2], optional
            Weight of each target.
        lengths : ndarray of shape (B,), optional
            Valid steps of each sequence; the last step is the last valid one.
        state : list, optional
            Initial state of each layer (a truncated-BPTT segment's start).
        target_rows : ndarray of int, optional
            For last-step targets: the rows of X that have one (Y and
            sample_weight are theirs alone). Default: every row.
        return_state : bool
            Also return every layer's final state.

        Returns
        -------
        loss : float or None
            Mean loss over the target rows, plus the L2 penalty; None when the
            weights of all targets are zero (no gradient was written).
        final : list
            With ``return_state``, each layer's final state.
        """
        top, tape, final = self._forward_stack(
            X, training=True, lengths=lengths, state=state, return_state=True)
        B, T, H = top.shape
        weights = sample_weight
        if per_step:
            if lengths is None:
                states = top.reshape(B * T, H)
                targets = Y.reshape(B * T, *Y.shape[2:])
                weights = None if weights is None else weights.reshape(B * T)
            else:
                valid = np.arange(T) < lengths[:, None]
                states, targets = top[valid], Y[valid]
                weights = None if weights is None else weights[valid]
        else:
            rows = np.arange(B) if target_rows is None else target_rows
            ends = np.full(B, T - 1) if lengths is None else lengths - 1
            states, targets = self._last_outputs(top, rows, ends[rows]), Y
        n = states.shape[0] if weights is None else float(np.sum(weights, dtype=np.float64))
        if n == 0:
            return (None, final) if return_state else None
        Z = self._head(states)
        if weights is None:
            loss_sum, dZ = self._loss(Z, targets)
        else:
            loss_sum, dZ = self._loss(Z, targets, weights)
        if not np.isfinite(loss_sum):
            # _train_step reports the divergence. Backpropagating the inf would
            # fail first, inside functional, with a message about `dout`.
            return (loss_sum, final) if return_state else loss_sum
        dZ = (dZ / n).astype(top.dtype, copy=False)

        grads, params = self._views(1), self._views()
        grads["head.weight"][...] = dZ.T @ states
        grads["head.bias"][...] = dZ.sum(axis=0)
        d_states = dZ @ params["head.weight"]
        if per_step and lengths is None:
            self._backward_stack(d_states.reshape(B, T, H), tape)
        elif per_step:
            dtop = np.zeros_like(top)
            dtop[valid] = d_states
            self._backward_stack(dtop, tape)
        else:
            if target_rows is not None:
                # Rows without a target here pass no gradient back.
                d_all = np.zeros((B, H), d_states.dtype)
                d_all[target_rows] = d_states
                d_states = d_all
            self._backward_stack(d_states, tape, ends=ends)

        weights = self._flat[0, : self._n_decay]
        self._flat[1, : self._n_decay] += (self.alpha / n) * weights
        penalty = 0.5 * self.alpha * float(np.sum(weights * weights, dtype=np.float64)) / n
        loss = loss_sum / n + penalty
        return (loss, final) if return_state else loss

    def _block_size(self, n_steps):
        width = self._weights().width
        return max(1, _PREDICT_BLOCK_BYTES // (n_steps * width * self._flat.itemsize))

    def _raw_predict_sequences(self, X, lengths=None, per_step=False, state=None,
                               return_state=False):
        """Raw outputs of a 3-D batch, in blocks.

        ``X`` may be any object indexable like an array of shape
        (n_sequences, n_timesteps, n_features) whose row slices are arrays
        (the forecaster's windows gather their inputs only when sliced), so
        no more than one block of inputs and activations exists at a time.
        Returns (n_sequences, n_outputs) from each sequence's last (valid)
        step, or with ``per_step`` (n_sequences, n_timesteps, n_outputs), NaN
        past each sequence's length. ``state`` (per layer, as ``rnn_forward``
        takes it) starts the sequences from it; ``return_state`` also returns
        the final states.
        """
        n, T = X.shape[0], X.shape[1]
        dtype = self._flat.dtype
        Z = np.empty((n, T, self.n_outputs_) if per_step else (n, self.n_outputs_), dtype)
        final_all = None
        block = self._block_size(T)
        # Plain slices, not sklearn's gen_batches: it validates its arguments
        # on every call, which took longer than a batch-1 forward (issue 13).
        for rows in (slice(i, min(i + block, n)) for i in range(0, n, block)):
            ls = None if lengths is None else lengths[rows]
            st = None if state is None else take_state(state, rows)
            top, _, final = self._forward_stack(X[rows], training=False, lengths=ls,
                                                state=st, return_state=True)
            m = top.shape[0]
            if per_step:
                Z[rows] = self._head(top.reshape(m * T, -1)).reshape(m, T, -1)
                if ls is not None:
                    Z[rows][np.arange(T) >= ls[:, None]] = np.nan
            elif ls is None:
                Z[rows] = self._head(self._last_outputs(top, slice(None)))
            else:
                Z[rows] = self._head(self._last_outputs(top, np.arange(m), ls - 1))
            if return_state:
                final_all = put_state(final_all, rows, final, n)
        return (Z, final_all) if return_state else Z


def take_state(state, rows):
    """The rows ``rows`` of per-layer states as ``rnn_forward`` returns them."""
    return [tuple(part[:, rows] for part in st) if isinstance(st, tuple) else st[:, rows]
            for st in state]


def put_state(state, rows, final, n):
    """Write per-layer final states of ``rows`` into the states of all n rows.

    ``state`` None allocates them. The copy also cuts the carried state off
    from the arrays of the call that made it.
    """
    if state is None:
        state = [tuple(np.zeros((p.shape[0], n, p.shape[2]), p.dtype) for p in st)
                 if isinstance(st, tuple) else np.zeros((st.shape[0], n, st.shape[2]), st.dtype)
                 for st in final]
    for st, fin in zip(state, final):
        for part, value in zip(st if isinstance(st, tuple) else (st,),
                               fin if isinstance(fin, tuple) else (fin,)):
            part[:, rows] = value
    return state
