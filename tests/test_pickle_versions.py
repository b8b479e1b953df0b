"""Pickles across tsrnn versions (issue 24).

A pickle records the tsrnn version that wrote it. Loaded by another version,
or written before versions were recorded, an estimator whose state has
everything the running code reads loads with tsrnn's
InconsistentVersionWarning; one that lacks something is refused at load
with InconsistentVersionError, which names both versions and what is
missing, instead of an AttributeError later in predict or update. What the
running code reads is declared in tsrnn/_persistence.py; the last tests
check those tables against fitted estimators.

"Another version" is made here the way it happens: the pickle is written
while ``tsrnn.__version__`` says something else.
"""
import copy
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import sklearn
from _forecaster_data import make_frame, make_panel, make_trend_season
from sklearn.exceptions import ConvergenceWarning
from sklearn.exceptions import InconsistentVersionWarning as SklearnVersionWarning

import tsrnn
from tsrnn import RNNClassifier, RNNForecaster, RNNRegressor
from tsrnn._network import RecurrentNetwork
from tsrnn._persistence import FITTED_STATE, OPTIONAL_STATE, held_objects
from tsrnn.exceptions import InconsistentVersionError, InconsistentVersionWarning

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

OLD = "0.0.9"
SMALL = dict(hidden_layer_sizes=4, max_iter=1, random_state=0)


def _frame():
    frame = make_frame(300)
    frame["hour"] = frame.index.hour.astype(float)
    return frame


def _fit(kind):
    frame = _frame()
    if kind == "forecaster":
        return RNNForecaster(target="y", horizon=4, **SMALL).fit(frame.iloc[:280])
    if kind == "regressor":
        return RNNRegressor(window=6, **SMALL).fit(frame[["x", "hour"]], frame["y"])
    X = np.random.RandomState(0).randn(24, 5, 2)
    return RNNClassifier(**SMALL).fit(X, np.arange(24) % 3)


def _inputs(kind):
    frame = _frame()
    if kind == "regressor":
        return frame[["x", "hour"]]
    return np.random.RandomState(1).randn(6, 5, 2)


@pytest.fixture(scope="module", params=["forecaster", "regressor", "classifier"])
def fitted(request):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return request.param, _fit(request.param)


def _same_answers(kind, a, b):
    if kind == "forecaster":
        pd.testing.assert_frame_equal(a.predict(), b.predict())
        # The kept stream contexts still take new rows after a round trip
        # (on copies: the fixture's estimator is shared).
        new = _frame().iloc[280:290]
        a, b = copy.deepcopy(a), copy.deepcopy(b)
        pd.testing.assert_frame_equal(a.update(new).predict(), b.update(new).predict())
    else:
        np.testing.assert_array_equal(a.predict(_inputs(kind)), b.predict(_inputs(kind)))


def _dumps_as(version, est, monkeypatch):
    """The pickle that tsrnn ``version`` would write (None: one from before
    versions were recorded, the object's state without them)."""
    with monkeypatch.context() as m:
        if version is None:
            plain = RecurrentNetwork.__getstate__  # what __getstate__ was before
            m.setattr(type(est), "__getstate__", plain)
        else:
            m.setattr(tsrnn, "__version__", version)
        return pickle.dumps(est)


def test_a_pickle_records_the_versions_and_loads_silently(fitted):
    kind, est = fitted
    state = est.__getstate__()
    assert state["_tsrnn_version"] == tsrnn.__version__
    assert state["_sklearn_version"] == sklearn.__version__
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no version warning from the same version
        loaded = pickle.loads(pickle.dumps(est))
    # The versions are the pickle's, not attributes of the estimator.
    assert "_tsrnn_version" not in vars(loaded) and "_sklearn_version" not in vars(loaded)
    # The weights are one buffer again, and the views read it (not copies).
    np.testing.assert_array_equal(loaded._flat, est._flat)
    assert all(np.shares_memory(v, loaded._flat) for v in loaded.rnn_params_.values())
    _same_answers(kind, est, loaded)


