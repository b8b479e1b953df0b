"""Accuracy of the kernels' vectorised float32 sigmoid and tanh.

The design comment in tsrnn/_cells.pyx states their error; this file is where
that statement is measured. float64 uses libm and is the reference.
"""
import numpy as np
import pytest

from tsrnn import _cells


def _reference(x):
    x = x.astype(np.float64)
    return 1.0 / (1.0 + np.exp(-x)), np.tanh(x)


def test_float32_activations_error_is_a_few_ulps():
    # A dense grid over the range where the functions are not yet saturated,
    # plus far tails where they must clamp to 0/1 and -1/1 without overflow.
    x = np.concatenate([np.linspace(-20, 20, 2_000_001), np.linspace(-100, 100, 20_001)])
    x = x.astype(np.float32)
    sig, th = _cells._activations(x)
    ref_sig, ref_th = _reference(x)
    assert np.abs(sig - ref_sig).max() < 2e-7
    assert np.abs(th - ref_th).max() < 3e-7
    # Relative accuracy near 0 matters for tanh (expm1 form, no cancellation).
    small = np.abs(x) < 1e-2
    assert (np.abs(th[small] - ref_th[small]) <= 4e-7 * np.abs(ref_th[small]) + 1e-12).all()


def test_float32_activations_keep_nan_and_saturate_at_infinity():
    x = np.float32([np.nan, np.inf, -np.inf, 0.0])
    sig, th = _cells._activations(x)
    assert np.isnan(sig[0]) and np.isnan(th[0])
    assert sig[1] == 1.0 and sig[2] < 1e-37 and sig[3] == 0.5
    assert th[1] == 1.0 and th[2] == -1.0 and th[3] == 0.0


@pytest.mark.parametrize("n", [1, 7, 8, 9, 33])
def test_vector_and_remainder_lanes_agree(n):
    # The clone's vector loop and its scalar tail must compute the same thing.
    x = np.linspace(-3, 3, n).astype(np.float32)
    sig, th = _cells._activations(x)
    for i in range(n):
        s1, t1 = _cells._activations(x[i:i + 1])
        assert sig[i] == s1[0] and th[i] == t1[0]


def test_float64_activations_are_libm():
    x = np.linspace(-30, 30, 10_001)
    sig, th = _cells._activations(x)
    ref_sig, ref_th = _reference(x)
    np.testing.assert_allclose(sig, ref_sig, rtol=1e-15, atol=0)
    np.testing.assert_allclose(th, ref_th, rtol=1e-15, atol=0)
