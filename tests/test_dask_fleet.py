"""A fleet as a dask DataFrame: whole series, per-partition checks, serving.

One LocalCluster (2 worker processes, 1 thread each, loopback) serves the
module; the tests that only read a frame's layout do not need it and run on
dask's synchronous scheduler, which raises the same errors in this process.

dask is an optional extra, so the file is skipped when it is not installed.
"""
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("dask.distributed")

import dask  # noqa: E402

from tsrnn import RNNForecaster  # noqa: E402
from tsrnn._dask_frames import (  # noqa: E402
    check_whole_series,
    is_dask_frame,
    partition_frame,
    validate_partitions,
)
from tsrnn.exceptions import InputError  # noqa: E402

from _forecaster_data import make_frame  # noqa: E402

SENSORS = [f"s{i}" for i in range(6)]


def fleet(n=120, ids=SENSORS):
    """Long frame: a ``sensor`` column next to an hourly DatetimeIndex."""
    frames = []
    for k, key in enumerate(ids):
        f = make_frame(n, seed=k, level=20.0 + 2 * k)
        f.insert(0, "sensor", key)
        frames.append(f)
    return pd.concat(frames)


def by_sensor(df, npartitions=3):
    """The fleet with whole series per partition, as sensor ids in a column."""
    return dd.from_pandas(df, npartitions=npartitions, sort=False).shuffle("sensor")


@pytest.fixture
def sync():
    with dask.config.set(scheduler="synchronous"):
        yield


