"""Tests of the Cython kernels through tsrnn.functional.

Three independent oracles check the kernels:
  * tests/_reference.py, a plain NumPy forward/backward (all three cells);
  * torch.nn.LSTM / torch.nn.GRU with autograd, when torch is installed;
  * central finite differences on the kernels themselves (float64).
The reference is itself checked against torch and against finite differences,
so a bug has to fool two of them at once to go unnoticed.

Every comparison runs on one flat dict of results per call (out, final state,
dx, each parameter gradient, initial-state gradients), built by run_kernel /
run_reference / run_torch, so each test names exactly the entry that failed.

Sizes are kept tiny on purpose: the finite-difference tests perturb every
parameter entry, and the whole file should run in well under a minute.
"""
import numpy as np
import pytest

import _reference as ref

CELLS = ("lstm", "gru", "peephole")
TORCH_CELLS = ("lstm", "gru")  # torch has no peephole LSTM


@pytest.fixture(scope="module")
def F():
    # Imported here rather than at the top so that the reference-vs-torch tests
    # still run while the extension is unbuilt. A missing or broken build is an
    # error in every test that needs it, never a skip.
    import tsrnn.functional

    return tsrnn.functional


# ---------------------------------------------------------------------------
# Building test cases
# ---------------------------------------------------------------------------

def contract_shapes(cell, input_size, hidden_size, num_layers):
    """The parameter names and shapes promised by the API (torch's layout)."""
    G = 3 if cell == "gru" else 4
    H = hidden_size
    shapes = {}
    for k in range(num_layers):
        Dk = input_size if k == 0 else H
        shapes[f"weight_ih_l{k}"] = (G * H, Dk)
        shapes[f"weight_hh_l{k}"] = (G * H, H)
        shapes[f"bias_ih_l{k}"] = (G * H,)
        shapes[f"bias_hh_l{k}"] = (G * H,)
        if cell == "peephole":
            for gate in ("ci", "cf", "co"):
                shapes[f"weight_{gate}_l{k}"] = (H,)
    return shapes


def random_params(cell, D, H, L, rng, scale=0.5):
    # Deliberately not F.init_params: the oracle comparisons must not depend on
    # the code under test. The scale is larger than torch's 1/sqrt(H) so the
    # gates leave their linear range and the nonlinearities really get tested.
    return {k: rng.uniform(-scale, scale, s) for k, s in contract_shapes(cell, D, H, L).items()}


class Case:
    """One network plus input, initial state and loss weights, in float64.

    The loss is sum(out * R) + sum over final-state parts of (part * S), so
    dout = R and dstate = S exactly.
    """

    def __init__(self, cell, num_layers, B=3, T=4, D=3, H=4, seed=0):
        rng = np.random.default_rng(seed)
        self.cell, self.L, self.B, self.T, self.D, self.H = cell, num_layers, B, T, D, H
        self.params = random_params(cell, D, H, num_layers, rng)
        self.x = rng.standard_normal((B, T, D))
        n_parts = 1 if cell == "gru" else 2
        self.state_parts = [0.5 * rng.standard_normal((num_layers, B, H)) for _ in range(n_parts)]
        self.R = rng.standard_normal((B, T, H))
        self.S_parts = [rng.standard_normal((num_layers, B, H)) for _ in range(n_parts)]

    @property
    def state(self):
        return pack_state(self.cell, self.state_parts)

    @property
    def dstate(self):
        return pack_state(self.cell, self.S_parts)

    def loss(self, out, state):
        total = np.sum(out * self.R)
        for part, S in zip(unpack_state(self.cell, state), self.S_parts):
            total += np.sum(part * S)
        return total


def pack_state(cell, parts):
    return parts[0] if cell == "gru" else tuple(parts)


def unpack_state(cell, state):
    return [state] if cell == "gru" else list(state)


def state_names(cell):
    return ["h"] if cell == "gru" else ["h", "c"]


def flatten(cell, out, state, dx, grads, dstate0):
    res = {"out": out}
    for name, part in zip(state_names(cell), unpack_state(cell, state)):
        res[f"{name}_T"] = part
    if dx is not None:
        res["dx"] = dx
        for k, g in grads.items():
            res[f"grad {k}"] = g
        for name, part in zip(state_names(cell), unpack_state(cell, dstate0)):
            res[f"d{name}0"] = part
    return res


def cast(case, dtype):
    params = {k: v.astype(dtype) for k, v in case.params.items()}
    state = pack_state(case.cell, [s.astype(dtype) for s in case.state_parts])
    return case.x.astype(dtype), params, state


def run_kernel(F, case, dtype=np.float64, backward=True, **kw):
    x, params, state = cast(case, dtype)
    out, state_T, cache = F.rnn_forward(case.cell, x, params, state, **kw)
    if not backward:
        return flatten(case.cell, out, state_T, None, None, None)
    dstate = pack_state(case.cell, [s.astype(dtype) for s in case.S_parts])
    dx, grads, dstate0 = F.rnn_backward(case.R.astype(dtype), cache, dstate)
    return flatten(case.cell, out, state_T, dx, grads, dstate0)


def run_reference(case, dtype=np.float64):
    # The inputs are rounded to `dtype` first so that, in float32, the
    # comparison measures only the kernel's arithmetic, not the input rounding.
    x, params, state = cast(case, dtype)
    out, state_T, cache = ref.forward(case.cell, x, params, state)
    dx, grads, dstate0 = ref.backward(case.R, cache, case.dstate)
    return flatten(case.cell, out, state_T, dx, grads, dstate0)


