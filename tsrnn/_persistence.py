"""Pickles that say which tsrnn wrote them (issue 24).

Design
------
scikit-learn records its version in the pickles of its own estimators and
warns (``InconsistentVersionWarning``) when another version loads one; it
does neither for estimators defined elsewhere. ``VersionedPickle``, the
first base of ``BaseRNN``, does it for tsrnn's: ``__getstate__`` adds
``_tsrnn_version`` (and scikit-learn's version, for the warning), and
``__setstate__`` takes them out again and compares.

Loading a state takes one of three ways:

* every attribute the running code reads is there, and the same version
  wrote it: it loads silently, as before;
* every attribute is there, but another version (or one from before
  versions were recorded: today's older pickles) wrote it:
  ``tsrnn.exceptions.InconsistentVersionWarning``;
* an attribute is missing: ``tsrnn.exceptions.InconsistentVersionError``
  at load, naming both versions and what is missing, and saying to refit.
  Without it the estimator would load and fail later, in ``predict`` or
  ``update``, with an AttributeError about a private name.

What the running code reads is declared here, in ``FITTED_STATE``: per
class (the estimators, and the tsrnn objects a fitted one holds), the
instance attributes every fitted object of it has; ``OPTIONAL_STATE`` lists
those that only some have (``feature_names_in_`` after a fit on arrays).
Parameters are taken from the class (``_get_param_names``), and an
unfitted estimator needs only them. A class that pickles itself with
``__reduce__`` as constructor arguments (``SeriesContext``) is not listed:
its constructor sets every attribute, and the objects it holds are checked.

tests/test_pickle_versions.py fits the estimators in several
configurations and fails, naming class and attribute, when these tables
and the fitted objects disagree. A new fitted attribute is then a decision
about older pickles: list it in ``FITTED_STATE``, and they are refused with
a clear message; or make the code work without it (a default where it is
read) and list it in ``OPTIONAL_STATE``, and they load with the warning.

The check runs on every load, not only on another version's pickles:
development builds share one version string, and the check walks only the
containers and tsrnn objects of the state (a dozen objects for a forecaster
of two series), a fraction of what unpickling them costs. Objects
that ``__reduce__`` rebuilds from constructor arguments fail inside pickle,
before any check can run, when the constructor's arguments change: such a
change needs care.
"""
import warnings
from collections import deque

import sklearn

from tsrnn.exceptions import InconsistentVersionError, InconsistentVersionWarning

_VERSION_KEY = "_tsrnn_version"
_SKLEARN_KEY = "_sklearn_version"

# What the base's fit leaves on every estimator (MLP's names, and the weights).
_NETWORK = frozenset({
    "_adam_t", "_cell", "_directions", "_flat", "_layout", "_n_decay",
    "_no_improvement_count", "_random_state", "best_loss_", "best_validation_score_",
    "loss_curve_", "n_features_in_", "n_iter_", "n_outputs_", "t_", "validation_scores_",
})

_LINEAR = frozenset({
    "alpha", "anchor", "coef_", "covariates", "horizon", "intercept_", "level", "n_targets",
    "window",
})

FITTED_STATE = {
    "RNNRegressor": _NETWORK | {"_per_step"},
    "RNNClassifier": _NETWORK | {"_per_step", "classes_"},
    "RNNForecaster": _NETWORK | {
        "_baseline", "_calibration", "_context", "_context_lengths", "_encoder",
        "_frame_layout", "_head_levels", "_level_scaling", "_network_inputs", "_trackers",
        "baseline_scores_", "feature_names_in_", "mase_scale_", "quantiles_", "season_",
        "series_ids_", "window_",
    },
    "FrameLayout": frozenset({
        "id_name", "known", "missing", "multi", "offset", "past", "resample",
        "series_id", "targets", "time_name",
    }),
    "Encoder": frozenset({"dtype", "horizon", "layout", "scaler", "series_stats"}),
    "Calendar": frozenset({"cycles"}),
    "LagBaseline": frozenset({"lags", "window"}),
    "LinearBaseline": _LINEAR,
    # Exponential smoothing (_ets.py): the linear map, and the form and
    # smoothing parameters it was made from.
    "SmoothingBaseline": _LINEAR | {"params", "season", "seasonal", "trend"},
    "BandCalibration": frozenset({
        "calibrated", "floor", "gains", "middle", "n_heldout", "offsets", "quantiles",
        "rate", "relative", "spread", "too_few",
    }),
    "NetworkInputs": frozenset({"kind", "n_targets", "window"}),
    "SeriesTracker": frozenset({"calibration", "horizon", "n_seen", "offsets", "pending"}),
    "TimeGrid": frozenset({"_stamps", "layout", "step", "unit"}),
}

