"""Sphinx configuration of tsrnn's documentation.

Build (from the repository root, with the ``docs`` extra installed):

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The documentation follows the code rather than copying it:

- the API reference (``api.rst``) is generated from the numpydoc docstrings
  with autosummary, and numpydoc's validation turns a public object without
  an Examples section into a warning, so into a failed ``-W`` build;
- the gallery runs every script in ``examples/`` with sphinx-gallery, passing
  each script its own ``--quick`` flag (``sphinxext/tsrnn_gallery.py``) so
  the build stays a few minutes on 2 cores; ``TSRNN_DOCS_FULL=1`` runs them
  at full size;
- the CLI page is generated from ``tsrnn.cli.build_parser`` by sphinx-argparse.
"""
import os
import sys
import warnings
from importlib.util import find_spec
from pathlib import Path

import tsrnn

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "sphinxext"))

project = "tsrnn"
author = "the tsrnn developers"
copyright = "the tsrnn developers"
release = tsrnn.__version__  # written once, in tsrnn/__init__.py
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "sphinxarg.ext",
]

exclude_patterns = ["_build", "sphinxext", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.md5", "auto_examples/*.codeobj.json"]
templates_path = ["_templates"]
default_role = "literal"
nitpicky = False

# -- API reference -----------------------------------------------------------
autosummary_generate = True
# The class pages document their methods and properties through autodoc
# (_templates/class.rst, as scikit-learn's does), so numpydoc adds no member
# table of its own. The template leaves out what scikit-learn's bases bring
# (get_params, score of the mixins, the metadata-routing setters): their
# docstrings point into scikit-learn's own documentation.
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
# "Every public function and class has a working example": EX01 (no Examples
# section) fails the -W build. Methods and properties are documented on their
# class's page and need no example of their own.
numpydoc_validation_checks = {"EX01"}
numpydoc_validation_exclude = {
    r"\.RNN(Classifier|Forecaster|Regressor)\.",
    r"\.(InputError|TrainingError|UsageError)\.",
    r"\.__init__$",
    r"\.CELLS$",  # a constant: its docstring lists the names
}

# No intersphinx: the machines that build these docs reach no documentation
# site, and a failed inventory fetch would fail the -W build.

# -- Gallery -----------------------------------------------------------------
_torch = find_spec("torch") is not None
if os.environ.get("TSRNN_DOCS_FULL") != "1":
    # --quick trains for two or three epochs, which never converge; the
    # warning would fill the gallery's output with noise.
    from sklearn.exceptions import ConvergenceWarning

    warnings.filterwarnings("ignore", category=ConvergenceWarning)
sphinx_gallery_conf = {
    "examples_dirs": str(DOCS.parent / "examples"),
    "gallery_dirs": "auto_examples",
    # Every script is executed, except the PyTorch one where torch (an
    # optional extra) is missing: it is then shown without its output.
    "filename_pattern": r"\.py$" if _torch else r"^(?!.*torch_weights\.py$).*\.py$",
    "reset_argv": "tsrnn_gallery.reset_argv",
    "abort_on_example_error": False,
    "only_warn_on_example_error": False,
    "within_subsection_order": "FileNameSortKey",
    "doc_module": ("tsrnn",),
    "backreferences_dir": "api/generated/backreferences",
    "download_all_examples": False,
    "image_scrapers": ("matplotlib",),
    "matplotlib_animations": False,
    "remove_config_comments": True,
    "show_memory": False,
}

# -- HTML --------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"tsrnn {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_prev_next": False,
    "header_links_before_dropdown": 6,
}
html_sidebars = {"index": [], "getting_started": []}
html_static_path = []
html_show_sourcelink = False

os.environ.setdefault("MPLBACKEND", "Agg")  # no window while the gallery runs
