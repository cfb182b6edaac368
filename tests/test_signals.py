"""Crashes and signals: Ctrl-C/SIGTERM save a resumable checkpoint; SIGKILL during a save leaves loadable files."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import List

import pytest
import torch

from conftest import ROOT, run_train, tiny_flags
from models.checkpoint_io import CheckpointError, read_weights
from training import checkpoints, resume
from training.signals import GracefulStop

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals needed")

EPOCHS = 10  # x 4 images: long enough that the signal lands while training


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: tiny networks run several times faster on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def child_env() -> dict:
    """Environment of a child python: unbuffered, one thread, the repository importable."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def flags(name: str, ckpt: Path, root: Path, *extra: str) -> List[str]:
    """A seeded tiny pix2pix (dropout, batch norm, random crops) over 4 images per epoch."""
    return ["--model", "pix2pix", "--netG", "unet_128", "--netD", "n_layers", "--n_layers_D", "2",
            *tiny_flags(name, ckpt), "--dataroot", str(root / "demo_pix2pix"), "--max_dataset_size", "4",
            "--load_size", "36", "--crop_size", "32", "--n_epochs", str(EPOCHS), "--n_epochs_decay", "0",
            "--print_freq", "1", "--display_id", "0", "--no_html", "--seed", "0", "--save_latest_freq", "1000",
            "--save_epoch_freq", str(EPOCHS), *extra]


def interrupt_training(argv: List[str], signum: int, group: bool = False) -> subprocess.CompletedProcess:
    """Start ``python train.py argv``, wait for its first loss line, freeze it, send ``signum``, let it finish."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *argv], cwd=ROOT, env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("(epoch: "):
                # SIGSTOP first, so that the signal is delivered at a known point and cannot arrive after the end
                os.kill(proc.pid, signal.SIGSTOP)
                if group:
                    os.killpg(proc.pid, signum)
                else:
                    os.kill(proc.pid, signum)
                os.kill(proc.pid, signal.SIGCONT)
                break
        rest, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, "".join(lines) + rest)


@pytest.mark.slow
@pytest.mark.parametrize("signame,workers,group", [("SIGINT", 0, False), ("SIGTERM", 1, True)],
                         ids=["ctrl-c", "sigterm-to-group-with-worker"])
def test_signal_saves_and_resume_finishes_the_run(signame: str, workers: int, group: bool, demo_root: Path,
                                                  tmp_path: Path) -> None:
    signum = getattr(signal, signame)
    ckpt = tmp_path / "ck"
    argv = flags("run", ckpt, demo_root, "--num_threads", str(workers))
    done = interrupt_training(argv, signum, group=group)
    assert done.returncode == 128 + signum, done.stdout[-3000:]
    assert f"received {signame}" in done.stdout and "saved a resumable checkpoint (latest)" in done.stdout
    assert "Traceback" not in done.stdout, done.stdout[-3000:]
    state = checkpoints.read_state(str(ckpt / "run" / "latest_train_state.pth"))
    stopped_at = state["total_iters"]
    assert 1 <= stopped_at < 4 * EPOCHS
    run_train(argv + ["--continue_train"])
    final = checkpoints.read_state(str(ckpt / "run" / "latest_train_state.pth"))
    assert final["total_iters"] == 4 * EPOCHS and final["epoch"] == EPOCHS
    log = (ckpt / "run" / "loss_log.txt").read_text()
    assert log.count("(epoch: ") == 4 * EPOCHS  # every iteration printed once: none lost, none repeated
    if workers == 0:  # bit-exact: the interrupted + resumed run equals an uninterrupted one
        run_train(flags("straight", ckpt, demo_root))
        for net in ("G", "D"):
            a = torch.load(ckpt / "run" / f"latest_net_{net}.pth", weights_only=True)
            b = torch.load(ckpt / "straight" / f"latest_net_{net}.pth", weights_only=True)
            assert all(torch.equal(a[k], b[k]) for k in a), net


def test_second_ctrl_c_stops_at_once() -> None:
    before = signal.getsignal(signal.SIGINT)
    with GracefulStop() as stop:
        assert not stop.requested
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(100):
            if stop.requested:
                break
            time.sleep(0.01)
        assert stop.requested and stop.signum == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(100):
                time.sleep(0.01)
    assert signal.getsignal(signal.SIGINT) is before


def test_sigterm_is_a_stop_request_and_handlers_come_back() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with GracefulStop() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(100):
            if stop.requested:
                break
            time.sleep(0.01)
        assert stop.signum == signal.SIGTERM
        os.kill(os.getpid(), signal.SIGTERM)  # a second SIGTERM is not a hard stop
        time.sleep(0.05)
    assert signal.getsignal(signal.SIGTERM) is before


SAVER = textwrap.dedent("""
    # Saves networks + training state in a loop through the real Checkpointer and atomic writes; a stand-in
    # model (four ~2 MB networks, real Adam optimizers) keeps the start-up short (no options, no torchvision).
    import os, sys
    import torch
    from models import checkpoint_io
    from training.checkpoints import Checkpointer

    class Model:
        model_names = ["G_A", "G_B", "D_A", "D_B"]
        def __init__(self, save_dir):
            self.save_dir = save_dir
            for name in self.model_names:
                setattr(self, "net" + name, torch.nn.Sequential(torch.nn.Linear(700, 700), torch.nn.Linear(700, 8)))
            self.optimizers = [torch.optim.Adam(getattr(self, "net" + n).parameters()) for n in self.model_names]
            self.schedulers = []
        def save_networks(self, prefix):  # what BaseModel.save_networks does per network
            os.makedirs(self.save_dir, exist_ok=True)
            for name in self.model_names:
                checkpoint_io.save_weights(checkpoint_io.plain_state_dict(getattr(self, "net" + name)),
                                    os.path.join(self.save_dir, "%s_net_%s.pth" % (prefix, name)))

    class Data:
        sampler = None
        def __len__(self):
            return 4

    class Opt:
        rank = 0

    model = Model(sys.argv[1])
    saver = Checkpointer(model, Data(), Opt())
    i = 0
    while True:
        for name in model.model_names:
            for p in getattr(model, "net" + name).parameters():
                p.data.fill_(float(i))
        saver.save("latest", 1, i, i)
        print("saved", i, flush=True)
        i += 1
