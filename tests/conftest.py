"""Shared test setup.

The kernels' thread count follows how many cores other processes leave free
(``tsrnn._load``). Tests that compare 1 and 2 threads must really get 2 on a
shared machine, so the load awareness is off in every test; the tests of
``tsrnn._load`` itself (tests/test_threads.py) turn it back on.
"""
import pytest


@pytest.fixture(autouse=True)
def _thread_count_ignores_other_processes(monkeypatch):
    try:
        from tsrnn import _load
    except ImportError:  # the reference-only tests run without the extension
        return
    monkeypatch.setattr(_load, "ENABLED", False)


@pytest.fixture
def threads_used(monkeypatch):
    """The thread caps functional chose for the layer calls since the last clear().

    A test comparing 1 and 2 threads asserts ``max(threads_used) == 2``:
    otherwise the "2 threads" run could silently be serial (functional runs
    small layer calls on one thread).
    """
    from tsrnn import functional

    used = []
    choose = functional._threading

    def spy(batch, work):
        n_threads, chunk = choose(batch, work)
        used.append(n_threads)
        return n_threads, chunk

    monkeypatch.setattr(functional, "_threading", spy)
    return used
