"""tsrnn: fast LSTM/GRU models for pandas sensor data, as scikit-learn estimators."""
import os as _os

# The one place the version is written: pyproject.toml reads it from here
# (setuptools' ``attr:``, which parses this file without importing it, so no
# compiled kernels are needed to build), and ``tsrnn --version`` prints it.
__version__ = "0.1.0"


def _load_kernels_with_short_spin():
    """Import the kernels with libgomp's idle threads spinning briefly.

    libgomp lets an idle worker spin for about 300,000 iterations before it
    sleeps. On a machine whose other cores are busy, that spinning worker holds
    a core that the thread with work needs, and every parallel region waits a
    scheduler time slice: 2 threads ran 20-60x slower than 1 on a loaded
    2-core machine. A spin of 10,000 iterations still bridges the short gaps
    between the regions of one call. libgomp reads GOMP_SPINCOUNT once, when it
    is loaded, which for the system libgomp is when tsrnn._cells is imported;
    the variable is removed again right after, so child processes and other
    OpenMP runtimes loaded later never see it. A user's own OMP_WAIT_POLICY or
    GOMP_SPINCOUNT wins.
    """
    if "OMP_WAIT_POLICY" in _os.environ or "GOMP_SPINCOUNT" in _os.environ:
        from . import _cells  # noqa: F401
        return
    _os.environ["GOMP_SPINCOUNT"] = "10000"
    try:
        from . import _cells  # noqa: F401
    finally:
        del _os.environ["GOMP_SPINCOUNT"]


_load_kernels_with_short_spin()

from . import functional, metrics  # noqa: E402
from ._cells import max_threads, openmp_enabled  # noqa: E402
from ._classifier import RNNClassifier  # noqa: E402
from ._forecaster import RNNForecaster  # noqa: E402
from ._regressor import RNNRegressor  # noqa: E402

__all__ = [
    "RNNClassifier",
    "RNNForecaster",
    "RNNRegressor",
    "functional",
    "metrics",
    "max_threads",
    "openmp_enabled",
    "__version__",
]
