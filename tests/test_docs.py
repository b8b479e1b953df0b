"""The API reference keeps up with the code.

``docs/api.rst`` lists what autosummary documents; the -W docs build fails on
a listed object without an Examples section (numpydoc's EX01) and
``pytest --doctest-modules tsrnn`` runs those examples. What neither can see
is tested here: a public name missing from the reference (a new module or a
new function in ``__all__``), and the examples in the docstrings of the
compiled module, which doctest does not collect.
"""
import doctest
import importlib
import pkgutil
import re
import types
from pathlib import Path

import pytest

import tsrnn

API = Path(__file__).resolve().parent.parent / "docs" / "api.rst"


def documented_names():
    """{module: names} of the autosummary entries of docs/api.rst."""
    names, module = {}, None
    for line in API.read_text().splitlines():
        if match := re.match(r"\.\. currentmodule:: (\S+)", line):
            module = match.group(1)
        elif match := re.match(r"   ([A-Za-z_]\w*)$", line):
            names.setdefault(module, set()).add(match.group(1))
    return names


def public_modules():
    """tsrnn and every submodule whose name has no leading underscore."""
    modules = ["tsrnn"]
    for info in pkgutil.iter_modules(tsrnn.__path__):
        if not info.name.startswith("_"):
            modules.append(f"tsrnn.{info.name}")
    return modules


@pytest.mark.parametrize("module_name", public_modules())
def test_every_public_name_is_in_the_api_reference(module_name):
    module = importlib.import_module(module_name)
    public = {
        name for name in getattr(module, "__all__", [])
        if not name.startswith("__")
        and not isinstance(getattr(module, name), types.ModuleType)
        and not name.isupper()  # constants (functional.CELLS) are autodata, not autosummary
    }
    documented = documented_names().get(module_name, set())
    assert public - documented == set(), (
        f"add these to docs/api.rst under `.. currentmodule:: {module_name}`"
    )


@pytest.mark.parametrize("function", [tsrnn.openmp_enabled, tsrnn.max_threads],
                         ids=lambda f: f.__name__)
def test_examples_of_the_compiled_functions_run(function):
    finder = doctest.DocTestFinder()
    [test] = finder.find(function, function.__name__, globs={})
    assert test.examples, "no example in the docstring"
    result = doctest.DocTestRunner().run(test)
    assert result.failed == 0
