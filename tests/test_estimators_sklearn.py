"""RNNRegressor / RNNClassifier as scikit-learn citizens.

sklearn's generic estimator checks, Pipeline and GridSearchCV with
TimeSeriesSplit on DataFrames (also in worker processes that receive read-only
memory maps), pickle / joblib round trips and clone.
"""

import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_array_equal
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, TimeSeriesSplit
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from tsrnn._classifier import RNNClassifier
from tsrnn._regressor import RNNRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# The generic checks feed i.i.d. rows as a 2-D stream. With window > 1 a row's
# prediction depends on the rows before it, so these two cannot hold.
WINDOWED_FAILURES = {
    "check_methods_subset_invariance": (
        "a row's prediction depends on the rows before it in X (window > 1)"
    ),
    "check_methods_sample_order_invariance": (
        "reordering rows changes each row's window of history (window > 1)"
    ),
}


# Declared for every estimator, as sklearn declares it for MLP's stochastic
# solvers; it may pass by luck on easy data.
SAMPLE_WEIGHT_FAILURES = {
    "check_sample_weight_equivalence_on_dense_data": (
        "Adam on shuffled minibatches: a weight of 2 makes other batches and steps "
        "than a repeated row"
    ),
}


def expected_failed_checks(estimator):
    windowed = WINDOWED_FAILURES if estimator.window > 1 else {}
    return {**windowed, **SAMPLE_WEIGHT_FAILURES}


