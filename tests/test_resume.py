"""Exact resume: the training-state file, bit-identical N vs N/2 + resume + N/2, safe loading, RNG and data order."""
from __future__ import annotations

import io
import pickle
import random
import re
import shutil
import warnings
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import torch

import models
from conftest import TRAINABLE, model_data, model_defaults, run_train, small_flags, tiny_flags
from models import networks
from models.checkpoint_io import CheckpointError
from training import checkpoints, resume
from data.sampler import ResumableSampler
from util.seed import capture_rng_state, restore_rng_state

# Flags that keep every random element of a model (dropout, random crop/flip; by option name where the model has
# the option: a small image pool that fills and then draws, CUT's flip-equivariance), whatever the model.
KEEP_RANDOM = ["--no_dropout", "False"]
KEEP_RANDOM_IF = {"flip_equivariance": ["--flip_equivariance", "True"]}


def model_flags(model: str) -> List[str]:
    """A small ``model`` (smaller PatchGAN too) with every random element it has switched on."""
    defaults = model_defaults(model)
    flags = small_flags(model) + ["--netD", "n_layers", "--n_layers_D", "2"] + KEEP_RANDOM
    if defaults.pool_size > 0:  # the model keeps a pool: 3 images, full after three batches
        flags += ["--pool_size", "3"]
    for option, extra in KEEP_RANDOM_IF.items():
        if hasattr(defaults, option):
            flags += extra
    return flags


N_TRAIN = 4  # images per epoch (--max_dataset_size)


def train_flags(model: str, name: str, ckpt: Path, root: Path, *extra: str) -> List[str]:
    """Two epochs (the second with LR decay) of a tiny model, seeded, random crops and flips on."""
    return model_flags(model) + tiny_flags(name, ckpt) + [
        "--dataroot", str(model_data(root, model)), "--max_dataset_size", str(N_TRAIN), "--load_size", "36",
        "--crop_size", "32", "--n_epochs", "1",
        "--n_epochs_decay", "1", "--print_freq", "1000", "--display_freq", "1000", "--no_html", "--seed", "0",
        "--save_epoch_freq", "1", *extra]


def load_dir(folder: Path, prefix: str = "latest") -> Dict[str, Dict]:
    """Every ``<prefix>_net_*.pth`` of a folder, plus the training state under the key ``state``."""
    out = {p.name[len(prefix) + 5:-4]: torch.load(p, weights_only=True) for p in folder.glob(f"{prefix}_net_*.pth")}
    out["state"] = checkpoints.read_state(str(folder / f"{prefix}_train_state.pth"))
    return out


