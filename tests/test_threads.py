"""The batch-1 and small-batch paths (issue 24) and the thread count (issue 21).

* The recurrent product's alternating panel order (packed W_hh over 24 KiB:
  LSTM H >= 40, GRU H >= 56 in float32), the transposing pack's edges and
  the batch-1 sweep agree with tests/_reference.py, and every row of a batch
  gets the bits it gets alone, at 1 and 2 threads.
* ``_load.choose``: one thread or the OpenMP maximum, whichever was
  measured faster (the free cores, ``_load.thread_cap``, as first guess); any
  thread count gives bitwise the same results.
* The fast weight check (``_cells.plain_weights``) and the full checks behind
  it give the same results and the same errors.
"""
import os

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from test_functional import (
    Case,
    assert_results_close,
    assert_results_identical,
    run_kernel,
    run_reference,
)
from tsrnn import _cells, _load
from tsrnn import functional as F

CELLS = ("lstm", "gru", "peephole")
needs_openmp = pytest.mark.skipif(not _cells.openmp_enabled(),
                                  reason="tsrnn was built without OpenMP: nothing to compare")


def _rows_alone_equal_batch(cell, B, T, D, H, dtype, training):
    """Each row run alone gives the bits it gets inside the batch."""
    rng = np.random.default_rng(H + B)
    params = F.init_params(cell, D, H, dtype=dtype, random_state=B)
    x = rng.standard_normal((B, T, D)).astype(dtype)
    out, state, _ = F.rnn_forward(cell, x, params, training=training)
    states = state if isinstance(state, tuple) else (state,)
    for b in range(B):
        o, s, _ = F.rnn_forward(cell, x[b:b + 1], params, training=training)
        assert np.array_equal(o, out[b:b + 1])
        for got, want in zip(s if isinstance(s, tuple) else (s,), states):
            assert np.array_equal(got, want[:, b:b + 1])


# H = 64: the packed W_hh (float64: 128 KiB LSTM, 64 KiB GRU) takes the
# alternating panel order; H = 13, D = 6: the pack's 4 x 4 blocks leave
# remainders in k and a partial last panel.
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("B,H,D", [(1, 64, 3), (3, 64, 3), (1, 13, 6), (2, 13, 6)])
def test_small_batches_match_reference(cell, B, H, D):
    case = Case(cell, 2, B=B, T=5, D=D, H=H, seed=B * 100 + H)
    expected = run_reference(case)
    assert_results_close(run_kernel(F, case), expected, rtol=1e-9, atol_rel=1e-11)
    # float32 too: its pack and micro-kernel are their own code.
    assert_results_close(run_kernel(F, case, np.float32), expected, rtol=2e-3, atol_rel=2e-4)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("H", [24, 64])
def test_batch_rows_alone_equal_rows_in_a_batch(cell, dtype, H):
    # Batch 1 takes the one-row path of the micro-kernel; a batch of 7 the
    # tiles; both must give every row the same bits (training and inference).
    for training in (False, True):
        _rows_alone_equal_batch(cell, 7, 6, 3, H, dtype, training)


@needs_openmp
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("batch", [1, 2, 3, 9])
def test_small_batches_bitwise_identical_at_1_and_2_threads(cell, batch, monkeypatch):
    # Below _SERIAL_WORK these calls run on one thread; lower it so the
    # two-thread run really goes parallel.
    monkeypatch.setattr(F, "_SERIAL_WORK", 0)
    case = Case(cell, 2, B=batch, T=5, D=3, H=64, seed=batch)
    runs = []
    for n_threads in (1, 2):
        with threadpool_limits(limits=n_threads, user_api="openmp"):
            assert _cells.max_threads() == n_threads
            for dtype in (np.float32, np.float64):
                runs.append(run_kernel(F, case, dtype))
                runs.append(run_kernel(F, case, dtype, backward=False, training=False))
    for got, want in zip(runs[4:], runs[:4]):
        assert_results_identical(got, want)


# --------------------------------------------------------------------------
# Thread count under load
# --------------------------------------------------------------------------


@pytest.mark.parametrize("free,cap", [(8.0, 2), (2.0, 2), (1.7, 2), (1.6, 1), (1.0, 1),
                                      (0.0, 1)])
