"""ONNX export of RNNForecaster, run by onnxruntime against predict().

The graph gets the raw window (and the known-future values) of several
forecast origins in one batch and must return what predict() returns for
the history ending at each origin: every cell and baseline kind, quantiles,
several targets, past and known-future covariates, relative inputs, several
series. The head of each fitted model is replaced by large random weights,
so the network's corrections weigh as much in the forecast as the baseline
and a wrong recurrent layer could not hide behind it. "Equal to 1e-5
relative" is |got - want| <= 1e-5 * (|want| + max |want|), as in
test_onnx.py.
"""
import json
import warnings

import numpy as np
import pandas as pd
import pytest
from _forecaster_data import FAST, make_frame, make_panel
from sklearn.exceptions import ConvergenceWarning

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from tsrnn import RNNForecaster  # noqa: E402
from tsrnn._baselines import LagBaseline, LinearBaseline  # noqa: E402
from tsrnn._calendar import wall_seconds  # noqa: E402
from tsrnn._windows import seasonal_lags  # noqa: E402
from tsrnn.onnx import OPSET, to_onnx  # noqa: E402

CELLS = ("lstm", "gru", "peephole")
BASELINES = ("persistence", "seasonal", "auto")
H = FAST["horizon"]
CUTS = (150, 223, 300)  # forecast origins: the last row of df.iloc[:n]
# Small models, a season short enough for the window to see it.
BASE = dict(FAST, season=6)
RICH = dict(target=["y", "x"], known_future=["hour"], quantiles=(0.9, 0.1, 0.5),
            hidden_layer_sizes=(8, 6))


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


@pytest.fixture(scope="module")
def frame():
    # Targets y and x, known-future hour, past covariate z; the column order
    # differs from the model's (targets, past, known) on purpose.
    df = make_frame(300)
    df["z"] = np.random.default_rng(5).normal(size=len(df))
    return df[["x", "hour", "y", "z"]]


def future_of(history):
    index = pd.date_range(history.index[-1] + pd.Timedelta("1h"), periods=H, freq="h")
    return pd.DataFrame({"hour": index.hour.astype(float)}, index=index)


def strong_head(f, seed=0):
    """Random head weights of order one: corrections as large as the baseline."""
    rng = np.random.default_rng(seed)
    state = f.state_dict()
    state["head.weight"] = rng.normal(size=state["head.weight"].shape)
    state["head.bias"] = rng.normal(size=state["head.bias"].shape)
    return f.load_state_dict(state)


def metadata(model):
    return {p.key: p.value for p in model.metadata_props}


def onnx_forecasts(f, df, cuts=CUTS, model=None):
    model = to_onnx(f) if model is None else model
    columns = json.loads(metadata(model)["window_columns"])
    w = f.window_
    feed = {"window": np.stack([df[columns].to_numpy()[n - w : n] for n in cuts])
            .astype(np.float32)}
    if f.known_future_:
        feed["future"] = np.stack([future_of(df.iloc[:n])[f.known_future_].to_numpy()
                                   for n in cuts]).astype(np.float32)
    if f._encoder.calendar is not None:
        # The window's timestamps and the horizon's after them.
        stamps = df.index.append(future_of(df).index)
        feed["timestamps"] = np.stack([wall_seconds(stamps[n - w : n + H]) for n in cuts])
    if f._encoder.lags:
        # The targets each lag before the window's rows and the horizon's.
        targets = df[f.target_].to_numpy()
        def lagged(n, lag):
            rows = np.arange(n - w, n + H) - lag
            out = np.full((len(rows), len(f.target_)), np.nan)
            out[rows >= 0] = targets[rows[rows >= 0]]
            return out
        feed["lagged"] = np.stack([np.hstack([lagged(n, lag) for lag in f._encoder.lags])
                                   for n in cuts]).astype(np.float32)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feed)[0]