def assert_same(a, b, where: str = "") -> None:
    """Recursive exact equality of nested dicts/lists of tensors and plain values."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b), f"tensors differ at {where}"
    elif isinstance(a, dict):
        assert set(a) == set(b), f"keys differ at {where}: {set(a) ^ set(b)}"
        for k in a:
            assert_same(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def copy_checkpoint(src: Path, dst: Path, prefix: str) -> None:
    """Copy one checkpoint (networks, state, config) to a fresh experiment folder."""
    dst.mkdir(parents=True)
    for p in src.glob(f"{prefix}_*"):
        shutil.copy2(p, dst / p.name)
    shutil.copy2(src / "config.json", dst / "config.json")


# ---------------------------------------------------------------------------------------------------- bit-exact
# id: (model, resume after this many images, batch size, checkpoint prefix[, loader workers of the straight and of
# the resumed run]); the augmentation is seeded per sample, so workers change nothing.
# Every trainable model: resumed in the second epoch (LR decaying, pools full).
RESUME_CASES = {f"{model}-mid-epoch2": (model, 6, 1, "iter") for model in TRAINABLE}
RESUME_CASES.update({  # the other resume points, batch sizes and workers, each on one model
    "cycle_gan-batch2": ("cycle_gan", 2, 2, "iter"),
    "pix2pix-mid-epoch1": ("pix2pix", 1, 1, "iter"),
    "pix2pix-last-batch": ("pix2pix", 4, 1, "iter"),  # saved after the last batch, before the epoch's LR step
    "pix2pix-epoch-end": ("pix2pix", 4, 1, "epoch"),  # the end-of-epoch checkpoint 1_*, after the LR step
    "cut-batch2": ("cut", 2, 2, "iter"),
    "cycle_gan-2-workers": ("cycle_gan", 6, 1, "iter", (2, 2)),  # random B, crops and flips drawn in workers
    "pix2pix-2-workers": ("pix2pix", 3, 1, "iter", (2, 2)),
    "cut-2-workers": ("cut", 5, 1, "iter", (2, 2)),
    "cycle_gan-2-then-0-workers": ("cycle_gan", 3, 1, "iter", (2, 0)),
})


class _Terminal(io.StringIO):
    """A stderr that claims to be a terminal (the progress bar draws itself)."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_resume_is_bit_exact(case: str, demo_root: Path, tmp_path: Path, monkeypatch) -> None:
    """N iterations straight == N/2, stop, resume from the files, N/2: same weights, optimizers, pools, RNG.
    The resumed epoch's progress bar starts at its place in the whole epoch."""
    model, resume_at, batch, kind, *rest = RESUME_CASES[case]
    workers = rest[0] if rest else (0, 0)
    ckpt = tmp_path / "ck"
    run_train(train_flags(model, "straight", ckpt, demo_root, "--save_by_iter", "--save_latest_freq", str(resume_at),
                          "--batch_size", str(batch), "--num_threads", str(workers[0])))
    straight = ckpt / "straight"
    prefix, load = (f"iter_{resume_at}", ["--load_iter", str(resume_at)]) if kind == "iter" else ("1", ["--epoch", "1"])
    state = checkpoints.read_state(str(straight / f"{prefix}_train_state.pth"))
    assert state["total_iters"] == resume_at and state["epoch"] == (resume_at - 1) // N_TRAIN + 1
    assert state["epoch_complete"] == (kind == "epoch")
    copy_checkpoint(straight, ckpt / "resumed", prefix)
    screen = _Terminal()
    monkeypatch.setattr("sys.stderr", screen)
    run_train(train_flags(model, "resumed", ckpt, demo_root, "--continue_train", *load, "--save_latest_freq", "1000",
                          "--batch_size", str(batch), "--num_threads", str(workers[1])))
    monkeypatch.undo()
    epoch = state["epoch"] + 1 if state["epoch_complete"] else state["epoch"]
    done = 0 if state["epoch_complete"] else resume_at - (epoch - 1) * N_TRAIN
    first_bar = screen.getvalue().split("\r")[1]  # the bar as it opens
    assert first_bar.startswith(f"epoch {epoch}/2:") and f"| {done}/{N_TRAIN} [" in first_bar, first_bar
    a, b = load_dir(straight), load_dir(ckpt / "resumed")
    for key in ("optimizers", "schedulers", "image_pools", "rng", "total_iters", "epoch", "micro_step"):
        assert_same(a["state"][key], b["state"][key], key)
    nets = [k for k in a if k != "state"]
    assert len(nets) >= 2
    for net in nets:
        assert_same(a[net], b[net], net)
    assert a["state"]["total_iters"] == 2 * N_TRAIN
    assert a["state"]["optimizers"][0]["state"], "the optimizer state must be non-trivial"


