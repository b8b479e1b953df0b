"""One adapter per model that bench_accuracy.py scores: fit once, forecast at origins.

Every adapter has the same two calls:

* ``fit(task)`` trains on the training rows ``task.frame.iloc[:task.n_train]``;
* ``forecast(task, origins)`` returns a :class:`Forecasts` for the integer row
  positions ``origins`` (origin = last observation used), with no refit.

The generic adapters never see a row after an origin: they forecast from
``histories(task, origins)``, the prefixes ``frame.iloc[:origin + 1]``. tsrnn
is the exception: it forecasts every origin of the test frame in one
``backtest`` call, whose design (see tsrnn/_forecaster.py) uses data up to
each origin only, and the adapter checks that its origins are the harness's.

All models run at their documented defaults except the window and the
horizon; the few arguments set besides those only seed the run, silence
progress output and log files, or ask for an 80%
band where the library has a documented argument for one. Each choice that
changes what a model sees is stated on the adapter and ends up in the report's
notes (``Adapter.notes``).

Gaps (NaN) reach only tsrnn, which has ``missing="interpolate"``. The other
models get ``fill_gaps`` of the rows they may see: applied to a prefix it uses
nothing after the prefix's last row, so filling each history separately keeps
the forecasts causal.
"""
import contextlib
import logging
import warnings
from typing import NamedTuple

import numpy as np
import pandas as pd

LEVEL = 80  # the band: central 80%, i.e. the 10% and 90% quantiles
QUANTILES = (0.1, 0.9)


class ProtocolError(AssertionError):
    """A model forecast at other origins or against other actuals than the harness.

    Never reported as "n/a": it means the comparison itself is broken.
    """


class Forecasts(NamedTuple):
    point: np.ndarray  # (n_origins, H)
    band: np.ndarray | None = None  # (n_origins, H, 2): the 10% and 90% quantiles


def fill_gaps(frame):
    """Gaps filled from the rows of ``frame`` alone.

    A gap between two observations is interpolated in time, a gap still open
    at the last row carries the last observation forward, and a gap at the
    start takes the first observation. This is tsrnn's rule at inference.
    """
    if not frame.isna().any().any():
        return frame
    return frame.interpolate(method="time", limit_area="inside").ffill().bfill()


def histories(task, origins, tail=None):
    """The rows each origin may use, gaps filled per history; the last ``tail`` only."""
    out = []
    for o in origins:
        start = 0 if tail is None else max(0, o + 1 - tail)
        # Fill before cutting the tail, so a filled value never depends on where
        # the tail starts.
        out.append(fill_gaps(task.frame.iloc[: o + 1]).iloc[start:])
    return out


def _train(task):
    return task.frame.iloc[: task.n_train]


@contextlib.contextmanager
def _quiet():
    """Silence the peers' warnings and Lightning's INFO lines for one call."""
    loggers = [logging.getLogger(name) for name in (
        "pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning",
        "darts", "neuralforecast", "skforecast",
    )]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


class Adapter:
    name = ""
    has_band = False

    def __init__(self, seed=0):
        self.seed = seed
        self.notes = []  # what this model saw or did differently, per task

    def fit(self, task):
        raise NotImplementedError

    def forecast(self, task, origins):
        raise NotImplementedError


