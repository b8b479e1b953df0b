"""Property tests (hypothesis) over every public entry point."""
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from tsrnn import RNNRegressor


@pytest.mark.parametrize("scale", [1e300, 1e38, -3e38])
def test_targets_beyond_float32_report_divergence_not_dout(scale):
    # Found by fuzzing: y = 1e300 became inf in float32 and the inf reached
    # rnn_backward, which complained about "dout", an argument users never pass.
    X = np.random.RandomState(0).randn(20, 2)
    reg = RNNRegressor(hidden_layer_sizes=(3,), window=4, max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.raises(ValueError, match="Training diverged.*Scale X and y"):
            reg.fit(X, X[:, 0] * scale)
    assert not hasattr(reg, "n_features_in_")
