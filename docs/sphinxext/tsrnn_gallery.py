"""What sphinx-gallery passes to each example script as its command line.

Every script in ``examples/`` has its own ``--quick`` flag (tiny data, a few
epochs) that the test suite also uses; the docs build passes it so the whole
gallery runs in a few minutes on 2 cores. ``TSRNN_DOCS_FULL=1`` builds the
gallery at full size instead. A script that draws a figure only when asked
(``--plot PATH``) is asked, so the gallery shows the figure.

Referenced from ``conf.py`` by name (``"tsrnn_gallery.reset_argv"``), which
keeps Sphinx's configuration picklable.
"""
import os
import tempfile
from pathlib import Path

_PLOT_DIR = tempfile.mkdtemp(prefix="tsrnn-gallery-")
_DRAWS_ON_REQUEST = {"forecast_weather.py", "importance_weather.py"}


def reset_argv(gallery_conf, script_vars):
    name = Path(script_vars["src_file"]).name
    argv = [] if os.environ.get("TSRNN_DOCS_FULL") == "1" else ["--quick"]
    if name in _DRAWS_ON_REQUEST:
        argv += ["--plot", os.path.join(_PLOT_DIR, name.replace(".py", ".png"))]
    return argv
