"""CPU time of tsrnn's fit under two parameter sets, alternated on the same task.

On a shared machine one fit's wall time varies by 2x or more with the load;
the CPU time of the process (``time.process_time``) moves much less. Each
data set of bench_accuracy.py is fitted as that script fits it (through its
tsrnn adapter, seed 0), with parameters A then B, ``--repeats`` times, and
the ratio B / A is printed per pair. Run it with one thread::

    OMP_NUM_THREADS=1 python benchmarks/fit_time_pairs.py --datasets pm25,nile \
        --a '{"average_best_epochs": 1}' --b '{"average_best_epochs": 5}'
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _accuracy_data as data  # noqa: E402
import _accuracy_peers as peers  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", required=True, help="comma-separated names")
    parser.add_argument("--a", default="{}", help="JSON parameters of fit A")
    parser.add_argument("--b", required=True, help="JSON parameters of fit B")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    params = {"A": json.loads(args.a), "B": json.loads(args.b)}
    for name in args.datasets.split(","):
        task = data.load(name)
        adapter = peers.TsrnnPanelAdapter if getattr(task, "id_col", None) else peers.TsrnnAdapter
        times = {"A": [], "B": []}
        for _ in range(args.repeats):
            for which in ("A", "B"):
                fitted = adapter(params[which], 0)
                t0 = time.process_time()
                fitted.fit(task)
                times[which].append(time.process_time() - t0)
                model = fitted.model
                print(f"  {name} {which}: {times[which][-1]:.2f} CPU s, {model.n_iter_} epochs, "
                      f"averaged {getattr(model, '_n_averaged', 1)}", flush=True)
        ratios = ", ".join(f"{b / a:.2f}" for a, b in zip(times["A"], times["B"]))
        print(f"{name}: B / A per pair {ratios}", flush=True)


if __name__ == "__main__":
    main()
