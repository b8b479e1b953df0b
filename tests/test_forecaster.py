"""RNNForecaster core: fit/predict contract, scaling, frequency, input errors.

The scikit-learn integration (score, scorers, GridSearchCV, Pipeline) is in
test_forecaster_sklearn.py, the other features in test_forecaster_*.py.
"""
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from _forecaster_data import FAST, make_frame
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from tsrnn import RNNForecaster
from tsrnn._windows import fit_origins


@pytest.fixture(autouse=True)
def _quiet():
    # The tiny max_iter of these tests never converges; that is not under test.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


@pytest.fixture(scope="module")
def frame():
    return make_frame(300)


@pytest.fixture(scope="module")
def fitted(frame):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return RNNForecaster(target="y", **FAST).fit(frame)


def test_predict_is_indexed_by_the_next_timestamps(frame, fitted):
    forecast = fitted.predict()
    expected = pd.date_range(
        frame.index[-1] + pd.Timedelta("1h"), periods=4, freq="h", name="timestamp"
    )
    pd.testing.assert_index_equal(forecast.index, expected)
    assert forecast.index.freqstr == "h"
    assert list(forecast.columns) == ["y"]
    assert forecast.dtypes.iloc[0] == np.float64
    assert np.isfinite(forecast.to_numpy()).all()


def test_fitted_attributes(frame, fitted):
    assert fitted.target_ == ["y"]
    assert fitted.past_covariates_ == ["x", "hour"]
    assert fitted.known_future_ == []
    assert fitted.freq_ == "h" and fitted.season_ == 24
    assert fitted.n_outputs_ == 4
    assert fitted.n_features_in_ == 3
    assert list(fitted.feature_names_in_) == ["y", "x", "hour"]
    assert fitted.n_iter_ == 3 and len(fitted.loss_curve_) == 3
    assert fitted.quantiles_ is None and fitted.series_ids_ is None


def test_predict_from_another_history(frame, fitted):
    history = frame.iloc[:150]
    forecast = fitted.predict(history)
    assert forecast.index[0] == history.index[-1] + pd.Timedelta("1h")
    # Only the last `window` rows matter.
    np.testing.assert_array_equal(
        forecast.to_numpy(), fitted.predict(history.iloc[-12:]).to_numpy()
    )
    # The default history is the end of the training frame.
    np.testing.assert_array_equal(
        fitted.predict(frame).to_numpy(), fitted.predict().to_numpy()
    )


def test_index_name_follows_the_input(frame, fitted):
    history = frame.rename_axis("time")
    assert fitted.predict(history).index.name == "time"


def test_scaling_is_internal_and_uses_training_data_only():
    # Large level and scale: without internal standardisation a tiny net
    # trained for a few epochs would be far off; forecasts come back in units.
    frame = make_frame(300)
    frame["y"] = 1000 + 50 * frame["y"]
    f = RNNForecaster(target="y", **{**FAST, "max_iter": 10}).fit(frame.iloc[:200])
    np.testing.assert_allclose(f.scaler_.mean_[0], frame["y"].iloc[:200].mean())
    forecast = f.predict(frame.iloc[:250])["y"]
    actual = frame["y"].iloc[250:254].to_numpy()
    assert np.abs(forecast.to_numpy() - actual).mean() < frame["y"].std()


def test_several_targets(frame):
    f = RNNForecaster(target=["y", "x"], **FAST).fit(frame)
    forecast = f.predict()
    assert list(forecast.columns) == ["y", "x"]
    assert f.n_outputs_ == 8 and f.past_covariates_ == ["hour"]


def test_target_none_needs_a_single_numeric_column(frame):
    f = RNNForecaster(**FAST).fit(frame[["y"]])
    assert f.target_ == ["y"]
    with pytest.raises(ValueError, match="exactly one numeric column"):
        RNNForecaster(**FAST).fit(frame)


def test_non_numeric_columns_are_ignored(frame):
    labelled = frame.assign(note="ok")
    f = RNNForecaster(target="y", **FAST).fit(labelled)
    assert f.past_covariates_ == ["x", "hour"]
    assert f.predict().shape == (4, 1)