def test_resume_restores_optimizer_and_schedule(demo_root: Path, tmp_path: Path) -> None:
    """After --continue_train the model holds the saved Adam moments, LR, pools and counters."""
    from models import create_model
    from options.train_options import TrainOptions
    from data import create_dataset

    ckpt = tmp_path / "ck"
    run_train(train_flags("cycle_gan", "run", ckpt, demo_root, "--save_latest_freq", "1000"))
    saved = checkpoints.read_state(str(ckpt / "run" / "latest_train_state.pth"))
    assert saved["epoch"] == 2 and saved["epoch_complete"] and saved["total_iters"] == 2 * N_TRAIN
    opt = TrainOptions().parse(train_flags("cycle_gan", "run", ckpt, demo_root, "--continue_train", "--n_epochs_decay",
                                           "4"), save=False)
    state = resume.load_for_resume(opt)
    dataset = create_dataset(opt)
    model = create_model(opt)
    model.setup(opt)
    point = resume.restore(model, dataset, opt, state)
    assert (point.epoch, point.epoch_iter, point.total_iters) == (3, 0, 2 * N_TRAIN)
    restored = model.optimizers[0].state_dict()
    assert_same(restored["state"], saved["optimizers"][0]["state"], "optimizer_G moments")
    # The learning rate follows the schedule of the flags given now (--n_epochs_decay 4): epoch 3 of 1 + 4 runs at
    # lr * (1 - 2/5), where the saved schedule of 1 + 1 epochs had reached 0.
    assert saved["schedulers"][0]["_last_lr"][0] == 0.0
    assert restored["param_groups"][0]["lr"] == pytest.approx(opt.lr * (1 - 2 / 5))
    assert model.schedulers[0].last_epoch == 2
    assert model.fake_A_pool.num_imgs == 3 and dataset.sampler.seed == saved["data"]["seed"]


# ---------------------------------------------------------------------------------------------------- longer runs
LR_LINE = re.compile(r"learning rate (\d+\.\d+) -> (\d+\.\d+)")


@pytest.mark.parametrize("model", TRAINABLE)
def test_extending_a_finished_run_equals_the_longer_run(model: str, demo_root: Path, tmp_path: Path, caplog) -> None:
    """1 epoch, then ``--n_epochs 2 --continue_train`` == ``--n_epochs 2`` straight, bit for bit.

    Epoch 1 runs at --lr under both schedules (1 + 0 and 2 + 0 epochs); epoch 2 must run at the 2 + 0 schedule's
    --lr, not at the 0 where the 1-epoch schedule ended. The resumed LR line equals the straight run's for epoch 2.
    """
    ckpt = tmp_path / "ck"
    common = ["--n_epochs_decay", "0", "--save_epoch_freq", "1", "--seed", "3", "--save_latest_freq", "1000"]
    caplog.set_level("INFO", logger="img2img")
    run_train(train_flags(model, "straight", ckpt, demo_root, *common, "--n_epochs", "2"))
    straight = LR_LINE.findall(caplog.text)
    caplog.clear()
    run_train(train_flags(model, "split", ckpt, demo_root, *common, "--n_epochs", "1"))
    first = LR_LINE.findall(caplog.text)
    caplog.clear()
    run_train(train_flags(model, "split", ckpt, demo_root, *common, "--n_epochs", "2", "--continue_train"))
    resumed = LR_LINE.findall(caplog.text)
    lr = f"{model_defaults(model).lr:.7f}"  # the model's --lr (0.0002; SinCUT 0.002)
    assert straight == [(lr, lr), (lr, "0.0000000")]
    assert first == [(lr, "0.0000000")]  # epoch 1 at --lr as in the straight run; then the 1-epoch end
    assert resumed == straight[1:], caplog.text
    assert f"learning rate {lr} for epoch 2: the --lr_policy linear schedule of the current flags; the " \
           "checkpoint's schedule was at 0.0000000" in caplog.text
    a, b = load_dir(ckpt / "straight"), load_dir(ckpt / "split")
    for key in ("optimizers", "schedulers", "image_pools", "rng", "total_iters", "epoch", "micro_step"):
        assert_same(a["state"][key], b["state"][key], key)
    for net in (k for k in a if k != "state"):
        assert_same(a[net], b[net], net)


