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
