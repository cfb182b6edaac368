"""An experiment across commands: one run per folder (lock), no silent overwrite, a clean failed start, the last
epoch always saved, and test.py saying which checkpoint it loaded."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest

from conftest import ROOT, run_test, run_train, tiny_flags
from training import checkpoints
from training.experiment import LOCK_NAME, EarlierRunError, ExperimentInUseError, ExperimentLock
from util.errors import MissingPathError

PIX2PIX = ["--model", "pix2pix", "--netG", "unet_128", "--netD", "n_layers", "--n_layers_D", "2"]


def train_flags(name: str, ckpt: Path, root: Path, *extra: str) -> List[str]:
    """A tiny pix2pix run of 2 images per epoch, 1 epoch unless ``extra`` says otherwise."""
    return PIX2PIX + tiny_flags(name, ckpt) + ["--dataroot", str(root / "demo_pix2pix"), "--max_dataset_size", "2",
                                               "--n_epochs", "1", "--n_epochs_decay", "0", "--no_html",
                                               "--print_freq", "1", *extra]


def flags_for_test_py(name: str, ckpt: Path, root: Path, results: Path, *extra: str) -> List[str]:
    """test.py on the experiment: one image."""
    return ["--model", "pix2pix", "--dataroot", str(root / "demo_pix2pix"), "--name", name, "--checkpoints_dir",
            str(ckpt), "--results_dir", str(results), "--gpu_ids", "-1", "--load_size", "32", "--crop_size", "32",
            "--num_test", "1", *extra]


def snapshot(folder: Path) -> Dict[str, str]:
    """SHA-256 of every file under ``folder`` by relative path."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------------- the end
def test_the_last_epoch_always_saves(demo_root: Path, tmp_path: Path) -> None:
    """3 epochs with --save_epoch_freq 2: epoch 2 by the frequency, epoch 3 because it is the last; latest = 3."""
    ckpt = tmp_path / "ck"
    run_train(train_flags("end", ckpt, demo_root, "--n_epochs", "2", "--n_epochs_decay", "1", "--save_epoch_freq", "2"))
    exp = ckpt / "end"
    assert not (exp / "1_net_G.pth").exists() and (exp / "2_net_G.pth").is_file() and (exp / "3_net_G.pth").is_file()
    state = checkpoints.read_state(str(exp / "latest_train_state.pth"))
    assert (state["epoch"], state["epoch_complete"], state["total_iters"]) == (3, True, 6)
    assert checkpoints.read_state(str(exp / "3_train_state.pth"))["total_iters"] == 6


def test_test_py_says_which_checkpoint_it_loaded(demo_root: Path, tmp_path: Path, caplog) -> None:
    ckpt, results = tmp_path / "ck", tmp_path / "results"
    run_train(train_flags("src", ckpt, demo_root, "--n_epochs_decay", "1", "--save_epoch_freq", "1"))
    exp = ckpt / "src"
    caplog.set_level("INFO", logger="img2img")
    run_test(flags_for_test_py("src", ckpt, demo_root, results))
    assert "checkpoint latest: epoch 2 (complete), total_iters 4, saved " in caplog.text
    assert "training went on" not in caplog.text
    caplog.clear()
    run_test(flags_for_test_py("src", ckpt, demo_root, results, "--epoch", "1"))
    assert "checkpoint 1: epoch 1 (complete), total_iters 2, saved " in caplog.text
    assert "training went on after checkpoint 1: latest_train_state.pth is at epoch 2, total_iters 4 (pass --epoch " \
           "latest to test it)" in caplog.text
    # A latest left behind by an earlier, shorter session: the loss log shows the run went further.
    for path in exp.glob("1_*"):
        shutil.copy2(path, exp / path.name.replace("1_", "latest_", 1))
    caplog.clear()
    run_test(flags_for_test_py("src", ckpt, demo_root, results))
    assert "checkpoint latest: epoch 1 (complete), total_iters 2" in caplog.text
    assert "training went on after checkpoint latest: loss_log.jsonl records epoch 2, total_iters 4" in caplog.text
    (exp / "latest_train_state.pth").unlink()  # an official checkpoint has none
    caplog.clear()
    run_test(flags_for_test_py("src", ckpt, demo_root, results))
    assert "checkpoint latest: no training state beside it (latest_train_state.pth), e.g. an official checkpoint: " \
           "the epoch and iteration it was saved at are unknown" in caplog.text


# ---------------------------------------------------------------------------------------------------- one run
def write_lock(exp: Path, pid: int, host: str) -> None:
    """A lock file as a run that did not remove it left it."""
    exp.mkdir(parents=True, exist_ok=True)
    (exp / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": host, "started": "2025-01-02 03:04:05",
                                             "command": "train.py"}) + "\n")


