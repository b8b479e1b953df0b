"""RNNForecaster: multi-step forecasts from pandas frames with a recurrent net.

Design
------
The estimator tells the story: fit, predict, update, backtest, score, plot.
The work is done elsewhere, one job per module:

* ``_frames.py``: column roles, series, time step and gaps of a frame
  (``FrameLayout``, learned in fit); ``_time_grid.py``: its grid arithmetic
  (timestamp units, snapping readings to the grid, rounded steps);
* ``_windows.py``: scaling and causal filling into arrays, stacking of series,
  forecast windows and origins (``Encoder``, ``ForecastWindows``);
* ``_base.py``: the network, its one fit path and training loop, reached
  through the ``_prepare_fit`` hook;
* ``_baselines.py`` and ``_baseline_choice.py``: the learned baseline the
  network corrects, and the choice of it and of ``window="auto"``;
* ``_forecast_heads.py``: the head's quantile levels, loss and columns;
* ``_calibration.py`` and ``_band_tracking.py``: the band's conformal
  offsets, learned on held-out time and tracked while streaming;
* ``_stream_context.py``: the kept context as arrays, and the numpy paths
  of ``update()`` and ``predict()`` from it (a streamed call is dominated by
  its overhead, not by the network);
* ``_backtest.py``: metrics and the ``Backtest`` result;
* ``_plotting.py``: the plot.

Model. The network reads the last ``window`` rows before a forecast origin
and its head emits every output at once: ``horizon x n_targets x n_heads``
values ("direct multi-step"). The outputs are corrections to a baseline
forecast learned from the training data (persistence, seasonal naive or a
ridge regression on the window, whichever forecasts the held-out block
best; or, asked for, exponential smoothing over the window), and the head
starts at zero, so the untrained model is that baseline. Early stopping
scores the point forecast on the held-out block and keeps the untrained
model when no epoch beats it by ``min_network_gain``.
The network reads the window's targets relative to the origin
(``_network_inputs.py``), the baseline reads them as scaled. On the public
suite (benchmarks/README.md) the learned baseline does most of the work and the
network adds a few percent where the data allow.

Honest evaluation. ``backtest`` and ``score`` forecast from every origin in
one batched pass. At fit time the forecaster keeps the last
``max(window, season)`` rows of every series ("context", raw values).
``predict()`` without X forecasts from it; when a frame passed to
``backtest``/``score`` starts right after it, it is prepended, so the first
forecasts of a test fold use the end of the training data, as in
TimeSeriesSplit. ``update`` moves the context forward. Inputs at an origin use
data up to the origin only; targets after the origin are used only as the
actuals.

Quantiles. The pinball loss trains one output per quantile; at prediction the
quantiles of each (step, target) are sorted, which removes quantile crossing
(monotone rearrangement, Chernozhukov et al. 2010) and can only reduce the
pinball loss.
"""

import warnings
from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.base import _fit_context, clone
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import (
    check_is_fitted,
    validate_data,
)

from tsrnn import _backtest
from tsrnn._backtest import Backtest
from tsrnn._band_tracking import BandTracking
from tsrnn._base import BaseRNN
from tsrnn._data import check_training_weights
from tsrnn._baseline_choice import BaselineChoice, StackedOrigins
from tsrnn._calendar import Calendar, seasons_for
from tsrnn._forecast_heads import ForecastHeads
from tsrnn import _dask_serving
from tsrnn._dask_frames import is_dask_frame
from tsrnn._frames import FrameLayout, check_frame, default_season, index_names, where
from tsrnn._network_inputs import NetworkInputs
from tsrnn._plotting import plot_forecast
from tsrnn._sampling import fixed_sample, series_groups
from tsrnn._stream_context import SeriesContext, StreamingContext, future_stamps
from tsrnn._time_grid import as_integer, from_integers
from tsrnn._windows import (
    Encoder,
    ForecastWindows,
    check_no_infinity,
    check_scaler,
    scaler_blocks,
    fit_origins,
    series_statistics,
    stack,
    stack_inference,
)
from tsrnn.exceptions import InputError
from tsrnn.metrics import _seasonal_naive_mae

__all__ = ["RNNForecaster", "Backtest"]


def _row_weights(X, sample_weight):
    """``sample_weight`` of fit as float64 (len(X),), in X's row order.

    A Series is aligned to X's index by label (extra labels are ignored),
    anything else is taken in row order; then ``_check_sample_weight``.
    Problems are InputErrors, as every other problem with the fit's data.
    """
    if isinstance(sample_weight, pd.Series) and not sample_weight.index.equals(X.index):
        index = sample_weight.index
        if X.index.has_duplicates:
            first = X.index[X.index.duplicated()][0]
            raise InputError(
                "sample_weight is a Series whose index differs from X's, and X's "
                f"index repeats labels (first {first!r}, e.g. the same timestamps in "
                "several series of a long frame), so the weights cannot be aligned "
                "by label. Pass a Series with X's index (sample_weight.index equal "
                "to X.index, in X's order) or an array in X's row order."
            )
        if index.has_duplicates:
            first = index[index.duplicated()][0]
            raise InputError(
                f"sample_weight's index repeats the label {first!r}, so it cannot be "
                "aligned to X's rows; give one weight per row of X."
            )
        absent = ~X.index.isin(index)
        if absent.any():
            first = X.index[int(np.argmax(absent))]
            raise InputError(
                f"sample_weight has no weight for {int(absent.sum())} of X's "
                f"{len(X)} rows, first {first!r} (row {int(np.argmax(absent)) + 1}); "
                "a Series is aligned to X's index by label. Pass an array to give "
                "the weights in X's row order."
            )
        sample_weight = sample_weight.reindex(X.index)
    if isinstance(sample_weight, pd.Series):
        sample_weight = sample_weight.to_numpy()
    try:
        return check_training_weights(sample_weight, X, dtype=np.float64)
    except ValueError as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(
            f"{exc} (sample_weight gives one weight per row of X, the forecast origin "
            "at that row)"
        ) from None


def _cycles(calendar):
    """The cycles of a Calendar or None, for comparing two of them."""
    return () if calendar is None else calendar.cycles


