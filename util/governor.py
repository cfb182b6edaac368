"""Intra-op threads decided while the run goes: all of them while the process gets its cores, fewer while other
processes compete for them, all again once the machine is quiet.

Why: torch's intra-op threads (GNU OpenMP on Linux) spin-wait for each other at every parallel region. On a quiet
machine the spinning saves wake-ups (the fastest setting); when other processes compete, the thread being waited
for is often descheduled and the spinning burns the CPU share this process gets (10x slowdowns on 2 cores with 3
busy processes). One thread has no barriers, so no spinning; fewer threads than free cores have few stragglers.

How: the training loop (and test.py's loop) calls ``tick()`` once per iteration. Every window (at least
``WINDOW_S`` seconds and ``WINDOW_TICKS`` iterations) the governor reads a few /proc files (``read_figures``):
how long this process's threads waited on a run queue against how long they ran (/proc/self/task/*/schedstat),
and how busy the cores it may use were (/proc/stat) against the CPU time of this process and its data-loader
workers. ``judge`` turns one window into a wish; two windows in a row with the same wish change the count
(``torch.set_num_threads``), with one log line saying why. Off (``IMG2IMG_THREAD_GOVERNOR=0``), where the
figures cannot be read (non-Linux), on a GPU run, under ``--deterministic`` (the thread count can change float
summation order) and when ``OMP_NUM_THREADS`` fixes the count: the start-up count then stays.
"""
from __future__ import annotations

import math
import os
import time
from time import monotonic
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

from util.logger import get_logger
from util.threads import available_cores, cgroup_cpu_limit

log = get_logger(__name__)

ENV_VAR = "IMG2IMG_THREAD_GOVERNOR"  # "0", "off", "no", "false": keep the start-up thread count
WINDOW_S = 2.0  # seconds per window: long enough to average a few scheduler time slices and iterations
WINDOW_TICKS = 2  # iterations per window at least: whole iterations (data wait, forward, backward) averaged
BUSY_WAIT = 0.15  # run-queue wait share of our threads at or above which they are kept off the cores
BUSY_OTHERS = 0.5  # cores used by other processes for the waiting to be their doing (not our data workers')
QUIET_SPARE = 0.5  # idle cores per thread to add back: at least half of them could run at once
WINDOWS_TO_ACT = 2  # windows in a row with the same wish before the count changes (one window may be a burst)
MAX_WINDOWS_TO_RISE = 16  # a rise undone at once doubles the quiet windows the next rise needs, up to this
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class CpuFigures:
    """Cumulative figures at one moment, in seconds (the differences of two make a window)."""

    wall: float  # a monotonic clock
    tasks: Dict[int, Tuple[float, float]]  # this process's threads: tid -> (ran on a CPU, waited on a run queue)
    ours: float  # CPU time of this process and its child processes (the data-loader workers)
    busy: float  # non-idle time of the cores this process may use, every process's (steal included)
    cores: int  # how many cores ``busy`` covers


@dataclass(frozen=True)
class Window:
    """What one window measured."""

    seconds: float
    wait_share: float  # of the time our threads wanted a CPU, the part they waited for one
    others: float  # cores used by other processes on average
    spare: float  # idle cores on average (within a cgroup CPU quota)


def _read(path: str) -> str:
    with open(path, encoding="ascii") as handle:
        return handle.read()


def _stat_cpu_seconds(text: str) -> float:
    """utime + stime from the text of /proc/<pid>/stat (the name in parentheses may hold spaces)."""
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def read_figures(proc: str = "/proc") -> Optional[CpuFigures]:
    """This process's CPU figures from ``proc`` (Linux), or None where they cannot be read."""
    try:
        tasks: Dict[int, Tuple[float, float]] = {}
        for entry in os.scandir(f"{proc}/self/task"):
            try:
                ran, waited = _read(f"{entry.path}/schedstat").split()[:2]
            except (OSError, ValueError):
                continue  # a thread that ended in between
            tasks[int(entry.name)] = (int(ran) / 1e9, int(waited) / 1e9)
        ours = _stat_cpu_seconds(_read(f"{proc}/self/stat"))
        for entry in os.scandir(f"{proc}/self/task"):
            try:
                children = _read(f"{entry.path}/children").split()
            except OSError:
                continue
            for pid in children:
                try:
                    ours += _stat_cpu_seconds(_read(f"{proc}/{pid}/stat"))
                except (OSError, ValueError, IndexError):
                    continue  # a worker that ended in between
        allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        busy, cores = 0.0, 0
        for line in _read(f"{proc}/stat").splitlines():
            name, *values = line.split()
            if not name.startswith("cpu") or name == "cpu":
                continue
            if allowed is not None and int(name[3:]) not in allowed:
                continue
            # user nice system idle iowait irq softirq steal: idle and iowait are free time
            ticks = [int(v) for v in values[:8]]
            busy += (sum(ticks) - ticks[3] - ticks[4]) / _CLK_TCK
            cores += 1
    except (OSError, ValueError, IndexError):
        return None
    if not tasks or not cores:
        return None
    return CpuFigures(time.monotonic(), tasks, ours, busy, cores)


def measure(before: CpuFigures, after: CpuFigures, quota: float = math.inf) -> Window:
    """The window between two readings (threads present in both count)."""
    seconds = max(after.wall - before.wall, 1e-9)
    ran = waited = 0.0
    for tid, (ran_after, waited_after) in after.tasks.items():
        if tid in before.tasks:
            ran += ran_after - before.tasks[tid][0]
            waited += waited_after - before.tasks[tid][1]
    ours = (after.ours - before.ours) / seconds
    busy = (after.busy - before.busy) / seconds
    spare = min(after.cores - busy, quota - ours)
    return Window(seconds, waited / (ran + waited) if ran + waited > 0 else 0.0, max(busy - ours, 0.0),
                  max(spare, 0.0))


