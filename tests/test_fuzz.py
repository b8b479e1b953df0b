"""Property tests (hypothesis) over every public entry point."""
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from tsrnn import RNNForecaster, RNNRegressor


@pytest.mark.parametrize("scale", [1e300, 1e38, -3e38])
def test_targets_beyond_float32_report_divergence_not_dout(scale):
    # Found by fuzzing: y = 1e300 became inf in float32 and the inf reached
    # rnn_backward, which complained about "dout", an argument users never pass.
    X = np.random.RandomState(0).randn(20, 2)
    reg = RNNRegressor(hidden_layer_sizes=(3,), window=4, max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.raises(ValueError, match="Training diverged.*Scale X and y"):
            reg.fit(X, X[:, 0] * scale)
    assert not hasattr(reg, "n_features_in_")


# RNNForecaster inputs that fuzzing found crashing (IndexError, ZeroDivisionError),
# forecasting NaN silently, or failing inside the kernels with a message about
# their argument `x`.

def _hourly(n=60, **columns):
    index = pd.date_range("2024-01-01", periods=n, freq="h", name="t")
    t = np.arange(n)
    data = {"y": np.sin(t / 4), "x": np.cos(t / 4)}
    data.update(columns)
    return pd.DataFrame(data, index=index)


def _forecaster(**kw):
    params = dict(target="y", window=6, horizon=3, hidden_layer_sizes=3, max_iter=1,
                  random_state=0)
    return RNNForecaster(**{**params, **kw})


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_forecaster_regressions_found_by_fuzzing():
    df = _hourly()
    with pytest.raises(ValueError, match="X has no rows"):
        _forecaster().fit(df.iloc[:0])
    fitted = _forecaster().fit(df)
    for call in (fitted.predict, fitted.backtest):
        with pytest.raises(ValueError, match="X has no rows"):
            call(df.iloc[:0])
    fitted.update(df.iloc[:0])  # nothing new: still allowed
    for freq in ("0h", "-1h"):
        with pytest.raises(ValueError, match="freq must be a positive time step"):
            _forecaster(freq=freq).fit(df)
    for missing in ("interpolate", "mask"):
        with pytest.raises(ValueError, match="Target column 'y' has no observed value"):
            _forecaster(missing=missing).fit(df.assign(y=np.nan))
    for col, value in (("y", 1e300), ("x", -1e200)):
        with pytest.raises(ValueError, match=f"Column '{col}' has values too large"):
            _forecaster().fit(df.assign(**{col: df[col] * value}))
    with pytest.raises(ValueError, match=r"X column 'x' at 2024-01-01 05:00:00 is -inf"):
        fitted.predict(df.assign(x=np.where(np.arange(60) == 5, -np.inf, df["x"])))
    with pytest.raises(ValueError, match="X column 'y' .* outside the range of float32"):
        fitted.backtest(df.assign(y=1e300))
    kf = _forecaster(known_future=["x"]).fit(df.iloc[:50])
    with pytest.raises(ValueError, match="future column 'x' at step 2 after the history is inf"):
        kf.predict(future=df.iloc[50:53].assign(x=[0.0, np.inf, 0.0]))
    # The same values in a float64 model are fine: finite forecasts.
    wide = _forecaster(dtype=np.float64).fit(df)
    assert np.isfinite(wide.predict(df.assign(y=1e300)).to_numpy()).all()


def test_forecaster_is_not_fitted_after_a_failed_fit():
    f = _forecaster(window=100)
    with pytest.raises(ValueError, match="Too few rows"):
        f.fit(_hourly())
    for call in (f.predict, lambda: f.backtest(_hourly()), lambda: f.update(_hourly())):
        with pytest.raises(NotFittedError):  # was AttributeError: no '_context'
            call()
