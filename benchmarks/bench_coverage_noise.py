"""How far a perfect 80% band's coverage strays on test spans the size of the suite's.

Issue 15 asks the default band to cover 0.80 +/- 0.05 on every dataset of the
accuracy suite. A coverage measured on a short test span is itself noisy:
overlapping forecasts from consecutive origins miss together, so a few dozen
origins hold few independent chances to miss. This script measures that noise
with no model error at all. For each suite dataset it takes the test span's
shape (origins, horizon, stride, from ``_accuracy_data.py`` and
``bench_accuracy.origins``) and simulates an AR(1) series, forecast from the
same number of origins by the *true* conditional 10% and 90% quantiles. The
spread of the realised coverage over simulated test spans is the least noise
any band, however well calibrated, shows on a span of that size.

    python benchmarks/bench_coverage_noise.py            # ~1 minute
    python benchmarks/bench_coverage_noise.py --quick    # fewer repetitions

AR coefficients 0.5 and 0.9 bracket the persistence of the suite's series at
their time steps. The output is a markdown table: the standard deviation of
the realised coverage, and the share of test spans outside 0.80 +/- 0.05.
"""
import argparse
import os
import sys

import numpy as np
from scipy.stats import norm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _accuracy_data as data  # noqa: E402
from bench_accuracy import origins  # noqa: E402

LEVELS = (0.1, 0.9)
TOLERANCE = 0.05
BURN_IN = 200


def oracle_coverage(n_origins, horizon, stride, phi, repeats, rng):
    """Realised coverage of the true 10-90% band over ``repeats`` simulated spans."""
    steps = np.arange(1, horizon + 1)
    # The h-step forecast error of a unit-variance-innovation AR(1).
    sd = np.sqrt((1 - phi ** (2 * steps)) / (1 - phi ** 2))
    lo, hi = norm.ppf(LEVELS[0]) * sd, norm.ppf(LEVELS[1]) * sd
    n = (n_origins - 1) * stride + horizon + 1
    at = np.arange(n_origins) * stride
    shocks = rng.standard_normal((repeats, n + BURN_IN))
    y = np.zeros_like(shocks)
    for t in range(1, shocks.shape[1]):
        y[:, t] = phi * y[:, t - 1] + shocks[:, t]
    y = y[:, BURN_IN:]
    error = y[:, at[:, None] + steps] - y[:, at, None] * phi ** steps
    return np.mean((lo <= error) & (error <= hi), axis=(1, 2))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=4000)
    ap.add_argument("--quick", action="store_true", help="400 repetitions")
    ap.add_argument("--phis", default="0.5,0.9")
    args = ap.parse_args(argv)
    repeats = 400 if args.quick else args.repeats
    phis = [float(p) for p in args.phis.split(",")]
    rng = np.random.default_rng(0)
    print(f"Oracle 10-90% band, {repeats} simulated test spans per row\n")
    print("| dataset | origins | H | stride | "
          + " | ".join(f"sd, AR {p} | outside +/-{TOLERANCE}, AR {p}" for p in phis) + " |")
    print("|---|---|---|---|" + "---|---|" * len(phis))
    for loader in data.GROUPS["suite"]:
        task = loader()
        n = len(origins(task))
        cells = []
        for phi in phis:
            cov = oracle_coverage(n, task.horizon, task.stride, phi, repeats, rng)
            cells += [f"{cov.std():.3f}", f"{np.mean(np.abs(cov - 0.8) > TOLERANCE):.0%}"]
        print(f"| {task.name} | {n} | {task.horizon} | {task.stride} | " + " | ".join(cells)
              + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