@pytest.mark.slow
def test_a_second_run_stops_at_once_and_touches_nothing(demo_root: Path, tmp_path: Path) -> None:
    """While a run holds the folder, another train.py of it exits 2 naming the holder; the holder's save in
    progress (its staging folder) survives the other's start-up."""
    ckpt = tmp_path / "ck"
    exp = ckpt / "busy"
    exp.mkdir(parents=True)
    lock = ExperimentLock(str(exp))
    lock.acquire()  # this process is "the first run"
    try:
        staging = exp / ".staging-inprogress"
        staging.mkdir()
        (staging / "latest_net_G.pth").write_bytes(b"being written")
        before = snapshot(exp)
        res = subprocess.run([sys.executable, str(ROOT / "train.py"), *train_flags("busy", ckpt, demo_root),
                              "--display_id", "0"], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert res.returncode == 2, res.stderr[-3000:]
        assert res.stderr.strip().splitlines() == [
            f"train.py: error: {exp} is in use by another training run (PID {os.getpid()} on host "
            f"{socket.gethostname()}, started {json.loads((exp / LOCK_NAME).read_text())['started']}): wait until "
            f"it ends, or train under another --name"]
        assert snapshot(exp) == before
    finally:
        lock.release()
    assert not (exp / LOCK_NAME).exists()


def test_stale_lock_of_a_dead_run_is_taken_over(demo_root: Path, tmp_path: Path, caplog) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    ckpt = tmp_path / "ck"
    exp = ckpt / "stale"
    write_lock(exp, dead.pid, socket.gethostname())
    (exp / ".staging-killed").mkdir()  # what the dead run's save left
    caplog.set_level("INFO", logger="img2img")
    run_train(train_flags("stale", ckpt, demo_root))
    assert (f"taking over the lock {exp / LOCK_NAME} of PID {dead.pid} on host {socket.gethostname()}, started "
            f"2025-01-02 03:04:05, which is no longer running") in caplog.text
    assert not (exp / ".staging-killed").exists() and not (exp / LOCK_NAME).exists()
    assert (exp / "latest_net_G.pth").is_file()


def test_lock_of_another_host_is_not_taken_over(demo_root: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "ck"
    exp = ckpt / "shared"
    write_lock(exp, 4242, "other-host.example")
    before = snapshot(exp)
    with pytest.raises(ExperimentInUseError, match=r"PID 4242 on host other-host\.example.*cannot be checked from "
                                                   r"this host: if that run has ended, delete .*train\.lock"):
        run_train(train_flags("shared", ckpt, demo_root))
    assert snapshot(exp) == before


def test_lock_is_held_by_one_process(tmp_path: Path) -> None:
    """Two locks of one folder: the second is refused while the first holds it, and works once it is released."""
    first, second = ExperimentLock(str(tmp_path)), ExperimentLock(str(tmp_path))
    first.acquire()
    with pytest.raises(ExperimentInUseError, match=f"PID {os.getpid()}"):
        second.acquire()
    first.release()
    second.acquire()
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    second.release()
    assert not (tmp_path / LOCK_NAME).exists()


# ---------------------------------------------------------------------------------------------------- overwrite
def test_fresh_run_over_checkpoints_stops_unless_overwrite(demo_root: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "ck"
    run_train(train_flags("exp", ckpt, demo_root, "--n_epochs", "2", "--save_epoch_freq", "1"))
    exp = ckpt / "exp"
    before = snapshot(exp)
    with pytest.raises(EarlierRunError, match=r"holds checkpoints of an earlier run \(1_net_D\.pth, 1_net_G\.pth, "
                                              r"1_train_state\.pth and \d+ more\): pass --continue_train to go on "
                                              r"with it, another --name to start a new experiment, or --overwrite"):
        run_train(train_flags("exp", ckpt, demo_root))
    assert snapshot(exp) == before  # train_opt.txt not rewritten, no loss_log.txt header appended
    run_train(train_flags("exp", ckpt, demo_root, "--overwrite"))
    assert not (exp / "2_net_G.pth").exists() and (exp / "1_net_G.pth").is_file()
    assert checkpoints.read_state(str(exp / "latest_train_state.pth"))["epoch"] == 1
    assert (exp / "loss_log.txt").read_text().count("Training Loss") == 1


def test_failed_start_leaves_nothing_behind(demo_root: Path, tmp_path: Path) -> None:
    """A new experiment: not even its folder; an existing one: not a byte changed."""
    ckpt = tmp_path / "ck"
    with pytest.raises(MissingPathError):
        run_train(train_flags("new", ckpt, tmp_path / "nowhere"))
    assert not ckpt.exists()
    run_train(train_flags("old", ckpt, demo_root))
    before = snapshot(ckpt)
    with pytest.raises(MissingPathError):
        run_train(train_flags("old", ckpt, tmp_path / "nowhere", "--continue_train", "--n_epochs", "2"))
    assert snapshot(ckpt) == before


def test_record_reads_past_a_damaged_loss_log_line(tmp_path: Path) -> None:
    """test.py's check of the run's record skips a damaged line of loss_log.jsonl (a bad byte) instead of failing."""
    from training.record import last_logged

    (tmp_path / "loss_log.jsonl").write_bytes(b'{"epoch": 1, "total_iters": 2}\n{"epoch": \xff\n'
                                              b'{"epoch": 2, "total_iters": 4}\n{"epoch": 2, "tot')
    last = last_logged(str(tmp_path))
    assert last is not None and (last.epoch, last.total_iters) == (2, 4)


def test_later_checkpoints_by_epoch_and_by_training_state(tmp_path: Path) -> None:
    """Epoch numbers compare as numbers; latest/iter_N count as later when their state has more total_iters."""
    from training.checkpoints import STATE_FORMAT, write_state
    from training.experiment import later_checkpoints

    def save(prefix: str, total_iters: int | None) -> None:
        (tmp_path / f"{prefix}_net_G.pth").write_bytes(b"x")
        if total_iters is not None:
            write_state({"format": STATE_FORMAT, "version": 1, "epoch": 1, "total_iters": total_iters},
                        str(tmp_path / f"{prefix}_train_state.pth"))

    save("1", 4)
    save("10", None)
    save("best", 6)
    save("latest", 8)
    save("iter_2", 2)
    assert later_checkpoints(str(tmp_path), "1") == ["10", "latest"]
    assert later_checkpoints(str(tmp_path), "iter_2") == ["1", "latest"]
    assert later_checkpoints(str(tmp_path), "latest") == []
