"""The shared machinery of the tsrnn estimators: the network and its training loop.

Design
------
Model. A stack of recurrent layers and a dense head, trained with Adam; the
network of one minibatch (forward, loss, backward, inference in blocks) is in
``_network.py``, the weights in one flat buffer in ``_weights.py``, Adam and
clipping in ``_optim.py``. This module is the estimator: parameters, weight
initialisation and the one fit path.

Data. Two input shapes reach the same model (views in ``_data.py``):

* a stream (2-D, rows are time steps): the prediction for row i comes from the
  window of rows ``max(0, i - window + 1) .. i``. The first ``window - 1``
  rows have less history; one pass over them as a single "prefix" sequence
  yields all their predictions at once, and training puts a loss on every
  step of that sequence, so every row contributes exactly one loss term.
* a batch of sequences (3-D, ``(n_sequences, n_timesteps, n_features)``): one
  output per sequence, from its last step. ``window`` plays no role.

Sequences (issue 14). A minibatch may carry ``lengths`` and per-step
targets (see ``_network.py``); ``sample_weight`` weighs each target.

Truncated BPTT. With ``_tbptt_length()`` = k shorter than a minibatch's
sequences, they run in segments of k steps: each segment starts from the
state the one before ended in (carried, its gradient stopped), and each
segment with targets makes its own optimizer step, as DL4J's
``tBPTTLength`` does. Segments without targets (before a sequence's last
step, when the target is there) only run forward and keep no activations.
One segment is exactly full BPTT.

One fit path. ``fit`` and ``partial_fit`` of every estimator, the forecaster
included, call ``_fit``. It asks the estimator for its training data through
one hook, ``_prepare_fit`` (validate, encode targets, split off the
validation block; it gets ``sample_weight=`` only when the caller passed
weights), then initialises or checks the weights and runs the epochs. The
training data is a view (the protocol is in ``_data.py``); the validation
block is ``(X_val, Y_val)`` or ``(X_val, Y_val, W_val)``. The loop calls back
into the estimator only through ``_loss`` and ``_validation_score`` (each
given the weights as a third argument only when there are weights), and
into the caller's ``callback`` at the end of every epoch. A fit that raises
leaves the estimator unfitted (its previous model is dropped too, so no
half-updated model can answer ``predict``); a ``partial_fit`` whose data are
refused before training starts leaves the model as it was.

Early stopping restores the best epoch's weights; an estimator whose
``_n_averaged_epochs()`` is k > 1 (the forecaster's ``average_best_epochs``)
keeps the k best epochs' weights too, and serves their mean when it scores
better on the validation block (``_average_best_epochs``).

Loss scaling follows MLP: the loss of a minibatch is the (weighted) mean over
its target rows plus ``0.5 * alpha * ||W||^2 / n_rows`` (the weight sum with
weights); ``loss_curve_`` holds the row-weighted mean over each epoch.
"""

import time
import warnings
from abc import ABCMeta, abstractmethod
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state, gen_batches
from sklearn.utils._param_validation import Interval, Options, StrOptions

from tsrnn._data import Minibatch
from tsrnn._network import RecurrentNetwork, put_state, take_state
from tsrnn._optim import adam_step, clip_grad_norm
from tsrnn._persistence import VersionedPickle
from tsrnn._sampling import epoch_sample
from tsrnn._weights import build_layout
from tsrnn.exceptions import TrainingError
from tsrnn.functional import _single_threaded_blas, init_params


class _Diverged(Exception):
    pass


def _keep_best(snapshots, k, score, epoch, weights):
    """Keep in ``snapshots`` the k (score, epoch, weights) of highest score.

    Ties go to the earlier epoch, so the choice is a pure function of the
    scores.
    """
    snapshots.append((score, -epoch, weights.copy()))
    snapshots.sort(key=lambda s: (s[0], s[1]), reverse=True)
    del snapshots[k:]


