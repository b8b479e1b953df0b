"""Property tests (hypothesis) over every public entry point.

Entry points: the functional API (init_params, rnn_forward, rnn_backward),
RNNRegressor, RNNClassifier, RNNForecaster, and the ``tsrnn forecast`` command
line (in a subprocess). Inputs are drawn with random shapes and dtypes (int,
bool, float16, object, strings, nullable pandas types), NaN / inf / huge and
tiny values anywhere, empty arrays and frames, non-monotonic, duplicated,
irregular and timezone-aware indexes, windows longer than the data, and
malformed CSV files.

The only allowed outcomes are
* a correct result: right shape, finite values (and, where a test can tell
  that the input is clean, success is required: refusing good input fails);
* a ValueError or TypeError whose message is a sentence for the user, not an
  internal argument name of a lower layer (``dout``, ``x contains``); and a
  refused fit leaves no model behind (predict raises NotFittedError).
A segfault kills the run; a hang trips the faulthandler watchdog, which dumps
every thread's stack and exits. The CLI must exit 0 with a finite forecast,
exit 2 with one ``tsrnn: error:`` line, or exit 1 with one ``tsrnn: training
failed:`` line (no traceback); neither failure leaves an output file.

Budget: the ``max_examples`` below total ~FUZZ_TOTAL cases; the module's
teardown prints the number actually run (hypothesis may stop early when a
strategy is exhausted). Reproduce a failure with the seed hypothesis prints
(``pytest tests/test_fuzz.py --hypothesis-seed=N``); failing examples are
also replayed first from the local .hypothesis database.

The explicit tests at the end are regressions for bugs these properties found.
"""
import collections
import contextlib
import faulthandler
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning, NotFittedError

import tsrnn
from tsrnn import RNNClassifier, RNNForecaster, RNNRegressor
from tsrnn.functional import init_params, param_shapes, rnn_backward, rnn_forward

pytestmark = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning",
    "ignore::RuntimeWarning",  # overflow inside sklearn/numpy on huge inputs
    "ignore::sklearn.exceptions.DataConversionWarning",
)

# Examples per property. Tuned so that the file runs in ~1-2 minutes on the
# 2-core CI machine; FUZZ_SCALE=10 multiplies them for a longer local hunt.
_SCALE = float(os.environ.get("FUZZ_SCALE", "1"))


def _n(count):
    return max(1, int(count * _SCALE))


BUDGET = {
    "init_params": _n(300),
    "rnn_forward_backward": _n(800),
    "params_and_state": _n(300),
    "regressor": _n(400),
    "classifier": _n(300),
    "forecaster": _n(300),
    "cli": _n(10),  # ~2-3 s each: a fresh interpreter, pandas and sklearn imports
}
FUZZ_TOTAL = sum(BUDGET.values())
CASES = collections.Counter()


def _settings(name):
    return settings(
        max_examples=BUDGET[name],
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                               HealthCheck.filter_too_much],
    )


@pytest.fixture(scope="module", autouse=True)
def _report_case_count(request):
    yield
    line = (f"test_fuzz: {sum(CASES.values())} fuzz cases run "
            f"(budget {FUZZ_TOTAL}): {dict(CASES)}")
    cache = getattr(request.config, "cache", None)  # None with -p no:cacheprovider
    if cache is not None:  # also kept in .pytest_cache
        cache.set("tsrnn/fuzz_cases", dict(CASES))
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin(
        "capturemanager")
    if reporter is None or capture is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():  # shown even without -s
        reporter.write_line("")
        reporter.write_line(line)


