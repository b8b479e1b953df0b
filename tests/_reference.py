"""Plain NumPy forward/backward for the three tsrnn cells: the test oracle.

Speed does not matter here, readability does: one Python loop over time, one
function per cell step, and a comment on every chain-rule line saying which
forward line it differentiates. Everything is computed in float64 whatever the
dtype of the inputs, so the comparisons against the Cython kernels measure the
kernels' rounding, not ours.

The interface mirrors tsrnn.functional (same params dict, same state layout),
so a test can call both with the same arguments:

    out, state, cache = forward(cell, x, params, state=None, masks=None)
    dx, grads, dstate = backward(dout, cache, dstate=None)

Dropout is the one difference: the reference cannot reproduce the kernel's
random draws, so it takes the masks themselves. ``masks[k]`` (B, T, H) multiplies
the output of layer k before it enters layer k+1 and already contains the
1/(1-p) scaling.

Shapes: B batch, T time, D input size, H hidden size, G gates (4 or 3).
"""
import numpy as np

CELLS = ("lstm", "gru", "peephole")
N_GATES = {"lstm": 4, "peephole": 4, "gru": 3}


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def num_layers_of(params):
    return sum(1 for k in params if k.startswith("weight_ih_l"))


def layer_params(params, k):
    """The float64 arrays of layer k, under short names."""
    names = ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    if f"weight_ci_l{k}" in params:
        names += ["weight_ci", "weight_cf", "weight_co"]
    return {n: np.asarray(params[f"{n}_l{k}"], dtype=np.float64) for n in names}


# --------------------------------------------------------------------------
# LSTM and peephole LSTM: one time step
# --------------------------------------------------------------------------

def lstm_step(x, h, c, p, peephole):
    H = h.shape[1]
    a = x @ p["weight_ih"].T + p["bias_ih"] + h @ p["weight_hh"].T + p["bias_hh"]
    a_i, a_f, a_g, a_o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
    if peephole:
        # Graves' peepholes: input and forget gates look at the old cell...
        a_i = a_i + p["weight_ci"] * c
        a_f = a_f + p["weight_cf"] * c
    i = sigmoid(a_i)
    f = sigmoid(a_f)
    g = np.tanh(a_g)
    c_new = f * c + i * g
    if peephole:
        # ...and the output gate looks at the new one.
        a_o = a_o + p["weight_co"] * c_new
    o = sigmoid(a_o)
    tc = np.tanh(c_new)
    h_new = o * tc
    cache = (x, h, c, i, f, g, o, c_new, tc)
    return h_new, c_new, cache


def lstm_step_backward(dh_new, dc_new, cache, p, grads, peephole):
    """Gradients of one step. dh_new/dc_new are the total gradients reaching
    h_new/c_new (from the output, the next step and the layer above).
    Accumulates parameter gradients into ``grads``; returns dx, dh, dc."""
    x, h, c, i, f, g, o, c_new, tc = cache
    do = dh_new * tc                            # h_new = o * tc
    dc_new = dc_new + dh_new * o * (1 - tc**2)  # h_new = o * tanh(c_new)
    da_o = do * o * (1 - o)                     # o = sigmoid(a_o)
    if peephole:
        dc_new = dc_new + da_o * p["weight_co"]  # a_o += w_co * c_new
        grads["weight_co"] += (da_o * c_new).sum(0)
    di = dc_new * g                             # c_new = f*c + i*g
    dg = dc_new * i                             # c_new = f*c + i*g
    df = dc_new * c                             # c_new = f*c + i*g
    dc = dc_new * f                             # c_new = f*c + i*g
    da_i = di * i * (1 - i)                     # i = sigmoid(a_i)
    da_f = df * f * (1 - f)                     # f = sigmoid(a_f)
    da_g = dg * (1 - g**2)                      # g = tanh(a_g)
    if peephole:
        dc = dc + da_i * p["weight_ci"] + da_f * p["weight_cf"]  # a_i += w_ci*c, a_f += w_cf*c
        grads["weight_ci"] += (da_i * c).sum(0)
        grads["weight_cf"] += (da_f * c).sum(0)
    da = np.concatenate([da_i, da_f, da_g, da_o], axis=1)  # gate order i, f, g, o
    grads["weight_ih"] += da.T @ x              # a = W_ih x + ...
    grads["weight_hh"] += da.T @ h              # a = ... + W_hh h + ...
    grads["bias_ih"] += da.sum(0)               # both biases enter a unchanged
    grads["bias_hh"] += da.sum(0)
    dx = da @ p["weight_ih"]                    # a = W_ih x + ...
    dh = da @ p["weight_hh"]                    # a = ... + W_hh h + ...
    return dx, dh, dc


# --------------------------------------------------------------------------
# GRU (torch.nn.GRU's variant: r multiplies W_hn h + b_hn): one time step
# --------------------------------------------------------------------------

