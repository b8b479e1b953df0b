"""The README is the front door, the user guide owns the detail: every
Python block in either must run.

Each ```python block of the README and each ``.. code-block:: python`` of
``docs/`` is executed on its own, as a reader would paste it, with
``max_iter`` cut to 2 so the suite stays fast; the blocks assert their own
claims where they make one (e.g. identical results for any thread count). The
shell commands are checked for what can be checked without installing: the
two first-five-minutes commands, and that every ``tsrnn forecast`` line uses
options the command line accepts. The option list itself is generated from
the parser (``docs/cli.rst``), so it cannot drift.
"""
import re
import shlex
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tsrnn.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent  # the checkout holding tests/
README = ROOT / "README.md"
TEXT = README.read_text()
README_BLOCKS = re.findall(r"^```python\n(.*?)^```", TEXT, re.S | re.M)
SHELL_BLOCKS = re.findall(r"^```sh\n(.*?)^```", TEXT, re.S | re.M)

DOCS = ROOT / "docs"
DOC_PAGES = sorted(DOCS.glob("*.rst")) + sorted((DOCS / "user_guide").glob("*.rst"))


def _rst_blocks(text, opener):
    """The indented blocks that follow each line matching ``opener``, dedented."""
    pattern = rf"^{opener}\n\n((?:[ ]{{4}}.*\n|\n)+)"
    return [textwrap.dedent(block).strip() + "\n" for block in re.findall(pattern, text, re.M)]


# (where, code): the README's blocks, then the docs pages' in order.
PYTHON_BLOCKS = [(f"README.md:{TEXT[:TEXT.index(code)].count(chr(10)) + 1}", code)
                 for code in README_BLOCKS]
for page in DOC_PAGES:
    PYTHON_BLOCKS += [(f"{page.relative_to(ROOT)}#{i}", code)
                      for i, code in enumerate(_rst_blocks(page.read_text(), r"\.\. code-block:: python"), 1)]
# Shell commands of the docs: the literal blocks after a paragraph ending in "::".
DOC_SHELL_BLOCKS = [block for page in DOC_PAGES
                    for block in _rst_blocks(page.read_text(), r"(?:.*::|::)")]

# The extras bring matplotlib for --plot and tqdm for the progress bar, so the
# first command shows the whole main job on a fresh machine.
INSTALL_AND_RUN = 'pip install ".[plot,progress]" && tsrnn forecast --plot forecast.png'
INSTALL_AND_TEST = 'pip install -e ".[test]" && python -m pytest'


def _shorten(code):
    """The block with every max_iter=N set to 2: the code path, not the fit."""
    return re.sub(r"\bmax_iter=\d+", "max_iter=2", code)


# Two epochs do not converge, by design of _shorten.
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("where, code", PYTHON_BLOCKS, ids=[w for w, _ in PYTHON_BLOCKS])
def test_python_block_runs(where, code, monkeypatch, tmp_path):
    if re.search(r"^import torch|^from torch", code, re.M):
        pytest.importorskip("torch")
    if re.search(r"^import dask|^from dask", code, re.M):
        pytest.importorskip("dask.distributed")
    if re.search(r"^import onnxruntime", code, re.M):
        pytest.importorskip("onnxruntime")  # in the test extra; optional elsewhere
    if "plot(" in code:
        matplotlib = pytest.importorskip("matplotlib")
        matplotlib.use("Agg")  # no window during tests
    monkeypatch.chdir(tmp_path)  # anything a block writes lands here
    exec(compile(_shorten(code), where, "exec"), {"__name__": "__readme__"})
    if "plot(" in code:
        import matplotlib.pyplot as plt

        plt.close("all")


def test_there_are_python_blocks():
    # The README shows the forecaster; the user guide the rest: grid search,
    # sequence classification, threads, functional API, torch weights, dask,
    # each forecasting job, the sequence features and the ONNX export.
    assert any("RNNForecaster(" in code for code in README_BLOCKS)
    assert len(PYTHON_BLOCKS) >= 12
    for needle in ("RNNForecaster(", "GridSearchCV(", "TimeSeriesSplit(", "RNNClassifier(",
                   'threadpool_limits(1, user_api="openmp")', "init_params(",
                   "rnn_backward(", "{k: v.numpy() for k, v in", 'parallel_backend("dask")',
                   "known_future=", "series_id=", 'missing="mask"', ".intervals", ".update(",
                   "baseline_", "lengths=lengths", "bidirectional=True", "tbptt_length=",
                   "initial_state=", "save_onnx(", "to_onnx(", "permutation_importance(",
                   "sample_weight="):
        assert any(needle in code for _, code in PYTHON_BLOCKS), needle


