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
from _accuracy_data import PanelTask, Task  # noqa: E402

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
    assert set(out) == {"seasonal_naive", "persistence", "tsrnn", bench.BASELINE_ALONE}
    assert [r["seed"] for r in out[bench.BASELINE_ALONE]["runs"]] == [0, 1]
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


# ---------------------------------------------------------------- panels (issue 21)


def counting_panel(n=20, test_span=9, horizon=3, stride=2, season=4, window=4, start_b=3):
    """Two series on a daily grid: a = row number, b = 1000 + 10 * row, b starting later.

    Every value can be read off, and the two series' values never coincide,
    so a baseline or history that took a value from the other series shows.
    """
    a = pd.DataFrame({"series": "a", "y": np.arange(n, dtype=float)},
                     index=pd.date_range("2024-01-01", periods=n, freq="D"))
    m = n - start_b
    b = pd.DataFrame({"series": "b", "y": 1000 + 10 * np.arange(m, dtype=float)},
                     index=pd.date_range("2024-01-01", periods=m, freq="D")
                     + pd.Timedelta(days=start_b))
    return PanelTask("counting_panel", pd.concat([a, b]), "y", "series", "D",
                     horizon=horizon, window=window, season=season, test_span=test_span,
                     stride=stride, source="row numbers", why="hand-checkable")


def test_panel_origins_and_seasonal_naive_are_per_series():
    task = counting_panel()
    at, ctx = bench.panel_context(task)
    # Each series' test span is its own last 9 rows: a has 20 rows, b 17.
    np.testing.assert_array_equal(at["a"], [10, 12, 14, 16])
    np.testing.assert_array_equal(at["b"], [7, 9, 11, 13])
    actual_b, base_b, mae_b = ctx["b"]
    np.testing.assert_array_equal(actual_b[0], [1080, 1090, 1100])
    # Season 4 from b's origin 7 (value 1070): b's rows 4, 5, 6, never a's.
    np.testing.assert_array_equal(base_b["seasonal_naive"][0], [1040, 1050, 1060])
    np.testing.assert_array_equal(base_b["persistence"][0], [1070, 1070, 1070])
    # Seasonal naive is 4 rows behind at every step: MAE 4 in a, 40 in b.
    assert ctx["a"][2]["seasonal_naive"] == pytest.approx(4.0)
    assert mae_b["seasonal_naive"] == pytest.approx(40.0)
    # The same frame cut by the panel: training rows end where the origins start.
    train, test = task.split()
    assert (train["series"] == "a").sum() == 11 and (train["series"] == "b").sum() == 8
    assert test.groupby("series").size().to_dict() == {"a": 9, "b": 9}
    assert train[train["series"] == "b"].index.max() == task.series("b").frame.index[7]


def test_panel_score_is_the_geometric_mean_of_per_series_ratios():
    task = counting_panel()
    at, ctx = bench.panel_context(task)
    # Forecasts off by a constant: 2 in a (half its seasonal naive's MAE of 4),
    # 80 in b (twice its 40): ratios 0.5 and 2, geometric mean 1 (an
    # arithmetic mean would say 1.25, a pooled MAE would be dominated by b).
    fc = {"a": peers.Forecasts(ctx["a"][0] + 2), "b": peers.Forecasts(ctx["b"][0] - 80)}
    s = bench.score_panel(fc, ctx)
    assert s["series_ratio_seasonal_naive"] == pytest.approx({"a": 0.5, "b": 2.0})
    assert s["ratio_seasonal_naive"] == pytest.approx(1.0)
    assert s["n_series"] == s["n_series_scored"] == 2
    assert s["share_beats_seasonal_naive"] == pytest.approx(0.5)
    assert s["mae"] == pytest.approx((2 + 80) / 2)
    fc["b"] = peers.Forecasts(ctx["b"][0] + 10)  # ratio 0.25: gmean sqrt(0.5 * 0.25)
    assert bench.score_panel(fc, ctx)["ratio_seasonal_naive"] == pytest.approx(np.sqrt(0.125))
    # A series missing from the forecasts is an error, not a smaller panel.
    with pytest.raises(ValueError, match="series"):
        bench.score_panel({"a": fc["a"]}, ctx)


def test_panel_series_whose_seasonal_naive_is_exact_is_counted_out():
    task = counting_panel()
    frame = task.frame.copy()
    frame.loc[frame["series"] == "b", "y"] = 5.0  # constant: seasonal naive MAE 0
    task = PanelTask(task.name, frame, "y", "series", "D", horizon=3, window=4, season=4,
                     test_span=9, stride=2, source="", why="")
    at, ctx = bench.panel_context(task)
    fc = {sid: peers.Forecasts(c[0] + 1) for sid, c in ctx.items()}
    s = bench.score_panel(fc, ctx)
    assert s["n_series"] == 2 and s["n_series_scored"] == 1
    assert s["ratio_seasonal_naive"] == pytest.approx(1 / 4)