def as_array(f, forecast):
    """A predict() frame as (horizon, n_targets[, n_quantiles]), the graph's layout."""
    if f.quantiles_ is None:
        return forecast[f.target_].to_numpy()
    return np.stack([[forecast[f"{t}_q{q:g}"].to_numpy() for q in f.quantiles_]
                     for t in f.target_]).transpose(2, 0, 1)


def predicted(f, df, cuts=CUTS):
    future = (lambda h: future_of(h)) if f.known_future_ else (lambda h: None)
    return np.stack([as_array(f, f.predict(df.iloc[:n], future=future(df.iloc[:n])))
                     for n in cuts])


def assert_close(got, want, rtol=1e-5):
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())


def check_baseline_kind(f, kind):
    # The test covers what its name says: "seasonal" must have real seasonal
    # lags. ("auto" chooses from the data; test_every_linear_baseline_form
    # covers each linear form it can choose.)
    if kind != "auto":
        assert isinstance(f._baseline, LagBaseline)
        assert (f._baseline.lags.max() > 0) == (kind == "seasonal")


# Each cell and each baseline once here (one layer, no quantiles); every
# pair in the test after this one.
@pytest.mark.parametrize("cell, baseline", list(zip(CELLS, BASELINES)))
def test_one_target_matches_predict(cell, baseline, frame):
    f = strong_head(RNNForecaster(target="y", cell=cell, baseline=baseline, **BASE).fit(frame))
    check_baseline_kind(f, baseline)
    model = to_onnx(f)
    onnx.checker.check_model(model, full_check=True)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", OPSET)]
    # The default season_lags="auto" gives hourly data with season=6 the day
    # and the week as lag inputs.
    assert f._encoder.lags == (24, 168)
    assert [i.name for i in model.graph.input] == ["window", "lagged"]
    assert [o.name for o in model.graph.output] == ["forecast"]
    got = onnx_forecasts(f, frame, model=model)
    assert got.dtype == np.float32 and got.shape == (len(CUTS), H, 1)
    assert_close(got, predicted(f, frame))


@pytest.mark.parametrize("known", [False, True])
@pytest.mark.parametrize("baseline", ["persistence", "auto", "smoothing"])
def test_calendar_columns_match_predict(baseline, known, frame):
    # The graph computes the calendar from the "timestamps" input, for the
    # window's rows and the horizon's, with or without known-future columns;
    # a linear baseline with covariates reads the calendar too.
    params = BASE | RICH if known else BASE | {"target": "y"}
    f = RNNForecaster(calendar="auto", baseline=baseline, **params).fit(frame)
    assert f._encoder.calendar.cycles == ("day", "week")
    strong_head(f)
    model = to_onnx(f)
    onnx.checker.check_model(model, full_check=True)
    names = [i.name for i in model.graph.input]
    # "lagged": the default season_lags="auto" (day and week at season=6).
    assert names == (["window", "future", "timestamps", "lagged"] if known
                     else ["window", "timestamps", "lagged"])
    assert json.loads(metadata(model)["calendar_columns"]) == f._encoder.calendar.columns
    assert_close(onnx_forecasts(f, frame, model=model), predicted(f, frame))


def test_season_lags_match_predict(frame):
    # Lags of 24 and 168 steps, two targets, with the calendar: the graph
    # scales the "lagged" input with the targets' statistics, a lag before
    # the data (NaN) as the training mean, as predict does.
    f = RNNForecaster(season_lags="auto", calendar="auto", baseline="auto",
                      **BASE | RICH).fit(frame)
    assert f._encoder.lags == (24, 168)
    strong_head(f)
    model = to_onnx(f)
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["window", "future", "timestamps", "lagged"]
    assert json.loads(metadata(model)["season_lags"]) == [24, 168]
    assert_close(onnx_forecasts(f, frame, model=model), predicted(f, frame))