@contextlib.contextmanager
def _watchdog(name, seconds=120):
    """Count one case; kill the run with every thread's stack if it hangs."""
    CASES[name] += 1
    faulthandler.dump_traceback_later(seconds, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


# Words of the functional layer's own arguments: an estimator error that
# mentions them leaked from below instead of describing the user's input.
_INTERNAL = re.compile(r"\bdout\b|\bx contains\b|\bcache\b|params\[")


def _check_error(exc, estimator_level=True):
    assert isinstance(exc, (ValueError, TypeError)), f"{type(exc).__name__}: {exc}"
    message = str(exc)
    assert len(message) >= 10, f"unclear message: {message!r}"
    if estimator_level:
        assert not _INTERNAL.search(message), f"internal message leaked: {message}"


@contextlib.contextmanager
def _outcome(valid, estimator_level=True):
    """Run the body; allow only success, or a clear ValueError/TypeError when
    the input is not known to be valid."""
    try:
        yield
        event("outcome: result")
    except (ValueError, TypeError) as exc:
        detail = f": {str(exc)[:60]}" if os.environ.get("FUZZ_EVENTS") else ""
        event(f"outcome: {type(exc).__name__}{detail}")
        note(f"raised {type(exc).__name__}: {exc}")
        if valid:
            raise AssertionError(f"valid input refused: {type(exc).__name__}: {exc}")
        _check_error(exc, estimator_level)


# ---------------------------------------------------------------------------
# Values and arrays
# ---------------------------------------------------------------------------

# Finite but extreme, and non-finite. 1e30 survives float32, 3e38 is near its
# limit, 1e300 overflows it; 1e-300 underflows it to 0.
HUGE = [1e30, -1e30, 3e38, -3e38, 1e300, -1e300]
SPECIALS = [np.nan, np.inf, -np.inf, *HUGE, 1e-300, -0.0]

ARRAY_KINDS = ["float64", "float32", "float16", "int64", "int8", "uint8", "bool",
               "object_numbers", "object_mixed", "str", "complex"]
REAL_KINDS = {"float64", "float32", "float16", "int64", "int8", "uint8", "bool"}


@st.composite
def special_values(draw):
    """A short list of special values to plant in an array (none in 2 of 3)."""
    if draw(st.integers(0, 2)):
        return []
    return draw(st.lists(st.sampled_from(SPECIALS), min_size=1, max_size=3))


def _plant(values, specials, rng):
    flat = values.reshape(-1)
    if flat.size:
        for v in specials:
            flat[rng.integers(flat.size)] = v
    return values


def _convert(values, kind):
    """float64 array -> the requested kind (values already planted)."""
    if kind in ("float64", "float32", "float16"):
        with np.errstate(over="ignore"):
            return values.astype(kind)
    if kind in ("int64", "int8", "uint8"):
        finite = np.nan_to_num(values, nan=0, posinf=100, neginf=-100)
        info = np.iinfo(kind)
        return np.clip(np.round(finite * 10), info.min, info.max).astype(kind)
    if kind == "bool":
        return values > 0
    if kind == "object_numbers":
        return values.astype(object)
    if kind == "object_mixed":
        out = values.astype(object)
        if out.size:
            out.reshape(-1)[0] = "sensor offline"
        return out
    if kind == "str":
        return values.astype(str)
    return values.astype(np.complex128)


@st.composite
def arrays(draw, shape, kinds=ARRAY_KINDS):
    """(array, kind, specials) with moderate random values plus specials."""
    kind = draw(st.sampled_from(kinds))
    specials = draw(special_values())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = _plant(rng.normal(0, 2, size=shape), specials, rng)
    return _convert(values, kind), kind, specials


def _finite(a):
    return np.isfinite(np.asarray(a, dtype=np.float64)).all()


# ---------------------------------------------------------------------------
# Functional API
# ---------------------------------------------------------------------------

CELLS = ["lstm", "gru", "peephole"]
sizes = st.one_of(
    st.integers(-2, 6), st.booleans(), st.floats(-1, 6), st.none(), st.text(max_size=2),
    st.sampled_from([np.int64(3), np.int8(2), np.uint8(0)]),
)


@_settings("init_params")
@given(cell=st.one_of(st.sampled_from(CELLS), st.text(max_size=4), st.none()),
       input_size=sizes, hidden_size=sizes, num_layers=sizes,
       dtype=st.sampled_from([np.float32, np.float64, "float32", np.float16, int, "f8",
                              object, "nope"]),
       forget_bias=st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False,
                                                  min_value=-5, max_value=5)))
def test_fuzz_init_params(cell, input_size, hidden_size, num_layers, dtype, forget_bias):
    def positive_int(v):
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1

    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    valid = (cell in CELLS and all(positive_int(v) for v in (input_size, hidden_size,
                                                              num_layers))
             and dt in (np.float32, np.float64))
    with _watchdog("init_params"), _outcome(valid, estimator_level=False):
        params = init_params(cell, input_size, hidden_size, num_layers, dtype=dtype,
                             random_state=0, forget_bias=forget_bias)
        expected = param_shapes(cell, input_size, hidden_size, num_layers)
        assert {k: v.shape for k, v in params.items()} == expected
        assert all(v.dtype == dt and _finite(v) for v in params.values())


@st.composite
def forward_case(draw):
    cell = draw(st.sampled_from(CELLS))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    D, H, L = draw(st.integers(1, 4)), draw(st.integers(1, 5)), draw(st.integers(1, 2))
    # Mostly well-formed 3-D shapes, sometimes anything.
    shape = draw(st.one_of(
        st.tuples(st.integers(1, 40), st.integers(1, 8), st.just(D)),
        st.lists(st.integers(0, 5), min_size=0, max_size=4).map(tuple),
    ))
    x, kind, specials = draw(arrays(shape))
    bidirectional = draw(st.booleans())
    # Variable lengths (issue 14): none, one per sequence (sometimes out of
    # range, 0 or T + 1), or a list of the wrong size.
    n = shape[0] if shape else 0
    T = shape[1] if len(shape) > 1 else 1
    lengths = draw(st.one_of(
        st.none(), st.none(),
        st.lists(st.integers(1, max(T, 1)), min_size=n, max_size=n).map(np.array),
        st.lists(st.integers(0, T + 1), min_size=0, max_size=n + 1).map(np.array),
    ))
    return cell, dtype, D, H, L, x, kind, specials, bidirectional, lengths


def _lengths_valid(lengths, x):
    if lengths is None:
        return True
    return (x.ndim == 3 and lengths.dtype.kind in "iu" and lengths.shape == (x.shape[0],)
            and bool(np.all((lengths >= 1) & (lengths <= x.shape[1]))))


@_settings("rnn_forward_backward")
@given(case=forward_case(), training=st.booleans(),
       dropout=st.sampled_from([0.0, 0.0, 0.3]), data=st.data())