def run_torch(case, module=None):
    """Forward and autograd through torch.nn.LSTM/GRU in float64."""
    torch = pytest.importorskip("torch")
    cls = torch.nn.LSTM if case.cell == "lstm" else torch.nn.GRU
    if module is None:
        module = cls(case.D, case.H, num_layers=case.L, batch_first=True).double()
        module.load_state_dict({k: torch.from_numpy(v) for k, v in case.params.items()})
    x = torch.tensor(case.x, requires_grad=True)
    parts = [torch.tensor(s, requires_grad=True) for s in case.state_parts]
    out, state_T = module(x, parts[0] if case.cell == "gru" else tuple(parts))
    state_T = [state_T] if case.cell == "gru" else list(state_T)
    loss = (out * torch.from_numpy(case.R)).sum()
    for part, S in zip(state_T, case.S_parts):
        loss = loss + (part * torch.from_numpy(S)).sum()
    loss.backward()
    res = {"out": out.detach().numpy(), "dx": x.grad.numpy()}
    for name, part, p0 in zip(state_names(case.cell), state_T, parts):
        res[f"{name}_T"] = part.detach().numpy()
        res[f"d{name}0"] = p0.grad.numpy()
    for k, p in module.named_parameters():
        res[f"grad {k}"] = p.grad.numpy()
    return res


def assert_results_close(got, expected, rtol, atol_rel):
    """Compare flat result dicts entry by entry; atol scales with each entry's
    magnitude so that tiny entries of a large gradient are not held to rtol."""
    assert sorted(got) == sorted(expected)
    for name in expected:
        e = np.asarray(expected[name], dtype=np.float64)
        g = np.asarray(got[name], dtype=np.float64)
        assert g.shape == e.shape, name
        atol = atol_rel * float(np.abs(e).max(initial=0.0))
        np.testing.assert_allclose(g, e, rtol=rtol, atol=atol, err_msg=name)


def assert_results_identical(got, expected):
    assert sorted(got) == sorted(expected)
    for name in expected:
        assert got[name].dtype == expected[name].dtype, name
        assert np.array_equal(got[name], expected[name]), name


def numeric_gradient(f, arr, eps=1e-6):
    """Central differences of the scalar f() w.r.t. every entry of arr, which
    is perturbed in place (and restored)."""
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


def finite_difference_results(case, forward):
    """Numeric counterparts of dx, every parameter gradient and the initial
    state gradients, for loss(forward(x, params, state))."""

    def loss():
        out, state_T = forward(case.x, case.params, case.state)
        return case.loss(out, state_T)

    res = {"dx": numeric_gradient(loss, case.x)}
    for k in case.params:
        res[f"grad {k}"] = numeric_gradient(loss, case.params[k])
    for name, part in zip(state_names(case.cell), case.state_parts):
        res[f"d{name}0"] = numeric_gradient(loss, part)
    return res


def gradients_only(res):
    return {k: v for k, v in res.items() if k.startswith(("d", "grad"))}


# ---------------------------------------------------------------------------
# 1. The reference itself: against torch and against finite differences
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", TORCH_CELLS)
def test_reference_matches_torch(cell, num_layers):
    case = Case(cell, num_layers, B=4, T=5, D=3, H=5, seed=11)
    assert_results_close(run_reference(case), run_torch(case), rtol=1e-10, atol_rel=1e-12)


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
def test_reference_matches_finite_differences(cell, num_layers):
    # The only independent check of the peephole reference, which torch lacks.
    case = Case(cell, num_layers, B=2, T=3, D=2, H=3, seed=12)
    expected = finite_difference_results(case, lambda x, p, s: ref.forward(cell, x, p, s)[:2])
    got = gradients_only(run_reference(case))
    assert_results_close(got, expected, rtol=1e-6, atol_rel=1e-7)


