"""The command line, run as a user runs it: in a subprocess.

Bad input must end with exit status 2, one ``tsrnn: error:`` line naming the
problem, and no output file. The happy paths train with tiny settings (one or
two epochs, a small network) to keep the suite fast on 2 shared cores.
"""
import importlib.metadata
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import tsrnn
from tsrnn.cli import _network_report, write_outputs
from tsrnn.datasets import load_weather

# Make the subprocess import this checkout's tsrnn even when it is not installed.
_REPO = str(Path(tsrnn.__file__).resolve().parent.parent)

# Small settings: seconds, not the minute of the defaults.
_SMALL = ["--window", "8", "--horizon", "6", "--hidden", "8", "--max-iter", "2"]


def run_cli(*args, cwd, block_dir=None, command=None):
    env = dict(os.environ)
    # Blocking stubs come first, to shadow the installed packages.
    paths = ([str(block_dir)] if block_dir else []) + [_REPO]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    command = command or [sys.executable, "-m", "tsrnn"]
    return subprocess.run(
        [*command, *map(str, args)], cwd=cwd, env=env, capture_output=True,
        text=True, timeout=300,
    )


def blocker(tmp_path, *modules):
    """A directory whose stub packages make ``import <module>`` fail."""
    root = tmp_path / "blocked"
    for name in modules:
        (root / name).mkdir(parents=True)
        (root / name / "__init__.py").write_text(
            f"raise ImportError('{name} is blocked by the test')\n"
        )
    return root


def assert_one_line_error(result, *words):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("tsrnn: error: "), lines[0]
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def weather_csv(path, rows, columns=("temp_air", "dew_point")):
    load_weather().iloc[:rows][list(columns)].to_csv(path, index_label="timestamp")
    return path


# --------------------------------------------------------------------------
# Bad input: exit 2, one line, nothing written
# --------------------------------------------------------------------------

_HEADER = "timestamp,temp,humidity\n"


def _rows(n, start="2017-01-01"):
    stamps = pd.date_range(start, periods=n, freq="h")
    return "".join(f"{t:%Y-%m-%d %H:%M},{i % 7}.5,{i % 5}\n" for i, t in enumerate(stamps))