def test_same_random_state_same_forecast(frame, fitted):
    again = clone(fitted).fit(frame)
    np.testing.assert_array_equal(again.predict().to_numpy(), fitted.predict().to_numpy())


def test_pickle_round_trip(fitted):
    restored = pickle.loads(pickle.dumps(fitted))
    pd.testing.assert_frame_equal(restored.predict(), fitted.predict())


def test_callback_receives_one_dict_per_epoch(frame):
    seen = []
    f = RNNForecaster(target="y", **FAST).fit(frame, callback=seen.append)
    assert [d["epoch"] for d in seen] == [1, 2, 3]
    assert set(seen[0]) == {"epoch", "max_iter", "loss", "validation_score", "elapsed"}
    assert all(d["max_iter"] == 3 for d in seen)
    # early stopping is on by default: each epoch reports its held-out score
    assert [d["validation_score"] for d in seen] == f.validation_scores_
    assert [d["loss"] for d in seen] == f.loss_curve_
    assert all(b["elapsed"] >= a["elapsed"] > 0 for a, b in zip(seen, seen[1:]))
    assert not hasattr(f, "_callback")  # not kept: callbacks need not pickle


def test_callback_reports_validation_scores_with_early_stopping(frame):
    seen = []
    f = RNNForecaster(target="y", early_stopping=True, **FAST)
    f.fit(frame, callback=seen.append)
    assert [d["validation_score"] for d in seen] == f.validation_scores_
    assert all(isinstance(d["validation_score"], float) for d in seen)


def test_early_stopping_keeps_validation_targets_out_of_training(frame):
    # Training windows' targets end before the first validation target.
    f = RNNForecaster(target="y", early_stopping=True, **FAST).fit(frame)
    cut = len(frame) - int(np.ceil(0.1 * len(frame)))
    train, val = fit_origins(
        [len(frame)], [0], np.zeros((len(frame), 1)), f.window, f.horizon, 0.1
    )
    assert train.max() + f.horizon < cut <= val.min() + 1
    assert val.max() + f.horizon == len(frame) - 1


def test_warm_start_continues_training(frame):
    f = RNNForecaster(target="y", **{**FAST, "max_iter": 2}).fit(frame)
    first = list(f.loss_curve_)
    scaler = f.scaler_
    f.set_params(warm_start=True).fit(frame.iloc[:200])
    assert len(f.loss_curve_) == 4 and f.n_iter_ == 2
    assert f.loss_curve_[2] < first[0]  # started from the trained weights
    assert f.scaler_ is scaler  # the learned mapping keeps its input scaling


@pytest.mark.parametrize(
    "change", [{"horizon": 6}, {"quantiles": (0.5,)}, {"target": "x"}]
)
def test_refused_warm_start_leaves_no_model(frame, change):
    # A warm start that must change the head or the columns is refused, and
    # the refusal drops the old model: nothing half-updated can answer.
    f = RNNForecaster(target="y", warm_start=True, **FAST).fit(frame)
    with pytest.raises(ValueError, match="warm_start must keep"):
        f.set_params(**change).fit(frame)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        f.predict()
    # The next fit starts afresh with the new parameters.
    assert f.fit(frame).predict().shape[0] == f.horizon


# ----------------------------------------------------------------------
# Frequency and index checks
# ----------------------------------------------------------------------
def test_frequency_is_inferred_without_index_freq(frame):
    plain = frame.copy()
    plain.index = pd.DatetimeIndex(list(frame.index), name="timestamp")
    assert plain.index.freq is None
    f = RNNForecaster(target="y", **FAST).fit(plain)
    assert f.freq_ == "h"
    assert f.predict().index.freq == "h"


def test_other_frequencies():
    frame = make_frame(200, freq="15min")
    f = RNNForecaster(target="y", **FAST).fit(frame)
    assert f.freq_ == "15min" and f.season_ == 96
    assert f.predict().index[0] == frame.index[-1] + pd.Timedelta("15min")
    daily = make_frame(100, freq="D")
    f = RNNForecaster(target="y", **FAST).fit(daily)
    assert f.freq_ == "D" and f.season_ == 7
    assert RNNForecaster(target="y", season=3, **FAST).fit(daily).season_ == 3