def test_calendar_graph_matches_encoding_across_zones_and_eras():
    # Negative seconds (before 1970) and an aware index: the graph's integer
    # Mod and the numpy encoding agree on every phase.
    from tsrnn._calendar import Calendar
    from tsrnn._onnx_forecaster import calendar_columns
    from tsrnn._onnx_graph import DOUBLE, GraphBuilder
    from onnx import TensorProto

    cal = Calendar(["day", "week", "year"])
    index = pd.date_range("1969-12-25 03:00", periods=500, freq="7h", tz="Europe/Berlin")
    seconds = wall_seconds(index)[None]
    g = GraphBuilder("calendar")
    stamps = g.add_input("s", TensorProto.INT64, [1, len(index)])
    g.add_output(calendar_columns(g, cal, stamps), "c", DOUBLE, [1, len(index), 6])
    sess = ort.InferenceSession(g.model("calendar").SerializeToString(),
                                providers=["CPUExecutionProvider"])
    got = sess.run(None, {"s": seconds})[0]
    np.testing.assert_allclose(got[0], cal.encode(index), atol=1e-12)
    # Wall clock: 03:00 local is a quarter of the day whatever the zone.
    assert got[0, 0, 0] == pytest.approx(np.sin(2 * np.pi * 3 / 24))


@pytest.mark.parametrize("baseline", BASELINES)
@pytest.mark.parametrize("cell", CELLS)
def test_quantiles_targets_and_covariates_match_predict(cell, baseline, frame):
    f = RNNForecaster(cell=cell, baseline=baseline, **BASE | RICH).fit(frame)
    check_baseline_kind(f, baseline)
    strong_head(f)
    model = to_onnx(f)
    # "lagged": the default season_lags="auto" (day and week at season=6).
    assert [i.name for i in model.graph.input] == ["window", "future", "lagged"]
    meta = metadata(model)
    # The window's columns follow feature_names_in_; the future's known_future_.
    assert json.loads(meta["window_columns"]) == ["x", "hour", "y", "z"]
    assert json.loads(meta["future_columns"]) == ["hour"]
    got = onnx_forecasts(f, frame, model=model)
    assert got.shape == (len(CUTS), H, 2, 3)
    want = predicted(f, frame)
    assert_close(got, want)
    # Sorted quantiles, whatever order the network emits them in.
    assert np.all(np.diff(got, axis=-1) >= 0)


@pytest.mark.parametrize("covariates", [False, True], ids=["targets", "covariates"])
@pytest.mark.parametrize("level", [False, True], ids=["changes", "level"])
@pytest.mark.parametrize("anchor", ["persistence", "seasonal"])
def test_every_linear_baseline_form(anchor, level, covariates, frame):
    # select_baseline picks one form from the data; set each one here, with
    # random coefficients, so every branch of the graph's linear stage runs.
    f = RNNForecaster(**BASE | RICH).fit(frame)
    lags = seasonal_lags(H, 6) if anchor == "seasonal" else np.zeros(H, np.intp)
    b = LinearBaseline(f.window_, H, 2, np.repeat(lags[:, None], 2, 1), level=level,
                       covariates=covariates, alpha=1.0)
    n_inputs = f.rnn_params_["weight_ih_l0"].shape[1]
    n_features = b._design(np.zeros((1, f.window_ + H, n_inputs)))[0].shape[1]
    rng = np.random.default_rng(1)
    b.coef_ = rng.normal(scale=0.1, size=(n_features, 2 * H))
    b.intercept_ = rng.normal(size=2 * H)
    f._baseline = b
    strong_head(f)
    assert_close(onnx_forecasts(f, frame), predicted(f, frame))


def test_auto_choices(frame):
    f = RNNForecaster(target="y", baseline="auto", window="auto",
                      cell="gru", **{k: v for k, v in BASE.items() if k != "window"})
    strong_head(f.fit(frame))
    assert_close(onnx_forecasts(f, frame), predicted(f, frame))


