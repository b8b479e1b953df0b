import gzip
import importlib.util
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tsrnn.datasets import load_weather

COLUMNS = [
    "temp_air",
    "dew_point",
    "relative_humidity",
    "pressure",
    "wind_speed",
    "wind_direction",
    "ghi",
    "dni",
    "dhi",
    "ghi_clearsky",
    "solar_zenith",
    "precipitable_water",
    "surface_albedo",
]

# Generous physical bounds: they catch unit mix-ups (K vs degC, Pa vs hPa,
# fractions vs percent) and corrupted rows, not unusual weather.
RANGES = {
    "temp_air": (-60, 60),
    "dew_point": (-80, 40),
    "relative_humidity": (0, 100),
    "pressure": (500, 1100),
    "wind_speed": (0, 75),
    "wind_direction": (0, 360),
    "ghi": (0, 1500),
    "dni": (0, 1500),
    "dhi": (0, 1000),
    "ghi_clearsky": (0, 1500),
    "solar_zenith": (0, 180),
    "precipitable_water": (0, 10),
    "surface_albedo": (0, 1),
}

DATA_FILE = resources.files("tsrnn.datasets").joinpath("data", "weather.csv.gz")


@pytest.fixture(scope="module")
def weather():
    return load_weather()


def test_shape_and_columns(weather):
    assert isinstance(weather, pd.DataFrame)
    assert weather.shape == (8760, len(COLUMNS))
    assert list(weather.columns) == COLUMNS


def test_all_columns_float64(weather):
    assert (weather.dtypes == np.float64).all(), weather.dtypes


def test_index_is_a_complete_hourly_grid(weather):
    idx = weather.index
    assert isinstance(idx, pd.DatetimeIndex)
    assert idx.name == "timestamp"
    assert idx.tz is None
    assert idx.is_monotonic_increasing
    assert idx.is_unique
    assert idx.freq == pd.tseries.frequencies.to_offset("h")
    # .freq can be set by hand; the spacing check is what proves no gaps.
    assert (np.diff(idx.asi8) == np.diff(idx[:2].asi8)[0]).all()
    assert idx[1] - idx[0] == pd.Timedelta(hours=1)
    assert idx[0] == pd.Timestamp("2017-01-01 00:00")
    assert idx[-1] == pd.Timestamp("2017-12-31 23:00")


def test_no_missing_values(weather):
    assert not weather.isna().any().any()


@pytest.mark.parametrize("column", COLUMNS)
def test_physical_range(weather, column):
    low, high = RANGES[column]
    values = weather[column]
    assert values.min() >= low, (column, values.min())
    assert values.max() <= high, (column, values.max())


def test_physical_consistency(weather):
    # Dew point cannot exceed air temperature (small slack for the one-decimal
    # rounding of the source).
    assert (weather["dew_point"] <= weather["temp_air"] + 0.5).all()
    # No sun below the horizon: irradiance must vanish when the zenith angle
    # is well past 90 degrees.
    night = weather["solar_zenith"] > 95
    assert night.sum() > 3000
    assert (weather.loc[night, ["ghi", "dni", "dhi"]] == 0).all().all()
    # Timestamps are local standard time at 108.5 W, so the sun is highest
    # near 12:00-13:00, never hours away as it would be with UTC labels.
    noon_hour = weather["solar_zenith"].groupby(weather.index.date).idxmin().map(lambda t: t.hour)
    assert noon_hour.isin([12, 13]).all(), noon_hour.value_counts()


def test_temperature_has_a_seasonal_cycle(weather):
    # A cheap guard against shuffled or mislabelled rows: a mid-latitude site
    # is much warmer in July than in January.
    monthly = weather["temp_air"].groupby(weather.index.month).mean()
    assert monthly[7] - monthly[1] > 15


def test_as_frame_false_returns_values(weather):
    values = load_weather(as_frame=False)
    assert isinstance(values, np.ndarray)
    assert values.dtype == np.float64
    np.testing.assert_array_equal(values, weather.to_numpy())


def test_returns_a_fresh_copy():
    first = load_weather()
    first.iloc[0, 0] = 1e6
    assert load_weather().iloc[0, 0] != 1e6


def test_file_is_small_gzip_csv():
    with resources.as_file(DATA_FILE) as path:
        size = Path(path).stat().st_size
        assert size < 1_000_000, size
        with gzip.open(path, "rt") as fh:
            header = fh.readline().rstrip("\n").split(",")
            first = fh.readline().split(",")[0]
    assert header == ["timestamp"] + COLUMNS
    assert first == "2017-01-01T00:00:00"


def _load_make_weather():
    # Loaded by path so the test does not depend on tsrnn/__init__.py.
    path = Path(__file__).resolve().parents[1] / "tsrnn" / "datasets" / "_make_weather.py"
    spec = importlib.util.spec_from_file_location("_make_weather", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PSM3_HEADER = (
    "Source,Location ID,City,State,Country,Latitude,Longitude,Time Zone,Elevation,"
    "Local Time Zone,Clearsky GHI Units,Dew Point Units,DHI Units,DNI Units,GHI Units,"
    "Solar Zenith Angle Units,Temperature Units,Pressure Units,Relative Humidity Units,"
    "Precipitable Water Units,Wind Direction Units,Wind Speed Units,Version\n"
    "NSRDB,1,-,-,-,40.53,-108.54,{tz},2168,-7,w/m2,c,w/m2,w/m2,w/m2,Degree,c,mbar,%,cm,"
    "Degrees,m/s,v3.2.2\n"
    "Year,Month,Day,Hour,Minute,DHI,GHI,DNI,Clearsky GHI,Dew Point,Solar Zenith Angle,"
    "Fill Flag,Surface Albedo,Wind Speed,Wind Direction,Precipitable Water,"
    "Relative Humidity,Temperature,Pressure,,\n"
)


def _psm3_file(tmp_path, hours, tz="-7"):
    rows = []
    for hour in hours:
        for minute in (0, 30):
            rows.append(
                f"2017,1,1,{hour},{minute},0,0,0,0,-10.8,162.05,0,0.8,0.3,166,0.4,82.96,"
                f"{hour + minute / 100},779,,\n"
            )
    path = tmp_path / "psm3.csv"
    path.write_text(PSM3_HEADER.format(tz=tz) + "".join(rows))
    return path


def test_make_weather_keeps_on_the_hour_rows(tmp_path):
    make = _load_make_weather()
    src = _psm3_file(tmp_path, range(4))
    out = tmp_path / "out.csv.gz"
    with pytest.warns(UserWarning, match="sha256"):
        assert make.main([str(src), "-o", str(out)]) == 0
    frame = pd.read_csv(out, index_col="timestamp")
    assert list(frame.columns) == COLUMNS
    assert list(frame.index) == [f"2017-01-01T0{h}:00:00" for h in range(4)]
    # Only minute-0 rows survive, with their values untouched.
    assert frame["temp_air"].tolist() == [0.0, 1.0, 2.0, 3.0]


def test_make_weather_rejects_gaps(tmp_path):
    make = _load_make_weather()
    src = _psm3_file(tmp_path, [0, 1, 3])
    with pytest.raises(ValueError, match="lacks 1 hour"):
        make.convert(src)


def test_make_weather_rejects_utc_timestamps(tmp_path):
    make = _load_make_weather()
    src = _psm3_file(tmp_path, range(3), tz="0")
    with pytest.raises(ValueError, match="local standard time"):
        make.convert(src)