def test_is_dask_frame_does_not_import_dask():
    # A fresh interpreter that never touches dask: the check answers False
    # and dask stays unimported, so the pandas paths do not change.
    code = (
        "import sys, pandas as pd\n"
        "from tsrnn._dask_frames import is_dask_frame\n"
        "assert not is_dask_frame(pd.DataFrame({'a': [1.0]}))\n"
        "assert not [m for m in sys.modules if m == 'dask' or m.startswith('dask.')]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert is_dask_frame(dd.from_pandas(fleet(), npartitions=2))
    assert not is_dask_frame(fleet())


def test_split_series_are_refused_with_the_fix(sync):
    # Rows in their original order, cut into 4 partitions by position:
    # 6 series of 120 rows in partitions of 180 rows split s1 and s4.
    ddf = dd.from_pandas(fleet(), npartitions=4, sort=False)
    with pytest.raises(InputError, match=r"Series 's1' is split across partitions \[0, 1\]"
                       r" \(2 series are split\).*set_index.*shuffle"):
        check_whole_series(ddf, "sensor")
    model = RNNForecaster(target="y", series_id="sensor")
    with pytest.raises(InputError, match="split across partitions"):
        validate_partitions(ddf, model)
    check_whole_series(by_sensor(fleet()), "sensor")
    # An index on the id with known divisions is whole by construction.
    indexed = dd.from_pandas(fleet().reset_index(), npartitions=3).set_index("sensor")
    assert indexed.known_divisions
    check_whole_series(indexed, "sensor")


def test_the_id_must_be_a_column_or_the_index(sync):
    ddf = by_sensor(fleet())
    with pytest.raises(InputError, match="series_id='site' is neither a column nor the index"):
        check_whole_series(ddf, "site")
    with pytest.raises(InputError, match="pass series_id="):
        check_whole_series(ddf, None)


def test_partition_frame_layouts():
    df = fleet(n=30, ids=["a", "b"])
    # Shuffled rows come back in time order within each series.
    shuffled = df.iloc[np.random.default_rng(0).permutation(len(df))]
    out = partition_frame(shuffled, "sensor")
    for key, g in out.groupby("sensor"):
        pd.testing.assert_frame_equal(g, df[df["sensor"] == key])
    # Indexed by the id, the timestamps in a column: the same layout back.
    indexed = df.reset_index().set_index("sensor")
    pd.testing.assert_frame_equal(
        partition_frame(indexed, "sensor", feature_names=list(df.columns)), df)
    # A model fitted on an (id, timestamp) MultiIndex gets one.
    multi = partition_frame(df, "sensor", feature_names=["y", "x", "hour"])
    assert multi.index.names == ["sensor", "timestamp"]
    pd.testing.assert_frame_equal(
        multi, df.set_index("sensor", append=True).swaplevel(0, 1))
    two = indexed.assign(other=indexed["timestamp"])
    with pytest.raises(InputError, match="timestamps in one datetime column; it has 2"):
        partition_frame(two, "sensor")


@pytest.mark.parametrize("layout", ["column", "index"])
def test_validate_partitions_summary(sync, layout):
    df = fleet()
    ddf = (by_sensor(df) if layout == "column" else
           dd.from_pandas(df.reset_index(), npartitions=3).set_index("sensor"))
    model = RNNForecaster(target="y", series_id="sensor")
    summary = validate_partitions(ddf, model)
    assert sorted(summary["series"]) == SENSORS
    assert (summary["rows"] == 120).all()
    assert (summary["step"] == "h").all()
    assert (summary["first"] == df.index[0]).all()
    assert (summary["last"] == df.index[119]).all()
    assert summary["partition"].between(0, ddf.npartitions - 1).all()


@pytest.mark.parametrize("damage, message", [
    # The same messages as the pandas path's, naming series and timestamp.
    (lambda df: df[~((df["sensor"] == "s3") & (df.index == "2024-01-03 02:00"))],
     r"The index in series 's3' is not regular: 2024-01-03 03:00:00 \(row 51\) follows"),
    (lambda df: df.assign(y=df["y"].where(~((df["sensor"] == "s4")
                                              & (df.index == "2024-01-02 05:00")))),
     r"Column 'y' in series 's4' has a missing value at 2024-01-02 05:00:00"),
    (lambda df: df.assign(x=df["x"].mask((df["sensor"] == "s2")
                                         & (df.index == "2024-01-01 07:00"), np.inf)),
     r"X column 'x' in series 's2' at 2024-01-01 07:00:00 is inf"),
    (lambda df: df.iloc[np.r_[:128, 127, 128:len(df)]],  # s1's 8th row twice
     r"The index in series 's1' has duplicated timestamps, first 2024-01-01 07:00:00"),
    (lambda df: df.drop(columns="x").assign(x="text"), None),
])
def test_each_partition_gets_the_pandas_checks(sync, damage, message):
    bad = damage(fleet())
    model = RNNForecaster(target="y", series_id="sensor")
    if message is None:
        # A text column is no model column: both paths accept it.
        validate_partitions(by_sensor(bad), model)
        model.validate_frame(bad)
        return
    with pytest.raises(InputError, match=message):
        validate_partitions(by_sensor(bad), model)
    with pytest.raises(InputError, match=message):
        model.validate_frame(bad)


def test_different_steps_across_partitions_are_refused(sync):
    df = fleet()
    slow = df[df["sensor"] == "s0"]
    slow = slow.set_axis(pd.date_range("2024-01-01", periods=len(slow), freq="2h",
                                       name="timestamp"))
    df = pd.concat([slow, df[df["sensor"] != "s0"]])
    model = RNNForecaster(target="y", series_id="sensor")
    # One series a partition: the summary compares the partitions' steps.
    ddf = dd.from_pandas(df, npartitions=6, sort=False)
    with pytest.raises(InputError, match=r"Series have different frequencies: 2h in series "
                       r"'s0' and h in series 's1'"):
        validate_partitions(ddf, model)
    # Within a partition, the pandas check names the second series.
    ddf = dd.from_pandas(df, npartitions=3, sort=False)
    with pytest.raises(InputError, match=r"Series have different frequencies: 2h and h in "
                       r"series 's1'"):
        validate_partitions(ddf, model)