@parametrize_with_checks(
    [
        RNNRegressor(hidden_layer_sizes=(8,), window=3, max_iter=20),
        RNNClassifier(hidden_layer_sizes=(8,), window=3, max_iter=20),
        # window=1 makes every row independent: then every check must pass,
        # which shows the two failures above come from windowing alone.
        RNNRegressor(hidden_layer_sizes=(8,), window=1, cell="gru", max_iter=20),
        RNNClassifier(hidden_layer_sizes=(8,), window=1, cell="peephole", max_iter=20),
    ],
    expected_failed_checks=expected_failed_checks,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def sensor_frame(n=240, seed=0):
    """Three sensors on different scales and a target that needs history."""
    rng = np.random.RandomState(seed)
    t = np.arange(n)
    df = pd.DataFrame(
        {
            "temperature": 20 + 5 * np.sin(2 * np.pi * t / 24) + 0.3 * rng.randn(n),
            "pressure": 1000 + 30 * np.cos(2 * np.pi * t / 40) + rng.randn(n),
            "humidity": 0.5 + 0.1 * rng.randn(n),
        },
        index=pd.date_range("2024-01-01", periods=n, freq="h"),
    )
    target = pd.Series(
        np.sin(2 * np.pi * (t + 3) / 24), index=df.index, name="temperature_in_3h"
    )
    return df, target


def test_pipeline_with_scaler_on_dataframe():
    df, target = sensor_frame()
    pipe = make_pipeline(
        StandardScaler(), RNNRegressor(window=8, max_iter=5, random_state=0)
    )
    # The scaler hands a DataFrame on, so the RNN sees the sensor names too.
    pipe.set_output(transform="pandas").fit(df, target)
    model = pipe[-1]
    assert model.n_features_in_ == 3
    assert_array_equal(model.feature_names_in_, df.columns)
    assert_array_equal(pipe.feature_names_in_, df.columns)
    assert pipe.predict(df).shape == (len(df),)
    with pytest.raises(ValueError, match="Feature names"):
        pipe.predict(df[["pressure", "temperature", "humidity"]])


def test_estimator_on_dataframe_keeps_feature_names():
    df, target = sensor_frame()
    clf = RNNClassifier(window=8, max_iter=2, random_state=0).fit(df, target > 0)
    assert_array_equal(clf.feature_names_in_, df.columns)
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        clf.predict(df.to_numpy())


@pytest.fixture(scope="module")
def grid_search_data():
    df, target = sensor_frame(n=200)
    return df, target


def _grid_search(df, target, n_jobs):
    pipe = Pipeline(
        [("scale", StandardScaler()), ("rnn", RNNRegressor(max_iter=3, random_state=0))]
    )
    grid = {
        "rnn__cell": ["lstm", "gru"],
        "rnn__hidden_layer_sizes": [(4,), (6, 3)],
        "rnn__window": [2, 8],
    }
    search = GridSearchCV(pipe, grid, cv=TimeSeriesSplit(n_splits=3), n_jobs=n_jobs)
    return search.fit(df, target)


def test_grid_search_over_cell_layers_and_window(grid_search_data):
    df, target = grid_search_data
    search = _grid_search(df, target, n_jobs=1)
    assert len(search.cv_results_["params"]) == 8
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    best = search.best_estimator_[-1]
    assert best.cell in {"lstm", "gru"}
    assert best.predict(search.best_estimator_[0].transform(df)).shape == (len(df),)


def test_grid_search_in_two_processes_with_read_only_memmaps(grid_search_data):
    """Workers receive the data as read-only memory maps (max_nbytes=0 forces
    memmapping even for small arrays) and run with their own thread limits;
    they must reproduce the single-process scores exactly."""
    df, target = grid_search_data
    serial = _grid_search(df, target, n_jobs=1)
    with joblib.parallel_config(max_nbytes=0):
        parallel = _grid_search(df, target, n_jobs=2)
    assert_array_equal(
        parallel.cv_results_["mean_test_score"], serial.cv_results_["mean_test_score"]
    )
    assert parallel.best_params_ == serial.best_params_


def test_fit_and_predict_on_read_only_memmap(tmp_path):
    df, target = sensor_frame(n=80)
    np.save(tmp_path / "X.npy", df.to_numpy())
    X = np.load(tmp_path / "X.npy", mmap_mode="r")
    assert not X.flags.writeable
    params = dict(window=6, max_iter=2, random_state=0)
    expected = RNNRegressor(**params).fit(df.to_numpy(), target).predict(df.to_numpy())
    assert_array_equal(RNNRegressor(**params).fit(X, target).predict(X), expected)
    X3 = np.lib.stride_tricks.sliding_window_view(X, 6, axis=0).transpose(0, 2, 1)
    y3 = target.to_numpy()[5:]
    reg = RNNRegressor(**params).fit(X3, y3)  # read-only, strided 3-D view
    assert reg.predict(X3).shape == (75,)


@pytest.mark.parametrize("Est", [RNNRegressor, RNNClassifier])
def test_pickle_joblib_and_clone(Est, tmp_path):
    df, target = sensor_frame(n=80)
    y = target if Est is RNNRegressor else np.where(target > 0, "warm", "cold")
    est = Est(window=6, hidden_layer_sizes=(5, 4), dropout=0.1, max_iter=3,
              random_state=0).fit(df, y)
    expected = est.predict(df)
    restored = pickle.loads(pickle.dumps(est))
    assert_array_equal(restored.predict(df), expected)
    joblib.dump(est, tmp_path / "model.joblib")
    assert_array_equal(joblib.load(tmp_path / "model.joblib").predict(df), expected)
    fresh = clone(est)
    assert fresh.get_params() == est.get_params()
    assert not hasattr(fresh, "n_features_in_")
    assert_array_equal(fresh.fit(df, y).predict(df), expected)
    # A restored model keeps training where the original stopped.
    est.partial_fit(df, y)
    restored.partial_fit(df, y)
    assert_array_equal(restored.predict(df), est.predict(df))


def test_score_tells_a_learned_model_from_one_that_learned_nothing():
    # score is R^2 (regressor) and accuracy (classifier) on the given rows: a
    # model fitted to a learnable target scores high, the same model on
    # targets shuffled in time scores near chance.
    df, target = sensor_frame(n=300)
    shuffled = np.random.RandomState(0).permutation(target)

    def scaled(estimator):
        return make_pipeline(StandardScaler(), estimator)

    kw = dict(window=6, max_iter=20, random_state=0)
    assert scaled(RNNRegressor(**kw)).fit(df, target).score(df, target) > 0.9
    assert scaled(RNNRegressor(**kw)).fit(df, shuffled).score(df, target) < 0.2
    assert scaled(RNNClassifier(**kw)).fit(df, target > 0).score(df, target > 0) > 0.9
    assert scaled(RNNClassifier(**kw)).fit(df, shuffled > 0).score(df, target > 0) < 0.7