class TsrnnAdapter(Adapter):
    """``RNNForecaster`` trained on the training frame, then ``backtest`` on the rest.

    ``params`` is passed through as given; the task supplies target, horizon
    and season, and ``missing="interpolate"`` where the data have gaps. The
    window is the estimator's default (``"auto"``) unless ``params`` names one:
    the task's W is what the peers, which have no default, are given.
    """

    name = "tsrnn"

    def __init__(self, params, seed=0):
        super().__init__(seed)
        self.params = dict(params, random_state=seed)

    def fit(self, task):
        from tsrnn import RNNForecaster

        kwargs = {"target": task.target, "horizon": task.horizon, "season": task.season}
        if task.has_gaps:
            kwargs["missing"] = "interpolate"
            self.notes.append(f"{task.name}: missing='interpolate' (the data have gaps)")
        kwargs.update(self.params)
        self.model = RNNForecaster(**kwargs)
        with _quiet():
            self.model.fit(_train(task))
        self.has_band = self._band_columns() is not None

    def _band_columns(self):
        q = self.model.quantiles_
        if q is None or not all(np.isclose(q, level).any() for level in QUANTILES):
            return None
        return [f"forecast_q{level:g}" for level in QUANTILES]

    def forecast(self, task, origins):
        return self._backtest(self.model, task, origins)

    def forecast_baseline_alone(self, task, origins):
        """The learned baseline's forecasts alone: the fitted model with its head zeroed."""
        return Forecasts(self._backtest(_zero_head(self.model), task, origins).point)

    def _backtest(self, model, task, origins):
        h = task.horizon
        with _quiet():
            result = model.backtest(task.frame.iloc[task.n_train :], stride=task.stride)
        f = result.forecasts
        got = pd.DatetimeIndex(f["origin"].iloc[::h])
        want = task.frame.index[origins]
        if len(f) != len(origins) * h or not got.equals(want):
            raise ProtocolError(
                f"{task.name}: tsrnn's backtest forecast from {len(got)} origins "
                f"({got[:2].tolist()}...), the harness from {len(want)} "
                f"({want[:2].tolist()}...)"
            )
        actual = task.frame[task.target].to_numpy()[origins[:, None] + np.arange(1, h + 1)]
        if not np.allclose(f["actual"].to_numpy().reshape(-1, h), actual, equal_nan=True):
            raise ProtocolError(f"{task.name}: tsrnn's backtest actuals differ from the data")
        point = f["forecast"].to_numpy().reshape(-1, h)
        cols = self._band_columns()
        band = None if cols is None else f[cols].to_numpy().reshape(-1, h, 2)
        return Forecasts(point, band)


class AutoETSAdapter(Adapter):
    """statsforecast ``AutoETS(season_length=season)``, forecasts by ``forward``.

    ``forward`` reruns the fitted model's state equations over a new history
    with the fitted parameters and initial states, so it needs the whole
    history from the first row, and it refits nothing. The band is the
    model's own ``level=[80]`` interval.

    A season above 24 steps: ETS estimates one initial state per step of the
    season (R's ``ets`` refuses more than 24), so such tasks use statsforecast's
    ``MSTL(season_length=season)`` instead, whose documented default trend
    model is ``AutoETS(model="ZZN")``: STL removes the season, AutoETS
    forecasts the rest. Its ``forward`` redoes the STL decomposition of each
    history (decomposition, not parameter fitting).
    """

    name = "autoets"
    has_band = True

    def fit(self, task):
        from statsforecast.models import MSTL, AutoETS

        if task.season <= 24:
            self.model = AutoETS(season_length=task.season)
        else:
            # A fresh trend model: MSTL's default argument is one shared instance.
            self.model = MSTL(season_length=task.season, trend_forecaster=AutoETS(model="ZZN"))
            self.notes.append(f"{task.name}: season {task.season} > 24, so MSTL with "
                              "its default AutoETS(model='ZZN') trend")
        y = fill_gaps(_train(task))[task.target].to_numpy()
        with _quiet():
            self.model.fit(y)
        ets = getattr(self.model, "trend_forecaster", self.model)
        what = "MSTL trend model" if ets is not self.model else "selected"
        self.notes.append(f"{task.name}: {what} ETS({ets.model_['components'][:3]}"
                          f"{', damped' if ets.model_['components'][3] == 'D' else ''})")

    def forecast(self, task, origins):
        points, bands = [], []
        with _quiet():
            for hist in histories(task, origins):
                r = self.model.forward(y=hist[task.target].to_numpy(), h=task.horizon,
                                       level=[LEVEL])
                points.append(r["mean"])
                bands.append(np.stack([r[f"lo-{LEVEL}"], r[f"hi-{LEVEL}"]], axis=-1))
        return Forecasts(np.array(points), np.array(bands))


