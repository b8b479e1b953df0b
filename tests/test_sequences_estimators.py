"""Issue 14 in RNNRegressor / RNNClassifier: variable-length sequences,
bidirectional layers, a target at every step, carried state, truncated BPTT
and sample weights.

Oracles: torch (a bidirectional LSTM with a Linear head on packed
sequences, where torch is installed), finite differences of the shared
loop's loss, the functional layer (the truncated gradient), and exact
equalities that must hold (a padded sequence predicts as it does alone;
tbptt_length >= T is full BPTT; a zero weight is a missing sequence).
"""
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from tsrnn import RNNClassifier, RNNRegressor
from tsrnn import functional as F

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

SMALL = dict(hidden_layer_sizes=(6,), max_iter=3, random_state=0)


def padded(n=24, T=7, D=2, seed=0, min_len=2):
    """n sequences of T steps, each ending early at a random length, NaN after."""
    rng = np.random.RandomState(seed)
    X = rng.randn(n, T, D)
    lengths = rng.randint(min_len, T + 1, n)
    lengths[0] = T
    for i, n_i in enumerate(lengths):
        X[i, n_i:] = np.nan
    return X, lengths


def step_targets(X, lengths):
    """A value per step (the running sum of feature 0), NaN past each end.

    Shaped (n, T, 1), as the regressor takes one value per step."""
    Y = np.cumsum(np.nan_to_num(X[:, :, 0]), axis=1)
    Y[np.arange(X.shape[1]) >= lengths[:, None]] = np.nan
    return Y[..., None]


# ---------------------------------------------------------------------------
# Variable lengths
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("per_step", [False, True])
def test_a_padded_sequence_predicts_as_it_does_alone(bidirectional, per_step):
    X, lengths = padded()
    y = step_targets(X, lengths) if per_step else np.nanmean(X[:, :, 1], axis=1)
    reg = RNNRegressor(bidirectional=bidirectional, cell="gru", dtype=np.float64,
                       **SMALL).fit(X, y)
    pred = reg.predict(X)
    assert pred.shape == ((24, 7) if per_step else (24,))
    for i in (1, 2, 5):
        alone = reg.predict(X[i:i + 1, :lengths[i]])[0]
        if per_step:
            assert_allclose(pred[i, :lengths[i]], alone, rtol=1e-12)
            assert np.isnan(pred[i, lengths[i]:]).all()
        else:
            assert_allclose(pred[i], alone, rtol=1e-12)


def test_targets_past_a_sequence_end_are_ignored():
    X, lengths = padded()
    Y = step_targets(X, lengths)
    a = RNNRegressor(**SMALL).fit(X, Y)
    Y2 = np.where(np.isnan(Y), 1e6, Y)  # anything at all there
    b = RNNRegressor(**SMALL).fit(X, Y2)
    assert_array_equal(a._flat, b._flat)
    assert a.t_ == lengths.sum() * 3  # one target per valid step, 3 epochs


@pytest.mark.parametrize("Est", [RNNRegressor, RNNClassifier])
def test_nan_inside_a_sequence_names_sequence_and_step(Est):
    X, lengths = padded()
    y = np.arange(24) % 2
    X[3, 1, 0] = np.nan
    with pytest.raises(ValueError, match=r"X\[3\] has NaN at step 1, before its last valid "
                                         rf"step {lengths[3] - 1}"):
        Est(**SMALL).fit(X, y)
    X, _ = padded()
    X[4] = np.nan
    with pytest.raises(ValueError, match=r"X\[4\] has no valid step"):
        Est(**SMALL).fit(X, y)
    model = Est(**SMALL).fit(padded()[0], y)
    X, _ = padded()
    X[2, 0, 1] = np.nan
    with pytest.raises(ValueError, match=r"X\[2\] has NaN at step 0"):
        model.predict(X)


def test_step_target_nan_inside_a_sequence_is_an_error():
    X, lengths = padded()
    Y = step_targets(X, lengths)
    Y[5, 1, 0] = np.nan
    with pytest.raises(ValueError, match=r"y\[5, 1\] is NaN or infinite, but step 1 lies "
                                         "inside sequence 5"):
        RNNRegressor(**SMALL).fit(X, Y)


