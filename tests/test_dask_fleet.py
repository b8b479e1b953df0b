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


# ----------------------------------------------------------------------
# Serving on a two-process cluster
# ----------------------------------------------------------------------
# The network computes in float32, and a series' forecast can differ in the
# last float32 bits with the batch it is computed in (the pandas path too:
# a series alone vs in the fleet, 4e-9 relative seen). Partitions are
# batches, so values are compared to 1e-6 relative; rows, index, columns
# and dtypes exactly.
SAME = dict(check_exact=False, rtol=1e-6, atol=0.0)

@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None,
    ) as cluster, distributed.Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def fitted():
    """A model fitted on the pandas fleet, with the default 10-50-90% band."""
    history = fleet()
    model = RNNForecaster(target="y", series_id="sensor", window=12, horizon=4,
                          hidden_layer_sizes=8, max_iter=2, random_state=0)
    return model.fit(history), history


def as_dask(df, layout, npartitions=3):
    if layout == "index":
        return dd.from_pandas(df.reset_index(), npartitions=npartitions).set_index("sensor")
    # Rows in the frame's order; 720 rows in 3 partitions keep series whole.
    return dd.from_pandas(df, npartitions=npartitions, sort=False)


@pytest.mark.parametrize("layout", ["column", "index"])
def test_predict_equals_pandas_row_for_row(client, fitted, layout):
    model, history = fitted
    ddf = as_dask(history, layout)
    forecast = model.predict(ddf)
    assert is_dask_frame(forecast)
    assert forecast.npartitions == ddf.npartitions
    expected = model.predict(history)  # (sensor, timestamp) MultiIndex
    expected = expected.reset_index(level=1 if layout == "index" else 0)
    got = forecast.compute()
    pd.testing.assert_frame_equal(got, expected, **SAME)
    # The declared meta is what the partitions hold.
    pd.testing.assert_series_equal(forecast.dtypes, expected.dtypes)


def test_backtest_equals_pandas_row_for_row(client, fitted):
    model, history = fitted
    ddf = as_dask(history, "column")
    forecasts = model.backtest(ddf, stride=5)
    # dask holds the ids as its own string dtype; the id column keeps the
    # input's dtype, so the pandas path is run on the frame dask holds.
    expected = model.backtest(ddf.compute(), stride=5).forecasts
    got = forecasts.compute()
    assert list(forecasts.columns) == list(expected.columns)
    pd.testing.assert_series_equal(forecasts.dtypes, expected.dtypes)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected, **SAME)


def test_empty_partitions_and_shuffled_rows(client, fitted):
    model, history = fitted
    # One series a partition, s0 filtered out: partition 0 is empty.
    ddf = dd.from_pandas(history, npartitions=6, sort=False)
    ddf = ddf[ddf["sensor"] != "s0"]
    expected = model.predict(history[history["sensor"] != "s0"]).reset_index(level=0)
    pd.testing.assert_frame_equal(model.predict(ddf).compute(), expected, **SAME)
    # shuffle() moves rows without their order: each series is put back in
    # time order, and the forecasts are the pandas ones, series by series.
    shuffled = model.predict(by_sensor(history)).compute()
    for key, rows in shuffled.groupby("sensor"):
        pd.testing.assert_frame_equal(rows, expected_rows(model, history, key),
                                      **SAME)


def expected_rows(model, history, key):
    return model.predict(history).reset_index(level=0).pipe(lambda f: f[f["sensor"] == key])


def _name(key):
    return key[0] if isinstance(key, tuple) else key


def test_the_model_travels_once(client, fitted):
    import pickle

    import cloudpickle

    model, history = fitted
    forecast = model.predict(as_dask(history, "column"))
    graph = dict(forecast.__dask_graph__())
    holders = [key for key in graph if _name(key).startswith("tsrnn-forecaster-")]
    assert len(holders) == 1
    # The forecasting tasks refer to it; none carries a copy of the model.
    size = len(pickle.dumps(model))
    tasks = [task for key, task in graph.items() if _name(key).startswith("_predict")]
    assert len(tasks) == 3
    assert all(len(cloudpickle.dumps(task)) < size / 4 for task in tasks)
    with distributed.get_task_stream(client) as stream:
        forecast.compute()
    # Made once on one worker; the other worker copies it from there.
    runs = [t for t in stream.data if _name(t["key"]).startswith("tsrnn-forecaster-")]
    assert len(runs) == 1
    assert len([t for t in stream.data if _name(t["key"]).startswith("_predict")]) == 3


