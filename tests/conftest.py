"""Fixtures shared by several test files."""
import pytest

from tsrnn import functional


@pytest.fixture
def threads_used(monkeypatch):
    """The thread caps functional chose for the layer calls since the last clear().

    A test comparing 1 and 2 threads asserts ``max(threads_used) == 2``:
    otherwise the "2 threads" run could silently be serial (functional runs
    small layer calls on one thread).
    """
    used = []
    choose = functional._threading

    def spy(batch, work):
        n_threads, chunk = choose(batch, work)
        used.append(n_threads)
        return n_threads, chunk

    monkeypatch.setattr(functional, "_threading", spy)
    return used