def step_schedules(model, opt, times: int) -> None:
    """Step every scheduler ``times`` epochs (the plateau metric stays 0: it reduces after 6 epochs)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # no optimizer step before: intended here
        for _ in range(times):
            for scheduler in model.schedulers:
                scheduler.step(0.0) if opt.lr_policy == "plateau" else scheduler.step()


@pytest.mark.parametrize("policy", networks.LR_POLICIES)
def test_resumed_learning_rate_follows_the_current_flags(policy: str, tmp_path: Path) -> None:
    """Saved after k epochs of one schedule, resumed with other flags: the LR is the new schedule's at epoch k + 1
    (plateau: the saved reductions, rescaled to the new --lr); the Adam state stays the saved one."""
    from models import create_model
    from options.train_options import TrainOptions

    def build(*flags: str):
        opt = TrainOptions().parse(["--dataroot", str(tmp_path), "--model", "pix2pix", "--netG", "unet_128",
                                    "--lr_policy", policy, *tiny_flags("lr", tmp_path / "ck"), *flags], save=False)
        model = create_model(opt)
        model.setup(opt)
        return opt, model

    epochs = 7 if policy == "plateau" else 2  # plateau: one reduction (patience 5)
    old_opt, old = build("--n_epochs", "1", "--n_epochs_decay", "1", "--lr_decay_iters", "1")
    step_schedules(old, old_opt, epochs)
    old.save_networks("latest")
    state = {"epoch": epochs, "epoch_complete": True, "epoch_iter": 0, "total_iters": 0, "micro_step": 0,
             "optimizers": [o.state_dict() for o in old.optimizers], "schedulers": [s.state_dict() for s in
                                                                                    old.schedulers],
             "image_pools": {}, "grad_scaler": None, "data": {"seed": 0, "size": 4},
             "options": checkpoints.plain_options(old_opt)}
    new = ["--lr", "0.0004", "--n_epochs", "3", "--n_epochs_decay", "5", "--lr_decay_iters", "2"]
    new_opt, resumed = build(*new, "--continue_train")
    point = resume.restore(resumed, [0] * 4, new_opt, state)
    assert point.epoch == epochs + 1
    straight_opt, straight = build(*new)
    step_schedules(straight, straight_opt, epochs)
    for i, optimizer in enumerate(resumed.optimizers):
        lr = optimizer.param_groups[0]["lr"]
        if policy == "plateau":
            assert lr == pytest.approx(old.optimizers[i].param_groups[0]["lr"] * 2) and lr == pytest.approx(0.2 * 4e-4)
            assert resumed.schedulers[i].num_bad_epochs == old.schedulers[i].num_bad_epochs
        else:
            assert lr == straight.optimizers[i].param_groups[0]["lr"], i
            assert resumed.schedulers[i].state_dict() == straight.schedulers[i].state_dict()
        assert lr != old.optimizers[i].param_groups[0]["lr"]  # the case is not trivial


def test_official_checkpoint_resumes_weights_only(demo_root: Path, tmp_path: Path, caplog) -> None:
    """Without a state file (an official checkpoint) --continue_train loads weights and starts at --epoch_count."""
    ckpt = tmp_path / "ck"
    run_train(train_flags("pix2pix", "off", ckpt, demo_root, "--n_epochs_decay", "0", "--save_latest_freq", "1000"))
    (ckpt / "off" / "latest_train_state.pth").unlink()
    caplog.set_level("INFO", logger="img2img")
    run_train(train_flags("pix2pix", "off", ckpt, demo_root, "--continue_train", "--epoch_count", "2",
                          "--n_epochs_decay", "0", "--n_epochs", "2", "--save_latest_freq", "1000"))
    assert "resuming the official way" in caplog.text
    state = checkpoints.read_state(str(ckpt / "off" / "latest_train_state.pth"))
    assert state["epoch"] == 2 and state["total_iters"] == N_TRAIN  # official: total_iters restarts at 0


def test_finished_run_has_nothing_left(demo_root: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "ck"
    run_train(train_flags("pix2pix", "done", ckpt, demo_root, "--n_epochs_decay", "0", "--save_latest_freq", "1000"))
    with pytest.raises(ValueError, match="nothing left to train.*--n_epochs"):
        run_train(train_flags("pix2pix", "done", ckpt, demo_root, "--n_epochs_decay", "0", "--continue_train"))


# ---------------------------------------------------------------------------------------------------- safety
class _CreatesFile:
    """Unpickling this object would create a file (what a malicious checkpoint does)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_malicious_state_file_is_refused(demo_root: Path, tmp_path: Path) -> None:
    target = tmp_path / "pwned.txt"
    evil = tmp_path / "ck" / "x" / "latest_train_state.pth"
    evil.parent.mkdir(parents=True)
    torch.save({"format": checkpoints.STATE_FORMAT, "payload": _CreatesFile(str(target))}, evil)
    with pytest.raises(CheckpointError, match="refusing to load .*latest_train_state.pth"):
        checkpoints.read_state(str(evil))
    assert not target.exists()
    # the same through the training entry point (the networks would be read first: give it a real run)
    ckpt = tmp_path / "ck2"
    run_train(train_flags("pix2pix", "evil", ckpt, demo_root, "--n_epochs_decay", "0", "--save_latest_freq", "1000"))
    shutil.copy2(evil, ckpt / "evil" / "latest_train_state.pth")
    with pytest.raises(CheckpointError, match="refusing"):
        run_train(train_flags("pix2pix", "evil", ckpt, demo_root, "--continue_train", "--n_epochs_decay", "1"))
    assert not target.exists()
    # pickle protocol itself would have created it: check the test object really is dangerous
    pickle.loads(pickle.dumps(_CreatesFile(str(target)))).close()
    assert target.exists()


