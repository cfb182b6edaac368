"""The cores this process may use (CPU affinity, a cgroup CPU quota), from which the intra-op threads and the
data-loader workers are sized.

OpenMP's spin-wait is left at its default (fast on a quiet machine); what keeps a busy machine near the fair
share is util/governor.py, which lowers the intra-op thread count while other processes compete for the cores
(docs/performance.md, "A busy machine"). Nothing here imports torch at module level.
"""
from __future__ import annotations

import math
import os


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
    import torch  # here, not at the top: importing this module stays cheap

    wanted = min(torch.get_num_threads(), available_cores())
    torch.set_num_threads(wanted)
    return wanted
