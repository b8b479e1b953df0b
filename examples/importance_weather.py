"""Which sensors does a forecast of the air temperature rely on?
=============================================================

Permutation importance (scikit-learn's ``permutation_importance``) shuffles
one column of the held-out weeks at a time, backtests the forecaster again and
reports how much worse the forecasts got. ``RNNForecaster.score(X, y)`` takes
the true targets separately, so shuffling the target column itself measures
how much the forecasts use its history, while the forecasts are still scored
against the real temperatures.

Run it::

    python examples/importance_weather.py                  # a minute or two on 2 cores
    python examples/importance_weather.py --plot imp.png   # also a bar chart
    python examples/importance_weather.py --quick          # seconds, for smoke tests
"""
import argparse

import pandas as pd
from sklearn.inspection import permutation_importance

from tsrnn import RNNForecaster
from tsrnn.datasets import load_weather

HOLDOUT = 4 * 7 * 24  # four weeks of hours


def main(quick=False, plot=None):
    weather = load_weather()
    if quick:
        weather = weather.iloc[-2000:]
    train, test = weather.iloc[:-HOLDOUT], weather.iloc[-HOLDOUT:]
    tiny = {"window": 24, "hidden_layer_sizes": 8, "max_iter": 2} if quick else {}
    model = RNNForecaster(target="temp_air", horizon=24, random_state=0, **tiny).fit(train)

    # The score is -MASE of a backtest over the held-out weeks; the
    # importance of a column is the drop in score when it is shuffled.
    repeats = 2 if quick else 5
    result = permutation_importance(
        model, test, test["temp_air"], n_repeats=repeats, random_state=0
    )
    table = pd.DataFrame(
        {"importance": result.importances_mean, "std": result.importances_std},
        index=test.columns,
    ).sort_values("importance", ascending=False)
    print(f"rise in MASE when a column is shuffled ({repeats} shuffles each, "
          f"backtest over the last {HOLDOUT // 24} days):")
    print(table.round(4).to_string())

    if plot is not None:
        import matplotlib

        matplotlib.use("Agg")  # draw to a file, no window
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
        shown = table.iloc[::-1]  # the most important at the top
        ax.barh(shown.index, shown["importance"], xerr=shown["std"], color="tab:blue")
        ax.set_xlabel("rise in backtest MASE when shuffled")
        ax.set_title("What the temperature forecast relies on")
        fig.savefig(plot, dpi=100)
        print(f"\nwrote {plot}")
    return table


if __name__ == "__main__":
    # sphinx-gallery runs the script without its docstring.
    parser = argparse.ArgumentParser(description=(__doc__ or " ").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings, for smoke tests")
    parser.add_argument("--plot", metavar="PNG", help="write a bar chart here")
    args = parser.parse_args()
    main(args.quick, args.plot)
