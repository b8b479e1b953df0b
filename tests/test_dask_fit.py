"""RNNForecaster.fit on a dask DataFrame (issue 22, items 2 and 6).

One LocalCluster of two worker processes serves the module. The fleet is
small (6 series of 240 hours), with a training budget that binds, so every
epoch draws a sample of the windows and fetches it from the workers.

* The dask fit gives bitwise the model of the pandas fit of the same frame,
  for any partitioning (whole series per partition), with the id as a column
  or as the index: the same windows reach the same training loop.
* The client never holds more than an epoch's sample of windows.
* A worker lost mid-fit is recovered by dask (the partitions are recomputed)
  and the model is the undisturbed one; a cluster that goes away mid-fit
  raises out of fit and leaves the forecaster unfitted.
"""
import warnings

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_array_equal
from sklearn.exceptions import ConvergenceWarning, NotFittedError

distributed = pytest.importorskip("dask.distributed")
dd = pytest.importorskip("dask.dataframe")

import tsrnn._dask_fit as dask_fit  # noqa: E402
from tsrnn import RNNForecaster  # noqa: E402
from tsrnn.datasets import load_weather  # noqa: E402
from tsrnn.exceptions import InputError  # noqa: E402

N_ROWS = 240
BUDGET = 300
PARAMS = dict(target="temp_air", series_id="site", horizon=4, hidden_layer_sizes=8,
              max_iter=3, random_state=0, max_windows_per_epoch=BUDGET)


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True,
        host="127.0.0.1", dashboard_address=None,
    ) as cluster, distributed.Client(cluster) as client:
        yield client


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def _panel(n_series=6):
    weather = load_weather()[["temp_air", "dew_point"]]
    frames = []
    for k in range(n_series):
        f = weather.iloc[500 * k : 500 * k + N_ROWS].copy()
        f.insert(0, "site", f"s{k}")
        frames.append(f)
    return pd.concat(frames)


def _fleet(X, series_per_partition):
    """X as a dask frame whose partitions hold whole series."""
    return dd.from_pandas(X, chunksize=N_ROWS * series_per_partition, sort=False)


def _assert_same_model(a, b):
    assert_array_equal(a._flat, b._flat)
    # The weights are bitwise equal; the epoch's reported loss, a mean of
    # minibatch losses, may be summed in another order (1 ulp under numpy 1.25).
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-13, atol=0)
    assert a.validation_scores_ == b.validation_scores_
    assert (a.window_, a.baseline_) == (b.window_, b.baseline_)
    # A sum over partitions: equal up to the order of the additions.
    np.testing.assert_allclose(a.mase_scale_, b.mase_scale_, rtol=1e-12)
    pd.testing.assert_frame_equal(a.series_scales_, b.series_scales_)
    pd.testing.assert_frame_equal(a.predict(), b.predict())


@pytest.mark.parametrize("window", [12, "auto"])
def test_a_dask_fit_is_the_pandas_fit(client, window):
    X = _panel()
    ref = RNNForecaster(window=window, **PARAMS).fit(X)
    assert ref.t_ == 3 * BUDGET  # the budget binds: every epoch is a sample
    for per_partition in (1, 4):
        f = RNNForecaster(window=window, **PARAMS).fit(_fleet(X, per_partition))
        _assert_same_model(f, ref)
        assert f.series_ids_ == ref.series_ids_
        assert_array_equal(f.feature_names_in_, ref.feature_names_in_)


def test_the_id_as_index_gives_the_same_model(client):
    X = _panel()
    ref = RNNForecaster(window=12, **PARAMS).fit(X)
    indexed = dd.from_pandas(X.reset_index(), npartitions=1)
    indexed = indexed.set_index("site", npartitions=3)
    f = RNNForecaster(window=12, **PARAMS).fit(indexed)
    assert indexed.npartitions > 1
    assert_array_equal(f._flat, ref._flat)
    pd.testing.assert_frame_equal(f.predict(), ref.predict())


def test_global_scaling_combines_the_partitions_moments(client):
    # With one scaler for all series, the partitions' moments are combined:
    # equal to pandas' up to rounding, and the same for the same partitioning.
    X = _panel()
    params = dict(PARAMS, window=12, scaling="global")
    ref = RNNForecaster(**params).fit(X)
    a = RNNForecaster(**params).fit(_fleet(X, 2))
    b = RNNForecaster(**params).fit(_fleet(X, 2))
    assert_array_equal(a._flat, b._flat)
    np.testing.assert_allclose(a.scaler_.mean_, ref.scaler_.mean_, rtol=1e-12)
    np.testing.assert_allclose(a.scaler_.var_, ref.scaler_.var_, rtol=1e-12)
    assert a.scaler_.n_samples_seen_ == ref.scaler_.n_samples_seen_
    np.testing.assert_allclose(a.predict().to_numpy(), ref.predict().to_numpy(),
                               rtol=1e-4, atol=1e-4)


def test_the_client_holds_one_epochs_sample(client, monkeypatch):
    fetched = []
    original = dask_fit.FleetOrigins.fetch

    def recording(self, which, items, window=None):
        out = original(self, which, items, window)
        fetched.append((which, len(items), out[0].nbytes))
        return out

    monkeypatch.setattr(dask_fit.FleetOrigins, "fetch", recording)
    f = RNNForecaster(window=12, **PARAMS).fit(_fleet(_panel(), 2))
    train = [n for which, n, _ in fetched if which == "train"]
    # The baseline's evenly spaced windows, then one sample per epoch.
    assert train[-f.n_iter_:] == [BUDGET] * f.n_iter_
    assert max(n for _, n, _ in fetched) <= max(BUDGET, dask_fit.evenly_spaced(10**9).size)


