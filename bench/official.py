"""The official code as a benchmark row (``--official DIR`` of bench/run.py and bench/busy.py).

The official ``train.py`` (``test.py`` for test workloads) of the checkout at DIR runs with this venv's python on
the same generated data and the same flags as the workload (bench/workloads.py ``official_flags``), its
checkpoints and results in a temporary folder that is removed afterwards. How it is timed, and why:

* training: ``--print_freq 1`` makes it print one loss line per iteration; each line's ``time:`` (set_input +
  optimize_parameters + reading the losses, per image) plus ``data:`` (the wait for the batch, per image), times
  the batch size, is that iteration's seconds. That is what our worker times (data wait + step), measured inside
  the process, so neither the pipe nor printing adds to it. It runs exactly ``warmup + iters`` iterations (one
  epoch over ``--max_dataset_size`` images, nothing saved, no HTML); the first ``warmup`` are untimed. The wall
  clock between loss lines is kept as a cross-check (``wall_s_per_iter``).
* test: the official test.py prints a line every 5th image and times nothing, so the wall clock between those
  lines (5 images: loading, inference, saving each, as our clock counts them) over 5 is one s/image figure per
  block; warm-up blocks are untimed. Its checkpoint (random weights) is written by the official code itself.
  The official test.py always runs batch 1 without data workers.
"""
from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from bench.workloads import Config, official_flags

TRAIN_LINE = re.compile(r"\(epoch: \d+, iters: \d+, time: ([0-9.]+), data: ([0-9.]+)\)")
TEST_LINE = re.compile(r"processing \((\d+)\)-th image")
TEST_BLOCK = 5  # the official test.py prints every 5th image
NEVER = str(10 ** 9)  # a frequency that is never reached: no display, no saves
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def check_checkout(folder: Path) -> str:
    """Why ``folder`` is not an official checkout ('' when it is)."""
    missing = [n for n in ("train.py", "test.py", "options/base_options.py") if not (folder / n).is_file()]
    return f"{folder} has no {', '.join(missing)} (a checkout of the official code?)" if missing else ""


def check_flags(folder: Path, flags: Sequence[str]) -> None:
    """Every flag we pass is declared by the official options or models (else ValueError naming it)."""
    text = "".join(p.read_text(errors="replace") for sub in ("options", "models") for p in (folder / sub).glob("*.py"))
    unknown = [f for f in flags if f.startswith("--") and f'"{f}"' not in text and f"'{f}'" not in text]
    if unknown:
        raise ValueError(f"the official code at {folder} has no {', '.join(unknown)}: map it in "
                         "bench/workloads.py OFFICIAL_FLAGS")


def process_figures(pid: int) -> Tuple[Optional[float], Optional[float]]:
    """CPU seconds of ``pid`` and its child processes, and its peak RSS in MiB, from /proc (None elsewhere)."""
    try:
        cpu = 0.0
        pids = [str(pid)]
        for task in os.scandir(f"/proc/{pid}/task"):
            try:
                pids += Path(task.path, "children").read_text().split()
            except OSError:
                continue
        for one in pids:
            try:
                fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            cpu += (int(fields[11]) + int(fields[12])) / _CLK_TCK
        status = Path(f"/proc/{pid}/status").read_text()
        rss = next((int(line.split()[1]) / 1024.0 for line in status.splitlines() if line.startswith("VmHWM:")),
                   None)
        return cpu, rss
    except (OSError, ValueError, IndexError):
        return None, None


def stream(cmd: List[str], cwd: Path, env: Dict[str, str], timeout: float,
           on_line: Callable[[str, float, int], None]) -> Tuple[int, str]:
    """Run ``cmd``, calling ``on_line(line, perf_counter at arrival, pid)`` for each stdout line; return the exit
    status and the output's tail."""
    tail: List[str] = []
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, cwd=str(cwd), env=env, stdout=subprocess.PIPE, stderr=err, text=True,
                                bufsize=1)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                on_line(line, time.perf_counter(), proc.pid)
                tail = (tail + [line])[-40:]
            proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        err.seek(0)
        return proc.returncode, "".join(tail) + err.read()[-3000:]


