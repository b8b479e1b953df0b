"""RNNForecaster: multi-step forecasts from pandas frames with a recurrent net.

Design
------
Model. The network of :class:`~tsrnn._base.BaseRNN` (recurrent stack + dense
head) reads the last ``window`` rows before a forecast origin and its head
emits every output at once: ``horizon x n_targets x n_quantiles`` values
("direct multi-step"), ordered C-style as (step, target, quantile). The
outputs are changes from the target's (scaled) value at the origin, i.e.
corrections to the persistence forecast. Absolute outputs extrapolate badly
to levels rarer in training: on the embedded weather, an LSTM trained on
January-April and tested on May had MAE 4.32 with absolute outputs and 2.62
with relative ones (seasonal naive: 3.28). Training,
weights, Adam, early stopping and inference blocks are BaseRNN's; this class
only builds the windows, the loss and the pandas around them.

Inputs. Columns are ordered [targets, past covariates, known-future
covariates], each standardised by one StandardScaler fitted on the training
frame (NaN ignored by the scaler). Targets are inputs too (autoregression).
With known-future covariates the input sequence is ``window + horizon`` steps:
the last ``horizon`` steps carry the future values of the known covariates,
zeros (the training mean) in the target and past-covariate columns, and a
0/1 "future" flag column. The head then reads the state after the last future
step. This needs no second network (decoder) and no change to BaseRNN.

Windows. All series are stacked into one array; a forecast origin ``p`` is a
row index into it, and its input is rows ``p - window + 1 .. p`` (+ the future
rows). Minibatches are gathered from a ``sliding_window_view`` of the stack
(``_Windows``), so memory is O(data + batch), as in BaseRNN's streams. Origins
never take windows across two series.

Honest evaluation. ``backtest`` and ``score`` forecast from every origin in
one batched pass. At fit time the forecaster keeps the last
``max(window, season)`` rows of every series ("context", raw values).
``predict()`` without X forecasts from it; when a frame passed to
``backtest``/``score`` starts right after it, it is prepended, so the first
forecasts of a test fold use the end of the training data, as in
TimeSeriesSplit. ``update`` moves the context forward. Inputs at an origin use
data up to the origin only (see Missing values); targets after the origin are
used only as the actuals.

Missing values. During fit, gaps are filled by time interpolation (both
directions at the edges). At inference, filling must not look past the
origin: a gap that closed before the origin is interpolated, a gap still open
at the origin carries the last observation forward, and a column with nothing
observed yet is set to its training mean. ``_Windows`` applies this per origin
with ``last_obs`` (index of the last observed row at or before each row).
With ``missing="mask"`` missing target values stay NaN in the training
targets and add nothing to the loss or its gradient; origins with no observed
target in their horizon are dropped.

Quantiles. The pinball loss trains one output per quantile; at prediction the
quantiles of each (step, target) are sorted, which removes quantile crossing
(monotone rearrangement, Chernozhukov et al. 2010) and can only reduce the
pinball loss.

Callbacks. BaseRNN has no epoch hook; ``_update_no_improvement_count`` is
called by its loop exactly once per epoch, after ``n_iter_``, ``loss_curve_``
and ``validation_scores_`` are updated, so the fit callback is fired there.
"""

import time
from dataclasses import dataclass
from numbers import Integral

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from pandas.api.types import is_numeric_dtype
from pandas.tseries.frequencies import to_offset
from sklearn.base import _fit_context
from sklearn.metrics import mean_absolute_error, root_mean_squared_error
from sklearn.preprocessing import StandardScaler
from sklearn.utils import gen_batches
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, check_random_state, validate_data

from tsrnn._base import BaseRNN, _Diverged
from tsrnn.metrics import _seasonal_naive_mae


