"""Why a fleet's network stops before it learns: its curves under a few changes.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/ablation_fleet_plateau.py \\
        --sensors 300 --max-iter 30 --json benchmarks/results/ablations/fleet_plateau.json

On bench_fleet.py's synthetic fleet, the network's held-out score stays at
the untrained model's for 10-17 epochs and then falls; early stopping's
patience of 10 epochs ended the fit first (benchmarks/README.md, "Patience
from one pass over the windows"). This fits the fleet with patience out of
the way (``n_iter_no_change`` above ``max_iter``) under each variant and
records every epoch's held-out score and training loss, so that the length
of the plateau can be compared:

* ``defaults``: the forecaster's defaults;
* ``head_random_1.0``, ``head_random_0.3``: the head drawn as nn.Linear
  draws it (uniform within +-scale/sqrt(hidden)) at the first training
  step, instead of zero (the untrained model is still scored with the zero
  head, the baseline). If the plateau were the saddle of a zero head (no
  gradient reaches the recurrent weights while it is zero), this would
  shorten it;
* ``lr_0.002``, ``lr_0.015``: learning_rate_init around the default 0.005;
* ``batch_256``: 4x the default minibatch, 4x fewer steps per epoch.

A screen, not a model of the package: the random head is a subclass here.
"""
import argparse
import json
import os
import sys
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_fleet import _save, make_fleet, split_last_week  # noqa: E402

VARIANTS = {
    "defaults": ({}, 0.0),
    "head_random_1.0": ({}, 1.0),
    "head_random_0.3": ({}, 0.3),
    "lr_0.002": ({"learning_rate_init": 0.002}, 0.0),
    "lr_0.015": ({"learning_rate_init": 0.015}, 0.0),
    "batch_256": ({"batch_size": 256}, 0.0),
}


def forecaster_class(head_scale):
    """RNNForecaster, or a subclass that starts training from a random head."""
    from tsrnn import RNNForecaster

    if not head_scale:
        return RNNForecaster

    class RandomHead(RNNForecaster):
        def _initialize(self, n_features):
            super()._initialize(n_features)
            self._head_pending = True

        def _train_step(self, mb, per_step=False):
            # After the untrained (zero-head) model has been scored.
            if getattr(self, "_head_pending", False):
                self._head_pending = False
                head = self._views()["head.weight"]
                bound = head_scale / np.sqrt(head.shape[1])
                head[...] = self._random_state.uniform(-bound, bound, head.shape)
            return super()._train_step(mb, per_step)

    return RandomHead


def run(name, train, week, max_iter):
    params, head_scale = VARIANTS[name]
    model = forecaster_class(head_scale)(
        target="temp_air", series_id="sensor", horizon=24, random_state=0,
        max_iter=max_iter, n_iter_no_change=max_iter + 1, **params)
    start = time.perf_counter()
    model.fit(train)
    fit_s = time.perf_counter() - start
    metrics = model.backtest(week, stride=24).metrics
    return {
        "variant": name, "params": params, "head_scale": head_scale, "fit_s": fit_s,
        "epochs": int(model.n_iter_),
        "mae_ratio_seasonal": float(metrics.loc["model", "MAE"]
                                    / metrics.loc["seasonal_naive", "MAE"]),
        "validation_scores": [float(v) for v in model.validation_scores_],
        "loss_curve": [float(v) for v in model.loss_curve_],
        "load": os.getloadavg()[0],
    }


def main():
    from sklearn.exceptions import ConvergenceWarning

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sensors", type=int, default=300)
    ap.add_argument("--max-iter", type=int, default=30)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    train, week = split_last_week(make_fleet(args.sensors), 2000)
    results = []
    for name in args.variants.split(","):
        row = run(name, train, week, args.max_iter)
        curve = row["validation_scores"]
        print(f"{name:16s} MAE/snaive {row['mae_ratio_seasonal']:.4f}  held-out "
              f"epoch 1 {curve[0]:.4f}, 10 {curve[9]:.4f}, last {curve[-1]:.4f}  "
              f"fit {row['fit_s']:.1f} s", flush=True)
        results.append(row)
    _save(args, results)


if __name__ == "__main__":
    main()