@pytest.mark.parametrize("version", [OLD, None], ids=["older", "unrecorded"])
def test_another_version_loads_with_a_warning(fitted, version, monkeypatch):
    kind, est = fitted
    blob = _dumps_as(version, est, monkeypatch)
    with pytest.warns(InconsistentVersionWarning) as record:
        loaded = pickle.loads(blob)
    (w,) = [w for w in record if w.category is InconsistentVersionWarning]
    # Filters and handlers written for scikit-learn's warning catch ours.
    assert issubclass(w.category, SklearnVersionWarning)
    message = str(w.message)
    assert type(est).__name__ in message and f"tsrnn {tsrnn.__version__}" in message
    assert (f"tsrnn {OLD}" if version else "did not record its version") in message
    assert "Refit" in message
    assert w.message.original_tsrnn_version == version
    assert w.message.current_tsrnn_version == tsrnn.__version__
    assert w.message.current_sklearn_version == sklearn.__version__
    assert w.message.original_sklearn_version == (sklearn.__version__ if version else None)
    assert w.filename == __file__  # points at the pickle.loads above
    _same_answers(kind, est, loaded)


def _tsrnn_objects(est):
    """(path, object) of the tsrnn objects a fitted estimator pickles whose
    attributes are declared: a class that pickles its constructor's
    arguments (``__reduce__``) is rebuilt whole by its constructor."""
    state = {k: v for k, v in vars(est).items() if not k.startswith("_cached_")}
    return [(path, obj) for path, obj in held_objects(state)
            if "__reduce__" not in vars(type(obj))]


def _needed(est):
    """(path, owner, name) of every attribute the running code needs from a
    fitted estimator: its parameters, its fitted attributes, and those of the
    tsrnn objects it holds."""
    out = [(name, est, name) for name in type(est)._get_param_names()]
    out += [(name, est, name) for name in sorted(FITTED_STATE[type(est).__name__])]
    for path, obj in _tsrnn_objects(est):
        names = sorted(FITTED_STATE.get(type(obj).__qualname__, ()))
        out += [(f"{path}.{name}", obj, name) for name in names]
    return out


def test_a_state_that_lacks_what_the_code_reads_is_refused_at_load(fitted, monkeypatch):
    # An older layout: each needed attribute in turn is absent, as if the
    # version that wrote the pickle had not had it yet.
    kind, est = fitted
    needed = _needed(est)
    assert len(needed) > 40
    for i, (path, _, _) in enumerate(needed):
        older = copy.deepcopy(est)
        _, owner, name = _needed(older)[i]
        delattr(owner, name)
        blob = _dumps_as(OLD, older, monkeypatch)
        with pytest.raises(InconsistentVersionError) as info:
            pickle.loads(blob)
        exc = info.value
        assert not isinstance(exc, AttributeError)
        assert isinstance(exc, ValueError) and isinstance(exc, pickle.UnpicklingError)
        assert exc.missing == [path], (path, exc.missing)
        message = str(exc)
        for part in (type(est).__name__, f"tsrnn {OLD}", f"tsrnn {tsrnn.__version__}",
                     path, "Refit"):
            assert part in message, (part, message)


def test_an_unrecorded_version_that_lacks_state_is_named_so(monkeypatch):
    est = _fit("forecaster")
    del est._calibration.gains  # the layout before the gains were kept (f57d247)
    blob = _dumps_as(None, est, monkeypatch)
    with pytest.raises(InconsistentVersionError,
                       match=r"pickled by an earlier tsrnn that did not record its version "
                             r"and cannot be used by tsrnn .*_calibration\.gains"):
        pickle.loads(blob)


def test_an_unfitted_estimator_needs_only_its_parameters(monkeypatch):
    # Parameters added since are refused too: get_params and fit read them all.
    older = RNNRegressor(window=7)
    blob = _dumps_as(OLD, older, monkeypatch)
    with pytest.warns(InconsistentVersionWarning):
        assert pickle.loads(blob).get_params()["window"] == 7
    del older.forget_bias
    with pytest.raises(InconsistentVersionError, match=r"lacks forget_bias"):
        pickle.loads(_dumps_as(OLD, older, monkeypatch))