# ---------------------------------------------------------------------------
# Bidirectional
# ---------------------------------------------------------------------------

def test_bidirectional_needs_sequences():
    rng = np.random.RandomState(0)
    X, y = rng.randn(30, 2), rng.randn(30)
    with pytest.raises(ValueError, match="bidirectional=True needs a batch of sequences"):
        RNNRegressor(bidirectional=True, **SMALL).fit(X, y)
    Xs, _ = padded()
    reg = RNNRegressor(bidirectional=True, **SMALL).fit(Xs, np.arange(24.0))
    with pytest.raises(ValueError, match="This model is bidirectional: it predicts batches"):
        reg.predict(X)
    with pytest.raises(ValueError, match="tbptt_length cannot be used with bidirectional"):
        RNNRegressor(bidirectional=True, tbptt_length=3, **SMALL).fit(Xs, np.arange(24.0))


@pytest.mark.parametrize("per_step", [False, True])
def test_bidirectional_lstm_matches_torch_on_packed_sequences(per_step):
    # The estimator's network is torch's nn.LSTM(bidirectional=True) and a
    # Linear head on the final states of both directions (or on the output at
    # every step), on pack_padded_sequence input.
    torch = pytest.importorskip("torch")
    X, lengths = padded(n=9, T=6, D=3)
    y = step_targets(X, lengths) if per_step else np.zeros(9)
    reg = RNNRegressor(hidden_layer_sizes=(5, 4), bidirectional=True, dtype=np.float64,
                       max_iter=1, random_state=0).fit(X, y)
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(3, 5, batch_first=True, bidirectional=True).double()
    upper = torch.nn.LSTM(10, 4, batch_first=True, bidirectional=True).double()
    head = torch.nn.Linear(8, 1).double()
    state = {k: v for k, v in lstm.state_dict().items()}
    state.update({k.replace("_l0", "_l1"): v for k, v in upper.state_dict().items()})
    state.update({f"head.{k}": v for k, v in head.state_dict().items()})
    reg.load_state_dict(state)
    with torch.no_grad():
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            torch.from_numpy(np.nan_to_num(X)), torch.from_numpy(lengths), batch_first=True,
            enforce_sorted=False)
        out, (h, _) = upper(lstm(packed)[0])
        if per_step:
            out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True,
                                                            total_length=6)
            expected = head(out)[..., 0].numpy()
            expected[np.arange(6) >= lengths[:, None]] = np.nan
        else:
            expected = head(torch.cat([h[0], h[1]], dim=1))[:, 0].numpy()
    assert_allclose(reg.predict(X), expected, rtol=1e-10, atol=1e-12)


def test_bidirectional_state_dict_has_torch_names():
    X, _ = padded()
    reg = RNNRegressor(bidirectional=True, **{**SMALL, "max_iter": 1, "hidden_layer_sizes": (4, 3)})
    sd = reg.fit(X, np.arange(24.0)).state_dict()
    assert "weight_hh_l1_reverse" in sd and sd["weight_ih_l1_reverse"].shape == (12, 8)
    assert sd["head.weight"].shape == (1, 6)
    with pytest.raises(ValueError, match="must keep cell, hidden_layer_sizes, bidirectional"):
        reg.set_params(bidirectional=False, warm_start=True).fit(X, np.arange(24.0))


# ---------------------------------------------------------------------------
# A target at every step
# ---------------------------------------------------------------------------

def test_sequence_labeller_learns_a_per_step_rule():
    # Label each step with the sign of the running sum: it needs the state.
    rng = np.random.RandomState(1)
    X = rng.randn(160, 10, 1)
    y = np.where(np.cumsum(X[:, :, 0], axis=1) > 0, "up", "down")
    clf = RNNClassifier(hidden_layer_sizes=(16,), max_iter=25, learning_rate_init=0.02,
                        random_state=0).fit(X[:120], y[:120])
    assert clf.predict(X[120:]).shape == (40, 10)
    assert clf.predict_proba(X[120:]).shape == (40, 10, 2)
    assert clf.score(X[120:], y[120:]) > 0.85