class SkforecastAdapter(Adapter):
    """skforecast ``ForecasterRecursive(LGBMRegressor(random_state, verbose=-1), lags=W)``.

    Target only: skforecast's ``exog`` must be known over the forecast
    horizon, and the covariates here are known up to the origin only.
    Forecasts pass each origin's last W values as ``last_window``. The band is
    ``predict_interval(interval=0.8)``, skforecast's default bootstrapping of
    in-sample residuals (250 paths), which needs
    ``fit(store_in_sample_residuals=True)``; storing them changes no model.
    """

    name = "skforecast"
    has_band = True

    def fit(self, task):
        from lightgbm import LGBMRegressor
        from skforecast.recursive import ForecasterRecursive

        self.model = ForecasterRecursive(
            estimator=LGBMRegressor(random_state=self.seed, verbose=-1), lags=task.window
        )
        if task.covariates:
            self.notes.append(f"{task.name}: target only (exog must be known over the horizon)")
        y = fill_gaps(_train(task))[task.target]
        with _quiet():
            self.model.fit(y=y, store_in_sample_residuals=True)

    def forecast(self, task, origins):
        points, bands = [], []
        with _quiet():
            for hist in histories(task, origins, tail=task.window):
                p = self.model.predict_interval(
                    steps=task.horizon, last_window=hist[task.target], interval=0.8,
                    suppress_warnings=True,
                )
                points.append(p["pred"].to_numpy())
                bands.append(p[["lower_bound", "upper_bound"]].to_numpy())
        return Forecasts(np.array(points), np.array(bands))


# Lightning trainer arguments that only turn off the progress bar and the model
# summary it prints.
_QUIET_TRAINER = {"enable_progress_bar": False, "enable_model_summary": False}


class DartsAdapter(Adapter):
    """darts ``BlockRNNModel(model="LSTM", input_chunk_length=W, output_chunk_length=H)``.

    Target and covariates are min-max scaled by darts' ``Scaler`` fitted on
    the training rows, as darts' examples do; the covariates enter as past
    covariates. All origins are forecast in one ``predict(n=H, series=[...])``
    call. The model reads the last W rows of each history, so only those are
    passed. No band: darts' RNNs give one only when trained with a likelihood,
    which is not the default.
    """

    name = "darts"

    def fit(self, task):
        from darts import TimeSeries
        from darts.dataprocessing.transformers import Scaler
        from darts.models import BlockRNNModel

        self._ts = TimeSeries
        train = fill_gaps(_train(task))
        self.y_scaler = Scaler()
        y = self.y_scaler.fit_transform(TimeSeries.from_series(train[task.target]))
        cov = None
        if task.covariates:
            self.cov_scaler = Scaler()
            cov = self.cov_scaler.fit_transform(
                TimeSeries.from_dataframe(train[list(task.covariates)]))
        self.model = BlockRNNModel(
            model="LSTM", input_chunk_length=task.window, output_chunk_length=task.horizon,
            random_state=self.seed, pl_trainer_kwargs=dict(_QUIET_TRAINER),
        )
        with _quiet():
            self.model.fit(y, past_covariates=cov, verbose=False)

    def forecast(self, task, origins):
        hists = histories(task, origins, tail=task.window)
        series = [self.y_scaler.transform(self._ts.from_series(h[task.target])) for h in hists]
        cov = None
        if task.covariates:
            cov = [self.cov_scaler.transform(self._ts.from_dataframe(h[list(task.covariates)]))
                   for h in hists]
        with _quiet():
            preds = self.model.predict(n=task.horizon, series=series, past_covariates=cov,
                                       verbose=False)
        point = np.stack([self.y_scaler.inverse_transform(p).values()[:, 0] for p in preds])
        return Forecasts(point)


class NeuralForecastAdapter(Adapter):
    """neuralforecast ``LSTM(h=H, input_size=W)``, covariates in ``hist_exog_list``.

    Each origin's history is its own ``unique_id``, and one ``predict(df=...)``
    call forecasts all of them. The model reads the last
    ``inference_input_size`` rows, which defaults to ``input_size`` = W (its
    "robust" scaler is fitted on that window), so only those are passed. No
    band: the default loss is MAE (a point forecast); intervals need a
    distribution loss or conformal calibration at fit time.
    """

    name = "neuralforecast"

    def _long(self, task, frame, uid):
        df = frame[[task.target, *task.covariates]].rename(columns={task.target: "y"})
        df.insert(0, "ds", frame.index)
        df.insert(0, "unique_id", uid)
        return df.reset_index(drop=True)

    def fit(self, task):
        from neuralforecast import NeuralForecast
        from neuralforecast.models import LSTM

        with _quiet():
            model = LSTM(
                h=task.horizon, input_size=task.window,
                hist_exog_list=list(task.covariates) or None,
                random_seed=self.seed, logger=False, **_QUIET_TRAINER,
            )
            self.model = NeuralForecast(models=[model], freq=task.freq)
            self.model.fit(df=self._long(task, fill_gaps(_train(task)), "train"))

    def forecast(self, task, origins):
        hists = histories(task, origins, tail=task.window)
        # Zero-padded ids sort in origin order, whatever order predict returns.
        df = pd.concat([self._long(task, h, f"{k:06d}") for k, h in enumerate(hists)])
        with _quiet():
            out = self.model.predict(df=df)
        out = out.sort_values(["unique_id", "ds"])
        return Forecasts(out["LSTM"].to_numpy().reshape(len(origins), task.horizon))