def judge(window: Window, threads: int, full: int, cores: float) -> int:
    """The thread count one window asks for: fewer when others compete, ``full`` when quiet, else unchanged."""
    if window.wait_share >= BUSY_WAIT and window.others >= BUSY_OTHERS:
        # the cores others leave us; one thread at least (no barriers at all)
        return max(1, min(threads, int(cores - window.others + 0.5)))
    if threads < full and window.spare >= QUIET_SPARE * (full - threads):
        return full
    return threads


def _default_set_threads(n: int) -> None:
    import torch  # here: this module loads before torch in the entry scripts' import order

    torch.set_num_threads(n)


class ThreadGovernor:
    """Ticked once per iteration; changes the intra-op thread count between ``1`` and ``full`` (module doc)."""

    def __init__(self, full: int, source: Optional[Callable[[], Optional[CpuFigures]]] = None,
                 set_threads: Callable[[int], None] = _default_set_threads,
                 clock: Optional[Callable[[], float]] = None, cores: Optional[float] = None,
                 quota: Optional[float] = None, off_reason: str = "") -> None:
        """``full``: the start-up count; ``off_reason``: why the governor stays off ('' = on); ``source`` and
        ``clock`` default to ``read_figures`` and ``monotonic`` of this module."""
        self.full = self.threads = full
        source = source or read_figures
        self.source, self.set_threads, self.clock = source, set_threads, clock or monotonic
        self.quota = cgroup_cpu_limit() if quota is None else quota
        self.cores = float(available_cores()) if cores is None else cores
        self.active = False
        self.changes = 0
        self._wishes: list = []
        self._windows_to_rise = WINDOWS_TO_ACT
        self._windows_since_rise: Optional[int] = None
        self._ticks = 0
        if not off_reason and full <= 1:
            off_reason = "one thread to start with"
        if not off_reason:
            self._last = source()
            if self._last is None:
                off_reason = "the CPU figures cannot be read here (/proc, Linux only)"
        if off_reason:
            log.debug("thread governor off: %s; %d intra-op thread(s) throughout", off_reason, full)
            return
        self.active = True
        self._started = self.clock()
        log.debug("thread governor on: %d intra-op threads while the %g cores are ours, fewer while other processes "
                  "compete (%s=0 turns it off)", full, self.cores, ENV_VAR)

    def tick(self) -> None:
        """One iteration done: at the end of a window, read the figures and maybe change the thread count."""
        if not self.active:
            return
        self._ticks += 1
        if self._ticks < WINDOW_TICKS or self.clock() - self._started < WINDOW_S:
            return
        figures = self.source()
        if figures is None:
            self.active = False
            log.debug("thread governor off: the CPU figures can no longer be read; staying at %d thread(s)",
                      self.threads)
            return
        window = measure(self._last, figures, self.quota)
        self._last, self._ticks, self._started = figures, 0, self.clock()
        self.observe(window)

    def observe(self, window: Window) -> None:
        """Take one window's measurement into the decision (hysteresis: ``WINDOWS_TO_ACT`` alike in a row)."""
        if self._windows_since_rise is not None:
            self._windows_since_rise += 1
        wish = judge(window, self.threads, self.full, self.cores)
        if wish == self.threads:
            self._wishes.clear()
            return
        if self._wishes and (self._wishes[-1] > self.threads) != (wish > self.threads):
            self._wishes.clear()  # a fall and a rise do not add up
        self._wishes.append(wish)
        needed = self._windows_to_rise if wish > self.threads else WINDOWS_TO_ACT
        if len(self._wishes) < needed:
            return
        target = max(self._wishes[-needed:]) if wish < self.threads else self.full  # the gentler fall
        self._wishes.clear()
        self._change(target, window)

    def _change(self, target: int, window: Window) -> None:
        """Set the count and say why, in one line."""
        before = self.threads
        if target < before:
            if self._windows_since_rise is not None and self._windows_since_rise <= 2 * WINDOWS_TO_ACT:
                # the last rise was undone at once (e.g. the idle cores are not really ours): rise less eagerly
                self._windows_to_rise = min(self._windows_to_rise * 2, MAX_WINDOWS_TO_RISE)
            else:
                self._windows_to_rise = WINDOWS_TO_ACT  # a new spell of load: the usual hysteresis again
            self._windows_since_rise = None
            why = (f"other processes compete for the {self.cores:g} cores (run-queue wait "
                   f"{window.wait_share:.0%} of our threads' time, others using {window.others:.1f} cores, "
                   f"over the last {window.seconds:.1f} s)")
        else:
            self._windows_since_rise = 0
            why = f"the cores are free again ({window.spare:.1f} idle over the last {window.seconds:.1f} s)"
        self.set_threads(target)
        self.threads = target
        self.changes += 1
        log.info("threads %d -> %d: %s", before, target, why)


def governor_off_reason(on_cpu: bool, deterministic: bool) -> str:
    """Why the governor should stay off for this run ('' when it may run)."""
    if os.environ.get(ENV_VAR, "").strip().lower() in ("0", "off", "no", "false"):
        return f"{ENV_VAR}={os.environ[ENV_VAR]}"
    if "OMP_NUM_THREADS" in os.environ:
        return f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} fixes the count"
    if not on_cpu:
        return "the networks run on a GPU"
    if deterministic:
        return "--deterministic (the thread count can change float summation order)"
    return ""


def start_governor(on_cpu: bool, deterministic: bool) -> ThreadGovernor:
    """The governor of a training or test run, starting from torch's current intra-op thread count."""
    import torch

    return ThreadGovernor(torch.get_num_threads(), off_reason=governor_off_reason(on_cpu, deterministic))