# ---------------------------------------------------------------------------
# 2. Kernels against torch (also the state_dict round trip)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", TORCH_CELLS)
def test_kernel_matches_torch(F, cell, num_layers):
    case = Case(cell, num_layers, B=5, T=6, D=3, H=5, seed=21)
    assert_results_close(run_kernel(F, case), run_torch(case), rtol=1e-10, atol_rel=1e-12)


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", TORCH_CELLS)
def test_torch_state_dict_round_trip(F, cell, num_layers):
    """A torch module's state_dict, converted with .numpy(), is usable as params
    as it stands: float32 straight from torch, and float64 after .double()."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(num_layers)
    cls = torch.nn.LSTM if cell == "lstm" else torch.nn.GRU
    module = cls(3, 6, num_layers=num_layers, batch_first=True)
    case = Case(cell, num_layers, B=4, T=5, D=3, H=6, seed=22)

    params32 = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    x32 = case.x.astype(np.float32)
    state32 = pack_state(cell, [s.astype(np.float32) for s in case.state_parts])
    out, state_T, _ = F.rnn_forward(cell, x32, params32, state32, training=False)
    with torch.no_grad():
        t_state = [torch.from_numpy(s) for s in unpack_state(cell, state32)]
        t_out, t_state_T = module(torch.from_numpy(x32), pack_state(cell, t_state))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, t_out.numpy(), rtol=1e-5, atol=1e-6)
    for part, t_part in zip(unpack_state(cell, state_T), unpack_state(cell, t_state_T)):
        np.testing.assert_allclose(part, t_part.numpy(), rtol=1e-5, atol=1e-6)

    module = module.double()
    case.params = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    assert_results_close(run_kernel(F, case), run_torch(case, module), rtol=1e-10, atol_rel=1e-12)


# ---------------------------------------------------------------------------
# 3. Kernels against the reference
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
def test_kernel_matches_reference_float64(F, cell, num_layers):
    case = Case(cell, num_layers, B=5, T=6, D=3, H=5, seed=31)
    assert_results_close(run_kernel(F, case), run_reference(case), rtol=1e-10, atol_rel=1e-12)


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
def test_kernel_matches_reference_float32(F, cell, num_layers):
    case = Case(cell, num_layers, B=5, T=6, D=3, H=5, seed=32)
    got = run_kernel(F, case, np.float32)
    assert all(v.dtype == np.float32 for v in got.values())
    assert_results_close(got, run_reference(case, np.float32), rtol=1e-4, atol_rel=1e-4)


@pytest.mark.parametrize("batch", [1, 2, 15, 16, 17, 33, 37, 64])
@pytest.mark.parametrize("cell", CELLS)
def test_odd_batch_sizes_match_reference(F, cell, batch):
    # Batches smaller than the 8-row minimum chunk, exact multiples, and remainders.
    case = Case(cell, 2, B=batch, T=3, D=2, H=3, seed=batch)
    assert_results_close(run_kernel(F, case), run_reference(case), rtol=1e-10, atol_rel=1e-12)


@pytest.mark.parametrize("cell", CELLS)
def test_weight_gradients_split_into_gemm_blocks_match_reference(F, cell, monkeypatch):
    # 41 * 52 = 2132 summed rows > one 2048-row k block, and H = 90 puts
    # G*H (270 or 360) past one 256-row block of the weight-gradient GEMM, so
    # the partial sums and the h0/h(t-1) seam inside a block are all exercised.
    from threadpoolctl import threadpool_limits

    monkeypatch.setattr(F, "_SERIAL_WORK", 0)
    case = Case(cell, 1, B=41, T=52, D=3, H=90, seed=7)
    expected = run_reference(case)
    runs = []
    for n_threads in (1, 2):
        with threadpool_limits(limits=n_threads, user_api="openmp"):
            runs.append(run_kernel(F, case))
    assert_results_close(runs[0], expected, rtol=1e-9, atol_rel=1e-11)
    assert_results_identical(runs[1], runs[0])


@pytest.mark.parametrize("cell", CELLS)
def test_input_grad_false_skips_dx_only(F, cell):
    case = Case(cell, 2, B=6, T=5, D=3, H=4, seed=12)
    out, state_T, cache = F.rnn_forward(cell, case.x, case.params, case.state)
    dx, grads, dstate0 = F.rnn_backward(case.R, cache, case.dstate, retain_cache=True)
    no_dx, grads2, dstate2 = F.rnn_backward(case.R, cache, case.dstate, input_grad=False)
    assert no_dx is None and np.abs(dx).max() > 0
    for k in grads:
        assert np.array_equal(grads2[k], grads[k]), k
    for a, b in zip(unpack_state(cell, dstate2), unpack_state(cell, dstate0)):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("cell", CELLS)
def test_output_is_a_read_only_view_that_stacks_without_copies(F, cell):
    # out shares memory with the cache, which backward reads: writing to it
    # must fail rather than corrupt the gradients.
    case = Case(cell, 1, B=4, T=3, D=3, H=5, seed=13)
    out, _, cache = F.rnn_forward(cell, case.x, case.params)
    assert out.shape == (4, 3, 5) and not out.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        out[0, 0, 0] = 1.0
    # A second layer fed with out matches the two-layer call.
    top = Case(cell, 2, B=4, T=3, D=3, H=5, seed=13)
    upper = {k.replace("_l1", "_l0"): v for k, v in top.params.items() if k.endswith("_l1")}
    lower = {k: v for k, v in top.params.items() if k.endswith("_l0")}
    mid, _, _ = F.rnn_forward(cell, case.x, lower)
    out2, _, _ = F.rnn_forward(cell, mid, upper)
    both, _, _ = F.rnn_forward(cell, case.x, top.params)
    assert np.array_equal(out2, both)


def test_peephole_with_zero_peepholes_is_lstm(F):
    case = Case("peephole", 2, B=4, T=5, seed=33)
    for k in case.params:
        if k.startswith(("weight_ci", "weight_cf", "weight_co")):
            case.params[k][:] = 0.0
    peephole = run_kernel(F, case)
    case.cell = "lstm"
    case.params = {k: v for k, v in case.params.items() if not k.startswith("weight_c")}
    lstm = run_kernel(F, case)
    # The peephole run also has gradients for its peephole weights; drop them.
    peephole = {k: v for k, v in peephole.items() if k in lstm}
    assert_results_close(peephole, lstm, rtol=1e-12, atol_rel=1e-14)


# ---------------------------------------------------------------------------
# 4. Finite differences on the kernels themselves
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
def test_kernel_gradients_match_finite_differences(F, cell, num_layers):
    case = Case(cell, num_layers, B=3, T=4, D=3, H=4, seed=41)

    def forward(x, params, state):
        return F.rnn_forward(cell, x, params, state, training=False)[:2]

    expected = finite_difference_results(case, forward)
    got = gradients_only(run_kernel(F, case))
    assert_results_close(got, expected, rtol=1e-6, atol_rel=1e-7)


@pytest.mark.parametrize("cell", CELLS)
def test_dropout_gradients_match_finite_differences(F, cell):
    # The same random_state gives the same masks on every call, so the loss is
    # a deterministic smooth function of the inputs and FD applies.
    case = Case(cell, 2, B=3, T=4, D=3, H=4, seed=42)
    kw = dict(training=True, dropout=0.4, random_state=5)

    def forward(x, params, state):
        return F.rnn_forward(cell, x, params, state, **kw)[:2]

    no_dropout = run_kernel(F, case, backward=False)
    with_dropout = run_kernel(F, case, **kw)
    assert not np.allclose(with_dropout["out"], no_dropout["out"]), "dropout had no effect"
    expected = finite_difference_results(case, forward)
    assert_results_close(gradients_only(with_dropout), expected, rtol=1e-6, atol_rel=1e-7)


# ---------------------------------------------------------------------------
# 5. float32 against float64
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
def test_float32_agrees_with_float64(F, cell, num_layers):
    case = Case(cell, num_layers, B=7, T=6, D=3, H=5, seed=51)
    r32 = run_kernel(F, case, np.float32)
    r64 = run_kernel(F, case, np.float64)
    assert all(v.dtype == np.float32 for v in r32.values())
    assert all(v.dtype == np.float64 for v in r64.values())
    assert_results_close(r32, r64, rtol=1e-4, atol_rel=1e-4)


# ---------------------------------------------------------------------------
# 6. Thread-count invariance
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch", [1, 5, 16, 17, 37, 64])
@pytest.mark.parametrize("cell", CELLS)
def test_results_bitwise_identical_for_1_and_2_threads(F, cell, batch, dtype, monkeypatch):
    from threadpoolctl import threadpool_limits
    from tsrnn import _cells

    # These sizes are below the work at which calls go parallel: lower it so
    # the two-thread run really splits the batch.
    monkeypatch.setattr(F, "_SERIAL_WORK", 0)
    if not _cells.openmp_enabled():
        pytest.skip("tsrnn was built without OpenMP: nothing to compare")
    # H=24 makes G*H (96 or 72) exceed the 64-column blocks of the bias
    # reductions, so those are split across threads as well.
    case = Case(cell, 2, B=batch, T=5, D=3, H=24, seed=batch)
    runs = []
    for n_threads in (1, 2):
        with threadpool_limits(limits=n_threads, user_api="openmp"):
            # Guards against a limit that silently misses tsrnn's OpenMP runtime.
            assert _cells.max_threads() == n_threads
            runs.append(run_kernel(F, case, dtype, dropout=0.3, random_state=0))
    assert_results_identical(runs[1], runs[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell", CELLS)
def test_results_bitwise_identical_for_any_chunk_size(F, cell, dtype, monkeypatch):
    # functional picks the chunk size from the thread count; that is only safe
    # because a row's arithmetic does not depend on its chunk.
    case = Case(cell, 2, B=53, T=5, D=3, H=24, seed=3)
    runs = []
    for chunk in (8, 16, 24, 40, 64):
        monkeypatch.setattr(F, "_threading", lambda batch, work, chunk=chunk: (2, chunk))
        runs.append(run_kernel(F, case, dtype, dropout=0.3, random_state=0))
    for run in runs[1:]:
        assert_results_identical(run, runs[0])


# ---------------------------------------------------------------------------
# 7. Memory layouts: read-only, Fortran order, strides, integer input
# ---------------------------------------------------------------------------

def _readonly(a):
    a = np.array(a)
    a.setflags(write=False)
    return a


X_LAYOUTS = {
    "fortran": np.asfortranarray,
    "readonly": _readonly,
    # Every other time step of a twice-as-long buffer: a non-unit time stride.
    "time_strided": lambda x: np.repeat(x, 2, axis=1)[:, ::2],
    # A (T, D, B) buffer seen as (B, T, D): the batch axis has unit stride.
    "transposed": lambda x: np.ascontiguousarray(x.transpose(1, 2, 0)).transpose(2, 0, 1),
    "negative_strides": lambda x: np.ascontiguousarray(x[::-1, :, ::-1])[::-1, :, ::-1],
}


@pytest.mark.parametrize("layout", sorted(X_LAYOUTS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell", CELLS)
def test_x_layout_does_not_change_results(F, cell, dtype, layout):
    case = Case(cell, 2, B=18, T=4, seed=71)
    x = case.x.astype(dtype)
    x_odd = X_LAYOUTS[layout](x)
    assert np.array_equal(x_odd, x) and x_odd.dtype == x.dtype
    _, params, state = cast(case, dtype)
    out, state_T, cache = F.rnn_forward(cell, x, params, state)
    out2, state_T2, cache2 = F.rnn_forward(cell, x_odd, params, state)
    dstate = pack_state(cell, [s.astype(dtype) for s in case.S_parts])
    dout = case.R.astype(dtype)
    expected = flatten(cell, out, state_T, *F.rnn_backward(dout, cache, dstate))
    got = flatten(cell, out2, state_T2, *F.rnn_backward(dout, cache2, dstate))
    assert_results_identical(got, expected)


@pytest.mark.parametrize("cell", CELLS)
def test_readonly_and_fortran_params_state_and_dout(F, cell):
    case = Case(cell, 2, B=18, T=4, seed=72)
    expected = run_kernel(F, case)
    out, state_T, cache = F.rnn_forward(
        cell,
        _readonly(case.x),
        {k: _readonly(np.asfortranarray(v)) for k, v in case.params.items()},
        pack_state(cell, [_readonly(np.asfortranarray(s)) for s in case.state_parts]),
    )
    dout = np.repeat(case.R, 2, axis=2)[:, :, ::2]
    dout.setflags(write=False)
    dstate = pack_state(cell, [_readonly(np.asfortranarray(s)) for s in case.S_parts])
    got = flatten(cell, out, state_T, *F.rnn_backward(dout, cache, dstate))
    assert_results_identical(got, expected)


@pytest.mark.parametrize("x_dtype", [np.int32, np.int64, np.float16, np.uint8])
def test_other_numeric_x_dtypes_are_converted(F, x_dtype):
    case = Case("lstm", 1, B=3, T=4, seed=73)
    x = (case.x * 3).astype(x_dtype)
    params = {k: v.astype(np.float32) for k, v in case.params.items()}
    out, state_T, _ = F.rnn_forward("lstm", x, params)
    out2, state_T2, _ = F.rnn_forward("lstm", x.astype(np.float32), params)
    assert out.dtype == np.float32
    assert np.array_equal(out, out2)
    assert all(np.array_equal(a, b) for a, b in zip(state_T, state_T2))


# ---------------------------------------------------------------------------
# 8. Training flag, defaults, dropout, purity
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("cell", CELLS)
def test_inference_mode_returns_no_cache_and_same_values(F, cell):
    case = Case(cell, 2, B=5, T=4, seed=81)
    out, state_T, cache = F.rnn_forward(cell, case.x, case.params, case.state, training=True)
    out2, state_T2, cache2 = F.rnn_forward(cell, case.x, case.params, case.state, training=False)
    assert cache is not None and cache2 is None
    assert_results_identical(flatten(cell, out2, state_T2, None, None, None),
                             flatten(cell, out, state_T, None, None, None))
    # Dropout is a training-time operation only.
    out3, state_T3, cache3 = F.rnn_forward(cell, case.x, case.params, case.state, training=False,
                                           dropout=0.5, random_state=0)
    assert cache3 is None
    assert_results_identical(flatten(cell, out3, state_T3, None, None, None),
                             flatten(cell, out, state_T, None, None, None))


@pytest.mark.parametrize("cell", CELLS)
def test_params_checked_once_forward_as_rnn_forward(F, cell):
    # The estimators' inference checks its params' layout once and calls
    # _forward_checked (issue 13): the results are rnn_forward's, and the
    # values are still checked on every call, as they may change in place.
    case = Case(cell, 2, B=3, T=4, seed=85)
    checked = F._validate_params(cell, case.params, values=False)
    out, state_T, cache = F._forward_checked(cell, case.x, checked, case.state)
    out2, state_T2, _ = F.rnn_forward(cell, case.x, case.params, case.state, training=False)
    assert cache is None
    assert_results_identical(flatten(cell, out, state_T, None, None, None),
                             flatten(cell, out2, state_T2, None, None, None))
    case.params["weight_hh_l1"][0, 0] = np.inf
    with pytest.raises(ValueError, match=r"params\['weight_hh_l1'\] contains NaN or inf"):
        F._forward_checked(cell, case.x, checked, case.state)


@pytest.mark.parametrize("cell", CELLS)
def test_none_defaults_mean_zeros(F, cell):
    case = Case(cell, 2, B=4, T=3, seed=82)
    zeros = pack_state(cell, [np.zeros_like(s) for s in case.state_parts])
    out, state_T, cache = F.rnn_forward(cell, case.x, case.params, None)
    out0, state_T0, cache0 = F.rnn_forward(cell, case.x, case.params, zeros)
    assert_results_identical(flatten(cell, out, state_T, None, None, None),
                             flatten(cell, out0, state_T0, None, None, None))
    # dout=None and dstate=None stand for zero gradients.
    zero_dstate = pack_state(cell, [np.zeros_like(s) for s in case.S_parts])
    def backward(dout, dstate):
        return flatten(cell, out, state_T,
                       *F.rnn_backward(dout, cache, dstate, retain_cache=True))

    only_dout = backward(case.R, None)
    assert_results_identical(only_dout, backward(case.R, zero_dstate))
    only_dstate = backward(None, case.dstate)
    assert_results_identical(only_dstate, backward(np.zeros_like(case.R), case.dstate))
    # Both parts of the loss contribute, so neither call above was vacuous.
    assert np.abs(only_dout["dx"]).max() > 0 and np.abs(only_dstate["dx"]).max() > 0


@pytest.mark.parametrize("cell", CELLS)
def test_final_state_and_output_shapes(F, cell):
    case = Case(cell, 2, B=4, T=3, D=3, H=5, seed=83)
    out, state_T, _ = F.rnn_forward(cell, case.x, case.params, case.state)
    assert out.shape == (4, 3, 5)
    parts = unpack_state(cell, state_T)
    assert all(p.shape == (2, 4, 5) for p in parts)
    if cell == "gru":
        assert isinstance(state_T, np.ndarray)
    else:
        assert isinstance(state_T, tuple) and len(state_T) == 2
    # The top layer's final hidden state is the last output.
    np.testing.assert_array_equal(parts[0][-1], out[:, -1])


@pytest.mark.parametrize("cell", CELLS)
def test_calls_do_not_modify_their_inputs(F, cell):
    case = Case(cell, 2, B=5, T=4, seed=84)
    copies = [case.x.copy(), {k: v.copy() for k, v in case.params.items()},
              [s.copy() for s in case.state_parts], case.R.copy(), [s.copy() for s in case.S_parts]]
    out, state_T, cache = F.rnn_forward(cell, case.x, case.params, case.state,
                                        dropout=0.3, random_state=1)
    first = flatten(cell, out, state_T,
                    *F.rnn_backward(case.R, cache, case.dstate, retain_cache=True))
    # retain_cache keeps the cache intact: a second call is identical...
    second = flatten(cell, out, state_T, *F.rnn_backward(case.R, cache, case.dstate))
    assert_results_identical(second, first)
    # ... and that call, without it, used the cache up.
    with pytest.raises(ValueError, match="used up by an earlier rnn_backward"):
        F.rnn_backward(case.R, cache, case.dstate)
    np.testing.assert_array_equal(case.x, copies[0])
    for k in case.params:
        np.testing.assert_array_equal(case.params[k], copies[1][k])
    for a, b in zip(case.state_parts, copies[2]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(case.R, copies[3])
    for a, b in zip(case.S_parts, copies[4]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cell", CELLS)
def test_dropout_masks_follow_random_state(F, cell):
    case = Case(cell, 2, B=6, T=4, D=3, H=8, seed=85)

    def out(**kw):
        return F.rnn_forward(cell, case.x, case.params, case.state, training=True, **kw)[0]

    plain = out()
    assert np.array_equal(out(dropout=0.5, random_state=3), out(dropout=0.5, random_state=3))
    assert not np.allclose(out(dropout=0.5, random_state=3), out(dropout=0.5, random_state=4))
    assert not np.allclose(out(dropout=0.5, random_state=3), plain)
    assert np.array_equal(out(dropout=0.0, random_state=3), plain)
    rs = np.random.RandomState(3)
    assert np.array_equal(out(dropout=0.5, random_state=rs), out(dropout=0.5, random_state=3))


def probe_params(cell, D, H, eps):
    """A 2-layer net that makes the dropout mask readable from its output.

    Layer 0 ignores its input and emits a constant (about 0.64 or 0.76) at every
    step. Layer 1 passes its input through, scaled by eps, with every gate
    saturated open/closed and no recurrence, so out = tanh(eps * m * h0) for the
    GRU and tanh(tanh(eps * m * h0)) for the LSTM cells, where m is the dropout
    mask between the layers. Both are exactly invertible.
    """
    params = {k: np.zeros(s) for k, s in contract_shapes(cell, D, H, 2).items()}
    b0, b1, w1 = params["bias_ih_l0"], params["bias_ih_l1"], params["weight_ih_l1"]
    if cell == "gru":
        b0[H:2 * H] = b1[H:2 * H] = -30.0        # z = 0: h' = n
        b0[2 * H:] = 1.0                          # layer 0: n = tanh(1)
        w1[2 * H:] = eps * np.eye(H)              # layer 1: n = tanh(eps * input)
    else:
        for b in (b0, b1):
            b[:H] = b[3 * H:] = 30.0              # i = o = 1
            b[H:2 * H] = -30.0                    # f = 0: c' = g
        b0[2 * H:3 * H] = 1.0                     # layer 0: g = tanh(1)
        w1[2 * H:3 * H] = eps * np.eye(H)         # layer 1: g = tanh(eps * input)
    return params


def read_dropout_mask(F, cell, x, H, dropout, random_state, eps=0.5):
    params = probe_params(cell, x.shape[2], H, eps)
    out = F.rnn_forward(cell, x, params, training=True, dropout=dropout,
                        random_state=random_state)[0]
    layer0 = {k: v for k, v in params.items() if k.endswith("_l0")}
    h0 = F.rnn_forward(cell, x, layer0, training=False)[0]
    pre = np.arctanh(out) if cell == "gru" else np.arctanh(np.arctanh(out))
    return pre / (eps * h0)


@pytest.mark.parametrize("cell", CELLS)
def test_dropout_masks_scaling_and_values_match_reference(F, cell):
    """Dropout's forward semantics, which finite differences cannot see: the
    mask is 0 or 1/(1-p), drops about a fraction p, and with that very mask
    the reference reproduces the kernel's outputs and gradients."""
    p, seed = 0.4, 3
    case = Case(cell, 2, B=8, T=10, D=3, H=16, seed=87)
    mask = read_dropout_mask(F, cell, case.x, case.H, p, seed)
    kept = np.round(mask * (1 - p))
    np.testing.assert_allclose(mask * (1 - p), kept, rtol=0, atol=1e-6)
    assert set(np.unique(kept)) <= {0.0, 1.0}
    n, n_dropped = kept.size, int((kept == 0).sum())
    assert abs(n_dropped - p * n) < 5 * np.sqrt(n * p * (1 - p)), n_dropped
    mask = kept / (1 - p)

    # The masks depend on random_state and the shapes only, not on the weights.
    got = run_kernel(F, case, dropout=p, random_state=seed)
    out, state_T, cache = ref.forward(cell, case.x, case.params, case.state, masks=[mask])
    expected = flatten(cell, out, state_T, *ref.backward(case.R, cache, case.dstate))
    assert_results_close(got, expected, rtol=1e-10, atol_rel=1e-12)