# (id, file content or None for no file, extra arguments, words the message must contain)
BAD_INPUTS = [
    ("missing-file", None, [], ["no such file", "data.csv"]),
    ("empty-file", "", [], ["data.csv", "empty"]),
    ("header-only", _HEADER, [], ["data.csv", "empty", "no data rows"]),
    ("unknown-target", _HEADER + _rows(100), ["--target", "pressure"],
     ["'pressure'", "'temp', 'humidity'", "--target"]),
    ("no-target-given", _HEADER + _rows(100), [], ["--target"]),
    ("non-numeric", _HEADER + _rows(50) + "2017-01-03 02:00,3.5,high\n" + _rows(50, "2017-01-04"),
     ["--target", "temp"], ["'humidity'", "not numeric", "row 51", "'high'"]),
    ("unparseable-time", _HEADER + _rows(10) + "yesterday,1.5,2\n" + _rows(90, "2017-01-05"),
     ["--target", "temp"], ["cannot parse timestamp", "'yesterday'", "row 11"]),
    ("numeric-time", "t,temp\n" + "".join(f"{i},{i}.5\n" for i in range(100)),
     ["--target", "temp"], ["'t'", "numbers from 0 to 99", "not Unix times", "--time-unit",
                            "--time-col"]),
    ("text-time-with-time-unit", _HEADER + _rows(100), ["--target", "temp", "--time-unit", "s"],
     ["--time-unit s", "'timestamp'", "does not hold numbers", "row 1"]),
    ("epoch-beyond-pandas", "t,temp\n" + "".join(f"{10**17 + i},{i}.5\n" for i in range(100)),
     ["--target", "temp", "--time-unit", "s"], ["'t'", "beyond the dates", "--time-unit"]),
    ("offsets-on-some-rows", "t,temp\n2024-03-31T00:00:00+01:00,1\n2024-03-31T01:00:00,2\n"
     "2024-03-31T03:00:00+02:00,3\n", ["--target", "temp"],
     ["'t'", "UTC offset on some rows", "row 1", "row 2", "has none"]),
    ("offsets-on-some-rows-first-naive", "t,temp\n2024-03-31T00:00:00,1\n"
     "2024-03-31T01:00:00+01:00,2\n", ["--target", "temp"],
     ["'t'", "UTC offset on some rows", "row 2", "has one", "row 1"]),
    ("unknown-tz", _HEADER + _rows(100), ["--target", "temp", "--tz", "Mars/Olympus"],
     ["--tz Mars/Olympus", "unknown time zone"]),
    ("nonexistent-local-time", _HEADER + _rows(100, "2024-03-30 20:00"),
     ["--target", "temp", "--tz", "Europe/Berlin"],
     ["Europe/Berlin", "2024-03-31 02:00", "UTC offsets"]),
    ("unsorted-time", _HEADER + "".join(reversed(_rows(100).splitlines(True))),
     ["--target", "temp"], ["not sorted", "row 2"]),
    ("duplicate-time", _HEADER + _rows(30) + _rows(70, "2017-01-02 05:00"),
     ["--target", "temp"], ["duplicated", "row 31", "2017-01-02 05:00", "--freq"]),
    ("too-few-rows", _HEADER + _rows(20), ["--target", "temp", "--window", "16", "--horizon", "8"],
     ["Too few rows", "window=16", "horizon=8", "first 12 rows", "--window N",
      "--horizon N"]),
    # From here on the forecaster's own checks (RNNForecaster.validate_frame).
    ("missing-value", _HEADER + _rows(50) + "2017-01-03 02:00,,1\n" + _rows(49, "2017-01-03 03:00"),
     ["--target", "temp", "--window", "8", "--horizon", "4"],
     ["'temp'", "missing value", "2017-01-03 02:00", "--missing"]),
    # A gap in the held-out rows (the last 20) is refused before training,
    # not by the backtest after it.
    ("missing-value-held-out", _HEADER + _rows(95) + "2017-01-04 23:00,,1\n"
     + _rows(4, "2017-01-05 00:00"), ["--target", "temp", "--window", "8", "--horizon", "4"],
     ["'temp'", "missing value", "2017-01-04 23:00", "--missing"]),
    ("season-lag-below-horizon", _HEADER + _rows(100),
     ["--target", "temp", "--window", "8", "--horizon", "4", "--season-lags", "2"],
     ["--season-lags 2", "--horizon 4", "at least"]),
    ("irregular-time", _HEADER + _rows(50) + _rows(50, "2017-01-03 05:00"),
     ["--target", "temp", "--window", "8", "--horizon", "4"],
     ["not regular", "2017-01-03 05:00", "--freq"]),
    ("jittered-time", _HEADER + "".join(
        f"{t + pd.Timedelta(seconds=(-1) ** i * (i % 21)):%Y-%m-%d %H:%M:%S},{i % 7}.5,{i % 5}\n"
        for i, t in enumerate(pd.date_range("2017-01-01", periods=100, freq="h"))),
     ["--target", "temp", "--window", "8", "--horizon", "4"],
     ["not regular", "every 1h", "up to 20s of jitter", "freq='h'", "--freq"]),
    ("unknown-time-col", _HEADER + _rows(100), ["--target", "temp", "--time-col", "when"],
     ["time column 'when'"]),
    ("unknown-feature", _HEADER + _rows(100), ["--target", "temp", "--features", "wind"],
     ["'wind'"]),
]


@pytest.mark.parametrize(
    "content, extra, words", [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS]
)
def test_bad_input_fails_in_one_line_and_writes_nothing(tmp_path, content, extra, words):
    if content is not None:
        (tmp_path / "data.csv").write_text(content)
    before = set(os.listdir(tmp_path))
    result = run_cli("forecast", "data.csv", *extra, "--out", "forecast.csv",
                     "--plot", "forecast.png", cwd=tmp_path)
    assert_one_line_error(result, *words)
    # No forecast, no plot, no leftover temporary file.
    assert set(os.listdir(tmp_path)) == before


