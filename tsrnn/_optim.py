"""Adam and gradient clipping over one flat parameter vector.

The estimators keep parameters, gradients and Adam's two moment estimates as
the four rows of one buffer (see ``_weights.py``), so the optimizer works on
whole rows: one vectorised update per minibatch whatever the number of
layers. This plays the part of scikit-learn's ``_stochastic_optimizers.py``
for the MLP; the update is the same (Kingma & Ba 2015, with the bias
correction folded into the step size).
"""

import numpy as np


def clip_grad_norm(grad, max_norm):
    """Rescale ``grad`` in place to a Euclidean norm of at most ``max_norm``.

    The norm is summed by NumPy's pairwise summation rather than a threaded
    BLAS dot, so it has the same bits for any number of threads.
    """
    norm = float(np.sqrt(np.sum(grad * grad, dtype=np.float64)))
    if norm > max_norm:
        grad *= max_norm / norm
    return norm


def adam_step(param, grad, m, v, t, learning_rate, beta_1, beta_2, epsilon):
    """One Adam update of ``param`` in place; ``t`` counts steps from 1.

    ``m`` and ``v`` are the running first and second moment estimates and
    are updated in place too.
    """
    m *= beta_1
    m += (1 - beta_1) * grad
    v *= beta_2
    v += (1 - beta_2) * grad * grad
    step = learning_rate * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
    param -= (step * m / (np.sqrt(v) + epsilon)).astype(param.dtype, copy=False)
