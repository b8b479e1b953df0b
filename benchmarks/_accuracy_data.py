"""The datasets of bench_accuracy.py, and the forecasting task set on each.

Every dataset loads offline from a file inside an installed wheel: tsrnn's own
weather year, pvlib's data folder, pmdarima's bundled datasets and statsmodels'
datasets. A task is a frame on a regular DatetimeIndex (target first, then the
past covariates; NaN marks a gap) plus the choices that define the backtest:
horizon H, window W, season, test span and origin stride. The choices and the
reason for each are part of the task, so that the script, its README table and
its JSON all say the same thing.

Two groups. "suite" holds the eight datasets of issue 11; tsrnn's defaults
are chosen on them. "holdout" holds six others, which nobody tunes on: they
show whether defaults chosen on the suite carry over.

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

SUITE, HOLDOUT = "suite", "holdout"


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


# Group -> loaders, in report order.
GROUPS = {
    SUITE: (weather, sand_point, miami, pm25, sunspots, wineind, elnino, heartrate),
    HOLDOUT: (taylor, co2, greensboro, airpassengers, ausbeer, nile),
}
LOADERS = {f.__name__: f for loaders in GROUPS.values() for f in loaders}
GROUP_OF = {f.__name__: group for group, loaders in GROUPS.items() for f in loaders}


def load(name):
    """The Task called ``name``; ImportError when its package is missing."""
    return LOADERS[name]()