def gru_step(x, h, p):
    H = h.shape[1]
    gi = x @ p["weight_ih"].T + p["bias_ih"]   # input part, gates r, z, n
    gh = h @ p["weight_hh"].T + p["bias_hh"]   # hidden part, kept apart for n
    r = sigmoid(gi[:, :H] + gh[:, :H])
    z = sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
    gh_n = gh[:, 2 * H:]
    n = np.tanh(gi[:, 2 * H:] + r * gh_n)
    h_new = (1 - z) * n + z * h
    cache = (x, h, r, z, n, gh_n)
    return h_new, cache


def gru_step_backward(dh_new, cache, p, grads):
    x, h, r, z, n, gh_n = cache
    dn = dh_new * (1 - z)                       # h_new = (1-z)*n + z*h
    dz = dh_new * (h - n)                       # h_new = n + z*(h - n)
    dh = dh_new * z                             # direct path h -> h_new
    da_n = dn * (1 - n**2)                      # n = tanh(a_n)
    dgh_n = da_n * r                            # a_n = gi_n + r * gh_n
    dr = da_n * gh_n                            # a_n = gi_n + r * gh_n
    da_r = dr * r * (1 - r)                     # r = sigmoid(gi_r + gh_r)
    da_z = dz * z * (1 - z)                     # z = sigmoid(gi_z + gh_z)
    dgi = np.concatenate([da_r, da_z, da_n], axis=1)   # gi_n enters a_n unscaled
    dgh = np.concatenate([da_r, da_z, dgh_n], axis=1)  # gh_n is scaled by r
    grads["weight_ih"] += dgi.T @ x             # gi = W_ih x + b_ih
    grads["bias_ih"] += dgi.sum(0)
    grads["weight_hh"] += dgh.T @ h             # gh = W_hh h + b_hh
    grads["bias_hh"] += dgh.sum(0)
    dx = dgi @ p["weight_ih"]                   # gi = W_ih x + b_ih
    dh = dh + dgh @ p["weight_hh"]              # gh = W_hh h + b_hh
    return dx, dh


# --------------------------------------------------------------------------
# Whole network: layers stacked, time unrolled
# --------------------------------------------------------------------------

def forward(cell, x, params, state=None, masks=None):
    if cell not in CELLS:
        raise ValueError(f"unknown cell {cell!r}")
    has_c = cell != "gru"
    L = num_layers_of(params)
    x = np.asarray(x, dtype=np.float64)
    B, T, _ = x.shape
    H = np.asarray(params["weight_hh_l0"]).shape[1]
    if state is None:
        h0 = np.zeros((L, B, H))
        c0 = np.zeros((L, B, H))
    elif has_c:
        h0, c0 = (np.asarray(s, dtype=np.float64) for s in state)
    else:
        h0, c0 = np.asarray(state, dtype=np.float64), None

    layer_in = x
    h_final, c_final, caches = [], [], []
    for k in range(L):
        p = layer_params(params, k)
        h = h0[k]
        c = c0[k] if has_c else None
        outs, step_caches = [], []
        for t in range(T):
            if has_c:
                h, c, sc = lstm_step(layer_in[:, t], h, c, p, cell == "peephole")
            else:
                h, sc = gru_step(layer_in[:, t], h, p)
            outs.append(h)
            step_caches.append(sc)
        h_final.append(h)
        c_final.append(c)
        caches.append((p, step_caches))
        layer_out = np.stack(outs, axis=1)
        if k < L - 1 and masks is not None:
            layer_out = layer_out * masks[k]   # dropout between layers only
        layer_in = layer_out

    state_out = (np.stack(h_final), np.stack(c_final)) if has_c else np.stack(h_final)
    cache = {"cell": cell, "caches": caches, "masks": masks, "shape": (B, T, H)}
    return layer_in, state_out, cache


def backward(dout, cache, dstate=None):
    cell = cache["cell"]
    has_c = cell != "gru"
    caches, masks = cache["caches"], cache["masks"]
    B, T, H = cache["shape"]
    L = len(caches)
    if dout is None:
        dout = np.zeros((B, T, H))
    if dstate is None:
        dhT, dcT = np.zeros((L, B, H)), np.zeros((L, B, H))
    elif has_c:
        dhT, dcT = (np.asarray(d, dtype=np.float64) for d in dstate)
    else:
        dhT, dcT = np.asarray(dstate, dtype=np.float64), None

    grads = {}
    dh0 = np.zeros((L, B, H))
    dc0 = np.zeros((L, B, H))
    d_layer_out = np.asarray(dout, dtype=np.float64)
    for k in reversed(range(L)):
        p, step_caches = caches[k]
        g = {name: np.zeros_like(v) for name, v in p.items()}
        if k < L - 1 and masks is not None:
            d_layer_out = d_layer_out * masks[k]   # layer_out * mask
        dh = dhT[k].copy()                          # h_T is also the final state
        dc = dcT[k].copy() if has_c else None
        d_in = [None] * T
        for t in reversed(range(T)):
            dh = dh + d_layer_out[:, t]             # h_t feeds the output and step t+1
            if has_c:
                d_in[t], dh, dc = lstm_step_backward(
                    dh, dc, step_caches[t], p, g, cell == "peephole")
            else:
                d_in[t], dh = gru_step_backward(dh, step_caches[t], p, g)
        dh0[k] = dh
        if has_c:
            dc0[k] = dc
        for name, v in g.items():
            grads[f"{name}_l{k}"] = v
        d_layer_out = np.stack(d_in, axis=1)        # becomes the layer below's dout

    dstate0 = (dh0, dc0) if has_c else dh0
    return d_layer_out, grads, dstate0


