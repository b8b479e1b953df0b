"""Build the Cython kernels, with OpenMP when the compiler supports it.

OpenMP support is detected by compiling and linking a tiny test program, because
flag lists alone cannot tell whether libgomp is installed. Without OpenMP the
kernels build serially (prange degrades to range) and a warning says so.
TSRNN_NO_OPENMP=1 forces the serial build. We never add -ffast-math (it breaks
NaN checks) or -march=native (wheels must run on any x86-64); the C kernels in
tsrnn/_kernels.c get AVX-512 and AVX2 clones through gcc's target_clones
instead (see the comment at its top). -fno-trapping-math only tells gcc that
nobody reads the FP exception flags, which lets it turn the clamps in those
loops into vector selects; it changes no result.

The extension is two translation units: Cython's tsrnn/_cells.c (generated
from _cells.pyx) and tsrnn/_kernels.c, both compiled with the same flags.
MANIFEST.in puts the .pyx, .c and .h sources in the sdist.
"""
import os
import subprocess
import sys
import tempfile
import textwrap
import warnings

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

OPENMP_PROBE = textwrap.dedent(
    """
    #include <omp.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        return n > 0 ? 0 : 1;
    }
    """
)


def openmp_flags():
    if os.environ.get("TSRNN_NO_OPENMP", "") not in ("", "0"):
        print("tsrnn: TSRNN_NO_OPENMP is set, building the serial kernels")
        return [], []
    cc = os.environ.get("CC", "cc")
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(OPENMP_PROBE)
        cmd = [cc, "-fopenmp", src, "-o", os.path.join(tmp, "probe")]
        try:
            ok = subprocess.run(cmd, capture_output=True).returncode == 0
        except OSError:
            ok = False
    if not ok:
        warnings.warn(
            "tsrnn: the C compiler cannot build OpenMP programs; the kernels will "
            "run on one thread. Install libgomp (gcc) to enable batch parallelism."
        )
        return [], []
    return ["-fopenmp"], ["-fopenmp"]


compile_omp, link_omp = openmp_flags()

extensions = [
    Extension(
        "tsrnn._cells",
        ["tsrnn/_cells.pyx", "tsrnn/_kernels.c"],
        depends=["tsrnn/_kernels.h"],
        include_dirs=[np.get_include()],
        extra_compile_args=["-O3", "-fno-trapping-math"] + compile_omp,
        extra_link_args=link_omp,
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")],
    )
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    ),
)