def test_per_step_classifier_masks_steps_past_the_end():
    X, lengths = padded()
    y = np.where(np.nan_to_num(X[:, :, 0]) > 0, "a", "b").astype(object)
    y[np.arange(7) >= lengths[:, None]] = None  # padding's labels: anything
    clf = RNNClassifier(**SMALL).fit(X, y)
    assert list(clf.classes_) == ["a", "b"]
    pred = clf.predict(X)
    assert isinstance(pred, np.ma.MaskedArray)
    assert_array_equal(pred.mask, np.arange(7) >= lengths[:, None])
    proba = clf.predict_proba(X)
    assert np.isnan(proba[pred.mask]).all()
    assert_allclose(proba[~pred.mask].sum(axis=1), 1)
    valid = ~pred.mask
    expected = np.mean(pred.data[valid] == y[valid])
    assert clf.score(X, y) == pytest.approx(expected)
    # Full-length input gives a plain array.
    assert type(clf.predict(X[:1])) is np.ndarray


def test_regressor_2d_y_is_outputs_per_sequence_even_with_as_many_as_steps():
    # (n, T) has meant T outputs per sequence since before targets per step:
    # the regressor takes a value per step as (n, T, 1).
    rng = np.random.RandomState(0)
    X, y = rng.randn(10, 3, 2), rng.randn(10, 3)
    reg = RNNRegressor(**SMALL).fit(X, y)
    assert reg.n_outputs_ == 3 and reg.predict(X).shape == (10, 3)
    reg = RNNRegressor(**SMALL).fit(X, y[..., None])
    assert reg.n_outputs_ == 1 and reg.predict(X).shape == (10, 3)
    assert reg.predict(X[:, :2]).shape == (10, 2)  # any number of steps
    with pytest.raises(ValueError, match=r"y has shape \(10, 2, 1\): a 3-D y holds a target"):
        RNNRegressor(**SMALL).fit(X, y[:, :2, None])


def test_per_step_and_per_sequence_targets_do_not_mix():
    X, lengths = padded()
    reg = RNNRegressor(**SMALL).fit(X, step_targets(X, lengths))
    with pytest.raises(ValueError, match="fitted with a target for every step"):
        reg.partial_fit(X, np.zeros(24))
    # A stream is still predicted row by row.
    assert reg.predict(np.random.RandomState(0).randn(11, 2)).shape == (11,)


def test_per_step_score_weights_each_sequence():
    X, lengths = padded()
    Y = step_targets(X, lengths)
    reg = RNNRegressor(**SMALL).fit(X, Y)
    from sklearn.metrics import r2_score

    w = np.arange(1, 25.0)
    valid = np.arange(7) < lengths[:, None]
    expected = r2_score(Y[valid][:, 0], reg.predict(X)[valid],
                        sample_weight=np.broadcast_to(w[:, None], valid.shape)[valid])
    assert reg.score(X, Y, sample_weight=w) == pytest.approx(expected)


# ---------------------------------------------------------------------------
# Carried state
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_continuing_from_a_returned_state_equals_one_call(cell):
    rng = np.random.RandomState(0)
    X = rng.randn(8, 9, 3)
    y = rng.randint(0, 3, (8, 9))
    clf = RNNClassifier(cell=cell, dtype=np.float64,
                        **{**SMALL, "hidden_layer_sizes": (5, 4)}).fit(X, y)
    whole = clf.predict_proba(X)
    first, state = clf.predict_proba(X[:, :4], return_state=True)
    assert len(state) == 2
    parts = state[1] if cell == "gru" else state[1][0]
    assert np.shape(parts) == (8, 4)
    state_copy = [tuple(np.copy(p) for p in s) if isinstance(s, tuple) else np.copy(s)
                  for s in state]
    rest = []
    for t in range(4, 9):  # one step at a time, as a sampler does
        p, state = clf.predict_proba(X[:, t:t + 1], initial_state=state, return_state=True)
        rest.append(p[:, 0])
    assert_allclose(first, whole[:, :4], rtol=1e-12)
    assert_allclose(np.stack(rest, axis=1), whole[:, 4:], rtol=1e-12)
    # The returned state is the caller's: later calls do not change it.
    clf.predict_proba(X[:, :1], initial_state=state_copy)
    for a, b in zip(state_copy, clf.predict_proba(X[:, :4], return_state=True)[1]):
        assert_array_equal(np.asarray(a), np.asarray(b))