def test_partitions_that_split_a_series_are_refused(client):
    X = _panel(2)
    split = dd.from_pandas(X, chunksize=N_ROWS // 2, sort=False)
    with pytest.raises(InputError, match="split across partitions"):
        RNNForecaster(window=12, **PARAMS).fit(split)


def test_fit_checks_run_on_each_partition(client):
    X = _panel(4)
    X.loc[X["site"] == "s2", "dew_point"] = X.loc[X["site"] == "s2", "dew_point"].where(
        np.arange(N_ROWS) != 100, np.inf)
    with pytest.raises(InputError, match=r"'dew_point' in series 's2' at"):
        RNNForecaster(window=12, **PARAMS).fit(_fleet(X, 2))


def test_unsupported_arguments_are_refused_clearly(client):
    ddf = _fleet(_panel(2), 1)
    f = RNNForecaster(window=12, **PARAMS)
    with pytest.raises(TypeError, match="sample_weight is not supported with a dask"):
        f.fit(ddf, sample_weight=np.ones(2 * N_ROWS))
    f.fit(_panel(2))
    f.set_params(warm_start=True)
    with pytest.raises(ValueError, match="warm_start .* dask"):
        f.fit(ddf)
    with pytest.raises(NotFittedError):
        f.predict()  # a refused fit leaves no model, as every failed fit


@pytest.mark.parametrize("extra", [{"calendar": "auto", "season_lags": None},
                                   {"season_lags": [24]}])
def test_calendar_and_season_lags_are_built_on_the_workers(client, extra):
    # The workers' encoders add the same input columns as the pandas fit's,
    # and fit keeps the rows the lag columns read before predict()'s window.
    # The calendar case turns the default weekly lag off, so each case
    # checks one kind of column.
    X = _panel()
    ref = RNNForecaster(window=12, **PARAMS, **extra).fit(X)
    f = RNNForecaster(window=12, **PARAMS, **extra).fit(_fleet(X, 2))
    assert (f._encoder.calendar is not None) == ("calendar" in extra)
    assert f._encoder.lags == ref._encoder.lags == tuple(extra["season_lags"] or ())
    _assert_same_model(f, ref)


def test_a_worker_lost_mid_fit_is_recovered(client):
    X = _panel()
    ref = RNNForecaster(window=12, **PARAMS).fit(X)
    lost = []

    def lose_a_worker(info):
        if info["epoch"] == 1:
            worker = sorted(client.scheduler_info()["workers"])[0]
            client.restart_workers([worker])
            lost.append(worker)

    f = RNNForecaster(window=12, **PARAMS).fit(_fleet(X, 2), callback=lose_a_worker)
    assert lost
    _assert_same_model(f, ref)


def test_a_cluster_gone_mid_fit_leaves_no_model(client):
    X = _panel()
    fitted = RNNForecaster(window=12, **PARAMS).fit(X)
    with distributed.Client(client.scheduler.address, set_as_default=True) as other:

        def close(info):
            if info["epoch"] == 1:
                other.close()

        with pytest.raises(Exception) as caught:  # whatever dask raises
            fitted.fit(_fleet(X, 2), callback=close)
    assert not isinstance(caught.value, AssertionError)
    with pytest.raises(NotFittedError):
        fitted.predict()


# ----------------------------------------------------------------------
# Parameter averaging (averaging_frequency)
# ----------------------------------------------------------------------
def test_one_shard_of_averaging_is_the_single_process_fit(client):
    # One partition makes one shard: its rounds train the epoch's minibatches
    # in the loop's order from the averaged (= its own) weights and moments,
    # so the model is bitwise the one trained in this process.
    X = _panel()
    ref = RNNForecaster(window=12, **PARAMS).fit(X)
    f = RNNForecaster(window=12, averaging_frequency=3, **PARAMS).fit(_fleet(X, 6))
    _assert_same_model(f, ref)


def test_averaging_over_two_workers_is_reproducible_and_learns(client):
    X = _panel()
    fleet = _fleet(X, 3)
    params = dict(PARAMS, window=12, averaging_frequency=2)
    a = RNNForecaster(**params).fit(fleet)
    b = RNNForecaster(**params).fit(fleet)
    _assert_same_model(a, b)
    single = RNNForecaster(window=12, **PARAMS).fit(X)
    assert not np.array_equal(a._flat, single._flat)  # two shards were averaged
    assert a.loss_curve_[-1] < a.loss_curve_[0]
    np.testing.assert_allclose(a.best_validation_score_, single.best_validation_score_,
                               rtol=0.05)


def test_averaging_needs_a_dask_frame_and_a_client(client, monkeypatch):
    X = _panel(2)
    with pytest.raises(ValueError, match="averaging_frequency .* dask DataFrame"):
        RNNForecaster(window=12, averaging_frequency=2, **PARAMS).fit(X)

    def no_client():
        raise ValueError("No clients found")

    monkeypatch.setattr("distributed.default_client", no_client)
    with pytest.raises(ValueError, match="none is running"):
        RNNForecaster(window=12, averaging_frequency=2, **PARAMS).fit(_fleet(X, 1))


def test_a_worker_lost_mid_averaging_is_recovered(client):
    fleet = _fleet(_panel(), 3)
    params = dict(PARAMS, window=12, averaging_frequency=2)
    ref = RNNForecaster(**params).fit(fleet)

    def lose_a_worker(info):
        if info["epoch"] == 1:
            client.restart_workers([sorted(client.scheduler_info()["workers"])[-1]])

    f = RNNForecaster(**params).fit(fleet, callback=lose_a_worker)
    _assert_same_model(f, ref)
