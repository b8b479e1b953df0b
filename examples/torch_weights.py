"""Train an LSTM in PyTorch, then run it with tsrnn, without torch
===============================================================

tsrnn's weights have exactly the names, shapes and gate order of
``torch.nn.LSTM`` / ``torch.nn.GRU``, so a state_dict moves across with no
conversion:

* ``tsrnn.functional.rnn_forward`` takes ``{k: v.numpy() for k, v in
  lstm.state_dict().items()}`` as its ``params``;
* an ``RNNRegressor`` takes the LSTM's state_dict plus an ``nn.Linear`` head
  (keys ``head.weight`` and ``head.bias``) through ``load_state_dict``, and is
  then an ordinary scikit-learn estimator: ``predict``, ``score``, pickling,
  or ``warm_start`` fine-tuning.

The script checks that both give torch's outputs to float32 rounding.

Needs PyTorch (``pip install torch``); the test suite skips it without torch.

Run it::

    python examples/torch_weights.py           # under a minute
    python examples/torch_weights.py --quick   # fewer torch training steps
"""
import argparse
import sys
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import r2_score

from tsrnn import RNNRegressor
from tsrnn.functional import rnn_forward

try:
    import torch
except ImportError:
    sys.exit("This example needs PyTorch: pip install torch")

WINDOW, HIDDEN, LAYERS = 20, 16, 2


def make_stream(n_rows, seed=0):
    """Two noisy sensors; the target is the first sensor 5 steps later."""
    rng = np.random.RandomState(seed)
    t = np.arange(n_rows + 5)
    signal = np.sin(0.07 * t) + 0.5 * np.sin(0.23 * t)
    sensors = np.c_[signal, np.cos(0.07 * t)] + 0.05 * rng.normal(size=(len(t), 2))
    return sensors[:n_rows].astype(np.float32), signal[5:].astype(np.float32)


def windows(X):
    """(n_rows, F) stream -> (n_rows - WINDOW + 1, WINDOW, F) full windows."""
    return np.lib.stride_tricks.sliding_window_view(X, WINDOW, axis=0).transpose(0, 2, 1)


def train_in_torch(X, y, steps):
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(X.shape[1], HIDDEN, num_layers=LAYERS, batch_first=True)
    head = torch.nn.Linear(HIDDEN, 1)
    optimizer = torch.optim.Adam([*lstm.parameters(), *head.parameters()], lr=0.01)
    inputs = torch.from_numpy(np.ascontiguousarray(windows(X)))
    targets = torch.from_numpy(y[WINDOW - 1:]).unsqueeze(1)
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        batch = torch.randint(len(inputs), (64,), generator=generator)
        out, _ = lstm(inputs[batch])
        loss = torch.nn.functional.mse_loss(head(out[:, -1]), targets[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    print(f"torch: {steps} Adam steps, last minibatch MSE {loss.item():.4f}")
    return lstm, head


def main(quick=False):
    X, y = make_stream(600)
    lstm, head = train_in_torch(X, y, steps=20 if quick else 300)
    x = np.ascontiguousarray(windows(X))  # (n_windows, WINDOW, 2), batch first
    with torch.no_grad():
        out_torch, (h_torch, _) = lstm(torch.from_numpy(x))
        pred_torch = head(out_torch[:, -1]).numpy().ravel()

    # 1. The functional API: the state_dict is the params dict.
    params = {k: v.numpy() for k, v in lstm.state_dict().items()}
    out, (h, c), _ = rnn_forward("lstm", x, params, training=False)
    diff_out = np.abs(out - out_torch.numpy()).max()
    diff_h = np.abs(h - h_torch.numpy()).max()
    print(f"functional.rnn_forward vs torch: max |diff| {diff_out:.1e} (outputs), "
          f"{diff_h:.1e} (final h)")

    # 2. A scikit-learn estimator with the torch weights. fit with max_iter=1
    # on a few rows only sets up the shapes; load_state_dict then replaces
    # every weight.
    model = RNNRegressor(hidden_layer_sizes=[HIDDEN] * LAYERS, window=WINDOW,
                         max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # one epoch, on purpose
        model.fit(X[:WINDOW], y[:WINDOW])
    state = dict(lstm.state_dict())
    state.update({f"head.{k}": v for k, v in head.state_dict().items()})
    model.load_state_dict(state)
    # Row i of a stream is predicted from the WINDOW rows ending at it, the
    # same window torch saw; the first WINDOW - 1 rows have shorter history.
    pred = model.predict(X)[WINDOW - 1:]
    diff_pred = np.abs(pred - pred_torch).max()
    print(f"RNNRegressor.predict vs torch: max |diff| {diff_pred:.1e}; "
          f"R^2 of the full windows {r2_score(y[WINDOW - 1:], pred):.3f}")
    return diff_out, diff_h, diff_pred


if __name__ == "__main__":
    # sphinx-gallery runs the script without its docstring.
    parser = argparse.ArgumentParser(description=(__doc__ or " ").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings, for smoke tests")
    main(parser.parse_args().quick)
