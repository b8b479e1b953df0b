"""The 10-90% band on a weekly series that keeps trending past its calibration block.

Issue 24 (item 4): on a weekly series with a trend and a yearly season,
forecast 52 weeks ahead, the band covered 55% of the truth from ``predict``
and 68% in a streaming backtest. This script builds such series and
measures both, with tsrnn's defaults (only ``horizon=52`` and
``season=52`` given):

* ``mult``: a level growing 0.4% a week (x8 over the ten years), a yearly
  season of +-15% of the level and noise of 3% of it: everything scales
  with the level, as in airpassengers;
* ``add``: a linear trend, a season of fixed size and noise of fixed size:
  a series whose errors do not grow with the level, where the band must
  not change.

Each series has 520 weeks; the model trains on the first 364 and is
backtested (stride 1, the stream replayed by ``backtest``) on the last 156,
so the level at the end of the test is about 1.9 times (``mult``) the level
at the end of training. ``predict`` is the one forecast issued at the end of
fit, scored on the 52 weeks after it.

    PYTHONPATH=$PWD env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        python benchmarks/bench_band_trend.py --seeds 0,1,2
"""
import argparse
import json
import time
import warnings

import numpy as np
import pandas as pd

N, TEST, H = 520, 156, 52


def weekly(kind, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(N)
    season = np.sin(2 * np.pi * t / 52.18)
    if kind == "mult":
        level = 100 * np.exp(0.004 * t)
        y = level * (1 + 0.15 * season) * (1 + 0.03 * rng.standard_normal(N))
    else:
        y = 100 + 0.3 * t + 10 * season + 3 * rng.standard_normal(N)
    return pd.DataFrame({"y": y}, index=pd.date_range("2010-01-02", periods=N, freq="W-SAT"))


def run(kind, seed):
    from tsrnn import RNNForecaster

    df = weekly(kind, seed)
    train, test = df.iloc[:-TEST], df.iloc[-TEST:]
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = RNNForecaster(target="y", horizon=H, season=52, random_state=seed).fit(train)
        fit_s = time.perf_counter() - t0
        p = f.predict()
        result = f.backtest(test)
    truth = test["y"].to_numpy()[:H]
    lo, hi = p["y_q0.1"].to_numpy(), p["y_q0.9"].to_numpy()
    band = result.intervals.loc["0.1-0.9"]
    cal = f._calibration
    return {
        "kind": kind, "seed": seed, "fit_s": fit_s,
        "predict_coverage": float(np.mean((lo <= truth) & (truth <= hi))),
        "backtest_coverage": float(band["coverage"]),
        "backtest_width": float(band["width"]),
        "backtest_interval_score": float(band["interval_score"]),
        "backtest_mae": float(result.metrics.loc["model", "MAE"]),
        "relative": None if cal is None else getattr(cal, "relative", np.array([False])).tolist(),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--kinds", default="mult,add")
    parser.add_argument("--json", help="write the runs here")
    parser.add_argument("--label", help="what was measured (default: the git commit)")
    args = parser.parse_args(argv)
    runs = []
    print("| series | seed | predict coverage | backtest coverage | width | interval score "
          "| MAE | relative |")
    print("|---|---|---|---|---|---|---|---|")
    for kind in args.kinds.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            r = run(kind, seed)
            runs.append(r)
            print(f"| {kind} | {seed} | {r['predict_coverage']:.1%} | "
                  f"{r['backtest_coverage']:.1%} | {r['backtest_width']:.4g} | "
                  f"{r['backtest_interval_score']:.4g} | {r['backtest_mae']:.4g} | "
                  f"{r['relative']} |", flush=True)
    for kind in args.kinds.split(","):
        mine = [r for r in runs if r["kind"] == kind]
        print(f"{kind}: mean predict coverage "
              f"{np.mean([r['predict_coverage'] for r in mine]):.1%}, backtest "
              f"{np.mean([r['backtest_coverage'] for r in mine]):.1%}, interval score "
              f"{np.mean([r['backtest_interval_score'] for r in mine]):.4g}")
    if args.json:
        import subprocess

        label = args.label or subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        with open(args.json, "w") as fh:
            json.dump({"label": label, "runs": runs}, fh, indent=1)


if __name__ == "__main__":
    main()
