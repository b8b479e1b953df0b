"""Helpers shared by the benchmark scripts: timing, the sgemm ceiling, machine info.

Nothing here imports torch or tsrnn, so the helpers work on any machine that
has numpy and threadpoolctl.
"""
import contextlib
import gc
import math
import os
import platform
import statistics
import sys
import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

# Variables this workplace sets that force OpenBLAS onto an older, slower code
# path. Benchmarks are meant to run with them unset (see README); we only warn.
SLOWING_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def time_call(fn, setup=None, warmup=3, repeat=10, min_time=0.3, max_repeat=200):
    """Median wall time of ``fn()`` in seconds, and the number of timed runs.

    ``setup()`` runs before every call, outside the timed region (used to clear
    torch's accumulated .grad so that both contenders allocate fresh gradients).
    At least ``repeat`` runs are timed; fast calls get more runs, up to
    ``max_repeat``, so that roughly ``min_time`` seconds are spent timing and
    the median of a 0.2 ms call is not decided by a handful of samples.
    The garbage collector is paused while timing, as timeit does, so that a
    collection triggered by one contender's garbage is not billed to the other.
    """
    for _ in range(warmup):
        if setup is not None:
            setup()
        fn()
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        times = []
        n = repeat
        i = 0
        while i < n:
            if setup is not None:
                setup()
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
            i += 1
            if i == repeat:
                # Decide the final count from what the first runs cost.
                per_call = statistics.median(times)
                want = math.ceil(min_time / max(per_call, 1e-9))
                n = min(max(repeat, want), max(repeat, max_repeat))
    finally:
        if was_enabled:
            gc.enable()
    return statistics.median(times), len(times)


class Contender:
    """One thing to time: ``fn`` run under ``context()`` with ``setup`` untimed.

    ``context`` is a zero-argument callable returning a context manager (the
    thread limits); it is entered once per block of runs, not per run.
    """

    def __init__(self, fn, setup=None, context=None):
        self.fn = fn
        self.setup = setup
        self.context = context or contextlib.nullcontext

    def run_block(self, n, warm=1):
        times = []
        with self.context():
            for i in range(warm + n):
                if self.setup is not None:
                    self.setup()
                t0 = time.perf_counter()
                self.fn()
                dt = time.perf_counter() - t0
                if i >= warm:
                    times.append(dt)
        return times


def time_interleaved(contenders, warmup=3, repeat=10, min_time=0.3, max_repeat=200, rounds=3):
    """Median seconds and run count per contender, timed in alternating blocks.

    The machine may be shared, so load comes and goes. Timing contender A for
    a while and then B would bill a burst of outside load to one of them;
    alternating blocks (A, B, A, B, ...) spreads it over both, which keeps the
    ratio honest even when absolute times wobble. Blocks rather than single
    alternating calls, because OpenMP and OpenBLAS worker threads keep spinning
    for a moment after a parallel region and would steal the cores from the
    other runtime; the first call of each block is untimed for the same reason.

    Each contender gets at least ``repeat`` timed runs; fast ones get more, up
    to ``max_repeat``, aiming at ``min_time`` seconds of timed runs, so the
    median of a sub-millisecond call rests on enough samples. The garbage
    collector is paused while timing, as timeit does.
    """
    names = list(contenders)
    counts = {}
    for name in names:
        c = contenders[name]
        warm = c.run_block(1, warm=max(warmup - 1, 0))
        want = math.ceil(min_time / max(warm[0], 1e-9))
        counts[name] = min(max(repeat, want), max(repeat, max_repeat))
    rounds = max(1, min(rounds, min(counts.values())))
    samples = {name: [] for name in names}
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(rounds):
            for name in names:
                n = counts[name] // rounds + (1 if r < counts[name] % rounds else 0)
                samples[name] += contenders[name].run_block(n)
    finally:
        if was_enabled:
            gc.enable()
    return {name: (statistics.median(v), len(v)) for name, v in samples.items()}


