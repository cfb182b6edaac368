"""Several processes on the CPU (gloo): DDP numerics, torchrun end to end, rank-0-only files, resume."""
from __future__ import annotations

import argparse
import gc
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn

from conftest import ROOT, run_train, tiny_flags
from models import layers, networks, wrappers
from util import distributed

TIMEOUT = 300  # seconds for one torchrun call (a few CPU steps normally take ~10 s)

# torchrun target: train.py, with an audit hook recording every write under the checkpoints folder per rank.
RUNNER = r'''
import atexit, os, runpy, sys
root, watch, report = sys.argv[1], os.path.realpath(sys.argv[2]), sys.argv[3]
rank = int(os.environ.get("RANK", "0"))
writes = []
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

def hook(event, args):
    if event == "open":
        path, mode, flags = args
        if isinstance(path, int):
            return
        writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & WRITE_FLAGS)
        paths = [path] if writing else []
    elif event in ("os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.symlink", "os.truncate", "shutil.copyfile"):
        paths = [a for a in args[:2] if isinstance(a, (str, bytes, os.PathLike))]
    else:
        return
    for p in paths:
        real = os.path.realpath(os.fsdecode(p))
        if real == watch or real.startswith(watch + os.sep):
            writes.append(event + " " + real)

sys.addaudithook(hook)

@atexit.register
def _report():
    with open(os.path.join(report, "rank%d.txt" % rank), "w") as f:
        f.write("\n".join(writes))

sys.path.insert(0, root)
sys.argv = [os.path.join(root, "train.py")] + sys.argv[4:]
runpy.run_path(sys.argv[0], run_name="__main__")
'''


def torchrun(train_args: List[str], ckpt: Path, work: Path, nproc: int = 2) -> Tuple[str, Dict[int, List[str]]]:
    """Run train.py under torchrun (``--standalone`` picks a free port); return the console and each rank's writes."""
    runner = work / "ddp_runner.py"
    runner.write_text(RUNNER)
    reports = work / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    for old in reports.glob("rank*.txt"):
        old.unlink()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", str(runner),
           str(ROOT), str(ckpt), str(reports)] + train_args + ["--display_id", "0"]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    proc = subprocess.run(cmd, cwd=str(work), env=env, capture_output=True, text=True, timeout=TIMEOUT)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    writes = {int(p.stem[4:]): [w for w in p.read_text().splitlines() if w] for p in reports.glob("rank*.txt")}
    assert sorted(writes) == list(range(nproc)), out[-3000:]
    return out, writes


def load(path: Path) -> Dict[str, torch.Tensor]:
    """A saved network file (plain state_dict)."""
    return torch.load(path, weights_only=True, map_location="cpu")


def weight_diff(a: Dict[str, torch.Tensor], b: Dict[str, torch.Tensor]) -> float:
    """Largest |a - b| over the convolution weights (dim >= 2).

    Biases of convolutions followed by instance norm are left out: the norm removes any per-channel constant, so
    their true gradient is 0 and Adam's normalised step turns float rounding noise into +-lr moves.
    """
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a if a[k].dim() >= 2)


def mean_weight_diff(a: Dict[str, torch.Tensor], b: Dict[str, torch.Tensor]) -> float:
    """Mean |a - b| over the convolution weights (dim >= 2)."""
    diffs = torch.cat([(a[k] - b[k]).abs().flatten() for k in a if a[k].dim() >= 2])
    return float(diffs.mean())


