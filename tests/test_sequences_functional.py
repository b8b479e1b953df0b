"""Variable-length (packed) batches and bidirectional layers in tsrnn.functional.

Three oracles, as in test_functional.py:
  * torch.nn.LSTM / GRU with ``bidirectional=True`` and
    ``pack_padded_sequence``, live where torch is installed (the committed
    fixture checks the same without torch: test_torch_fixture.py);
  * tests/_reference.py's ``forward_seq`` / ``backward_seq``, which run each
    sequence alone over its valid steps and a reverse direction as the plain
    reference on the flipped sequence: every cell, the peephole included;
  * central finite differences on the kernels (float64).

The padded steps of every input here hold NaN: the kernels must never read
them.
"""
import numpy as np
import pytest

import _reference as ref

CELLS = ("lstm", "gru", "peephole")
TORCH_CELLS = ("lstm", "gru")
# (bidirectional, packed) combinations beyond the plain one test_functional.py covers.
LAYOUTS = [(True, False), (False, True), (True, True)]
LAYOUT_IDS = ["bidirectional", "packed", "bidirectional-packed"]


@pytest.fixture(scope="module")
def F():
    import tsrnn.functional

    return tsrnn.functional


def contract_shapes(cell, D, H, L, bidirectional):
    """torch's names and shapes, written out here rather than taken from F."""
    G = 3 if cell == "gru" else 4
    n_dirs = 2 if bidirectional else 1
    shapes = {}
    for k in range(L):
        for suffix in ("", "_reverse")[:n_dirs]:
            shapes[f"weight_ih_l{k}{suffix}"] = (G * H, D if k == 0 else n_dirs * H)
            shapes[f"weight_hh_l{k}{suffix}"] = (G * H, H)
            shapes[f"bias_ih_l{k}{suffix}"] = (G * H,)
            shapes[f"bias_hh_l{k}{suffix}"] = (G * H,)
            if cell == "peephole":
                for gate in ("ci", "cf", "co"):
                    shapes[f"weight_{gate}_l{k}{suffix}"] = (H,)
    return shapes


class SeqCase:
    """A net, a padded batch with its lengths, an initial state and a linear loss.

    loss = sum(out * R) + sum over final-state parts of (part * S).
    """

    def __init__(self, cell, L, bidirectional, packed, B=6, T=5, D=3, H=4, seed=0):
        rng = np.random.default_rng(seed)
        self.cell = cell
        n_dirs = 2 if bidirectional else 1
        self.params = {k: rng.uniform(-0.5, 0.5, s)
                       for k, s in contract_shapes(cell, D, H, L, bidirectional).items()}
        # Unsorted, with ties, the full length and a length of one.
        self.lengths = (np.resize([T - 2, 1, T, 2, T - 2, 3], B) if packed
                        else np.full(B, T)).astype(np.int64)
        self.x = rng.standard_normal((B, T, D))
        self.pad = np.arange(T)[None, :] >= self.lengths[:, None]
        self.x[self.pad] = np.nan  # never read
        n_parts = 1 if cell == "gru" else 2
        self.state_parts = [0.5 * rng.standard_normal((L * n_dirs, B, H))
                            for _ in range(n_parts)]
        self.R = rng.standard_normal((B, T, n_dirs * H))
        self.S_parts = [rng.standard_normal((L * n_dirs, B, H)) for _ in range(n_parts)]
        self.packed = packed

    def pack(self, parts):
        return parts[0] if self.cell == "gru" else tuple(parts)

    @property
    def state(self):
        return self.pack(self.state_parts)

    @property
    def dstate(self):
        return self.pack(self.S_parts)

    def loss(self, out, state):
        total = np.sum(out * self.R)
        for part, S in zip([state] if self.cell == "gru" else state, self.S_parts):
            total += np.sum(part * S)
        return total


def flat(cell, out, state, dx=None, grads=None, dstate0=None):
    names = ["h"] if cell == "gru" else ["h", "c"]
    res = {"out": np.asarray(out)}
    for name, part in zip(names, [state] if cell == "gru" else state):
        res[f"{name}_n"] = part
    if dx is not None:
        res["dx"] = dx
        res.update({f"grad {k}": v for k, v in grads.items()})
        for name, part in zip(names, [dstate0] if cell == "gru" else dstate0):
            res[f"d{name}0"] = part
    return res


