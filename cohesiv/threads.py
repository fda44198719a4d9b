"""How many torch threads to use: a count that does not collapse when the CPU is shared.

PyTorch's CPU kernels run on an OpenMP pool with one thread per core by default. When other jobs
already use some of the cores, those threads are descheduled in turn and every parallel region waits
for the slowest one: on this project's 2-core machine, a training run with 2 threads beside one other
job ran at 1.7 images/s instead of 14.8 (README). :func:`auto_threads` takes the CPUs this process may
run on (``os.sched_getaffinity``, which honours ``taskset`` and container CPU sets) minus the other
jobs' load, rounded, at least 1; :func:`set_threads` applies a ``--threads`` value.

The load is the number of other processes' runnable tasks *now* (:func:`other_runnable`, the median
of a few reads of ``/proc/loadavg`` less this process's own runnable threads, since torch's OpenMP
workers spin for a while after a parallel region and would otherwise count as a busy core), not the
1-minute load average: that average lags by a minute, so a stage
that starts right after another (the demo's training after its pseudo-labelling, ``make real-model``'s
after its data stages, anything after the test suite) saw its own predecessor's load and took one
thread on an idle 2-core machine. The 1-minute average is the fallback where ``/proc`` is missing.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from cohesiv.errors import CohesivError

#: The ``--threads`` value that picks the count from the free CPUs.
AUTO = "auto"


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask; ``os.cpu_count()`` where that is unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def own_runnable() -> int:
    """This process's runnable threads (state R in ``/proc/self/task``; at least 1: the caller).

    The run queue of ``/proc/loadavg`` counts threads, so a process whose OpenMP workers still spin
    after its last parallel region (torch's do, for a while) would count itself as other load.
    """
    n = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        n += stat[stat.rindex(")") + 2 :].startswith("R")  # "pid (name) S ...": the name may hold spaces
    return max(1, n)


def other_runnable(samples: int = 7, interval: float = 0.01, read=None, own=None) -> float | None:
    """Runnable tasks of other processes, now: the median over ``samples`` reads of ``/proc/loadavg``.

    Args:
        samples: reads of the run queue.
        interval: seconds between reads.
        read: returns the text of ``/proc/loadavg`` (tests); default reads the file.
        own: returns this process's runnable threads (tests); default :func:`own_runnable` when
            ``read`` is the file, else 1 (the caller).

    Returns:
        The median of (running tasks - our own), or None where ``/proc/loadavg`` cannot be read.
    """
    import statistics
    import time

    def from_proc() -> str:
        with open("/proc/loadavg") as f:
            return f.read()

    if own is None:
        own = own_runnable if read is None else (lambda: 1)
    read = read or from_proc
    counts = []
    try:
        for i in range(samples):
            if i:
                time.sleep(interval)
            counts.append(max(0, int(read().split()[3].split("/")[0]) - own()))  # "R/T": R includes us
    except (OSError, IndexError, ValueError):
        return None
    return float(statistics.median(counts))


def current_load() -> tuple[float, str]:
    """The other jobs' load and its source: :func:`other_runnable`, else the 1-minute load average."""
    now = other_runnable()
    if now is not None:
        return now, "runnable now"
    try:
        return os.getloadavg()[0], "load average"
    except OSError:  # unavailable
        return 0.0, "load unknown"


def auto_threads(cpus: int | None = None, load: float | None = None) -> int:
    """A thread count for a possibly shared CPU: the CPUs left free by the load, at least 1.

    Args:
        cpus: CPUs available to this process (default :func:`available_cpus`).
        load: the other jobs' run-queue length (default: :func:`current_load`).

    Returns:
        ``max(1, min(cpus, floor(cpus - load + 0.5)))``: all CPUs on an idle machine, one fewer for
        every busy core, and 1 when the machine is full.
    """
    cpus = available_cpus() if cpus is None else cpus
    if load is None:
        load = current_load()[0]
    return max(1, min(cpus, math.floor(cpus - load + 0.5)))


def parse_threads(value: str | int | None) -> int | None:
    """Validate a ``--threads`` value: a positive integer, ``"auto"``, or None (leave torch's default).

    Returns:
        The integer, or None for ``"auto"``/None (resolved by :func:`set_threads`).

    Raises:
        CohesivError: anything else.
    """
    if value is None or (isinstance(value, str) and value.lower() == AUTO):
        return None
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if n < 1:
        raise CohesivError(f"--threads must be a positive integer or {AUTO!r}, got {value!r}")
    return n


def set_threads(value: str | int | None = AUTO) -> tuple[int, str]:
    """Set torch's intra-op thread count from a ``--threads`` value.

    Args:
        value: a positive integer (used as is); ``"auto"`` (the ``OMP_NUM_THREADS`` environment
            variable when set, else :func:`auto_threads`); None (leave torch as it is).

    Returns:
        ``(threads, why)``: the count torch now uses and how it was chosen (for the log).
    """
    import torch

    n = parse_threads(value)
    if n is not None:
        why = "--threads"
    elif value is None:
        return torch.get_num_threads(), "torch default"
    elif os.environ.get("OMP_NUM_THREADS", "").strip().isdigit() and int(os.environ["OMP_NUM_THREADS"]) > 0:
        n, why = int(os.environ["OMP_NUM_THREADS"]), "OMP_NUM_THREADS"
    else:
        cpus = available_cpus()
        load, source = current_load()
        n, why = auto_threads(cpus, load), f"auto: {cpus} CPUs, {source} {load:.1f}"
    torch.set_num_threads(n)
    return torch.get_num_threads(), why