# ---------------------------------------------------------------------------------------------------- unit level
def _numerics_worker(rank: int, world: int, init_file: str, results: str) -> None:
    """One process of test_ddp_numerics: compare DDP (1 sample each) with one process on the whole batch."""
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        x = torch.randn(2 * world, 3, 6, 6)
        mine = x[2 * rank:2 * rank + 2]
        report = {}
        for norm in ("instance", "syncbatch"):
            torch.manual_seed(1 + rank)  # different init per rank: DDP must broadcast rank 0's weights
            net = nn.Sequential(nn.Conv2d(3, 4, 3), networks.get_norm_layer(norm)(4), nn.ReLU(), nn.Conv2d(4, 2, 3))
            torch.manual_seed(1)
            ref = nn.Sequential(nn.Conv2d(3, 4, 3), networks.get_norm_layer("batch" if norm == "syncbatch" else
                                                                            norm)(4), nn.ReLU(), nn.Conv2d(4, 2, 3))
            ddp = wrappers.wrap_ddp(net, "cpu")
            out = ddp(mine)
            (out ** 2).mean().backward()
            expected = ref(x)
            (expected ** 2).mean().backward()
            report[norm] = {
                "wrapped": isinstance(ddp, nn.parallel.DistributedDataParallel),
                "out": float((out - expected[2 * rank:2 * rank + 2]).abs().max()),
                "grad": max(float((p.grad - q.grad).abs().max()) for p, q in zip(net.parameters(), ref.parameters())),
                "grad_scale": max(float(q.grad.abs().max()) for q in ref.parameters()),
                "state": max(float((a - b).abs().max()) for a, b in zip(net.state_dict().values(),
                                                                        ref.state_dict().values())),
                "keys": list(net.state_dict()) == list(ref.state_dict()),
            }
        torch.save(report, os.path.join(results, f"rank{rank}.pt"))
        # DDP modules still alive when the process exits after leaving the group made the process abort in C++
        # teardown now and then (SIGABRT after the worker returned, about 1 run in 20 on a busy machine)
        del ddp, net
        gc.collect()
    finally:
        distributed.cleanup_distributed(wait_for_peers=True)


def test_ddp_numerics(tmp_path: Path) -> None:
    """Averaged gradients equal one process on the global batch; CPU syncbatch equals BatchNorm on it."""
    mp.spawn(_numerics_worker, args=(2, str(tmp_path / "rendezvous"), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        report = torch.load(tmp_path / f"rank{rank}.pt", weights_only=False)
        for norm, r in report.items():
            assert r["wrapped"] and r["keys"], (rank, norm, r)
            assert r["out"] < 1e-5 and r["state"] < 1e-6, (rank, norm, r)
            # a sum instead of a mean would be off by a factor 2 of the gradient scale
            assert r["grad"] < 1e-5 * max(1.0, r["grad_scale"]), (rank, norm, r)


def test_single_process_is_untouched() -> None:
    """Without torchrun nothing is initialised and networks stay unwrapped."""
    opt = argparse.Namespace(device=torch.device("cpu"), gpu_ids=[])
    distributed.init_distributed(opt)
    assert (opt.rank, opt.world_size, opt.local_rank) == (0, 1, 0)
    assert not dist.is_initialized() and not distributed.is_distributed()
    assert distributed.is_main_process() and distributed.get_world_size() == 1
    net = nn.Conv2d(3, 3, 1)
    assert wrappers.wrap_ddp(net, "cpu") is net
    distributed.barrier()  # a no-op
    distributed.cleanup_distributed()


def test_buffer_broadcast_only_for_plain_batchnorm() -> None:
    """DDP copies rank 0's buffers before each forward only where per-process statistics would drift."""
    for norm, expected in (("batch", True), ("syncbatch", False), ("instance", False), ("none", False)):
        net = networks.define_G(3, 3, 4, "resnet_6blocks", norm, False)
        assert layers.needs_buffer_broadcast(net) is expected, norm
    net = networks.define_G(3, 3, 4, "unet_128", "syncbatch", False)
    keys = list(net.state_dict())
    assert layers.enable_cpu_syncbatch(net) > 0
    assert list(net.state_dict()) == keys and not layers.needs_buffer_broadcast(net)
    net.eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 8, 8)).shape == (1, 3, 8, 8)  # eval without a process group: plain BN


def test_rank_logging() -> None:
    """Rank 0 prints everything; other ranks only warnings and errors, marked ``[Rank r]``."""
    from util.logger import get_logger, setup_logging

    stream = io.StringIO()
    setup_logging(stream=stream)
    log = get_logger("ddp_test")
    try:
        distributed.setup_rank_logging(rank=1)
        log.info("hidden line")
        log.warning("a warning")
        distributed.setup_rank_logging(rank=0)
        log.info("shown line")
    finally:
        setup_logging()
    lines = stream.getvalue().splitlines()
    assert lines == ["[Rank 1] a warning", "shown line"]


