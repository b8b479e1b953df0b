"""Small real datasets shipped with tsrnn, usable offline."""
from importlib import resources

import pandas as pd

__all__ = ["load_weather"]

_WEATHER_FILE = "weather.csv.gz"


def load_weather(as_frame=True):
    """Load one year of hourly weather for a site in north-western Colorado.

    A continuous, gap-free year (2017) of meteorological and solar irradiance
    data for NSRDB grid cell 401182 (40.53 N, 108.54 W, 2168 m elevation,
    Moffat County, Colorado, USA). Every hour is a consecutive real hour of
    2017; nothing is stitched from other years.

    Parameters
    ----------
    as_frame : bool, default=True
        If True, return a DataFrame indexed by time. If False, return the
        values only, as a float64 array with the columns in the order listed
        below.

    Returns
    -------
    data : pandas.DataFrame or numpy.ndarray of shape (8760, 13)
        The frame has a ``DatetimeIndex`` named ``timestamp`` with hourly
        frequency (``freq='h'``), running from 2017-01-01 00:00 to
        2017-12-31 23:00 in local standard time (MST, UTC-7, no daylight
        saving shifts), stored as naive timestamps. All columns are float64:

        ==================  =====  ==========================================
        column              unit   meaning
        ==================  =====  ==========================================
        temp_air            degC   air temperature
        dew_point           degC   dew-point temperature
        relative_humidity   %      relative humidity, 0 to 100
        pressure            hPa    surface air pressure (mbar), not reduced
                                   to sea level
        wind_speed          m/s    wind speed
        wind_direction      deg    wind direction clockwise from north;
                                   0 and 360 both occur, as in the source
        ghi                 W/m2   global horizontal irradiance
        dni                 W/m2   direct normal irradiance
        dhi                 W/m2   diffuse horizontal irradiance
        ghi_clearsky        W/m2   modelled clear-sky GHI
        solar_zenith        deg    solar zenith angle
        precipitable_water  cm     precipitable water vapour
        surface_albedo      1      ground albedo (jumps with snow cover)
        ==================  =====  ==========================================

    Notes
    -----
    Source: the NREL National Solar Radiation Database (NSRDB), Physical
    Solar Model v3.2.2 (PSM3), half-hourly download for 2017, as shipped by
    pvlib (up to release 0.11.2) in ``pvlib/data/test_read_psm3.csv``. Only
    the on-the-hour rows are kept, unchanged; tsrnn does no averaging. The source has no missing values, so nothing was filled
    by tsrnn.

    These are not in-situ station measurements. Irradiance is modelled from
    GOES satellite imagery, and the meteorological variables come from the
    MERRA-2 reanalysis interpolated to the 4 km NSRDB grid. NSRDB gap-fills
    the irradiance when satellite cloud retrievals are missing; 1214 of the
    8760 hours carry such a fill flag in the source.

    Licence: NSRDB data are distributed free of charge by NREL (a U.S.
    Department of Energy laboratory run by a contractor, so not automatically
    public domain) on terms that allow redistribution with credit to NREL.
    Please cite Sengupta et al. (2018), "The National Solar Radiation Data
    Base (NSRDB)", Renewable and Sustainable Energy Reviews 89, 51-60.
    ``tsrnn/datasets/README.md`` has the details and explains how to rebuild
    the file with ``tsrnn.datasets._make_weather``.

    Examples
    --------
    >>> from tsrnn.datasets import load_weather
    >>> df = load_weather()
    >>> df.shape
    (8760, 13)
    >>> y = df["temp_air"]
    """
    source = resources.files(__name__).joinpath("data", _WEATHER_FILE)
    with source.open("rb") as fh:
        frame = pd.read_csv(fh, compression="gzip", dtype={"timestamp": str})
    stamps = pd.to_datetime(frame.pop("timestamp"), format="%Y-%m-%dT%H:%M:%S")
    frame = frame.astype("float64")
    frame.index = pd.DatetimeIndex(stamps, name="timestamp")
    # Setting freq re-checks that the grid is complete, so a damaged or
    # hand-edited data file fails here instead of misaligning forecasts.
    frame.index.freq = "h"
    if as_frame:
        return frame
    return frame.to_numpy()
