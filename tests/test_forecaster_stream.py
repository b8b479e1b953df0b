"""Streaming fast path (issue 13): update() and predict() on the kept arrays.

The fast path (``_stream_context.py``) ingests the next rows of one series
in numpy and cuts windows from the kept encoded rows. Its results must be
those of the general path, which goes through the frames and encodes every
window with ``Encoder.encode`` (forced here by patching the fast path out),
and of the batch ``predict`` on the same history. Refusals must still name
the column and timestamp.
"""
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from _forecaster_data import FAST, make_frame, make_panel
from sklearn.exceptions import ConvergenceWarning

from tsrnn import RNNForecaster
from tsrnn import _stream_context
from tsrnn.exceptions import InputError

# float32 models (the default): the network may round a window cut from the
# kept rows and one gathered into a new array differently in the last bit
# (SIMD paths depend on alignment), hence the usual float32 tolerance;
# float64 models are held to 1e-10.
RTOL = 1e-6
RTOL64 = 1e-10


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)  # too few to calibrate, at times
        yield


def copy(f):
    return pickle.loads(pickle.dumps(f))


def general_path(monkeypatch):
    """Patch the fast path out: every ingest and every window through the frames."""
    monkeypatch.setattr(_stream_context.StreamingContext, "_ingest_fast", lambda self, X: None)
    monkeypatch.setattr(_stream_context.SeriesContext, "clean", lambda self, a, b: False)


def stream(f, frame, chunks, future=None):
    """update() with each chunk of rows, predict() after each; the forecasts."""
    out = []
    for rows in chunks:
        f.update(frame.iloc[rows])
        out.append(f.predict(future=None if future is None else future(f)))
    return out


def offsets(f):
    return {key: (t.offsets.copy(), {o: v.copy() for o, v in t.pending.items()})
            for key, t in f._trackers.items()}


def assert_same_stream(fast, slow, rtol):
    for a, b in zip(fast, slow, strict=True):
        pd.testing.assert_frame_equal(a, b, rtol=rtol, atol=0)


def assert_same_offsets(a, b, rtol):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(a[key][0], b[key][0], rtol=rtol, atol=1e-12)
        assert a[key][1].keys() == b[key][1].keys()
        for o in a[key][1]:
            np.testing.assert_allclose(a[key][1][o], b[key][1][o], rtol=rtol, atol=0)


def fast_and_general(monkeypatch, fitted, frame, chunks, future=None):
    """The same stream through the fast path and through the general path."""
    fast = copy(fitted)
    got = stream(fast, frame, chunks, future)
    slow = copy(fitted)
    with monkeypatch.context() as m:
        general_path(m)
        want = stream(slow, frame, chunks, future)
    rtol = RTOL64 if fitted.dtype == np.float64 else RTOL
    assert_same_stream(got, want, rtol)
    if hasattr(fast, "_trackers"):
        assert_same_offsets(offsets(fast), offsets(slow), rtol)
    return fast, got


ROWS = [slice(i, i + 1) for i in range(200, 240)]
MIXED = [slice(200, 201), slice(201, 205), slice(205, 206), slice(206, 230), slice(230, 231)]


@pytest.mark.parametrize("quantiles, calibration", [
    (None, None), ((0.1, 0.5, 0.9), None), ((0.1, 0.5, 0.9), "cqr"), ((0.1, 0.5, 0.9), "split"),
])
@pytest.mark.parametrize("target", ["y", ["y", "x"]])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stream_equals_general_path_and_batch(monkeypatch, quantiles, calibration, target,
                                             dtype):
    frame = make_frame(300)
    params = dict(FAST, quantiles=quantiles, calibration=calibration, dtype=dtype,
                  validation_fraction=0.3)
    fitted = RNNForecaster(target=target, **params).fit(frame.iloc[:200])
    for chunks in (ROWS, MIXED):
        f, got = fast_and_general(monkeypatch, fitted, frame, chunks)
        if f._tracks():
            continue  # the tracked band moves away from predict(X)'s fit offsets
        rtol = RTOL64 if dtype == np.float64 else RTOL
        for rows, forecast in zip(chunks, got):
            history = frame.iloc[: rows.stop]
            pd.testing.assert_frame_equal(forecast, f.predict(history), rtol=rtol, atol=0)


