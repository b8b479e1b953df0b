"""Runtime kernel dispatch: each cloned kernel runs the widest code the CPU has.

The wheel is built for baseline x86-64 and carries AVX2 and AVX-512 clones of
the C kernels (gcc's target_clones) plus a 512-bit micro-kernel chosen by a
CPU check. ``_cells.dispatched_isa()`` reads which clone the dynamic loader
bound; these tests hold that against the CPU's flags in /proc/cpuinfo, so a
wheel whose dispatch silently fell back to the baseline (or picked code this
CPU cannot run) fails here. CI runs this file from the installed wheel.
"""
import platform
import re
import sys
from pathlib import Path

import pytest

from tsrnn import _cells

# The features gcc checks for each level (x86-64 psABI micro-architecture
# levels), spelled as Linux's /proc/cpuinfo spells them (lzcnt is "abm").
X86_64_V2 = {"cx16", "lahf_lm", "popcnt", "sse4_1", "sse4_2", "ssse3"}
X86_64_V3 = X86_64_V2 | {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"}
X86_64_V4 = X86_64_V3 | {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}

on_x86_linux = pytest.mark.skipif(
    not (sys.platform == "linux" and platform.machine() == "x86_64"),
    reason="the clones are x86-64 code and the check reads /proc/cpuinfo",
)


def cpu_flags():
    text = Path("/proc/cpuinfo").read_text()
    return set(re.search(r"^flags\s*:(.*)$", text, re.M).group(1).split())


def expected_clone(flags):
    if X86_64_V4 <= flags:
        return "x86-64-v4"
    if X86_64_V3 <= flags:
        return "x86-64-v3"
    return "x86-64"


@on_x86_linux
def test_every_kernel_runs_the_widest_clone_the_cpu_supports(capsys):
    report = _cells.dispatched_isa()
    flags = cpu_flags()
    with capsys.disabled():  # the point of the test is also to say what ran
        print(f"\ndispatched kernels: {sorted(set(report.values()))} "
              f"(cpu: avx2={'avx2' in flags}, avx512f={'avx512f' in flags})")
    # The gate loops, activations, finiteness scan and peephole sums, both dtypes.
    assert len(report) == 18
    cloned = {name: isa for name, isa in report.items() if "packed_gemm" not in name}
    # gemm256 has no x86-64-v4 clone: where AVX-512F exists the 512-bit
    # micro-kernel runs instead (tsrnn_packed_gemm below).
    top = expected_clone(flags)
    expected = {name: ("x86-64-v3" if name.startswith("gemm256") and top == "x86-64-v4" else top)
                for name in cloned}
    assert cloned == expected


@on_x86_linux
def test_micro_kernel_width_follows_avx512f():
    report = _cells.dispatched_isa()
    if "avx512f" in cpu_flags():
        assert report["tsrnn_packed_gemm_f32"] == "avx512f"
        assert _cells.simd_width_bits() == 512
    else:
        assert report["tsrnn_packed_gemm_f32"] == report["gemm256_f32"]
        assert _cells.simd_width_bits() == 256
    assert report["tsrnn_packed_gemm_f64"] == report["tsrnn_packed_gemm_f32"]