def test_without_the_check_an_older_layout_fails_deep_inside():
    # Why the load refuses it: set as it is, the same state (a band
    # calibration without its gains, as before f57d247) loads and then fails
    # in update() with an AttributeError about a private name.
    est = _fit("forecaster")
    state = pickle.loads(pickle.dumps(est)).__dict__
    del state["_calibration"].gains
    older = RNNForecaster.__new__(RNNForecaster)
    older.__dict__.update(state)
    older.predict()
    with pytest.raises(AttributeError, match="gains"):
        older.update(_frame().iloc[280:290])


def test_the_version_error_survives_pickling():
    # Raised in a joblib worker, it travels back to the parent pickled.
    exc = InconsistentVersionError(estimator_name="RNNForecaster", original_tsrnn_version=None,
                                   current_tsrnn_version="1.0", missing=["a", "b.c"])
    again = pickle.loads(pickle.dumps(exc))
    assert str(again) == str(exc) and again.missing == ["a", "b.c"]


# ---------------------------------------------------------------------------
# The tables of tsrnn/_persistence.py against fitted estimators
# ---------------------------------------------------------------------------

def _configurations():
    frame = _frame()
    gappy = make_frame(300)
    gappy.iloc[100:103, 1] = np.nan
    kw = dict(horizon=4, **SMALL)
    return [
        RNNForecaster(target="y", **kw).fit(frame),
        RNNForecaster(target="y", baseline="persistence", quantiles=None, **kw).fit(frame),
        RNNForecaster(target="y", baseline="seasonal", known_future=["hour"],
                      early_stopping=False, **kw).fit(frame),
        RNNForecaster(target="y", series_id="site", missing="interpolate", **kw).fit(make_panel()),
        RNNForecaster(target="y", calendar="auto", season_lags=[24], **kw).fit(frame),
        RNNForecaster(target="y", missing="mask", cell="gru", **kw).fit(gappy),
        RNNForecaster(target="y", horizon=6, season=12, baseline="smoothing",
                      **SMALL).fit(make_trend_season(120)),
        RNNRegressor(window=5, **SMALL).fit(frame[["x"]], frame["y"]),
        RNNRegressor(window=5, early_stopping=True, **SMALL).fit(frame[["x"]].to_numpy(),
                                                                 frame["y"]),
        RNNClassifier(**SMALL).fit(np.random.RandomState(0).randn(20, 5, 2),
                                   np.arange(20) % 2),
    ]


def test_the_tables_list_what_fitted_estimators_hold():
    # A fitted attribute added, renamed or dropped anywhere (the estimators
    # or the tsrnn objects they keep) must be declared in FITTED_STATE or
    # OPTIONAL_STATE: pickles of earlier versions lack it, and are then
    # refused at load with a clear error instead of failing in predict.
    seen_classes, problems = set(), []
    for est in _configurations():
        params = set(type(est)._get_param_names())
        top = {k for k in vars(est) if k not in params and not k.startswith("_cached_")}
        objects = [(type(est).__name__, top)]
        objects += [(type(o).__qualname__, set(vars(o))) for _, o in _tsrnn_objects(est)]
        for name, attributes in objects:
            seen_classes.add(name)
            if name not in FITTED_STATE:
                problems.append(f"{name} is not in FITTED_STATE: {sorted(attributes)}")
                continue
            declared = FITTED_STATE[name]
            optional = OPTIONAL_STATE.get(name, frozenset())
            if declared - attributes:
                problems.append(f"{name} lacks {sorted(declared - attributes)}")
            if attributes - declared - optional:
                problems.append(f"{name} has {sorted(attributes - declared - optional)}, "
                                "declared nowhere")
    stale = set(FITTED_STATE) - seen_classes
    assert not stale, f"FITTED_STATE declares classes no fitted estimator holds: {stale}"
    assert not problems, (
        "tsrnn/_persistence.py's tables differ from the fitted estimators:\n"
        + "\n".join(sorted(set(problems))))