def test_irregular_index_explains_how_to_resample(frame):
    gappy = frame.drop(frame.index[100])
    with pytest.raises(ValueError, match=r"not regular.*2024-01-05 05:00.*resample\('h'\)"):
        RNNForecaster(target="y", **FAST).fit(gappy)


def test_duplicated_index_is_an_error(frame):
    doubled = pd.concat([frame.iloc[:50], frame.iloc[49:]])
    with pytest.raises(ValueError, match="duplicated timestamps, first 2024-01-03 01:00"):
        RNNForecaster(target="y", **FAST).fit(doubled)


def test_unsorted_index_is_an_error(frame):
    with pytest.raises(ValueError, match="not sorted"):
        RNNForecaster(target="y", **FAST).fit(frame.iloc[::-1])


def test_freq_resamples_irregular_and_duplicated_rows(frame):
    # Half-hourly readings with jitter and a duplicate -> hourly means.
    half = frame.resample("30min").interpolate()
    half = pd.concat([half.iloc[:40], half.iloc[39:]])
    f = RNNForecaster(target="y", freq="h", **FAST).fit(half)
    assert f.freq_ == "h"
    forecast = f.predict()
    assert forecast.index[0] == half.index[-1].floor("h") + pd.Timedelta("1h")


def test_freq_turns_missing_timestamps_into_gaps(frame):
    gappy = frame.drop(frame.index[100])
    with pytest.raises(ValueError, match=r"Column 'y' has a missing value at 2024-01-05 04:00"):
        RNNForecaster(target="y", freq="h", **FAST).fit(gappy)


def test_predict_checks_the_history_frequency(frame, fitted):
    with pytest.raises(ValueError, match="not regular"):
        fitted.predict(frame.iloc[::2])


# ----------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------
def test_input_must_be_a_time_indexed_dataframe(frame):
    f = RNNForecaster(target="y", **FAST)
    with pytest.raises(TypeError, match="pandas DataFrame"):
        f.fit(frame.to_numpy())
    with pytest.raises(TypeError, match="DatetimeIndex"):
        f.fit(frame.reset_index(drop=True))


def test_unknown_target_names_the_column(frame):
    with pytest.raises(ValueError, match="target column 'temp' is not in X"):
        RNNForecaster(target="temp", **FAST).fit(frame)


def test_too_short_frame_names_the_shape(frame):
    with pytest.raises(ValueError, match="window=12 \\+ horizon=4 = 16.*has 10"):
        RNNForecaster(target="y", **FAST).fit(frame.iloc[:10])
    f = RNNForecaster(target="y", **FAST).fit(frame)
    with pytest.raises(ValueError, match="at least window=12 rows.*got 5"):
        f.predict(frame.iloc[:5])


def test_predict_needs_the_training_columns(frame, fitted):
    with pytest.raises(ValueError, match="Feature names seen at fit time, yet now missing"):
        fitted.predict(frame.drop(columns="x"))


def test_bad_parameters_are_rejected(frame):
    with pytest.raises(ValueError, match="horizon"):
        RNNForecaster(target="y", horizon=0).fit(frame)
    with pytest.raises(ValueError, match="missing"):
        RNNForecaster(target="y", missing="drop").fit(frame)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        RNNForecaster(target="y", **FAST | {"quantiles": (0.1, 1.0)}).fit(frame)


def test_unfitted_forecaster_raises(frame):
    with pytest.raises(NotFittedError, match="not fitted yet"):
        RNNForecaster(target="y").predict()


UNITS = ["s", "ms", "us", "ns"]


def _in_unit(frame, unit):
    return frame.set_axis(frame.index.as_unit(unit))


