"""Smoke test: benchmarks/bench_latency.py still runs (--quick).

It catches a benchmark broken by a change to functional or the kernels (the
onnxruntime check of the same weights included, where onnxruntime is
installed), not performance. torch is left out to keep it short.
"""
import importlib.util
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_bench_latency_quick():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "bench_latency.py"), "--quick",
         "--no-torch"],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Checks passed" in proc.stdout
    for cell in ("lstm", "gru", "peephole"):
        assert f"| {cell} | 1,12,3,8 |" in proc.stdout
    have_ort = importlib.util.find_spec("onnxruntime") is not None
    assert ("tsrnn / onnxruntime" in proc.stdout) == have_ort
