"""Missing values: raise / interpolate / mask, and causal filling at inference."""
import warnings

import numpy as np
import pandas as pd
import pytest
from _forecaster_data import FAST, make_frame
from sklearn.exceptions import ConvergenceWarning

from tsrnn import RNNForecaster
from tsrnn._windows import fit_origins


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def with_gaps():
    frame = make_frame(300)
    frame.iloc[80:86, 0] = np.nan  # target gap
    frame.iloc[60, 1] = np.nan  # earlier sensor gap
    frame.iloc[250:256, :2] = np.nan  # a gap in both, inside the test part
    return frame


def test_default_raises_naming_the_column_and_first_gap():
    with pytest.raises(ValueError, match=r"Column 'x' has a missing value at 2024-01-03 12:00"):
        RNNForecaster(target="y", **FAST).fit(with_gaps())
    frame = make_frame(300)
    f = RNNForecaster(target="y", **FAST).fit(frame)
    gappy = frame.copy()
    gappy.iloc[-3, 0] = np.nan
    with pytest.raises(ValueError, match="Column 'y' has a missing value"):
        f.predict(gappy)
    with pytest.raises(ValueError, match="missing='interpolate'"):
        f.backtest(gappy)


@pytest.mark.parametrize("missing", ["interpolate", "mask"])
def test_policies_fit_and_forecast(missing):
    frame = with_gaps()
    f = RNNForecaster(target="y", missing=missing, **FAST).fit(frame.iloc[:200])
    assert np.isfinite(f.loss_curve_).all()
    assert np.isfinite(f.predict(frame.iloc[:253]).to_numpy()).all()
    result = f.backtest(frame.iloc[200:])
    fc = result.forecasts
    assert fc["actual"].isna().any() and fc["forecast"].notna().all()
    assert np.isfinite(result.metrics.to_numpy()).all()


def test_mask_keeps_filled_targets_out_of_training():
    frame = with_gaps()
    masked = RNNForecaster(target="y", missing="mask", **FAST).fit(frame.iloc[:200])
    filled = RNNForecaster(target="y", missing="interpolate", **FAST).fit(frame.iloc[:200])
    Y_mask = masked._encoder.encode(frame.iloc[:200], None, fitting=True)["Y"]
    Y_fill = filled._encoder.encode(frame.iloc[:200], None, fitting=True)["Y"]
    np.testing.assert_array_equal(np.isnan(Y_mask[:, 0]), frame["y"].iloc[:200].isna())
    assert not np.isnan(Y_fill).any()
    # The inputs are the same filled values in both policies.
    np.testing.assert_array_equal(
        masked._encoder.encode(frame.iloc[:200], None, fitting=True)["A"],
        filled._encoder.encode(frame.iloc[:200], None, fitting=True)["A"],
    )
    # A missing target gives no loss and no gradient.
    Z = np.ones((1, 4))
    Y = np.array([[0.0, np.nan, 2.0, np.nan]])
    loss, dZ = masked._loss(Z, Y)
    assert loss == pytest.approx(0.5 * (1 + 1) / 4)
    np.testing.assert_array_equal(dZ, [[0.25, 0, -0.25, 0]])


def test_mask_training_ignores_the_values_of_missing_targets_windows():
    # Origins whose whole horizon is missing are dropped, not trained on.
    frame = make_frame(200)
    frame.iloc[100:130, 0] = np.nan
    f = RNNForecaster(target="y", missing="mask", **FAST).fit(frame)
    Y = f._encoder.encode(frame, None, fitting=True)["Y"]
    train, _ = fit_origins([len(frame)], [0], Y, f.window, f.horizon)
    targets = train[:, None] + np.arange(1, 5)
    assert (~np.isnan(Y[targets, 0])).any(axis=1).all()
    assert len(train) == 200 - 12 - 4 + 1 - (30 - 4 + 1)


def test_inference_filling_never_looks_past_the_origin():
    # Origins inside the 250..255 gap must not see the values after it:
    # each backtest forecast equals a forecast from the history cut at its origin.
    frame = with_gaps()
    f = RNNForecaster(target="y", missing="interpolate", **FAST).fit(frame.iloc[:200])
    fc = f.backtest(frame.iloc[200:]).forecasts
    for origin in frame.index[[245, 250, 252, 255, 256, 260]]:
        expected = f.predict(frame.loc[:origin])["y"].to_numpy()
        got = fc.loc[fc["origin"] == origin, "forecast"].to_numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5, err_msg=str(origin))
    # Changing the first value after the gap changes no forecast made inside it.
    edited = frame.copy()
    edited.iloc[256, :2] += 100.0
    fe = f.backtest(edited.iloc[200:]).forecasts
    inside = fc["origin"] < frame.index[256]
    np.testing.assert_array_equal(fc.loc[inside, "forecast"], fe.loc[inside, "forecast"])


def test_open_gap_carries_the_last_observation_forward():
    frame = with_gaps()
    f = RNNForecaster(target="y", missing="interpolate", **FAST).fit(frame.iloc[:200])
    cut = frame.iloc[:253]  # ends inside the gap: rows 250..252 missing
    carried = cut.copy()
    carried.iloc[250:253, :2] = cut.iloc[249, :2].to_numpy()
    pd.testing.assert_frame_equal(f.predict(cut), f.predict(carried))


def test_column_never_observed_uses_the_training_mean():
    frame = make_frame(200)
    f = RNNForecaster(target="y", missing="interpolate", **FAST).fit(frame)
    blind = frame.iloc[-40:].copy()
    blind["x"] = np.nan
    mean = frame.iloc[-40:].assign(x=f.scaler_.mean_[1])
    pd.testing.assert_frame_equal(f.predict(blind), f.predict(mean))