def test_fuzz_rnn_forward_backward(case, training, dropout, data):
    cell, dtype, D, H, L, x, kind, specials, bidirectional, lengths = case
    params = init_params(cell, D, H, L, dtype=dtype, random_state=0,
                         bidirectional=bidirectional)
    n_dirs = 2 if bidirectional else 1
    lengths_ok = _lengths_valid(lengths, x)
    with np.errstate(over="ignore", invalid="ignore"):
        converted = np.asarray(x, dtype=np.float64).astype(dtype) if kind in REAL_KINDS else None
        if converted is not None and lengths is not None and lengths_ok:
            # Steps past a sequence's length are never read.
            converted = converted[np.arange(x.shape[1]) < lengths[:, None]]
        converted_finite = converted is not None and np.isfinite(converted).all()
    valid = (kind in REAL_KINDS and x.ndim == 3 and x.shape[0] >= 1 and x.shape[1] >= 1
             and x.shape[2] == D and converted_finite and lengths_ok)
    note(f"cell={cell} dtype={dtype.__name__} x {kind}{x.shape} specials={specials} "
         f"bidirectional={bidirectional} lengths={lengths}")
    with _watchdog("rnn_forward_backward"):
        with _outcome(valid, estimator_level=False):
            out, state, cache = rnn_forward(cell, x, params, training=training,
                                            dropout=dropout, random_state=0,
                                            lengths=lengths)
        if not valid:
            return
        B, T = x.shape[:2]
        assert out.shape == (B, T, n_dirs * H) and out.dtype == dtype and _finite(out)
        for s in state if cell != "gru" else (state,):
            assert s.shape == (L * n_dirs, B, H) and _finite(s)
        if not training:
            assert cache is None
            return
        dout, dkind, dspecials = data.draw(arrays((B, T, n_dirs * H)), label="dout")
        with np.errstate(over="ignore", invalid="ignore"):
            dconv = (np.asarray(dout, dtype=np.float64).astype(dtype)
                     if dkind in REAL_KINDS else None)
            if dconv is not None and lengths is not None:
                dconv = dconv[np.arange(T) < lengths[:, None]]
            dvalid = dconv is not None and np.isfinite(dconv).all()
        with _outcome(dvalid, estimator_level=False):
            dx, grads, dstate = rnn_backward(dout, cache, dstate=state)
        if not dvalid:
            return
        assert dx.shape == x.shape and _finite(dx)
        for s in dstate if cell != "gru" else (dstate,):
            assert s.shape == (L * n_dirs, B, H) and _finite(s)
        assert {k: g.shape for k, g in grads.items()} == {k: v.shape
                                                           for k, v in params.items()}
        # Weight gradients are sums of products of inputs and output gradients;
        # with both moderate they cannot overflow, so they must be finite.
        # (Huge inputs may overflow them honestly, but never into NaN here.)
        moderate = not specials and not dspecials
        for name, g in grads.items():
            assert not np.isnan(g).any(), name
            if moderate:
                assert _finite(g), name


@st.composite
def broken_params(draw):
    """A valid params dict, sometimes with one thing wrong; (params, state, valid)."""
    cell = draw(st.sampled_from(CELLS))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    D, H, L, B = 2, 3, draw(st.integers(1, 2)), 4
    params = init_params(cell, D, H, L, dtype=dtype, random_state=0)
    state = None
    mutation = draw(st.sampled_from([
        "none", "drop", "extra", "shape", "dtype", "float16", "nan", "inf", "list",
        "not_dict", "3d", "state_ok", "state_shape", "state_nan", "state_type",
        "state_str", "state_tuple_len",
    ]))
    name = draw(st.sampled_from(sorted(params)))
    valid = mutation in ("none", "list", "state_ok")
    if mutation == "drop":
        del params[name]
    elif mutation == "extra":
        params["weight_ih_l7"] = params[name]
    elif mutation == "shape":
        params[name] = np.zeros(params[name].shape[:-1] + (params[name].shape[-1] + 1,),
                                dtype)
    elif mutation == "dtype":
        params[name] = params[name].astype(np.float64 if dtype == np.float32 else
                                           np.float32)
    elif mutation == "float16":
        params = {k: v.astype(np.float16) for k, v in params.items()}
    elif mutation in ("nan", "inf"):
        params[name] = params[name].copy()
        params[name].reshape(-1)[0] = np.nan if mutation == "nan" else np.inf
    elif mutation == "list":
        # Array-likes are accepted; a list becomes float64, so with float32
        # weights the dtypes are mixed, which is refused.
        params[name] = params[name].tolist()
        valid = dtype == np.float64
    elif mutation == "not_dict":
        params = list(params.values())
    elif mutation == "3d":
        params[name] = params[name][None]
    elif mutation.startswith("state"):
        h = np.zeros((L, B, H))
        good = (h, h) if cell != "gru" else h
        state = {
            "state_ok": good,
            "state_shape": (np.zeros((L, B + 1, H)),) * 2 if cell != "gru"
            else np.zeros((L, B, H + 1)),
            "state_nan": (h + np.nan, h) if cell != "gru" else h + np.nan,
            "state_type": "zeros",
            "state_str": h.astype(str),
            "state_tuple_len": (h,) if cell != "gru" else (h, h),
        }[mutation]
    return cell, params, state, valid, mutation, B, D