def _default_season(offset):
    """Season length in steps for a frequency: one day for sub-daily data.

    Sub-daily steps that divide a day give the steps per day; daily data give
    7 (a week); monthly 12 and quarterly 4 (a year); anything else 1, which
    makes the seasonal naive forecast the persistence forecast.
    """
    if isinstance(offset, pd.offsets.Tick):
        step = pd.Timedelta(offset)
        day = pd.Timedelta(days=1)
        if step < day and day % step == pd.Timedelta(0):
            return int(day // step)
        return 1
    name = type(offset).__name__
    if name == "Day" and offset.n == 1:
        return 7
    if "Month" in name and offset.n == 1:
        return 12
    if "Quarter" in name and offset.n == 1:
        return 4
    return 1


class _Windows:
    """Inputs (and training targets) of a set of forecast origins.

    Parameters
    ----------
    A : ndarray (n_rows, n_inputs)
        Stacked, scaled, filled model inputs of all series.
    origins : ndarray of int
        Row index of the last observed row of each item.
    window, horizon : int
    n_past : int
        Number of leading columns (targets + past covariates) that are
        unknown after the origin.
    future : bool
        Inputs run ``horizon`` steps past the origin (known-future covariates).
        The last column of A is then the future flag.
    Y : ndarray (n_rows, n_targets) or None
        Scaled targets (NaN = not observed), for training.
    causal : (last_obs, ffill) or None
        ``last_obs`` (n_rows, n_past) int: row of the last observed value at
        or before each row (``offset - 1`` of the series when none);
        ``ffill`` (n_rows, n_past): scaled last observation (0 when none).
        Given at inference when the data have gaps.
    """

    prefix = None  # BaseRNN._run_epochs: no short-history sequence here

    def __init__(self, A, origins, window, horizon, n_past, future, Y=None, causal=None):
        self.origins = np.asarray(origins, dtype=np.intp)
        self.n_items = self.n_rows = len(self.origins)
        self.window, self.horizon, self.n_past, self.future = window, horizon, n_past, future
        self.length = window + horizon if future else window
        # (n_rows - length + 1, length, n_inputs): a strided view, no copy.
        self._inputs = sliding_window_view(A, self.length, axis=0).transpose(0, 2, 1)
        self._targets = None
        if Y is not None:
            self._targets = sliding_window_view(Y, horizon, axis=0).transpose(0, 2, 1)
        self.causal = causal

    def inputs(self, idx):
        p = self.origins[idx]
        X = self._inputs[p - self.window + 1]  # fancy indexing: a copy of the batch
        if self.causal is not None:
            last_obs, ffill = self.causal
            rows = (p - self.window + 1)[:, None] + np.arange(self.window)  # (B, W)
            # A row after the last observation at or before p is in a gap that
            # is still open at the origin: carry that observation forward.
            open_gap = rows[:, :, None] > last_obs[p][:, None, :]  # (B, W, n_past)
            past = X[:, : self.window, : self.n_past]
            carried = np.broadcast_to(ffill[p][:, None, :], past.shape)
            past[open_gap] = carried[open_gap]
        if self.future:
            X[:, self.window :, : self.n_past] = 0
            X[:, self.window :, -1] = 1
        return X

    def batch(self, idx):
        p = self.origins[idx]
        X = self.inputs(idx)
        Y = self._targets[p + 1]  # (B, horizon, n_targets), rows p+1 .. p+horizon
        # Targets relative to the (scaled, filled) last value at the origin.
        Y = Y - X[:, self.window - 1, None, : Y.shape[2]]
        return X, Y.reshape(len(p), -1)


@dataclass
class Backtest:
    """Result of :meth:`RNNForecaster.backtest`.

    Attributes
    ----------
    forecasts : DataFrame
        One row per (origin, forecast timestamp, target), in that order, with
        columns ``origin`` (last observation used), ``timestamp``, ``step``
        (1 .. horizon), ``target``, ``forecast`` (point forecast), one
        ``forecast_q{q:g}`` column per quantile when the model has quantiles,
        ``persistence``, ``seasonal_naive`` and ``actual`` (NaN where not
        observed). Multi-series backtests start with the series-id column.
    metrics : DataFrame
        Index ``["model", "persistence", "seasonal_naive"]``, columns
        ``["MAE", "RMSE", "MASE"]``, over the rows where the actual and both
        baseline forecasts exist. With several targets, each metric is the mean
        of the per-target metrics.
    metrics_by_target : DataFrame
        The same metrics for each target: index (target, model).
    season : int
        Season length (steps) of the seasonal naive forecast and of MASE.
    """

    forecasts: pd.DataFrame
    metrics: pd.DataFrame
    metrics_by_target: pd.DataFrame
    season: int


class RNNForecaster(BaseRNN):
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

    window : int, default=48
        Number of past rows the network reads before each forecast origin.

    horizon : int, default=24
        Number of future steps forecast at once.

    cell : {"lstm", "gru", "peephole"}, default="lstm"
        Recurrent cell.

    hidden_layer_sizes : int or array-like of int, default=(32,)
        Width of each stacked recurrent layer, from the input upwards.

    quantiles : tuple of float in (0, 1) or None, default=None
        Quantile levels to forecast, trained with the pinball loss. None
        trains the mean squared error and returns point forecasts.

    freq : str or DateOffset, default=None
        Time step. None infers it from the index (``index.freq`` or pandas'
        inference) and raises a ValueError for an irregular or duplicated
        index. When given, every frame is resampled to this step with the
        mean (``df.resample(freq).mean()``): duplicates and irregular stamps
        are averaged into bins, and empty bins become missing values.

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

    season : int or None, default=None
        Season length in steps, for the seasonal naive baseline and MASE.
        None: one day of steps for sub-daily data (24 for hourly), 7 for
        daily, 12 for monthly, 4 for quarterly data, otherwise 1.

    dropout, alpha, batch_size, learning_rate_init, max_iter, shuffle, \
random_state, tol, verbose, warm_start, early_stopping, validation_fraction, \
beta_1, beta_2, epsilon, n_iter_no_change, max_grad_norm, forget_bias, dtype
        Training parameters, with the meanings of
        :class:`~tsrnn.RNNRegressor` (and MLPRegressor). An epoch is one pass
        over all forecast origins of the training frame. ``early_stopping``
        holds out the last ``validation_fraction`` of every series' rows as
        validation targets; training windows end before them, so no training
        target is a validation target. The validation score is the negated
        training loss on that block. ``warm_start`` continues training the
        weights on new data with the first fit's scaler, frequency and MASE
        scale; the columns, quantiles and horizon must stay the same.

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

    scaler_ : StandardScaler
        Fitted on the training frame's [targets, past, known-future] columns.

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

    Notes
    -----
    Forecast origins. A forecast made at origin ``t`` uses rows up to and
    including ``t`` (and known-future values after ``t``) and predicts
    ``t + 1 .. t + horizon``.

    Context. The last ``max(window, season)`` rows seen by ``fit`` or
    ``update`` are kept. ``predict()`` without X forecasts from them; a frame
    given to ``backtest``/``score`` that starts one step after them is
    appended to them, so its first rows are forecast too.

    Missing values at inference. A gap that closed before the origin is
    interpolated in time; a gap still open at the origin repeats the last
    observation; a column not yet observed is set to its training mean.

    Examples
    --------
    >>> from tsrnn import RNNForecaster
    >>> from tsrnn.datasets import load_weather
    >>> df = load_weather()[["temp_air", "dew_point"]].iloc[:500]
    >>> f = RNNForecaster(target="temp_air", window=24, horizon=6, max_iter=3,
    ...                   random_state=0).fit(df)  # 3 epochs: a quick demo
    >>> forecast = f.predict()
    >>> forecast.shape, str(forecast.index[0])
    ((6, 1), '2017-01-21 20:00:00')
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
        "season": [Interval(Integral, 1, None, closed="left"), None],
    }

    def __init__(
        self,
        target=None,
        *,
        window=48,
        horizon=24,
        cell="lstm",
        hidden_layer_sizes=(32,),
        quantiles=None,
        freq=None,
        missing="raise",
        known_future=None,
        series_id=None,
        season=None,
        dropout=0.0,
        alpha=0.0001,
        batch_size="auto",
        learning_rate_init=0.005,
        max_iter=50,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        early_stopping=False,
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
        self.season = season

    # ------------------------------------------------------------------
    # Public API
    # ------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, *, callback=None):
        """Train on a time-indexed frame.

        Parameters
        ----------
        X : DataFrame
            DatetimeIndex (or (id, timestamp) MultiIndex, or a ``series_id``
            column), rows in time order, with the target column(s).

        y : None
            Ignored; the targets are columns of X.

        callback : callable, default=None
            Called after every epoch with a dict ``{"epoch": int (1-based),
            "max_iter": int, "loss": float, "validation_score": float or None,
            "elapsed": float (seconds since fit started)}``.

        Returns
        -------
        self : object
            The fitted forecaster.
        """
        start = time.perf_counter()
        first_pass = not (self.warm_start and hasattr(self, "_flat"))
        self._check_frame(X, "X")
        validate_data(self, X, reset=first_pass, skip_check_array=True)
        if first_pass:
            self._set_roles(X)
        else:
            self._check_warm_start(X)
        frames = self._series_frames(X, infer_freq=first_pass)
        if first_pass:
            self.series_ids_ = list(frames) if self._multi else None
            raw = np.concatenate([f.to_numpy(np.float64) for f in frames.values()])
            # StandardScaler ignores NaN when fitting: gaps do not bias the scale.
            self.scaler_ = StandardScaler().fit(raw)
            n_t = len(self.target_)
            self._check_scaler(n_t)
            self.mase_scale_ = _seasonal_naive_mae(
                [f.to_numpy(np.float64)[:, :n_t] for f in frames.values()], self.season_
            )

        records = [self._encode(f, key, fitting=True) for key, f in frames.items()]
        A, Y, offsets = self._stack(records, ["A", "Y"])
        train, val = self._origins_fit(frames, offsets, Y)
        windows = self._windows(A, train, Y=Y)

        # None means fresh OS entropy, as in BaseRNN._fit: check_random_state(None)
        # would hand back numpy's global RandomState and advance it.
        self._random_state = (
            np.random.RandomState()
            if self.random_state is None
            else check_random_state(self.random_state)
        )
        if first_pass:
            self._initialize(A.shape[1])
        else:
            self._check_architecture(A.shape[1])
            self._flat[1:] = 0  # a warm-started fit gets a fresh optimizer, as MLP
            self._adam_t = 0
        if val is not None:
            val = self._windows(A, val, Y=Y).batch(np.arange(len(val)))

        self._callback, self._fit_start = callback, start
        try:
            self._run_epochs(windows, val, incremental=False)
        except _Diverged as exc:
            # As BaseRNN._fit: a model with non-finite weights must not look fitted.
            for name in list(vars(self)):
                if name not in self._get_param_names():
                    delattr(self, name)
            raise ValueError(
                f"Training diverged: {exc}. No model was kept. Lower "
                "learning_rate_init or set max_grad_norm."
            ) from None
        finally:
            self.__dict__.pop("_callback", None)
            self.__dict__.pop("_fit_start", None)
        self._context = {key: self._tail(f) for key, f in frames.items()}
        return self

    def predict(self, X=None, future=None):
        """Forecast the next ``horizon`` steps after the end of the data.

        Parameters
        ----------
        X : DataFrame or None, default=None
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
            input's; an (id, timestamp) MultiIndex for several series). Without
            quantiles, one column per target. With quantiles, for each target:
            a column named as the target holding the median when 0.5 is among
            the quantiles, then one column ``f"{target}_q{q:g}"`` per quantile
            in increasing order (``temp_air``, ``temp_air_q0.1``,
            ``temp_air_q0.5``, ``temp_air_q0.9``).
        """
        check_is_fitted(self)
        if X is None:
            frames = dict(self._context)
            time_name = self._time_name
        else:
            self._check_frame(X, "X")
            validate_data(self, X, reset=False, skip_check_array=True)
            frames = self._series_frames(X)
            time_name = self._index_names(X)[1]
        for key, frame in frames.items():
            if len(frame) < self.window:
                raise ValueError(
                    f"Forecasting needs at least window={self.window} rows of history"
                    f"{self._where(key)}, got {len(frame)} (through {frame.index[-1]}). "
                    "Pass a longer frame, or use update() to append new rows to the "
                    "context kept from fit."
                )
        futures = self._future_frames(future, frames)
        records = [
            self._encode(f, key, fitting=False, future=futures.get(key))
            for key, f in frames.items()
        ]
        A, offsets, causal = self._stack_inference(records)
        lengths = [len(f) for f in frames.values()]
        origins = [o + n - 1 for o, n in zip(offsets, lengths)]
        Z = self._forecast(self._windows(A, origins, causal=causal))
        parts = []
        for i, (key, frame) in enumerate(frames.items()):
            index = pd.date_range(
                frame.index[-1] + self._offset, periods=self.horizon,
                freq=self._offset, name=time_name,
            )
            parts.append(pd.DataFrame(self._forecast_columns(Z[i]), index=index))
        if not self._multi:
            return parts[0]
        return pd.concat(parts, keys=list(frames), names=[self._id_name, time_name])

    def update(self, X):
        """Append new observations and move the forecast origin, without refitting.

        Only the last ``max(window, season)`` rows per series are kept, so the
        cost grows with the number of new rows, not with the history.

        Parameters
        ----------
        X : DataFrame
            Rows following the end of the data seen so far (same columns as in
            fit). A series id not seen before starts a new context.

        Returns
        -------
        self : object
        """
        check_is_fitted(self)
        self._check_frame(X, "X")
        validate_data(self, X, reset=False, skip_check_array=True)
        frames = self._series_frames(X, regularize=False)
        for key, new in frames.items():
            old = self._context.get(key)
            if old is not None and len(new) and new.index[0] <= old.index[-1]:
                raise ValueError(
                    f"update() needs rows after {old.index[-1]}, the last timestamp seen"
                    f"{self._where(key)}; the new rows start at {new.index[0]}."
                )
            combined = new if old is None else pd.concat([old, new])
            combined = self._regularize(combined, key)
            if self.missing == "raise":
                self._raise_if_missing(combined, key)
            self._context[key] = self._tail(combined)
        return self

    def backtest(self, X, start=None, stride=None):
        """Rolling-origin forecasts over X, with accuracy metrics.

        All forecasts are computed in one batched pass. Each one uses data up
        to its origin only (see Notes of the class for gaps).

        Parameters
        ----------
        X : DataFrame
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
        result : Backtest
            ``.forecasts`` (long DataFrame) and ``.metrics`` (MAE, RMSE and
            MASE of the model, the persistence forecast and the seasonal naive
            forecast with ``season_`` steps), see :class:`Backtest`. MASE
            divides by ``mase_scale_`` from the training data.
        """
        check_is_fitted(self)
        self._check_frame(X, "X")
        validate_data(self, X, reset=False, skip_check_array=True)
        stride = 1 if stride is None else stride
        if not isinstance(stride, Integral) or stride < 1:
            raise ValueError(f"stride must be a positive integer, got {stride!r}.")
        frames = self._series_frames(X)
        time_name = self._index_names(X)[1]
        contexts, n_before = {}, {}
        for key, frame in frames.items():
            contexts[key], n_before[key] = self._with_context(key, frame)
        records = [self._encode(f, key, fitting=False) for key, f in contexts.items()]
        A, offsets, causal = self._stack_inference(records)
        R, Rff = self._stack(records, ["R", "Rff"])[:2]

        h, w, m = self.horizon, self.window, self.season_
        origins, keys = [], []
        for (key, frame), o in zip(contexts.items(), offsets):
            n = len(frame)
            first = max(w - 1, n_before[key] - 1)
            if start is not None:
                first = max(first, int(frame.index.searchsorted(pd.Timestamp(start))))
            p = o + np.arange(first, n - h, stride)
            origins.append(p)
            keys += [key] * len(p)
        first_row = np.concatenate([np.full(len(p), o) for p, o in zip(origins, offsets)])
        origins = np.concatenate(origins)
        if not len(origins):
            raise ValueError(
                f"X has no forecast origin for a backtest: each needs window={w} rows "
                f"of history and horizon={h} rows after it (X has {len(X)} rows"
                + ("" if start is None else f", start={start}")
                + ")."
            )
        Z = self._forecast(self._windows(A, origins, causal=causal))  # (n, h, T, Q)
        steps = np.arange(1, h + 1)
        actual = R[origins[:, None] + steps]  # (n, h, T)
        persistence = np.broadcast_to(Rff[origins][:, None, :], actual.shape)
        lag = steps - m * np.ceil(steps / m).astype(int)  # <= 0: same phase, last season
        lagged = origins[:, None] + lag
        # Before the first row of its series, the seasonal naive forecast does
        # not exist (and the index would reach into the previous series).
        seasonal = np.where(
            (lagged >= first_row[:, None])[..., None], Rff[np.maximum(lagged, 0)], np.nan
        )
        point = Z[..., self._point_index()]
        forecasts = self._backtest_frame(
            keys, contexts, offsets, origins, Z, point, persistence, seasonal, actual,
            time_name,
        )
        by_target, metrics = self._metrics(point, persistence, seasonal, actual)
        return Backtest(forecasts, metrics, by_target, m)

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

        y : None
            Ignored.

        Returns
        -------
        score : float
            ``-MASE`` of the model, the mean over targets.
        """
        return -float(self.backtest(X).metrics.loc["model", "MASE"])

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
        try:
            import matplotlib.pyplot as plt
        except ImportError as exc:
            raise ImportError(
                "RNNForecaster.plot needs matplotlib, which is not installed. "
                "Install it with `pip install matplotlib` (or `pip install "
                "tsrnn[plot]`)."
            ) from exc
        check_is_fitted(self)
        forecast = self.predict(X, future)
        history = self._context if X is None else self._series_frames(X)
        key = next(iter(history)) if series is None else series
        if key not in history:
            raise ValueError(f"Unknown series {series!r}; known: {list(history)}.")
        if self._multi:
            forecast = forecast.xs(key, level=0)
        n_history = max(self.window, 2 * self.horizon) if n_history is None else n_history
        past = history[key].iloc[-n_history:]
        if ax is None:
            _, ax = plt.subplots()
        for target in self.target_:
            line = ax.plot(past.index, past[target], label=f"{target} (observed)")[0]
            color = line.get_color()
            if self.quantiles_ is None:
                point = forecast[target]
            else:
                cols = [f"{target}_q{q:g}" for q in self.quantiles_]
                point = forecast[cols[self._point_index()]]
                if len(cols) > 1:
                    lo, hi = self.quantiles_[0], self.quantiles_[-1]
                    ax.fill_between(
                        forecast.index, forecast[cols[0]], forecast[cols[-1]],
                        color=color, alpha=0.25,
                        label=f"{target} {lo:g}-{hi:g} quantiles",
                    )
            ax.plot(forecast.index, point, color=color, linestyle="--",
                    label=f"{target} (forecast)")
        ax.axvline(past.index[-1], color="grey", linewidth=0.8)
        title = "Forecast" if not self._multi else f"Forecast, {self._id_name}={key}"
        ax.set_title(title)
        ax.set_xlabel(past.index.name or "time")
        ax.legend(loc="best")
        return ax

    # ------------------------------------------------------------------
    # Frames: roles of columns, series, frequency, gaps
    # ------------------------------------------------------------------
    @staticmethod
    def _check_frame(X, name):
        if not isinstance(X, pd.DataFrame):
            raise TypeError(
                f"{name} must be a pandas DataFrame with a DatetimeIndex (or an "
                f"(id, timestamp) MultiIndex), got {type(X).__name__}."
            )

    @staticmethod
    def _where(key):
        return "" if key is None else f" in series {key!r}"

    def _index_names(self, X):
        """(series-id name or None, timestamp index name) of a frame."""
        if isinstance(X.index, pd.MultiIndex):
            return X.index.names[0], X.index.names[1]
        return self.series_id, X.index.name

    def _set_roles(self, X):
        """Decide target, past and known-future columns from the training frame."""
        id_col = self.series_id if not isinstance(X.index, pd.MultiIndex) else None
        if id_col is not None and id_col not in X.columns:
            raise ValueError(
                f"series_id={id_col!r} is not a column of X; columns are "
                f"{list(X.columns)}."
            )
        candidates = [c for c in X.columns if c != id_col]
        numeric = [c for c in candidates if is_numeric_dtype(X[c])]
        if self.target is None:
            if len(numeric) != 1:
                raise ValueError(
                    "target=None needs a frame with exactly one numeric column; X has "
                    f"{numeric}. Pass target='<column>' or a list of columns."
                )
            targets = numeric
        elif isinstance(self.target, str):
            targets = [self.target]
        else:
            targets = list(self.target)
        known = list(self.known_future or [])
        for role, cols in (("target", targets), ("known_future", known)):
            for col in cols:
                if col not in X.columns:
                    raise ValueError(
                        f"{role} column {col!r} is not in X; columns are "
                        f"{list(X.columns)}."
                    )
                if not is_numeric_dtype(X[col]):
                    raise TypeError(
                        f"{role} column {col!r} must be numeric, got dtype {X[col].dtype}."
                    )
        if not targets:
            raise ValueError("target must name at least one column.")
        both = sorted(set(targets) & set(known), key=str)
        if both or len(set(targets)) < len(targets) or len(set(known)) < len(known):
            raise ValueError(
                "Columns may appear only once in target and known_future; repeated: "
                f"{both or [c for c in targets + known if (targets + known).count(c) > 1]}."
            )
        self.target_ = targets
        self.known_future_ = known
        self.past_covariates_ = [c for c in numeric if c not in targets and c not in known]
        self._columns = self.target_ + self.past_covariates_ + self.known_future_
        self._multi = isinstance(X.index, pd.MultiIndex) or id_col is not None
        self._id_name, self._time_name = self._index_names(X)
        quantiles = None
        if self.quantiles is not None:
            quantiles = np.unique(np.asarray(self.quantiles, dtype=float))
            if quantiles.ndim != 1 or not len(quantiles) or not np.all(
                (quantiles > 0) & (quantiles < 1)
            ):
                raise ValueError(
                    "quantiles must be a non-empty sequence of levels strictly "
                    f"between 0 and 1, got {self.quantiles!r}."
                )
        self.quantiles_ = quantiles

    _ROLES = ("target_", "known_future_", "past_covariates_", "_columns", "_multi",
              "_id_name", "_time_name", "quantiles_")

    def _check_warm_start(self, X):
        """warm_start keeps columns, scaler and head: refuse a change of them."""
        before = {name: getattr(self, name) for name in self._ROLES}
        self._set_roles(X)
        after = {name: getattr(self, name) for name in self._ROLES}

        def structure(roles):
            q = roles["quantiles_"]
            return (
                roles["target_"], roles["known_future_"], roles["past_covariates_"],
                roles["_multi"], None if q is None else tuple(q),
            )

        n_q = 1 if self.quantiles_ is None else len(self.quantiles_)
        same = structure(before) == structure(after) and (
            self.n_outputs_ == self.horizon * len(self.target_) * n_q
        )
        if not same:
            for name, value in before.items():
                setattr(self, name, value)
            raise ValueError(
                "warm_start must keep target, known_future, the covariate columns, "
                "the series layout, quantiles and horizon of the fitted model; refit "
                "with warm_start=False to change them."
            )

    def _series_frames(self, X, infer_freq=False, regularize=True):
        """{series key: frame of the model's columns}, each on a regular grid.

        The key is None for a single series. ``infer_freq`` (first fit) sets
        ``freq_`` and ``season_`` from the data.
        """
        if isinstance(X.index, pd.MultiIndex):
            if X.index.nlevels != 2:
                raise ValueError(
                    "A MultiIndex must have two levels, (series id, timestamp); got "
                    f"{X.index.nlevels} levels {list(X.index.names)}."
                )
            if not self._multi:
                raise ValueError(
                    "This forecaster was fitted on a single series; X has an "
                    "(id, timestamp) MultiIndex."
                )
            groups = X.groupby(level=0, sort=False)
            frames = {key: g.droplevel(0) for key, g in groups}
        elif self.series_id is not None:
            if self.series_id not in X.columns:
                raise ValueError(
                    f"series_id={self.series_id!r} is not a column of X; columns are "
                    f"{list(X.columns)}."
                )
            frames = dict(iter(X.groupby(self.series_id, sort=False)))
        else:
            if self._multi:
                raise ValueError(
                    "This forecaster was fitted on several series; X must have an "
                    "(id, timestamp) MultiIndex or the series_id column."
                )
            frames = {None: X}
        missing_cols = [c for c in self._columns if c not in X.columns]
        if missing_cols:
            raise ValueError(
                f"X lacks the column(s) {missing_cols} used in fit; it has "
                f"{list(X.columns)}."
            )
        out = {}
        for key, frame in frames.items():
            if not isinstance(frame.index, pd.DatetimeIndex):
                raise TypeError(
                    f"The time index{self._where(key)} must be a DatetimeIndex, got "
                    f"{type(frame.index).__name__}; convert it with "
                    "df.index = pd.to_datetime(df.index)."
                )
            out[key] = frame[self._columns].astype(np.float64)
        # update() accepts an empty frame (nothing new); everything that
        # needs timestamps from X does not.
        if not out or ((infer_freq or regularize) and not all(len(f) for f in out.values())):
            raise ValueError("X has no rows.")
        if infer_freq:
            self._set_freq(out)
        if regularize:
            out = {key: self._regularize(frame, key) for key, frame in out.items()}
        return out

    def _set_freq(self, frames):
        if self.freq is not None:
            offset = to_offset(self.freq)
            # "0h" or "-1h" would divide by zero or run backwards in resample.
            if offset.n <= 0:
                raise ValueError(f"freq must be a positive time step, got {self.freq!r}.")
        else:
            offset = None
            for key, frame in frames.items():
                self._check_order(frame.index, key)
                found = frame.index.freq
                if found is None and len(frame) >= 3:
                    found = pd.DatetimeIndex(frame.index.to_numpy(), freq="infer").freq
                if found is None:
                    self._raise_irregular(frame.index, key)
                if offset is not None and found != offset:
                    raise ValueError(
                        f"Series have different frequencies: {offset.freqstr} and "
                        f"{found.freqstr}{self._where(key)}. Pass freq= to resample "
                        "them all to one step."
                    )
                offset = found
        self._offset = offset
        self.freq_ = offset.freqstr
        self.season_ = _default_season(offset) if self.season is None else self.season

    def _check_order(self, index, key):
        if not index.is_monotonic_increasing:
            bad = int(np.argmax(np.diff(index.asi8) < 0)) + 1
            raise ValueError(
                f"The index{self._where(key)} is not sorted: {index[bad]} comes after "
                f"{index[bad - 1]}. Sort it with X.sort_index(), or pass freq= to "
                "resample it."
            )
        if index.has_duplicates:
            raise ValueError(
                f"The index{self._where(key)} has duplicated timestamps, first "
                f"{index[index.duplicated()][0]}. Aggregate them, e.g. "
                "X.groupby(level=0).mean(), or pass freq= (e.g. freq='h') to let the "
                "forecaster resample with the mean."
            )

    def _raise_irregular(self, index, key, expected=None):
        diffs = index[1:] - index[:-1]
        if expected is None:
            expected = pd.Series(diffs).mode().iloc[0] if len(diffs) else None
            alias = to_offset(expected).freqstr if expected is not None else "h"
        else:
            alias = self.freq_
        if len(index) < 3 and index.freq is None and expected is None:
            detail = f"{len(index)} timestamps are too few to infer a frequency"
        else:
            regular = pd.date_range(index[0], periods=len(index), freq=alias)
            i = int(np.argmax(index != regular))
            detail = (
                f"{index[i]} follows {index[i - 1]} after {index[i] - index[i - 1]}, "
                f"but the step is {alias}"
            )
        raise ValueError(
            f"The index{self._where(key)} is not regular: {detail}. Resample it, "
            f"e.g. X.resample('{alias}').mean(), or pass freq='{alias}' to let the "
            "forecaster resample (empty steps become missing values, handled by "
            "`missing`)."
        )

    def _regularize(self, frame, key):
        if self.freq is not None:
            # pandas' resample sorts, averages duplicates and irregular stamps
            # into bins, and inserts empty bins as NaN rows.
            return frame.sort_index().resample(self._offset).mean()
        self._check_order(frame.index, key)
        regular = pd.date_range(frame.index[0], periods=len(frame), freq=self._offset)
        if not frame.index.equals(regular):
            self._raise_irregular(frame.index, key, expected=self._offset)
        frame = frame.copy(deep=False)
        frame.index = regular.rename(frame.index.name)
        return frame

    def _raise_if_missing(self, frame, key):
        na = frame.isna().to_numpy()
        if not na.any():
            return
        row = int(np.argmax(na.any(axis=1)))
        col = frame.columns[int(np.argmax(na[row]))]
        hint = " (resampling with freq= turns empty steps into gaps)" if self.freq else ""
        raise ValueError(
            f"Column {col!r}{self._where(key)} has a missing value at "
            f"{frame.index[row]}, its first gap{hint}. Fill the gaps yourself (e.g. "
            "X.interpolate(method='time')), or pass missing='interpolate' to fill "
            "them, or missing='mask' to fill the inputs but never train on "
            "filled-in targets."
        )

    def _tail(self, frame):
        return frame.iloc[-max(self.window, self.season_) :].copy()

    def _with_context(self, key, frame):
        """(frame with the kept context prepended when it follows it, rows added)."""
        ctx = self._context.get(key)
        if ctx is None or frame.index[0] != ctx.index[-1] + self._offset:
            return frame, 0
        joined = pd.concat([ctx, frame])
        joined.index = pd.date_range(
            ctx.index[0], periods=len(joined), freq=self._offset, name=frame.index.name
        )
        return joined, len(ctx)

    def _future_frames(self, future, frames):
        """{key: (horizon, n_known_future) raw array} of known-future values."""
        if not self.known_future_:
            if future is not None:
                raise ValueError(
                    "future= is only used with known_future covariates; this "
                    "forecaster has none."
                )
            return {}
        if future is None:
            raise ValueError(
                f"known_future={self.known_future_} needs future=: a DataFrame with "
                f"these columns for the {self.horizon} timestamps after the history."
            )
        self._check_frame(future, "future")
        missing_cols = [c for c in self.known_future_ if c not in future.columns]
        if missing_cols:
            raise ValueError(f"future lacks the known-future column(s) {missing_cols}.")
        if not self._multi:
            by_key = {None: future}
        elif isinstance(future.index, pd.MultiIndex):
            by_key = {k: g.droplevel(0) for k, g in future.groupby(level=0, sort=False)}
        elif self.series_id is not None and self.series_id in future.columns:
            by_key = dict(iter(future.groupby(self.series_id, sort=False)))
        else:
            raise ValueError(
                "With several series, future needs an (id, timestamp) MultiIndex or "
                "the series_id column."
            )
        out = {}
        for key, frame in frames.items():
            expected = pd.date_range(
                frame.index[-1] + self._offset, periods=self.horizon, freq=self._offset
            )
            if key not in by_key:
                raise ValueError(f"future has no rows for series {key!r}.")
            values = by_key[key][self.known_future_]
            values = values[~values.index.duplicated()].reindex(expected)
            na = values.isna().to_numpy()
            if na.any():
                row = int(np.argmax(na.any(axis=1)))
                col = self.known_future_[int(np.argmax(na[row]))]
                raise ValueError(
                    f"future has no value of {col!r}{self._where(key)} at "
                    f"{expected[row]}; it needs the {self.horizon} timestamps "
                    f"{expected[0]} .. {expected[-1]}."
                )
            out[key] = values.to_numpy(np.float64)
        return out

    # ------------------------------------------------------------------
    # Arrays: scaling, filling, stacking, origins
    # ------------------------------------------------------------------
    def _encode(self, frame, key, fitting, future=None):
        """Model arrays of one regular series frame (see the module docstring).

        Returns a dict: ``A`` scaled filled inputs (+ future flag column),
        ``Y`` scaled targets (NaN = not a training target), ``R`` raw targets
        (NaN where missing), ``Rff`` raw targets carried forward, and at
        inference with gaps ``last_obs``/``ffill`` for causal filling. With
        ``future`` (horizon, n_known) the arrays get ``horizon`` more rows.
        """
        n_t, n_past = len(self.target_), len(self.target_) + len(self.past_covariates_)
        raw = frame.to_numpy(np.float64)
        observed = ~np.isnan(raw)
        gaps = not observed.all()
        if gaps and self.missing == "raise":
            self._raise_if_missing(frame, key)
        out = {"R": raw[:, :n_t], "causal": None}
        filled = raw
        if gaps:
            if fitting:
                filled = frame.interpolate(method="time", limit_direction="both")
            else:
                # Closed gaps only; known-future columns are known, so both ways.
                filled = frame.interpolate(method="time", limit_area="inside")
                kf = self.known_future_
                filled[kf] = frame[kf].interpolate(method="time", limit_direction="both")
            filled = filled.to_numpy(np.float64)
        mean, scale = self.scaler_.mean_, self.scaler_.scale_
        scaled = (filled - mean) / scale
        self._check_range(scaled, raw, frame.index, "X")
        # A column with nothing observed stays NaN -> 0, its training mean.
        A = np.nan_to_num(scaled)
        Y = A[:, :n_t].copy()
        if self.missing == "mask":
            Y[~observed[:, :n_t]] = np.nan
        out["Rff"] = pd.DataFrame(raw[:, :n_t]).ffill().to_numpy()
        if gaps and not fitting:
            rows = np.arange(len(raw))[:, None]
            last_obs = np.maximum.accumulate(
                np.where(observed[:, :n_past], rows, -1), axis=0
            )
            ffill = pd.DataFrame(raw[:, :n_past]).ffill().to_numpy()
            ffill = np.nan_to_num((ffill - mean[:n_past]) / scale[:n_past])
            out["causal"] = (last_obs, ffill)
        if self.known_future_:
            A = np.hstack([A, np.zeros((len(A), 1))])
        if future is not None:
            block = np.zeros((self.horizon, A.shape[1]))
            scaled = (future - mean[n_past:]) / scale[n_past:]
            steps = [f"step {i} after the history" for i in range(1, self.horizon + 1)]
            self._check_range(scaled, future, steps, "future", first=n_past)
            block[:, n_past:-1] = scaled
            A = np.vstack([A, block])
            pad = np.full((self.horizon, n_t), np.nan)
            Y, out["R"], out["Rff"] = (np.vstack([a, pad]) for a in (Y, out["R"], out["Rff"]))
            if out["causal"] is not None:
                last_obs, ffill = out["causal"]
                out["causal"] = (
                    np.vstack([last_obs, np.repeat(last_obs[-1:], self.horizon, 0)]),
                    np.vstack([ffill, np.zeros((self.horizon, n_past))]),
                )
        out["A"] = A.astype(self._dtype(), copy=False)
        out["Y"] = Y.astype(self._dtype(), copy=False)
        return out

    def _check_range(self, scaled, raw, index, what, first=0):
        """Raise for inf, or values that standardise beyond the model's dtype.

        Either would otherwise reach the kernels (nan_to_num turns inf into
        1.8e308) and fail there with a message about their argument ``x``.
        """
        limit = np.finfo(self._dtype()).max
        bad = np.abs(scaled) > limit  # NaN compares False: gaps are handled elsewhere
        if not bad.any():
            return
        row, j = (int(i) for i in np.argwhere(bad)[0])
        col, value = self._columns[first + j], raw[row, j]
        where = f"{what} column {col!r} at {index[row]}"
        if np.isinf(value):
            raise ValueError(f"{where} is {value}; replace it with a finite number.")
        raise ValueError(
            f"{where} is {value:g}, which is outside the range of {self._dtype()} "
            f"once standardised with the training mean and scale of {col!r}. "
            "Check the units, or fit with dtype=np.float64."
        )

    def _check_scaler(self, n_t):
        """Refuse columns the model cannot learn from instead of forecasting NaN."""
        mean, var = self.scaler_.mean_, self.scaler_.var_
        unobserved = np.isnan(mean[:n_t])
        if unobserved.any():
            col = self.target_[int(np.argmax(unobserved))]
            raise ValueError(f"Target column {col!r} has no observed value in X.")
        # A column with nothing observed has NaN moments (its inputs become the
        # training mean, 0); an observed one with non-finite moments overflowed.
        overflow = ~np.isnan(mean) & ~(np.isfinite(mean) & np.isfinite(var))
        if overflow.any():
            col = self._columns[int(np.argmax(overflow))]
            raise ValueError(
                f"Column {col!r} has values too large to standardise (its variance "
                "overflows float64). Rescale it, e.g. express it in larger units."
            )

    def _dtype(self):
        return self._flat.dtype if hasattr(self, "_flat") else np.dtype(self.dtype)

    @staticmethod
    def _stack(records, names):
        """Concatenate arrays of several series: ([arrays...], row offsets)."""
        offsets = np.cumsum([0] + [len(r["A"]) for r in records[:-1]])
        return [np.concatenate([r[name] for r in records]) for name in names] + [offsets]

    def _stack_inference(self, records):
        A, offsets = self._stack(records, ["A"])
        causal = None
        if any(r["causal"] is not None for r in records):
            n_past = len(self.target_) + len(self.past_covariates_)
            last_obs, ffill = [], []
            for r, o in zip(records, offsets):
                lo, ff = r["causal"] or (
                    np.repeat(np.arange(len(r["A"]))[:, None], n_past, 1),
                    np.zeros((len(r["A"]), n_past)),
                )
                # -1 ("nothing observed yet") becomes o - 1: before the series.
                last_obs.append(lo + o)
                ffill.append(ff)
            causal = (np.concatenate(last_obs), np.concatenate(ffill).astype(A.dtype))
        return A, offsets, causal

    def _windows(self, A, origins, Y=None, causal=None):
        n_past = len(self.target_) + len(self.past_covariates_)
        return _Windows(
            A, origins, self.window, self.horizon, n_past, bool(self.known_future_),
            Y=Y, causal=causal,
        )

    def _origins_fit(self, frames, offsets, Y):
        """Training origins and, with early stopping, validation origins."""
        w, h = self.window, self.horizon
        # Observed targets in rows 0 .. r-1, to drop origins with none observed
        # in their horizon (missing="mask"): they would only dilute the batches.
        seen = np.concatenate([[0], np.cumsum(~np.isnan(Y).all(axis=1))])
        train, val = [], []
        for frame, o in zip(frames.values(), offsets):
            n = len(frame)
            origins = np.arange(w - 1, n - h)
            origins = origins[seen[o + origins + h + 1] > seen[o + origins + 1]]
            if self.early_stopping:
                # Validation targets are the last rows; training targets end before.
                cut = n - int(np.ceil(self.validation_fraction * n))
                val.append(o + origins[origins >= cut - 1])
                origins = origins[origins + h <= cut - 1]
            train.append(o + origins)
        train = np.concatenate(train)
        longest = max(len(f) for f in frames.values())
        if not len(train):
            raise ValueError(
                f"Too few rows to train: an example needs window + horizon = {w + h} "
                f"consecutive rows, but the longest series has {longest}"
                + (
                    f" (early_stopping keeps its last {self.validation_fraction:g} "
                    "for validation)"
                    if self.early_stopping else ""
                )
                + "."
            )
        if not self.early_stopping:
            return train, None
        val = np.concatenate(val)
        if not len(val):
            raise ValueError(
                f"The validation block is too short: early_stopping holds out the last "
                f"{self.validation_fraction:g} of each series' rows, which must span "
                f"at least horizon={h} rows. Increase validation_fraction or the data."
            )
        return train, val

    # ------------------------------------------------------------------
    # Outputs
    # ------------------------------------------------------------------
    def _forecast(self, windows):
        """Forecasts (n_items, horizon, n_targets, n_quantiles), original units."""
        n = windows.n_items
        Z = np.empty((n, self.n_outputs_))
        n_t = len(self.target_)
        last = np.empty((n, n_t))
        for rows in gen_batches(n, self._block_size(windows.length)):
            X = windows.inputs(np.arange(rows.start, rows.stop))
            top, _ = self._forward_stack(X, training=False)
            Z[rows] = self._head(top[:, -1])
            last[rows] = X[:, self.window - 1, :n_t]
        Z = Z.reshape(n, self.horizon, n_t, -1)
        Z += last[:, None, :, None]  # the head forecasts changes from the origin
        Z.sort(axis=-1)  # monotone rearrangement of the quantiles
        scale = self.scaler_.scale_[:n_t, None]
        return Z * scale + self.scaler_.mean_[:n_t, None]

    def _point_index(self):
        """Quantile index of the point forecast: the one closest to 0.5."""
        if self.quantiles_ is None:
            return 0
        return int(np.argmin(np.abs(self.quantiles_ - 0.5)))

    def _forecast_columns(self, Z):
        """{column: values} of one series' forecast Z (horizon, n_targets, n_q)."""
        columns = {}
        for j, target in enumerate(self.target_):
            if self.quantiles_ is None:
                columns[target] = Z[:, j, 0]
                continue
            if np.any(self.quantiles_ == 0.5):
                columns[target] = Z[:, j, int(np.flatnonzero(self.quantiles_ == 0.5)[0])]
            for k, q in enumerate(self.quantiles_):
                columns[f"{target}_q{q:g}"] = Z[:, j, k]
        return columns

    def _backtest_frame(
        self, keys, contexts, offsets, origins, Z, point, persistence, seasonal,
        actual, time_name,
    ):
        n, h, n_t = actual.shape
        index = np.concatenate([f.index.to_numpy() for f in contexts.values()])
        origin_ts = index[origins]
        steps = np.arange(1, h + 1)
        timestamps = index[origins[:, None] + steps]
        shape = (n, h, n_t)
        data = {}
        if self._multi:
            ids = np.empty(n, dtype=object)
            ids[:] = keys
            data[self._id_name or "series"] = np.broadcast_to(ids[:, None, None], shape).ravel()
        data["origin"] = np.broadcast_to(origin_ts[:, None, None], shape).ravel()
        data["timestamp"] = np.broadcast_to(timestamps[:, :, None], shape).ravel()
        data["step"] = np.broadcast_to(steps[None, :, None], shape).ravel()
        data["target"] = np.broadcast_to(np.asarray(self.target_, dtype=object), shape).ravel()
        data["forecast"] = point.ravel()
        if self.quantiles_ is not None:
            for k, q in enumerate(self.quantiles_):
                data[f"forecast_q{q:g}"] = Z[..., k].ravel()
        data["persistence"] = persistence.ravel()
        data["seasonal_naive"] = seasonal.ravel()
        data["actual"] = actual.ravel()
        return pd.DataFrame(data)

    def _metrics(self, point, persistence, seasonal, actual):
        models = {"model": point, "persistence": persistence, "seasonal_naive": seasonal}
        ok = np.isfinite(actual) & np.isfinite(persistence) & np.isfinite(seasonal)
        rows = []
        for j, target in enumerate(self.target_):
            keep = ok[:, :, j]
            y = actual[:, :, j][keep]
            for name, pred in models.items():
                p = pred[:, :, j][keep]
                if len(y):
                    mae = mean_absolute_error(y, p)
                    rmse = root_mean_squared_error(y, p)
                else:
                    mae = rmse = np.nan
                with np.errstate(divide="ignore", invalid="ignore"):
                    mase = np.float64(mae) / self.mase_scale_[j]
                rows.append((target, name, mae, rmse, mase))
        by_target = pd.DataFrame(
            rows, columns=["target", "model", "MAE", "RMSE", "MASE"]
        ).set_index(["target", "model"])
        metrics = by_target.groupby(level="model", sort=False).mean()
        metrics.index.name = None
        return by_target, metrics.loc[list(models)]

    # ------------------------------------------------------------------
    # BaseRNN hooks
    # ------------------------------------------------------------------
    def _encode_targets(self, y, first_pass, incremental, classes):
        # Unused: targets are built from windows of X by _encode/_Windows.
        raise NotImplementedError

    def _initialize(self, n_features):
        n_q = 1 if self.quantiles_ is None else len(self.quantiles_)
        self.n_outputs_ = self.horizon * len(self.target_) * n_q
        super()._initialize(n_features)

    def _residuals(self, Z, Y):
        """Targets minus outputs, (n, horizon * n_targets, n_q), 0 where masked."""
        n_q = 1 if self.quantiles_ is None else len(self.quantiles_)
        U = Y[:, :, None] - Z.reshape(Z.shape[0], -1, n_q)
        observed = ~np.isnan(U)
        return np.where(observed, U, 0), observed

    def _loss(self, Z, Y):
        # Mean over the outputs, summed over rows, as RNNRegressor's loss.
        U, observed = self._residuals(Z, Y)
        n_out = U.shape[1] * U.shape[2]
        if self.quantiles_ is None:
            loss = 0.5 * float(np.sum(U * U, dtype=np.float64)) / n_out
            dZ = -U / n_out
        else:
            q = self.quantiles_.astype(U.dtype)
            loss = float(np.sum(np.maximum(q * U, (q - 1) * U), dtype=np.float64)) / n_out
            # d pinball / dz = -q above the quantile, 1 - q below.
            dZ = np.where(U > 0, -q, 1 - q) * observed / n_out
        return loss, dZ.reshape(Z.shape).astype(Z.dtype, copy=False)

    def _validation_score(self, Z, Y):
        return -self._loss(Z, Y)[0] / Z.shape[0]

    def _update_no_improvement_count(self, val):
        improved = super()._update_no_improvement_count(val)
        if self._callback is not None:
            self._callback(
                {
                    "epoch": self.n_iter_,
                    "max_iter": self.max_iter,
                    "loss": float(self.loss_curve_[-1]),
                    "validation_score": (
                        None if val is None else float(self.validation_scores_[-1])
                    ),
                    "elapsed": time.perf_counter() - self._fit_start,
                }
            )
        return improved

    def __sklearn_is_fitted__(self):
        # fit sets attributes ending in "_" long before it can fail (too few
        # rows, ...); the context is set last, so only a completed fit counts.
        # Otherwise predict after a failed fit raised AttributeError.
        return hasattr(self, "_context")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = False
        tags.input_tags.allow_nan = True
        tags.target_tags.required = False
        return tags
