"""CPU threads that degrade gracefully when other processes compete for the cores.

* OpenMP waiting: torch's intra-op threads (GNU OpenMP on Linux) spin for a long while before a thread that
  waits for the others goes to sleep. On a quiet machine that saves a wake-up; when other processes compete,
  the thread being waited for is often descheduled and the spinning burns the share of the CPU this process
  gets. ``configure_openmp`` shortens the spin (``GOMP_SPINCOUNT``) unless the environment already sets it: the
  same speed on a quiet machine, near the fair share on a busy one (docs/performance.md, "A busy machine").
  It must run before torch is imported (OpenMP reads its settings when torch loads it), so the entry scripts
  call it first.
* ``available_cores``: the cores this process may use (CPU affinity, a cgroup CPU quota), from which the
  intra-op threads and the data-loader workers are sized.
"""
from __future__ import annotations

import math
import os

OPENMP_SPIN = "1000"  # spins before an idle OpenMP thread sleeps (GNU OpenMP's default: 300,000)


def configure_openmp() -> None:
    """Shorten OpenMP's spin-wait (an explicit ``GOMP_SPINCOUNT`` or ``OMP_WAIT_POLICY`` in the environment wins)."""
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", OPENMP_SPIN)


def cgroup_cpu_limit(path: str = "/sys/fs/cgroup/cpu.max") -> float:
    """The cgroup v2 CPU quota in cores (``inf`` when there is none or it cannot be read)."""
    try:
        with open(path, encoding="ascii") as handle:
            quota, period = handle.read().split()[:2]
    except (OSError, ValueError):
        return math.inf
    return math.inf if quota == "max" else max(int(quota) / int(period), 1.0)


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup CPU quota (at least 1)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = cgroup_cpu_limit()
    return max(1, min(cores, int(quota)) if math.isfinite(quota) else cores)


def limit_torch_threads() -> int:
    """Use at most ``available_cores()`` intra-op threads (torch's default counts every core of the machine)."""
    import torch  # here, not at the top: this module is imported before torch (configure_openmp)

    wanted = min(torch.get_num_threads(), available_cores())
    torch.set_num_threads(wanted)
    return wanted
