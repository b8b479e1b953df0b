"""A/B of this checkout's tsrnn.functional against another build, call by call.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/ab_pairs.py \
        --baseline /tmp/tsrnn-main --pairs 2000

On a shared machine a median over blocks of runs still moves by 10-20%
between two identical builds. Here the two builds alternate call by call
(which goes first alternates too), and each pair gives one ratio, baseline
time / this time: a load spike hits both calls of a pair alike. The median
and the 10th and 90th percentiles of those ratios are reported per case;
above 1 this build is faster. Cases: inference (``training=False``) and a
training step (forward + backward) of one layer, float32, one thread,
fixed-length unidirectional input (the path every existing caller takes).

The baseline is another checkout built in place (``python setup.py
build_ext --inplace``), imported as the package ``tsrnn_baseline``, as
``bench_cells.py --baseline`` does.
"""
import argparse
import importlib
import os
import sys
import time
import types

import numpy as np
from threadpoolctl import threadpool_limits

CASES = [("lstm", (1, 48, 4, 32)), ("gru", (1, 48, 4, 32)), ("peephole", (1, 48, 4, 32)),
         ("lstm", (1, 168, 8, 64)), ("gru", (64, 48, 4, 32)), ("lstm", (32, 24, 4, 32)),
         ("gru", (64, 64, 8, 64))]


def load(path, name):
    if not os.path.exists(os.path.join(path, "tsrnn", "functional.py")):
        sys.exit(f"{path}: no tsrnn/functional.py there")
    pkg = types.ModuleType(name)
    pkg.__path__ = [os.path.join(os.path.abspath(path), "tsrnn")]
    sys.modules[name] = pkg
    return importlib.import_module(f"{name}.functional")


def call(F, cell, x, params, training):
    if not training:
        return lambda: F.rnn_forward(cell, x, params, training=False)

    def step():
        out, _, cache = F.rnn_forward(cell, x, params)
        F.rnn_backward(np.ones_like(out), cache, input_grad=False)
    return step


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", required=True, metavar="DIR")
    ap.add_argument("--pairs", type=int, default=2000)
    args = ap.parse_args(argv)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    this, base = load(here, "tsrnn_this"), load(args.baseline, "tsrnn_baseline")
    print("| cell | B,T,D,H | mode | baseline / this: median | p10 | p90 | pairs |")
    print("|---|---|---|---|---|---|---|")
    with threadpool_limits(1, user_api="openmp"), threadpool_limits(1, user_api="blas"):
        for cell, (B, T, D, H) in CASES:
            params = this.init_params(cell, D, H, random_state=0)
            x = np.random.default_rng(0).standard_normal((B, T, D), dtype=np.float32)
            for training in (False, True):
                a, b = call(this, cell, x, params, training), call(base, cell, x, params,
                                                                     training)
                n = max(50, args.pairs // (8 if training else 1) // max(1, B * T // 500))
                for f in (a, b, a, b):  # warm-up
                    f()
                ratios = np.empty(n)
                for i in range(n):
                    first, second = (a, b) if i % 2 else (b, a)
                    t0 = time.perf_counter()
                    first()
                    t1 = time.perf_counter()
                    second()
                    t2 = time.perf_counter()
                    t_a, t_b = (t1 - t0, t2 - t1) if i % 2 else (t2 - t1, t1 - t0)
                    ratios[i] = t_b / t_a
                p10, med, p90 = np.percentile(ratios, [10, 50, 90])
                print(f"| {cell} | {B},{T},{D},{H} | {'train' if training else 'infer'} "
                      f"| **{med:.3f}** | {p10:.3f} | {p90:.3f} | {n} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