def run_kernel(F, case, dtype=np.float64, **kw):
    params = {k: v.astype(dtype) for k, v in case.params.items()}
    state = case.pack([s.astype(dtype) for s in case.state_parts])
    lengths = case.lengths if case.packed else None
    out, final, cache = F.rnn_forward(case.cell, case.x.astype(dtype), params, state,
                                      lengths=lengths, **kw)
    dstate = case.pack([s.astype(dtype) for s in case.S_parts])
    dx, grads, dstate0 = F.rnn_backward(case.R.astype(dtype), cache, dstate)
    return flat(case.cell, out, final, dx, grads, dstate0)


def run_reference(case):
    out, final, cache = ref.forward_seq(case.cell, case.x, case.params, case.state,
                                        case.lengths)
    dx, grads, dstate0 = ref.backward_seq(case.R, cache, case.dstate)
    return flat(case.cell, out, final, dx, grads, dstate0)


def run_torch(case):
    torch = pytest.importorskip("torch")
    bidirectional = "weight_ih_l0_reverse" in case.params
    L = sum(1 for k in case.params if k.startswith("weight_ih_l") and "reverse" not in k)
    D, H = case.x.shape[2], case.params["weight_hh_l0"].shape[1]
    cls = torch.nn.LSTM if case.cell == "lstm" else torch.nn.GRU
    module = cls(D, H, num_layers=L, batch_first=True, bidirectional=bidirectional).double()
    module.load_state_dict({k: torch.from_numpy(v) for k, v in case.params.items()})
    x = torch.tensor(case.x, requires_grad=True)
    parts = [torch.tensor(s, requires_grad=True) for s in case.state_parts]
    inp = torch.nn.utils.rnn.pack_padded_sequence(
        x, torch.from_numpy(case.lengths), batch_first=True, enforce_sorted=False)
    out, final = module(inp, parts[0] if case.cell == "gru" else tuple(parts))
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True,
                                                    total_length=case.x.shape[1])
    final = [final] if case.cell == "gru" else list(final)
    loss = (out * torch.from_numpy(case.R)).sum()
    for part, S in zip(final, case.S_parts):
        loss = loss + (part * torch.from_numpy(S)).sum()
    loss.backward()
    grads = {k: p.grad.numpy() for k, p in module.named_parameters()}
    dx = np.nan_to_num(x.grad.numpy())  # torch's padded dx: zero
    return flat(case.cell, out.detach().numpy(),
                [f.detach().numpy() for f in final] if case.cell != "gru"
                else final[0].detach().numpy(),
                dx, grads, [p.grad.numpy() for p in parts] if case.cell != "gru"
                else parts[0].grad.numpy())


def assert_close(got, expected, rtol, atol_rel):
    assert sorted(got) == sorted(expected)
    for name in expected:
        e, g = np.asarray(expected[name], np.float64), np.asarray(got[name], np.float64)
        assert g.shape == e.shape, name
        np.testing.assert_allclose(g, e, rtol=rtol, atol=atol_rel * np.abs(e).max(initial=0),
                                   err_msg=name)


def assert_identical(got, expected):
    assert sorted(got) == sorted(expected)
    for name in expected:
        assert np.array_equal(got[name], expected[name], equal_nan=True), name