@pytest.mark.parametrize("cell", CELLS)
def test_dropout_has_no_effect_on_a_single_layer(F, cell):
    # Dropout sits between layers only, never on the top layer's output.
    case = Case(cell, 1, B=6, T=4, seed=86)
    assert_results_identical(run_kernel(F, case, dropout=0.5, random_state=0), run_kernel(F, case))


# ---------------------------------------------------------------------------
# 9. Invalid input
# ---------------------------------------------------------------------------

def _bad_forward_inputs():
    """(id, cell, mutate(case) -> (cell, x, params, state), exception, match)."""

    def with_params(change):
        def mutate(c):
            params = dict(c.params)
            change(params)
            return c.cell, c.x, params, c.state
        return mutate

    def with_x(make):
        return lambda c: (c.cell, make(c.x), c.params, c.state)

    def with_state(make):
        return lambda c: (c.cell, c.x, c.params, make(c))

    def set_entry(arr, idx, value):
        arr = arr.copy()
        arr[idx] = value
        return arr

    return [
        ("unknown cell", "lstm", lambda c: ("rnn", c.x, c.params, c.state), ValueError, "unknown cell"),
        ("x 2-D", "lstm", with_x(lambda x: x[0]), ValueError, "x must be 3-D"),
        ("x 4-D", "gru", with_x(lambda x: x[None]), ValueError, "x must be 3-D"),
        ("x wrong input size", "peephole", with_x(lambda x: np.concatenate([x, x], axis=2)),
         ValueError, "input size"),
        ("x strings", "lstm", with_x(lambda x: x.astype(str)), TypeError, "real numbers"),
        ("x NaN", "lstm", with_x(lambda x: set_entry(x, (1, 2, 0), np.nan)), ValueError, "NaN or inf"),
        ("x inf", "gru", with_x(lambda x: set_entry(x, (0, 0, 1), -np.inf)), ValueError, "NaN or inf"),
        ("empty batch", "lstm", with_x(lambda x: x[:0]), ValueError, "at least one sequence"),
        ("empty time", "gru", with_x(lambda x: x[:, :0]), ValueError, "one time step"),
        ("h too many layers", "lstm",
         with_state(lambda c: (np.concatenate([c.state_parts[0]] * 2), c.state_parts[1])),
         ValueError, "state"),
        ("c wrong batch", "peephole",
         with_state(lambda c: (c.state_parts[0], c.state_parts[1][:, :1])), ValueError, "state"),
        ("gru h wrong hidden", "gru", with_state(lambda c: c.state_parts[0][:, :, :2]),
         ValueError, "state"),
        ("lstm state single array", "lstm", with_state(lambda c: c.state_parts[0]),
         ValueError, "state"),
        ("h NaN", "gru", with_state(lambda c: set_entry(c.state_parts[0], (0, 1, 1), np.nan)),
         ValueError, "NaN or inf"),
        ("c inf", "lstm",
         with_state(lambda c: (c.state_parts[0], set_entry(c.state_parts[1], (1, 0, 0), np.inf))),
         ValueError, "NaN or inf"),
        ("missing weight", "lstm", with_params(lambda p: p.pop("weight_hh_l1")), ValueError, "missing"),
        ("missing peephole", "peephole", with_params(lambda p: p.pop("weight_cf_l0")),
         ValueError, "missing"),
        ("wrong weight shape", "gru",
         with_params(lambda p: p.update(weight_hh_l0=p["weight_hh_l0"][:, :-1])), ValueError, "shape"),
        ("wrong bias shape", "lstm",
         with_params(lambda p: p.update(bias_ih_l1=p["bias_ih_l1"][:-1])), ValueError, "shape"),
        ("lstm params for gru", "gru",
         lambda c: ("gru", c.x, Case("lstm", 2, seed=0).params, c.state), ValueError, "shape"),
        ("mixed dtypes", "lstm",
         with_params(lambda p: p.update(bias_hh_l0=p["bias_hh_l0"].astype(np.float32))),
         ValueError, "dtype"),
    ]