def test_returned_state_is_after_each_sequences_last_valid_step():
    X, lengths = padded(T=6, min_len=3)
    reg = RNNRegressor(cell="gru", dtype=np.float64, **SMALL).fit(X, step_targets(X, lengths))
    _, state = reg.predict(X, return_state=True)
    for i in (1, 3):
        _, alone = reg.predict(X[i:i + 1, :lengths[i]], return_state=True)
        assert_allclose(state[0][i], alone[0][0], rtol=1e-12)


def test_bad_initial_state_and_stream_state_raise():
    rng = np.random.RandomState(0)
    X = rng.randn(5, 4, 2)
    reg = RNNRegressor(**SMALL).fit(X, rng.randn(5))
    with pytest.raises(ValueError, match=r"one entry per recurrent layer \(1\)"):
        reg.predict(X, initial_state=[])
    with pytest.raises(ValueError, match=r"initial_state\[0\] must be a tuple \(h, c\)"):
        reg.predict(X, initial_state=[np.zeros((5, 6))])
    with pytest.raises(ValueError, match=r"initial_state\[0\] has shape \(4, 6\), expected "
                                         r"\(n_sequences, units\) = \(5, 6\)"):
        reg.predict(X, initial_state=[(np.zeros((4, 6)), np.zeros((4, 6)))])
    with pytest.raises(ValueError, match="initial_state and return_state need a batch"):
        reg.predict(rng.randn(10, 2), return_state=True)


# ---------------------------------------------------------------------------
# Truncated BPTT
# ---------------------------------------------------------------------------

TBPTT_CASES = {
    "sequences, last step": lambda rng: (rng.randn(20, 9, 2), rng.randn(20)),
    "sequences, every step": lambda rng: (rng.randn(20, 9, 2), rng.randn(20, 9, 1)),
    "padded, every step": lambda rng: (lambda X, n: (X, step_targets(X, n)))(*padded(20, 9)),
    "padded, last step": lambda rng: (padded(20, 9)[0], rng.randn(20)),
    "stream": lambda rng: (rng.randn(60, 2), rng.randn(60)),
}


@pytest.mark.parametrize("case", sorted(TBPTT_CASES))
def test_tbptt_at_least_the_sequence_length_is_full_bptt(case):
    X, y = TBPTT_CASES[case](np.random.RandomState(0))
    kw = dict(hidden_layer_sizes=(5, 4), window=9, dropout=0.2, max_iter=2, random_state=0)
    full = RNNRegressor(**kw).fit(X, y)
    for k in (9, 50):
        assert_array_equal(RNNRegressor(tbptt_length=k, **kw).fit(X, y)._flat, full._flat)
    # Shorter segments do change training.
    assert not np.array_equal(RNNRegressor(tbptt_length=4, **kw).fit(X, y)._flat, full._flat)