def test_bad_input_keeps_an_existing_forecast(tmp_path):
    (tmp_path / "forecast.csv").write_text("an older forecast\n")
    result = run_cli("forecast", "nowhere.csv", "--out", "forecast.csv", cwd=tmp_path)
    assert_one_line_error(result, "nowhere.csv")
    assert (tmp_path / "forecast.csv").read_text() == "an older forecast\n"
    assert os.listdir(tmp_path) == ["forecast.csv"]


def test_output_directory_must_exist(tmp_path):
    weather_csv(tmp_path / "data.csv", 100)
    result = run_cli("forecast", "data.csv", "--target", "temp_air",
                     "--out", "no/such/dir/forecast.csv", cwd=tmp_path)
    assert_one_line_error(result, "--out", "does not exist")


def test_plot_without_matplotlib_says_so_before_training(tmp_path):
    weather_csv(tmp_path / "data.csv", 100)
    result = run_cli("forecast", "data.csv", "--target", "temp_air", "--plot", "f.png",
                     cwd=tmp_path, block_dir=blocker(tmp_path, "matplotlib"))
    line = assert_one_line_error(result, "--plot", "matplotlib", "not installed")
    assert "pip install" in line
    assert not (tmp_path / "forecast.csv").exists()
    assert not (tmp_path / "f.png").exists()


def test_bad_option_is_exit_2(tmp_path):
    # argparse's own errors (usage + message) use the same status.
    result = run_cli("forecast", "--cell", "rnn", cwd=tmp_path)
    assert result.returncode == 2
    assert "invalid choice: 'rnn'" in result.stderr
    result = run_cli("forecast", "--quantiles", "0.1,1.5", cwd=tmp_path)
    assert result.returncode == 2
    assert "between 0 and 1" in result.stderr
    for fmt, words in (("%d%d", "like %.6g"), ("%.2f C", "not a number")):
        result = run_cli("forecast", "--float-format", fmt, cwd=tmp_path)
        assert result.returncode == 2
        assert "--float-format" in result.stderr and words in result.stderr
    result = run_cli("forecast", "--time-unit", "h", cwd=tmp_path)
    assert result.returncode == 2 and "invalid choice: 'h'" in result.stderr
    assert os.listdir(tmp_path) == []


def test_console_script(tmp_path):
    """The installed ``tsrnn`` script runs the same main as ``python -m tsrnn``."""
    try:
        importlib.metadata.entry_points(group="console_scripts", name="tsrnn")["tsrnn"]
    except (KeyError, importlib.metadata.PackageNotFoundError):
        pytest.skip("tsrnn is not installed, so there is no console script")
    script = Path(sysconfig.get_path("scripts")) / "tsrnn"
    assert script.exists(), f"tsrnn is installed but {script} is missing"
    result = run_cli("forecast", "absent.csv", cwd=tmp_path, command=[str(script)])
    assert_one_line_error(result, "no such file", "absent.csv")
    result = run_cli("--version", cwd=tmp_path, command=[str(script)])
    assert result.returncode == 0
    assert result.stdout.strip() == f"tsrnn {tsrnn.__version__}"


# --------------------------------------------------------------------------
# Atomic output
# --------------------------------------------------------------------------


def test_write_outputs_is_all_or_nothing(tmp_path):
    old = tmp_path / "forecast.csv"
    old.write_text("old\n")

    def fail(tmp):
        Path(tmp).write_text("half a plot")
        raise RuntimeError("the plot broke")

    with pytest.raises(RuntimeError, match="the plot broke"):
        write_outputs([(old, lambda tmp: Path(tmp).write_text("new\n")),
                       (tmp_path / "forecast.png", fail)])
    assert old.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["forecast.csv"]

    write_outputs([(old, lambda tmp: Path(tmp).write_text("new\n"))])
    assert old.read_text() == "new\n"
    assert os.listdir(tmp_path) == ["forecast.csv"]
    # Written files get ordinary permissions, not mkstemp's private 0600.
    umask = os.umask(0)
    os.umask(umask)
    assert old.stat().st_mode & 0o777 == 0o666 & ~umask