@_settings("params_and_state")
@given(case=broken_params())
def test_fuzz_params_and_state(case):
    cell, params, state, valid, mutation, B, D = case
    note(f"{cell} mutation={mutation}")
    x = np.ones((B, 5, D))
    with _watchdog("params_and_state"), _outcome(valid, estimator_level=False):
        out, final, _ = rnn_forward(cell, x, params, state=state, training=False)
        assert _finite(out)


# ---------------------------------------------------------------------------
# RNNRegressor and RNNClassifier
# ---------------------------------------------------------------------------

COLUMN_KINDS = ["float64", "float32", "float16", "int64", "bool", "Int64_na", "Float64",
                "object_numbers", "object_mixed", "str", "string", "category"]
CLEAN_COLUMNS = {"float64", "float32", "float16", "int64", "bool", "Float64"}
INDEX_KINDS = ["range", "shuffled", "duplicated", "hourly", "hourly_tz_dst",
               "hourly_reversed", "hourly_duplicated", "irregular", "strings"]


def _column(values, kind):
    if kind == "Int64_na":
        ints = np.nan_to_num(values, nan=0, posinf=9, neginf=-9).clip(-1e6, 1e6)
        col = pd.array(np.round(ints).astype(np.int64), dtype="Int64")
        col[::3] = pd.NA
        return col
    if kind == "Float64":
        return pd.array(values, dtype="Float64")
    if kind == "string":
        return pd.array(values.astype(str), dtype="string")
    if kind == "category":
        return pd.Categorical(np.round(np.nan_to_num(values)).clip(-3, 3))
    return _convert(values, kind)


