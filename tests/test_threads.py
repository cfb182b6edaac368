"""CPU threads on a shared machine: OpenMP left at its defaults, threads and data workers from the usable cores."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from options.train_options import TrainOptions
from util import threads


@pytest.mark.parametrize("script", ["train", "test"])
def test_entry_scripts_leave_openmp_spin_wait_at_its_default(script: str) -> None:
    """In a fresh process, nothing sets GOMP_SPINCOUNT before torch loads OpenMP: the default spin is the fast one
    on a quiet machine; a busy one is util/governor.py's business."""
    code = ("import builtins, os, sys, importlib.util\n"
            "seen = {}\n"
            "real = builtins.__import__\n"
            "def spy(name, *a, **k):\n"
            "    if name == 'torch' and 'torch' not in sys.modules:\n"
            "        seen['spin'] = os.environ.get('GOMP_SPINCOUNT')\n"
            "    return real(name, *a, **k)\n"
            "builtins.__import__ = spy\n"
            f"spec = importlib.util.spec_from_file_location('entry', {str(ROOT / (script + '.py'))!r})\n"
            "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
            "print(seen.get('spin'))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "None"


@pytest.mark.parametrize("text,expected", [("max 100000", float("inf")), ("150000 100000", 1.5),
                                           ("50000 100000", 1.0), ("garbage", float("inf"))])
def test_cgroup_quota_in_cores(text: str, expected: float, tmp_path: Path) -> None:
    path = tmp_path / "cpu.max"
    path.write_text(text + "\n")
    assert threads.cgroup_cpu_limit(str(path)) == expected
    assert threads.cgroup_cpu_limit(str(tmp_path / "absent")) == float("inf")


def test_available_cores_follow_affinity_and_quota(monkeypatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5})
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: float("inf"))
    assert threads.available_cores() == 6
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: 2.5)
    assert threads.available_cores() == 2
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3})
    assert threads.available_cores() == 1


@pytest.mark.parametrize("cores,given,expected", [(2, None, 2), (8, None, 4), (1, None, 1), (2, "4", 4),
                                                  (2, "0", 0)])
def test_data_workers_default_to_the_usable_cores(cores: int, given, expected: int, tmp_path: Path,
                                                  monkeypatch) -> None:
    """--num_threads defaults to the official 4, but not more than the cores; an explicit value stays."""
    monkeypatch.setattr(threads, "available_cores", lambda: cores)
    monkeypatch.setattr("options.base_options.available_cores", lambda: cores)
    argv = ["--dataroot", str(tmp_path), "--checkpoints_dir", str(tmp_path / "ck"), "--gpu_ids", "-1"]
    opt = TrainOptions().parse(argv + (["--num_threads", given] if given else []), save=False)
    assert opt.num_threads == expected


def test_torch_threads_are_capped_at_the_usable_cores(monkeypatch) -> None:
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(4)
        monkeypatch.setattr(threads, "available_cores", lambda: 1)
        assert threads.limit_torch_threads() == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