# --------------------------------------------------------------------------
# Happy paths
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def embedded_run(tmp_path_factory):
    """``tsrnn forecast`` on the embedded data with small settings, a plot and importances."""
    cwd = tmp_path_factory.mktemp("embedded")
    result = run_cli("forecast", *_SMALL, "--plot", "forecast.png", "--importance", cwd=cwd)
    return result, cwd


def test_embedded_run_succeeds(embedded_run):
    result, cwd = embedded_run
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(cwd)) == ["forecast.csv", "forecast.png"]


def test_embedded_run_writes_the_forecast_csv(embedded_run):
    result, cwd = embedded_run
    forecast = pd.read_csv(cwd / "forecast.csv", index_col="timestamp", parse_dates=True)
    # The six hours after the last embedded row.
    expected = pd.date_range("2018-01-01 00:00", periods=6, freq="h")
    assert list(forecast.index) == list(expected)
    # The median is the point forecast, then the quantiles of the band.
    assert list(forecast.columns) == [
        "temp_air", "temp_air_q0.1", "temp_air_q0.5", "temp_air_q0.9"
    ]
    assert (forecast["temp_air"] == forecast["temp_air_q0.5"]).all()
    assert (forecast["temp_air_q0.1"] <= forecast["temp_air_q0.9"]).all()
    assert forecast.notna().all().all()
    # Air temperature in Colorado in January, in degrees C.
    assert forecast.abs().max().max() < 40


def test_embedded_run_writes_a_png(embedded_run):
    result, cwd = embedded_run
    assert (cwd / "forecast.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_embedded_run_prints_the_backtest_table(embedded_run):
    result, _ = embedded_run
    lines = result.stdout.splitlines()
    heading = [i for i, line in enumerate(lines) if line.startswith("backtest:")]
    assert len(heading) == 1, result.stdout
    table = lines[heading[0] + 1:heading[0] + 5]
    assert table[0].split() == ["MAE", "RMSE", "MASE"]
    assert [line.split()[0] for line in table[1:]] == ["model", "persistence", "seasonal_naive"]
    for line in table[1:]:
        assert all(float(v) >= 0 for v in line.split()[1:])


def test_embedded_run_says_what_the_network_adds(embedded_run):
    result, _ = embedded_run
    lines = [x for x in result.stdout.splitlines() if x.startswith("network: ")]
    assert len(lines) == 1, result.stdout
    assert (lines[0].endswith("so the forecast is the baseline's")
            or " held-out loss by " in lines[0]), lines[0]


@pytest.mark.parametrize("initial, best, said", [
    (-0.2, -0.2, "no epoch beat the baseline on the held-out block by 3% "
                 "(min_network_gain), so the forecast is the baseline's"),
    (-0.2, -0.15, "its corrections cut the baseline's held-out loss by 25.0%"),
    (None, None, None),  # no held-out block, or a model pickled before the attribute
])
def test_the_network_line_reads_the_held_out_scores(initial, best, said):
    from types import SimpleNamespace

    model = SimpleNamespace(initial_validation_score_=initial, best_validation_score_=best,
                            min_network_gain=0.03)
    assert _network_report(model) == (None if said is None else "network: " + said)


def test_embedded_run_prints_the_band_coverage(embedded_run):
    result, _ = embedded_run
    lines = result.stdout.splitlines()
    heading = [i for i, line in enumerate(lines) if line.startswith("bands:")]
    assert len(heading) == 1, result.stdout
    columns, _, row = lines[heading[0] + 1:heading[0] + 4]
    assert columns.split() == ["nominal", "coverage", "width", "interval_score"]
    band, nominal, coverage, width, score = row.split()
    assert band == "0.1-0.9" and float(nominal) == 0.8
    assert 0 <= float(coverage) <= 1 and float(width) > 0 and float(score) >= float(width)


def test_embedded_run_prints_the_importance_of_every_column(embedded_run):
    result, _ = embedded_run
    lines = result.stdout.splitlines()
    heading = [i for i, line in enumerate(lines) if line.startswith("importance:")]
    assert len(heading) == 1, result.stdout
    assert "5 shuffles" in lines[heading[0]]
    rows = [line.split() for line in lines[heading[0] + 3:heading[0] + 16]]
    assert lines[heading[0] + 1].split() == ["importance", "std"]
    assert sorted(r[0] for r in rows) == sorted(load_weather().columns)
    importance = [float(r[1]) for r in rows]
    assert importance == sorted(importance, reverse=True)
    # The target's own history and the sun's position carry the forecast:
    # with the default weekly lag input (season_lags="auto") the learned
    # baseline reads the daily cycle from solar_zenith (7.4 against the
    # target's 3.6 here; without the lag the target alone led, at 2.58).
    assert {rows[0][0], rows[1][0]} == {"temp_air", "solar_zenith"}
    assert importance[1] > 0.1


def test_embedded_run_shows_progress_with_tqdm(embedded_run):
    result, _ = embedded_run
    # tqdm's bar: the description, the epoch count and the scores.
    assert "training:" in result.stderr
    assert "2/2" in result.stderr
    assert "loss" in result.stderr


def test_csv_run_without_tqdm_prints_plain_progress(tmp_path):
    weather_csv(tmp_path / "data.csv", 600)
    result = run_cli("forecast", "data.csv", "--target", "temp_air", *_SMALL,
                     "--quantiles", "none", "--out", "out.csv", cwd=tmp_path,
                     block_dir=blocker(tmp_path, "tqdm"))
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("training:")]
    assert len(lines) == 2
    assert lines[-1].startswith("training: epoch 2/2, loss ")
    assert "left" in lines[-1]
    forecast = pd.read_csv(tmp_path / "out.csv", index_col="timestamp", parse_dates=True)
    assert list(forecast.columns) == ["temp_air"]
    assert forecast.index[0] == pd.Timestamp("2017-01-26 00:00")
    assert len(forecast) == 6


