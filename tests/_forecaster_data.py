"""Small synthetic frames for the RNNForecaster tests (fast on 2 cores)."""
import numpy as np
import pandas as pd

# Tiny model settings: seconds per fit. Quality is tested separately, and so
# is the default band (test_forecaster_intervals.py, test_forecaster_quantiles.py):
# these tests are about point forecasts, so they ask for none.
FAST = dict(window=12, horizon=4, hidden_layer_sizes=8, max_iter=3, random_state=0,
            quantiles=None)


def make_frame(n=300, seed=0, start="2024-01-01", freq="h", level=20.0, name="timestamp"):
    """Hourly frame: a daily cycle plus AR(1) noise in ``y``, a leading sensor ``x``.

    ``x`` follows ``y`` three steps ahead, so it is informative as a past
    covariate; ``hour`` is a calendar feature usable as a known-future covariate.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n + 3)
    noise = np.zeros(n + 3)
    for i in range(1, n + 3):
        noise[i] = 0.8 * noise[i - 1] + rng.normal(scale=0.5)
    signal = level + 5 * np.sin(2 * np.pi * t / 24) + noise
    index = pd.date_range(start, periods=n, freq=freq, name=name)
    return pd.DataFrame(
        {
            "y": signal[:n],
            "x": signal[3:] + rng.normal(scale=0.1, size=n),
            "hour": index.hour.astype(float),
        },
        index=index,
    )


def make_panel(n=200, ids=("a", "b"), form="column"):
    """Long frame of several series: a ``site`` column, or an (id, time) MultiIndex."""
    frames = []
    for k, key in enumerate(ids):
        f = make_frame(n, seed=k, level=20.0 + 10 * k)
        f.insert(0, "site", key)
        frames.append(f)
    long = pd.concat(frames)
    if form == "multiindex":
        long = long.set_index("site", append=True).swaplevel(0, 1)
    return long


def make_trend_season(n=120, seed=None, start="2000-01-01", name="t"):
    """Monthly frame: a straight trend plus a 12-month and a 4-month cycle in ``y``.

    Noiseless (``seed=None``), exponential smoothing with a trend and an
    additive season forecasts it exactly, so the baseline choice takes it
    (``tests/test_ets.py``); ``seed`` adds a little noise and a random slope.
    """
    t = np.arange(n)
    slope, noise = 0.3, np.zeros(n)
    if seed is not None:
        rng = np.random.default_rng(seed)
        slope, noise = rng.uniform(-0.5, 0.5), rng.normal(scale=0.2, size=n)
    y = 20 + slope * t + 3 * np.sin(2 * np.pi * t / 12) + np.cos(2 * np.pi * t / 4) + noise
    index = pd.date_range(start, periods=n, freq="MS", name=name)
    return pd.DataFrame({"y": y}, index=index)