class BaseRNN(VersionedPickle, RecurrentNetwork, BaseEstimator, metaclass=ABCMeta):
    """Recurrent network + dense head trained with Adam (base of the estimators).

    Warning: use the subclasses RNNRegressor, RNNClassifier and RNNForecaster.
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
        "max_windows_per_epoch": [Interval(Integral, 1, None, closed="left"), None],
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
        max_windows_per_epoch,
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
        self.max_windows_per_epoch = max_windows_per_epoch
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
    # Hooks of the subclasses
    # ------------------------------------------------------------------
    # Whether early stopping may keep the weights the fit started from, when no
    # epoch beats them on the validation block.
    _score_initial_model = False

    def _initial_model_margin(self):
        """Relative margin by which an epoch must beat the initial model to replace it.

        With ``_score_initial_model``: an epoch whose validation score is
        not above ``initial + margin * |initial|`` never replaces the
        weights the fit started from.
        """
        return 0.0

    def _n_averaged_epochs(self):
        """How many of the best epochs' weights early stopping may average.

        1: the best epoch's weights are kept, as MLP does. k > 1: see
        ``_average_best_epochs``.
        """
        return 1

    # What to try when the loss diverges, for the TrainingError's message.
    _divergence_hint = (
        "Scale X and y (e.g. StandardScaler), lower learning_rate_init, or set "
        "max_grad_norm."
    )

    def _n_directions(self):
        """2 for a bidirectional network (estimators with that parameter)."""
        return 1

    def _tbptt_length(self):
        """Steps per truncated-BPTT segment, or None for full BPTT."""
        return None

    @abstractmethod
    def _loss(self, Z, Y, sample_weight=None):
        """Summed loss over the rows of ``Z`` (n, n_outputs) and its gradient.

        With ``sample_weight`` (n,), row i's loss and gradient are scaled by
        its weight (the loop passes it only when there are weights).
        """

    @abstractmethod
    def _validation_score(self, Z, Y, sample_weight=None):
        """Score of raw outputs ``Z`` against encoded targets (higher is better)."""

    @abstractmethod
    def _prepare_fit(self, X, y, first_pass, incremental, classes):
        """Validate and encode the data of one fit call.

        Returns ``(n_features, train, val)``: the input width, a training
        view (members as in ``_data.py``) and the validation block
        ``(X_val, Y_val)`` or None. ``X_val`` is whatever
        ``_predict_validation`` takes. Sets the fitted attributes that
        describe the data (``n_features_in_``, ``n_outputs_``, ...) on the
        first pass, and changes nothing on a fitted estimator when it raises.
        """

    # ------------------------------------------------------------------
    # Weights
    # ------------------------------------------------------------------
    def _initialize(self, n_features):
        """Allocate the buffer and draw initial weights from ``_random_state``."""
        dtype = np.dtype(self.dtype)
        n_dirs = self._n_directions()
        self._layout, self._n_decay = build_layout(
            self.cell, n_features, self._hidden_sizes(), self.n_outputs_, n_dirs
        )
        self._cell = self.cell
        self._directions = n_dirs
        n_params = sum(int(np.prod(shape)) for _, _, shape in self._layout)
        self._flat = np.zeros((4, n_params), dtype=dtype)
        self._adam_t = 0
        forget_bias = None if self.cell == "gru" else self.forget_bias
        width = n_features
        for k, h in enumerate(self._hidden_sizes()):
            seed = self._random_state.randint(np.iinfo(np.int32).max)
            layer = init_params(
                self.cell, width, h, 1, dtype=dtype, random_state=seed,
                forget_bias=forget_bias, bidirectional=n_dirs == 2,
            )
            for name, view in self._layer_views(k).items():
                view[...] = layer[name]
            width = h * n_dirs
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

    def _check_architecture(self, n_features):
        layout, _ = build_layout(
            self.cell, n_features, self._hidden_sizes(), self.n_outputs_,
            self._n_directions(),
        )
        if (
            layout != self._layout
            or self.cell != self._cell
            or np.dtype(self.dtype) != self._flat.dtype
        ):
            raise ValueError(
                "warm_start and partial_fit must keep cell, hidden_layer_sizes, "
                "bidirectional, dtype and the number of outputs of the fitted "
                "model; refit with warm_start=False to change them."
            )

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

    def _optimizer_step(self):
        """Clip the gradient row by its norm, then take one Adam step."""
        param, grad, m, v = self._flat
        if self.max_grad_norm is not None:
            clip_grad_norm(grad, self.max_grad_norm)
        self._adam_t += 1
        adam_step(
            param, grad, m, v, self._adam_t, self.learning_rate_init,
            self.beta_1, self.beta_2, self.epsilon,
        )

    # ------------------------------------------------------------------
    # Inference
    # ------------------------------------------------------------------
    def _after_training(self, train, val):
        """Hook run after the epochs of every fit call, with the same data."""

    def _predict_validation(self, X_val):
        """Raw outputs of the validation inputs built by ``_prepare_fit``."""
        return self._raw_predict_sequences(X_val)

    # ------------------------------------------------------------------
    # Fitting
    # ------------------------------------------------------------------
    def _fit(self, X, y, incremental=False, classes=None, callback=None,
             sample_weight=None):
        """The one fit path of every estimator (see the module docstring)."""
        fitted = self.__sklearn_is_fitted__()
        first_pass = not fitted or (not self.warm_start and not incremental)
        training = False
        try:
            self._hidden_sizes()  # fail early on a bad hidden_layer_sizes
            if self.early_stopping and incremental:
                raise ValueError("partial_fit does not support early_stopping=True")
            # The split comes before the weights: data too small for early
            # stopping must fail before any weights exist.
            # Only an estimator that takes weights gets the keyword.
            weights = {} if sample_weight is None else {"sample_weight": sample_weight}
            n_features, train, val = self._prepare_fit(
                X, y, first_pass, incremental, classes, **weights
            )
            # None means fresh OS entropy rather than numpy's global
            # RandomState, which an estimator must never advance.
            self._random_state = (
                np.random.RandomState()
                if self.random_state is None
                else check_random_state(self.random_state)
            )
            if first_pass:
                self._initialize(n_features)
            else:
                self._check_architecture(n_features)
                if not incremental:
                    # As MLP: a warm-started fit gets a fresh optimizer.
                    self._flat[1:] = 0
                    self._adam_t = 0
            training = True
            self._run_epochs(train, val, incremental, callback)
            self._after_training(train, val)
        except _Diverged as exc:
            self._forget_fit()
            raise TrainingError(
                f"Training diverged: {exc}. No model was kept. {self._divergence_hint}"
            ) from None
        except Exception:
            # No half-updated model may answer predict. Only a partial_fit
            # refused before training touched anything keeps its model.
            if training or not (incremental and fitted):
                self._forget_fit()
            raise
        return self

    def _forget_fit(self):
        """Drop every fitted attribute, so the estimator is unfitted again."""
        for name in list(vars(self)):
            if name not in self._get_param_names():
                delattr(self, name)

    def _batch_size(self, n_items):
        if self.batch_size == "auto":
            return max(1, min(64, n_items))
        return max(1, min(self.batch_size, n_items))

    def _run_epochs(self, train, val, incremental, callback=None):
        # BLAS is limited once here rather than in every kernel call: each
        # limit costs a tenth of a small training step, and the loop's own
        # matrix products (the dense head) are too small to want threads.
        with _single_threaded_blas():
            self._run_epochs_limited(train, val, incremental, callback)

    def _run_epochs_limited(self, train, val, incremental, callback):
        if not self.early_stopping:
            # A held-out block without early stopping (the forecaster's band
            # calibration) is not the loop's business: the loop keeps the
            # weights it trained, and stops on the training loss, as MLP.
            val = None
        budget = self.max_windows_per_epoch
        sampled = budget is not None and train.n_items > budget
        seed = None
        if sampled:
            # Drawn only when the budget binds: a fit within it uses the
            # random state as before, and gives the same model bitwise.
            seed = self._random_state.randint(np.iinfo(np.int32).max)
            batch_size = self._batch_size(budget)
            groups = getattr(train, "groups", None)
            if groups is None:  # one stream, or a batch of sequences
                groups = [train.n_items]
        else:
            batch_size = self._batch_size(train.n_items)
        # Patience starts once the fit has drawn as many windows as one pass
        # over the training windows. Patience is there to stop a network
        # that has begun to fit its training windows rather than the data;
        # a sampled epoch reads a share of them (budget / windows), and
        # until the epochs add up to a pass the network has seen most
        # windows at most once, so a flat held-out score says it has not
        # learned yet, not that it has learned what it can (on a synthetic
        # fleet it is flat for 10-17 epochs, then falls: benchmarks/README,
        # "Patience from one pass over the windows"). Below the budget an
        # epoch is a pass and nothing changes.
        epochs_per_pass = -(-train.n_items // budget) if sampled else 0
        order = np.arange(train.n_items)
        best_params, kept_initial = None, False
        # The best epochs' weights, as (score, epoch, weights), for averaging.
        n_average = self._n_averaged_epochs() if val is not None else 1
        snapshots = []
        # Convergence is judged per fit call (a warm-started fit may see other
        # data); the curves keep growing across calls, as in MLP.
        if self._score_initial_model:
            # None unless this fit call scores the weights it starts from.
            self.initial_validation_score_ = None
        if val is not None:
            if self.validation_scores_ is None:
                self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            if self._score_initial_model:
                initial = self._score_validation(val)
                self.initial_validation_score_ = initial
                # The bar a trained epoch must clear; the initial score is
                # restored below if none does.
                self.best_validation_score_ = (
                    initial + self._initial_model_margin() * abs(initial))
                best_params = self._flat[0].copy()
                kept_initial = True
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
        per_step = getattr(train, "per_step", False)
        start = time.perf_counter()
        try:
            for epoch in range(max_iter):
                n_rows = train.n_rows
                if sampled:
                    # This epoch's windows (``_sampling.py``): a pure function
                    # of the seed, the epoch and the series' sizes.
                    order = epoch_sample(groups, budget, seed, self.n_iter_,
                                         self.shuffle)
                    n_rows = train.n_rows_of(order)
                elif self.shuffle:
                    self._random_state.shuffle(order)
                # A view whose windows live elsewhere (a fleet's, on dask
                # workers) fetches the epoch's items in one go (``_data.py``).
                fetch = getattr(train, "epoch", None)
                view = train if fetch is None else fetch(order)
                total = 0.0
                if train.prefix is not None:
                    total += self._train_step(Minibatch(*train.prefix), per_step=True)
                run = getattr(view, "train_minibatches", None)
                if run is not None:
                    # The view trains the epoch's minibatches itself, each
                    # with _train_step (parameter averaging on dask workers,
                    # ``_averaging.py``).
                    total += run(self, order, batch_size, per_step)
                else:
                    for rows in gen_batches(len(order), batch_size):
                        total += self._train_step(Minibatch(*view.batch(order[rows])),
                                                  per_step)
                self.n_iter_ += 1
                self.t_ += n_rows
                self.loss_curve_.append(total / n_rows)
                improved = self._update_no_improvement_count(val)
                if improved and val is not None:
                    best_params = self._flat[0].copy()
                    kept_initial = False
                if n_average > 1:
                    _keep_best(snapshots, n_average, self.validation_scores_[-1],
                               self.n_iter_, self._flat[0])
                self._end_epoch(val, time.perf_counter() - start, callback)
                if incremental:
                    break
                if (self._no_improvement_count > self.n_iter_no_change
                        and epoch + 1 >= epochs_per_pass):
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
        self._n_averaged = 1
        if best_params is not None:
            self._flat[0] = best_params
            # Against the bar, not the initial score: an average kept over
            # the untrained model must clear the same margin as an epoch.
            averaged = len(snapshots) > 1 and self._average_best_epochs(snapshots, val)
            if kept_initial and not averaged:
                self.best_validation_score_ = initial

    def _average_best_epochs(self, snapshots, val):
        """Serve the mean of the best epochs' weights when it scores best.

        The epoch early stopping keeps is the best of many noisy held-out
        scores, and on a short held-out block that choice is partly chance
        (benchmarks/README.md, "The network earns its place"). The mean of
        the best few epochs' weights, all from one run of the optimizer
        and so in one basin, averages that chance out (stochastic weight
        averaging, Izmailov et al. 2018) and is still one network: predict,
        update, ONNX export and pickling see ordinary weights. It costs one
        more held-out score and is kept only when that score beats both
        the best single epoch and the bar of the untrained model
        (``_initial_model_margin``). ``_n_averaged`` records how many
        epochs the served weights average (1: the best epoch alone).
        Returns True when the mean is kept.
        """
        mean = np.mean([w for _, _, w in snapshots], axis=0, dtype=np.float64)
        best_epoch = self._flat[0].copy()
        self._flat[0] = mean.astype(self._flat.dtype)
        score = self._score_validation(val)
        if score > self.best_validation_score_:
            self.best_validation_score_ = score
            self._n_averaged = len(snapshots)
            return True
        self._flat[0] = best_epoch
        return False

    def _end_epoch(self, val, elapsed, callback):
        """Report an epoch: ``verbose`` printing and the fit's ``callback``."""
        score = None if val is None else float(self.validation_scores_[-1])
        if self.verbose:
            msg = f"Epoch {self.n_iter_}, loss = {self.loss_curve_[-1]:.8f}"
            if score is not None:
                msg += f", validation score = {score:.6f}"
            print(f"{msg}, {elapsed:.2f} s")
        if callback is not None:
            callback(
                {
                    "epoch": self.n_iter_,
                    "max_iter": self.max_iter,
                    "loss": float(self.loss_curve_[-1]),
                    "validation_score": score,
                    "elapsed": elapsed,
                }
            )

    def _train_step(self, mb, per_step=False):
        """Train on one minibatch; return its summed loss for the loss curve.

        One optimizer step, or with truncated BPTT one per segment that has
        targets (see the module docstring). The summed loss is each step's
        mean loss times its number of targets.
        """
        X, Y, W, lengths = mb
        B, T = X.shape[0], X.shape[1]
        k = self._tbptt_length()
        if k is None or k >= T:
            return self._update(X, Y, per_step, sample_weight=W, lengths=lengths)[0]
        ends = None if per_step else (np.full(B, T - 1) if lengths is None else lengths - 1)
        state, total = None, 0.0
        for a in range(0, T, k):
            b = min(T, a + k)
            # The sequences still running in [a, b), and their valid steps there.
            rows = np.arange(B) if lengths is None else np.flatnonzero(lengths > a)
            if rows.size == 0:
                break
            ls = None if lengths is None else np.minimum(lengths[rows] - a, b - a)
            if ls is not None and (ls == b - a).all():
                ls = None
            st = None if state is None else take_state(state, rows)
            Xs = X[rows, a:b]
            if per_step:
                Ws = None if W is None else W[rows, a:b]
                seg_total, final = self._update(Xs, Y[rows, a:b], True, sample_weight=Ws,
                                                lengths=ls, state=st)
            else:
                here = np.flatnonzero((ends[rows] >= a) & (ends[rows] < b))
                if here.size:
                    seg_total, final = self._update(
                        Xs, Y[rows[here]], False,
                        sample_weight=None if W is None else W[rows[here]],
                        lengths=ls, state=st, target_rows=here)
                else:
                    # No target in this segment: carry the state forward only.
                    seg_total = 0.0
                    _, _, final = self._forward_stack(Xs, training=False, lengths=ls,
                                                      state=st, dropout=True,
                                                      return_state=True)
            total += seg_total
            state = put_state(state, rows, final, B)
        return total

    def _update(self, X, Y, per_step, **kw):
        """_loss_grad and one optimizer step: (loss * n_targets, final states)."""
        # A diverging model overflows in the head and the loss; the checks
        # below report that as a TrainingError, numpy's warnings would only
        # come before it.
        with np.errstate(over="ignore", invalid="ignore"):
            loss, final = self._loss_grad(X, Y, per_step=per_step, return_state=True, **kw)
        if loss is None:  # all weights zero: nothing to learn from
            return 0.0, final
        if not np.isfinite(loss):
            raise _Diverged(f"the loss became {loss} in epoch {self.n_iter_ + 1}")
        self._optimizer_step()
        if not np.isfinite(self._flat[0]).all():
            raise _Diverged(f"the weights became non-finite in epoch {self.n_iter_ + 1}")
        lengths = kw.get("lengths")
        if not per_step:
            n = Y.shape[0]
        elif lengths is None:
            n = Y.shape[0] * Y.shape[1]
        else:
            n = int(lengths.sum())
        return loss * n, final

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
        score = self._score_validation(val)
        self.validation_scores_.append(score)
        if score < self.best_validation_score_ + self.tol:
            self._no_improvement_count += 1
        else:
            self._no_improvement_count = 0
        if score > self.best_validation_score_:
            self.best_validation_score_ = score
            return True
        return False

    def _score_validation(self, val):
        X_val, Y_val, *weights = val
        # A stream's validation inputs start with history rows that have no
        # validation target: the targets are the last rows' outputs.
        Z = self._predict_validation(X_val)[-Y_val.shape[0] :]
        if weights and weights[0] is not None:
            return self._validation_score(Z, Y_val, weights[0])
        return self._validation_score(Z, Y_val)

    def __sklearn_is_fitted__(self):
        # A failed fit drops every fitted attribute, so weights make a model.
        return hasattr(self, "_flat")
