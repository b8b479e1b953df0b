"""Smoke tests of benchmarks/bench_accuracy.py: the protocol, and that the harness runs.

The protocol is checked by hand on a series whose value is its row number, so
every origin, actual and baseline forecast can be read off. The harness then
runs tsrnn (one epoch, a tiny network) on a synthetic task with a gap, and
the command line on pmdarima's heartrate with the baselines and tsrnn only;
the peers (torch, darts, ...) are not needed. pmdarima is optional: only that
test is skipped without it.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")
sys.path.insert(0, BENCH)

import _accuracy_peers as peers  # noqa: E402
import bench_accuracy as bench  # noqa: E402
from _accuracy_data import Task  # noqa: E402

TINY_TSRNN = {"max_iter": 1, "hidden_layer_sizes": (4,), "quantiles": (0.1, 0.5, 0.9)}


def counting_task(n=20, gap=9, horizon=3, test_span=9, stride=2, season=4, window=4):
    y = np.arange(n, dtype=float)
    y[gap] = np.nan
    frame = pd.DataFrame({"y": y}, index=pd.date_range("2024-01-01", periods=n, freq="D"))
    return Task("counting", frame, "y", (), horizon=horizon, window=window, season=season,
                test_span=test_span, stride=stride, source="row numbers", why="hand-checkable")


def test_origins_actuals_and_baselines_by_hand():
    task = counting_task()  # 11 training rows (0..10), row 9 missing
    at = bench.origins(task)
    # First origin: the last training row; then every 2 rows while origin + 3 <= 19.
    np.testing.assert_array_equal(at, [10, 12, 14, 16])
    actual = bench.actuals(task, at)
    np.testing.assert_array_equal(actual[0], [11, 12, 13])
    np.testing.assert_array_equal(actual[-1], [17, 18, 19])
    base = bench.baselines(task, at)
    np.testing.assert_array_equal(base["persistence"][0], [10, 10, 10])
    # Season 4 from origin 10: steps 1..3 repeat rows 7, 8, 9; row 9 is missing,
    # so its last observation before it (row 8) stands in.
    np.testing.assert_array_equal(base["seasonal_naive"][0], [7, 8, 8])
    np.testing.assert_array_equal(base["seasonal_naive"][1], [8, 10, 11])


def test_seasonal_naive_repeats_the_last_season_beyond_one_season():
    task = counting_task(n=30, gap=0, horizon=6, test_span=10)
    at = bench.origins(task)
    assert at[0] == 19
    base = bench.baselines(task, at)
    # Steps 1..6 with season 4: rows 16, 17, 18, 19, then 16, 17 again.
    np.testing.assert_array_equal(base["seasonal_naive"][0], [16, 17, 18, 19, 16, 17])


def test_score_ratios_and_band():
    actual = np.array([[1.0, 2.0], [3.0, np.nan]])
    point = np.array([[2.0, 2.0], [3.0, 100.0]])  # the value under NaN is not scored
    band = np.stack([point - 0.5, point + 0.5], axis=-1)
    s = bench.score(point, band, actual, {"seasonal_naive": 2.0, "persistence": 0.5})
    assert s["mae"] == pytest.approx(1 / 3)
    assert s["ratio_seasonal_naive"] == pytest.approx(1 / 6)
    assert s["ratio_persistence"] == pytest.approx(2 / 3)
    assert s["coverage80"] == pytest.approx(2 / 3)
    assert s["width80"] == pytest.approx(1.0)


def sine_task():
    n = 120
    t = np.arange(n)
    frame = pd.DataFrame(
        {"y": np.sin(2 * np.pi * t / 12), "x": np.cos(2 * np.pi * t / 12)},
        index=pd.date_range("2024-01-01", periods=n, freq="h"),
    )
    frame.iloc[30:33, 0] = np.nan  # a gap in the training rows: missing="interpolate"
    return Task("sine", frame, "y", ("x",), horizon=6, window=12, season=12,
                test_span=30, stride=4, source="synthetic", why="smoke")


def test_harness_scores_tsrnn_at_the_harness_origins():
    task = sine_task()
    notes = {}
    out = bench.run_task(task, ["tsrnn"], TINY_TSRNN, [0, 1], notes, log=lambda s: None)
    assert set(out) == {"seasonal_naive", "persistence", "tsrnn"}
    assert out["seasonal_naive"]["runs"][0]["ratio_seasonal_naive"] == 1
    runs = out["tsrnn"]["runs"]
    assert [r["seed"] for r in runs] == [0, 1]
    for r in runs:
        assert "error" not in r, r
        assert np.isfinite(r["mae"]) and 0 <= r["coverage80"] <= 1
    assert any("missing='interpolate'" in n for n in notes["tsrnn"])


def test_tsrnn_at_other_origins_is_a_protocol_error():
    task = sine_task()
    adapter = peers.TsrnnAdapter(TINY_TSRNN, seed=0)
    adapter.fit(task)
    with pytest.raises(peers.ProtocolError, match="origins"):
        adapter.forecast(task, bench.origins(task) + 1)


def test_a_failing_model_is_an_entry_not_a_crash():
    task = sine_task()
    notes = {}
    out = bench.run_task(task, ["tsrnn"], {**TINY_TSRNN, "cell": "no-such-cell"}, [0], notes,
                         log=lambda s: None)
    assert "error" in out["tsrnn"]["runs"][0]
    assert any("n/a" in n for n in notes["tsrnn"])


def run_cli(*args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [sys.executable, os.path.join(BENCH, "bench_accuracy.py"), "--threads", "1", *args],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_cli_heartrate_baselines_and_tsrnn(tmp_path):
    pytest.importorskip("pmdarima")
    record = tmp_path / "run.json"
    out = run_cli("--datasets", "heartrate", "--models", "tsrnn",
                  "--tsrnn-params", json.dumps({"max_iter": 1}), "--json", str(record))
    assert "| heartrate |" in out and "WARNING: tsrnn was imported from" not in out
    stored = json.loads(record.read_text())
    assert stored["meta"]["complete"] and stored["meta"]["tsrnn_params"]["max_iter"] == 1
    assert stored["datasets"]["heartrate"]["n_origins"] == 31
    res = stored["results"]["heartrate"]
    # Season 1: seasonal naive is persistence.
    assert res["seasonal_naive"]["runs"][0]["mae"] == res["persistence"]["runs"][0]["mae"]
    assert "mae" in res["tsrnn"]["runs"][0]

    # --compare, in process: the stored run against its own results.
    lines = []
    stored["meta"]["path"] = str(record)
    bench.compare(lambda line="": lines.append(line), stored, stored["results"],
                  {"suite": ["heartrate"]})
    text = "\n".join(lines)
    assert "NOT THE SAME RUN" in text and "| heartrate |" in text and "WARNING" not in text

    # --report: the stored run's tables again, without running anything.
    again = run_cli("--report", str(record))
    assert "stored run of" in again and "cut short" not in again
    summary = again[again.index("### Summary"):]
    tsrnn_row = next(line for line in summary.splitlines() if line.startswith("| tsrnn |"))
    ratio = res["tsrnn"]["runs"][0]["ratio_seasonal_naive"]
    assert f"{ratio:.3f}" in tsrnn_row


def test_into_replaces_tsrnn_in_a_stored_run_and_refuses_other_data(tmp_path):
    pytest.importorskip("pmdarima")
    stored_path = tmp_path / "stored.json"
    run_cli("--datasets", "heartrate", "--models", "tsrnn",
            "--tsrnn-params", json.dumps({"max_iter": 1, "quantiles": None}),
            "--json", str(stored_path))
    new_path = tmp_path / "new.json"
    run_cli("--datasets", "heartrate", "--models", "tsrnn", "--seeds", "0,1",
            "--tsrnn-params", json.dumps({"max_iter": 2}),
            "--json", str(new_path), "--into", str(stored_path))
    stored, new = json.loads(stored_path.read_text()), json.loads(new_path.read_text())
    assert stored["results"]["heartrate"]["tsrnn"] == new["results"]["heartrate"]["tsrnn"]
    rerun = stored["meta"]["tsrnn_rerun"]
    assert rerun["tsrnn_params"]["max_iter"] == 2 and rerun["datasets"] == ["heartrate"]
    # The summary is computed again from the new runs (two seeds now).
    summary = stored["summary"]["suite"]["tsrnn"]
    runs = new["results"]["heartrate"]["tsrnn"]["runs"]
    assert summary["gmean_ratio_seasonal_naive"] == pytest.approx(
        [r["ratio_seasonal_naive"] for r in runs])
    assert "later tsrnn-only run" in run_cli("--report", str(stored_path))

    # Stored baselines that are not this run's: other data, so nothing is written.
    stored["results"]["heartrate"]["persistence"]["runs"][0]["mae"] *= 1.01
    stored_path.write_text(json.dumps(stored))
    before = stored_path.read_text()
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run(
        [sys.executable, os.path.join(BENCH, "bench_accuracy.py"), "--threads", "1",
         "--datasets", "heartrate", "--models", "tsrnn",
         "--tsrnn-params", json.dumps({"max_iter": 1}), "--into", str(stored_path)],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env=env,
    )
    assert proc.returncode != 0 and "persistence MAE" in proc.stderr
    assert stored_path.read_text() == before


def test_oracle_band_covers_its_level_and_its_noise_shrinks_with_the_span():
    from bench_coverage_noise import oracle_coverage

    rng = np.random.default_rng(0)
    short = oracle_coverage(25, 12, 1, 0.9, 2000, rng)
    long = oracle_coverage(500, 12, 1, 0.9, 500, rng)
    # The true quantiles cover 80% on average, whatever the span.
    assert short.mean() == pytest.approx(0.8, abs=0.01)
    assert long.mean() == pytest.approx(0.8, abs=0.01)
    # Few overlapping origins: a realised coverage far from 0.8 is common.
    assert short.std() > 0.08 and long.std() < 0.04
