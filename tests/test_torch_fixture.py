"""The PyTorch weight contract, checked without torch.

tests/data/torch_fixture.npz holds what torch.nn.LSTM / torch.nn.GRU (float64)
computed for fixed weights, inputs and initial states: the output, the final
state, dx, the initial-state gradients and every parameter gradient of a fixed
random linear loss, for one and two layers (tests/data/make_torch_fixture.py
wrote it). tsrnn.functional must reproduce all of it to 1e-10 relative, which
only the same names, shapes, gate order and equations can do. Each case also
comes bidirectional ("_bi") and bidirectional on variable-length sequences
("_bi_packed", torch's pack_padded_sequence; x is NaN past the lengths). The
live torch tests in test_functional.py and test_sequences_functional.py still
run where torch is installed.
"""
import os

import numpy as np
import pytest

from tsrnn import functional as F

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "torch_fixture.npz")
CASES = [("lstm", 1, ""), ("lstm", 2, ""), ("gru", 1, ""), ("gru", 2, ""),
         ("lstm", 1, "_bi"), ("lstm", 2, "_bi"), ("gru", 1, "_bi"), ("gru", 2, "_bi"),
         ("lstm", 1, "_bi_packed"), ("lstm", 2, "_bi_packed"),
         ("gru", 1, "_bi_packed"), ("gru", 2, "_bi_packed")]
RTOL = 1e-10


@pytest.fixture(scope="module")
def fixture():
    with np.load(PATH) as data:
        return {k: data[k] for k in data.files}


def load_case(fixture, cell, num_layers, variant):
    prefix = f"{cell}_l{num_layers}{variant}/"
    return {k[len(prefix):]: v for k, v in fixture.items() if k.startswith(prefix)}


def contract(cell, num_layers, variant):
    return F.param_shapes(cell, 4, 5, num_layers, bidirectional=bool(variant))


def run_tsrnn(cell, case, params):
    """tsrnn's answers to the fixture's questions, under the fixture's keys."""
    parts = ["h", "c"] if cell == "lstm" else ["h"]
    state = tuple(case[f"{p}0"] for p in parts) if cell == "lstm" else case["h0"]
    dstate = tuple(case[f"S_{p}"] for p in parts) if cell == "lstm" else case["S_h"]
    out, final, cache = F.rnn_forward(cell, case["x"], params, state,
                                      lengths=case.get("lengths"))
    dx, grads, dstate0 = F.rnn_backward(case["R"], cache, dstate)
    final = final if cell == "lstm" else (final,)
    dstate0 = dstate0 if cell == "lstm" else (dstate0,)
    res = {"out": out, "dx": dx}
    for p, fin, d0 in zip(parts, final, dstate0):
        res[f"{p}_n"], res[f"d{p}0"] = fin, d0
    res.update({f"grad_{k}": v for k, v in grads.items()})
    return res


def worst_relative_error(got, case):
    """max over the fixture's answers of max|got - torch| / max|torch|.

    An answer with a NaN or an inf is infinitely wrong: the max of a NaN
    difference is NaN, and ``NaN > RTOL`` is False, so a kernel that
    returned NaN everywhere would otherwise pass.
    """
    worst = {}
    for key, value in got.items():
        expected = case[key]
        assert value.shape == expected.shape, key
        if not np.isfinite(value).all():
            worst[key] = np.inf
            continue
        worst[key] = float(np.abs(value - expected).max() / np.abs(expected).max())
    return worst


def beyond_tolerance(worst):
    """The answers not within RTOL (written so that NaN counts as beyond)."""
    return {k: v for k, v in worst.items() if not v <= RTOL}


def test_fixture_covers_every_answer(fixture):
    for cell, num_layers, variant in CASES:
        case = load_case(fixture, cell, num_layers, variant)
        shapes = contract(cell, num_layers, variant)
        params = {k: v for k, v in case.items() if k in shapes}
        assert list(params) and set(shapes) == set(params)
        assert any(k.endswith("_reverse") for k in params) == bool(variant)
        grads = {k for k in case if k.startswith("grad_")}
        assert grads == {f"grad_{k}" for k in params}
        for key in ("out", "dx", "h_n", "dh0") + (("c_n", "dc0") if cell == "lstm" else ()):
            assert key in case, key
        assert ("lengths" in case) == variant.endswith("packed")
        for key, value in case.items():
            assert value.dtype == (np.int64 if key == "lengths" else np.float64), key
        if "lengths" in case:
            # Short sequences, and NaN past them that tsrnn must never read.
            assert case["lengths"].min() < case["x"].shape[1]
            assert np.isnan(case["x"]).any()


@pytest.mark.parametrize("cell, num_layers, variant", CASES)
def test_matches_torch_fixture(fixture, cell, num_layers, variant):
    case = load_case(fixture, cell, num_layers, variant)
    params = {k: case[k] for k in contract(cell, num_layers, variant)}
    got = run_tsrnn(cell, case, params)
    # Every answer in the fixture is compared; none is left out.
    inputs = set(params) | {"x", "R", "h0", "c0", "S_h", "S_c", "lengths"}
    assert set(got) == set(case) - inputs
    worst = worst_relative_error(got, case)
    bad = beyond_tolerance(worst)
    assert not bad, f"tsrnn differs from torch beyond {RTOL:g} (relative): {bad}"


@pytest.mark.parametrize("cell, num_layers, variant", CASES)
def test_swapped_gate_order_would_fail(fixture, cell, num_layers, variant):
    # The comparison above can fail: the same weights read with two gate
    # blocks swapped (LSTM i <-> f, GRU r <-> z), as a kernel with the wrong
    # gate order would read them, miss the fixture by orders of magnitude
    # more than the tolerance.
    case = load_case(fixture, cell, num_layers, variant)
    H = case["weight_hh_l0"].shape[1]
    swap = np.r_[H:2 * H, 0:H, 2 * H:case["weight_hh_l0"].shape[0]]
    params = {k: case[k][swap] if k.startswith(("weight_ih", "weight_hh", "bias_")) else case[k]
              for k in contract(cell, num_layers, variant)}
    worst = worst_relative_error(run_tsrnn(cell, case, params), case)
    assert worst["out"] > 1e4 * RTOL
    assert min(worst.values()) > 1e4 * RTOL, worst


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_answers_would_fail(fixture, bad):
    # A kernel that returns NaN (or inf) everywhere, or in one answer only,
    # fails the comparison above: every such answer is beyond the tolerance.
    case = load_case(fixture, "lstm", 1, "")
    params = {k: case[k] for k in contract("lstm", 1, "")}
    got = run_tsrnn("lstm", case, params)
    everywhere = {k: np.full_like(v, bad) for k, v in got.items()}
    assert set(beyond_tolerance(worst_relative_error(everywhere, case))) == set(got)
    one = dict(got, dx=np.where(np.arange(got["dx"].size).reshape(got["dx"].shape) == 3,
                                bad, got["dx"]))
    assert set(beyond_tolerance(worst_relative_error(one, case))) == {"dx"}