def test_predict_on_split_partitions_is_refused(client, fitted):
    model, history = fitted
    ddf = dd.from_pandas(history, npartitions=4, sort=False)
    with pytest.raises(InputError, match="split across partitions.*set_index"):
        model.predict(ddf)
    with pytest.raises(InputError, match="split across partitions.*set_index"):
        model.backtest(ddf)


def test_update_with_a_dask_frame_equals_pandas(client, fitted):
    import copy

    model, history = fitted
    new = fleet(n=126).groupby("sensor", sort=False).tail(6)  # the next 6 hours
    on_pandas = copy.deepcopy(model).update(new)
    on_dask = copy.deepcopy(model).update(dd.from_pandas(new, npartitions=2, sort=False))
    pd.testing.assert_frame_equal(on_dask.predict(), on_pandas.predict(), **SAME)
    assert on_dask.predict().index.get_level_values(1)[0] == pd.Timestamp("2024-01-06 06:00")


# ----------------------------------------------------------------------
# The command line's parquet fleet
# ----------------------------------------------------------------------
def test_read_fleet_layouts(sync, tmp_path):
    from tsrnn._parquet_fleet import read_fleet

    df = fleet(n=40, ids=["a", "b", "c"])
    # A directory per series: the id reads back as a category of the ids.
    df.to_parquet(tmp_path / "hive", partition_cols=["sensor"])
    ddf, time_name = read_fleet(str(tmp_path / "hive"), "sensor", None, "y", None)
    assert time_name == "timestamp" and ddf.npartitions == 3
    got = ddf.compute()
    assert not isinstance(got["sensor"].dtype, pd.CategoricalDtype)
    assert sorted(got["sensor"].unique()) == ["a", "b", "c"]
    # Timestamps in a column (no pandas index stored): they become the index.
    dd.from_pandas(df.reset_index(), npartitions=3, sort=False).to_parquet(tmp_path / "flat")
    ddf, time_name = read_fleet(str(tmp_path / "flat"), "sensor", None, "y", ["x"])
    assert time_name == "timestamp" and list(ddf.columns) == ["sensor", "y", "x"]
    pd.testing.assert_frame_equal(ddf.compute(), df[["sensor", "y", "x"]],
                                  check_dtype=False)