BAD_FORWARD = _bad_forward_inputs()


@pytest.mark.parametrize("cell, mutate, exc, match", [b[1:] for b in BAD_FORWARD],
                         ids=[b[0] for b in BAD_FORWARD])
def test_bad_forward_input_raises(F, cell, mutate, exc, match):
    case = Case(cell, 2, B=3, T=4, D=3, H=4, seed=91)
    args = mutate(case)
    with pytest.raises(exc, match=match):
        F.rnn_forward(*args)


@pytest.mark.parametrize("cell", CELLS)
def test_bad_backward_input_raises(F, cell):
    case = Case(cell, 2, B=3, T=4, D=3, H=4, seed=92)
    _, _, cache = F.rnn_forward(cell, case.x, case.params, case.state)
    with pytest.raises(ValueError, match="dout"):
        F.rnn_backward(case.R[:, :-1], cache)
    with pytest.raises(ValueError, match="dout"):
        F.rnn_backward(case.R[..., None], cache)
    bad_dstate = pack_state(cell, [s[:, :, :-1] for s in case.S_parts])
    with pytest.raises(ValueError, match="dstate"):
        F.rnn_backward(case.R, cache, bad_dstate)
    # An inference-mode forward keeps nothing to backpropagate through.
    _, _, no_cache = F.rnn_forward(cell, case.x, case.params, case.state, training=False)
    with pytest.raises(TypeError, match="cache"):
        F.rnn_backward(case.R, no_cache)


