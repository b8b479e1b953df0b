"""tsrnn: fast LSTM/GRU models for pandas sensor data, as scikit-learn estimators."""
from . import functional, metrics
from ._cells import max_threads, openmp_enabled
from ._classifier import RNNClassifier
from ._forecaster import RNNForecaster
from ._regressor import RNNRegressor

__version__ = "0.1.0"
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