def official_env(device: str) -> Dict[str, str]:
    """Its environment: ours, unbuffered output, and no GPU for a CPU run (the official code takes one if seen)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONWARNINGS": "ignore"}
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def run_official(config: Config, folder: Path, device: str, warmup: int, iters: int, data_dir: str,
                 timeout: float, on_iteration: Optional[Callable[[int], None]] = None,
                 dataroot: str = "") -> Dict[str, Any]:
    """Time the official code on ``config`` (module doc); the same result fields as bench/worker.py's."""
    from bench.worker import data_root

    flags = official_flags(config)
    check_flags(folder, flags)
    batch = int(config.flag_value("--batch_size", "1"))
    kind = config.spec.kind
    if kind == "test":
        blocks = math.ceil(warmup / TEST_BLOCK), max(1, math.ceil(iters / TEST_BLOCK))
        n_run = TEST_BLOCK * sum(blocks) + 1  # line k*5 closes block k
        batch = 1  # hard-coded by the official test.py
    else:
        n_run = warmup + iters
    n_images = max(32, -(-n_run * batch // 32) * 32)
    root = data_root(Path(data_dir), config.spec, n_images, dataroot)
    times: List[float] = []
    waits: List[float] = []
    stamps: List[float] = []
    cpus: List[Optional[float]] = []
    peak = [0.0]

    def on_line(line: str, stamp: float, pid: int) -> None:
        match = (TRAIN_LINE if kind == "train" else TEST_LINE).search(line)
        if not match:
            return
        cpu, rss = process_figures(pid)
        peak[0] = max(peak[0], rss or 0.0)
        stamps.append(stamp)
        cpus.append(cpu)
        if kind == "train":
            times.append((float(match.group(1)) + float(match.group(2))) * batch)
            waits.append(float(match.group(2)) * batch)
        if on_iteration is not None:
            on_iteration(len(stamps) if kind == "train" else int(match.group(1)))

    with tempfile.TemporaryDirectory(prefix="img2img_official_") as work:
        common = ["--dataroot", str(root), "--name", "bench", "--checkpoints_dir", str(Path(work) / "checkpoints")]
        env = official_env(device)
        if kind == "train":
            cmd = [sys.executable, str(folder / "train.py"), *common, *flags, "--print_freq", "1", "--display_freq",
                   NEVER, "--update_html_freq", NEVER, "--no_html", "--save_latest_freq", NEVER,
                   "--save_epoch_freq", NEVER, "--n_epochs", "1", "--n_epochs_decay", "0",
                   "--max_dataset_size", str(n_run * batch)]
        else:
            argv = [*common, *flags, "--results_dir", str(Path(work) / "results"), "--num_test", str(n_run)]
            write_checkpoint(folder, argv, env, timeout)
            cmd = [sys.executable, str(folder / "test.py"), *argv]
        started = time.perf_counter()
        code, tail = stream(cmd, folder, env, timeout, on_line)
    if code != 0 or len(stamps) < (n_run if kind == "train" else sum(blocks) + 1):
        raise RuntimeError(f"the official {kind}.py on '{config.label}' failed (exit {code}, {len(stamps)} timing "
                           f"lines):\n{tail}")
    if kind == "test":
        per_block = [(stamps[i + 1] - stamps[i]) / TEST_BLOCK for i in range(len(stamps) - 1)]
        times, skip, waits = per_block, blocks[0], []
    else:
        skip = warmup
    cpu_per = [cpus[i + 1] - cpus[i] for i in range(len(cpus) - 1) if cpus[i + 1] is not None and cpus[i] is not None]
    per_line = [stamps[i + 1] - stamps[i] for i in range(len(stamps) - 1)]
    return {"label": config.label, "device": device, "dataroot": dataroot, "s_per_iter": times[skip:],
            "warmup_s": times[:skip],
            "data_wait_s": waits[skip:], "images_per_iter": batch,
            "cpu_s_per_iter": cpu_per[max(skip - 1, 0):] if kind == "train" else [],
            "wall_s_per_iter": per_line[max(skip - 1, 0):], "peak_rss_mb": peak[0] or None, "torch_threads": None,
            "peak_cuda_mb": None, "setup_s": stamps[0] - started if stamps else None}


def write_checkpoint(folder: Path, argv: List[str], env: Dict[str, str], timeout: float) -> None:
    """``latest_net_G.pth`` with random weights, written by the official code (the speed does not depend on them)."""
    code = ("import sys, torch; sys.path.insert(0, '.'); sys.argv = ['test.py'] + sys.argv[1:]\n"
            "from options.test_options import TestOptions\nfrom models import create_model\n"
            "opt = TestOptions().parse(); opt.device = torch.device('cpu')\n"
            "create_model(opt).save_networks('latest')\n")
    proc = subprocess.run([sys.executable, "-c", code, *argv], cwd=str(folder), env=env, capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"the official code could not write the test checkpoint:\n{proc.stderr[-3000:]}")