OPTIONAL_STATE = {
    # sklearn's convention: only a fit on a DataFrame sets feature_names_in_.
    # _n_averaged (_base.py: how many epochs' weights the served network
    # averages) came later, and nothing after fit reads it.
    "RNNRegressor": frozenset({"feature_names_in_", "_n_averaged"}),
    "RNNClassifier": frozenset({"feature_names_in_", "_n_averaged"}),
    # initial_validation_score_ (the baseline's held-out score) came later;
    # the command line reads it with a default.
    "RNNForecaster": frozenset({"_n_averaged", "initial_validation_score_"}),
    # Calendar and seasonal lag columns came later: an older pickle's encoder
    # has none, which the class defaults (Encoder.calendar, .lags) say.
    "Encoder": frozenset({"calendar", "lags"}),
    # The series id's dtype came later: FrameLayout.id_dtype's default, None,
    # lets pandas infer it, as before.
    "FrameLayout": frozenset({"id_dtype"}),
}


def _is_ours(obj):
    return type(obj).__module__.split(".")[0] == "tsrnn" and hasattr(obj, "__dict__")


def _may_hold(obj):
    # Containers and tsrnn objects; numbers, strings and arrays hold none,
    # and are most of a state (baseline_scores_ alone has hundreds).
    return isinstance(obj, (dict, list, tuple)) or _is_ours(obj)


def held_objects(state):
    """(path, object) of each tsrnn object reachable from a pickled state.

    Breadth first, and each object once, so an object held in two places
    (the band calibration, by the estimator and by each series' tracker) is
    named by its shorter path (``"_calibration"``).
    """
    seen = set()
    queue = deque((name, value) for name, value in state.items() if _may_hold(value))
    while queue:
        path, obj = queue.popleft()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, dict):
            items = ((f"{path}[{key!r}]", value) for key, value in obj.items()
                     if _may_hold(value))
        elif isinstance(obj, (list, tuple)):
            items = ((f"{path}[{i}]", value) for i, value in enumerate(obj)
                     if _may_hold(value))
        else:
            yield path, obj
            items = ((f"{path}.{name}", value) for name, value in vars(obj).items()
                     if _may_hold(value))
        queue.extend(items)


def missing_state(cls, state):
    """What ``state`` (an estimator's ``__getstate__``) lacks for the running code.

    A list of paths from the estimator: parameters, fitted attributes, and
    the attributes of the tsrnn objects it holds (``"_calibration.gains"``).
    """
    missing = sorted(set(cls._get_param_names()) - set(state))
    fitted = FITTED_STATE.get(cls.__name__, frozenset())
    if fitted.isdisjoint(state):  # unfitted: its parameters are all it has
        return missing
    missing += sorted(fitted - set(state))
    for path, obj in held_objects(state):
        needed = FITTED_STATE.get(type(obj).__qualname__, frozenset())
        missing += [f"{path}.{name}" for name in sorted(needed - set(vars(obj)))]
    return missing


class VersionedPickle:
    """Mixin: pickles that record the tsrnn version, checked on load."""

    def __getstate__(self):
        state = super().__getstate__()
        import tsrnn  # at call time: the package imports this module

        return dict(state, **{_VERSION_KEY: tsrnn.__version__,
                              _SKLEARN_KEY: sklearn.__version__})

    def __setstate__(self, state):
        import tsrnn

        state = dict(state)
        original = state.pop(_VERSION_KEY, None)
        original_sklearn = state.pop(_SKLEARN_KEY, None)
        missing = missing_state(type(self), state)
        if missing:
            raise InconsistentVersionError(
                estimator_name=type(self).__name__, original_tsrnn_version=original,
                current_tsrnn_version=tsrnn.__version__, missing=missing)
        if original != tsrnn.__version__:
            warnings.warn(InconsistentVersionWarning(
                estimator_name=type(self).__name__, original_tsrnn_version=original,
                current_tsrnn_version=tsrnn.__version__,
                original_sklearn_version=original_sklearn,
                current_sklearn_version=sklearn.__version__), stacklevel=2)
        super().__setstate__(state)