# ---------------------------------------------------------------- panels
#
# A panel adapter fits once on the training rows of every series
# (``task.split()[0]``) and forecasts ``origins``, a dict {series id: row
# positions in that series} (``PanelTask.series(sid)``), returning
# {series id: Forecasts}. Global models fit one model to all series; AutoETS
# fits one per series. The generic ones forecast from the rows up to each
# origin of each series (``histories`` of that series' Task), nothing later.


def _zero_head(model):
    """A copy of a fitted RNNForecaster whose network adds nothing: the learned baseline.

    The forecaster adds the network's output to its baseline's forecast and
    starts training with the head at zero, so that the untrained model is the
    baseline (tsrnn/_forecaster.py, ``_initialize`` and ``_forecast``). Zeroing
    the head's weight and bias of a copy gives that model back after
    training: every quantile is then the baseline. The band's offsets (and
    their online tracking) are zeroed too: added to quantiles that all equal
    the baseline, an offset above zero on the lower quantile would be sorted
    into the median's place (seen on a series with a steady trend, where
    every held-out error has one sign), and the point forecast would no
    longer be the baseline's.
    """
    import copy

    alone = copy.deepcopy(model)
    views = alone._views()
    views["head.weight"][...] = 0
    views["head.bias"][...] = 0
    calibration = getattr(alone, "_calibration", None)
    if calibration is not None:
        calibration.offsets[...] = 0
        calibration.gains[...] = 0
        for tracker in getattr(alone, "_trackers", {}).values():
            tracker.offsets[...] = 0
    return alone


# bench_accuracy --dask-workers (issue 22): the panels' training frames go to
# fit as dask DataFrames of this many partitions of whole series, on the
# Client bench_accuracy started; None: pandas frames.
DASK_PARTITIONS = None


def _dask_fleet(frame, id_col, n_partitions):
    """``frame`` as a dask DataFrame whose partitions hold whole series, in order."""
    import dask.dataframe as dd

    ids = pd.unique(frame[id_col])
    chunks = np.array_split(ids, min(n_partitions, len(ids)))
    return dd.concat([dd.from_pandas(frame[frame[id_col].isin(c)], npartitions=1,
                                     sort=False) for c in chunks])


class TsrnnPanelAdapter(TsrnnAdapter):
    """One global ``RNNForecaster(series_id=...)`` on every series' training rows.

    Then one ``backtest`` of every series' test rows (each starts right after
    its training rows, so the forecaster prepends its own context of that
    series), checked against the harness's origins and actuals per series.
    """

    def fit(self, task):
        from tsrnn import RNNForecaster

        kwargs = {"target": task.target, "horizon": task.horizon, "season": task.season,
                  "series_id": task.id_col}
        kwargs.update(self.params)
        self.model = RNNForecaster(**kwargs)
        train = task.split()[0]
        if DASK_PARTITIONS:
            train = _dask_fleet(train, task.id_col, DASK_PARTITIONS)
        with _quiet():
            self.model.fit(train)
        self.has_band = self._band_columns() is not None

    def forecast(self, task, origins):
        return self._panel_backtest(self.model, task, origins)

    def forecast_baseline_alone(self, task, origins):
        return {sid: Forecasts(f.point) for sid, f in
                self._panel_backtest(_zero_head(self.model), task, origins).items()}

    def _panel_backtest(self, model, task, origins):
        h = task.horizon
        with _quiet():
            f = model.backtest(task.split()[1], stride=task.stride).forecasts
        cols = self._band_columns()
        out = {}
        for sid, rows in f.groupby(task.id_col, sort=False):
            sub = task.series(sid)
            at = origins[sid]
            got = pd.DatetimeIndex(rows["origin"].iloc[::h])
            if len(rows) != len(at) * h or not got.equals(sub.frame.index[at]):
                raise ProtocolError(f"{sub.name}: tsrnn's backtest forecast from "
                                    f"{len(got)} origins, the harness from {len(at)}")
            actual = sub.frame[task.target].to_numpy()[at[:, None] + np.arange(1, h + 1)]
            if not np.allclose(rows["actual"].to_numpy().reshape(-1, h), actual,
                               equal_nan=True):
                raise ProtocolError(f"{sub.name}: tsrnn's backtest actuals differ from the data")
            band = None if cols is None else rows[cols].to_numpy().reshape(-1, h, 2)
            out[sid] = Forecasts(rows["forecast"].to_numpy().reshape(-1, h), band)
        if set(out) != set(origins):
            raise ProtocolError(f"{task.name}: tsrnn forecast {len(out)} series, the "
                                f"harness {len(origins)}")
        return out


