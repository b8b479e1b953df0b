"""RNNForecaster with plain scikit-learn: params, score, scorers, GridSearchCV, Pipeline."""
import warnings

import numpy as np
import pandas as pd
import pytest
from _forecaster_data import FAST, make_frame
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, UndefinedMetricWarning
from sklearn.impute import SimpleImputer
from sklearn.model_selection import GridSearchCV, TimeSeriesSplit, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from tsrnn import RNNForecaster
from tsrnn.metrics import mae_scorer, mase_scorer, mean_absolute_scaled_error, rmse_scorer


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


@pytest.fixture(scope="module")
def frame():
    return make_frame(360)


def test_params_round_trip_and_clone():
    f = RNNForecaster(target="y", window=24, cell="gru", quantiles=(0.1, 0.9))
    params = f.get_params()
    assert params["target"] == "y" and params["window"] == 24
    assert params["quantiles"] == (0.1, 0.9) and params["horizon"] == 24
    assert clone(f).get_params() == params
    assert "RNNForecaster(" in repr(f)


def test_score_is_negated_mase_of_an_out_of_sample_backtest(frame):
    train, test = frame.iloc[:240], frame.iloc[240:]
    f = RNNForecaster(target="y", **FAST).fit(train)
    result = f.backtest(test)
    assert f.score(test) == -result.metrics.loc["model", "MASE"]
    # The end of the training data is the context: the first forecast starts
    # at the first test row, and every test row with `horizon` rows after it
    # minus one is an origin (the last training row is the first origin).
    assert result.forecasts["origin"].iloc[0] == train.index[-1]
    assert result.forecasts["timestamp"].iloc[0] == test.index[0]
    assert result.forecasts["origin"].nunique() == len(test) - f.horizon + 1


def test_scorers_follow_greater_is_better(frame):
    train, test = frame.iloc[:240], frame.iloc[240:]
    f = RNNForecaster(target="y", **FAST).fit(train)
    metrics = f.backtest(test).metrics.loc["model"]
    assert mae_scorer(f, test) == -metrics["MAE"]
    assert rmse_scorer(f, test, None) == -metrics["RMSE"]
    assert mase_scorer(f, test) == -metrics["MASE"] == f.score(test)
    # Scorers reach the forecaster at the end of a Pipeline, and refuse
    # estimators that cannot backtest.
    pipe = make_pipeline(FunctionTransformer().fit(test), f)
    assert mae_scorer(pipe, test) == -metrics["MAE"]
    with pytest.raises(TypeError, match="need an RNNForecaster"):
        mae_scorer(FunctionTransformer().fit(test), test)


def test_no_leakage_test_rows_do_not_change_the_model_or_earlier_forecasts(frame):
    train, test = frame.iloc[:240], frame.iloc[240:]
    f = RNNForecaster(target="y", **FAST)
    # The model depends on the training rows only ...
    a = clone(f).fit(pd.concat([train, test]).iloc[:240])
    changed = frame.copy()
    changed.iloc[240:, :2] *= -3.0
    b = clone(f).fit(changed.iloc[:240])
    np.testing.assert_array_equal(a._flat, b._flat)
    # ... and a forecast from origin t uses no row after t: changing the test
    # rows after row k leaves every forecast from origins before k unchanged.
    k = 60
    edited = test.copy()
    edited.iloc[k:, :2] += 50.0
    fa = a.backtest(test).forecasts
    fb = a.backtest(edited).forecasts
    before = fa["origin"] < test.index[k]
    np.testing.assert_array_equal(fa.loc[before, "forecast"], fb.loc[before, "forecast"])
    assert not np.allclose(fa.loc[~before, "forecast"], fb.loc[~before, "forecast"])


def test_gridsearchcv_with_timeseriessplit(frame):
    search = GridSearchCV(
        RNNForecaster(target="y", window=12, horizon=4, hidden_layer_sizes=8,
                      max_iter=2, random_state=0),
        {"cell": ["lstm", "gru"], "window": [6, 12]},
        cv=TimeSeriesSplit(3),
    ).fit(frame)
    scores = search.cv_results_["mean_test_score"]
    assert len(scores) == 4 and np.isfinite(scores).all()
    assert search.best_params_["cell"] in ("lstm", "gru")
    forecast = search.predict(frame)
    # the default band rides along through the search
    assert list(forecast.columns) == ["y", "y_q0.1", "y_q0.5", "y_q0.9"]
    assert len(forecast) == 4 and forecast.index[0] == frame.index[-1] + pd.Timedelta("1h")


def test_scorers_as_gridsearch_scoring(frame):
    search = GridSearchCV(
        RNNForecaster(target="y", **{**FAST, "max_iter": 1}),
        {"cell": ["lstm", "gru"]},
        cv=TimeSeriesSplit(2),
        scoring={"mae": mae_scorer, "rmse": rmse_scorer, "mase": mase_scorer},
        refit="mase",
    ).fit(frame)
    for name in ("mae", "rmse", "mase"):
        assert (search.cv_results_[f"mean_test_{name}"] < 0).all()


