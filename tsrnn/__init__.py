"""tsrnn: fast LSTM/GRU models for pandas sensor data, as scikit-learn estimators."""
from . import functional
from ._cells import max_threads, openmp_enabled

__version__ = "0.1.0"
__all__ = ["functional", "max_threads", "openmp_enabled", "__version__"]
