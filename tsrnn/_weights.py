"""The estimators' weights: one flat buffer, seen through PyTorch's names.

One buffer ``_flat`` of shape (4, n_params) holds the parameters (row 0),
their gradients (row 1) and Adam's two moment estimates (rows 2, 3), so the
optimizer step, gradient clipping and best-weight snapshots are whole-row
operations. ``_layout`` lists (name, offset, shape) for every array under
PyTorch's names: the recurrent layers' arrays as ``tsrnn.functional``
defines them (``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``,
``bias_hh_l{k}``, and ``weight_c{i,f,o}_l{k}`` for peephole cells, each
again with torch's ``_reverse`` suffix for a bidirectional net), then
``head.weight`` (n_outputs, H) and ``head.bias`` (n_outputs,) as in
``nn.Linear`` (H is twice the top layer's width when bidirectional). All
weights precede all biases, so the L2 penalty (weights only, as in MLP)
applies to the single slice ``[:_n_decay]``.

Per-array views are built on demand and never stored as plain attributes:
a pickled view would become a copy cut off from the buffer. (Inference
keeps the views it reads in ``_cached_weights``, which pickling drops; see
``_network.py``.)
"""

import math

import numpy as np
from sklearn.utils.validation import check_is_fitted

from tsrnn.functional import layer_param_shapes


def build_layout(cell, n_features, hidden_sizes, n_outputs, n_directions=1):
    """``(layout, n_decay)`` of a stack of one-layer cells and a dense head.

    Each recurrent layer is its own ``num_layers=1`` stack (so layers may have
    different widths); its arrays are functional's, named for layer k. With
    two directions each layer reads both directions' outputs of the one below.
    """
    weights, biases = [], []
    width = n_features
    for k, h in enumerate(hidden_sizes):
        shapes = layer_param_shapes(cell, width, h, layer=k,
                                    bidirectional=n_directions == 2)
        for name, shape in shapes.items():
            (biases if name.startswith("bias_") else weights).append((name, shape))
        width = h * n_directions
    weights.append(("head.weight", (n_outputs, width)))
    biases.append(("head.bias", (n_outputs,)))
    layout, offset = [], 0
    for name, shape in weights + biases:
        layout.append((name, offset, shape))
        offset += math.prod(shape)
    n_decay = sum(math.prod(shape) for _, shape in weights)
    return tuple(layout), n_decay


class FlatWeights:
    """Mixin: views of ``_flat`` by name, and PyTorch-style state dicts.

    The host class sets ``_flat`` and ``_layout`` when it initialises a model.
    """

    def _views(self, row=0):
        """{name: view} of one row of the buffer (0 params, 1 gradients)."""
        flat = self._flat[row]
        return {
            name: flat[start : start + math.prod(shape)].reshape(shape)
            for name, start, shape in self._layout
        }

    def _layer_views(self, k, row=0):
        """Views of recurrent layer k under the ``_l0`` names functional expects
        (``_l0_reverse`` for the reverse direction of a bidirectional layer)."""
        views, layer = {}, f"_l{k}"
        for name, view in self._views(row).items():
            reverse = name.endswith("_reverse")
            base = name[: -len("_reverse")] if reverse else name
            if base.endswith(layer) and not base.startswith("head."):
                views[base[: -len(layer)] + "_l0" + ("_reverse" if reverse else "")] = view
        return views

    def _n_layers(self):
        return sum(1 for name, _, _ in self._layout
                   if name.startswith("weight_ih_l") and not name.endswith("_reverse"))

    def _bidirectional_fitted(self):
        return any(name.endswith("_reverse") for name, _, _ in self._layout)

    def _hidden_sizes_fitted(self):
        return [
            shape[1] for name, _, shape in self._layout
            if name.startswith("weight_hh_l") and not name.endswith("_reverse")
        ]

    @property
    def rnn_params_(self):
        """Recurrent weights as ``{torch name: array}``, views into the model.

        Keys follow ``torch.nn.LSTM`` / ``torch.nn.GRU`` (``weight_ih_l0``,
        ``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``, ... and
        ``weight_ci_l0`` etc. for peephole cells, with ``_reverse`` copies
        when bidirectional), which is also the layout of ``tsrnn.functional``.
        Writing into these arrays changes the model; use :meth:`state_dict`
        for copies.
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