# ---------------------------------------------------------------------------------------------------- torchrun
@pytest.mark.slow
def test_cycle_gan_two_processes_equal_one_process_with_the_global_batch(demo_root: Path, tmp_path: Path) -> None:
    """2 processes x batch 1 train the same weights as 1 process x batch 2; only rank 0 writes, prints once."""
    ckpt = tmp_path / "checkpoints"
    common = ["--dataroot", str(demo_root / "demo"), "--model", "cycle_gan", "--netG", "resnet_6blocks",
              "--n_epochs", "1", "--n_epochs_decay", "0", "--max_dataset_size", "4", "--serial_batches",
              "--no_flip", "--pool_size", "0", "--seed", "5", "--save_by_iter", "--print_freq", "1",
              "--display_freq", "1", "--update_html_freq", "1"]
    out, writes = torchrun(common + tiny_flags("ddp", ckpt) + ["--batch_size", "1", "--save_latest_freq", "1"],
                           ckpt, tmp_path)
    run_train(common + tiny_flags("single", ckpt) + ["--batch_size", "2", "--save_latest_freq", "2"])
    for step in (1, 2):  # per-process images: DDP iter_<step> is the single run's iter_<2 * step>
        for net in ("G_A", "G_B", "D_A", "D_B"):
            ddp = load(ckpt / "ddp" / f"iter_{step}_net_{net}.pth")
            single = load(ckpt / "single" / f"iter_{2 * step}_net_{net}.pth")
            assert not any(k.startswith("module.") for k in ddp)
            # the mean, not the max: a weight whose true gradient is ~0 can take an Adam step of +-lr on
            # rounding noise alone (seen: 1.5e-7 after 2 steps); a process training on its own image alone moves
            # every weight whose gradient sign differs by 2 lr (estimated mean ~1e-5 to 1e-4)
            assert mean_weight_diff(ddp, single) < 1e-6, (step, net, mean_weight_diff(ddp, single))
    assert weight_diff(load(ckpt / "ddp" / "iter_1_net_G_A.pth"), load(ckpt / "ddp" / "iter_2_net_G_A.pth")) > 1e-5
    # one process writes; the audit hook saw it do so, and saw nothing from rank 1
    assert writes[1] == [], writes[1][:5]
    assert any(w.endswith("iter_1_net_G_A.pth") for w in writes[0])
    assert any("loss_log" in w for w in writes[0]) and any("index.html" in w for w in writes[0])
    assert out.count("The number of training images = 4") == 1
    assert out.count("(epoch: 1, iters: ") == 2  # rank 0's loss lines only (2 steps of 1 image per process)
    assert out.count("epoch 1/1: 4/4 (100%)") == 1  # one progress line, counting both processes' images
    assert "distributed training: 2 processes, backend gloo" in out


@pytest.fixture(scope="module")
def pix2pix_run(demo_root: Path, tmp_path_factory) -> Tuple[Path, Path, List[str]]:
    """A 2-process pix2pix run with --norm syncbatch: 2 epochs of 2 steps per process; checkpoints, work dir, flags."""
    work = tmp_path_factory.mktemp("p2p_ddp")
    ckpt = work / "checkpoints"
    flags = ["--dataroot", str(demo_root / "demo_pix2pix"), "--model", "pix2pix", "--norm", "syncbatch",
             "--netG", "unet_128", "--max_dataset_size", "4", "--print_freq", "1", "--save_epoch_freq", "1",
             "--seed", "2", "--no_dropout", "--no_flip", "--n_epochs", "1", "--n_epochs_decay", "1"]
    flags += tiny_flags("p2p", ckpt)
    out, writes = torchrun(flags, ckpt, work)
    assert writes[1] == [], writes[1][:5]
    assert out.count("(epoch: 1, iters: ") == 2 and out.count("(epoch: 2, iters: ") == 2, out[-3000:]
    # the progress counts the whole dataset (both processes' images), not rank 0's share
    assert "epoch 1/2: 4/4 (100%)" in out and "epoch 2/2: 4/4 (100%)" in out, out[-3000:]
    return ckpt, work, flags