class RNNForecaster(StreamingContext, BandTracking, BaselineChoice, ForecastHeads, BaseRNN):
    """Multi-step LSTM/GRU forecaster for time-indexed pandas frames.

    ``fit(df)`` learns to forecast the next ``horizon`` rows of the target
    column(s) from the last ``window`` rows of every numeric column;
    ``predict()`` returns those forecasts as a DataFrame indexed by the future
    timestamps. One forward pass produces all ``horizon`` steps (direct
    multi-step forecasting), and forecasts are returned in the original units.

    Data layout. ``X`` is a DataFrame with a DatetimeIndex. Besides the
    targets, every numeric column is a past covariate (a sensor known up to
    the forecast origin); non-numeric columns are ignored. Columns listed in
    ``known_future`` are also known for the forecast period (calendar
    features, planned setpoints) and their future values are passed to
    ``predict(future=...)``. Several series (machines, sites) are given either
    as a long frame with a ``series_id`` column, or with an (id, timestamp)
    MultiIndex; one global model is trained on all of them.

    Parameters
    ----------
    target : str or list of str, default=None
        Column(s) to forecast. None is allowed only when X has a single
        numeric column (besides ``series_id``).

    window : int or "auto", default="auto"
        Number of past rows read before each forecast origin. "auto" chooses,
        together with the baseline (see ``baseline``), among twice and four
        times the horizon and a season plus the horizon, by the error on
        held-out time; each candidate is capped at a third of the longest
        series. The chosen value is ``window_``.

    horizon : int, default=24
        Number of future steps forecast at once.

    cell : {"lstm", "gru", "peephole"}, default="lstm"
        Recurrent cell.

    hidden_layer_sizes : int or array-like of int, default=(32,)
        Width of each stacked recurrent layer, from the input upwards.

    quantiles : tuple of float in (0, 1) or None, default=(0.1, 0.5, 0.9)
        Quantile levels to forecast, trained with the pinball loss; the one
        closest to 0.5 is the point forecast (the median by default, which
        minimises the mean absolute error). The default gives an 80% band,
        calibrated on held-out time (see ``calibration``). None trains the
        mean squared error and returns point forecasts only.

    freq : str or DateOffset, default=None
        Time step. None infers it from the index (``index.freq`` or pandas'
        inference) and raises a ValueError for an irregular or duplicated
        index; for readings off a regular grid by clock jitter, the message
        gives the median step rounded to a whole unit to pass here. When
        given, every reading moves to the nearest point of this step's grid
        (in absolute time, so a DST change is no gap): readings already on
        it keep their timestamps and values bit for bit; readings that land
        on one point are averaged, and a point with none is a missing value
        for ``missing``. A :class:`~tsrnn.exceptions.ResampleWarning` counts
        the readings moved, the points averaged and the points empty.

    missing : {"raise", "interpolate", "mask"}, default="raise"
        Missing values. "raise": a ValueError names the column and the first
        timestamp with a gap. "interpolate": gaps are filled (time
        interpolation during fit; at inference without looking past the
        forecast origin, see Notes). "mask": inputs are filled the same way,
        but missing target values are never used as training targets.

    known_future : list of str or None, default=None
        Covariates whose future values are known at forecast time.

    series_id : str or None, default=None
        Column holding the series identifier of a long frame. Not needed with
        an (id, timestamp) MultiIndex.

    calendar : "auto", list of str or None, default=None
        Calendar inputs: the phase of the time of day ("day"), the day of
        the week ("week") and the day of the year ("year") at every row, as
        a sine and a cosine each, computed from the timestamps. They are
        known for the forecast period too, so they enter as known-future
        inputs (to the network and to the learned baseline's covariates)
        without a ``future=`` frame. "auto" takes the cycles the time step
        samples with 2 to 1,000 steps (hourly and half-hourly: day and
        week; daily: week and year; monthly and quarterly: year; yearly:
        none); a list names them. The clock is the
        index's wall clock (its own time zone when it has one). This is
        darts' ``add_encoders={"cyclic": ...}``, chosen from the frequency.
        See the user guide's "Calendar inputs" section.

    season_lags : "auto", list of int or None, default="auto"
        Longer seasons given to the model as inputs instead of longer
        windows: for each lag S (at least ``horizon``), the targets S steps
        before every row, the forecast period's rows included (known at the
        origin because S >= horizon), one column per target. The network
        and the learned baseline's covariates read them, so a weekly cycle
        of hourly data costs one column instead of a 168-row window. "auto"
        takes the seasons of the time step (hourly: 24 and 168 steps,
        half-hourly: 48 and 336, daily: 7 and 364, 52 weeks so that the lag
        keeps the weekday) longer than ``season_`` and at least
        ``horizon``. The kept context grows to ``window_`` plus the longest
        lag; ``predict(X)`` reads the lags from X, and a lag before X's
        first row is taken as the training mean. At their default
        ``season``, monthly, quarterly and yearly data have no longer
        season, so "auto" adds nothing there (with ``season=1`` monthly
        data get the year, 12 steps). None adds no lag column.

    season : int or None, default=None
        Season length in steps, for the seasonal naive baseline and MASE.
        None: one day of steps for sub-daily data (24 for hourly), 7 for
        daily, 12 for monthly, 4 for quarterly data, otherwise 1.

    baseline : {"auto", "smoothing", "persistence", "seasonal"}, default="auto"
        The forecast the network corrects: it is trained on the differences
        and adds its output to it. "auto" learns it from the training data:
        persistence, seasonal naive or a ridge regression on the window (see
        Notes), whichever has the smallest error on the held-out block.
        "smoothing" learns exponential smoothing instead (Holt-Winters: a
        level, optionally a damped trend and an additive season; the form
        and the window chosen on the held-out block). "persistence" repeats
        the last value; "seasonal" the same phase of the last season.

    calibration : {"cqr", "split"} or None, default="cqr"
        How the quantile band is calibrated on the held-out block, which the
        network never trains on. "cqr" (conformalised quantile regression):
        each quantile is shifted, per horizon step and target, so that the
        held-out actuals fall below it as often as its level says. "split"
        (split conformal): the network forecasts the median only, and each
        quantile is the median plus a quantile of its held-out errors. None:
        the band as the pinball loss trained it. For a target that is
        positive in the training data and whose spread grows with its level
        (Guerrero's rule over blocks of one season), the shifts are fractions
        of each forecast's level, so the band widens as a trend carries the
        level past the held-out block. With too little data for a
        held-out block (or for a quantile's level), a warning says so and the
        band stays uncalibrated. See ``calibration_rate`` for streaming.

    calibration_rate : float in [0, 1), default=0.1
        How fast ``update()`` adapts the band: every forecast issued from the
        kept context is checked when its truth arrives, and each quantile's
        offset moves by ``calibration_rate`` times the typical held-out error
        towards the side it missed (adaptive conformal inference). 0 keeps
        the offsets learned in fit.

    max_windows_per_epoch : int or None, default=20_000
        The training budget: the most forecast windows one epoch trains on
        (neuralforecast trains ``max_steps`` minibatches of
        ``windows_batch_size`` sampled windows; here ``batch_size`` is the
        windows per minibatch and ``max_iter`` the epochs, so a fit trains on
        at most ``max_iter * max_windows_per_epoch`` windows, 1,000,000 by
        default, neuralforecast's default of 1,000 steps of 1,024). When the
        training frame has more forecast origins, every epoch trains on a
        fresh sample of this many: the budget is shared equally among the
        series (a short series gives all its windows, and the others share
        the rest), and each series' windows are spread over its time, drawn
        with ``random_state``. The held-out block that early stopping scores
        and the band is calibrated on is then a fixed sample of at most this
        many windows, equal shares per series and evenly spaced. A frame
        with fewer origins (every series of the public accuracy suite) is
        trained on all of them, bitwise as without a budget. None: every
        origin, every epoch (an epoch's cost grows with the fleet). When
        the budget binds, early stopping's patience starts once the epochs
        have drawn as many windows as one pass over the origins: a frame of
        more than ``n_iter_no_change + 1`` budgets of origins is not stopped
        before that pass, one of more than ``max_iter`` budgets trains all
        ``max_iter`` epochs, and the best epoch is kept. See the user guide's
        "Fleets" page.

    scaling : {"series", "global"}, default="series"
        How the columns are standardised before they reach the baseline and
        the network. "series": each series by its own mean and standard
        deviation on the training frame (``series_scales_``), so that
        sensors in other units and at other levels (litres per second,
        degrees, kilowatts) share one model, and a series multiplied by
        ``10**k`` and shifted is forecast as it was (neuralforecast's
        ``local_scaler_type="standard"``). A series not seen in fit, at
        ``predict(X)``, ``backtest`` or ``update``, is standardised with
        ``scaler_`` (all training series together). "global": every series
        with ``scaler_``. With a single series the two are the same.

    network_inputs : {"relative", "level"}, default="relative"
        What the network reads of each window (the baseline always reads
        the scaled window). "relative": the target columns as changes from
        their value at the forecast origin (the covariates as scaled), so
        that the network sees the window's shape rather than its level: the
        recent windows of a trending series, which early stopping scores
        and every forecast starts from, lie at levels the network saw
        rarely in training, and their shape does not. "level": the scaled
        values, as the baseline reads them. On the public panels "relative"
        let the network improve its baseline where "level" kept the
        untrained network (``benchmarks/README.md``, "The network earns its
        place").

    min_network_gain : float in [0, 1), default=0.03
        How much better than the baseline alone the trained network must
        forecast the held-out block to be kept: early stopping replaces the
        untrained network (the baseline) only with an epoch whose point
        forecast's held-out loss is at least this fraction below the
        baseline's. A smaller gain is within what the choice of an epoch on
        one held-out block gains by chance: on the public suite and panels,
        every data set whose best epoch gained less than 3% there (0.1% to
        2.6%, on six of them) was forecast worse than its baseline alone
        afterwards (by 0.2% to 5.6%), and every one that gained more than
        5% was forecast better (``benchmarks/README.md``, "The network
        earns its place"). 0 keeps any epoch that beats the baseline.

    average_best_epochs : int >= 1, default=5
        With early stopping, the weights of this many epochs with the best
        held-out scores are averaged after training, and the average is
        served when its held-out score beats the best single epoch's (and
        the untrained network's bar, ``min_network_gain``); otherwise the
        best epoch is. The epoch early stopping keeps is the best of many
        noisy scores on one held-out block; the mean of a few good epochs
        of the same run (stochastic weight averaging) depends less on that
        chance. It is still one network, so predict, update, backtest,
        pickles and the ONNX export serve it as any other, and it costs
        one more pass over the held-out block. 1 keeps the best epoch, as
        before. Measured on the public groups in ``benchmarks/README.md``
        ("Averaging the best epochs").
    averaging_frequency : int or None, default=None
        Parameter averaging across dask workers, for a fit on a
        ``dask.dataframe.DataFrame`` with a ``dask.distributed`` Client
        running (DL4J's ``averagingFrequency``). Each epoch's windows are
        sharded over the workers (one shard per worker, made of whole
        partitions); every worker trains ``averaging_frequency`` minibatches
        of its shard from the same weights and Adam moments, then the
        weights and moments are averaged, and the round repeats. None:
        the epoch's windows are brought to this process and trained here,
        which gives bitwise the model of a pandas fit. A constructor
        parameter, not a fit parameter, because it changes the model (an
        average of k-step updates is not k sequential steps), so it is a
        hyperparameter a search may tune. See the user guide's dask page.

    dropout, alpha, batch_size, learning_rate_init, max_iter, shuffle, \
random_state, tol, verbose, warm_start, early_stopping, validation_fraction, \
beta_1, beta_2, epsilon, n_iter_no_change, max_grad_norm, forget_bias, dtype
        Training parameters, with the meanings of
        :class:`~tsrnn.RNNRegressor` (and MLPRegressor). An epoch is one pass
        over all forecast origins of the training frame. The held-out block
        is the last ``validation_fraction`` of every series' rows, or more
        when that would hold fewer than about two horizons of forecast
        origins (at most 30%); no training target lies in it. It chooses the
        baseline and the window, calibrates the band, and with
        ``early_stopping`` (on by default here) it stops training: the
        network starts from a correction of zero, and the epoch whose point
        forecast (the median, or the mean without quantiles) forecasts the
        block best is kept, the untrained one (the baseline alone)
        included (a trained epoch must beat it by ``min_network_gain``);
        the band is corrected on the same block afterwards.
        Without ``early_stopping`` the held-out block still chooses the
        baseline and calibrates the band, but picks no epoch: training
        runs ``max_iter`` epochs (or until the training loss stops
        improving by ``tol``) and keeps the trained network.
        ``warm_start`` continues training the weights on new data with the
        first fit's scaler, frequency, baseline and MASE scale; the
        columns, quantiles and horizon must stay the same.

    Attributes
    ----------
    target_ : list of str
        Target columns.

    past_covariates_ : list of str
        Numeric columns used as inputs up to the origin only.

    known_future_ : list of str
        Columns whose future values are inputs as well.

    freq_ : str
        Time step (pandas alias), given or inferred.

    season_ : int
        Season length used by backtests and MASE.

    quantiles_ : ndarray or None
        Sorted quantile levels.

    window_ : int
        Past rows read before each forecast origin (``window`` or its choice).

    baseline_ : str
        The baseline chosen in fit, e.g. ``"persistence"``, ``"seasonal
        naive"``, ``"linear (seasonal naive, level, covariates)"`` or
        ``"exponential smoothing (level, damped trend, additive season)"``.

    baseline_scores_ : dict or None
        Held-out mean absolute error (scaled units) of every candidate
        baseline that ``baseline="auto"`` tried, keyed by (form, window,
        penalty; None for exponential smoothing); None for a fixed baseline.

    scaler_ : StandardScaler
        Fitted on the training frame's [targets, past, known-future] columns.

    series_scales_ : DataFrame or None
        With ``scaling="series"`` and several series: the mean and scale of
        every column of every training series (index ``series_ids_``,
        columns ``("mean" | "scale", column)``); None otherwise.

    mase_scale_ : ndarray of shape (n_targets,)
        In-sample MAE of the seasonal naive forecast on the training frame,
        per target: the denominator of MASE.

    series_ids_ : list or None
        Identifiers of the training series (None for a single series).

    n_outputs_ : int
        Width of the output layer, ``horizon * n_targets * n_quantiles``.

    n_features_in_, feature_names_in_
        Columns of the training frame.

    loss_curve_, best_loss_, validation_scores_, best_validation_score_, \
n_iter_, t_
        Training history, as in :class:`~tsrnn.RNNRegressor`.

    initial_validation_score_ : float or None
        Held-out score (``validation_scores_``' measure) of the weights the
        last ``fit`` started from: after a fit from scratch, the learned
        baseline alone (the untrained network corrects nothing). When no
        epoch beat it by ``min_network_gain``, ``best_validation_score_``
        equals it and the forecast is the baseline's;
        ``(best_validation_score_ - initial_validation_score_) /
        abs(initial_validation_score_)`` is the share of the baseline's
        held-out loss the network's corrections remove. None when the fit
        holds out no block or ``early_stopping=False``.

    Notes
    -----
    Forecast origins. A forecast made at origin ``t`` uses rows up to and
    including ``t`` (and known-future values after ``t``) and predicts
    ``t + 1 .. t + horizon``.

    Context. The last ``max(window, season)`` rows seen by ``fit`` or
    ``update`` are kept (``window`` plus the longest of ``season_lags``
    when that is more). ``predict()`` without X forecasts from them; a frame
    given to ``backtest``/``score`` that starts one step after them is
    appended to them, so its first rows are forecast too.

    Missing values at inference. A gap that closed before the origin is
    interpolated in time; a gap still open at the origin repeats the last
    observation; a column not yet observed is set to its training mean.

    The learned baseline. Besides persistence and seasonal naive,
    ``baseline="auto"`` tries a direct linear autoregression: a ridge
    regression from the window (the targets as changes from the origin,
    optionally the origin's level and the covariates) to each horizon step,
    as a departure from persistence or from seasonal naive, so that the
    penalty shrinks it towards one of them. Form, penalty and window are
    chosen on the held-out block; the chosen baseline is ``baseline_`` and
    the held-out errors of all candidates are ``baseline_scores_``. Chosen
    this way, on the public accuracy suite of ``benchmarks/bench_accuracy.py``
    the baseline alone beat seasonal naive and persistence on most data sets,
    and the network's correction improved it further where the data allow
    (``benchmarks/README.md`` has the per-data-set figures).
    ``baseline="smoothing"`` learns exponential smoothing (Holt-Winters,
    additive ETS) run over the window instead: a level, optionally a damped
    additive trend and an additive season of ``season`` steps, its smoothing
    parameters chosen per target on the training windows, its form and
    window on the held-out block. It is a linear map of the window, so it is
    served, pickled and exported as the ridge regression is. Among the
    ``"auto"`` candidates it was the held-out choice on 4 of the 14 public
    data sets, but made two of them worse on the test span, so it is not
    one of them.

    Streaming. ``update()`` keeps the last ``max(window, season)`` rows and
    issues a forecast from every new origin, checks each one against the
    truth when it arrives and adapts the band's offsets (see
    ``calibration_rate``); ``predict()`` without X returns the forecast
    issued from the last origin. ``backtest`` replays that stream over its
    frame, from the offsets learned in fit, so its bands are those a
    streaming user would have been given; ``predict(X)`` uses the offsets
    learned in fit.

    Examples
    --------
    >>> from tsrnn import RNNForecaster
    >>> from tsrnn.datasets import load_weather
    >>> df = load_weather()[["temp_air", "dew_point"]].iloc[:500]
    >>> f = RNNForecaster(target="temp_air", window=24, horizon=6, max_iter=3,
    ...                   random_state=0).fit(df)  # 3 epochs: a quick demo
    >>> forecast = f.predict()
    >>> forecast.shape, str(forecast.index[0])
    ((6, 4), '2017-01-21 20:00:00')
    >>> list(forecast.columns)
    ['temp_air', 'temp_air_q0.1', 'temp_air_q0.5', 'temp_air_q0.9']
    """

    _parameter_constraints: dict = {
        **BaseRNN._parameter_constraints,
        "target": [str, list, tuple, None],
        "horizon": [Interval(Integral, 1, None, closed="left")],
        "quantiles": [tuple, list, np.ndarray, None],
        "freq": [str, pd.offsets.BaseOffset, None],
        "missing": [StrOptions({"raise", "interpolate", "mask"})],
        "known_future": [list, tuple, None],
        "series_id": [str, None],
        "calendar": [StrOptions({"auto"}), list, tuple, None],
        "season_lags": [StrOptions({"auto"}), list, tuple, None],
        "season": [Interval(Integral, 1, None, closed="left"), None],
        "window": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "baseline": [StrOptions({"auto", "smoothing", "persistence", "seasonal"})],
        "calibration": [StrOptions({"cqr", "split"}), None],
        "calibration_rate": [Interval(Real, 0, 1, closed="left")],
        "scaling": [StrOptions({"series", "global"})],
        "network_inputs": [StrOptions({"relative", "level"})],
        "min_network_gain": [Interval(Real, 0, 1, closed="left")],
        "average_best_epochs": [Interval(Integral, 1, None, closed="left")],
        "averaging_frequency": [Interval(Integral, 1, None, closed="left"), None],
    }

    def __init__(
        self,
        target=None,
        *,
        window="auto",
        horizon=24,
        cell="lstm",
        hidden_layer_sizes=(32,),
        quantiles=(0.1, 0.5, 0.9),
        freq=None,
        missing="raise",
        known_future=None,
        series_id=None,
        calendar=None,
        season_lags="auto",
        season=None,
        baseline="auto",
        calibration="cqr",
        calibration_rate=0.1,
        scaling="series",
        network_inputs="relative",
        min_network_gain=0.03,
        average_best_epochs=5,
        averaging_frequency=None,
        dropout=0.0,
        alpha=0.0001,
        batch_size="auto",
        learning_rate_init=0.005,
        max_iter=50,
        max_windows_per_epoch=20_000,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        early_stopping=True,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_grad_norm=5.0,
        forget_bias=1.0,
        dtype=np.float32,
    ):
        super().__init__(
            hidden_layer_sizes,
            cell=cell,
            window=window,
            dropout=dropout,
            alpha=alpha,
            batch_size=batch_size,
            learning_rate_init=learning_rate_init,
            max_iter=max_iter,
            max_windows_per_epoch=max_windows_per_epoch,
            shuffle=shuffle,
            random_state=random_state,
            tol=tol,
            verbose=verbose,
            warm_start=warm_start,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            n_iter_no_change=n_iter_no_change,
            max_grad_norm=max_grad_norm,
            forget_bias=forget_bias,
            dtype=dtype,
        )
        self.target = target
        self.horizon = horizon
        self.quantiles = quantiles
        self.freq = freq
        self.missing = missing
        self.known_future = known_future
        self.series_id = series_id
        self.calendar = calendar
        self.season_lags = season_lags
        self.season = season
        self.baseline = baseline
        self.calibration = calibration
        self.calibration_rate = calibration_rate
        self.scaling = scaling
        self.network_inputs = network_inputs
        self.min_network_gain = min_network_gain
        self.average_best_epochs = average_best_epochs
        self.averaging_frequency = averaging_frequency

    # ------------------------------------------------------------------
    # Public API
    # ------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None, *, callback=None):
        """Train on a time-indexed frame.

        Parameters
        ----------
        X : DataFrame
            DatetimeIndex (or (id, timestamp) MultiIndex, or a ``series_id``
            column), rows in time order, with the target column(s).

        y : None
            Ignored; the targets are columns of X.

        sample_weight : Series, array-like of shape (n_rows,) or float, default=None
            Weight of each row of X as a forecast origin: the forecast made
            at that row (from the ``window`` rows ending there, of the
            ``horizon`` rows after it) counts with this weight, with
            scikit-learn's semantics (validated by
            ``_check_sample_weight``: finite, non-negative, not all zero). A
            Series is aligned to X's index by label (its extra labels are
            ignored; a row of X without a label, or an index with duplicated
            labels that differs from X's, is an error); an array is in X's
            row order. With several series the weights belong to the rows
            of the long frame as given. Rows inserted by ``freq=`` for empty
            steps get weight 0, and a bin of several rows their mean weight.
            A weight covers the forecast made at its row; the row's values
            still enter the windows and horizons of other origins (to keep
            bad values out of training, set them to NaN and use
            ``missing="mask"``).

            The weights enter every error the fit minimises or compares:
            the network's loss (the weighted mean over a minibatch's
            origins; as in MLPRegressor, ``alpha``'s penalty is divided by
            the weight sum, so multiplying all weights by c acts as
            ``alpha / c``), the early-stopping score on the held-out block
            (weighted, as MLPRegressor's), and the learned baseline (the
            ridge candidates are weighted least squares with the weights
            scaled to a mean of 1, and the candidates are ranked by their
            weighted held-out error). An origin of weight 0 is dropped, as
            if absent, from all of these and from the band's calibration.
            The calibration itself is unweighted: its offsets are quantiles
            of held-out errors that promise a coverage of future forecasts,
            which a weighted rank would no longer keep. The scaler and
            ``mase_scale_`` describe the data and ignore the weights.
            Weights are refused (InputError) when no training origin, or no
            origin of the held-out block, has a positive weight.

        callback : callable, default=None
            Called after every epoch with a dict ``{"epoch": int (1-based),
            "max_iter": int, "loss": float, "validation_score": float or None,
            "elapsed": float (seconds since training started)}``.

        Returns
        -------
        self : object
            The fitted forecaster. A fit that raises leaves the forecaster
            unfitted, whatever model it held before.
        """
        return self._fit(X, None, callback=callback, sample_weight=sample_weight)

    def validate_frame(self, X, sample_weight=None):
        """Check that ``fit(X)`` would accept X, without training anything.

        Runs every check ``fit`` makes before its first epoch (columns, time
        index and step, gaps, value range, enough rows for ``window`` and
        ``horizon``) with the current parameters, on a copy: this forecaster
        is not changed. A command line or a pipeline can so refuse bad data
        before it commits to a long fit.

        Parameters
        ----------
        X : DataFrame
            A training frame, as for :meth:`fit`.

        sample_weight : Series, array-like or float, default=None
            Weights of X's rows, as for :meth:`fit`.

        Returns
        -------
        self : object
            This forecaster, unchanged.

        Raises
        ------
        tsrnn.exceptions.InputError
            The data cannot be fitted; the message names the column, row,
            timestamp or count at fault.
        TypeError
            X is not a DataFrame, or its index is not a DatetimeIndex.
        """
        self._probe_fit(X, sample_weight)
        return self

    def _check_rows(self, X):
        """validate_frame's checks of X's rows alone: columns, index, step, gaps, values.

        Without the choice of window and baseline, which checks no data and
        is nearly all of validate_frame's time (5 s of the weather's 8,760
        rows with the weekly lag, 12-16 ms without the choice), nor the
        count of rows it needs: the command line refuses bad
        rows in the held-out block with it before it trains.
        """
        self._probe_fit(X, None, rows_only=True)

    def _probe_fit(self, X, sample_weight, rows_only=False):
        """Run fit's preparation of X on a clone (see ``_prepare_fit``)."""
        probe = clone(self).set_params(warm_start=False)
        probe._validate_params()
        weights = {} if sample_weight is None else {"sample_weight": sample_weight}
        probe._prepare_fit(X, None, first_pass=True, incremental=False, classes=None,
                           rows_only=rows_only, **weights)

    def predict(self, X=None, future=None):
        """Forecast the next ``horizon`` steps after the end of the data.

        Parameters
        ----------
        X : DataFrame, dask DataFrame or None, default=None
            History to forecast from (same columns as in fit, at least
            ``window`` rows per series). None forecasts from the end of the
            data seen by ``fit`` and ``update``.

        future : DataFrame or None
            Required when ``known_future`` is set: the known-future columns for
            the ``horizon`` timestamps after the end of the history (for several
            series, indexed or identified as in X).

        Returns
        -------
        forecast : DataFrame
            Indexed by the next ``horizon`` timestamps (index name as the
            input's; an (id, timestamp) MultiIndex for several series, whose
            id level keeps a numeric id's dtype from the training frame). Without
            quantiles, one column per target. With quantiles, for each target:
            a column named as the target holding the median when 0.5 is among
            the quantiles, then one column ``f"{target}_q{q:g}"`` per quantile
            in increasing order (``temp_air``, ``temp_air_q0.1``,
            ``temp_air_q0.5``, ``temp_air_q0.9``).

            For a ``dask.dataframe.DataFrame`` X (a fleet whose partitions
            hold whole series), a dask DataFrame computed per partition: the
            same rows, with the series id left as X had it, a column or the
            index, since dask has no MultiIndex (see the dask user guide).
        """
        if is_dask_frame(X):
            return _dask_serving.predict(self, X, future)
        self._check_fitted()
        layout = self._frame_layout
        if X is None:
            frames = self._context  # {key: SeriesContext}
            time_name = layout.time_name
        else:
            check_frame(X, "X")
            validate_data(self, X, reset=False, skip_check_array=True)
            frames = layout.split(X)
            time_name = index_names(X, layout.series_id)[1]
        for key, frame in frames.items():
            if len(frame) < self.window_:
                raise InputError(
                    f"Forecasting needs at least window={self.window_} rows of history"
                    f"{where(key)}, got {len(frame)} (through {self._last(frame)}). "
                    "Pass a longer frame, or use update() to append new rows to the "
                    "context kept from fit."
                )
        futures = layout.future(future, frames, self.horizon)
        if self._encoder.future_rows and not layout.known:
            # The future rows' calendar and seasonal lags come from the
            # timestamps and the history.
            futures = {key: np.empty((self.horizon, 0)) for key in frames}
        if X is None and self._tracks():
            Z = self._issued_forecasts()
        elif X is None:
            Z = self._forecast(self._context_windows([
                (key, ctx, [len(ctx) - 1], futures.get(key)) for key, ctx in frames.items()
            ]))
        else:
            records = [
                self._encoder.encode(f, key, fitting=False, future=futures.get(key))
                for key, f in frames.items()
            ]
            A, offsets, causal = stack_inference(records, layout.n_past)
            origins = [o + len(f) - 1 for o, f in zip(offsets, frames.values())]
            Z = self._forecast(self._windows(A, origins, causal=causal,
                                             series=(list(frames), offsets)))
        if not layout.multi:
            (frame,) = frames.values()
            return self._forecast_frame(Z[0], self._future_index(frame, time_name))
        if X is None:
            stamps = future_stamps(list(frames.values()), self.horizon, time_name)
        else:
            parts = [self._future_index(frame, time_name) for frame in frames.values()]
            stamps = parts[0].append(parts[1:])
        ids = layout.id_index(list(frames))
        index = pd.MultiIndex.from_arrays([ids.repeat(self.horizon), stamps],
                                          names=[layout.id_name, time_name])
        return self._forecast_frame(np.concatenate(Z), index)

    def _check_fitted(self):
        """``check_is_fitted(self)``, for the streaming calls.

        It reads the estimator's tags before anything else, a few percent of
        a streamed ``update()`` (issue 13); a fitted forecaster says so
        itself, so the tags are read only to raise NotFittedError.
        """
        if not self.__sklearn_is_fitted__():
            check_is_fitted(self)

    @staticmethod
    def _last(frame):
        """Last timestamp of a frame or a kept context."""
        return frame.last if isinstance(frame, SeriesContext) else frame.index[-1]

    def _future_index(self, frame, name):
        """The ``horizon`` timestamps after a frame or a kept context."""
        if isinstance(frame, SeriesContext):
            return frame.future_index(self.horizon, name)
        return self._frame_layout.future_index(frame.index[-1], self.horizon, name=name)

    def update(self, X):
        """Append new observations and move the forecast origin, without refitting.

        Only the last ``max(window, season)`` rows per series are kept, so the
        cost grows with the number of new rows, not with the history.

        Parameters
        ----------
        X : DataFrame or dask DataFrame
            Rows following the end of the data seen so far (same columns as in
            fit). A series id not seen before starts a new context.

        Returns
        -------
        self : object

        Notes
        -----
        A ``dask.dataframe.DataFrame`` X is computed into this process (its
        rows are the new readings) and appended as the pandas frame would be.
        """
        if is_dask_frame(X):
            return _dask_serving.update(self, X)
        self._check_fitted()
        check_frame(X, "X")
        # The common case (one series, the next rows in order) in numpy;
        # everything else, and every refusal, through the frames.
        grown = self._ingest_fast(X)
        if grown is None:
            validate_data(self, X, reset=False, skip_check_array=True)
            grown = self._ingest(X)
        # The forecasts to check are made before anything changes: they may
        # still refuse the new rows.
        due = {key: self._issue_due(key, ctx, n_old) for key, (ctx, n_old) in grown.items()}
        for key, (ctx, n_old) in grown.items():
            self._track(key, ctx, n_old, due[key])
        # Every series is checked before any context moves.
        keep = self._keep()
        self._context.update({key: ctx.tail(keep) for key, (ctx, _) in grown.items()})
        return self

    def backtest(self, X, start=None, stride=None):
        """Rolling-origin forecasts over X, with accuracy metrics.

        All forecasts are computed in one batched pass. Each one uses data up
        to its origin only (see Notes of the class for gaps).

        Parameters
        ----------
        X : DataFrame or dask DataFrame
            Frame with the columns used in fit. If it starts one step after
            the data seen by ``fit``/``update``, their last rows serve as
            context, so X's first rows are forecast as well; otherwise the
            first origin needs ``window`` rows of X.

        start : timestamp-like or None, default=None
            First forecast origin (last observation used). None: the first
            origin with a full window of history.

        stride : int or None, default=None
            Steps between origins; None means 1 (every step).

        Returns
        -------
        result : Backtest or dask DataFrame
            ``.forecasts`` (long DataFrame) and ``.metrics`` (MAE, RMSE and
            MASE of the model, the persistence forecast and the seasonal naive
            forecast with ``season_`` steps), and ``.intervals`` (coverage,
            width and interval score of each quantile band), see
            :class:`Backtest`. MASE divides by ``mase_scale_`` from the
            training data.

            For a ``dask.dataframe.DataFrame`` X (a fleet whose partitions
            hold whole series), the ``forecasts`` frame alone, as a dask
            DataFrame computed per partition (see the dask user guide).
        """
        if is_dask_frame(X):
            return _dask_serving.backtest(self, X, start, stride)
        return self._backtest(X, start, stride)

    def _backtest(self, X, start=None, stride=None, truth=None):
        """Backtest of X; ``truth`` (a frame like X) replaces its targets as the actuals."""
        check_is_fitted(self)
        check_frame(X, "X")
        validate_data(self, X, reset=False, skip_check_array=True)
        stride = 1 if stride is None else stride
        if not isinstance(stride, Integral) or stride < 1:
            raise ValueError(f"stride must be a positive integer, got {stride!r}.")
        layout = self._frame_layout
        series = self._regular_series(X)
        if series is None:
            frames = layout.split(X)
            contexts, n_before = {}, []
            for key, frame in frames.items():
                contexts[key], n = self._with_context(key, frame)
                n_before.append(n)
            records = [self._encoder.encode(f, key, fitting=False)
                       for key, f in contexts.items()]
            keys, lengths = list(contexts), [len(f) for f in contexts.values()]
            # One index over the stacked rows, keeping the frames' unit and zone.
            first, *rest = [f.index for f in contexts.values()]
            index = first.append(rest) if rest else first
        else:
            keys, lengths, n_before, index, records = series
        A, offsets, causal = stack_inference(records, layout.n_past)
        if truth is not None:
            # The actuals (and the baselines made from them) come from the
            # true targets; X's target columns are only the network's inputs.
            truths = {key: self._with_context(key, f)[0] for key, f in layout.split(truth).items()}
            records = [self._encoder.encode(f, key, fitting=False) for key, f in truths.items()]
        R, Rff = stack(records, ["R", "Rff"])[:2]

        h, w = self.horizon, self.window_
        origins, origin_keys, first_row, spans = [], [], [], []
        for key, n, before, o in zip(keys, lengths, n_before, offsets):
            first = max(w - 1, before - 1)
            if start is not None:
                first = max(first, int(index[o : o + n].searchsorted(pd.Timestamp(start))))
            p = o + np.arange(first, n - h, stride)
            origins.append(p)
            origin_keys += [key] * len(p)
            first_row.append(np.full(len(p), o))
            spans.append(o + np.arange(first, n - h))
        origins, first_row = np.concatenate(origins), np.concatenate(first_row)
        if not len(origins):
            raise InputError(
                f"X has no forecast origin for a backtest: each needs window={w} rows "
                f"of history and horizon={h} rows after it (X has {len(X)} rows"
                + ("" if start is None else f", start={start}")
                + ")."
            )
        series = (keys, offsets)
        if self._tracks_in_backtest():
            Z = self._replay_stream(A, causal, R, spans, origins, series)  # (n, h, T, Q)
        else:
            Z = self._forecast(self._windows(A, origins, causal=causal, series=series))
        actual = R[origins[:, None] + np.arange(1, h + 1)]  # (n, h, T)
        persistence, seasonal = _backtest.baselines(Rff, origins, first_row, h, self.season_)
        point = Z[..., self._point_index()]
        ids = layout.series_ids(X, origin_keys) if layout.multi else None
        forecasts = _backtest.forecasts_frame(
            index, origins,
            layout.targets, point, self.quantiles_, Z, persistence, seasonal, actual,
            ids=ids, id_name=layout.id_name,
        )
        by_target, metrics = _backtest.score(
            layout.targets, point, persistence, seasonal, actual, self.mase_scale_
        )
        bands_by_target, bands = _backtest.interval_scores(
            layout.targets, self.quantiles_, Z, actual
        )
        return Backtest(forecasts, metrics, by_target, self.season_, bands, bands_by_target)

    def score(self, X, y=None):
        """Negated MASE of a rolling-origin backtest on X (greater is better).

        Every step of X that has ``horizon`` observed steps after it is a
        forecast origin; the forecasts use only data up to their origin, with
        the end of the training data as context when X follows it (as the
        folds of TimeSeriesSplit do). See :meth:`backtest`.

        Parameters
        ----------
        X : DataFrame
            Test frame, with the columns used in fit.

        y : Series, DataFrame or None, default=None
            The true targets, indexed as X (a Series for one target, else a
            frame with the target columns). When given, X's target columns
            are only the network's inputs and the forecasts are scored
            against y. That is what
            :func:`sklearn.inspection.permutation_importance` needs to measure
            how much the forecasts rely on the target's own history:
            ``permutation_importance(forecaster, X, X[target])`` shuffles each
            column of X in turn, the target included, and scores against the
            unshuffled truth. (Leave its ``max_samples`` at 1.0: a subsample
            of rows is no longer a time series.)

        Returns
        -------
        score : float
            ``-MASE`` of the model, the mean over targets. NaN, with an
            ``UndefinedMetricWarning``, when MASE is undefined (see
            ``mase_scale_``): rank such models by MAE instead, e.g. with
            ``scoring=tsrnn.metrics.mae_scorer``.
        """
        truth = None if y is None else self._truth_frame(X, y)
        mase = float(self._backtest(X, truth=truth).metrics.loc["model", "MASE"])
        if np.isnan(mase):
            warnings.warn(
                "MASE is undefined for this forecaster: the seasonal naive forecast "
                "of a target has no error on the training data (see mase_scale_), "
                "so score() is NaN. Score with tsrnn.metrics.mae_scorer instead.",
                UndefinedMetricWarning,
                stacklevel=2,
            )
        return -mase

    def _truth_frame(self, X, y):
        """X with its target columns replaced by the true targets ``y``."""
        check_is_fitted(self)
        check_frame(X, "X")
        targets = self._frame_layout.targets
        if isinstance(y, pd.Series):
            if len(targets) != 1:
                raise InputError(
                    f"y is a Series, but the forecaster has {len(targets)} targets "
                    f"{targets}; pass a DataFrame with these columns."
                )
            y = y.to_frame(targets[0])
        if not isinstance(y, pd.DataFrame):
            raise TypeError(
                f"y must be a pandas Series or DataFrame of the true targets, got "
                f"{type(y).__name__}."
            )
        missing = [t for t in targets if t not in y.columns]
        if missing:
            raise InputError(f"y lacks the target column(s) {missing}.")
        if not y.index.equals(X.index):
            raise InputError(
                "y must have the same index as X (the true targets at X's "
                f"timestamps); y has {len(y)} rows from {y.index[0] if len(y) else '-'}, "
                f"X {len(X)} rows from {X.index[0] if len(X) else '-'}."
            )
        truth = X.copy()
        truth[targets] = y[targets].to_numpy()
        return truth

    def plot(self, X=None, ax=None, *, future=None, series=None, n_history=None):
        """Plot the recent history, the forecast and its quantile band.

        Parameters
        ----------
        X : DataFrame or None, default=None
            History to forecast from; None uses the data seen by fit/update.

        ax : matplotlib Axes or None, default=None
            Axes to draw on; a new figure is made when None.

        future : DataFrame or None, default=None
            Known-future values, as for :meth:`predict`.

        series : hashable or None, default=None
            Series to draw when there are several; None draws the first one.

        n_history : int or None, default=None
            Number of history rows to draw; None means ``max(window,
            2 * horizon)``. Without X, at most the kept context
            (``max(window, season_)`` rows) can be drawn.

        Returns
        -------
        ax : matplotlib Axes
        """
        check_is_fitted(self)
        forecast = self.predict(X, future)
        history = (
            {key: ctx.frame() for key, ctx in self._context.items()} if X is None
            else self._frame_layout.split(X)
        )
        return plot_forecast(self, history, forecast, ax, series, n_history)

    # ------------------------------------------------------------------
    # Fitted description of the data
    # ------------------------------------------------------------------
    @property
    def target_(self):
        """Target columns (list of str)."""
        check_is_fitted(self)
        return self._frame_layout.targets

    @property
    def past_covariates_(self):
        """Numeric columns used as inputs up to the origin only."""
        check_is_fitted(self)
        return self._frame_layout.past

    @property
    def known_future_(self):
        """Columns whose future values are inputs as well."""
        check_is_fitted(self)
        return self._frame_layout.known

    @property
    def freq_(self):
        """Time step (pandas alias), given or inferred."""
        check_is_fitted(self)
        return self._frame_layout.offset.freqstr

    @property
    def baseline_(self):
        """The baseline chosen in fit, in words."""
        check_is_fitted(self)
        return self._baseline.describe()

    @property
    def series_scales_(self):
        """Per-series mean and scale of the model columns, or None."""
        check_is_fitted(self)
        stats = self._encoder.series_stats
        if not stats:
            return None
        columns = pd.MultiIndex.from_product([["mean", "scale"], self._frame_layout.columns])
        values = np.array([np.concatenate(stats[key]) for key in stats])
        return pd.DataFrame(values, index=pd.Index(list(stats), name=self._frame_layout.id_name),
                            columns=columns)

    @property
    def scaler_(self):
        """StandardScaler fitted on the training frame's model columns."""
        check_is_fitted(self)
        return self._encoder.scaler

    # ------------------------------------------------------------------
    # Fitting (BaseRNN's one fit path calls _prepare_fit)
    # ------------------------------------------------------------------
    def _prepare_fit(self, X, y, first_pass, incremental, classes, sample_weight=None,
                     rows_only=False):
        # rows_only (``_check_rows``): stop once the rows are checked and
        # encoded, before the window, the baseline and the held-out block.
        if is_dask_frame(X):
            # A fleet on dask workers: the same steps, with reductions over
            # partitions and only sampled windows brought here (imports dask).
            from tsrnn._dask_fit import prepare_fit

            return prepare_fit(self, X, first_pass, sample_weight)
        if self.averaging_frequency is not None:
            raise ValueError(
                "averaging_frequency trains across dask workers and needs X as a "
                "dask DataFrame; set averaging_frequency=None for a pandas frame."
            )
        check_frame(X, "X")
        validate_data(self, X, reset=first_pass, skip_check_array=True)
        if sample_weight is not None:
            sample_weight = _row_weights(X, sample_weight)
        layout = FrameLayout.from_frame(
            X, self.target, self.known_future, self.series_id, self.missing
        )
        quantiles = self._check_quantiles()
        n_outputs = self.horizon * len(layout.targets) * len(self._heads(quantiles))
        if not first_pass:
            same = layout.structure() == self._frame_layout.structure() and (
                (quantiles is None) == (self.quantiles_ is None)
                and (quantiles is None or np.array_equal(quantiles, self.quantiles_))
                and n_outputs == self.n_outputs_
                and self._time_columns_match()
            )
            if not same:
                raise ValueError(
                    "warm_start must keep target, known_future, calendar, season_lags, the "
                    "covariate "
                    "columns, the series layout, quantiles and horizon of the fitted "
                    "model; refit with warm_start=False to change them."
                )
            # A warm start keeps the first fit's time step, scaling and MASE
            # scale: the weights learned them.
            layout = self._frame_layout
        frames = layout.split(X, regularize=False)
        if first_pass:
            if not all(len(f) for f in frames.values()):
                raise InputError("X has no rows.")
            layout.set_step(frames, self.freq)
        frames = {key: layout.regularize(f, key) for key, f in frames.items()}
        if first_pass:
            self._frame_layout = layout
            self.quantiles_ = quantiles
            self._head_levels = self._heads(quantiles)
            self.n_outputs_ = n_outputs
            self.season_ = default_season(layout.offset) if self.season is None else self.season
            self.series_ids_ = list(frames) if layout.multi else None
            raws = {key: f.to_numpy(np.float64) for key, f in frames.items()}
            check_no_infinity(raws, lambda key: frames[key].index, layout)
            with warnings.catch_warnings():
                # check_scaler reports overflowing columns by name; numpy's
                # overflow warnings would only come before that message.
                warnings.simplefilter("ignore", RuntimeWarning)
                # StandardScaler ignores NaN when fitting: gaps do not bias it.
                scaler = StandardScaler()
                for block in scaler_blocks(list(raws.values())):
                    scaler.partial_fit(block)
            check_scaler(scaler, layout)
            series_stats = None
            if layout.multi and self.scaling == "series":
                series_stats = series_statistics(raws, scaler)
            del raws
            self._encoder = Encoder(layout, scaler, np.dtype(self.dtype), self.horizon,
                                    series_stats, *self._time_columns(layout.offset))
            targets = [f.to_numpy(np.float64)[:, : len(layout.targets)] for f in frames.values()]
            self.mase_scale_ = _seasonal_naive_mae(targets, self.season_)
            self._choose_level_scaling(targets)  # the band's error model (_band_tracking.py)
        records = [self._encoder.encode(f, key, fitting=True) for key, f in frames.items()]
        A, Y, offsets = stack(records, ["A", "Y"])
        del records  # the per-series copies: a fleet's would double A and Y
        lengths = [len(f) for f in frames.values()]
        W = None
        if sample_weight is not None:
            # The weight of the origin at each stacked row.
            by_key = layout.split_weights(X, sample_weight, frames)
            W = np.concatenate([by_key[key] for key in frames])
        if rows_only:
            return None
        if first_pass:
            self._choose_baseline(StackedOrigins(A, Y, offsets, lengths, W))
        holdout = self.early_stopping or self._calibrates()
        try:
            train, val = fit_origins(
                lengths, offsets, Y, self.window_, self.horizon,
                self._holdout_fraction(lengths) if holdout else None, weights=W,
            )
        except InputError as exc:
            if self.early_stopping or not holdout:
                raise
            # Too short to hold out a block for calibration only (or no
            # weight in it): train on everything and keep the band as trained.
            train, val = fit_origins(lengths, offsets, Y, self.window_, self.horizon,
                                     weights=W)
            why = (
                f"it must span horizon={self.horizon} rows after window={self.window_}"
                if W is None or "sample_weight" not in str(exc)
                else "sample_weight is zero throughout it"
            )
            warnings.warn(
                f"Too few rows to hold out a block for calibrating the quantiles "
                f"({why}); the band is left uncalibrated.",
                UserWarning, stacklevel=4,
            )
        if val is not None and self.max_windows_per_epoch is not None:
            # A fixed sample of the held-out block: every epoch is scored on
            # the same windows, at a cost that does not grow with the fleet.
            val = val[fixed_sample(series_groups(val, offsets), self.max_windows_per_epoch)]
        if val is not None:
            # Inputs are gathered block by block when validation is scored;
            # only the (small) targets exist as a whole.
            val_windows = self._windows(A, val, Y=Y, W=W, series=(list(frames), offsets))
            val = (val_windows, val_windows.targets())
            if W is not None:
                val += (val_windows.weights(),)
        self._set_context(frames)
        if first_pass:
            self._calibration, self._trackers = None, {}
        self._context_lengths = {key: len(f) for key, f in frames.items()}
        train = self._windows(A, train, Y=Y, W=W)
        # The budget's draws are shared among the series (``_sampling.py``).
        train.groups = series_groups(train.origins, offsets)
        return A.shape[1], train, val

    def _time_columns(self, offset):
        """(Calendar or None, seasonal lags): the encoder's columns made from time.

        Both fits (pandas, and a fleet on dask) build their encoders from
        these, after ``season_`` is set.
        """
        return (Calendar.from_parameter(self.calendar, offset),
                self._season_lags(offset, self.season_))

    def _time_columns_match(self):
        """Whether ``_time_columns`` equal the fitted encoder's (a warm start's check)."""
        calendar, lags = self._time_columns(self._frame_layout.offset)
        return _cycles(calendar) == _cycles(self._encoder.calendar) and lags == self._encoder.lags

    def _season_lags(self, offset, season):
        """The seasonal lags of ``season_lags`` (a tuple), checked against the horizon."""
        if self.season_lags is None:
            return ()
        if isinstance(self.season_lags, str):
            return tuple(s for s in seasons_for(offset) if s > season and s >= self.horizon)
        lags = sorted(set(self.season_lags))
        bad = [s for s in lags if not isinstance(s, Integral) or s < self.horizon]
        if bad:
            raise ValueError(
                f"season_lags must be whole numbers of steps of at least horizon="
                f"{self.horizon} (a shorter lag is unknown for the last steps of the "
                f"forecast); got {bad}."
            )
        return tuple(int(s) for s in lags)

    _divergence_hint = "Lower learning_rate_init or set max_grad_norm."
    # The untrained network outputs zero corrections, so the untrained model is
    # the baseline; early stopping keeps it when no epoch's point forecast
    # beats it on the validation block (``_validation_score``).
    _score_initial_model = True

    def _initial_model_margin(self):
        return self.min_network_gain

    def _n_averaged_epochs(self):
        return self.average_best_epochs

    def _initialize(self, n_features):
        super()._initialize(n_features)
        views = self._views()
        views["head.weight"][...] = 0
        views["head.bias"][...] = 0

    # ------------------------------------------------------------------
    # Windows and outputs
    # ------------------------------------------------------------------
    def _choose_baseline(self, source):
        """The baseline and ``window_`` (``_fit_baseline``), and what the network reads.

        The one place both fits (pandas, and a fleet on dask) make them, so
        the network's inputs always follow the chosen window.
        """
        self._baseline = self._fit_baseline(source)
        self._network_inputs = NetworkInputs(self.network_inputs, self.window_,
                                             len(self._frame_layout.targets))

    def _windows(self, A, origins, Y=None, causal=None, W=None, series=None):
        """ForecastWindows of stacked arrays; ``series`` = (keys, offsets) of the stack."""
        layout = self._frame_layout
        windows = ForecastWindows(
            A, origins, self.window_, self.horizon, layout.n_past, len(layout.targets),
            self._encoder.future_rows, Y=Y, causal=causal, baseline=self._baseline, W=W,
            network_inputs=self._network_inputs,
        )
        if series is not None:
            windows.scales = self._encoder.item_scales(*series, windows.origins)
        return windows

    def _with_context(self, key, frame):
        """(frame with the kept context prepended when it follows it, rows added)."""
        ctx = self._context.get(key)
        offset = self._frame_layout.offset
        if ctx is None or frame.index[0] != ctx.last + offset:
            return frame, 0
        joined = pd.concat([ctx.frame(), frame])
        # In the unit of X's index: the backtest answers in the user's unit.
        joined.index = pd.date_range(
            ctx.index[0], periods=len(joined), freq=offset, name=frame.index.name,
            unit=frame.index.unit,
        )
        return joined, len(ctx)

    def _regular_series(self, X):
        """What the backtest makes of a fleet frame's series, from arrays; or None.

        ``(keys, lengths, n_before, index, records)``: the series' keys and
        rows once joined to their kept context, the context rows each
        gained, one index over the stacked rows and the encoded records,
        as ``layout.split``, ``_with_context`` and ``Encoder.encode`` give
        them for each series, without a frame per series (10,000 sensors:
        several seconds of pandas calls per series). None when
        ``FrameLayout.split_regular`` refuses X or a context's index has
        another unit or time zone than X's: those take the frames. A series
        whose rows have a gap, or a value that does not standardise within
        the dtype, is encoded from its frame, as there.
        """
        split = self._frame_layout.split_regular(X)
        if split is None:
            return None
        keys, raw, starts, stamps = split
        dtype, unit, encoder = X.index.dtype, X.index.unit, self._encoder
        n_t = len(self._frame_layout.targets)
        step = as_integer(pd.Timedelta(self._frame_layout.offset).as_unit(unit))
        joined, firsts, n_before = [], [], []
        for key, a, b in zip(keys, starts[:-1], starts[1:]):
            ctx = self._context.get(key)
            rows, first, n = raw[a:b], stamps[a], 0
            if ctx is not None:
                if ctx.index_dtype != dtype:
                    return None
                # As _with_context: the context is prepended when X follows it.
                if first == ctx.stamp + step:
                    rows, n = np.concatenate([ctx.raw, rows]), len(ctx)
                    first -= n * step
            joined.append(rows)
            firsts.append(first)
            n_before.append(n)
        # The rows' timestamps, each series a regular run from its first.
        lengths = np.array([len(rows) for rows in joined])
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        values = (np.repeat(np.asarray(firsts, np.int64), lengths)
                  + step * (np.arange(lengths.sum()) - np.repeat(offsets, lengths)))
        index = from_integers(values, dtype, X.index.name)
        records = []
        for key, rows, o in zip(keys, joined, offsets):
            stamps_of = index[o : o + len(rows)]
            # encode_rows is encode's arithmetic for rows without a gap; it
            # gives None for a gap or a value beyond the dtype, which encode
            # fills, or refuses with a message that names it.
            A = encoder.encode_rows(rows, checked=True, key=key, index=stamps_of)
            if A is None:
                frame = pd.DataFrame(rows, index=stamps_of, columns=self._frame_layout.columns)
                records.append(encoder.encode(frame, key, fitting=False))
            else:
                targets = rows[:, :n_t]
                # No gap: the targets carried forward are the targets.
                records.append({"A": A, "R": targets, "Rff": targets, "causal": None})
        return keys, lengths.tolist(), n_before, index, records

    def _forecast(self, windows, calibrated=True):
        """Forecasts (n_items, horizon, n_targets, n_quantiles), original units.

        Quantiles are sorted (monotone rearrangement); ``calibrated`` adds the
        band's offsets learned in fit, and sorts again.
        """
        n_t = len(self._frame_layout.targets)
        Z = self._raw_predict_sequences(windows).astype(np.float64)
        Z = Z.reshape(windows.n_items, self.horizon, n_t, -1)
        Z += windows.baselines()[..., None]  # the network forecasts changes from it
        if self.quantiles_ is not None and Z.shape[-1] != len(self.quantiles_):
            # calibration="split": every quantile starts at the median.
            Z = np.repeat(Z, len(self.quantiles_), axis=-1)
        Z.sort(axis=-1)
        Z = self._encoder.unscale_targets(Z, windows.scales, out=Z)
        if calibrated and getattr(self, "_calibration", None) is not None:
            Z = self._calibration.apply(Z)
            Z.sort(axis=-1)
        return Z

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.target_tags.required = False
        return tags