def _index(kind, n, rng):
    hourly = pd.date_range("2024-03-30", periods=n, freq="h", name="time")
    if kind == "range":
        return pd.RangeIndex(n)
    if kind == "shuffled":
        return pd.Index(rng.permutation(n))
    if kind == "duplicated":
        return pd.Index(np.arange(n) // 2)
    if kind == "hourly":
        return hourly
    if kind == "hourly_tz_dst":  # crosses the spring DST change in Berlin
        return pd.date_range("2024-03-30", periods=n, freq="h", tz="Europe/Berlin",
                             name="time")
    if kind == "hourly_reversed":
        return hourly[::-1]
    if kind == "hourly_duplicated":
        return hourly[np.arange(n) // 2 * 2] if n else hourly
    if kind == "irregular":
        return pd.DatetimeIndex(np.sort(rng.choice(hourly.append(hourly + pd.Timedelta(
            "30min")), n, replace=False)) if n else hourly, name="time")
    return pd.Index([f"t{i}" for i in range(n)])


@st.composite
def frames(draw, min_rows=0, max_rows=40, max_cols=4, first="y", index_kinds=INDEX_KINDS):
    """(DataFrame, clean, description): random columns, index and specials.

    ``clean`` means every column is of a kind sklearn must accept and no
    special value was planted, so fitting has to succeed.
    """
    n = draw(st.integers(min_rows, max_rows))
    n_cols = draw(st.integers(0 if first is None else 1, max_cols))
    # Mostly clean columns, so that fits get far enough to be tested.
    kind = st.one_of(st.sampled_from(sorted(CLEAN_COLUMNS)), st.sampled_from(COLUMN_KINDS))
    kinds = draw(st.lists(kind, min_size=n_cols, max_size=n_cols))
    specials = draw(special_values())
    index_kind = draw(st.sampled_from(index_kinds))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    t = np.arange(n)
    columns = {}
    for j, kind in enumerate(kinds):
        values = np.sin(t / (3 + j)) * 2 + 0.3 * rng.normal(size=n)
        name = first if (j == 0 and first is not None) else f"s{j}"
        columns[name] = _column(_plant(values, specials if j == 0 or rng.random() < 0.5
                                       else [], rng), kind)
    frame = pd.DataFrame(columns, index=_index(index_kind, n, rng))
    clean = set(kinds) <= CLEAN_COLUMNS and not specials
    return frame, clean, f"{n}x{n_cols} {kinds} index={index_kind} specials={specials}"


@st.composite
def estimator_params(draw):
    return dict(
        cell=draw(st.sampled_from(CELLS)),
        hidden_layer_sizes=draw(st.sampled_from([(3,), (4, 2)])),
        window=draw(st.integers(1, 50)),  # often longer than the data
        batch_size=draw(st.sampled_from(["auto", 1, 7])),
        dropout=draw(st.sampled_from([0.0, 0.2])),
        dtype=draw(st.sampled_from(["float32", "float64"])),
        early_stopping=draw(st.sampled_from([False, False, False, True])),
        validation_fraction=draw(st.sampled_from([0.1, 0.5])),
        max_iter=draw(st.integers(1, 2)),
        random_state=0,
        # Issue 14: both refused on streams and with each other.
        bidirectional=draw(st.sampled_from([False, False, False, True])),
        tbptt_length=draw(st.sampled_from([None, None, 1, 3])),
    )


def _size(top):
    """A dimension: 1..top, and 0 about one time in ten."""
    return st.one_of(*[st.integers(1, top)] * 9, st.just(0))


@st.composite
def regression_inputs(draw):
    """(X, y, clean, description) in every shape the estimators accept or refuse."""
    layout = draw(st.sampled_from(["frame"] * 4 + ["array2d"] * 3 + ["array3d"] * 3
                                  + ["list", "array1d", "array4d"]))
    if layout == "frame":
        X, clean, desc = draw(frames(first="a"))
        n = len(X)
        clean = clean and min(X.shape) > 0
    elif layout == "array3d":
        shape = (draw(_size(12)), draw(_size(6)), draw(_size(3)))
        X, kind, specials = draw(arrays(shape))
        n, clean, desc = shape[0], kind in REAL_KINDS and not specials and min(shape) > 0, \
            f"3-D {kind}{shape} {specials}"
        if clean and shape[1] > 1 and draw(st.booleans()):
            # Sequences that end early, padded with NaN: still clean.
            ends = np.array(draw(st.lists(st.integers(1, shape[1]), min_size=shape[0],
                                          max_size=shape[0])))
            X = X.astype(np.float64)
            X[np.arange(shape[1]) >= ends[:, None]] = np.nan
            desc += f" padded to {ends.tolist()}"
    else:
        ndim = {"array2d": 2, "list": 2, "array1d": 1, "array4d": 4}[layout]
        shape = tuple(draw(_size(30 if i == 0 else 3)) for i in range(ndim))
        X, kind, specials = draw(arrays(shape))
        n = shape[0] if shape else 0
        clean = (ndim == 2 and kind in REAL_KINDS and not specials and min(shape) > 0)
        desc = f"{layout} {kind}{shape} {specials}"
        if layout == "list":
            X = X.tolist()
    n_y = n if draw(st.integers(0, 9)) else n + 1  # sometimes the wrong length
    y_values, y_kind, y_specials = draw(arrays((n_y,), kinds=["float64", "float32",
                                                               "int64", "float16"]))
    clean = clean and n_y == n and not y_specials
    return X, y_values, clean, f"X: {desc}; y: {y_kind}{y_specials} n_y={n_y}"


def _fit_may_refuse_clean(est, n, X=None):
    """Refusals that are correct even for clean data: a validation block too
    small for early stopping; bidirectional on a stream or with tbptt_length."""
    if est.bidirectional and (est.tbptt_length is not None or np.ndim(X) != 3):
        return True
    return est.early_stopping


def _check_unfitted_after_refusal(est, fitted):
    """A refused fit must leave no model behind: predicting raises NotFittedError."""
    if fitted:
        return
    with pytest.raises(NotFittedError, match="not fitted yet"):
        if isinstance(est, RNNForecaster):
            est.predict()
        else:
            est.predict(np.zeros((3, 2)))


def _check_predictions(pred, n, est):
    pred = np.asarray(pred)
    assert pred.shape[0] == n
    if isinstance(est, RNNRegressor):
        assert pred.shape[1:] in ((), (est.n_outputs_,)) and _finite(pred)


@_settings("regressor")
@given(inputs=regression_inputs(), params=estimator_params(), again=st.booleans(),
       data=st.data())
def test_fuzz_rnn_regressor(inputs, params, again, data):
    X, y, clean, desc = inputs
    note(desc)
    est = RNNRegressor(**params)
    n = len(X)
    fitted = False
    # Sample weights: none, positive, or refused (negative, all zero, wrong length).
    weights = data.draw(st.sampled_from(["none", "none", "positive", "negative", "zeros",
                                         "short"]), label="sample_weight")
    sample_weight = {"none": None, "positive": np.linspace(0.5, 2, n), "negative": -np.ones(n),
                     "zeros": np.zeros(n), "short": np.ones(n + 1)}[weights]
    with _watchdog("regressor"):
        valid = (clean and not _fit_may_refuse_clean(est, n, X)
                 and weights in ("none", "positive"))
        with _outcome(valid):
            est.fit(X, y, sample_weight=sample_weight)
            fitted = True
            with np.errstate(all="ignore"):
                huge = np.abs(np.asarray(X, dtype=np.float64)).max() > 1e20
            if again:
                est.partial_fit(X, y)
            pred = est.predict(X)
            _check_predictions(pred, n, est)
            assert np.isfinite(est.loss_curve_).all()
            if not huge:
                # A model is kept only with finite weights (else "diverged").
                assert np.isfinite(est._flat[0]).all()
            # A shorter stream or fewer sequences: one output each.
            _check_predictions(est.predict(X[: max(1, n // 2)]), max(1, n // 2), est)
        _check_unfitted_after_refusal(est, fitted)


@st.composite
def labels(draw, n):
    kind = draw(st.sampled_from(["int", "str", "bool", "float_classes"] * 2
                                + ["continuous", "nan", "one_class", "object_none"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    k = draw(st.integers(2, 4))
    codes = rng.integers(0, k, size=n)
    if kind == "int":
        y = codes
    elif kind == "str":
        y = np.array(["idle", "run", "fault", "off"])[codes]
    elif kind == "bool":
        y = codes % 2 == 0
    elif kind == "float_classes":  # integral floats are classes; 0.5 would be continuous
        y = codes.astype(float) + 1
    elif kind == "continuous":
        y = rng.normal(size=n)
    elif kind == "nan":
        y = codes.astype(float)
        if n:
            y[0] = np.nan
    elif kind == "one_class":
        y = np.zeros(n, dtype=int)
    else:
        y = np.array(["a", None] * n, dtype=object)[:n]
    ok = kind in ("int", "str", "bool", "float_classes") and len(np.unique(y)) >= 2
    return y, ok, kind


@_settings("classifier")
@given(inputs=regression_inputs(), params=estimator_params(), data=st.data())
def test_fuzz_rnn_classifier(inputs, params, data):
    X, _, clean, desc = inputs
    n = len(X)
    y, labels_ok, kind = data.draw(labels(n), label="y")
    note(f"{desc}; labels {kind}")
    est = RNNClassifier(**params)
    fitted = False
    with _watchdog("classifier"):
        valid = clean and labels_ok and not _fit_may_refuse_clean(est, n, X)
        with _outcome(valid):
            est.fit(X, y)
            fitted = True
            pred = est.predict(X)
            proba = est.predict_proba(X)
            assert pred.shape == (n,)
            assert set(np.unique(pred)) <= set(est.classes_)
            assert proba.shape == (n, len(est.classes_)) and _finite(proba)
            np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-6)
            # predict is the argmax of predict_proba
            np.testing.assert_array_equal(pred, est.classes_[proba.argmax(axis=1)])
        _check_unfitted_after_refusal(est, fitted)


# ---------------------------------------------------------------------------
# RNNForecaster
# ---------------------------------------------------------------------------

# Mostly time indexes: a forecaster refuses anything else at once.
TIME_INDEX_KINDS = ["hourly"] * 4 + ["hourly_tz_dst"] * 2 + INDEX_KINDS


def _forecaster_input_is_clean(frame, params, n_per_series):
    """Input RNNForecaster must accept: a regular hourly index, finite numeric
    columns of moderate size, enough rows, no early stopping."""
    index = frame.index
    if not isinstance(index, pd.DatetimeIndex) or not len(index):
        return False
    if params["freq"] not in (None, "h") or params["early_stopping"]:
        return False
    steps = np.diff(index.asi8)
    if n_per_series < params["window"] + params["horizon"] or (steps != steps[0]).any() \
            or steps[0] != pd.Timedelta("1h").value:
        return False
    numeric = [c for c in frame.columns
               if c != "site" and pd.api.types.is_numeric_dtype(frame[c])]
    with np.errstate(all="ignore"):
        values = frame[numeric].to_numpy(np.float64, na_value=np.nan)
    return "y" in numeric and np.isfinite(values).all() and np.abs(values).max() < 1e100


@_settings("forecaster")
@given(case=frames(max_rows=80, max_cols=3, index_kinds=TIME_INDEX_KINDS),
       window=st.integers(1, 30), horizon=st.integers(1, 8),
       cell=st.sampled_from(CELLS),
       missing=st.sampled_from(["raise", "interpolate", "mask"]),
       freq=st.sampled_from([None, None, "h", "30min"]),
       quantiles=st.sampled_from([None, (0.1, 0.5, 0.9)]),
       early_stopping=st.sampled_from([False, False, True]),
       known_future=st.booleans(), panel=st.sampled_from([False, False, True]))
def test_fuzz_rnn_forecaster(case, window, horizon, cell, missing, freq, quantiles,
                             early_stopping, known_future, panel):
    frame, _, desc = case
    n = len(frame)
    params = dict(target="y", window=window, horizon=horizon, cell=cell,
                  hidden_layer_sizes=3, missing=missing, freq=freq, quantiles=quantiles,
                  early_stopping=early_stopping, max_iter=1, random_state=0,
                  known_future=["s1"] if known_future and "s1" in frame else None,
                  series_id="site" if panel else None)
    if panel:
        frame = pd.concat([frame.assign(site="a"), frame.assign(site="b")])
    # A series of the panel is cut from the long frame, which has no freq
    # attribute: below 3 rows its step cannot be inferred (two stamps fit a
    # month as well as 31 days), and the refusal asks for freq=.
    inferable = not panel or freq is not None or n >= 3
    valid = (params["known_future"] is None and inferable
             and _forecaster_input_is_clean(frame[frame.get("site", "a") == "a"]
                                            if panel else frame, params, n))
    note(f"{desc}; {params}")
    f = RNNForecaster(**params)
    fitted = False
    with _watchdog("forecaster"), _outcome(valid):
        f.fit(frame)
        fitted = True
        n_q = 1 if quantiles is None else 4  # the median column + one per level
        if params["known_future"] is None:
            forecast = f.predict()
            assert forecast.shape == ((2 if panel else 1) * horizon, n_q)
            assert _finite(forecast.to_numpy(np.float64))
            last = f._context[next(iter(f._context))].index[-1]
            stamps = forecast.index.get_level_values(-1)
            assert stamps[0] == last + pd.tseries.frequencies.to_offset(f.freq_)
        result = f.backtest(frame)
        assert _finite(result.forecasts["forecast"])
        assert (result.forecasts["step"].between(1, horizon)).all()
    _check_unfitted_after_refusal(f, fitted)


# ---------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------

_REPO = str(Path(tsrnn.__file__).resolve().parent.parent)
_CELL_TEXT = ["1.5", "-2", "0", "", "NaN", "nan", "inf", "-inf", "1e400", "1e30",
              "abc", '"3.5"', "1,5", " 7 ", "NULL", "\u00e9t\u00e9", "0x10", "1_000"]


@st.composite
def csv_files(draw):
    """(bytes, description) of a CSV file, usually almost right.

    Every choice's first option is the well-formed one, so hypothesis's
    simplest example (and its first draws) is a file the CLI must forecast.
    """
    n = draw(st.one_of(st.integers(40, 70), st.integers(0, 39)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    # Naive local times would skip an hour at the DST change (a gap); the
    # offset styles keep the zone, the others are written in UTC.
    stamps = pd.date_range("2024-03-30 20:00", periods=n, freq="h", tz="Europe/Berlin")
    utc = stamps.tz_convert("UTC").tz_localize(None)
    time_style = draw(st.sampled_from(["iso", "iso", "offset", "mixed_offsets",
                                       "epoch_s", "epoch_ms", "jitter",
                                       "shuffled", "duplicated", "garbage", "numbers",
                                       "empty_cell", "dates_only"]))
    seconds = (utc - pd.Timestamp(0)) // pd.Timedelta("1s")
    jitter = pd.to_timedelta(rng.integers(-20, 21, n), unit="s")
    texts = {
        "iso": [f"{t:%Y-%m-%d %H:%M}" for t in utc],
        "offset": [t.isoformat() for t in stamps],
        "mixed_offsets": [t.isoformat() if i % 2 else f"{t.tz_convert('UTC'):%Y-%m-%dT%H:%M}Z"
                          for i, t in enumerate(stamps)],
        "shuffled": [f"{t:%Y-%m-%d %H:%M}" for t in utc[rng.permutation(n)]],
        "duplicated": [f"{t:%Y-%m-%d %H:%M}" for t in utc[np.arange(n) // 2 * 2]],
        "garbage": [f"{t:%Y-%m-%d %H:%M}" if i != n // 2 else "yesterday"
                    for i, t in enumerate(utc)],
        "epoch_s": [str(v) for v in seconds],
        "epoch_ms": [str(v * 1000) for v in seconds],
        "jitter": [f"{t:%Y-%m-%d %H:%M:%S}" for t in utc + jitter],
        "numbers": [str(i) for i in range(n)],
        "empty_cell": [f"{t:%Y-%m-%d %H:%M}" if i != n // 3 else ""
                       for i, t in enumerate(utc)],
        "dates_only": [f"{t:%Y-%m-%d}" for t in utc],
    }[time_style]
    n_cols = draw(st.integers(1, 3))
    names = draw(st.sampled_from([["temp", "hum", "wind"], ["temp", "temp", "x"],
                                  ["temp", "", "x"], ["temp", "h\u00fcm", "a b"]]))[:n_cols]
    lines = [",".join(["time"] + names)]
    bad_cells = draw(st.one_of(st.just([]), st.lists(st.sampled_from(_CELL_TEXT),
                                                    min_size=1, max_size=3)))
    for i in range(n):
        values = [f"{20 + 5 * np.sin(i / 4) + rng.normal(0, 0.3):.3f}"] + [
            f"{rng.normal():.3f}" for _ in range(n_cols - 1)]
        lines.append(",".join([texts[i]] + values))
    for cell in bad_cells:
        if n:
            row = 1 + int(rng.integers(n))
            parts = lines[row].split(",")
            parts[1 + int(rng.integers(n_cols))] = cell
            lines[row] = ",".join(parts)
    damage = draw(st.sampled_from(["none"] * 4 + ["ragged", "no_header", "empty_file",
                                                  "header_only", "binary", "bom", "crlf"]))
    if damage == "ragged" and n > 2:
        lines[2] += ",99"
    elif damage == "no_header":
        lines = lines[1:]
    elif damage == "header_only":
        lines = lines[:1]
    text = "\n".join(lines) + "\n"
    if damage == "empty_file":
        text = ""
    data = text.encode()
    if damage == "binary":
        data = b"\x89PNG\r\n\x1a\n\x00\xff\xfe" + data[:50]
    elif damage == "bom":
        data = b"\xef\xbb\xbf" + data
    elif damage == "crlf":
        data = data.replace(b"\n", b"\r\n")
    desc = f"{n} rows, time={time_style}, names={names}, cells={bad_cells}, damage={damage}"
    # Files the CLI must forecast: enough rows, distinct column names, no bad
    # cell, and damage that a CSV reader shrugs off.
    clean = (n >= 40 and not bad_cells and damage in ("none", "bom", "crlf")
             and len(set(names)) == len(names) and all(names))
    return data, desc, (time_style, n_cols) if clean else None


@pytest.fixture(scope="module")
def cli_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cli_fuzz")


@_settings("cli")
@given(csv=csv_files(), window=st.integers(2, 12), horizon=st.integers(1, 6),
       missing=st.sampled_from(["raise", "interpolate", "mask"]),
       target=st.sampled_from(["temp", "temp", None, "nope"]),
       freq=st.sampled_from([None, None, "h"]),
       tz=st.sampled_from([None, None, "Europe/Berlin"]))
def test_fuzz_cli(cli_dir, csv, window, horizon, missing, target, freq, tz):
    data, desc, clean = csv
    path, out = cli_dir / "input.csv", cli_dir / "forecast.csv"
    path.write_bytes(data)
    out.unlink(missing_ok=True)
    args = [str(path), "--window", str(window), "--horizon", str(horizon), "--hidden", "4",
            "--max-iter", "1", "--missing", missing, "--out", str(out),
            "--quantiles", "none"]
    if target:
        args += ["--target", target]
    if freq:
        args += ["--freq", freq]
    if tz:
        args += ["--tz", tz]
    note(f"{desc}; tsrnn forecast {' '.join(args[1:])}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [_REPO] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))}
    CASES["cli"] += 1
    try:
        run = subprocess.run([sys.executable, "-m", "tsrnn", "forecast", *args],
                             capture_output=True, text=True, timeout=180, env=env,
                             cwd=cli_dir)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"tsrnn forecast hung on: {desc}")
    note(f"exit {run.returncode}; stderr: {run.stderr[-2000:]}")
    detail = f": {run.stderr.strip()[-70:]}" if os.environ.get("FUZZ_EVENTS") else ""
    event(f"exit {run.returncode}{detail}")
    # The contract of tsrnn/cli.py: 0 with a forecast; 2 for input the user
    # can fix ("tsrnn: error:"); 1 for training that failed on accepted data
    # ("tsrnn: training failed:", a TrainingError). A traceback (also exit 1)
    # or a signal is a crash.
    prefix = {2: "tsrnn: error:", 1: "tsrnn: training failed:"}.get(run.returncode)
    assert run.returncode == 0 or prefix, f"exit {run.returncode} (crash or signal)"
    expected = _expected_cli_outcome(clean, target, freq, tz)
    if expected is not None:
        status, words = expected
        assert run.returncode == status, f"expected exit {status}: {run.stderr[-500:]}"
        assert all(word in run.stderr for word in words), (words, run.stderr)
    if prefix:
        lines = [line for line in run.stderr.strip().splitlines() if line.startswith(prefix)]
        assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr
        assert not out.exists()
        return
    forecast = pd.read_csv(out)
    assert len(forecast) == horizon
    assert _finite(forecast.select_dtypes("number").to_numpy())


def _expected_cli_outcome(clean, target, freq, tz):
    """(exit status, words of stderr) the CLI owes a file, or None if unknown.

    Only for files that are clean but for their time column; a valid target
    is "temp", or none when "temp" is the only column.
    """
    if clean is None:
        return None
    style, n_cols = clean
    if not (target == "temp" or (target is None and n_cols == 1)):
        return None
    if tz and style in ("iso", "jitter", "shuffled"):
        # UTC wall times read as Berlin local times: 02:00 on 2024-03-31
        # does not exist there, and the message says so when it is in the file
        # (shuffled rows are the same times; the time zone is placed before
        # the order is checked, so that message comes first).
        return None
    # Hourly exports as loggers write them (issue 25): ISO text, UTC offsets
    # across the DST change, Unix seconds or milliseconds. Jittered clocks
    # and shuffled rows need --freq; the error says so.
    if style in ("iso", "offset", "mixed_offsets", "epoch_s", "epoch_ms"):
        return 0, []
    if style == "jitter":
        return (0, []) if freq else (2, ["every 1h", "of jitter", "--freq"])
    if style == "shuffled":
        # With --freq the rows are sorted onto the grid, but the backtest
        # holds out the last rows of the file, not the latest: gaps may follow.
        return None if freq else (2, ["not sorted", "--freq"])
    if style == "numbers":  # 0, 1, 2, ...: not plausible Unix times
        return 2, ["not Unix times", "--time-unit", "--time-col"]
    if style in ("garbage", "empty_cell"):
        return 2, ["tsrnn: error:"]
    return None


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
    # Two timestamps per series: the message said "00:00 follows 01:00 after
    # -1 days +23:00:00" (the row before the first was the last).
    two = pd.DataFrame({"site": ["a", "a", "b", "b"], "y": [1.0, 2.0, 3.0, 5.0]},
                       index=pd.to_datetime(["2024-03-30 00:00", "2024-03-30 01:00"] * 2))
    with pytest.raises(ValueError, match="2 timestamps are too few to infer a frequency"):
        _forecaster(series_id="site").fit(two)


def test_forecaster_is_not_fitted_after_a_failed_fit():
    f = _forecaster(window=100)
    with pytest.raises(ValueError, match="Too few rows"):
        f.fit(_hourly())
    for call in (f.predict, lambda: f.backtest(_hourly()), lambda: f.update(_hourly())):
        with pytest.raises(NotFittedError, match="not fitted yet"):  # was AttributeError: no '_context'
            call()


@pytest.mark.parametrize("Est", [RNNRegressor, RNNClassifier])
def test_estimator_is_not_fitted_after_a_failed_fit(Est):
    # Found by fuzzing: early stopping refused 5 rows only after the weights
    # were initialised, and predict then answered from random weights.
    X = np.random.RandomState(0).randn(5, 2)
    y = np.array([0, 1, 0, 1, 1])
    est = Est(early_stopping=True, max_iter=1, hidden_layer_sizes=(3,))
    with pytest.raises(ValueError, match="validation set is too small"):
        est.fit(X, y)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        est.predict(X)