def sgemm_ceiling(threads, n=2048, repeat=7, lib="numpy"):
    """GFLOP/s of a large float32 matmul on ``threads`` BLAS threads.

    This is the practical float32 peak of the machine with that BLAS; an RNN
    kernel made of smaller GEMMs plus elementwise work cannot beat it, so the
    kernels are reported as a share of it. ``lib="numpy"`` is the headline
    ceiling; ``lib="scipy"`` times scipy's own OpenBLAS copy, the one tsrnn's
    kernels call through scipy.linalg.cython_blas, in case the two differ.
    """
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    if lib == "numpy":
        c = np.empty((n, n), dtype=np.float32)

        def call():
            np.matmul(a, b, out=c)
    else:
        from scipy.linalg import blas

        # Fortran order so that f2py passes the arrays without copying them.
        a, b = np.asfortranarray(a), np.asfortranarray(b)

        def call():
            blas.sgemm(1.0, a, b)
    with threadpool_limits(threads, user_api="blas"):
        t, _ = time_call(call, warmup=2, repeat=repeat, min_time=0.0)
    return 2.0 * n ** 3 / t / 1e9


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count()


def threadpool_lines():
    """One line per native thread pool loaded in this process.

    Call it after every library of interest is imported: threadpoolctl only
    sees shared libraries that are already loaded.
    """
    lines = []
    for info in threadpool_info():
        parts = [
            f"{info.get('user_api')}: {info.get('internal_api')}",
            f"version {info.get('version')}",
        ]
        if info.get("architecture"):
            parts.append(f"kernel {info['architecture']}")
        if info.get("threading_layer"):
            parts.append(f"threading {info['threading_layer']}")
        parts.append(f"num_threads {info.get('num_threads')}")
        parts.append(os.path.basename(info.get("filepath", "")))
        lines.append(", ".join(parts))
    return lines


def cpu_busy_percent(seconds=1.0):
    """Share of all CPU time spent busy over ``seconds``, from /proc/stat.

    Sampled while this process sleeps, so anything above a few percent is
    someone else's load. The load average lags by a minute and cannot say
    that; None where /proc/stat does not exist.
    """
    def sample():
        with open("/proc/stat") as f:
            vals = [int(v) for v in f.readline().split()[1:]]
        idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
        return sum(vals[:8]) - idle, idle

    try:
        b1, i1 = sample()
        time.sleep(seconds)
        b2, i2 = sample()
    except (OSError, ValueError, IndexError):
        return None
    total = (b2 - b1) + (i2 - i1)
    return 100.0 * (b2 - b1) / total if total else None


def slowing_env_warning():
    set_vars = [f"{k}={os.environ[k]}" for k in SLOWING_ENV if k in os.environ]
    if not set_vars:
        return None
    return (
        "WARNING: " + " ".join(set_vars) + " is set; OpenBLAS runs an older kernel "
        "and every BLAS number below is lower than it should be. Rerun with "
        "`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python ...`."
    )


class Report:
    """Print lines as they come and keep them for ``--markdown``."""

    def __init__(self):
        self.lines = []

    def __call__(self, line=""):
        print(line, flush=True)
        self.lines.append(line)

    def save(self, path):
        """Write every line so far to ``path`` (the --markdown file)."""
        with open(path, "w") as f:
            f.write("\n".join(self.lines) + "\n")
        print(f"wrote {path}", file=sys.stderr)


def print_slowing_env_warning():
    """Print and return slowing_env_warning() (None when OpenBLAS runs at speed)."""
    warn = slowing_env_warning()
    if warn:
        print(warn, flush=True)
    return warn


# ---------------------------------------------------------------- memory

def _status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def rss():
    """Resident set size of this process, bytes."""
    try:
        return _status_kb("VmRSS") * 1024
    except (OSError, KeyError):  # not Linux: psutil if present
        import psutil
        return psutil.Process().memory_info().rss


def reset_peak_rss():
    """Reset the peak-RSS mark to the current RSS; False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss():
    """Peak RSS of this process since start or reset_peak_rss(), bytes."""
    try:
        return _status_kb("VmHWM") * 1024
    except (OSError, KeyError):
        import resource
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return kb * (1 if sys.platform == "darwin" else 1024)  # macOS reports bytes


def start_busy(n, seconds=3600):
    """Start n processes that spin on one core each (a shared machine, issue 21).

    ``python -c 'while True: pass'`` under ``timeout``, so a benchmark that dies
    leaves nothing spinning for long; stop them with ``stop_busy``.
    """
    import subprocess

    cmd = ["timeout", str(int(seconds)), sys.executable, "-c", "while True: pass"]
    return [subprocess.Popen(cmd, stdin=subprocess.DEVNULL) for _ in range(n)]


def stop_busy(procs):
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait()