# ---------------------------------------------------------------------------
# Oracles
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("bidirectional, packed", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", TORCH_CELLS)
def test_matches_torch(F, cell, num_layers, bidirectional, packed):
    case = SeqCase(cell, num_layers, bidirectional, packed, seed=1)
    assert_close(run_kernel(F, case), run_torch(case), rtol=1e-9, atol_rel=1e-12)


@pytest.mark.parametrize("bidirectional, packed", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("cell", TORCH_CELLS)
def test_reference_matches_torch(cell, bidirectional, packed):
    # The composed reference is itself right where torch can say so.
    case = SeqCase(cell, 2, bidirectional, packed, seed=2)
    assert_close(run_reference(case), run_torch(case), rtol=1e-10, atol_rel=1e-12)


@pytest.mark.parametrize("bidirectional, packed", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
def test_matches_reference(F, cell, num_layers, bidirectional, packed):
    case = SeqCase(cell, num_layers, bidirectional, packed, B=11, seed=3)
    assert_close(run_kernel(F, case), run_reference(case), rtol=1e-10, atol_rel=1e-12)


@pytest.mark.parametrize("cell", CELLS)
def test_gradients_match_finite_differences(F, cell):
    # The peephole cell's only check that does not go through the reference;
    # the others ride along (tiny sizes: every entry is perturbed twice).
    case = SeqCase(cell, 2, True, True, B=4, T=4, D=2, H=3, seed=4)

    def loss():
        out, final, _ = F.rnn_forward(cell, case.x, case.params, case.state,
                                      training=False, lengths=case.lengths)
        return case.loss(out, final)

    got = run_kernel(F, case)
    x_valid = np.where(case.pad[..., None], 0.0, case.x)
    case.x = x_valid  # finite differences need finite entries to perturb
    expected = {"dx": ref_numeric(loss, case.x)}
    for k in case.params:
        expected[f"grad {k}"] = ref_numeric(loss, case.params[k])
    for name, part in zip(["h", "c"], case.state_parts):
        expected[f"d{name}0"] = ref_numeric(loss, part)
    got = {k: v for k, v in got.items() if k in expected}
    assert_close(got, expected, rtol=1e-6, atol_rel=1e-7)
    assert np.all(got["dx"][case.pad] == 0)


def ref_numeric(f, arr, eps=1e-6):
    grad = np.zeros_like(arr)
    for idx in np.ndindex(arr.shape):
        old = arr[idx]
        arr[idx] = old + eps
        up = f()
        arr[idx] = old - eps
        down = f()
        arr[idx] = old
        grad[idx] = (up - down) / (2 * eps)
    return grad


@pytest.mark.parametrize("cell", CELLS)
def test_dropout_between_bidirectional_layers_matches_finite_differences(F, cell):
    case = SeqCase(cell, 2, True, True, B=3, T=4, D=2, H=3, seed=5)
    kw = dict(dropout=0.4, random_state=7)
    got = run_kernel(F, case, **kw)
    case.x = np.where(case.pad[..., None], 0.0, case.x)

    def loss():
        out, final, _ = F.rnn_forward(cell, case.x, case.params, case.state,
                                      lengths=case.lengths, **kw)
        return case.loss(out, final)

    expected = {"dx": ref_numeric(loss, case.x)}
    for k in list(case.params)[:8]:  # a layer's worth is enough to see the masks
        expected[f"grad {k}"] = ref_numeric(loss, case.params[k])
    assert_close({k: got[k] for k in expected}, expected, rtol=1e-6, atol_rel=1e-7)


@pytest.mark.parametrize("bidirectional, packed", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("cell", CELLS)
def test_float32_agrees_with_float64(F, cell, bidirectional, packed):
    case = SeqCase(cell, 2, bidirectional, packed, B=9, seed=6)
    r32 = run_kernel(F, case, np.float32)
    assert all(v.dtype == np.float32 for v in r32.values())
    assert_close(r32, run_kernel(F, case), rtol=1e-4, atol_rel=1e-4)


# ---------------------------------------------------------------------------
# Semantics of the lengths
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", CELLS)
def test_padding_is_never_read_and_outputs_zero(F, cell, bidirectional):
    case = SeqCase(cell, 2, bidirectional, True, B=7, seed=8)
    with_nan = run_kernel(F, case)
    case.x = np.where(case.pad[..., None], 1e30, case.x)  # huge, not NaN
    with_huge = run_kernel(F, case)
    assert_identical(with_huge, with_nan)
    assert np.all(with_nan["out"][case.pad] == 0)
    assert np.all(with_nan["dx"][case.pad] == 0)
    assert np.isfinite(with_nan["out"]).all()


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", CELLS)
def test_full_lengths_are_the_unpacked_path(F, cell, bidirectional):
    case = SeqCase(cell, 2, bidirectional, False, seed=9)
    plain = run_kernel(F, case)
    case.packed = True  # lengths all equal to T
    assert_identical(run_kernel(F, case), plain)


@pytest.mark.parametrize("cell", CELLS)
def test_final_state_is_the_state_after_the_last_valid_step(F, cell):
    # Forward direction: each sequence's final state is its output at its
    # last valid step; run alone, unpadded, it gives the same numbers.
    case = SeqCase(cell, 1, False, True, seed=10)
    out, final, _ = F.rnn_forward(cell, case.x, case.params, case.state,
                                  training=False, lengths=case.lengths)
    h = final if cell == "gru" else final[0]
    for b, n in enumerate(case.lengths):
        np.testing.assert_array_equal(h[0, b], out[b, n - 1])
        alone = case.pack([s[:, b:b + 1] for s in case.state_parts])
        o, fin, _ = F.rnn_forward(cell, case.x[b:b + 1, :n], case.params, alone,
                                  training=False)
        np.testing.assert_allclose(o[0], out[b, :n], rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("cell", CELLS)
def test_inference_equals_training_on_both_gate_buffers(F, cell, monkeypatch):
    # Inference keeps gates for all steps or (past _ALL_STEPS_BYTES) for one
    # step, and two slots of c; the outputs must not notice.
    case = SeqCase(cell, 2, True, True, B=13, seed=11)
    train = run_kernel(F, case)
    for limit in (F._ALL_STEPS_BYTES, 0):
        monkeypatch.setattr(F, "_ALL_STEPS_BYTES", limit)
        out, final, cache = F.rnn_forward(cell, case.x, case.params, case.state,
                                          training=False, lengths=case.lengths)
        assert cache is None
        assert_identical(flat(cell, out, final),
                         {k: v for k, v in train.items() if k in ("out", "h_n", "c_n")})


@pytest.mark.parametrize("cell", CELLS)
def test_cache_holds_only_the_valid_steps(F, cell):
    # The kernels compute and store no padded step: the activations of a
    # packed batch scale with the number of valid steps, not with B * T.
    case = SeqCase(cell, 2, True, True, B=12, T=9, seed=12)
    full = F.rnn_forward(cell, np.nan_to_num(case.x), case.params)[2]
    packed = F.rnn_forward(cell, case.x, case.params, lengths=case.lengths)[2]
    assert packed.nbytes * case.lengths.size * 9 == full.nbytes * case.lengths.sum()


def test_dout_none_is_a_loss_on_the_final_state_only(F):
    case = SeqCase("lstm", 2, True, True, seed=13)
    case.R = np.zeros_like(case.R)
    expected = run_kernel(F, case)
    out, final, cache = F.rnn_forward("lstm", case.x, case.params, case.state,
                                      lengths=case.lengths)
    dx, grads, dstate0 = F.rnn_backward(None, cache, case.dstate)
    assert_identical(flat("lstm", out, final, dx, grads, dstate0), expected)


# ---------------------------------------------------------------------------
# Determinism
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch", [1, 17, 37])
@pytest.mark.parametrize("cell", CELLS)
def test_bitwise_identical_for_1_and_2_threads(F, cell, batch, dtype, monkeypatch):
    from threadpoolctl import threadpool_limits
    from tsrnn import _cells

    if not _cells.openmp_enabled():
        pytest.skip("tsrnn was built without OpenMP: nothing to compare")
    monkeypatch.setattr(F, "_SERIAL_WORK", 0)
    case = SeqCase(cell, 2, True, True, B=batch, T=6, H=24, seed=batch)
    runs = []
    for n_threads in (1, 2):
        with threadpool_limits(limits=n_threads, user_api="openmp"):
            assert _cells.max_threads() == n_threads
            runs.append(run_kernel(F, case, dtype, dropout=0.3, random_state=0))
    assert_identical(runs[1], runs[0])


@pytest.mark.parametrize("cell", CELLS)
def test_bitwise_identical_for_any_chunk_size(F, cell, monkeypatch):
    # Chunks cut across the sorted lengths differently for each size.
    case = SeqCase(cell, 2, True, True, B=53, T=6, H=24, seed=3)
    runs = []
    for chunk in (8, 16, 40, 64):
        monkeypatch.setattr(F, "_threading", lambda batch, work, chunk=chunk: (2, chunk))
        runs.append(run_kernel(F, case, np.float32))
    for run in runs[1:]:
        assert_identical(run, runs[0])


def test_weight_gradient_blocks_split_inside_a_step(F, monkeypatch):
    # 2048-row k blocks of the weight-gradient GEMM that end in the middle of
    # a packed step, and a peephole sum over the same blocks.
    from threadpoolctl import threadpool_limits

    monkeypatch.setattr(F, "_SERIAL_WORK", 0)
    case = SeqCase("peephole", 1, True, True, B=111, T=40, D=3, H=20, seed=14)
    assert 2048 < case.lengths.sum()
    expected = run_reference(case)
    runs = []
    for n_threads in (1, 2):
        with threadpool_limits(limits=n_threads, user_api="openmp"):
            runs.append(run_kernel(F, case))
    assert_close(runs[0], expected, rtol=1e-9, atol_rel=1e-11)
    assert_identical(runs[1], runs[0])


# ---------------------------------------------------------------------------
# Parameters and validation
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", TORCH_CELLS)
def test_init_params_bidirectional_names_match_torch(F, cell, num_layers):
    torch = pytest.importorskip("torch")
    cls = torch.nn.LSTM if cell == "lstm" else torch.nn.GRU
    module = cls(3, 5, num_layers=num_layers, bidirectional=True)
    params = F.init_params(cell, 3, 5, num_layers, bidirectional=True)
    assert list(params) == list(module.state_dict())
    assert {k: v.shape for k, v in params.items()} == {
        k: tuple(v.shape) for k, v in module.state_dict().items()}


def test_init_params_bidirectional_keeps_the_forward_draws_and_forget_bias(F):
    one = F.init_params("lstm", 3, 5, random_state=0)
    both = F.init_params("lstm", 3, 5, random_state=0, bidirectional=True, forget_bias=1.0)
    assert np.array_equal(both["weight_ih_l0"], one["weight_ih_l0"])
    for suffix in ("", "_reverse"):
        assert np.all(both[f"bias_ih_l0{suffix}"][5:10] == 1.0)
        assert np.all(both[f"bias_hh_l0{suffix}"][5:10] == 0.0)


BAD_LENGTHS = [
    (np.array([2.0, 3.0, 1.0]), TypeError, "lengths must hold integers"),
    (np.array([2, 3]), ValueError, r"lengths has shape \(2,\), expected \(batch,\) = \(3,\)"),
    (np.array([2, 0, 1]), ValueError, r"lengths\[1\] = 0, but every length must be between 1"),
    (np.array([2, 5, 1]), ValueError, r"lengths\[1\] = 5, .* between 1 and the number of time "
                                      r"steps of x, 4"),
]


@pytest.mark.parametrize("lengths, exc, match", BAD_LENGTHS)
def test_bad_lengths_raise(F, lengths, exc, match):
    params = F.init_params("gru", 2, 3)
    with pytest.raises(exc, match=match):
        F.rnn_forward("gru", np.zeros((3, 4, 2)), params, lengths=lengths)


def test_nan_inside_a_length_raises(F):
    params = F.init_params("lstm", 2, 3)
    x = np.zeros((3, 4, 2))
    x[1, 3] = np.nan  # past length 3 of sequence 1: fine
    F.rnn_forward("lstm", x, params, lengths=[4, 3, 2])
    x[1, 2] = np.nan
    with pytest.raises(ValueError, match="x contains NaN or inf within the sequence lengths"):
        F.rnn_forward("lstm", x, params, lengths=[4, 3, 2])


def test_bidirectional_state_and_dout_shapes_are_checked(F):
    params = F.init_params("lstm", 2, 3, num_layers=2, bidirectional=True)
    x = np.zeros((5, 4, 2))
    h = np.zeros((2, 5, 3))
    with pytest.raises(ValueError, match=r"expected \(num_layers \* num_directions, batch, "
                                         r"hidden\) = \(4, 5, 3\)"):
        F.rnn_forward("lstm", x, params, (h, h))
    out, (h_n, c_n), cache = F.rnn_forward("lstm", x, params)
    assert out.shape == (5, 4, 6) and h_n.shape == c_n.shape == (4, 5, 3)
    with pytest.raises(ValueError, match=r"dout has shape \(5, 4, 3\), expected .* = \(5, 4, 6\)"):
        F.rnn_backward(np.zeros((5, 4, 3)), cache)


def test_half_a_bidirectional_layer_is_refused(F):
    params = F.init_params("gru", 2, 3, bidirectional=True)
    del params["bias_hh_l0_reverse"]
    with pytest.raises(ValueError, match="bidirectional gru is missing \\['bias_hh_l0_reverse'\\]"):
        F.rnn_forward("gru", np.zeros((1, 2, 2)), params)
