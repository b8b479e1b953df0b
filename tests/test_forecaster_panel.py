"""Several series (sites, machines): one global model, forecasts for every series."""
import warnings

import numpy as np
import pandas as pd
import pytest
from _forecaster_data import FAST, make_frame, make_panel
from sklearn.exceptions import ConvergenceWarning

from tsrnn import RNNForecaster
from tsrnn._windows import fit_origins


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


@pytest.fixture(scope="module")
def fitted():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return RNNForecaster(target="y", series_id="site", **FAST).fit(make_panel())


def test_long_frame_with_a_series_id_column(fitted):
    assert fitted.series_ids_ == ["a", "b"]
    assert fitted.past_covariates_ == ["x", "hour"]
    forecast = fitted.predict()
    assert forecast.index.names == ["site", "timestamp"]
    assert forecast.shape == (8, 1)
    last = make_panel().index[-1]
    for key in ("a", "b"):
        part = forecast.xs(key, level="site")
        assert part.index[0] == last + pd.Timedelta("1h") and len(part) == 4


def test_multiindex_form_trains_the_same_model(fitted):
    panel = make_panel(form="multiindex")
    f = RNNForecaster(target="y", **FAST).fit(panel)
    np.testing.assert_array_equal(f._flat, fitted._flat)
    pd.testing.assert_frame_equal(f.predict(), fitted.predict())
    assert f.series_ids_ == ["a", "b"]


def test_one_model_for_all_series():
    # Each series' forecast equals a single-series forecast with the same weights.
    # No seasonal lag: the windows are built by hand below from the history's
    # rows, and a lag column would need the horizon's rows too.
    panel = make_panel()
    fitted = RNNForecaster(target="y", series_id="site", season_lags=None, **FAST).fit(panel)
    for key in ("a", "b"):
        alone = panel[panel["site"] == key].drop(columns="site")
        expected = fitted._forecast(
            fitted._windows(
                fitted._encoder.encode(
                    alone[fitted._frame_layout.columns], key, fitting=False
                )["A"],
                [len(alone) - 1], series=([key], [0]),
            )
        )[0, :, 0, 0]
        np.testing.assert_allclose(
            fitted.predict().xs(key, level="site")["y"], expected, rtol=1e-6
        )


def test_windows_never_cross_series():
    panel = make_panel(n=40)
    f = RNNForecaster(target="y", series_id="site", **FAST).fit(panel)
    lengths = [len(frame) for frame in f._frame_layout.split(panel).values()]
    train, _ = fit_origins(lengths, [0, 40], np.zeros((80, 1)), f.window, f.horizon)
    first = train - f.window + 1
    last = train + f.horizon
    assert ((first >= 40) == (last >= 40)).all()
    assert len(train) == 2 * (40 - 12 - 4 + 1)


def test_series_of_different_lengths_and_times():
    a = make_frame(120, start="2024-01-01").assign(site="a")
    b = make_frame(80, start="2024-03-01", seed=1).assign(site="b")
    f = RNNForecaster(target="y", series_id="site", **FAST).fit(pd.concat([a, b]))
    forecast = f.predict()
    assert forecast.xs("a", level="site").index[0] == a.index[-1] + pd.Timedelta("1h")
    assert forecast.xs("b", level="site").index[0] == b.index[-1] + pd.Timedelta("1h")


def test_predict_and_backtest_given_frames():
    panel = make_panel(n=200)
    train = panel.groupby("site").head(150)
    test = panel.groupby("site").tail(50)
    f = RNNForecaster(target="y", series_id="site", **FAST).fit(train)
    only_b = train[train["site"] == "b"]
    assert list(f.predict(only_b).index.get_level_values("site").unique()) == ["b"]
    result = f.backtest(test)
    fc = result.forecasts
    assert list(fc.columns[:3]) == ["site", "origin", "timestamp"]
    # Each test part follows its series' training part: context is used.
    for key in ("a", "b"):
        part = fc[fc["site"] == key]
        assert part["timestamp"].iloc[0] == test[test["site"] == key].index[0]
    assert np.isfinite(result.metrics.to_numpy()).all()


def test_backtest_and_predict_keep_the_dtype_of_the_series_id():
    # A fleet's backtest has a row per forecast step: an int32 id must not
    # come back as Python objects (36 bytes a row more, at millions of rows).
    # predict() labels its forecasts with the same dtype, so that the two
    # join with each other and with the user's frame as they are.
    panel = make_panel(n=120)
    codes = {"a": 7, "b": 3}
    numbered = panel.assign(site=panel["site"].map(codes).astype(np.int32))
    f = RNNForecaster(target="y", series_id="site", **FAST).fit(numbered)
    fc = f.backtest(numbered.groupby("site").tail(40)).forecasts
    assert fc["site"].dtype == np.int32
    assert fc["site"].drop_duplicates().tolist() == [7, 3]
    for forecast in (f.predict(), f.predict(numbered)):
        assert forecast.index.levels[0].dtype == np.int32
        assert forecast.index.get_level_values("site").unique().tolist() == [7, 3]
    by_index = numbered.set_index("site", append=True).swaplevel()
    g = RNNForecaster(target="y", **FAST).fit(by_index)
    assert g.backtest(by_index).forecasts["site"].dtype == np.int32
    assert g.predict().index.levels[0].dtype == np.int32
    # The training frame's dtype, whatever X's ids are stored as.
    wider = by_index.set_index(by_index.index.set_levels(
        by_index.index.levels[0].astype(np.int64), level=0))
    assert g.predict(wider).index.levels[0].dtype == np.int32
    # A series fit never saw, under an id wider than int32: inferred.
    unseen = numbered[numbered["site"] == 7].assign(site=np.int64(2**40))
    assert f.predict(pd.concat([numbered, unseen])).index.levels[0].dtype == np.int64


def test_layout_errors(fitted):
    with pytest.raises(ValueError, match="missing:\n- site"):
        fitted.predict(make_frame(50))
    by_index = RNNForecaster(target="y", **FAST).fit(make_panel(form="multiindex"))
    with pytest.raises(ValueError, match="fitted on several series"):
        by_index.predict(make_frame(50))
    single = RNNForecaster(target="y", **FAST).fit(make_frame(50))
    with pytest.raises(ValueError, match="fitted on a single series"):
        single.predict(make_panel(form="multiindex"))
    with pytest.raises(ValueError, match="series_id='machine' is not a column"):
        RNNForecaster(target="y", series_id="machine", **FAST).fit(make_panel())
    gappy = make_panel().iloc[np.r_[0:250, 251:400]]  # row 250 is in series b
    with pytest.raises(ValueError, match="in series 'b' is not regular"):
        RNNForecaster(target="y", series_id="site", **FAST).fit(gappy)