""")


@pytest.mark.slow
def test_sigkill_during_saves_leaves_loadable_checkpoints(tmp_path: Path) -> None:
    """Kill -9 a process that saves networks + state in a loop, at several moments; every file stays loadable."""
    exp = tmp_path / "ck" / "kill"
    outcomes = []
    for delay in (0.0, 0.2):
        proc = subprocess.Popen([sys.executable, "-c", SAVER, str(exp)], cwd=ROOT, env=child_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        seen = []
        try:
            for line in proc.stdout:
                seen.append(line)
                if line.startswith("saved"):
                    break
            assert seen and seen[-1].startswith("saved"), "".join(seen)
            time.sleep(delay)
            proc.kill()
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        nets = {p.name: read_weights(p) for p in exp.glob("latest_net_*.pth")}  # raises on a half-written file
        assert set(nets) == {f"latest_net_{n}.pth" for n in ("G_A", "G_B", "D_A", "D_B")}
        state = checkpoints.read_state(str(exp / "latest_train_state.pth"))
        g_a = float(nets["latest_net_G_A.pth"]["0.weight"].flatten()[0])
        try:
            resume.verify_networks(state, str(exp), "latest", "state")
            assert g_a == state["epoch_iter"], "a consistent set: the state describes these weights"
            outcomes.append("consistent")
        except CheckpointError as err:  # killed during the final renames (microseconds): detected, by name
            assert "was not written together with" in str(err)
            outcomes.append("mixed, detected")
        checkpoints.remove_stale_temp_files(str(exp))
        assert sorted(p.name for p in exp.iterdir() if p.name.startswith(".")) == []  # no temp file or staging
    assert len(outcomes) == 2


AGREE = textwrap.dedent("""
    # Two gloo processes: only rank 1 gets the signal; both must decide to stop, with rank 1's signal.
    import os, signal, sys
    import torch.distributed as dist
    import torch.multiprocessing as mp
    from training.signals import GracefulStop

    def run(rank, port):
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
        stop = GracefulStop(enabled=False)
        first = stop.agreed()
        if rank == 1:
            stop.signum = signal.SIGTERM
        second = stop.agreed()
        print(f"rank {rank}: {first} {second} {stop.signum}", flush=True)
        dist.barrier()  # leave together: closing while a peer still reads aborts it
        dist.destroy_process_group()

    if __name__ == "__main__":
        mp.start_processes(run, args=(int(sys.argv[1]),), nprocs=2, start_method="fork")