def test_tbptt_gradient_stops_at_the_segment_edge():
    # Last-step targets, T = 9 in segments of 4: the only update comes from
    # the last segment [8, 9), started from the state the first 8 steps leave
    # (not differentiated). functional computes that truncated gradient.
    rng = np.random.RandomState(0)
    X, y = rng.randn(6, 9, 2), rng.randn(6)
    kw = dict(hidden_layer_sizes=(4,), cell="gru", dtype=np.float64, alpha=0.0,
              max_grad_norm=None, batch_size=6, random_state=0)
    reg = RNNRegressor(tbptt_length=4, max_iter=1, **kw).fit(X, y)
    weights = reg.state_dict()
    t0 = reg._adam_t
    reg.partial_fit(X, y)
    assert reg._adam_t == t0 + 1  # one segment had targets
    grad = reg._views(1)
    params = {k: v for k, v in weights.items() if not k.startswith("head.")}
    _, h8, _ = F.rnn_forward("gru", X[:, :8], params, training=False)
    out, h9, cache = F.rnn_forward("gru", X[:, 8:], params, h8)
    z = h9[0] @ weights["head.weight"].T + weights["head.bias"]
    dz = (z[:, 0] - y)[:, None] / 6
    _, expected, _ = F.rnn_backward(None, cache, (dz @ weights["head.weight"])[None])
    for name, value in expected.items():
        assert_allclose(grad[name], value, rtol=1e-10, atol=1e-14, err_msg=name)
    assert_allclose(grad["head.weight"], dz.T @ h9[0], rtol=1e-10)


def test_tbptt_steps_once_per_segment_and_keeps_one_segment_of_activations(monkeypatch):
    rng = np.random.RandomState(0)
    X, y = rng.randn(10, 20, 2), rng.randn(10, 20, 1)
    cached = []
    original = F.rnn_forward

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        if out[2] is not None:
            cached.append(out[2].nbytes)
        return out

    import tsrnn._network

    monkeypatch.setattr(tsrnn._network, "rnn_forward", spy)
    reg = RNNRegressor(hidden_layer_sizes=(8,), batch_size=10, max_iter=1, random_state=0)
    reg.fit(X, y)
    full = max(cached)
    cached.clear()
    reg.set_params(tbptt_length=5).fit(X, y)
    assert reg._adam_t == 4  # 20 steps, 4 segments, one minibatch
    assert max(cached) * 4 == full


def test_tbptt_on_a_stream_keeps_window_predictions():
    rng = np.random.RandomState(0)
    X, y = rng.randn(80, 2), rng.randn(80)
    reg = RNNRegressor(window=12, tbptt_length=4, **SMALL).fit(X, y)
    pred = reg.predict(X)
    assert pred.shape == (80,)
    # Row i still depends on its window only.
    assert_allclose(reg.predict(X[30:45])[-1], pred[44], rtol=1e-5)


# ---------------------------------------------------------------------------
# Sample weights
# ---------------------------------------------------------------------------

ONE_BATCH = dict(hidden_layer_sizes=(5,), batch_size=100, shuffle=False, max_iter=3,
                 dtype=np.float64, random_state=0)


@pytest.mark.parametrize("per_step", [False, True])
def test_zero_weight_is_a_missing_sequence_and_two_a_repeated_one(per_step):
    # With every sequence in one minibatch, the weighted mean is exactly the
    # mean over the data the weights describe.
    X, lengths = padded(n=12)
    y = step_targets(X, lengths) if per_step else np.nanmean(X[:, :, 0], axis=1)
    w = np.ones(12)
    w[[2, 7]] = 0
    w[4] = 2
    keep = np.r_[np.flatnonzero(w > 0), 4]
    weighted = RNNRegressor(**ONE_BATCH).fit(X, y, sample_weight=w)
    repeated = RNNRegressor(**ONE_BATCH).fit(X[keep], y[keep])
    assert_allclose(weighted._flat[0], repeated._flat[0], rtol=1e-9, atol=1e-12)
    unweighted = RNNRegressor(**ONE_BATCH).fit(X, y, sample_weight=np.ones(12))
    assert_array_equal(unweighted._flat, RNNRegressor(**ONE_BATCH).fit(X, y)._flat)


