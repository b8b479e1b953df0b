"""Write tests/data/torch_fixture.npz: torch's answers for the weight contract.

tsrnn promises torch's parameter names, shapes and gate order (LSTM i, f, g, o;
GRU r, z, n with the reset gate applied to W_hn h + b_hn). With torch installed
tests/test_functional.py checks that live; this fixture lets the default
suite check it on machines without torch (tests/test_torch_fixture.py).

For each cell (lstm, gru) and depth (1, 2 layers) it stores, in float64:
the weights, an input x, an initial state, the weights of a fixed random
linear loss, and what torch computed from them: the output, the final state,
dx, the gradient of the initial state and every parameter gradient.

    loss = sum(out * R) + sum(h_n * S_h) [+ sum(c_n * S_c)]

Keys are "<cell>_l<layers>/<name>", e.g. "lstm_l2/weight_hh_l1",
"gru_l1/grad_bias_hh_l0", "lstm_l1/out". Two more variants of every case
(issue 14) have the suffixes "_bi" (bidirectional=True: the "_reverse"
weights, outputs of width 2H, states of 2 * layers) and "_bi_packed" (the
same, on a batch of variable-length sequences through pack_padded_sequence:
"lengths" holds them, x is NaN past them, "out" is zero-padded as
pad_packed_sequence returns it, and "dx" is zero there). Run it from anywhere
with torch installed; it overwrites the file next to it:

    python tests/data/make_torch_fixture.py
"""
import os

import numpy as np
import torch

B, T, D, H = 3, 5, 4, 5
# Larger than torch's default 1/sqrt(H) init, so that the gates leave their
# linear range and a wrong nonlinearity or gate order shows clearly.
SCALE = 0.5
HERE = os.path.dirname(os.path.abspath(__file__))


# Unsorted, with the full length and a length of one.
LENGTHS = np.array([3, 5, 1])


def case(cell, num_layers, seed, bidirectional=False, packed=False):
    rng = np.random.default_rng(seed)
    cls = torch.nn.LSTM if cell == "lstm" else torch.nn.GRU
    mod = cls(D, H, num_layers=num_layers, batch_first=True,
              bidirectional=bidirectional).double()
    params = {k: rng.uniform(-SCALE, SCALE, tuple(v.shape)) for k, v in mod.state_dict().items()}
    mod.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})
    n_parts = 2 if cell == "lstm" else 1
    n_dirs = 2 if bidirectional else 1
    x = rng.standard_normal((B, T, D))
    if packed:
        x[np.arange(T)[None, :] >= LENGTHS[:, None]] = np.nan
    state = [0.5 * rng.standard_normal((num_layers * n_dirs, B, H)) for _ in range(n_parts)]
    R = rng.standard_normal((B, T, n_dirs * H))
    S = [rng.standard_normal((num_layers * n_dirs, B, H)) for _ in range(n_parts)]

    xt = torch.tensor(x, requires_grad=True)
    st = [torch.tensor(s, requires_grad=True) for s in state]
    inp = xt
    if packed:
        inp = torch.nn.utils.rnn.pack_padded_sequence(
            xt, torch.from_numpy(LENGTHS), batch_first=True, enforce_sorted=False)
    out, final = mod(inp, tuple(st) if cell == "lstm" else st[0])
    if packed:
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)
    final = list(final) if cell == "lstm" else [final]
    loss = (out * torch.from_numpy(R)).sum()
    for part, s in zip(final, S):
        loss = loss + (part * torch.from_numpy(s)).sum()
    loss.backward()

    names = ["h", "c"][:n_parts]
    res = dict(params)
    res.update(x=x, R=R, out=out.detach().numpy(), dx=np.nan_to_num(xt.grad.numpy()))
    if packed:
        res["lengths"] = LENGTHS
    for name, s0, s_loss, part, t0 in zip(names, state, S, final, st):
        res[f"{name}0"] = s0
        res[f"S_{name}"] = s_loss
        res[f"{name}_n"] = part.detach().numpy()
        res[f"d{name}0"] = t0.grad.numpy()
    for k, p in mod.named_parameters():
        res[f"grad_{k}"] = p.grad.numpy()
    return res


def main():
    torch.manual_seed(0)
    arrays = {}
    seed = 0
    for cell in ("lstm", "gru"):
        for num_layers in (1, 2):
            for k, v in case(cell, num_layers, seed).items():
                arrays[f"{cell}_l{num_layers}/{k}"] = np.ascontiguousarray(v, dtype=np.float64)
            seed += 1
    # Issue 14's variants come after, with seeds of their own, so the cases
    # above keep their arrays.
    for tag, packed in (("bi", False), ("bi_packed", True)):
        for cell in ("lstm", "gru"):
            for num_layers in (1, 2):
                for k, v in case(cell, num_layers, seed, True, packed).items():
                    dtype = np.int64 if k == "lengths" else np.float64
                    arrays[f"{cell}_l{num_layers}_{tag}/{k}"] = np.ascontiguousarray(v, dtype)
                seed += 1
    arrays["torch_version"] = np.array(torch.__version__)
    path = os.path.join(HERE, "torch_fixture.npz")
    np.savez_compressed(path, **arrays)
    print(f"wrote {path}: {len(arrays)} arrays, {os.path.getsize(path)} bytes, torch {torch.__version__}")


if __name__ == "__main__":
    main()
