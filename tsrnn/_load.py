"""The thread count of a kernel call on a shared machine.

Why. A kernel call that runs on two threads ends each of its parallel regions
at a barrier that needs both threads to have run. When another process keeps
one of two cores busy, one of our threads is often waiting for the scheduler
at that barrier, for a time slice of milliseconds, and a training step of a
millisecond took ten (measured on this 2-core machine: LSTM forward + backward
at batch 64, 24 steps, H = 32: 1.0 ms on one thread, 9.3 ms on two, with other
processes at a load average of 12). One thread never waits for another.
Results do not depend on the thread count (the kernels' chunks are fixed by
the shapes), so choosing it here only changes the speed.

But more threads also mean a larger share of an oversubscribed machine: at a
load average of 15 on the 2 cores, a fit on two threads took half the time of
one on one thread (bench_fit.py --compare-threads), while with a single other
busy process two threads lose (issue 21: 19.7 s against 10.1 s). Which count
wins depends on the load and on the size of the call, so ``choose`` measures
it: for calls of about the same work (a power-of-two bucket of multiply-adds)
it keeps the median of the last few times per multiply-add on one thread and
on the OpenMP maximum, runs the faster, and retries the slower whenever its last
measurement is older than ``_RETRY`` seconds (and than 20 of its calls), so a
change of load is noticed within a second and a retry costs at most a few
percent. The free cores (below) give the first guess: the OpenMP maximum
when the other processes leave that many cores free, else one thread.

Free cores. Every ``_WINDOW`` seconds at most (between kernel calls; never in a
thread of the kernels), read the busy time of the CPUs this process may run on
from ``/proc/stat`` and this process's own CPU time from ``os.times()``: what
the CPUs were busy with beyond our own use, divided by the wall time, is how
many cores the others held. Our own threads, even spinning at a barrier, are
our CPU time, so they never count as another process. The first call, with no
window yet, counts the other runnable tasks in ``/proc/loadavg`` instead.
Where ``/proc`` is missing (not Linux) every core counts as free.

Not for the user to call. ``TSRNN_LOAD_AWARE=0`` in the environment (read at
import) turns it off: then OMP_NUM_THREADS and threadpoolctl alone decide.
"""
import os
import time

# Shortest window between two samples (seconds): long enough that the 100 Hz
# tick counts of /proc/stat resolve a tenth of a core, short enough that a fit
# reacts to a process that starts or stops within a fraction of a second.
_WINDOW = 0.25

# Run n threads only when the others leave at least n - _SLACK cores free:
# a barrier waits as soon as one thread is descheduled, so half a busy core is
# already too much for a second thread.
_SLACK = 0.3

ENABLED = os.environ.get("TSRNN_LOAD_AWARE", "1") not in ("0", "")


def _cpus():
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


class _State:
    __slots__ = ("cpus", "hz", "busy", "own", "wall", "free")

    def __init__(self):
        self.cpus = _cpus()
        try:
            self.hz = os.sysconf("SC_CLK_TCK")
        except (AttributeError, ValueError, OSError):
            self.hz = 100
        self.busy = self.own = self.wall = None
        self.free = float(len(self.cpus))


_state = None


def _busy_seconds(cpus, hz):
    """Seconds the CPUs in ``cpus`` have spent on anything but idle and iowait."""
    wanted = {f"cpu{c}".encode() for c in cpus}
    total = 0
    with open("/proc/stat", "rb") as f:
        for line in f:
            if not line.startswith(b"cpu"):
                break
            parts = line.split()
            if parts[0] in wanted:
                # user nice system idle iowait irq softirq steal (guest is in user)
                v = [int(p) for p in parts[1:9]]
                total += v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
    return total / hz


def _own_seconds():
    t = os.times()
    return t.user + t.system


def _others_running_now():
    """Runnable tasks that are not this thread, from /proc/loadavg (first call)."""
    with open("/proc/loadavg", "rb") as f:
        running = int(f.read().split()[3].split(b"/")[0])
    return max(0, running - 1)


def free_cores():
    """Cores of this process's CPU set that other processes left free (a float).

    Re-measured at most every ``_WINDOW`` seconds; in between, the last value.
    """
    global _state
    now = time.monotonic()
    st = _state
    if st is None:
        st = _state = _State()
        try:
            st.busy, st.own, st.wall = _busy_seconds(st.cpus, st.hz), _own_seconds(), now
            st.free = max(0.0, len(st.cpus) - _others_running_now())
        except (OSError, ValueError, IndexError):
            st.busy = None  # no /proc: every core counts as free
        return st.free
    if st.busy is None or now - st.wall < _WINDOW:
        return st.free
    try:
        busy, own = _busy_seconds(st.cpus, st.hz), _own_seconds()
    except (OSError, ValueError, IndexError):
        return st.free
    others = max(0.0, (busy - st.busy) - (own - st.own)) / (now - st.wall)
    st.busy, st.own, st.wall = busy, own, now
    st.free = max(0.0, len(st.cpus) - others)
    return st.free


def thread_cap(n_threads):
    """``n_threads``, or fewer when other processes hold cores (at least 1)."""
    if n_threads <= 1 or not ENABLED:
        return n_threads
    return max(1, min(n_threads, int(free_cores() + _SLACK)))


# Retry the slower thread count after this many seconds (see the docstring).
_RETRY = 0.5
# Measurements kept per thread count; their median is its cost. A median, not
# a mean: on a loaded machine one call in a few is descheduled and takes
# several times as long, and one such outlier must not flip the choice.
_KEEP = 5


class _Arm:
    """Recent seconds per unit of work of one thread count, and their median."""

    __slots__ = ("costs", "cost", "when", "took")

    def __init__(self):
        self.costs, self.cost, self.when, self.took = [], None, -1e300, 0.0


# (work bucket, n_max) -> {1: _Arm, n_max: _Arm}
_arms = {}


def choose(work, n_max):
    """The thread count for a call of ``work`` multiply-adds: 1 or ``n_max``.

    The one measured faster for calls of this size, the other one when its
    measurement is stale, and the free-core guess before any measurement.
    ``record`` must follow the call with the time it took.
    """
    if n_max <= 1 or not ENABLED:
        return n_max
    arms = _arms.get((work.bit_length(), n_max))
    if arms is None:
        # The two candidates only, so that ``record`` keeps what this call took.
        return n_max if thread_cap(n_max) == n_max else 1
    one, many = arms[1], arms[n_max]
    if one.cost is None or many.cost is None:
        return 1 if one.cost is None else n_max
    best, other, n_other = (one, many, n_max) if one.cost <= many.cost else (many, one, 1)
    if time.monotonic() - other.when > max(_RETRY, 20 * other.took):
        return n_other
    return 1 if best is one else n_max


def record(work, n_max, n_threads, seconds, weight=1.0):
    """Report that a call of ``work`` multiply-adds took ``seconds`` on
    ``n_threads`` (``weight`` scales the work: a backward pass does about twice
    a forward pass's arithmetic)."""
    if n_max <= 1 or not ENABLED or n_threads not in (1, n_max):
        return
    key = (work.bit_length(), n_max)
    arms = _arms.get(key)
    if arms is None:
        arms = _arms[key] = {1: _Arm(), n_max: _Arm()}
    arm = arms[n_threads]
    arm.costs.append(seconds / (work * weight))
    if len(arm.costs) > _KEEP:
        del arm.costs[0]
    ordered = sorted(arm.costs)
    arm.cost = ordered[len(ordered) // 2]
    arm.when, arm.took = time.monotonic(), seconds
