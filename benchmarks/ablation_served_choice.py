"""bench_accuracy.py with tsrnn choosing its window on the served forecast: a screen.

Issue 23 item 4. Each tsrnn fit becomes two: A at ``window="auto"`` (the
window and baseline that forecast the held-out block best, the package's
choice), and B at the runner-up window (the window whose best baseline
candidate scored second in A's ``baseline_scores_``), its baseline again
chosen on the held-out block. Both train a network; the one whose served
forecast scores better on the held-out block (``best_validation_score_``,
the same held-out rows for both: the block's share does not depend on the
window) is served; with ``SERVED_MARGIN=m`` in the environment B must beat
A's held-out score by ``m * |A's score|``, as a trained epoch must beat
the baseline by ``min_network_gain``. The "baseline alone" column stays A's, so "served /
alone" compares with the package's own baseline. Every argument is
bench_accuracy.py's, e.g.::

    python benchmarks/ablation_served_choice.py --models tsrnn --seeds 0 --group all \
        --json out.json

benchmarks/README.md ("Averaging the best epochs") has the result.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_accuracy  # noqa: E402
import _accuracy_peers as peers  # noqa: E402

MARGIN = float(os.environ.get("SERVED_MARGIN", "0"))
CHOICES = []  # (task, window A, window B, which was served), printed at the end


def _runner_up_window(model):
    """The window whose best baseline candidate scored second, or None."""
    best = {}
    for key, score in model.baseline_scores_.items():
        best[key[1]] = min(score, best.get(key[1], float("inf")))
    others = sorted((s, w) for w, s in best.items() if w != model.window_)
    return others[0][1] if others else None


def _served_choice(cls):
    fit_one, alone_one = cls.fit, cls.forecast_baseline_alone

    def fit(self, task):
        fit_one(self, task)
        first = self.model
        window = _runner_up_window(first)
        chosen = "A"
        if window is not None:
            params = self.params
            self.params = dict(params, window=window)
            fit_one(self, task)
            self.params = params
            bar = first.best_validation_score_ + MARGIN * abs(first.best_validation_score_)
            if self.model.best_validation_score_ > bar:
                chosen = "B"
            else:
                self.model = first
        self.first = first
        CHOICES.append((task.name, first.window_, window, chosen))

    def forecast_baseline_alone(self, task, origins):
        served, self.model = self.model, self.first
        try:
            return alone_one(self, task, origins)
        finally:
            self.model = served

    cls.fit, cls.forecast_baseline_alone = fit, forecast_baseline_alone


_served_choice(peers.TsrnnPanelAdapter)
_served_choice(peers.TsrnnAdapter)

if __name__ == "__main__":
    try:
        bench_accuracy.main()
    finally:
        for name, a, b, chosen in CHOICES:
            print(f"served choice: {name}: window {a}, runner-up {b}, served {chosen}")