def test_tracked_band_equals_backtest_replay():
    # backtest replays the stream from the fit offsets: its forecast from
    # every origin is the one update() issued from it. To float32 rounding:
    # backtest runs all origins in one batch, the stream one at a time.
    frame = make_frame(300)
    fitted = RNNForecaster(target="y", **dict(FAST, quantiles=(0.1, 0.5, 0.9),
                                               validation_fraction=0.3)).fit(frame.iloc[:200])
    assert fitted._tracks()
    bt = copy(fitted).backtest(frame.iloc[200:260]).forecasts
    f = copy(fitted)
    for i in range(200, 236):
        f.update(frame.iloc[i : i + 1])
        got = f.predict()
        want = bt[bt["origin"] == frame.index[i]]
        for col in ("q0.1", "q0.5", "q0.9"):
            np.testing.assert_allclose(got[f"y_{col}"].to_numpy(),
                                       want[f"forecast_{col}"].to_numpy(),
                                       rtol=1e-6)


def test_known_future_stream(monkeypatch):
    frame = make_frame(300)
    fitted = RNNForecaster(target="y", known_future=["hour"], **FAST).fit(frame.iloc[:200])

    def future(f):
        last = f._context[None].last
        return frame.loc[last + pd.Timedelta("1h") : last + pd.Timedelta("4h"), ["hour"]]

    f, got = fast_and_general(monkeypatch, fitted, frame, ROWS, future)
    for rows, forecast in zip(ROWS, got):
        history = frame.iloc[: rows.stop]
        fut = frame.iloc[rows.stop : rows.stop + 4][["hour"]]
        pd.testing.assert_frame_equal(forecast, f.predict(history, future=fut), rtol=RTOL,
                                      atol=0)


@pytest.mark.parametrize("calibration", [None, "cqr"])
def test_several_series(monkeypatch, calibration):
    panel = make_panel(240)
    fitted = RNNForecaster(target="y", series_id="site", calibration=calibration,
                           **dict(FAST, quantiles=(0.1, 0.5, 0.9), validation_fraction=0.3)
                           ).fit(panel.groupby("site").head(160))
    rest = panel.groupby("site").tail(80)
    # Interleaved rows of both series, one timestamp at a time, then a chunk.
    long = pd.concat([rest.groupby("site").nth(list(range(i, i + 1))) for i in range(30)])
    chunks = [slice(2 * i, 2 * i + 2) for i in range(20)] + [slice(40, 60)]
    f, got = fast_and_general(monkeypatch, fitted, long, chunks)
    if calibration is None:
        history = panel.groupby("site").head(190)
        pd.testing.assert_frame_equal(got[-1], f.predict(history), rtol=RTOL, atol=0)


def test_interpolated_gaps_stream(monkeypatch):
    frame = make_frame(300)
    frame.iloc[205:207, 0] = np.nan  # a target gap, closed at 207
    frame.iloc[220, 1] = np.nan  # a covariate gap
    frame.iloc[230:236, 1] = np.nan  # open at several origins
    fitted = RNNForecaster(target="y", missing="interpolate", **FAST).fit(frame.iloc[:200])
    f, got = fast_and_general(monkeypatch, fitted, frame, ROWS)
    for rows, forecast in zip(ROWS, got):
        pd.testing.assert_frame_equal(forecast, f.predict(frame.iloc[: rows.stop]),
                                      rtol=RTOL, atol=0)
    # The band too (tracked, with NaN truths that check nothing).
    fitted = RNNForecaster(target="y", missing="interpolate",
                           **dict(FAST, quantiles=(0.1, 0.5, 0.9), validation_fraction=0.3)
                           ).fit(frame.iloc[:200])
    fast_and_general(monkeypatch, fitted, frame, ROWS)
    fast_and_general(monkeypatch, fitted, frame, MIXED)


def test_skipped_timestamp(monkeypatch):
    frame = make_frame(300)
    fitted = RNNForecaster(target="y", **FAST).fit(frame.iloc[:200])
    f = copy(fitted)
    f.update(frame.iloc[200:201])
    # Documented: rows must continue the grid; a skipped step is refused,
    # named, and leaves the context as it was.
    with pytest.raises(InputError, match="not regular"):
        f.update(frame.iloc[202:203])
    assert f._context[None].last == frame.index[200]
    with pytest.raises(InputError, match="needs rows after 2024-01-09 08:00"):
        f.update(frame.iloc[200:201])
    # With freq= the skipped step becomes a gap, filled with missing="interpolate".
    resampling = RNNForecaster(target="y", freq="h", missing="interpolate", **FAST
                               ).fit(frame.iloc[:200])
    chunks = [slice(200, 201), slice(202, 203), slice(203, 204), slice(204, 210)]
    f, got = fast_and_general(monkeypatch, resampling, frame, chunks)
    history = frame.drop(frame.index[201]).iloc[:209]
    pd.testing.assert_frame_equal(got[-1], f.predict(history), rtol=RTOL, atol=0)


