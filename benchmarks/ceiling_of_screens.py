"""How far every screened variant could take tsrnn, picked with hindsight per data set.

Reads stored runs only (nothing is fitted): today's defaults
(``results/lags/*_3seeds.json``, seed 0), the seed-0 screens of
``results/ablations/`` listed in ``SCREENS``, and the peers' stored runs.
For every data set it takes the best served score among today's and the
screens' (each screen is one way the package could have been; taking the
best per data set after seeing the test span is an oracle no fit can be),
and reports the geometric means over the suite + holdout group and over
the panels, with the best peer per data set beside them. A target that even
this oracle misses is out of reach of the levers screened.

    python benchmarks/ceiling_of_screens.py
"""

import glob
import json
import math
import os

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")

# Seed-0 screens of issues 21 and 23 (benchmarks/README.md says what each is).
SCREENS = (
    "future_rows_only_seed0",
    "baseline_input_seed0",
    "baseline_input_future_rows_seed0",
    "decoder_every_model_seed0",
    "decoder_baseline_input_all_seed0",
    "choice_cv3_seed0",
    "choice_cv3ets_seed0",
    "choice_avg_seed0",
    "choice_avgcv3_seed0",
    "cross_fitted_targets_k5_seed0",
    "cross_fitted_targets_k3_seed0",
)
PEER_RUNS = ("accuracy", "accuracy_monthly", "accuracy_small", "holdout", "panel")
NOT_PEERS = {"tsrnn", "tsrnn_baseline_alone", "seasonal_naive", "persistence"}
SUITE_AND_HOLDOUT = ("weather", "sand_point", "miami", "pm25", "sunspots", "wineind", "elnino",
                     "heartrate", "taylor", "co2", "greensboro", "airpassengers", "ausbeer",
                     "nile")
PANELS = ("chicago_ridership", "us_employment", "visnights")


def _load(path):
    with open(path) as f:
        return json.load(f)["results"]


def _seed0(results, dataset, model="tsrnn"):
    run = next(r for r in results[dataset][model]["runs"] if r["seed"] == 0)
    return run["ratio_seasonal_naive"]


def _gmean(values):
    return math.exp(sum(map(math.log, values)) / len(values))


def main():
    today = {}
    for path in glob.glob(os.path.join(RESULTS, "lags", "*_3seeds.json")):
        today.update(_load(path))
    screens = [_load(os.path.join(RESULTS, "ablations", name + ".json")) for name in SCREENS]
    best_peer = {}
    for name in PEER_RUNS:
        for dataset, models in _load(os.path.join(RESULTS, name + ".json")).items():
            means = {m: sum(r["ratio_seasonal_naive"] for r in v["runs"]) / len(v["runs"])
                     for m, v in models.items() if m not in NOT_PEERS and v.get("runs")}
            if means:
                best_peer[dataset] = min(means.items(), key=lambda kv: kv[1])

    print("| data set | today (seed 0) | best of today and the screens | variants | "
          "best peer |")
    print("|---|---|---|---|---|")
    oracle = {}
    for dataset in SUITE_AND_HOLDOUT + PANELS:
        scores = [_seed0(today, dataset)] + [_seed0(s, dataset) for s in screens
                                             if dataset in s]
        oracle[dataset] = min(scores)
        peer, peer_score = best_peer[dataset]
        print(f"| {dataset} | {scores[0]:.4f} | {oracle[dataset]:.4f} | {len(scores)} | "
              f"{peer_score:.4f} {peer} |")
    for label, group in (("suite + holdout (14)", SUITE_AND_HOLDOUT), ("panels (3)", PANELS)):
        print(f"\n{label}: today {_gmean([_seed0(today, d) for d in group]):.4f}; "
              f"the best variant per data set {_gmean([oracle[d] for d in group]):.4f}; "
              "the better of that and the best peer per data set "
              f"{_gmean([min(oracle[d], best_peer[d][1]) for d in group]):.4f}")


if __name__ == "__main__":
    main()