def test_one_step_one_quantile(frame):
    # horizon=1 and a single quantile: axes of length one the graph must keep.
    # No seasonal lag, so the window is the graph's only input.
    f = RNNForecaster(target="y", season_lags=None,
                      **BASE | {"quantiles": (0.5,), "horizon": 1}).fit(frame)
    strong_head(f)
    model = to_onnx(f)
    columns = json.loads(metadata(model)["window_columns"])
    window = np.stack([frame[columns].to_numpy()[n - f.window_ : n] for n in CUTS])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {"window": window.astype(np.float32)})
    assert got.shape == (len(CUTS), 1, 1, 1)
    want = [f.predict(frame.iloc[:n])["y_q0.5"].to_numpy() for n in CUTS]
    assert_close(got.reshape(-1), np.concatenate(want))


@pytest.mark.parametrize("form, scaling, lags", [
    ("column", "series", None), ("multiindex", "series", None), ("column", "global", None),
    ("column", "series", [24]), ("column", "global", [24]),
])
def test_several_series_in_one_batch(form, scaling, lags):
    panel = make_panel(form=form)
    if form == "column":
        # Series in other units: per-series scaling must reach the graph.
        panel.loc[panel["site"] == "b", ["y", "x"]] *= 1000.0
    f = strong_head(RNNForecaster(target="y", series_id="site", scaling=scaling,
                                  season_lags=lags, **BASE).fit(panel))
    model = to_onnx(f)
    columns = json.loads(metadata(model)["window_columns"])
    assert columns == ["y", "x", "hour"]  # the series_id column is not an input
    frames = ([g for _, g in panel.groupby("site")] if form == "column"
              else [g.droplevel(0) for _, g in panel.groupby(level=0)])
    window = np.stack([g[columns].to_numpy()[-f.window_:] for g in frames]).astype(np.float32)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {"window": window}
    names = ["window"]
    if lags:
        # The seasonal lag input, scaled with each series' target statistics.
        names.append("lagged")
        n = len(frames[0])
        feeds["lagged"] = np.stack([
            g["y"].to_numpy()[np.arange(n - f.window_, n + H) - 24][:, None] for g in frames
        ]).astype(np.float32)
    if scaling == "series":
        # Scaled per series: each row names its series, and needs to.
        assert [i.name for i in model.graph.input] == names + ["series"]
        feeds["series"] = np.array([f.series_ids_.index(k) for k in ["a", "b"]], np.int64)
    else:
        assert [i.name for i in model.graph.input] == names
    (got,) = sess.run(None, feeds)
    want = f.predict(panel)
    for i, key in enumerate(["a", "b"]):
        assert_close(got[i], as_array(f, want.loc[key]))


def test_float64_forecaster(frame):
    f = RNNForecaster(target="y", dtype=np.float64, **BASE).fit(frame)
    strong_head(f)
    assert_close(onnx_forecasts(f, frame), predicted(f, frame), rtol=1e-4)


@pytest.mark.parametrize("missing", ["interpolate", "mask"])
def test_gap_filling_cannot_be_exported(missing, frame):
    f = RNNForecaster(target="y", missing=missing, **BASE).fit(frame)
    with pytest.raises(ValueError, match=rf"cannot export .* missing='{missing}'.*Refit with "
                                         "missing='raise'"):
        to_onnx(f)


# What to_onnx reads from a fitted forecaster, and what it knows it can
# ignore (training state, history, scores). A new fitted attribute or
# parameter may be a new stage of predict (calibration offsets, an average of
# networks): export it in _onnx_forecaster.py, or add it here if predict
# does not use it.
EXPORTED = {"_baseline", "_cell", "_encoder", "_flat", "_layout", "_frame_layout",
            "feature_names_in_", "n_outputs_", "quantiles_", "window_", "_calibration",
            "_head_levels", "_directions", "_network_inputs"}
