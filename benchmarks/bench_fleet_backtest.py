"""A fleet's backtest(): bench_fleet.py's backtest of every sensor's last week, repeated.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_fleet_backtest.py \\
        --sensors 10000 --repeat 3 --json benchmarks/results/fleet_backtest_calls.json
    python benchmarks/bench_fleet_backtest.py --sensors 300 --save a.pkl      # at one commit
    python benchmarks/bench_fleet_backtest.py --sensors 300 --compare a.pkl   # at another

Fits bench_fleet.py's synthetic fleet with ``max_iter=2`` (what the backtest
costs does not depend on the weights), then times ``backtest(week,
stride=--stride)`` ``--repeat`` times in the same process, with the load
average around each call. ``--save`` pickles the last result's frames,
``--compare`` asserts that they equal a saved result's bit for bit
(``assert_frame_equal(check_exact=True)``). Run it at two commits to compare
(benchmarks/README.md, "A faster fleet backtest").
"""
import argparse
import os
import pickle
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_fleet import _save, two_epoch_model  # noqa: E402


def main():
    import pandas as pd

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sensors", type=int, default=10000)
    ap.add_argument("--stride", type=int, default=24)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--save", help="pickle the result's frames here")
    ap.add_argument("--compare", help="assert the result equals this pickle's, bit for bit")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    model, week = two_epoch_model(args.sensors)
    calls = []
    for _ in range(args.repeat):
        load = os.getloadavg()[0]
        start = time.perf_counter()
        bt = model.backtest(week, stride=args.stride)
        calls.append({"backtest_s": time.perf_counter() - start,
                      "load": [load, os.getloadavg()[0]]})
        print(f"{args.sensors} sensors: backtest {calls[-1]['backtest_s']:.2f} s "
              f"(load {load:.1f}-{os.getloadavg()[0]:.1f})", flush=True)
    frames = {"forecasts": bt.forecasts, "metrics": bt.metrics, "intervals": bt.intervals}
    if args.save:
        with open(args.save, "wb") as f:
            pickle.dump(frames, f)
    if args.compare:
        with open(args.compare, "rb") as f:
            saved = pickle.load(f)
        for name, frame in frames.items():
            pd.testing.assert_frame_equal(saved[name], frame, check_exact=True)
        print(f"bitwise equal to {args.compare}: forecasts {frames['forecasts'].shape}")
    _save(args, [{"sensors": args.sensors, "stride": args.stride, "calls": calls}])


if __name__ == "__main__":
    main()