@pytest.mark.parametrize("dropout", [-0.1, 1.0, 1.5])
def test_bad_dropout_raises(F, dropout):
    case = Case("lstm", 2, seed=93)
    with pytest.raises(ValueError, match="dropout"):
        F.rnn_forward("lstm", case.x, case.params, dropout=dropout)


def test_init_params_rejects_unknown_cell(F):
    with pytest.raises(ValueError, match="unknown cell"):
        F.init_params("rnn", 3, 4)


# ---------------------------------------------------------------------------
# 10. init_params
# ---------------------------------------------------------------------------

def test_cells_constant(F):
    assert tuple(F.CELLS) == CELLS


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("cell", CELLS)
def test_init_params_contract(F, cell, num_layers, dtype):
    D, H = 3, 16
    params = F.init_params(cell, D, H, num_layers=num_layers, dtype=dtype, random_state=0)
    expected = contract_shapes(cell, D, H, num_layers)
    assert sorted(params) == sorted(expected)
    bound = 1 / np.sqrt(H)
    for k, shape in expected.items():
        assert params[k].shape == shape, k
        assert params[k].dtype == dtype, k
        assert np.all(np.abs(params[k]) <= bound), k
    # Uniform over the whole interval, not a narrower one (or all zeros).
    w = params["weight_hh_l0"]
    assert w.max() > 0.9 * bound and w.min() < -0.9 * bound
    # The returned params are directly usable.
    x = np.ones((2, 3, D), dtype=dtype)
    out, _, _ = F.rnn_forward(cell, x, params)
    assert out.shape == (2, 3, H) and out.dtype == dtype