@pytest.mark.slow
def test_pix2pix_syncbatch_two_processes(pix2pix_run) -> None:
    """pix2pix with --norm syncbatch trains under gloo; the files are the single-process format."""
    ckpt, _, _ = pix2pix_run
    exp = ckpt / "p2p"
    expected_g = networks.define_G(3, 3, 8, "unet_128", "syncbatch", False).state_dict()
    expected_d = networks.define_D(6, 8, "basic", 3, "syncbatch").state_dict()
    for prefix in ("latest", "1", "2"):
        g, d = load(exp / f"{prefix}_net_G.pth"), load(exp / f"{prefix}_net_D.pth")
        assert list(g) == list(expected_g) and list(d) == list(expected_d)
        assert all(g[k].shape == expected_g[k].shape for k in g)
        tracked = [v for k, v in g.items() if k.endswith("num_batches_tracked")]
        assert tracked and all(int(v) > 0 for v in tracked)  # the synchronised BN layers did train
    assert weight_diff(load(exp / "1_net_G.pth"), load(exp / "2_net_G.pth")) > 1e-5
    assert (exp / "train_opt.txt").is_file() and (exp / "config.json").is_file()


@pytest.mark.slow
def test_resume_under_ddp(pix2pix_run) -> None:
    """--continue_train from epoch 1 with 2 processes redoes epoch 2: same weights as the uninterrupted run
    with the full training state; close to epoch 1's (not a fresh init) with weights-only resume."""
    ckpt, work, flags = pix2pix_run
    exp = ckpt / "p2p"
    epoch1, uninterrupted = load(exp / "1_net_G.pth"), load(exp / "2_net_G.pth")
    full_state = (exp / "1_train_state.pth").is_file()
    later = ckpt / "later"  # going back to epoch 1 on purpose: the later checkpoints move out (else refused)
    later.mkdir()
    for path in [*exp.glob("2_*.pth"), *exp.glob("latest_*.pth")]:
        path.rename(later / path.name)
    out, writes = torchrun(flags + ["--continue_train", "--epoch", "1", "--epoch_count", "2"], ckpt, work)
    assert writes[1] == [], writes[1][:5]
    assert f"loading the model from {exp / '1_net_G.pth'}" in out
    assert out.count("(epoch: 2, iters: ") == 2 and "(epoch: 1, iters: " not in out
    resumed = load(exp / "2_net_G.pth")
    if full_state:  # optimizers, LR schedule, RNG states and data order restored (training/resume.py)
        assert "resuming from" in out
        assert weight_diff(resumed, uninterrupted) < 1e-5
    # Adam moves weights by about lr per step; a fresh initialisation would be ~init_gain (0.02) away
    assert 0 < weight_diff(epoch1, resumed) < 3e-3


def _nonfinite_worker(rank: int, world: int, init_file: str, results: str) -> None:
    """One process of test_nonfinite_decision_is_collective: only rank 1 sees a NaN loss."""
    import types

    from training.nonfinite import NonFiniteGuard, NonFiniteLossError

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        report = {}
        for policy in ("skip", "stop"):
            model = types.SimpleNamespace(loss_names=["G"], model_names=[], optimizers=[],
                                          loss_G=torch.tensor(float("nan") if rank == 1 else 1.0))
            guard = NonFiniteGuard(model, policy)
            try:
                guard.check(epoch=1, total_iters=4)
                report[policy] = ("went on", guard.bad_iterations)
            except NonFiniteLossError as err:
                report[policy] = ("stopped", str(err))
            dist.barrier()  # a process that did not take the decision would hang here under the old rule
        torch.save(report, os.path.join(results, f"rank{rank}.pt"))
    finally:
        distributed.cleanup_distributed(wait_for_peers=True)


def test_nonfinite_decision_is_collective(tmp_path: Path) -> None:
    """A NaN loss in one process stops (--nan_policy stop) or skips (skip) the step in every process."""
    mp.spawn(_nonfinite_worker, args=(2, str(tmp_path / "rendezvous"), str(tmp_path)), nprocs=2, join=True)
    reports = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    for rank, report in enumerate(reports):
        assert report["skip"] == ("went on", 1), (rank, report)
        assert report["stop"][0] == "stopped", (rank, report)
    assert "non-finite loss (G=nan)" in reports[1]["stop"][1]
    assert "non-finite loss in another process" in reports[0]["stop"][1]