# --------------------------------------------------------------------------
# Variable lengths and bidirectional layers, composed from the above
# --------------------------------------------------------------------------
#
# No new equations: each sequence runs alone over its own valid steps, and a
# reverse direction is the forward code on the time-flipped sequence, its
# output flipped back (torch's semantics for packed and bidirectional
# layers). Padded steps output zeros; dx there is zero.

def _direction_params(params, k, suffix):
    """Layer k's arrays of one direction, named as a one-layer net (_l0)."""
    tail = f"_l{k}{suffix}"
    return {name[: -len(tail)] + "_l0": v for name, v in params.items()
            if name.endswith(tail) and (suffix or not name.endswith("_reverse"))}


def forward_seq(cell, x, params, state=None, lengths=None):
    """forward() with optional lengths (B,) and bidirectional params."""
    has_c = cell != "gru"
    x = np.asarray(x, dtype=np.float64)
    B, T, _ = x.shape
    H = np.asarray(params["weight_hh_l0"]).shape[1]
    dirs = ("", "_reverse") if "weight_ih_l0_reverse" in params else ("",)
    L = num_layers_of(params) // len(dirs)
    n_states = L * len(dirs)
    lengths = np.full(B, T) if lengths is None else np.asarray(lengths)
    if state is None:
        state = [np.zeros((n_states, B, H))] * (2 if has_c else 1)
    parts = [np.asarray(s, dtype=np.float64) for s in (state if has_c else [state])]
    out = np.zeros((B, T, H * len(dirs)))
    finals = [np.zeros((n_states, B, H)) for _ in parts]
    caches = []
    for b in range(B):
        n = int(lengths[b])
        inp = x[b:b + 1, :n]
        seq_caches = []
        for k in range(L):
            outs = []
            for d, suffix in enumerate(dirs):
                i = k * len(dirs) + d
                p = _direction_params(params, k, suffix)
                s0 = [part[i:i + 1, b:b + 1] for part in parts]
                seq = inp[:, ::-1] if suffix else inp
                o, st, c = forward(cell, seq, p, tuple(s0) if has_c else s0[0])
                outs.append(o[:, ::-1] if suffix else o)
                for f, s in zip(finals, st if has_c else [st]):
                    f[i, b] = s[0, 0]
                seq_caches.append(c)
            inp = np.concatenate(outs, axis=2)
        out[b, :n] = inp[0]
        caches.append(seq_caches)
    cache = {"cell": cell, "caches": caches, "lengths": lengths, "dirs": dirs,
             "shape": (B, T, H), "L": L, "D": x.shape[2]}
    return out, (tuple(finals) if has_c else finals[0]), cache


def backward_seq(dout, cache, dstate=None):
    """backward() for forward_seq."""
    cell, dirs, L = cache["cell"], cache["dirs"], cache["L"]
    has_c = cell != "gru"
    B, T, H = cache["shape"]
    nd = len(dirs)
    if dstate is None:
        dstate = [np.zeros((L * nd, B, H))] * (2 if has_c else 1)
    dparts = [np.asarray(s, dtype=np.float64) for s in (dstate if has_c else [dstate])]
    dx = np.zeros((B, T, cache["D"]))
    d0 = [np.zeros_like(p) for p in dparts]
    grads = {}
    for b in range(B):
        n = int(cache["lengths"][b])
        d_layer = np.asarray(dout, dtype=np.float64)[b:b + 1, :n]
        for k in reversed(range(L)):
            d_in = 0
            for d, suffix in enumerate(dirs):
                i = k * nd + d
                part = d_layer[:, :, d * H:(d + 1) * H]
                ds = [p[i:i + 1, b:b + 1] for p in dparts]
                g_in, g, g0 = backward(part[:, ::-1] if suffix else part,
                                       cache["caches"][b][i], tuple(ds) if has_c else ds[0])
                d_in = d_in + (g_in[:, ::-1] if suffix else g_in)
                for name, v in g.items():
                    key = name[:-3] + f"_l{k}{suffix}"
                    grads[key] = grads.get(key, 0) + v
                for acc, v in zip(d0, g0 if has_c else [g0]):
                    acc[i, b] = v[0, 0]
            d_layer = d_in
        dx[b, :n] = d_layer[0]
    return dx, grads, (tuple(d0) if has_c else d0[0])