def test_classifier_weights_and_stream_weights():
    rng = np.random.RandomState(0)
    X = rng.randn(12, 5, 2)
    y = rng.randint(0, 3, 12)
    w = np.where(np.arange(12) % 3 == 0, 0.0, 1.0)
    # One epoch each: fit on everything, weighted, and partial_fit on the rest.
    a = RNNClassifier(**{**ONE_BATCH, "max_iter": 1}).fit(X, y, sample_weight=w)
    b = RNNClassifier(**ONE_BATCH).partial_fit(X[w > 0], y[w > 0], classes=[0, 1, 2])
    assert_allclose(a._flat[0], b._flat[0], rtol=1e-9, atol=1e-12)
    # A stream weighs each row's target; weights of zero leave a row out of the loss.
    Xs, ys = rng.randn(40, 2), rng.randn(40)
    RNNRegressor(window=5, **SMALL).partial_fit(Xs, ys, sample_weight=np.linspace(0, 1, 40))


def test_bad_sample_weights_raise():
    X, y = np.random.RandomState(0).randn(10, 4, 2), np.arange(10.0)
    with pytest.raises(ValueError, match="Negative values in data passed to `sample_weight`"):
        RNNRegressor(**SMALL).fit(X, y, sample_weight=-np.ones(10))
    with pytest.raises(ValueError, match=r"sample_weight.shape == \(9,\), expected \(10,\)"):
        RNNRegressor(**SMALL).fit(X, y, sample_weight=np.ones(9))
    with pytest.raises(ValueError, match="at least one non-zero"):
        RNNClassifier(**SMALL).fit(X, y % 2, sample_weight=np.zeros(10))


def test_early_stopping_scores_the_validation_block_with_its_weights():
    rng = np.random.RandomState(0)
    X, y = rng.randn(30, 5, 2), rng.randn(30)
    kw = dict(early_stopping=True, validation_fraction=0.3, **SMALL)
    w = np.ones(30)
    a = RNNRegressor(**kw).fit(X, y, sample_weight=w)
    w[-9:] = np.linspace(0.1, 5, 9)  # the validation block only
    b = RNNRegressor(**kw).fit(X, y, sample_weight=w)
    # The training block's weights are the same, so the first epoch's model
    # is; its validation score is not.
    assert a.loss_curve_[0] == b.loss_curve_[0]
    assert a.validation_scores_[0] != b.validation_scores_[0]


# ---------------------------------------------------------------------------
# The shared loop's gradient, with every option
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("per_step", [False, True])
@pytest.mark.parametrize("task", ["regression", "multiclass"])
def test_loss_gradient_with_lengths_and_weights_matches_finite_differences(
        task, per_step, bidirectional):
    rng = np.random.RandomState(0)
    X, lengths = padded(n=6, T=5, D=2, min_len=1)
    Est = RNNRegressor if task == "regression" else RNNClassifier
    y = (step_targets(X, lengths) if per_step else rng.randn(6)) if task == "regression" \
        else rng.randint(0, 3, (6, 5) if per_step else 6)
    est = Est(hidden_layer_sizes=(3, 3), cell="peephole", bidirectional=bidirectional,
              max_iter=1, alpha=0.1, dropout=0.2, dtype=np.float64, random_state=0).fit(X, y)
    valid = np.arange(5) < lengths[:, None]
    if per_step:
        y_valid = np.asarray(y)[valid]
        if task == "regression":
            y_valid = y_valid[:, 0]  # one value per step
        encoded = est._encode_targets(y_valid, False, True, None)
        Y = np.zeros((6, 5) + encoded.shape[1:], encoded.dtype)
        Y[valid] = encoded
        W = np.broadcast_to(rng.rand(6)[:, None], (6, 5))
    else:
        Y, W = est._encode_targets(y, False, True, None), rng.rand(6)

    def loss():
        est._random_state = np.random.RandomState(5)  # the same dropout masks
        return est._loss_grad(X, Y, per_step=per_step, sample_weight=W, lengths=lengths)

    loss()
    grad = est._flat[1].copy()
    params = est._flat[0]
    for j in rng.choice(params.size, size=40, replace=False):
        old = params[j]
        params[j] = old + 1e-6
        up = loss()
        params[j] = old - 1e-6
        down = loss()
        params[j] = old
        assert_allclose((up - down) / 2e-6, grad[j], rtol=1e-5, atol=1e-8)