def test_season_lags_option_sets_the_lag_inputs(tmp_path):
    # Hourly data: the default takes the week's lag; none and a list say so.
    weather_csv(tmp_path / "data.csv", 600)
    said = {}
    for option in ("auto", "none", "24,168"):
        result = run_cli("forecast", "data.csv", "--target", "temp_air", *_SMALL,
                         "--quantiles", "none", "--season-lags", option,
                         "--out", f"{option}.csv", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        (line,) = [x for x in result.stdout.splitlines() if x.startswith("trained ")]
        lags, found, _ = line.partition(" steps earlier as input")
        said[option] = lags.rpartition("the target ")[2] if found else None
    assert said == {"auto": "168", "none": None, "24,168": "24, 168"}
    forecasts = [pd.read_csv(tmp_path / f"{o}.csv")["temp_air"] for o in ("auto", "none")]
    assert not forecasts[0].equals(forecasts[1])


def test_same_seed_same_forecast(tmp_path):
    weather_csv(tmp_path / "data.csv", 300, columns=("temp_air",))
    outputs = []
    for name in ("a.csv", "b.csv"):
        result = run_cli("forecast", "data.csv", *_SMALL, "--seed", "3", "--cell", "gru",
                         "--out", name, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        outputs.append((tmp_path / name).read_text())
    assert outputs[0] == outputs[1]


@pytest.mark.parametrize(
    "values", [lambda t: np.sin(2 * np.pi * t / 24), lambda t: 0 * t + 3.25],
    ids=["exactly-seasonal", "constant"],
)
def test_undefined_mase_is_nan_with_a_note(tmp_path, values):
    # The seasonal-naive MAE on such training rows is ~1e-14 or 0: MASE was
    # printed as 230436504745897.8438 or inf before.
    t = np.arange(300)
    frame = pd.DataFrame({"y": values(t)},
                         index=pd.date_range("2024-01-01", periods=300, freq="h"))
    frame.to_csv(tmp_path / "data.csv", index_label="timestamp")
    result = run_cli("forecast", "data.csv", "--window", "24", "--horizon", "6",
                     "--max-iter", "1", "--out", "out.csv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    table = result.stdout.split("backtest:")[1]
    mase = [line.split()[-1] for line in table.splitlines()
            if line.split()[:1] in (["model"], ["persistence"], ["seasonal_naive"])]
    assert mase == ["NaN", "NaN", "NaN"], table
    assert "note: MASE is NaN" in result.stdout
    assert "Warning" not in result.stderr, result.stderr


def test_training_failure_is_exit_1_not_input_error(tmp_path, monkeypatch, capsys):
    # A diverging fit is not the user's input: status 1 and one clear line.
    from tsrnn import cli
    from tsrnn.exceptions import TrainingError

    def diverge(self, *args, **kwargs):
        raise TrainingError("Training diverged: the loss became inf in epoch 1.")

    monkeypatch.setattr("tsrnn.RNNForecaster.fit", diverge)
    weather_csv(tmp_path / "data.csv", 300)
    code = cli.main(["forecast", str(tmp_path / "data.csv"), "--target", "temp_air",
                     "--out", str(tmp_path / "out.csv")])
    assert code == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        "tsrnn: training failed: Training diverged: the loss became inf in epoch 1."
    ]
    assert not (tmp_path / "out.csv").exists()


def test_unexpected_error_shows_its_traceback(tmp_path, monkeypatch):
    # A bug (here a ValueError that is not an InputError) is not reported as
    # bad input: it propagates with its traceback.
    from tsrnn import cli

    def broken(self, *args, **kwargs):
        raise ValueError("an internal bug")

    monkeypatch.setattr("tsrnn.RNNForecaster.backtest", broken)
    weather_csv(tmp_path / "data.csv", 300)
    with pytest.raises(ValueError, match="an internal bug"):
        cli.main(["forecast", str(tmp_path / "data.csv"), "--target", "temp_air",
                  "--max-iter", "1", "--out", str(tmp_path / "out.csv")])


# --------------------------------------------------------------------------
# Sensor exports (issue 25): UTC offsets across DST, Unix time, jitter
# --------------------------------------------------------------------------

# 60 days of hourly readings from 2024-03-01 00:00 UTC, across the spring DST
# change in Europe (2024-03-31 01:00 UTC), as the tries were.
_EXPORT_HOURS = pd.date_range("2024-03-01", periods=1441, freq="h", tz="UTC")


def _export(path, stamps, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(len(_EXPORT_HOURS))
    temp = 10 + 5 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.5, len(t))
    pd.DataFrame({"time": stamps, "temp": temp}).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """The issue's four exports of the same readings, and the runs on them."""
    cwd = tmp_path_factory.mktemp("exports")
    berlin = _EXPORT_HOURS.tz_convert("Europe/Berlin")
    seconds = (_EXPORT_HOURS - pd.Timestamp(0, tz="UTC")) // pd.Timedelta("1s")
    jitter = np.random.default_rng(1).integers(-20, 21, len(_EXPORT_HOURS))
    jittered = _EXPORT_HOURS.tz_localize(None) + pd.to_timedelta(jitter, unit="s")
    files = {
        "tz": _export(cwd / "tz.csv", [t.isoformat() for t in berlin]),
        "epoch_s": _export(cwd / "epoch_s.csv", seconds),
        "epoch_ms": _export(cwd / "epoch_ms.csv", seconds * 1000),
        "jitter": _export(cwd / "jitter.csv", [f"{t:%Y-%m-%d %H:%M:%S}" for t in jittered]),
    }
    runs = {
        "tz": [files["tz"]],
        "tz_berlin": [files["tz"], "--tz", "Europe/Berlin", "--float-format", "%.2f"],
        "epoch_s": [files["epoch_s"], "--time-col", "time"],
        "epoch_ms": [files["epoch_ms"]],
        "epoch_ms_unit": [files["epoch_ms"], "--time-unit", "ms"],
        "jitter": [files["jitter"], "--freq", "h"],
    }
    results = {}
    for name, args in runs.items():
        out = cwd / f"{name}.out.csv"
        result = run_cli("forecast", *args, "--target", "temp", *_SMALL, "--out", out, cwd=cwd)
        results[name] = result, out
    return results


def _written(out):
    return pd.read_csv(out, dtype={"timestamp": str})


def test_offsets_across_dst_parse_as_one_utc_index(exports):
    result, out = exports["tz"]
    assert result.returncode == 0, result.stderr
    # 1441 hours, the DST change no gap: from 00:00 UTC on March 1st to
    # 00:00 UTC on April 30th.
    assert "1441 rows, 2024-03-01 00:00:00+00:00 to 2024-04-30 00:00:00+00:00" in result.stdout
    # The forecast continues in UTC, written as ISO 8601 with its offset.
    assert list(_written(out)["timestamp"]) == [
        f"2024-04-30T0{h}:00:00+00:00" for h in range(1, 7)]


def test_tz_names_the_zone_of_the_forecast(exports):
    result, out = exports["tz_berlin"]
    assert result.returncode == 0, result.stderr
    written = _written(out)
    assert list(written["timestamp"]) == [f"2024-04-30T0{h}:00:00+02:00" for h in range(3, 9)]
    # The same instants and numbers as in UTC, to two decimals.
    in_utc = _written(exports["tz"][1])
    assert (pd.to_datetime(written["timestamp"]) == pd.to_datetime(in_utc["timestamp"])).all()
    np.testing.assert_allclose(written["temp"], in_utc["temp"], atol=0.0051)
    assert all(len(cell.split(".")[1]) == 2 for cell in out.read_text().splitlines()[1].split(",")[1:])


@pytest.mark.parametrize("name, unit", [("epoch_s", 1), ("epoch_ms", 1000), ("epoch_ms_unit", 1000)])
def test_unix_times_are_read_and_written_back(exports, name, unit):
    result, out = exports[name]
    assert result.returncode == 0, result.stderr
    assert "2024-03-01 00:00:00+00:00 to 2024-04-30 00:00:00+00:00" in result.stdout
    written = _written(out)
    start = int(pd.Timestamp("2024-04-30 01:00", tz="UTC").timestamp())
    assert list(written["timestamp"]) == [str((start + 3600 * h) * unit) for h in range(6)]
    # Same readings, same seed: the same forecast as the ISO file's.
    pd.testing.assert_frame_equal(written.drop(columns="timestamp"),
                                  _written(exports["tz"][1]).drop(columns="timestamp"))


def test_jittered_readings_snap_with_freq_and_the_cli_says_so(exports):
    result, out = exports["jitter"]
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stdout.splitlines() if line.startswith("note:")]
    assert len(notes) == 1, result.stdout
    # Every reading found its own hour: nothing averaged, nothing empty.
    assert "readings of 1,297 moved to the nearest point (by up to 20s)" in notes[0]
    assert "averaged" not in notes[0] and "no reading" not in notes[0]
    written = _written(out)
    assert list(written["timestamp"]) == [f"2024-04-30 0{h}:00:00" for h in range(1, 7)]
    # The same hours as the exact stamps: the same forecast.
    pd.testing.assert_frame_equal(written.drop(columns="timestamp"),
                                  _written(exports["tz"][1]).drop(columns="timestamp"))


def test_forecast_csv_has_six_significant_digits(exports):
    _, out = exports["tz"]
    cells = [cell for line in out.read_text().splitlines()[1:] for cell in line.split(",")[1:]]
    assert cells and all(len(cell.replace("-", "").replace(".", "").lstrip("0")) <= 6
                         for cell in cells)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_plot_title_names_the_target_and_the_file(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    from tsrnn import RNNForecaster
    from tsrnn.cli import _plot_writer, build_parser

    data = load_weather().iloc[:200][["temp_air", "dew_point"]]
    model = RNNForecaster(target="temp_air", window=8, horizon=6, hidden_layer_sizes=4,
                          max_iter=1).fit(data)
    args = build_parser().parse_args(["forecast", "--horizon", "6"])
    titles = []
    real = Figure.savefig

    def spy(fig, *a, **k):
        titles.append(fig.axes[0].get_title())
        return real(fig, *a, **k)

    monkeypatch.setattr(Figure, "savefig", spy)
    _plot_writer(model, data, args, "/data/site-7.csv")(tmp_path / "p.png")
    assert titles == ["Forecast of temp_air (site-7.csv)"]