@pytest.mark.parametrize("unit", UNITS)
def test_forecasts_come_back_in_the_unit_of_the_users_index(unit):
    # pandas 3 reads timestamps in microseconds, parquet often holds seconds:
    # the forecasts, backtest frames and kept contexts share the unit of the
    # frames they came from, and the numbers do not depend on it.
    frame = make_frame(260)
    other = _in_unit(frame, unit)
    params = dict(FAST, target="y", known_future=["hour"])
    fitted = RNNForecaster(**params).fit(other.iloc[:240])
    reference = RNNForecaster(**params).fit(_in_unit(frame, "ns").iloc[:240])
    future = other.iloc[240:244][["hour"]]
    got = fitted.predict(future=future)
    assert got.index.unit == unit and got.index.freq == "h"
    expected = reference.predict(future=future)
    pd.testing.assert_frame_equal(got, expected.set_axis(expected.index.as_unit(unit)))
    # predict(X) answers in X's unit, whatever the unit of fit.
    assert reference.predict(other.iloc[:240], future=future).index.unit == unit
    # update() with rows in that unit: the fast path and the kept context.
    fitted.update(other.iloc[240:242])
    reference.update(_in_unit(frame, "ns").iloc[240:242])
    assert fitted._context[None].frame().index.unit == unit
    future = other.iloc[242:246][["hour"]]
    got = fitted.predict(future=future)
    assert got.index.unit == unit
    np.testing.assert_array_equal(got.to_numpy(), reference.predict(future=future).to_numpy())
    # A backtest's timestamps are in X's unit, also when X continues the context.
    result = fitted.backtest(other.iloc[242:])
    for column in ("origin", "timestamp"):
        assert result.forecasts[column].dt.unit == unit
    assert result.forecasts["origin"].iloc[0] == other.index[241]
    pd.testing.assert_frame_equal(result.metrics,
                                  reference.backtest(_in_unit(frame, "ns").iloc[242:]).metrics)


@pytest.mark.parametrize("unit", UNITS)
def test_panel_forecasts_keep_the_unit_and_time_zone(unit):
    from _forecaster_data import make_panel

    panel = make_panel(120)
    panel.index = panel.index.tz_localize("Europe/Berlin").as_unit(unit)
    f = RNNForecaster(target="y", series_id="site", **FAST).fit(panel)
    times = f.predict().index.get_level_values(1)
    assert times.unit == unit and str(times.tz) == "Europe/Berlin"
    stamps = f.backtest(panel).forecasts["timestamp"]
    assert stamps.dt.unit == unit and str(stamps.dt.tz) == "Europe/Berlin"


def test_a_step_finer_than_the_unit_moves_the_grid_to_a_finer_unit():
    # freq="500ms" on an index in seconds: the grid cannot be held in seconds.
    index = pd.date_range("2024-01-01", periods=200, freq="s", unit="s")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"y": rng.normal(size=200).cumsum()}, index=index)
    f = RNNForecaster(target="y", freq="500ms", missing="interpolate", **FAST).fit(frame)
    got = f.predict()
    assert got.index.unit == "ms"
    assert (np.diff(got.index.asi8) == 500).all()


def test_timestamps_beyond_nanoseconds_forecast_in_their_unit():
    # Timestamps in seconds reach years that nanoseconds cannot hold; kept in
    # their unit, they forecast like any others.
    index = pd.DatetimeIndex(np.arange("1500-01-01", "1500-03-01", dtype="M8[D]")
                             .astype("M8[s]"))
    frame = pd.DataFrame({"y": np.sin(np.arange(len(index)) / 3.0)}, index=index)
    got = RNNForecaster(**FAST, target="y").fit(frame).predict()
    assert got.index[0] == pd.Timestamp("1500-03-01") and got.index.unit == "s"


def test_an_infinite_value_is_refused_by_column_series_and_timestamp():
    # scikit-learn's scaler refused it first, with a message about "Input X"
    # (and the command line printed a traceback).
    from _forecaster_data import make_panel

    panel = make_panel(120)
    panel.loc[(panel.site == "b") & (panel.index == panel.index[70]), "x"] = -np.inf
    with pytest.raises(ValueError, match=r"'x' in series 'b' at 2024-01-03 22:00:00 is -inf"):
        RNNForecaster(target="y", series_id="site", **FAST).fit(panel)