def test_scorer_with_cross_validate_matches_a_manual_fold(frame):
    f = RNNForecaster(target="y", **{**FAST, "max_iter": 1})
    cv = TimeSeriesSplit(2)
    result = cross_validate(f, frame, cv=cv, scoring=mase_scorer)
    train, test = list(cv.split(frame))[-1]
    manual = clone(f).fit(frame.iloc[train]).score(frame.iloc[test])
    assert result["test_score"][-1] == pytest.approx(manual)


def test_pipeline_with_pandas_output_transformers(frame):
    gappy = frame.copy()
    gappy.iloc[50, 1] = np.nan  # a sensor gap, filled by the imputer
    pipe = make_pipeline(
        SimpleImputer().set_output(transform="pandas"),
        StandardScaler().set_output(transform="pandas"),
        RNNForecaster(target="y", **FAST),
    )
    pipe.fit(gappy.iloc[:240])
    forecast = pipe.predict(gappy.iloc[:240])
    assert list(forecast.columns) == ["y"] and forecast.index.freqstr == "h"
    assert np.isfinite(pipe.score(gappy.iloc[240:]))
    assert mase_scorer(pipe, gappy.iloc[240:]) == pipe.score(gappy.iloc[240:])
    search = GridSearchCV(pipe, {"rnnforecaster__cell": ["lstm", "gru"]},
                          cv=TimeSeriesSplit(2), scoring=mae_scorer).fit(gappy)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_pipeline_with_a_function_transformer_adding_a_column(frame):
    add_hour_sin = FunctionTransformer(
        lambda df: df.assign(hour_sin=np.sin(2 * np.pi * df.index.hour / 24))
    )
    pipe = make_pipeline(add_hour_sin, RNNForecaster(target="y", **FAST))
    pipe.fit(frame)
    assert pipe[-1].past_covariates_ == ["x", "hour", "hour_sin"]
    assert pipe.predict(frame).shape == (4, 1)


def test_scorers_reject_other_estimators(frame):
    from sklearn.linear_model import LinearRegression

    with pytest.raises(TypeError, match="RNNForecaster"):
        mae_scorer(LinearRegression(), frame)


def test_mean_absolute_scaled_error():
    y_train = np.array([1.0, 3.0, 2.0, 4.0])  # one-step naive MAE: (2 + 1 + 2) / 3
    assert mean_absolute_scaled_error([2.0, 2.0], [3.0, 1.0], y_train=y_train) == (
        pytest.approx(1 / (5 / 3))
    )
    seasonal = mean_absolute_scaled_error([2.0], [3.0], y_train=y_train, season=2)
    assert seasonal == pytest.approx(1 / 1.0)  # |2-1|, |4-3|
    both = mean_absolute_scaled_error(
        np.c_[[2.0], [2.0]], np.c_[[3.0], [4.0]], y_train=np.c_[y_train, 2 * y_train],
        multioutput="raw_values",
    )
    np.testing.assert_allclose(both, [0.6, 0.6])


_T = np.arange(96.0)


@pytest.mark.parametrize("y_train, season", [
    (np.full(30, 3.25), 1),                        # constant: the scale is exactly 0
    (np.sin(2 * np.pi * _T / 24), 24),             # exactly seasonal: ~1e-16, rounding
    (np.array([1.0, 2.0]), 2),                     # too short for one seasonal difference
    (np.array([1.0, np.nan, 2.0, np.nan]), 1),     # no pair of observed values
    (np.full(10, np.nan), 1),                      # nothing observed at all
], ids=["constant", "exactly-seasonal", "too-short", "no-observed-pair", "all-nan"])
def test_mean_absolute_scaled_error_without_a_scale_is_nan_and_warns(y_train, season):
    # MASE divides by the seasonal naive forecast's in-sample MAE. Where that
    # is zero or rounding, the honest answer is NaN with sklearn's warning for
    # an undefined metric: not inf or 1e14, and no RuntimeWarning from numpy
    # about the division (a user would not know what it was about).
    y_true, y_pred = [1.0, 2.0], [1.5, 2.5]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        score = mean_absolute_scaled_error(y_true, y_pred, y_train=y_train, season=season)
        raw = mean_absolute_scaled_error(
            np.c_[y_true, y_true], np.c_[y_pred, y_pred],
            y_train=np.c_[np.arange(len(y_train), dtype=float), y_train],
            season=season, multioutput="raw_values")
    assert np.isnan(score)
    undefined = [w for w in caught if w.category is UndefinedMetricWarning]
    assert len(undefined) == 2 and "MASE is undefined" in str(undefined[0].message)
    numpy = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert not numpy, numpy
    # Only the output without a scale is NaN: the trend column beside it has
    # a seasonal naive MAE of `season` (when long enough for one difference).
    if len(y_train) > season:
        assert raw[0] == pytest.approx(0.5 / season) and np.isnan(raw[1])
    else:
        assert np.isnan(raw).all()