class AutoETSPanelAdapter(Adapter):
    """statsforecast ``AutoETS(season_length=season)``, one per series (a local model).

    Each series gets the single-series adapter above (its own fit, its own
    ``forward`` at its own origins); the fit time is the sum over series.
    """

    name = "autoets"
    has_band = True

    def fit(self, task):
        self.models = {}
        for sid in task.series_ids:
            self.models[sid] = AutoETSAdapter(self.seed)
            self.models[sid].fit(task.series(sid))
        picked = pd.Series([m.notes[-1].split(": ", 1)[1] for m in self.models.values()])
        self.notes.append(f"{task.name}: " + ", ".join(
            f"{k} x{n}" for k, n in picked.value_counts().items()))

    def forecast(self, task, origins):
        return {sid: m.forecast(task.series(sid), origins[sid]) for sid, m in self.models.items()}


def _uid(sid, k):
    # A separator no series id here contains; zero-padded origins sort in order.
    return f"{sid}|{k:06d}"


def _panel_histories(task, origins, tail):
    """Long frame (unique_id, ds, y) of the last ``tail`` rows up to each origin.

    One ``unique_id`` per (series, origin); the rows are that series' history
    up to and including the origin, nothing after it.
    """
    parts = []
    for sid, at in origins.items():
        sub = task.series(sid)
        for k, hist in enumerate(histories(sub, at, tail=tail)):
            parts.append(pd.DataFrame({"unique_id": _uid(sid, k), "ds": hist.index,
                                       "y": hist[task.target].to_numpy()}))
    return pd.concat(parts, ignore_index=True)


def _panel_train(task):
    train = task.split()[0]
    return pd.DataFrame({"unique_id": train[task.id_col].to_numpy(), "ds": train.index,
                         "y": train[task.target].to_numpy()})


def _unstack(task, origins, out, column):
    """{series id: (n_origins, H)} from a long (unique_id, ds, column) frame."""
    out = out.sort_values(["unique_id", "ds"])
    values = dict(iter(out.groupby("unique_id", sort=False)[column]))
    return {sid: Forecasts(np.stack([values[_uid(sid, k)].to_numpy() for k in range(len(at))]))
            for sid, at in origins.items()}


class MLForecastPanelAdapter(Adapter):
    """mlforecast ``MLForecast(LGBMRegressor(random_state, verbose=-1), lags=1..W)``: global.

    One LightGBM on lags 1..W of every series (mlforecast's default: no
    target transforms, no date features, recursive multi-step). Forecasts
    pass each (series, origin) history's last W rows as its own series in
    one ``predict(h=H, new_df=...)``. No band: mlforecast's intervals need
    conformal windows set at fit time, which is not the default.
    """

    name = "mlforecast"

    def fit(self, task):
        from lightgbm import LGBMRegressor
        from mlforecast import MLForecast

        self.model = MLForecast(
            models={"lgbm": LGBMRegressor(random_state=self.seed, verbose=-1)},
            freq=task.freq, lags=list(range(1, task.window + 1)),
        )
        with _quiet():
            self.model.fit(_panel_train(task))

    def forecast(self, task, origins):
        with _quiet():
            out = self.model.predict(h=task.horizon,
                                     new_df=_panel_histories(task, origins, task.window))
        return _unstack(task, origins, out, "lgbm")