@pytest.mark.parametrize("content", [b"", b"garbage" * 10, None], ids=["empty", "garbage", "not-a-state"])
def test_unreadable_state_names_the_file(content, tmp_path: Path) -> None:
    path = tmp_path / "latest_train_state.pth"
    if content is None:
        torch.save({"a": torch.zeros(1)}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match="latest_train_state.pth"):
        checkpoints.read_state(str(path))


def test_state_holds_only_plain_data(demo_root: Path, tmp_path: Path) -> None:
    """The state file loads with weights_only=True and holds what resuming needs."""
    ckpt = tmp_path / "ck"
    run_train(train_flags("cycle_gan", "plain", ckpt, demo_root, "--n_epochs_decay", "0", "--save_latest_freq", "3"))
    state = torch.load(ckpt / "plain" / "latest_train_state.pth", weights_only=True)
    for key in ("optimizers", "schedulers", "grad_scaler", "image_pools", "rng", "data", "epoch", "epoch_iter",
                "total_iters", "micro_step", "options", "networks"):
        assert key in state, key
    assert set(state["rng"]) >= {"python", "numpy", "torch", "cuda"}
    assert set(state["image_pools"]) == {"fake_A_pool", "fake_B_pool"}
    assert state["options"]["model"] == "cycle_gan" and state["options"]["seed"] == 0
    assert set(state["networks"]) == {"G_A", "G_B", "D_A", "D_B"}
    assert (ckpt / "plain" / "1_train_state.pth").is_file()


def test_mixed_checkpoint_set_is_detected(demo_root: Path, tmp_path: Path) -> None:
    """A network file that was not written together with the state (interrupted save) is refused by name."""
    ckpt = tmp_path / "ck"
    run_train(train_flags("pix2pix", "mix", ckpt, demo_root, "--save_latest_freq", "1000"))
    exp = ckpt / "mix"
    shutil.copy2(exp / "1_net_G.pth", exp / "latest_net_G.pth")  # epoch-1 weights beside the epoch-2 state
    with pytest.raises(CheckpointError, match="latest_net_G.pth was not written together with"):
        run_train(train_flags("pix2pix", "mix", ckpt, demo_root, "--continue_train", "--n_epochs_decay", "2"))


