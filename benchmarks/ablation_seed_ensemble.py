"""bench_accuracy.py with tsrnn as a seed ensemble: a screen, not a model of the package.

Each tsrnn fit becomes ``ENS_K`` fits (default 2) with ``random_state`` seed,
seed + 1000, ...; their point forecasts are averaged, the band is the first
fit's. The learned baseline does not depend on the seed, so this is K
networks correcting one baseline, each with its own early stopping and
``min_network_gain`` decision, served as the mean of their corrections. The
"baseline alone" column is the first fit's. Every argument is
bench_accuracy.py's, e.g.::

    ENS_K=2 python benchmarks/ablation_seed_ensemble.py --models tsrnn --seeds 0 \
        --group all --tsrnn-params '{"average_best_epochs": 5}' --json out.json

benchmarks/README.md ("Averaging the best epochs") has the result.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_accuracy  # noqa: E402
import _accuracy_peers as peers  # noqa: E402

K = int(os.environ.get("ENS_K", "2"))


def _ensemble(cls):
    """Make ``cls`` (a tsrnn adapter) fit K models and average their point forecasts."""
    fit_one, forecast_one = cls.fit, cls.forecast

    def fit(self, task):
        seed, members = self.seed, []
        for j in range(K):
            self.params = dict(self.params, random_state=seed + 1000 * j)
            fit_one(self, task)
            members.append(self.model)
        self.params = dict(self.params, random_state=seed)
        self.members, self.model = members, members[0]

    def forecast(self, task, origins):
        outs = []
        for model in self.members:
            self.model = model
            outs.append(forecast_one(self, task, origins))
        self.model = self.members[0]
        if isinstance(outs[0], dict):  # a panel: {series id: Forecasts}
            return {sid: peers.Forecasts(np.mean([o[sid].point for o in outs], axis=0),
                                         outs[0][sid].band) for sid in outs[0]}
        return peers.Forecasts(np.mean([o.point for o in outs], axis=0), outs[0].band)

    cls.fit, cls.forecast = fit, forecast


# The panel adapter defines its own fit and forecast: each class is wrapped once.
_ensemble(peers.TsrnnPanelAdapter)
_ensemble(peers.TsrnnAdapter)

if __name__ == "__main__":
    bench_accuracy.main()