# _trackers: the offsets update() tracks for the kept contexts (a running
# forecaster's state, not part of predict(X)); _context_lengths: rows seen;
# _level_scaling: fit's choice of the band's error model, which predict(X)
# reads from _calibration (relative, floor).
NOT_IN_PREDICT = {"_adam_t", "_context", "_n_averaged", "_n_decay", "_no_improvement_count",
                  "_trackers", "_context_lengths", "_level_scaling",
                  "_random_state", "baseline_scores_", "best_loss_",
                  "best_validation_score_", "initial_validation_score_", "loss_curve_",
                  "mase_scale_", "n_features_in_",
                  "n_iter_", "season_", "series_ids_", "t_", "validation_scores_"}
# Made on demand from exported state (views of _flat), never pickled.
DERIVED = {"_cached_weights"}
PARAMS = {"target", "window", "horizon", "cell", "hidden_layer_sizes", "quantiles", "freq",
          "missing", "known_future", "series_id", "calendar", "season_lags", "season", "baseline",
          "calibration", "calibration_rate", "scaling", "network_inputs", "min_network_gain",
          "average_best_epochs", "max_windows_per_epoch", "averaging_frequency", "dropout", "alpha", "batch_size",
          "learning_rate_init",
          "max_iter", "shuffle", "random_state", "tol", "verbose", "warm_start",
          "early_stopping", "validation_fraction", "beta_1", "beta_2", "epsilon",
          "n_iter_no_change", "max_grad_norm", "forget_bias", "dtype",
          "averaging_frequency"}  # how training runs (dask workers), not the graph


def test_exporter_knows_every_fitted_attribute(frame):
    f = RNNForecaster(early_stopping=True, **BASE | RICH).fit(frame)
    fitted = {k for k in vars(f) if k not in f.get_params()}
    unknown = fitted - EXPORTED - NOT_IN_PREDICT - DERIVED
    assert not unknown, f"to_onnx does not know these fitted attributes: {sorted(unknown)}"
    new_params = set(f.get_params()) - PARAMS
    assert not new_params, f"to_onnx does not know these parameters: {sorted(new_params)}"


@pytest.mark.parametrize("calibration", ["cqr", "split", None])
def test_calibrated_bands_match_predict(calibration, frame):
    # The band's conformal offsets (and, for "split", the single median head
    # every quantile starts from) are stages of predict(X), so of the graph.
    f = RNNForecaster(calibration=calibration, **BASE | RICH).fit(frame)
    assert (f._calibration is None) == (calibration is None)
    strong_head(f)
    got = onnx_forecasts(f, frame)
    assert_close(got, predicted(f, frame))
    if calibration is not None:
        assert np.abs(f._calibration.offsets).max() > 0  # the stage is not a no-op


def test_band_relative_to_the_level_matches_predict(frame):
    # A target whose errors grow with its level (issue 24) gets offsets in
    # fractions of its median forecast; next to it an additive one. The
    # graph scales each the way predict(X) does.
    df = frame.copy()
    df["y"] *= np.exp(0.01 * np.arange(len(df)))
    df["x"] -= df["x"].mean()  # crosses zero: additive
    f = strong_head(RNNForecaster(**BASE | RICH).fit(df))
    assert f._calibration.relative.tolist() == [True, False]
    assert_close(onnx_forecasts(f, df), predicted(f, df))


@pytest.mark.parametrize("network_inputs", ["relative", "level"])
def test_network_inputs_match_predict(network_inputs, frame):
    # The network reads the targets relative to the origin (the default) or
    # as scaled; with covariates and known-future rows both must reach the
    # graph as predict builds them.
    f = strong_head(RNNForecaster(network_inputs=network_inputs, **BASE | RICH).fit(frame))
    got = onnx_forecasts(f, frame)
    assert_close(got, predicted(f, frame))
    # The same weights reading the other inputs forecast otherwise: the
    # graph's stage is not a no-op that happens to agree.
    f._network_inputs.kind = "level" if network_inputs == "relative" else "relative"
    assert np.abs(predicted(f, frame) - got).max() > 1e-2