@pytest.mark.parametrize("cell", CELLS)
def test_layer_param_shapes_is_the_layout_of_one_layer(F, cell):
    # The one definition of the layout (the estimators' flat buffer builds on
    # it too): in torch's order, then the peepholes; layers may differ in width.
    shapes = F.layer_param_shapes(cell, 6, 5, layer=2)
    expected = {k.replace("_l0", "_l2"): v for k, v in contract_shapes(cell, 6, 5, 1).items()}
    assert list(shapes.items()) == list(expected.items())
    stacked = F.param_shapes(cell, 3, 4, num_layers=3)
    assert list(stacked.items()) == list(contract_shapes(cell, 3, 4, 3).items())
    assert list(stacked) == [n for k in range(3)
                             for n in F.layer_param_shapes(cell, 3 if k == 0 else 4, 4, k)]
    with pytest.raises(ValueError, match="unknown cell"):
        F.layer_param_shapes("rnn", 3, 4)


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", TORCH_CELLS)
def test_init_params_names_and_shapes_match_torch(F, cell, num_layers):
    torch = pytest.importorskip("torch")
    cls = torch.nn.LSTM if cell == "lstm" else torch.nn.GRU
    sd = cls(5, 7, num_layers=num_layers, batch_first=True).state_dict()
    params = F.init_params(cell, 5, 7, num_layers=num_layers)
    assert sorted(params) == sorted(sd)
    for k, v in sd.items():
        assert params[k].shape == tuple(v.shape), k