def test_stale_temp_files_are_removed(tmp_path: Path) -> None:
    stale = tmp_path / ".latest_net_G.pth.0123456789abcdef0123456789abcdef.tmp"
    stale.write_bytes(b"half")
    staging = tmp_path / ".staging-abc123"
    staging.mkdir()
    (staging / "latest_net_G.pth").write_bytes(b"half")
    keep = tmp_path / ".hidden.tmp"
    keep.write_bytes(b"not ours")
    assert checkpoints.remove_stale_temp_files(str(tmp_path)) == 2
    assert not stale.exists() and not staging.exists() and keep.exists()


# ---------------------------------------------------------------------------------------------------- RNG, order
def test_rng_state_round_trip() -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    random.gauss(0, 1)  # leaves a cached gaussian in python's state
    state = capture_rng_state()
    expected = (random.random(), random.gauss(0, 1), np.random.rand(3), np.random.randn(), torch.rand(4))
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    restore_rng_state(state)
    got = (random.random(), random.gauss(0, 1), np.random.rand(3), np.random.randn(), torch.rand(4))
    assert got[0] == expected[0] and got[1] == expected[1] and got[3] == expected[3]
    assert np.array_equal(got[2], expected[2]) and torch.equal(got[4], expected[4])
    buffer = __import__("io").BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    assert_same(torch.load(buffer, weights_only=True), state)


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_sampler_order_is_seeded_split_and_resumable(shuffle: bool, world: int) -> None:
    data = list(range(10))
    samplers = [ResumableSampler(data, shuffle=shuffle, seed=5, num_replicas=world, rank=r) for r in range(world)]
    for s in samplers:
        s.set_epoch(3)
    shares = [list(s) for s in samplers]
    assert sorted(set(i for share in shares for i in share)) == data  # every index, padded to equal shares
    assert len({len(share) for share in shares}) == 1 and all(len(s) == len(shares[0]) for s in samplers)
    again = ResumableSampler(data, shuffle=shuffle, seed=5, num_replicas=world, rank=0)
    again.set_epoch(3)
    assert list(again) == shares[0]
    again.resume_at(2)
    assert list(again) == shares[0][2:] and len(again) == len(shares[0]) - 2
    again.set_epoch(4)  # a new epoch starts from its beginning
    assert len(list(again)) == len(shares[0])
    if shuffle:
        other = ResumableSampler(data, shuffle=True, seed=5, num_replicas=world, rank=0)
        other.set_epoch(4)
        assert list(other) != shares[0] or world == 3  # another epoch, another order


def test_sampler_follows_a_shrinking_dataset() -> None:
    data = list(range(10))
    sampler = ResumableSampler(data, seed=0)
    del data[7:]
    assert len(sampler) == 7 and sorted(sampler) == list(range(7))


# ---------------------------------------------------------------------------------------------------- NaN / Inf
def poison_input(monkeypatch: pytest.MonkeyPatch, model_class: type, at_call: int) -> None:
    """Make the ``at_call``-th batch's real_A all NaN (what a broken image or an exploding network produces)."""
    original = model_class.set_input
    calls = {"n": 0}

    def set_input(self, input):
        original(self, input)
        calls["n"] += 1
        if calls["n"] == at_call:
            self.real_A = torch.full_like(self.real_A, float("nan"))

    monkeypatch.setattr(model_class, "set_input", set_input)


def test_nan_stops_and_keeps_the_good_checkpoint(demo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture) -> None:
    from models.pix2pix_model import Pix2PixModel

    poison_input(monkeypatch, Pix2PixModel, at_call=3)
    ckpt = tmp_path / "ck"
    with pytest.raises(SystemExit) as stop:  # train.py: one line, exit status 1 (the run failed)
        run_train(train_flags("pix2pix", "nan", ckpt, demo_root, "--save_latest_freq", "2"))
    assert stop.value.code == 1
    assert re.search(r"error: non-finite loss \(.*nan.*\) at epoch 1, iters 3: stopping", capsys.readouterr().err)
    exp = ckpt / "nan"
    state = checkpoints.read_state(str(exp / "latest_train_state.pth"))
    assert state["total_iters"] == 2
    resume.verify_networks(state, str(exp), "latest", "state")  # the files of iteration 2, untouched
    for p in exp.glob("latest_net_*.pth"):
        assert all(torch.isfinite(t).all() for t in torch.load(p, weights_only=True).values() if t.is_floating_point())