def test_refusals_name_the_column_and_timestamp():
    frame = make_frame(300)
    f = RNNForecaster(target="y", **FAST).fit(frame.iloc[:200])
    row = frame.iloc[200:201]
    with pytest.raises(ValueError, match="feature names"):
        f.update(row.rename(columns={"x": "z"}))
    with pytest.raises(ValueError, match="feature names"):
        f.update(row[["x", "y", "hour"]])
    with pytest.raises(ValueError, match="missing:\n- hour"):
        f.update(row[["y", "x"]])
    bad = row.copy()
    bad.iloc[0, 1] = np.nan
    with pytest.raises(InputError, match=r"Column 'x' has a missing value at 2024-01-09 08:00"):
        f.update(bad)
    bad.iloc[0, 1] = np.inf
    with pytest.raises(InputError, match=r"column 'x' at 2024-01-09 08:00:00 is inf"):
        f.update(bad)
    bad.iloc[0, 1] = 1e300
    with pytest.raises(InputError, match=r"'x' at 2024-01-09 08:00:00 is 1e\+300"):
        f.update(bad)
    with pytest.raises(TypeError, match="DatetimeIndex"):
        f.update(row.reset_index(drop=True))
    assert f._context[None].last == frame.index[199]
    # And the next good row goes through.
    f.update(row)
    assert f._context[None].last == frame.index[200]


def test_context_frames_and_pickle():
    frame = make_frame(300)
    f = RNNForecaster(target="y", **FAST).fit(frame.iloc[:200])
    for i in range(200, 230):
        f.update(frame.iloc[i : i + 1])
    ctx = f._context[None].frame()
    # The kept context is the window plus the default weekly lag's 168 rows.
    kept = f.window_ + 168
    assert f._encoder.lags == (168,)
    pd.testing.assert_frame_equal(ctx, frame.iloc[230 - kept:230][["y", "x", "hour"]],
                                  check_freq=False)
    assert ctx.index.freq == "h"
    # The next row in order takes the fast path (the tests above compare it
    # with the general one); a skipped step does not.
    assert f._ingest_fast(frame.iloc[230:232]) is not None
    assert f._ingest_fast(frame.iloc[231:232]) is None
    g = copy(f)
    g.update(frame.iloc[230:231])
    f.update(frame.iloc[230:231])
    pd.testing.assert_frame_equal(g.predict(), f.predict())


def test_context_counts_its_trailing_rows_without_gaps():
    # SeriesContext.n_clean lets a window at the end of the context skip the
    # scan for gaps; it must follow the rows through the fast path (clean
    # rows), the general path (a gap) and the context's tail.
    frame = make_frame(300)
    frame.iloc[205, 1] = np.nan
    f = RNNForecaster(target="y", missing="interpolate", **FAST).fit(frame.iloc[:200])
    for i in range(200, 230):
        f.update(frame.iloc[i : i + 1])
        ctx = f._context[None]
        gaps = np.flatnonzero(np.isnan(ctx.raw).any(axis=1))
        assert ctx.n_clean == (len(ctx) - 1 - gaps[-1] if len(gaps) else len(ctx))


@pytest.mark.parametrize("tz", [None, "Europe/Berlin"])
def test_future_index_across_ranges_made_ahead(monkeypatch, tz):
    # predict() slices its future index from a range made ahead (TimeGrid);
    # with a short range it is made anew every few rows, and every index
    # must be pd.date_range's, freq and name included.
    monkeypatch.setattr(_stream_context.TimeGrid, "_AHEAD", 3)
    # Rows 200-215 span the change to summer time of 2024-03-31 01:00 UTC.
    frame = make_frame(300, start="2024-03-22 20:00")
    frame.index = frame.index.tz_localize("UTC").tz_convert(tz)
    f = RNNForecaster(target="y", **FAST).fit(frame.iloc[:200])
    for i in range(200, 215):
        f.update(frame.iloc[i : i + 1])
        want = pd.date_range(frame.index[i] + pd.Timedelta("1h"), periods=4, freq="h",
                             name="timestamp")
        for _ in range(2):  # made, then sliced from the range
            got = f.predict().index
            pd.testing.assert_index_equal(got, want)
            assert got.freq == want.freq