class SkforecastPanelAdapter(Adapter):
    """skforecast ``ForecasterRecursiveMultiSeries(LGBMRegressor(random_state, verbose=-1), lags=W)``.

    Global, at skforecast's defaults: each series standardised by its own
    training rows (``transformer_series=StandardScaler()``), the series id as
    an ordinal categorical feature. The panels' series all end on the same
    date and share the test span, so origin k is the same date for every
    series: each origin is one ``predict(steps=H, last_window=...)`` of every
    series' last W rows up to it. No band (point forecasts only here).
    """

    name = "skforecast"

    def fit(self, task):
        from lightgbm import LGBMRegressor
        from skforecast.recursive import ForecasterRecursiveMultiSeries

        self.model = ForecasterRecursiveMultiSeries(
            estimator=LGBMRegressor(random_state=self.seed, verbose=-1), lags=task.window)
        train = task.split()[0]
        series = {sid: rows[task.target].asfreq(task.freq)
                  for sid, rows in train.groupby(task.id_col, sort=False)}
        with _quiet():
            self.model.fit(series=series)

    def forecast(self, task, origins):
        subs = {sid: task.series(sid) for sid in origins}
        n = {len(at) for at in origins.values()}
        dates = {tuple(subs[sid].frame.index[at]) for sid, at in origins.items()}
        if len(n) != 1 or len(dates) != 1:
            raise ProtocolError(f"{task.name}: the series' origins are not the same dates")
        points = {sid: [] for sid in origins}
        with _quiet():
            for k in range(n.pop()):
                window = pd.DataFrame({
                    sid: histories(subs[sid], origins[sid][k : k + 1], tail=task.window)[0][
                        task.target]
                    for sid in origins
                })
                p = self.model.predict(steps=task.horizon, levels=list(origins),
                                       last_window=window, suppress_warnings=True)
                for sid, rows in p.groupby("level", sort=False):
                    points[sid].append(rows["pred"].to_numpy())
        return {sid: Forecasts(np.array(v)) for sid, v in points.items()}


class NeuralForecastPanelAdapter(Adapter):
    """neuralforecast ``LSTM(h=H, input_size=W)``: one global model on every series.

    Trained on every series' training rows; each (series, origin) history is
    its own ``unique_id`` in one ``predict(df=...)``. A recurrent model reads
    ``inference_input_size + 1`` = W + 1 rows (neuralforecast's
    ``_base_model``), so the last W + 1 rows of each history are passed. No
    band: the default loss is MAE.
    """

    name = "neuralforecast"

    def fit(self, task):
        from neuralforecast import NeuralForecast
        from neuralforecast.models import LSTM

        with _quiet():
            model = LSTM(h=task.horizon, input_size=task.window, random_seed=self.seed,
                         logger=False, **_QUIET_TRAINER)
            self.model = NeuralForecast(models=[model], freq=task.freq)
            self.model.fit(df=_panel_train(task))

    def forecast(self, task, origins):
        with _quiet():
            out = self.model.predict(df=_panel_histories(task, origins, task.window + 1))
        return _unstack(task, origins, out.reset_index() if "unique_id" not in out else out,
                        "LSTM")


PEERS = {a.name: a for a in (AutoETSAdapter, SkforecastAdapter, DartsAdapter,
                             NeuralForecastAdapter)}
# The peers of the panel group; a model absent here is not run on panels.
PANEL_PEERS = {a.name: a for a in (AutoETSPanelAdapter, MLForecastPanelAdapter,
                                   SkforecastPanelAdapter, NeuralForecastPanelAdapter)}
# The package each peer needs; a missing one skips the peer with a note.
REQUIRES = {
    "tsrnn": ("tsrnn",),
    "autoets": ("statsforecast",),
    "skforecast": ("skforecast", "lightgbm"),
    "darts": ("darts", "torch"),
    "neuralforecast": ("neuralforecast", "torch"),
    "mlforecast": ("mlforecast", "lightgbm"),
}


def import_error(name):
    """None if model ``name`` can be imported, else the reason it cannot."""
    import importlib

    for module in REQUIRES[name]:
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - a broken install is a skip too
            return f"{module} does not import ({type(exc).__name__}: {exc})"
    return None

