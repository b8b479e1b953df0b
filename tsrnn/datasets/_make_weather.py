"""Rebuild ``tsrnn/datasets/data/weather.csv.gz`` from the raw NSRDB file.

Usage::

    python -m tsrnn.datasets._make_weather PATH/TO/test_read_psm3.csv

The source is ``pvlib/data/test_read_psm3.csv`` as shipped in the pvlib wheels
up to 0.11.2 (see ``tsrnn/datasets/README.md`` for how to fetch it). It is an
unmodified NSRDB PSM3 v3.2.2 half-hourly CSV download for 2017, so any PSM3
CSV with the same layout would also parse; the checksum below only warns when
the input differs from the file the shipped dataset was built from.

pvlib is deliberately not imported: its reader renames columns and changes
between releases, and the dataset must be reproducible from the raw file with
pandas alone. ``python tsrnn/datasets/_make_weather.py PATH`` works too, which
helps when ``tsrnn/__init__.py`` cannot be imported (e.g. kernels not built).
"""
import argparse
import gzip
import hashlib
import sys
import warnings
from pathlib import Path

import pandas as pd

SOURCE_SHA256 = "fdd36976acac2a885ea81867962eaf73764c7ed66c731f699d4d29fab862b564"

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "data" / "weather.csv.gz"

# Source column -> shipped column. The order here is the column order of the
# shipped file, target first. Cloud Type and Fill Flag are left out: they are
# categorical codes, and the float64-only frame would misrepresent them.
COLUMNS = {
    "Temperature": "temp_air",
    "Dew Point": "dew_point",
    "Relative Humidity": "relative_humidity",
    "Pressure": "pressure",
    "Wind Speed": "wind_speed",
    "Wind Direction": "wind_direction",
    "GHI": "ghi",
    "DNI": "dni",
    "DHI": "dhi",
    "Clearsky GHI": "ghi_clearsky",
    "Solar Zenith Angle": "solar_zenith",
    "Precipitable Water": "precipitable_water",
    "Surface Albedo": "surface_albedo",
}
TIME_PARTS = ["Year", "Month", "Day", "Hour", "Minute"]

# Units as the PSM3 header spells them. The README and the loader docstring
# promise these, so a download in other units must not slip through.
EXPECTED_UNITS = {
    "Temperature Units": "c",
    "Dew Point Units": "c",
    "Relative Humidity Units": "%",
    "Pressure Units": "mbar",
    "Wind Speed Units": "m/s",
    "Wind Direction Units": "Degrees",
    "GHI Units": "w/m2",
    "DNI Units": "w/m2",
    "DHI Units": "w/m2",
    "Clearsky GHI Units": "w/m2",
    "Solar Zenith Angle Units": "Degree",
    "Precipitable Water Units": "cm",
}


def read_metadata(path):
    """Return the two-line PSM3 metadata header as a dict of strings."""
    meta = pd.read_csv(path, nrows=1, dtype=str)
    meta = meta.loc[:, ~meta.columns.str.startswith("Unnamed")]
    return meta.iloc[0].to_dict()


def convert(path):
    meta = read_metadata(path)
    if meta.get("Source") != "NSRDB":
        raise ValueError(f"{path} does not look like an NSRDB PSM3 CSV: {meta.get('Source')!r}")
    wrong = {k: meta.get(k) for k, v in EXPECTED_UNITS.items() if meta.get(k) != v}
    if wrong:
        raise ValueError(f"unexpected units in {path}: {wrong}")
    # "Time Zone" is the offset the timestamps are written in, "Local Time
    # Zone" the site's standard offset. They match for a local-time download,
    # which is what the README and the loader promise.
    if meta.get("Time Zone") != meta.get("Local Time Zone"):
        raise ValueError(
            f"timestamps are not in local standard time (Time Zone={meta.get('Time Zone')}, "
            f"Local Time Zone={meta.get('Local Time Zone')})"
        )

    # The data rows carry ~24 empty trailing fields left over from the wider
    # metadata header, hence the explicit usecols.
    raw = pd.read_csv(path, skiprows=2, usecols=TIME_PARTS + list(COLUMNS) + ["Fill Flag"])
    stamps = pd.to_datetime(raw[TIME_PARTS].rename(columns=str.lower))

    # The source is half-hourly. Keeping only the on-the-hour rows preserves
    # the provider's numbers exactly; averaging pairs would blur irradiance
    # ramps and would need circular statistics for wind direction.
    on_hour = (raw["Minute"] == 0).to_numpy()
    frame = raw.loc[on_hour, list(COLUMNS)].rename(columns=COLUMNS).astype("float64")
    frame.index = pd.DatetimeIndex(stamps[on_hour], name="timestamp")

    if not frame.index.is_unique or not frame.index.is_monotonic_increasing:
        raise ValueError("timestamps are duplicated or out of order")
    # Every hour must be present exactly once: we would rather fail here than
    # ship a silently gap-filled series.
    hours = pd.date_range(frame.index[0], frame.index[-1], freq="h")
    if len(hours) != len(frame):
        missing = hours.difference(frame.index)
        raise ValueError(
            f"the source lacks {len(missing)} hour(s), first {missing[0]}; "
            "it must hold every hour of the year"
        )
    frame.index.freq = "h"
    if frame.isna().any().any():
        raise ValueError("source contains missing values; decide how to handle them first")

    filled = int((raw.loc[on_hour, "Fill Flag"] != 0).sum())
    return frame, meta, filled


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="raw NSRDB PSM3 CSV (test_read_psm3.csv)")
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)

    digest = hashlib.sha256(args.source.read_bytes()).hexdigest()
    if digest != SOURCE_SHA256:
        warnings.warn(
            f"{args.source} has sha256 {digest}, not the file the shipped dataset came from",
            stacklevel=1,
        )

    frame, meta, filled = convert(args.source)

    args.output.parent.mkdir(parents=True, exist_ok=True)
    # '%g' is lossless here: the source has at most five significant digits.
    text = frame.to_csv(date_format="%Y-%m-%dT%H:%M:%S", float_format="%g", lineterminator="\n")
    # gzip stores a file name and an mtime in its header; blanking both makes
    # a rebuild from the same source byte-identical wherever it is written.
    with open(args.output, "wb") as raw_out:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw_out, mtime=0) as out:
            out.write(text.encode("utf-8"))

    print(
        f"NSRDB {meta.get('Version', '')} location {meta['Location ID']} "
        f"({meta['Latitude']}, {meta['Longitude']}, {meta['Elevation']} m, UTC{int(meta['Time Zone']):+d})"
    )
    print(f"{len(frame)} hourly rows, {frame.index[0]} .. {frame.index[-1]}, {frame.shape[1]} columns")
    print(f"{filled} rows have a non-zero NSRDB fill flag (gap-filled irradiance)")
    print(f"wrote {args.output} ({args.output.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
