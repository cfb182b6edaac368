"""The thread governor's decisions, from injected CPU figures (nothing here is timed)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Optional

import pytest

from conftest import run_train, tiny_flags
from util import governor as gov
from util.governor import CpuFigures, ThreadGovernor, Window


class Machine:
    """Scripted figures: each window adds ``seconds`` of wall time with the given run-queue wait share, cores
    used by others and by us, on ``cores`` cores."""

    def __init__(self, cores: int = 2) -> None:
        self.cores = cores
        self.now = 0.0
        self.ran = self.waited = self.ours = self.busy = 0.0
        self.readable = True

    def window(self, wait_share: float, others: float, ours: float = 1.8, seconds: float = 2.0) -> None:
        self.now += seconds
        self.ran += ours * seconds * (1 - wait_share)
        self.waited += ours * seconds * wait_share
        self.ours += ours * seconds
        self.busy += min(self.cores, ours + others) * seconds

    def quiet(self) -> None:
        self.window(0.02, 0.05)

    def contended(self) -> None:
        self.window(0.5, 1.5, ours=0.5)

    def read(self) -> Optional[CpuFigures]:
        if not self.readable:
            return None
        return CpuFigures(self.now, {1: (self.ran, self.waited)}, self.ours, self.busy, self.cores)


def make(machine: Machine, full: int = 2):
    counts: List[int] = []
    g = ThreadGovernor(full, source=machine.read, set_threads=counts.append, clock=lambda: machine.now,
                       cores=float(machine.cores), quota=float("inf"))
    return g, counts


def step(g: ThreadGovernor, machine: Machine, kind: str) -> None:
    getattr(machine, kind)()
    for _ in range(gov.WINDOW_TICKS):
        g.tick()


def test_quiet_machine_keeps_every_thread() -> None:
    machine = Machine()
    g, counts = make(machine)
    for _ in range(6):
        step(g, machine, "quiet")
    assert g.active and g.threads == 2 and counts == []


def test_one_busy_window_is_not_enough(caplog) -> None:
    machine = Machine()
    g, counts = make(machine)
    for kind in ("quiet", "contended", "quiet", "contended", "quiet"):
        step(g, machine, kind)
    assert counts == [] and g.threads == 2


def test_two_busy_windows_drop_to_one_thread_and_log_once_then_two_quiet_ones_restore(caplog) -> None:
    machine = Machine()
    g, counts = make(machine)
    with caplog.at_level(logging.INFO, logger="img2img"):
        step(g, machine, "contended")
        step(g, machine, "contended")
        assert counts == [1] and g.threads == 1
        step(g, machine, "contended")  # still busy: no second change, no second line
        assert counts == [1]
        lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("threads ")]
        assert len(lines) == 1 and lines[0].startswith("threads 2 -> 1: other processes compete for the 2 cores")
        assert "run-queue wait 50%" in lines[0] and "over the last 2.0 s" in lines[0]
        machine.window(0.0, 0.05, ours=1.0)  # one thread alone: a core idle
        g.tick(), g.tick()
        assert counts == [1]
        machine.window(0.0, 0.05, ours=1.0)
        g.tick(), g.tick()
    assert counts == [1, 2] and g.threads == 2
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("threads ")]
    assert lines[-1].startswith("threads 1 -> 2: the cores are free again")


def test_a_window_needs_its_seconds_and_iterations() -> None:
    machine = Machine()
    reads = []
    g = ThreadGovernor(2, source=lambda: reads.append(1) or machine.read(), set_threads=lambda n: None,
                       clock=lambda: machine.now, cores=2.0, quota=float("inf"))
    for _ in range(10):
        g.tick()  # many iterations, no time passing: nothing read
    machine.contended()
    assert len(reads) == 1  # the start-up reading only
    g.tick()  # the 2 s have passed and it is the 11th tick since the start: read
    assert len(reads) == 2
    machine.contended()
    g.tick()  # 2 s more but one iteration only
    assert len(reads) == 2
    g.tick()
    assert len(reads) == 3


def test_waiting_caused_by_our_own_workers_is_not_contention() -> None:
    # our threads wait (the data-loader workers hold a core) but no other process uses the cores
    assert gov.judge(Window(2.0, 0.4, others=0.1, spare=0.0), threads=2, full=2, cores=2) == 2


@pytest.mark.parametrize("others,expected", [(1.5, 1), (0.7, 1), (1.0, 15)])
def test_the_fall_leaves_others_their_cores(others: float, expected: int) -> None:
    cores = 2 if expected == 1 else 16
    assert gov.judge(Window(2.0, 0.3, others=others, spare=0.0), threads=cores, full=cores, cores=cores) == expected


def test_still_busy_at_one_thread_stays_down() -> None:
    # one thread with 3 busy processes: it waits half the time, no core is idle
    assert gov.judge(Window(2.0, 0.5, others=1.5, spare=0.0), threads=1, full=2, cores=2) == 1


def test_a_rise_undone_at_once_makes_the_next_rise_wait_longer() -> None:
    machine = Machine()
    g, counts = make(machine)
    for kind in ("contended", "contended"):
        step(g, machine, kind)
    for _ in range(2):  # idle cores that are not really ours: up, then contended again at once
        machine.window(0.0, 0.05, ours=1.0)
        g.tick(), g.tick()
    step(g, machine, "contended"), step(g, machine, "contended")
    assert counts == [1, 2, 1]
    for _ in range(3):
        machine.window(0.0, 0.05, ours=1.0)
        g.tick(), g.tick()
    assert counts == [1, 2, 1]  # 2 quiet windows no longer suffice: 4 now
    machine.window(0.0, 0.05, ours=1.0)
    g.tick(), g.tick()
    assert counts == [1, 2, 1, 2]


def test_unreadable_figures_keep_the_start_up_count(caplog) -> None:
    machine = Machine()
    machine.readable = False
    with caplog.at_level(logging.DEBUG, logger="img2img"):
        g, counts = make(machine)
        for _ in range(4):
            step(g, machine, "contended")
    assert not g.active and counts == [] and g.threads == 2
    assert [r.levelno for r in caplog.records if "governor off" in r.getMessage()] == [logging.DEBUG]


@pytest.mark.parametrize("env,on_cpu,deterministic,off", [
    ({}, True, False, False), ({gov.ENV_VAR: "0"}, True, False, True), ({gov.ENV_VAR: "off"}, True, False, True),
    ({gov.ENV_VAR: "1"}, True, False, False), ({"OMP_NUM_THREADS": "2"}, True, False, True),
    ({}, False, False, True), ({}, True, True, True)])
def test_when_the_governor_stays_off(env: dict, on_cpu: bool, deterministic: bool, off: bool, monkeypatch) -> None:
    for name in (gov.ENV_VAR, "OMP_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert bool(gov.governor_off_reason(on_cpu, deterministic)) == off


def test_read_figures_from_a_proc_tree(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    (proc / "self" / "task" / "7").mkdir(parents=True)
    (proc / "self" / "task" / "7" / "schedstat").write_text("3000000000 1000000000 12\n")
    (proc / "self" / "task" / "7" / "children").write_text("99\n")
    (proc / "self" / "stat").write_text("7 (python x) R " + " ".join(["0"] * 10) + " 100 50 0 0\n")
    (proc / "99").mkdir()
    (proc / "99" / "stat").write_text("99 (worker) S " + " ".join(["0"] * 10) + " 20 5 0 0\n")
    import os

    cpu = min(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
    (proc / "stat").write_text(f"cpu  1 1 1 1 1 0 0 0\ncpu{cpu} 100 0 50 800 10 0 0 50\nintr 5\n")
    figures = gov.read_figures(str(proc))
    assert figures is not None and figures.tasks == {7: (3.0, 1.0)} and figures.cores == 1
    tick = os.sysconf("SC_CLK_TCK")
    assert figures.ours == pytest.approx(175 / tick) and figures.busy == pytest.approx(200 / tick)
    assert gov.read_figures(str(tmp_path / "absent")) is None


def test_the_training_loop_ticks_the_governor(demo_root: Path, tmp_path: Path, monkeypatch,
                                              capsys) -> None:
    """A tiny train.py run whose figures say "contended" from the start: the loop's ticks drop the threads."""
    import torch

    machine = Machine()
    clock = {"now": 0.0}

    def contended_read() -> CpuFigures:
        machine.contended()  # every reading: one more busy window has passed
        return machine.read()

    def tick_clock() -> float:
        clock["now"] += 1.0
        return clock["now"]

    monkeypatch.setattr(gov, "read_figures", contended_read)
    monkeypatch.setattr(gov, "monotonic", tick_clock)
    monkeypatch.setattr(gov, "available_cores", lambda: 2)
    for name in (gov.ENV_VAR, "OMP_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        run_train(["--dataroot", str(demo_root / "demo"), "--model", "cycle_gan", "--netG", "resnet_6blocks",
                   *tiny_flags("governed", tmp_path), "--n_epochs", "1", "--n_epochs_decay", "0",
                   "--max_dataset_size", "8", "--print_freq", "100"])
        lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("threads ")]
        assert lines and lines[0].startswith("threads 2 -> 1: other processes compete")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