def test_thread_cap_follows_free_cores(free, cap, monkeypatch):
    monkeypatch.setattr(_load, "ENABLED", True)
    monkeypatch.setattr(_load, "free_cores", lambda: free)
    assert _load.thread_cap(2) == cap
    assert _load.thread_cap(1) == 1
    monkeypatch.setattr(_load, "ENABLED", False)
    assert _load.thread_cap(2) == 2


@needs_openmp
def test_threading_takes_the_cap_and_the_size_of_the_work(monkeypatch):
    monkeypatch.setattr(_load, "ENABLED", True)
    monkeypatch.setattr(_load, "_arms", {})  # nothing measured: the free cores decide
    with threadpool_limits(limits=2, user_api="openmp"):
        monkeypatch.setattr(_load, "free_cores", lambda: 2.0)
        assert F._threading(64, F._SERIAL_WORK)[0] == 2
        assert F._threading(64, F._SERIAL_WORK - 1)[0] == 1   # too little work
        monkeypatch.setattr(_load, "free_cores", lambda: 1.0)  # one core busy
        assert F._threading(64, F._SERIAL_WORK)[0] == 1
    with threadpool_limits(limits=1, user_api="openmp"):        # the user's cap wins
        monkeypatch.setattr(_load, "free_cores", lambda: 2.0)
        assert F._threading(64, F._SERIAL_WORK)[0] == 1


