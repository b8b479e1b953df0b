"""The default RNNForecaster's accuracy on the public suite, against the recorded run.

``benchmarks/results/accuracy*.json`` hold the runs whose tables are in
benchmarks/README.md (every peer, every dataset, tsrnn at its defaults). This
test reruns tsrnn alone over the same datasets and origins and asserts each
MAE to within 5% of the recorded one and each band's coverage to within 0.05,
so a change that costs accuracy anywhere in the suite fails here, not only
one that loses to a baseline. About 2 minutes on the shared 2-core machine
(125 s, 2026-12), long next to the default suite's tests, so it is marked
slow:

    python -m pytest tests/test_accuracy_regression.py -m slow

It needs the dataset wheels of the ``bench`` extra (pvlib, pmdarima,
statsmodels), and skips without them; the peers (torch among them) are not
run. CONTRIBUTING.md says when to run it.
"""
import glob
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORDED = sorted(glob.glob(os.path.join(ROOT, "benchmarks", "results", "accuracy*.json")))


def recorded_results():
    """{dataset: {model: result}} over every recorded run."""
    results = {}
    for path in RECORDED:
        with open(path) as f:
            results.update(json.load(f)["results"])
    return results

# Training is deterministic for a seed whatever the thread count
# (tests/test_determinism.py), so on the recording machine a rerun repeats
# the recorded MAE; 5% leaves room for another BLAS build, whose rounding
# changes the path of a float32 training.
MAE_RTOL = 0.05
COVERAGE_ATOL = 0.05


@pytest.mark.slow
def test_suite_accuracy_matches_the_recorded_run(tmp_path):
    for module in ("pvlib", "pmdarima", "statsmodels"):
        pytest.importorskip(module, reason="the accuracy suite's data ship in the bench extra")
    recorded = recorded_results()
    names = sorted(recorded)
    out = tmp_path / "rerun.json"
    subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "bench_accuracy.py"),
         "--models", "tsrnn", "--datasets", ",".join(names), "--json", str(out)],
        check=True, cwd=tmp_path, env=dict(os.environ, PYTHONPATH=ROOT),
    )
    with open(out) as f:
        rerun = json.load(f)
    failures = []
    for name in names:
        old = recorded[name]["tsrnn"]["runs"][0]
        new = rerun["results"][name]["tsrnn"]["runs"][0]
        if abs(new["mae"] / old["mae"] - 1) > MAE_RTOL:
            failures.append(f"{name}: MAE {new['mae']:.4g}, recorded {old['mae']:.4g}")
        if abs(new["coverage80"] - old["coverage80"]) > COVERAGE_ATOL:
            failures.append(f"{name}: coverage {new['coverage80']:.3f}, "
                            f"recorded {old['coverage80']:.3f}")
    assert not failures, "\n".join(failures)