@pytest.mark.parametrize("model", TRAINABLE)
def test_nan_skip_leaves_the_step_out_and_goes_on(model: str, demo_root: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    model_class = models.find_model_using_name(model)
    # the third training batch (cut's data-dependent initialisation takes the first batch once more before)
    poison_input(monkeypatch, model_class, at_call=3 + int(model_class.needs_first_batch))
    caplog.set_level("INFO", logger="img2img")
    ckpt = tmp_path / "ck"
    run_train(train_flags(model, "skip", ckpt, demo_root, "--nan_policy", "skip", "--save_by_iter",
                          "--save_latest_freq", "1"))
    assert "at epoch 1, iters 3: optimizer step(s) skipped (--nan_policy skip)" in caplog.text
    exp = ckpt / "skip"
    before, after, later = (load_dir(exp, f"iter_{i}") for i in (2, 3, 4))
    for net in (k for k in before if k != "state"):  # the poisoned step changed nothing (BatchNorm stats included)
        assert_same(before[net], after[net], net)
        assert not all(torch.equal(before[net][k], later[net][k]) for k in before[net])  # the next one did
    assert_same(before["state"]["optimizers"], after["state"]["optimizers"], "optimizers")
    final = load_dir(exp)
    for pool in final["state"]["image_pools"].values():
        assert all(torch.isfinite(img).all() for img in pool["images"])
    assert final["state"]["total_iters"] == 2 * N_TRAIN


def test_resume_with_another_memory_layout(demo_root: Path, tmp_path: Path) -> None:
    """A run saved with ``--channels_last off`` and resumed with it on continues as it would have
    with it off: the same weights to float rounding after the first resumed step. Adam's moments were saved in the
    other layout; used as they are, the fused kernel would pair them with the wrong weights (models/optimizers.py
    ``match_state_layout``): errors of the size of a step (1e-5 to 1e-4 here, against 1e-8 when paired right).

    One step, not the whole epoch: the two layouts' convolution kernels round differently on some CPUs (an Intel
    Xeon with AMX, not an AMD EPYC), and a few Adam steps of a GAN amplify that to 1e-4."""
    ckpt = tmp_path / "ck"
    no_dropout = ["--no_dropout", "True"]  # dropout masks follow the memory layout: other (valid) draws
    run_train(train_flags("cycle_gan", "first", ckpt, demo_root, "--save_by_iter", "--save_latest_freq", "4",
                          "--channels_last", "off", *no_dropout))
    ends = {}
    for layout in ("off", "on"):
        copy_checkpoint(ckpt / "first", ckpt / layout, "iter_4")
        run_train(train_flags("cycle_gan", layout, ckpt, demo_root, "--continue_train", "--load_iter", "4",
                              "--save_by_iter", "--save_latest_freq", "1", "--channels_last", layout, *no_dropout))
        ends[layout] = load_dir(ckpt / layout, "iter_5")
    moved = 0.0
    for net in ("G_A", "G_B", "D_A", "D_B"):
        start = torch.load(ckpt / "first" / f"iter_4_net_{net}.pth", weights_only=True)
        for key, value in ends["off"][net].items():
            if key.endswith("weight") and value.dim() == 4:  # conv weights: biases before a norm only drift
                torch.testing.assert_close(ends["on"][net][key], value, rtol=0, atol=1e-6, msg=f"{net}.{key}")
                moved = max(moved, float((value - start[key]).abs().max()))
    assert moved > 1e-5  # the resumed step did train (an Adam step moves weights by up to --lr, 2e-4)
