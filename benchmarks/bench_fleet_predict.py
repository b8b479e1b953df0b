"""A fleet's predict(): the first call after fit, and the calls after it.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_fleet_predict.py \\
        --sensors 10000 --json benchmarks/results/fleet_predict_calls.json

Fits bench_fleet.py's synthetic fleet with ``max_iter=2`` (what predict
costs does not depend on how long the network trained), then times
``predict()`` for every sensor three times in the same process: the first
call also issues every sensor's tracked forecast; the later ones are what a
service calling predict again pays. Run it at two commits to compare
(benchmarks/README.md, "Patience from one pass over the windows").
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_fleet import _save, two_epoch_model  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sensors", type=int, default=10000)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    model, _ = two_epoch_model(args.sensors)
    calls = []
    for _ in range(3):
        start = time.perf_counter()
        model.predict()
        calls.append(time.perf_counter() - start)
    print(f"{args.sensors} sensors: predict() {', '.join(f'{s:.3f}' for s in calls)} s "
          f"(load {os.getloadavg()[0]:.1f})")
    _save(args, [{"sensors": args.sensors, "predict_s": calls, "load": os.getloadavg()[0]}])


if __name__ == "__main__":
    main()