def test_choose_runs_the_faster_count_and_retries_the_slower(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(_load, "ENABLED", True)
    monkeypatch.setattr(_load, "_arms", {})
    monkeypatch.setattr(_load.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(_load, "free_cores", lambda: 2.0)
    work = 10_000_000
    assert _load.choose(work, 2) == 2                  # first guess: the free cores
    _load.record(work, 2, 2, 0.030)
    assert _load.choose(work, 2) == 1                  # one thread not measured yet
    _load.record(work, 2, 1, 0.010)                    # ... and 3x faster (a busy core)
    assert _load.choose(work, 2) == 1
    assert _load.choose(work + 1000, 2) == 1           # the same size bucket
    assert _load.choose(work * 4, 2) == 2              # another bucket: no data yet
    now[0] += 1.0                                      # two threads' figure is stale
    assert _load.choose(work, 2) == 2
    _load.record(work, 2, 2, 0.004)                    # the other process left,
    assert _load.choose(work, 2) == 1                  # but one figure is no median
    for _ in range(3):
        _load.record(work, 2, 2, 0.004)
    assert _load.choose(work, 2) == 1                  # now one thread's figure is stale
    _load.record(work, 2, 1, 0.010)
    assert _load.choose(work, 2) == 2                  # and two threads win
    _load.record(work, 2, 2, 0.100)                    # one descheduled call ...
    assert _load.choose(work, 2) == 2                  # ... does not flip the choice
    # A backward call of the same work counts twice the arithmetic.
    _load.record(work, 2, 1, 0.020, weight=2.0)
    assert _load._arms[(work.bit_length(), 2)][1].cost == pytest.approx(1e-9)
    assert _load.choose(work, 1) == 1                  # the user's cap wins
    # With more cores the candidates are still 1 and the maximum: a partial
    # first guess would never be measured.
    monkeypatch.setattr(_load, "free_cores", lambda: 5.0)
    assert _load.choose(work, 8) == 1
    _load.record(work, 8, 1, 0.010)
    assert _load.choose(work, 8) == 8
    monkeypatch.setattr(_load, "ENABLED", False)
    assert _load.choose(work, 2) == 2


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="needs Linux's /proc")
def test_free_cores_is_measured_between_windows(monkeypatch):
    monkeypatch.setattr(_load, "_state", None)
    n_cpus = len(_load._cpus())
    first = _load.free_cores()
    assert 0.0 <= first <= n_cpus
    # Within a window the value is kept; after one, it is measured again.
    assert _load.free_cores() == first
    _load._state.wall -= _load._WINDOW
    second = _load.free_cores()
    assert 0.0 <= second <= n_cpus
    assert _load._state.wall > 0


def test_free_cores_without_proc_counts_every_core(monkeypatch):
    def no_proc(*args, **kwargs):
        raise OSError("no /proc here")

    monkeypatch.setattr(_load, "_state", None)
    monkeypatch.setattr(_load, "_busy_seconds", no_proc)
    n_cpus = len(_load._cpus())
    assert _load.free_cores() == n_cpus
    _load._state.wall = -1e9
    assert _load.free_cores() == n_cpus


@needs_openmp
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_results_identical_whatever_the_load_decides(cell, monkeypatch):
    # The fleet shape of issue 21, (64, 24, 1, 32), above _SERIAL_WORK: the
    # load-aware count (1 or 2, as the machine is) equals forced 1 and 2.
    case = Case(cell, 1, B=64, T=24, D=1, H=32, seed=5)
    runs = []
    for enabled, free in ((False, None), (True, 0.5), (True, 2.0), (True, None)):
        monkeypatch.setattr(_load, "ENABLED", enabled)
        if free is not None:
            monkeypatch.setattr(_load, "free_cores", lambda free=free: free)
        else:
            monkeypatch.undo()
            monkeypatch.setattr(_load, "ENABLED", enabled)
        with threadpool_limits(limits=2, user_api="openmp"):
            runs.append(run_kernel(F, case, np.float32))
    for run in runs[1:]:
        assert_results_identical(run, runs[0])


# --------------------------------------------------------------------------
# The fast weight check
# --------------------------------------------------------------------------


@pytest.mark.parametrize("cell", CELLS)
def test_plain_and_converted_weights_give_the_same_results(cell):
    params = F.init_params(cell, 3, 8, num_layers=2, random_state=0)
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    want = F.rnn_forward(cell, x, params, training=False)[0]
    # Fortran-ordered and strided weights take the full checks.
    other = {k: (np.asfortranarray(v) if v.ndim == 2 else np.repeat(v, 2)[::2])
             for k, v in params.items()}
    assert not _cells.plain_weights([other[k] for k in params],
                                    tuple(v.shape for v in params.values()), True)
    assert np.array_equal(F.rnn_forward(cell, x, other, training=False)[0], want)


def test_plain_weights_rejects_what_needs_a_closer_look():
    a = np.ones((4, 3), np.float32)
    ok = _cells.plain_weights
    assert ok([a, a[0]], ((4, 3), (3,)), True)
    assert not ok([a, a[0]], ((4, 3), (4,)), True)                  # shape
    assert not ok([a, a[0].astype(np.float64)], ((4, 3), (3,)), True)  # mixed dtypes
    assert not ok([a.astype(np.int64)], ((4, 3),), True)             # not float
    assert not ok([a.T.copy().T], ((4, 3),), True)                   # not C-contiguous
    assert not ok([a.astype(">f4")], ((4, 3),), True)                # byte order
    assert not ok([a.tolist()], ((4, 3),), True)                     # not an ndarray
    bad = a.copy()
    bad[1, 2] = np.nan
    assert not ok([bad], ((4, 3),), True)
    assert ok([bad], ((4, 3),), False)                               # values unchecked
    assert not ok([a], ((4, 3), (3,)), True)                         # count


@pytest.mark.parametrize("cell", CELLS)
def test_weight_errors_unchanged_by_the_fast_path(cell):
    params = F.init_params(cell, 3, 8, random_state=0)
    x = np.zeros((1, 4, 3), np.float32)
    bad = dict(params, weight_hh_l0=params["weight_hh_l0"].copy())
    bad["weight_hh_l0"][0, 0] = np.inf
    with pytest.raises(ValueError, match=r"params\['weight_hh_l0'\] contains NaN or inf"):
        F.rnn_forward(cell, x, bad, training=False)
    wrong = dict(params, bias_hh_l0=params["bias_hh_l0"][:-1])
    with pytest.raises(ValueError, match=r"params\['bias_hh_l0'\] has shape"):
        F.rnn_forward(cell, x, wrong, training=False)
    mixed = dict(params, bias_hh_l0=params["bias_hh_l0"].astype(np.float64))
    with pytest.raises(ValueError, match="one dtype"):
        F.rnn_forward(cell, x, mixed, training=False)