def test_weight_cache_follows_the_buffer():
    # The network's views of its weights are made once per weight buffer
    # (_network.py). A refit, set_params and a refit, a warm start and new
    # weights written in place must all forecast as a copy without the cache
    # (pickling drops it) does.
    frame = make_frame(300)
    history = frame.iloc[:220]
    # Any trained epoch is kept (min_network_gain=0): the weights must move
    # for the last assertion to say something.
    params = dict(FAST, min_network_gain=0)
    f = RNNForecaster(target="y", **params).fit(frame.iloc[:200])
    before = f.predict(history)
    assert f._cached_weights.flat is f._flat
    assert not hasattr(copy(f), "_cached_weights")

    def same_as_uncached():
        pd.testing.assert_frame_equal(f.predict(history), copy(f).predict(history))

    f.fit(frame.iloc[40:240])
    same_as_uncached()
    f.set_params(hidden_layer_sizes=(5, 3)).fit(frame.iloc[:200])
    same_as_uncached()
    f.set_params(warm_start=True, max_iter=1).fit(frame.iloc[:260])
    same_as_uncached()
    other = RNNForecaster(target="y", **dict(params, hidden_layer_sizes=(5, 3), random_state=1))
    f.load_state_dict(other.fit(frame.iloc[:200]).state_dict())
    same_as_uncached()
    assert not f.predict(history).equals(before)


def test_nan_weight_refused_at_inference():
    # Inference checks the weights' layout once per buffer, their values on
    # every call: a NaN written into them is refused by name, as rnn_forward does.
    frame = make_frame(300)
    f = RNNForecaster(target="y", **FAST).fit(frame.iloc[:200])
    f.predict(frame.iloc[:210])
    f.rnn_params_["weight_hh_l0"][0, 0] = np.nan
    with pytest.raises(ValueError, match=r"params\['weight_hh_l0'\] contains NaN or inf"):
        f.predict(frame.iloc[:210])


def test_pickle_after_update_forecasts_the_same():
    # The caches (weight views, the future stamps made ahead) are rebuilt
    # after unpickling; the restored forecaster streams on identically.
    frame = make_frame(300)
    f = RNNForecaster(target="y", **dict(FAST, quantiles=(0.1, 0.5, 0.9),
                                          validation_fraction=0.3)).fit(frame.iloc[:200])
    for i in range(200, 210):
        f.update(frame.iloc[i : i + 1])
        f.predict()
    assert not [name for name in f.__getstate__() if name.startswith("_cached_")]
    g = copy(f)
    pd.testing.assert_frame_equal(g.predict(), f.predict())
    for i in range(210, 220):
        f.update(frame.iloc[i : i + 1])
        g.update(frame.iloc[i : i + 1])
        pd.testing.assert_frame_equal(g.predict(), f.predict())


def test_refused_update_leaves_the_stream_as_it_was(monkeypatch):
    # update() stores a row in the context's storage before the forecasts
    # it completes are checked (_stream_context._Rows). When it is refused
    # after that, the context is the one before, and the rows that follow
    # must forecast as if the refused call never happened, across the
    # storage's copies when its room runs out.
    frame = make_frame(300)
    fitted = RNNForecaster(target="y", **dict(FAST, quantiles=(0.1, 0.5, 0.9),
                                               validation_fraction=0.3)).fit(frame.iloc[:200])
    f, g = copy(fitted), copy(fitted)

    def refuse(*args):
        raise RuntimeError("refused")

    with monkeypatch.context() as m:
        m.setattr(RNNForecaster, "_track", refuse)
        with pytest.raises(RuntimeError, match="refused"):
            f.update(frame.iloc[200:201])
    assert f._context[None].last == frame.index[199]
    for i in range(200, 260):
        f.update(frame.iloc[i : i + 1])
        g.update(frame.iloc[i : i + 1])
        pd.testing.assert_frame_equal(f.predict(), g.predict())
    pd.testing.assert_frame_equal(f._context[None].frame(), g._context[None].frame())


def test_contexts_grown_from_one_context_are_independent():
    # Contexts share their storage with the ones grown from them; growing
    # one context twice must give two contexts that each hold their rows.
    frame = make_frame(300)
    f = RNNForecaster(target="y", **FAST).fit(frame.iloc[:200])
    ctx, columns = f._context[None], ["y", "x", "hour"]

    def grown(i):
        raw = frame.iloc[i : i + 1][columns].to_numpy()
        index = frame.index[i : i + 1]
        return ctx.appended(raw, f._encoder.encode_rows(raw), index, int(index.asi8[-1]),
                            clean=True)

    before = ctx.raw.copy()
    a, b = grown(200), grown(201)
    np.testing.assert_array_equal(ctx.raw, before)
    for child, i in ((a, 200), (b, 201)):
        np.testing.assert_array_equal(child.raw[:-1], before)
        np.testing.assert_array_equal(child.raw[-1], frame.iloc[i][columns].to_numpy())
        assert child.last == frame.index[i]
