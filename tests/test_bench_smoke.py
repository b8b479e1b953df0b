"""Smoke tests: the end-to-end and memory benchmarks still run (--quick).

They catch a benchmark broken by a change to the estimators (a renamed
private method that the profile patches, a changed RNNCache layout), not
performance. One thread, because on a shared 2-core machine two OpenMP
threads can wait for a descheduled partner and make even the quick run slow.
The torch half is skipped where torch is not installed (it is not in the
test extra); the tsrnn-only half always runs.
"""
import importlib.util
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")


def run(script, *args):
    # The script's own folder, not the checkout, heads its sys.path: without
    # PYTHONPATH it would import an installed tsrnn (or none) instead of this
    # checkout's, as the other benchmark smoke tests say too.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    proc = subprocess.run(
        [sys.executable, os.path.join(BENCH, script), "--quick", "--threads", "1", *args],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_bench_fit_quick_tsrnn_only():
    out = run("bench_fit.py", "--no-torch")
    assert "One epoch, tsrnn alone" in out
    assert "| quick | lstm |" in out and "| quick | gru |" in out
    # The profile rows must still add up: every category was found and timed.
    assert "**kernels**" in out and "partial_fit: input validation" in out


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
def test_bench_fit_quick_against_torch():
    out = run("bench_fit.py")
    if "torch is not available" in out:  # found but not importable
        pytest.skip("torch is not importable")
    # The script exits 1 before timing if the two training loops disagree.
    assert "One epoch, tsrnn vs torch" in out
    assert "fit ratio" in out


def test_bench_memory_quick():
    out = run("bench_memory.py")
    assert "Peak RSS of RNNRegressor.fit" in out
    assert "| quick | lstm |" in out and "| quick | gru |" in out


def test_bench_tbptt_quick():
    out = run("bench_tbptt.py")
    assert "| sequences | 8, 60, 3, 8 | none (full BPTT) |" in out
    assert "| stream | 8, 40, 3, 8 | 10 |" in out
