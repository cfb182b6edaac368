"""Every registered model: construction, one training step, names, visuals, save/load; step-plan options."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

import models
from data import create_dataset
from models import create_model, networks
from models.base_model import unwrap
from options.test_options import TestOptions
from options.train_options import TrainOptions

from conftest import TRAINABLE, model_data, small_flags, tiny_flags


def train_opt(demo_root: Path, tmp_path: Path, model: str, *extra: str):
    """Parsed training options of a small ``model`` on the demo data of its default dataset mode."""
    return TrainOptions().parse(["--dataroot", str(model_data(demo_root, model)), *small_flags(model),
                                 *tiny_flags(model, tmp_path), "--display_id", "0", *extra], save=False)


def first_batch(opt):
    return next(iter(create_dataset(opt)))


@pytest.mark.parametrize("model_name", models.list_models())
def test_model_declares_names_and_steps(model_name: str, demo_root: Path, tmp_path: Path) -> None:
    if model_name == "test":
        opt = TestOptions().parse(["--dataroot", str(model_data(demo_root, "test", is_train=False)), "--model", "test",
                                   "--checkpoints_dir", str(tmp_path), "--name", "t", "--ngf", "8",
                                   "--gpu_ids", "-1"], save=False)
        model = models.find_model_using_name("test")(opt)
        model.set_input(first_batch(opt))
        model.test()
        assert model.loss_names == [] and model.model_names == ["G"]
        assert model.get_current_visuals()["fake"].shape == model.real.shape
        return
    opt = train_opt(demo_root, tmp_path, model_name)
    model = create_model(opt)
    model.data_dependent_initialize(first_batch(opt))  # a no-op except for models that need the data (cut)
    model.setup(opt)
    assert model.loss_names and model.visual_names and model.model_names
    for name in model.model_names:
        assert isinstance(getattr(model, "net" + name), torch.nn.Module)
    before = {n: copy.deepcopy(net.state_dict()) for n, net in model.named_networks().items()}
    model.set_input(first_batch(opt))
    model.optimize_parameters()
    losses = model.get_current_losses()
    assert list(losses) == model.loss_names
    assert all(isinstance(v, float) and torch.isfinite(torch.tensor(v)) for v in losses.values())
    model.compute_visuals()
    visuals = model.get_current_visuals()
    assert list(visuals) == model.visual_names
    for name, net in model.named_networks().items():
        changed = any(not torch.equal(before[name][k], v) for k, v in net.state_dict().items())
        assert changed, f"{name} was not updated by optimize_parameters"
    # save + load round trip
    model.save_networks("latest")
    for name in model.model_names:
        assert (Path(model.save_dir) / f"latest_net_{name}.pth").is_file()
    other = create_model(opt)
    other.data_dependent_initialize(first_batch(opt))
    other.load_networks("latest")
    for name, net in model.named_networks().items():
        for k, v in net.state_dict().items():
            assert torch.equal(v, getattr(other, "net" + name).state_dict()[k])


def test_cycle_gan_visual_and_loss_order(demo_root: Path, tmp_path: Path) -> None:
    model = create_model(train_opt(demo_root, tmp_path, "cycle_gan"))
    assert model.loss_names == ["D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B"]
    assert model.visual_names == ["real_A", "fake_B", "rec_A", "idt_B", "real_B", "fake_A", "rec_B", "idt_A"]
    no_idt = create_model(train_opt(demo_root, tmp_path, "cycle_gan", "--lambda_identity", "0"))
    assert no_idt.visual_names == ["real_A", "fake_B", "rec_A", "real_B", "fake_A", "rec_B"]


def test_identity_loss_needs_equal_channels(demo_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lambda_identity"):
        create_model(train_opt(demo_root, tmp_path, "cycle_gan", "--input_nc", "1"))


def test_accum_steps_equals_larger_batch(demo_root: Path, tmp_path: Path) -> None:
    """Two batches of 1 with --accum_steps 2 give the same update as one batch of 2 (per-sample norm), for the
    generator and the discriminator of the template model, whose step names no accumulation."""
    # norm none: per-sample, and no bias in front of a norm (those get pure-noise gradients that Adam amplifies)
    flags = ["--netG", "resnet_6blocks", "--norm", "none", "--no_flip", "--serial_batches",
             "--preprocess", "none", "--pool_size", "0", "--no_dropout"]
    torch.manual_seed(0)
    big = create_model(train_opt(demo_root, tmp_path, "template", *flags, "--batch_size", "2"))
    small = create_model(train_opt(demo_root, tmp_path, "template", *flags, "--accum_steps", "2"))
    for name in ("G", "D"):
        getattr(small, "net" + name).load_state_dict(getattr(big, "net" + name).state_dict())
    batch = first_batch(train_opt(demo_root, tmp_path, "template", *flags, "--batch_size", "2"))
    big.set_input(batch)
    big.train_step()
    for i in range(2):
        part = {k: (v[i:i + 1] if isinstance(v, torch.Tensor) else v[i:i + 1]) for k, v in batch.items()}
        small.set_input(part)
        before = copy.deepcopy({n: net.state_dict() for n, net in small.named_networks().items()})
        small.train_step()
        if i == 0:  # nothing is applied before the group is complete
            for n, net in small.named_networks().items():
                assert all(torch.equal(before[n][k], v) for k, v in net.state_dict().items()), n
    # Adam's first step is lr * g / (|g| + eps): the summation orders of the two ways round near-zero gradients
    # differently; a dropped or doubled batch moves weights by a whole step
    for name in ("G", "D"):
        for k, v in getattr(big, "net" + name).state_dict().items():
            assert torch.allclose(v, getattr(small, "net" + name).state_dict()[k], atol=1e-6), f"{name}.{k}"


@pytest.mark.parametrize("model_name", [m for m in TRAINABLE if hasattr(models.find_model_using_name(m),
                                                                       "backward_D")])
def test_d_steps_updates_generators_every_kth_batch(model_name: str, demo_root: Path, tmp_path: Path) -> None:
    """--d_steps 2: every batch updates the discriminators' weights, every second one the generators' too (batch-norm
    statistics follow every forward pass, as in the official code)."""
    opt = train_opt(demo_root, tmp_path, model_name, "--d_steps", "2")
    model = create_model(opt)
    model.data_dependent_initialize(first_batch(opt))
    model.setup(opt)
    loader = iter(create_dataset(opt))
    for step in range(4):
        before = {n: [p.detach().clone() for p in net.parameters()] for n, net in model.named_networks().items()}
        model.set_input(next(loader))
        model.train_step()
        for name, net in model.named_networks().items():
            changed = any(not torch.equal(b, p) for b, p in zip(before[name], net.parameters()))
            assert changed == (name.startswith("D") or step % 2 == 1), (name, step)
        assert set(model.get_current_visuals()) <= set(model.visual_names)


@pytest.mark.parametrize("gan_mode", networks.GAN_MODES)
@pytest.mark.parametrize("model_name", TRAINABLE)
def test_gan_modes_train(model_name: str, gan_mode: str, demo_root: Path, tmp_path: Path) -> None:
    opt = train_opt(demo_root, tmp_path, model_name, "--gan_mode", gan_mode, "--netG", "resnet_6blocks")
    model = create_model(opt)
    model.data_dependent_initialize(first_batch(opt))  # a no-op except for models that need the data (cut)
    model.set_input(first_batch(opt))
    model.optimize_parameters()
    assert all(torch.isfinite(torch.tensor(v)) for v in model.get_current_losses().values())


def test_wgangp_adds_the_gradient_penalty(demo_root: Path, tmp_path: Path, monkeypatch) -> None:
    """The official code never calls the penalty; ours adds it to the discriminator loss."""
    from models import networks

    calls = []
    original = networks.cal_gradient_penalty

    def spy(*args, **kwargs):
        calls.append(kwargs.get("lambda_gp"))
        return original(*args, **kwargs)

    monkeypatch.setattr(networks, "cal_gradient_penalty", spy)
    opt = train_opt(demo_root, tmp_path, "pix2pix", "--gan_mode", "wgangp", "--lambda_gp", "3")
    model = create_model(opt)
    model.set_input(first_batch(opt))
    model.optimize_parameters()
    assert calls == [3.0]


@pytest.mark.parametrize("model_name", TRAINABLE)
def test_allocated_optimizer_state_trains_identically(model_name: str, demo_root: Path, tmp_path: Path) -> None:
    """allocate_optimizer_state (train.py calls it) changes no weight and no optimizer state over two steps."""
    from test_optimizers import assert_same_state, state_snapshot

    opt = train_opt(demo_root, tmp_path, model_name)
    torch.manual_seed(0)
    lazy = create_model(opt)
    lazy.data_dependent_initialize(first_batch(opt))
    lazy.setup(opt)
    eager = copy.deepcopy(lazy)
    eager.allocate_optimizer_state()
    assert all(len(o.state) for o in eager.optimizers)
    batch = first_batch(opt)
    for _ in range(2):
        for model in (lazy, eager):
            torch.manual_seed(1)
            model.set_input(batch)
            model.optimize_parameters()
    for name in lazy.model_names:
        a, b = unwrap(getattr(lazy, "net" + name)), unwrap(getattr(eager, "net" + name))
        for (key, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(va, vb), f"net{name}.{key}"
    for oa, ob in zip(lazy.optimizers, eager.optimizers):
        assert_same_state(state_snapshot(oa), state_snapshot(ob))


FRAMEWORK_WORDS = ("next_step_plan", "StepPlan", "step_control", "autocast", "to_float", "from util import amp",
                   "grad_scaler", "GradScaler", "step_hook", "register_post_accumulate_grad_hook",
                   "step_in_backward", "micro_step", "backward_loss", "step_optimizer")


@pytest.mark.parametrize("model_name", models.list_models())
def test_model_file_names_no_framework_machinery(model_name: str) -> None:
    """A model file states its algorithm; AMP, accumulation, --d_steps and optimizer hooks are the framework's."""
    text = (Path(models.__file__).parent / f"{model_name}_model.py").read_text()
    assert [w for w in FRAMEWORK_WORDS if w in text] == []