class LastValue(peers.Adapter):
    """Forecasts the last value of the histories the panel helpers give it."""

    name = "last_value"

    def fit(self, task):
        self.train = task.split()[0]

    def forecast(self, task, origins):
        hist = peers._panel_histories(task, origins, tail=task.window)
        last = hist.groupby("unique_id")["y"].last()
        ends = hist.groupby("unique_id")["ds"].max()
        out = {}
        for sid, at in origins.items():
            stamps = task.series(sid).frame.index[at]
            uids = [peers._uid(sid, k) for k in range(len(at))]
            # Each history ends at its origin: nothing after it is passed.
            assert list(ends[uids]) == list(stamps)
            out[sid] = peers.Forecasts(np.repeat(last[uids].to_numpy()[:, None],
                                                 task.horizon, axis=1))
        return out


def test_panel_histories_end_at_each_origin(monkeypatch):
    task = counting_panel()
    monkeypatch.setitem(peers.PANEL_PEERS, "last_value", LastValue)
    out = bench.run_task(task, ["last_value"], {}, [0], {}, log=lambda s: None)
    entry = out["last_value"]["runs"][0]
    assert "error" not in entry, entry
    # The last value of each history is persistence at that origin, exactly:
    # a history that reached past its origin would have given another value.
    assert entry["ratio_persistence"] == 1.0
    # Persistence misses by 1, 2, 3 steps (MAE 2 rows), seasonal naive by 4.
    assert entry["series_ratio_seasonal_naive"] == pytest.approx({"a": 0.5, "b": 0.5})
    # The training rows of each series end at its first origin.
    at, _ = bench.panel_context(task)
    for sid, rows in task.split()[0].groupby("series"):
        assert rows.index.max() == task.series(sid).frame.index[at[sid][0]]


def test_tsrnn_panel_is_one_global_model_and_its_baseline_alone_is_the_baseline():
    task = counting_panel(n=60, test_span=12, horizon=3, stride=3, season=4)
    params = {**TINY_TSRNN, "baseline": "persistence"}
    out = bench.run_task(task, ["tsrnn"], params, [0], {}, log=lambda s: None)
    served, alone = out["tsrnn"]["runs"][0], out[bench.BASELINE_ALONE]["runs"][0]
    assert "error" not in served and "error" not in alone, (served, alone)
    assert served["n_series"] == alone["n_series"] == 2
    # With the head zeroed the forecast is the chosen baseline, persistence.
    assert alone["ratio_persistence"] == pytest.approx(1.0, abs=1e-5)  # float32 network
    assert alone["fit_s"] == served["fit_s"]
    adapter = peers.TsrnnPanelAdapter(params, seed=0)
    adapter.fit(task)
    assert adapter.model.series_id == "series"
    at, ctx = bench.panel_context(task)
    alone = adapter.forecast_baseline_alone(task, at)
    for sid, (actual, base, _) in ctx.items():
        np.testing.assert_allclose(alone[sid].point, base["persistence"], rtol=1e-5)
    bad = dict(at, a=at["a"] + 1)
    with pytest.raises(peers.ProtocolError, match="origins"):
        adapter.forecast(task, bad)


def test_tsrnn_baseline_alone_on_a_single_series_is_the_baseline():
    task = sine_task()
    adapter = peers.TsrnnAdapter({**TINY_TSRNN, "baseline": "seasonal"}, seed=0)
    adapter.fit(task)
    at = bench.origins(task)
    alone = adapter.forecast_baseline_alone(task, at).point
    # The sine repeats every 12 rows, so seasonal naive with the task's season
    # is the truth where no gap intervenes; the head-zeroed model is that.
    np.testing.assert_allclose(alone, bench.baselines(task, at)["seasonal_naive"], atol=1e-5)
    served = adapter.forecast(task, at).point
    assert served.shape == alone.shape


def test_panel_report_has_the_targets_and_the_baseline_alone():
    task = counting_panel(n=60, test_span=12, horizon=3, stride=3, season=4)
    out = bench.run_task(task, ["tsrnn"], TINY_TSRNN, [0], {}, log=lambda s: None)
    # A made-up peer entry, to exercise the target lines.
    out["autoets"] = {"runs": [{"seed": 0, "fit_s": 1e6, "predict_s": 0.0, "mae": 1.0,
                                "ratio_seasonal_naive": 100.0, "ratio_persistence": 1.0}]}
    lines = []
    summary = bench.group_report(lambda line="": lines.append(line), "panel", [task],
                                 {task.name: out}, ["tsrnn", "autoets"])
    text = "\n".join(lines)
    assert "| counting_panel | 2 |" in text and bench.BASELINE_ALONE in text
    assert "served / baseline alone" in text and "Issue 21's targets" in text
    target = summary["targets"]["counting_panel"]
    assert target["best_peer"] == "autoets" and target["score_met"] and target["fit_met"]
