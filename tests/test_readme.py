"""The README is the front door: every Python block in it must run.

Each ```python block is executed on its own, as a reader would paste it, with
``max_iter`` cut to 2 so the suite stays fast; the blocks assert their own
claims where they make one (e.g. identical results for any thread count). The
shell blocks are checked for what can be checked without installing: the two
first-five-minutes commands, and that every ``tsrnn forecast`` line uses
options the command line accepts.
"""
import re
import shlex
from pathlib import Path

import pytest

from tsrnn.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent  # the checkout holding tests/
README = ROOT / "README.md"
TEXT = README.read_text()
PYTHON_BLOCKS = re.findall(r"^```python\n(.*?)^```", TEXT, re.S | re.M)
SHELL_BLOCKS = re.findall(r"^```sh\n(.*?)^```", TEXT, re.S | re.M)

# The extras bring matplotlib for --plot and tqdm for the progress bar, so the
# first command shows the whole main job on a fresh machine.
INSTALL_AND_RUN = 'pip install ".[plot,progress]" && tsrnn forecast --plot forecast.png'
INSTALL_AND_TEST = 'pip install -e ".[test]" && python -m pytest'


def _shorten(code):
    """The block with every max_iter=N set to 2: the code path, not the fit."""
    return re.sub(r"\bmax_iter=\d+", "max_iter=2", code)


# Two epochs do not converge, by design of _shorten.
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(
    "code", PYTHON_BLOCKS,
    ids=[f"block{i}-line{TEXT[:TEXT.index(code)].count(chr(10)) + 1}"
         for i, code in enumerate(PYTHON_BLOCKS, 1)],
)
def test_python_block_runs(code, monkeypatch, tmp_path):
    if re.search(r"^import torch|^from torch", code, re.M):
        pytest.importorskip("torch")
    if re.search(r"^import onnxruntime", code, re.M):
        pytest.importorskip("onnxruntime")  # in the test extra; optional elsewhere
    if "plot(" in code:
        matplotlib = pytest.importorskip("matplotlib")
        matplotlib.use("Agg")  # no window during tests
    monkeypatch.chdir(tmp_path)  # anything a block writes lands here
    exec(compile(_shorten(code), str(README), "exec"), {"__name__": "__readme__"})
    if "plot(" in code:
        import matplotlib.pyplot as plt

        plt.close("all")


def test_there_are_python_blocks():
    # The examples the issue asks for: forecasting, grid search, sequence
    # classification, threads, functional API, torch weights.
    assert len(PYTHON_BLOCKS) >= 6
    for needle in ("RNNForecaster(", "GridSearchCV(", "TimeSeriesSplit(", "RNNClassifier(",
                   'threadpool_limits(1, user_api="openmp")', "init_params(",
                   "rnn_backward(", "{k: v.numpy() for k, v in"):
        assert any(needle in code for code in PYTHON_BLOCKS), needle


def test_first_command_installs_and_forecasts_second_runs_the_tests():
    first, second = (block.strip() for block in SHELL_BLOCKS[:2])
    assert first == INSTALL_AND_RUN
    assert second == INSTALL_AND_TEST


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install -q -e ".[test]"' in ci
    assert "python -m pytest" in ci


def test_test_extra_provides_pytest():
    pyproject = (ROOT / "pyproject.toml").read_text()
    test_extra = re.search(r"^test = \[(.*?)\]", pyproject, re.M | re.S)
    assert test_extra and '"pytest' in test_extra.group(1)


def _forecast_commands():
    """Every `tsrnn forecast ...` command in the shell blocks, continuation lines joined."""
    commands = []
    for block in SHELL_BLOCKS:
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split("&&"):
                words = shlex.split(part)
                if words[:2] == ["tsrnn", "forecast"]:
                    commands.append(words[1:])
    return commands


def test_forecast_commands_use_real_options():
    commands = _forecast_commands()
    assert len(commands) >= 2
    parser = build_parser()
    for argv in commands:
        parser.parse_args(argv)  # argparse exits (SystemExit) on an unknown option


def test_option_table_matches_the_parser():
    """Every option of `tsrnn forecast` is in the README's table, and nothing else."""
    parser = build_parser()
    forecast = parser._subparsers._group_actions[0].choices["forecast"]
    options = {s for a in forecast._actions for s in a.option_strings if s.startswith("--")}
    options.discard("--help")
    in_table = set(re.findall(r"^\| `(--[a-z-]+)", TEXT, re.M))
    in_table |= set(re.findall(r"^\| `--out PATH`, `(--plot) PATH`", TEXT, re.M))
    assert in_table == options


def test_links_point_to_files():
    for target in re.findall(r"\]\(([^)#]+)\)", TEXT):
        if "://" not in target:
            assert (ROOT / target).exists(), target


def test_performance_section_defers_to_the_benchmarks():
    assert "\n## Performance\n" in TEXT
    section = TEXT.split("\n## Performance\n", 1)[1].split("\n## ", 1)[0]
    assert "benchmarks/README.md" in section
