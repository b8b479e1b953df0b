"""Tune the cell type and window length with GridSearchCV and TimeSeriesSplit
==========================================================================

RNNRegressor takes a 2-D stream (rows are hours, columns are sensors) and
predicts one value per row from the ``window`` rows ending at it. Here the
target of each row is the air temperature 6 hours later, so the model
forecasts 6 hours ahead from the weather up to now.

Because the estimator is an ordinary scikit-learn regressor, the usual tools
apply unchanged: a Pipeline scales each sensor, TransformedTargetRegressor
scales the target, and TimeSeriesSplit only ever validates on hours that come
after the training hours, so the search cannot peek at the future.

Run it::

    python examples/tune_gridsearch.py           # 2-5 minutes on 2 cores
    python examples/tune_gridsearch.py --quick   # seconds, for smoke tests
"""
import argparse
import time

import pandas as pd
from sklearn.compose import TransformedTargetRegressor
from sklearn.metrics import mean_absolute_error
from sklearn.model_selection import GridSearchCV, TimeSeriesSplit
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from tsrnn import RNNRegressor
from tsrnn.datasets import load_weather

LEAD = 6  # hours ahead
SENSORS = ["temp_air", "dew_point", "relative_humidity", "pressure", "wind_speed", "ghi"]


def main(quick=False):
    weather = load_weather()
    # Row t holds the sensors at hour t and, as its target, the temperature at
    # hour t + LEAD. The last LEAD hours have no target and are dropped.
    X = weather[SENSORS].iloc[:-LEAD]
    y = weather["temp_air"].shift(-LEAD).iloc[:-LEAD]
    # The last 20% of the hours is a final test the search never sees.
    n_rows = 1000 if quick else len(X)
    X, y = X.iloc[-n_rows:], y.iloc[-n_rows:]
    split = int(0.8 * n_rows)
    X_train, X_test = X.iloc[:split], X.iloc[split:]
    y_train, y_test = y.iloc[:split], y.iloc[split:]

    network = Pipeline([
        ("scale", StandardScaler()),
        ("rnn", RNNRegressor(hidden_layer_sizes=16 if quick else 32,
                             max_iter=2 if quick else 15, random_state=0)),
    ])
    model = TransformedTargetRegressor(network, transformer=StandardScaler())
    grid = GridSearchCV(
        model,
        {
            "regressor__rnn__cell": ["lstm", "gru"],
            "regressor__rnn__window": [6, 24],
        },
        cv=TimeSeriesSplit(n_splits=3),
        scoring="neg_mean_absolute_error",
    )
    start = time.perf_counter()
    grid.fit(X_train, y_train)
    print(f"searched {len(grid.cv_results_['params'])} settings x 3 folds "
          f"in {time.perf_counter() - start:.1f}s")

    results = pd.DataFrame({
        "cell": grid.cv_results_["param_regressor__rnn__cell"],
        "window": grid.cv_results_["param_regressor__rnn__window"],
        "CV MAE (degC)": -grid.cv_results_["mean_test_score"],
    })
    print(results.sort_values("CV MAE (degC)").to_string(index=False, float_format="%.3f"))

    model_mae = mean_absolute_error(y_test, grid.predict(X_test))
    # Persistence: the temperature in 6 hours equals the temperature now.
    persistence_mae = mean_absolute_error(y_test, X_test["temp_air"])
    print(f"held-out MAE, {LEAD} h ahead: model {model_mae:.3f} degC, "
          f"persistence {persistence_mae:.3f} degC")
    return grid, model_mae, persistence_mae


if __name__ == "__main__":
    # sphinx-gallery runs the script without its docstring.
    parser = argparse.ArgumentParser(description=(__doc__ or " ").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings, for smoke tests")
    main(parser.parse_args().quick)
