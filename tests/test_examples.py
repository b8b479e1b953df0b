"""Smoke-run every script in examples/ with its --quick flag, in a subprocess.

Each test checks what the script claims to show, from its printed output, so
an example that runs but has stopped demonstrating anything fails too.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import tsrnn

# The scripts live in the checkout next to tests/; the subprocess imports the
# same tsrnn as this process, wherever that is installed.
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
_TSRNN_PARENT = str(Path(tsrnn.__file__).resolve().parent.parent)


def run_example(name, *args, cwd):
    script = EXAMPLES / name
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_TSRNN_PARENT, env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, str(script), "--quick", *args], cwd=cwd, env=env,
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def number_after(label, text):
    match = re.search(re.escape(label) + r"\s*(-?[0-9.]+(?:e-?[0-9]+)?)", text)
    assert match, f"{label!r} not in output:\n{text}"
    return float(match.group(1))


def test_every_example_is_run_by_a_test():
    # Examples with heavier needs are run elsewhere (the dask one by
    # tests/test_dask.py); each must at least be named by some test file.
    tests = "".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py"))
    examples = sorted(p.name for p in EXAMPLES.glob("*.py"))
    assert examples
    assert [name for name in examples if f'"{name}"' not in tests] == []


def test_forecast_weather(tmp_path):
    out = run_example("forecast_weather.py", "--plot", "fc.png", cwd=tmp_path)
    table = out[out.index("24 h ahead"):].splitlines()[1:5]
    assert table[0].split() == ["MAE", "RMSE", "MASE"]
    assert [row.split()[0] for row in table[1:]] == ["model", "persistence", "seasonal_naive"]
    assert "forecast for 2018-01-01" in out
    assert "band coverage" in out and "0.1-0.9" in out
    assert out.count("\n2018-01-01 ") == 24  # one row per forecast hour
    assert (tmp_path / "fc.png").read_bytes()[:4] == b"\x89PNG"


def test_importance_weather(tmp_path):
    out = run_example("importance_weather.py", "--plot", "imp.png", cwd=tmp_path)
    rows = out[out.index("rise in MASE"):].splitlines()[2:15]
    table = {row.split()[0]: float(row.split()[1]) for row in rows}
    assert len(table) == 13  # every column of the weather frame
    # The temperature's own history is what a day-ahead forecast needs most.
    assert max(table, key=table.get) == "temp_air" and table["temp_air"] > 0.1
    assert (tmp_path / "imp.png").read_bytes()[:4] == b"\x89PNG"


def test_tune_gridsearch(tmp_path):
    out = run_example("tune_gridsearch.py", cwd=tmp_path)
    assert "searched 4 settings x 3 folds" in out
    for cell in ("lstm", "gru"):
        assert len(re.findall(rf"^\s*{cell}\s+(6|24)\s+[0-9.]+$", out, re.M)) == 2
    # Even two epochs on 800 hours beat "the temperature stays as it is now".
    model = number_after("model", out[out.index("held-out MAE"):])
    persistence = number_after("persistence", out[out.index("held-out MAE"):])
    assert model < persistence


def test_classify_digits(tmp_path):
    out = run_example("classify_digits.py", cwd=tmp_path)
    # Three epochs already reach ~0.7 on held-out images; chance is 0.1.
    assert number_after("test accuracy:", out) > 0.4


def test_char_rnn(tmp_path):
    out = run_example("char_rnn.py", cwd=tmp_path)
    first, last = map(float, re.search(r"loss per character ([0-9.]+) -> ([0-9.]+)", out).groups())
    assert last < first
    # Long sequences trained in truncated-BPTT segments, a label per step.
    assert re.search(r"as 8 sequences of 207\b", out)
    assert re.search(r"trained 2 epochs of 9 segments", out)
    sample = out.split("sample:\n", 1)[1].rstrip("\n")
    assert sample.startswith("Alice was beginning to get")
    assert len(sample) == len("Alice was beginning to get") + 40


def test_torch_weights(tmp_path):
    pytest.importorskip("torch")
    out = run_example("torch_weights.py", cwd=tmp_path)
    # float32 on both sides: agreement to rounding, not approximately.
    assert number_after("max |diff|", out[out.index("functional"):]) < 1e-5
    assert number_after("max |diff|", out[out.index("RNNRegressor"):]) < 1e-5


def test_stream_sensor(tmp_path):
    out = run_example("stream_sensor.py", cwd=tmp_path)
    assert "streaming the next 200, one row at a time" in out
    for call in ("update", "predict"):
        assert re.search(rf"^{call}\s+[0-9.]+\s+[0-9.]+\s+[0-9.]+$", out, re.M)
    # Every streamed median equals the batch predict's on the same history.
    assert number_after("median forecasts agree to", out) <= 1e-5
    assert "last forecast, from the origin 2017-02-19 23:00:00" in out