def test_getting_started_includes_the_readme_block():
    # docs/getting_started.rst shows the README's forecast by literalinclude,
    # starting at its first line; that line must stay where the page looks.
    page = (DOCS / "getting_started.rst").read_text()
    start = re.search(r":start-at: (.*)", page).group(1)
    assert README_BLOCKS[0].startswith(start)


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
    for block in SHELL_BLOCKS + DOC_SHELL_BLOCKS:
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


def test_cli_page_is_generated_from_the_parser():
    page = (DOCS / "cli.rst").read_text()
    assert ".. argparse::" in page and ":func: build_parser" in page


def test_links_point_to_files():
    targets = re.findall(r"\]\(([^)#]+)\)", TEXT)
    assert any(t.startswith("docs/") for t in targets)  # the README sends readers on
    for target in targets:
        if "://" not in target:
            assert (ROOT / target).exists(), target


def test_performance_section_defers_to_the_benchmarks():
    assert "\n## Performance\n" in TEXT
    section = TEXT.split("\n## Performance\n", 1)[1].split("\n## ", 1)[0]
    assert "benchmarks/README.md" in section


def recorded_accuracy(pattern):
    """{dataset: {model: result}} of the stored bench_accuracy runs named ``pattern``."""
    import json

    results = {}
    for path in sorted((ROOT / "benchmarks" / "results").glob(pattern)):
        results.update(json.loads(path.read_text())["results"])
    return results


def test_accuracy_table_is_the_recorded_benchmark():
    """The README's accuracy table is bench_accuracy's stored runs, to its 3 decimals."""
    results = recorded_accuracy("accuracy*.json")
    section = TEXT.split("\n## Accuracy\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    models = header[1:-1]  # the last column is tsrnn's band coverage
    rows = [[c.strip().strip("*") for c in line.strip("|").split("|")] for line in lines[1:]]
    assert sorted(row[0] for row in rows) == sorted(results)
    for name, *cells in rows:
        for model, cell in zip(models, cells):
            runs = results[name][model]["runs"]
            assert cell == f"{runs[0]['ratio_seasonal_naive']:.3f}", (name, model)
        coverage = results[name]["tsrnn"]["runs"][0]["coverage80"]
        assert cells[-1] == f"{coverage:.0%}", name


def test_accuracy_summary_is_the_recorded_benchmark():
    """The geometric means and the fit share under the table, from the same runs."""
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_accuracy import summarise

    section = " ".join(TEXT.split("\n## Accuracy\n", 1)[1].split("\n## ", 1)[0].split())
    suite = recorded_accuracy("accuracy*.json")
    names = list(suite)
    summary = summarise(suite, names, ["tsrnn", "skforecast", "autoets", "darts"])
    gmean = {m: s["gmean_ratio_seasonal_naive"] for m, s in summary.items()}
    seeds = np.array(gmean["tsrnn"])
    assert (f"Geometric means: tsrnn {seeds[0]:.3f} ({seeds.mean():.3f} +/- "
            f"{seeds.std():.3f} over seeds 0-{len(seeds) - 1}), skforecast + LightGBM "
            f"{gmean['skforecast'][0]:.3f}, AutoETS {gmean['autoets'][0]:.3f}, darts "
            f"{gmean['darts'][0]:.3f}") in section
    fit = summary["tsrnn"]["total_fit_s"][0] / summary["darts"]["total_fit_s"][0]
    assert f"tsrnn's fits took {fit:.0%} of darts' time" in section
    holdout = recorded_accuracy("holdout.json")
    summary = summarise(holdout, list(holdout), ["tsrnn", "autoets", "skforecast"])
    means = {m: np.mean(s["gmean_ratio_seasonal_naive"]) for m, s in summary.items()}
    assert (f"tsrnn's geometric mean is {means['tsrnn']:.3f} against AutoETS's "
            f"{means['autoets']:.3f} and skforecast's {means['skforecast']:.3f}") in section