@pytest.mark.parametrize("args, message", [
    (["--series-id", "site"], "--series-id 'site' is not a column"),
    (["--series-id", "sensor", "--target", "temp"], "--target 'temp' is not a column"),
    (["--series-id", "sensor", "--time-col", "when"], "--time-col 'when' is not a column"),
    (["--target", "y"], "is parquet: a fleet; name the column identifying each series "
                        "with --series-id"),
    (["--series-id", "sensor", "--plot", "p.png"], "--plot is for CSV input"),
])
def test_cli_refuses_bad_fleet_options(sync, tmp_path, capsys, args, message):
    from tsrnn.cli import main

    pytest.importorskip("matplotlib")
    path = tmp_path / "fleet.parquet"
    dd.from_pandas(fleet(n=40).reset_index(), npartitions=2, sort=False).to_parquet(path)
    assert main(["forecast", str(path), "--out", str(tmp_path / "out"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_refuses_split_series_and_fleet_options_on_csv(sync, tmp_path, capsys):
    from tsrnn.cli import main

    path = tmp_path / "fleet.parquet"
    dd.from_pandas(fleet(n=40).reset_index(), npartitions=4, sort=False).to_parquet(path)
    assert main(["forecast", str(path), "--series-id", "sensor", "--target", "y"]) == 2
    err = capsys.readouterr().err
    assert "tsrnn: error: Series 's1' is split across partitions [0, 1]" in err
    assert "set_index" in err and "shuffle" in err
    csv = tmp_path / "one.csv"
    make_frame(60).to_csv(csv)
    assert main(["forecast", str(csv), "--series-id", "sensor"]) == 2
    assert "--series-id reads a parquet fleet" in capsys.readouterr().err


def test_cli_without_dask_names_the_extra(tmp_path):
    path = tmp_path / "fleet.parquet"
    fleet(n=40).to_parquet(path)
    # dask made unimportable in a fresh interpreter.
    code = (
        "import sys\n"
        "for name in ('dask', 'dask.dataframe', 'dask.distributed'):\n"
        "    sys.modules[name] = None\n"
        "from tsrnn.cli import main\n"
        f"sys.exit(main(['forecast', {str(path)!r}, '--series-id', 'sensor']))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path)
    assert run.returncode == 2, run.stderr
    assert 'needs dask, which is not installed: pip install "tsrnn[dask]"' in run.stderr


def test_fleet_backtest_table_equals_pandas(sync, fitted):
    from tsrnn._parquet_fleet import fleet_metrics, split_fleet

    model, history = fitted
    ddf = as_dask(history, "column")
    train, test = split_fleet(ddf, "sensor", horizon=4, test_size=0.1)
    held = test.compute()
    assert (held.groupby("sensor").size() == 12).all()
    pd.testing.assert_frame_equal(train.compute(), history.groupby("sensor").head(108),
                                  check_dtype=False)  # dask reads str as pyarrow str
    # A model that kept the end of its training rows: the fitted fleet's
    # first 108 rows.
    head = history.groupby("sensor", sort=False).head(108)
    model = RNNForecaster(**model.get_params()).fit(head)
    got = fleet_metrics(model.backtest(test), model.target_, model.mase_scale_)
    expected = model.backtest(held).metrics
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-6)


def test_parquet_output_is_replaced_whole(sync, tmp_path):
    from tsrnn._parquet_fleet import write_forecast

    out = tmp_path / "forecast.parquet"
    first = dd.from_pandas(fleet(n=8), npartitions=2, sort=False)
    write_forecast(first, str(out))
    pd.testing.assert_frame_equal(pd.read_parquet(out), fleet(n=8).reset_index(),
                                  check_dtype=False)

    def broken(part):
        if (part["sensor"] == "s3").any():
            raise RuntimeError("disk full")
        return part

    # A write that fails half-way leaves the old output whole and no debris.
    second = dd.from_pandas(fleet(n=6), npartitions=3, sort=False)
    with pytest.raises(RuntimeError, match="disk full"):
        write_forecast(second.map_partitions(broken, meta=second._meta), str(out))
    pd.testing.assert_frame_equal(pd.read_parquet(out), fleet(n=8).reset_index(),
                                  check_dtype=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["forecast.parquet"]
    write_forecast(second, str(out))
    assert len(pd.read_parquet(out)) == 36
    assert sorted(p.name for p in tmp_path.iterdir()) == ["forecast.parquet"]


def test_cli_parquet_round_trip_on_the_cluster(client, tmp_path, capsys):
    from tsrnn.cli import main

    history = fleet()
    source = tmp_path / "fleet.parquet"
    history.to_parquet(source, partition_cols=["sensor"])  # a directory per sensor
    out = tmp_path / "forecast.parquet"
    status = main(["forecast", str(source), "--series-id", "sensor", "--target", "y",
                   "--window", "12", "--horizon", "4", "--hidden", "8", "--max-iter", "2",
                   "--scheduler", client.scheduler.address, "--out", str(out)])
    printed = capsys.readouterr()
    assert status == 0, printed.err
    assert "for 6 series of" in printed.out and "648 training rows" in printed.out
    # The same model on the pandas training rows (each sensor's first 108 of
    # 120) forecasts the same rows.
    model = RNNForecaster(target="y", series_id="sensor", window=12, horizon=4,
                          hidden_layer_sizes=(8,), max_iter=2, random_state=0)
    model.fit(history.groupby("sensor", sort=False).head(108))
    expected = model.predict(history).reset_index()
    got = pd.read_parquet(out)
    assert list(got.columns) == list(expected.columns)
    got = got.sort_values(["sensor", "timestamp"], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, **SAME)
    # The backtest table printed is the pandas backtest's on the held-out rows.
    metrics = model.backtest(history.groupby("sensor", sort=False).tail(12)).metrics
    table = printed.out.split("scored over the whole fleet:\n")[1].splitlines()
    assert table[1].split()[0] == "model"
    assert float(table[1].split()[1]) == pytest.approx(metrics.loc["model", "MAE"], abs=1e-4)


def test_predict_with_known_future_values(sync):
    history = fleet()
    model = RNNForecaster(target="y", series_id="sensor", known_future=["hour"], window=12,
                          horizon=4, hidden_layer_sizes=8, max_iter=1, random_state=0)
    model.fit(history)
    index = pd.date_range("2024-01-06", periods=4, freq="h", name="timestamp")
    future = pd.concat([pd.DataFrame({"sensor": key, "hour": index.hour.astype(float)},
                                     index=index) for key in SENSORS])
    # The known-future values are a small pandas frame, sent along once.
    got = model.predict(as_dask(history, "column"), future=future).compute()
    expected = model.predict(history, future=future).reset_index(level=0)
    pd.testing.assert_frame_equal(got, expected, **SAME)
    with pytest.raises(TypeError, match="future must be a pandas DataFrame"):
        model.predict(as_dask(history, "column"), future=dd.from_pandas(future, 1))
