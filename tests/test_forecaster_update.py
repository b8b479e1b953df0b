"""Streaming: update() moves the forecast origin without refitting; plot()."""
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from _forecaster_data import FAST, make_frame, make_panel
from sklearn.exceptions import ConvergenceWarning

from tsrnn import RNNForecaster


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


@pytest.fixture
def frame():
    return make_frame(300)


@pytest.fixture
def fitted(frame):
    return RNNForecaster(target="y", **FAST).fit(frame.iloc[:200])


def test_update_moves_the_origin_without_refitting(frame, fitted):
    weights = fitted._flat.copy()
    fitted.update(frame.iloc[200:230])
    np.testing.assert_array_equal(fitted._flat, weights)
    forecast = fitted.predict()
    assert forecast.index[0] == frame.index[230]
    pd.testing.assert_frame_equal(forecast, fitted.predict(frame.iloc[:230]))


def test_row_by_row_equals_one_batch_and_memory_stays_bounded(frame, fitted):
    batch = pickle.loads(pickle.dumps(fitted)).update(frame.iloc[200:260])
    for i in range(200, 260):
        fitted.update(frame.iloc[i : i + 1])
        # Only the window plus the longest seasonal lag (the default weekly
        # lag of hourly data, 168 rows) are kept: the cost of an update does
        # not grow with the history.
        assert len(fitted._context[None]) == fitted.window_ + 168
    pd.testing.assert_frame_equal(fitted.predict(), batch.predict())


def test_state_survives_pickling(frame, fitted):
    fitted.update(frame.iloc[200:210])
    restored = pickle.loads(pickle.dumps(fitted))
    pd.testing.assert_frame_equal(restored.predict(), fitted.predict())
    restored.update(frame.iloc[210:215])
    fitted.update(frame.iloc[210:215])
    pd.testing.assert_frame_equal(restored.predict(), fitted.predict())


def test_backtest_after_update_uses_the_new_context(frame, fitted):
    fitted.update(frame.iloc[200:250])
    fc = fitted.backtest(frame.iloc[250:]).forecasts
    assert fc["origin"].iloc[0] == frame.index[249]


def test_update_rejects_old_rows_gaps_and_missing_values(frame, fitted):
    with pytest.raises(ValueError, match="needs rows after 2024-01-09 07:00"):
        fitted.update(frame.iloc[190:210])
    with pytest.raises(ValueError, match="not regular"):
        fitted.update(frame.iloc[205:210])
    gappy = frame.iloc[200:210].copy()
    gappy.iloc[3, 1] = np.nan
    with pytest.raises(ValueError, match="Column 'x' has a missing value"):
        fitted.update(gappy)
    # A failed update leaves the state unchanged.
    assert fitted._context[None].index[-1] == frame.index[199]


def test_update_with_freq_resamples_and_fills(frame):
    f = RNNForecaster(target="y", freq="h", missing="interpolate", **FAST)
    f.fit(frame.iloc[:200])
    f.update(frame.iloc[203:210])  # three missing hours become gaps, then filled
    assert f.predict().index[0] == frame.index[210]


def test_update_several_series():
    panel = make_panel(n=120)
    f = RNNForecaster(target="y", series_id="site", **FAST).fit(panel.groupby("site").head(100))
    f.update(panel[panel["site"] == "b"].iloc[100:110])
    starts = f.predict().groupby(level="site").apply(lambda d: d.index[0][1])
    assert starts["a"] == panel.index[100] and starts["b"] == panel.index[110]
    new = make_frame(30, seed=5).assign(site="c")[panel.columns]
    f.update(new)
    assert set(f.predict().index.get_level_values("site")) == {"a", "b", "c"}


def test_plot_draws_history_forecast_and_band(frame):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    f = RNNForecaster(target="y", **FAST | {"quantiles": (0.1, 0.5, 0.9)}).fit(frame)
    ax = f.plot()
    labels = [line.get_label() for line in ax.get_lines()]
    assert "y (observed)" in labels and "y (forecast)" in labels
    assert len(ax.collections) == 1  # the 0.1-0.9 band
    forecast = ax.get_lines()[1]
    assert len(forecast.get_xdata()) == 4
    fig, ax2 = plt.subplots()
    assert f.plot(frame.iloc[:100], ax=ax2) is ax2
    plt.close("all")


def test_plot_without_matplotlib_explains_how_to_install(frame, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    f = RNNForecaster(target="y", **FAST).fit(frame)
    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        f.plot()


def test_plot_one_series_of_a_panel():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    f = RNNForecaster(target="y", series_id="site", **FAST).fit(make_panel(n=100))
    ax = f.plot(series="b")
    assert ax.get_title() == "Forecast of y, site=b"
    observed = ax.get_lines()[0]
    np.testing.assert_array_equal(
        observed.get_ydata(), make_panel(n=100).query("site == 'b'")["y"].iloc[-12:]
    )
    with pytest.raises(ValueError, match="Unknown series 'z'"):
        f.plot(series="z")
    plt.close("all")