""")


@pytest.mark.slow
def test_stop_is_agreed_between_processes() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = subprocess.run([sys.executable, "-c", AGREE, str(port)], cwd=ROOT, env=child_env(), capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    found = sorted(re.findall(r"rank (\d): (\w+) (\w+) (\d+)", res.stdout))  # the two prints may interleave
    term = str(int(signal.SIGTERM))
    assert found == [("0", "False", "True", term), ("1", "False", "True", term)], res.stdout + res.stderr[-2000:]


@pytest.mark.slow
def test_sighup_saves_like_sigterm(demo_root: Path, tmp_path: Path) -> None:
    """A closed terminal or ssh session (SIGHUP) saves a resumable latest and exits with 128 + SIGHUP."""
    ckpt = tmp_path / "ck"
    done = interrupt_training(flags("run", ckpt, demo_root), signal.SIGHUP)
    assert done.returncode == 128 + signal.SIGHUP, done.stdout[-3000:]
    assert "received SIGHUP" in done.stdout and "saved a resumable checkpoint (latest)" in done.stdout
    assert "Traceback" not in done.stdout, done.stdout[-3000:]
    assert 1 <= checkpoints.read_state(str(ckpt / "run" / "latest_train_state.pth"))["total_iters"] < 4 * EPOCHS


@pytest.mark.slow
def test_sigterm_in_test_py_writes_the_page_of_the_images_done(demo_root: Path, tmp_path: Path) -> None:
    """test.py stopped by SIGTERM: the batch finishes, the page shows the images saved, exit status 143."""
    ckpt, results = tmp_path / "ck", tmp_path / "results"
    run_train(flags("run", ckpt, demo_root, "--n_epochs", "1"))
    many = tmp_path / "data"
    for i in range(40):  # enough images that the signal lands in the middle
        (many / "test").mkdir(parents=True, exist_ok=True)
        src = sorted((demo_root / "demo_pix2pix" / "test").iterdir())[i % 4]
        (many / "test" / f"{i:03d}_{src.name}").write_bytes(src.read_bytes())
    argv = [sys.executable, str(ROOT / "test.py"), "--model", "pix2pix", "--netG", "unet_128", "--dataroot",
            str(many), "--name", "run", "--checkpoints_dir", str(ckpt), "--results_dir", str(results), "--gpu_ids",
            "-1", "--load_size", "32", "--crop_size", "32", "--num_test", "40"]
    proc = subprocess.Popen(argv, cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if "processing (0005)-th image" in line:
                os.kill(proc.pid, signal.SIGSTOP)
                os.kill(proc.pid, signal.SIGTERM)
                os.kill(proc.pid, signal.SIGCONT)
                break
        rest, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = "".join(lines) + rest
    assert proc.returncode == 128 + signal.SIGTERM, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    found = re.search(r"stopped by SIGTERM after (\d+) of 40 images: the results page (\S+) shows those", out)
    assert found, out[-3000:]
    page = Path(found.group(2))
    assert page == results / "run" / "test_latest" / "index.html" and page.is_file()
    shown = set(re.findall(r'src="images/([^"]+)"', page.read_text()))
    saved = {p.name for p in (page.parent / "images").iterdir()}
    assert shown == saved and len(saved) == 3 * int(found.group(1)) and 6 <= int(found.group(1)) < 40