@pytest.mark.parametrize("cell", CELLS)
def test_init_params_random_state(F, cell):
    a = F.init_params(cell, 3, 4, num_layers=2, random_state=7)
    b = F.init_params(cell, 3, 4, num_layers=2, random_state=7)
    c = F.init_params(cell, 3, 4, num_layers=2, random_state=8)
    d = F.init_params(cell, 3, 4, num_layers=2, random_state=np.random.RandomState(7))
    for k in a:
        assert np.array_equal(a[k], b[k]), k
        assert np.array_equal(a[k], d[k]), k
        assert not np.array_equal(a[k], c[k]), k
    # No random_state: fresh draws each time (from numpy's global state).
    e = F.init_params(cell, 3, 4, num_layers=2)
    f = F.init_params(cell, 3, 4, num_layers=2)
    assert not np.array_equal(e["weight_ih_l0"], f["weight_ih_l0"])


@pytest.mark.parametrize("cell", ["lstm", "peephole"])
def test_init_params_forget_bias(F, cell):
    H = 5
    params = F.init_params(cell, 3, H, num_layers=2, random_state=0, forget_bias=1.5)
    plain = F.init_params(cell, 3, H, num_layers=2, random_state=0)
    for k in range(2):
        b_ih, b_hh = params[f"bias_ih_l{k}"], params[f"bias_hh_l{k}"]
        assert np.all(b_ih[H:2 * H] == 1.5)
        assert np.all(b_hh[H:2 * H] == 0)
        # Only the forget slice is special: the other gates keep random biases.
        others = np.r_[0:H, 2 * H:4 * H]
        assert np.all(np.abs(b_ih[others]) <= 1 / np.sqrt(H))
        assert np.unique(b_ih[others]).size == others.size
        assert np.unique(b_hh[others]).size == others.size
    assert not np.array_equal(params["bias_ih_l0"], plain["bias_ih_l0"])


def test_init_params_forget_bias_ignored_for_gru(F):
    with_fb = F.init_params("gru", 3, 5, num_layers=2, random_state=0, forget_bias=1.5)
    without = F.init_params("gru", 3, 5, num_layers=2, random_state=0)
    assert sorted(with_fb) == sorted(without)
    for k in without:
        assert np.array_equal(with_fb[k], without[k]), k


def test_blas_runs_one_thread_inside_the_kernels_and_is_restored_after(F, monkeypatch):
    # backward_layer calls BLAS from inside OpenMP regions; a threaded BLAS
    # there oversubscribes the cores. The limit must also not leak to the
    # caller. forward_layer calls no BLAS (only the packed micro-kernel), so
    # rnn_forward skips the limit, which costs microseconds per call.
    from threadpoolctl import threadpool_info, threadpool_limits
    from tsrnn import _cells

    def blas_threads():
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    seen = []
    original = _cells.backward_layer

    def spy(*args):
        seen.append(blas_threads())
        return original(*args)

    monkeypatch.setattr(_cells, "backward_layer", spy)
    case = Case("lstm", 1, B=4, T=3, seed=5)
    with threadpool_limits(limits=2, user_api="blas"):
        _, _, cache = F.rnn_forward("lstm", case.x, case.params)
        F.rnn_backward(case.R, cache)
        after = blas_threads()
    assert len(seen) == 1 and all(n == [1] * len(n) and n for n in seen), seen
    assert after and all(n == 2 for n in after), after


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_first_nonfinite_finds_nan_and_inf_in_every_lane(dtype):
    # The scan behind the NaN/inf validation: an integer test on the exponent
    # bits, vectorised, so every position (vector body and tail) must count.
    from tsrnn import _cells

    big = np.finfo(dtype).max
    clean = (np.linspace(-1, 1, 37) * big).astype(dtype)  # huge but finite, and 0
    tiny = np.array([np.finfo(dtype).tiny, -0.0, 5e-324 if dtype == np.float64 else 1e-45], dtype)
    assert _cells.first_nonfinite([clean, tiny, np.empty(0, dtype)]) == -1
    for bad in (np.nan, np.inf, -np.inf):
        for pos in range(37):
            a = clean.copy()
            a[pos] = bad
            assert _cells.first_nonfinite([clean, a.reshape(37, 1)]) == 1, (bad, pos)
    with pytest.raises(ValueError, match="C-contiguous"):
        _cells.first_nonfinite([clean[::2]])
    with pytest.raises(ValueError, match="float32 or float64"):
        _cells.first_nonfinite([np.zeros(3, np.float16)])
