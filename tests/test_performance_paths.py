"""The fast training/inference paths give the official numbers: losses and gradients against a plain reference.

The reference implementations below are written out the straightforward way (the official cycle_gan and pix2pix steps): every
network call separate, one ``loss_G.backward()``. The models' steps batch calls and back-propagate in pieces
(models/cycle_gan_model.py, models/pix2pix_model.py); the results must agree within float tolerance.
"""
from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import run_test, tiny_flags
from data import create_dataset
from models import create_model, networks
from models.base_model import per_sample, unwrap
from models.networks import GANLoss
from options.train_options import TrainOptions

L1 = torch.nn.functional.l1_loss


def train_opt(dataroot: Path, tmp_path: Path, model: str, *extra: str):
    """Tiny training options (ngf/ndf 8, 32 px, no workers, deterministic data order)."""
    return TrainOptions().parse(["--dataroot", str(dataroot), "--model", model, *tiny_flags(model, tmp_path),
                                 "--display_id", "0", "--serial_batches", "--no_flip", *extra], save=False)


def first_batch(opt) -> Dict:
    """The first batch of the options' dataset."""
    return next(iter(create_dataset(opt)))


def noise_batch(opt) -> Dict:
    """The first batch with its images replaced by uniform noise in [-1, 1] (same shapes and paths).

    The demo images are mostly flat, which makes the first convolution's weight gradient a sum of large
    cancelling terms (the norm behind it makes the incoming gradient zero-mean): its fp32 value then depends on
    the kernel's summation order at the 1e-2 level. Noise keeps every comparison well-conditioned, so the
    tolerances below can be tight on any CPU.
    """
    batch = first_batch(opt)
    generator = torch.Generator().manual_seed(1)
    return {k: (torch.rand(v.shape, generator=generator) * 2 - 1 if isinstance(v, torch.Tensor) else v)
            for k, v in batch.items()}


def assert_close(actual: torch.Tensor, expected: torch.Tensor, what: str, rtol: float = 1e-4,
                 scale: float = 0.0) -> None:
    """Float tolerance relative to ``scale`` (default: the tensor's own magnitude); summation orders differ."""
    scale = scale or float(expected.abs().max()) or 1.0
    torch.testing.assert_close(actual.to(expected.dtype), expected, rtol=rtol, atol=rtol * scale,
                               msg=lambda m: f"{what}: {m}")


def grads(net: torch.nn.Module) -> Dict[str, torch.Tensor]:
    """Parameter gradients by name (None where there is none)."""
    return {name: p.grad for name, p in unwrap(net).named_parameters()}


def assert_same_grads(model_net: torch.nn.Module, ref_net: torch.nn.Module, what: str, rtol: float = 1e-4) -> None:
    """Every parameter has a gradient in both, and they agree relative to the network's largest gradient.

    (The network-wide scale matters for conv biases in front of an instance norm: their true gradient is zero,
    so what both paths compute there is rounding noise.)
    """
    ours, ref = grads(model_net), grads(ref_net)
    assert all(g is not None for g in ref.values()) and all(g is not None for g in ours.values()), what
    scale = max(float(g.abs().max()) for g in ref.values())
    for name, g in ref.items():
        assert_close(ours[name], g, f"{what}.{name}", rtol=rtol, scale=scale)


# --------------------------------------------------------------------------------------------- cycle_gan
def reference_cycle_gan_G(nets: Dict[str, torch.nn.Module], real_A, real_B, opt) -> Dict[str, torch.Tensor]:
    """The official backward_G, written plainly: six generator calls, one sum, one backward."""
    gan = GANLoss(opt.gan_mode)
    fake_B = nets["G_A"](real_A)
    rec_A = nets["G_B"](fake_B)
    fake_A = nets["G_B"](real_B)
    rec_B = nets["G_A"](fake_A)
    idt_A = nets["G_A"](real_B)
    idt_B = nets["G_B"](real_A)
    losses = {
        "idt_A": L1(idt_A, real_B) * opt.lambda_B * opt.lambda_identity,
        "idt_B": L1(idt_B, real_A) * opt.lambda_A * opt.lambda_identity,
        "G_A": gan(nets["D_A"](fake_B), True),
        "G_B": gan(nets["D_B"](fake_A), True),
        "cycle_A": L1(rec_A, real_A) * opt.lambda_A,
        "cycle_B": L1(rec_B, real_B) * opt.lambda_B,
    }
    sum(losses.values()).backward()
    losses.update(fake_B=fake_B.detach(), fake_A=fake_A.detach(), rec_A=rec_A.detach(), rec_B=rec_B.detach())
    return losses


def reference_D(netD: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor, gan_mode: str) -> torch.Tensor:
    """0.5 * (GAN(D(real), True) + GAN(D(fake), False)), back-propagated."""
    gan = GANLoss(gan_mode)
    loss = (gan(netD(real), True) + gan(netD(fake.detach()), False)) * 0.5
    loss.backward()
    return loss


CYCLE_CASES = {  # norm, batch size, extra flags
    "instance": ("instance", 1, []),
    "instance-batch2": ("instance", 2, []),
    "none-batch2": ("none", 2, []),
    "batchnorm": ("batch", 1, []),
    "batchnorm-batch2": ("batch", 2, []),
    "instance-channels_last": ("instance", 1, ["--channels_last"]),
    "instance-batch2-channels_last": ("instance", 2, ["--channels_last"]),  # norms split per sample
    "batchnorm-channels_last": ("batch", 2, ["--channels_last"]),
}
# Channels-last runs other convolution kernels, so its rounding differs from the plain fp32 reference's; those
# cases are checked against the reference computed in float64 (the exact answer) instead, with a tolerance of
# 1e-3 of the network's largest gradient. A wrong gradient path (such as the channels-last instance-norm bug that
# models/layers.py works around) is off by the size of the gradients themselves.
@pytest.mark.parametrize("case", list(CYCLE_CASES))
def test_cycle_gan_step_equals_reference(case: str, demo_root: Path, tmp_path: Path) -> None:
    norm, batch_size, extra = CYCLE_CASES[case]
    opt = train_opt(demo_root / "demo", tmp_path, "cycle_gan", "--netG", "resnet_6blocks", "--norm", norm,
                    "--pool_size", "0", "--batch_size", str(batch_size), *extra)
    torch.manual_seed(0)
    model = create_model(opt)
    assert per_sample(model.netD_A) == (norm != "batch")  # discriminators: batched wherever the norm allows
    assert opt.channels_last == ("--channels_last" in extra)
    ref_dtype, rtol = (torch.float64, 1e-3) if opt.channels_last else (torch.float32, 1e-4)
    nets = {name: copy.deepcopy(net).to(ref_dtype) for name, net in model.named_networks().items()}
    model.setup(opt)  # the opt-in wrappers (channels-last) apply here; the reference stays plain
    if opt.channels_last:
        conv = next(m for m in model.netG_A.modules() if isinstance(m, torch.nn.Conv2d))
        assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    model.set_input(noise_batch(opt))
    real_A, real_B = model.real_A.to(ref_dtype), model.real_B.to(ref_dtype)

    # generator step: no discriminator parameter gradients, the same losses and generator gradients
    model.set_requires_grad([model.netD_A, model.netD_B], False)
    model.backward_G()
    for name in ("D_A", "D_B"):
        nets[name].requires_grad_(False)
    ref = reference_cycle_gan_G(nets, real_A, real_B, opt)
    for name in ("G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B"):
        assert_close(getattr(model, "loss_" + name), ref[name].detach(), "loss_" + name, rtol)
    for name in ("fake_B", "fake_A", "rec_A", "rec_B"):
        assert_close(getattr(model, name), ref[name], name, rtol)
    assert_same_grads(model.netG_A, nets["G_A"], "G_A", rtol)
    assert_same_grads(model.netG_B, nets["G_B"], "G_B", rtol)
    for name in ("D_A", "D_B"):
        assert all(g is None for g in grads(getattr(model, "net" + name)).values()), f"{name} got gradients"
    if norm == "batch":  # separate calls in the official order: the running statistics match too
        for key, value in nets["G_A"].state_dict().items():
            if "running" in key:
                assert_close(unwrap(model.netG_A).state_dict()[key], value, "G_A." + key, rtol)

    # discriminator step
    model.set_requires_grad([model.netD_A, model.netD_B], True)
    for name in ("D_A", "D_B"):
        nets[name].requires_grad_(True)
    model.backward_D_A()
    model.backward_D_B()
    ref_D_A = reference_D(nets["D_A"], real_B, ref["fake_B"], opt.gan_mode)
    ref_D_B = reference_D(nets["D_B"], real_A, ref["fake_A"], opt.gan_mode)
    assert_close(model.loss_D_A, ref_D_A.detach(), "loss_D_A", rtol)
    assert_close(model.loss_D_B, ref_D_B.detach(), "loss_D_B", rtol)
    assert_same_grads(model.netD_A, nets["D_A"], "D_A", rtol)
    assert_same_grads(model.netD_B, nets["D_B"], "D_B", rtol)


def test_cycle_gan_without_identity_equals_reference(demo_root: Path, tmp_path: Path) -> None:
    opt = train_opt(demo_root / "demo", tmp_path, "cycle_gan", "--netG", "resnet_6blocks", "--pool_size", "0",
                    "--lambda_identity", "0")
    torch.manual_seed(0)
    model = create_model(opt)
    nets = {name: copy.deepcopy(net) for name, net in model.named_networks().items()}
    model.set_input(noise_batch(opt))
    model.set_requires_grad([model.netD_A, model.netD_B], False)
    model.backward_G()
    gan = GANLoss(opt.gan_mode)
    fake_B = nets["G_A"](model.real_A)
    fake_A = nets["G_B"](model.real_B)
    loss = (gan(nets["D_A"](fake_B), True) + gan(nets["D_B"](fake_A), True)
            + L1(nets["G_B"](fake_B), model.real_A) * opt.lambda_A
            + L1(nets["G_A"](fake_A), model.real_B) * opt.lambda_B)
    loss.backward()
    assert model.loss_idt_A == 0 and model.loss_idt_B == 0
    assert_close(model.loss_G, loss.detach(), "loss_G")
    assert_same_grads(model.netG_A, nets["G_A"], "G_A")
    assert_same_grads(model.netG_B, nets["G_B"], "G_B")


# --------------------------------------------------------------------------------------------- pix2pix
@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_pix2pix_step_equals_reference(norm: str, demo_root: Path, tmp_path: Path) -> None:
    opt = train_opt(demo_root / "demo_pix2pix", tmp_path, "pix2pix", "--netG", "unet_128", "--norm", norm,
                    "--no_dropout", "--batch_size", "2")
    torch.manual_seed(0)
    model = create_model(opt)
    assert per_sample(model.netD) == (norm == "instance")
    G, D = copy.deepcopy(model.netG), copy.deepcopy(model.netD)
    model.set_input(noise_batch(opt))
    real_A, real_B = model.real_A, model.real_B
    gan = GANLoss(opt.gan_mode)

    model.forward()
    model.backward_D()
    fake_B = G(real_A)
    loss_D_fake = gan(D(torch.cat((real_A, fake_B), 1).detach()), False)
    loss_D_real = gan(D(torch.cat((real_A, real_B), 1)), True)
    ((loss_D_fake + loss_D_real) * 0.5).backward()
    assert_close(model.fake_B.detach(), fake_B.detach(), "fake_B")
    assert_close(model.loss_D_fake, loss_D_fake.detach(), "loss_D_fake")
    assert_close(model.loss_D_real, loss_D_real.detach(), "loss_D_real")
    assert_same_grads(model.netD, D, "D")
    for key, value in D.state_dict().items():
        if "running" in key:
            assert_close(model.netD.state_dict()[key], value, "D." + key)

    model.optimizer_D.zero_grad(set_to_none=True)
    model.set_requires_grad(model.netD, False)
    model.backward_G()
    D.zero_grad(set_to_none=True)
    D.requires_grad_(False)
    loss_G_GAN = gan(D(torch.cat((real_A, fake_B), 1)), True)
    loss_G_L1 = L1(fake_B, real_B) * opt.lambda_L1
    (loss_G_GAN + loss_G_L1).backward()
    assert_close(model.loss_G_GAN, loss_G_GAN.detach(), "loss_G_GAN")
    assert_close(model.loss_G_L1, loss_G_L1.detach(), "loss_G_L1")
    assert_same_grads(model.netG, G, "G")
    assert all(g is None for g in grads(model.netD).values()), "D got gradients in the G step"


def test_pix2pix_step_in_backward_equals_step_after_backward(demo_root: Path, tmp_path: Path) -> None:
    """G's update applied per parameter during backward gives the same weights and Adam state as one step after."""
    opt = train_opt(demo_root / "demo_pix2pix", tmp_path, "pix2pix", "--netG", "unet_128", "--no_dropout")
    torch.manual_seed(0)
    fused = create_model(opt)
    plain = copy.deepcopy(fused)
    plain.optimizer_G.in_backward = plain.optimizer_D.in_backward = False
    watched = copy.deepcopy(fused)  # a step pre-hook (as --nan_policy skip adds) turns the fused path off
    calls: List[int] = []
    watched.optimizer_G.register_step_pre_hook(lambda *args: calls.append(1))
    batch = noise_batch(opt)
    for _ in range(2):
        for model in (fused, plain, watched):
            model.set_input(batch)
            model.optimize_parameters()
    assert len(calls) == 2  # one whole step per iteration
    assert fused.optimizer_G.in_backward is True and fused.optimizer_D.in_backward is False  # pix2pix's word
    for other in (plain, watched):
        for (name, a), b in zip(fused.netG.named_parameters(), other.netG.parameters()):
            assert_close(a.detach(), b.detach(), "G." + name, rtol=1e-6)
            assert a.grad is None and b.grad is None, name
        state_a, state_b = fused.optimizer_G.state_dict()["state"], other.optimizer_G.state_dict()["state"]
        for key in state_a:
            assert_close(state_a[key]["exp_avg_sq"], state_b[key]["exp_avg_sq"], f"exp_avg_sq {key}", rtol=1e-6)
            assert float(state_a[key]["step"]) == float(state_b[key]["step"]) == 2.0


# --------------------------------------------------------------------------------------------- whole steps
def short_run(opt, steps: int, seed: int = 0) -> List[Dict[str, float]]:
    """Train ``steps`` iterations from a fixed seed over the (deterministically ordered) dataset; losses per step."""
    random.seed(seed)
    torch.manual_seed(seed)
    model = create_model(opt)
    model.setup(opt)
    dataset = create_dataset(opt)
    history: List[Dict[str, float]] = []
    while len(history) < steps:
        for data in dataset:
            model.set_input(data)
            model.optimize_parameters()
            history.append(dict(model.get_current_losses()))
            if len(history) == steps:
                break
    return history


def window_mean(history: List[Dict[str, float]], names: List[str], last: int) -> Dict[str, float]:
    """Mean of each loss over the last ``last`` steps."""
    return {n: float(np.mean([h[n] for h in history[-last:]])) for n in names}


# bf16 has an 8-bit mantissa (~0.4 % per value), so single steps of a GAN drift apart quickly; what must hold is
# that training follows the same course: each loss averaged over the last 20 of 60 steps within 15 % (relative)
# of fp32, or within 0.05 absolute for losses near zero. A broken autocast path (wrong casts, NaNs, no learning)
# lands far outside.
BF16_STEPS, BF16_WINDOW, BF16_RTOL, BF16_ATOL = 60, 20, 0.15, 0.05


@pytest.mark.parametrize("model_name,root,extra", [
    ("cycle_gan", "demo", ["--netG", "resnet_6blocks"]),
    ("pix2pix", "demo_pix2pix", ["--netG", "resnet_6blocks", "--no_dropout"]),
])
def test_bf16_short_run_tracks_fp32(model_name: str, root: str, extra: List[str], demo_root: Path,
                                    tmp_path: Path) -> None:
    runs = {}
    for amp in ("none", "bf16"):
        opt = train_opt(demo_root / root, tmp_path, model_name, *extra, "--amp", amp)
        runs[amp] = short_run(opt, BF16_STEPS)
    names = list(runs["none"][0])
    fp32, bf16 = (window_mean(runs[a], names, BF16_WINDOW) for a in ("none", "bf16"))
    first = window_mean(runs["none"][:BF16_WINDOW], names, BF16_WINDOW)
    for name in names:
        assert np.isfinite(bf16[name]), name
        assert abs(bf16[name] - fp32[name]) <= BF16_ATOL + BF16_RTOL * abs(fp32[name]), (name, fp32, bf16)
    # the comparison is meaningful only if training moved: the reconstruction loss fell in fp32
    key = "cycle_A" if model_name == "cycle_gan" else "G_L1"
    assert fp32[key] < first[key], (first, fp32)


def test_fp16_needs_cuda(demo_root: Path, tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available: fp16 is allowed here")
    with pytest.raises(ValueError, match="--amp fp16"):
        create_model(train_opt(demo_root / "demo", tmp_path, "cycle_gan", "--amp", "fp16"))


def test_channels_last_short_run(demo_root: Path, tmp_path: Path) -> None:
    """Whole steps with --channels_last run and save plain checkpoints (step equality: the reference test)."""
    opt = train_opt(demo_root / "demo", tmp_path, "cycle_gan", "--netG", "resnet_6blocks", "--channels_last")
    history = short_run(opt, 2)
    assert all(np.isfinite(v) for h in history for v in h.values())


def compile_usable() -> str:
    """Empty when torch.compile works here, else the reason it does not."""
    try:
        fn = torch.compile(lambda x: torch.relu(x) + 1)
        fn(torch.ones(2))
    except Exception as error:  # noqa: BLE001 - any failure means: not usable on this machine
        return f"{type(error).__name__}: {error}"
    return ""


@pytest.mark.slow
def test_compile_smoke(demo_root: Path, tmp_path: Path) -> None:
    """One training step of a compiled network (the one-network template model: compiling is slow on a CPU)."""
    reason = compile_usable()
    if reason:
        pytest.skip(f"torch.compile is not usable here ({reason})")
    opt = train_opt(demo_root / "demo_pix2pix", tmp_path, "template", "--netG", "resnet_6blocks", "--ngf", "4",
                    "--compile")
    model = create_model(opt)
    model.setup(opt)
    assert hasattr(model.netG, "_orig_mod")
    model.set_input(first_batch(opt))
    before = {k: v.clone() for k, v in unwrap(model.netG).state_dict().items()}
    model.optimize_parameters()
    assert all(np.isfinite(v) for v in model.get_current_losses().values())
    assert any(not torch.equal(before[k], v) for k, v in unwrap(model.netG).state_dict().items())
    model.save_networks("latest")
    saved = torch.load(Path(model.save_dir) / "latest_net_G.pth", weights_only=True)
    assert saved.keys() == before.keys()


# --------------------------------------------------------------------------------------------- test.py
def make_checkpoint(demo_root: Path, tmp_path: Path, name: str) -> Path:
    """Save one tiny CycleGAN (random weights) as ``latest`` and return the checkpoints folder."""
    ckpt = tmp_path / "checkpoints"
    opt = train_opt(demo_root / "demo", ckpt, "cycle_gan", "--netG", "resnet_6blocks", "--name", name)
    torch.manual_seed(0)
    model = create_model(opt)
    model.save_networks("latest")
    return ckpt


def result_images(web_dir: str) -> Dict[str, np.ndarray]:
    """The saved result images of a test.py run by file name."""
    folder = Path(web_dir) / "images"
    return {p.name: np.asarray(Image.open(p)).astype(np.int16) for p in sorted(folder.iterdir())}


def test_batched_inference_equals_batch_of_one(demo_root: Path, tmp_path: Path) -> None:
    ckpt = make_checkpoint(demo_root, tmp_path, "inf")
    common = ["--dataroot", str(demo_root / "demo" / "testA"), "--model", "test", "--model_suffix", "_A",
              "--name", "inf", "--checkpoints_dir", str(ckpt), "--num_test", "4", "--gpu_ids", "-1"]
    images = {}
    for label, flags in {"b1": [], "b3": ["--batch_size", "3"], "bf16": ["--batch_size", "3", "--amp", "bf16"]}.items():
        images[label] = result_images(run_test(common + flags + ["--results_dir", str(tmp_path / label)]))
    assert len(images["b1"]) == 8 and images["b3"].keys() == images["b1"].keys()
    for name, im in images["b1"].items():
        assert np.abs(images["b3"][name] - im).max() <= 1, name  # float summation order only
        assert np.abs(images["bf16"][name] - im).max() <= 16, name  # bf16: a few grey levels



def test_test_py_channels_last_default_equals_contiguous(demo_root: Path, tmp_path: Path) -> None:
    """test.py on the CPU runs channels-last by default (--channels_last auto); the PNGs match the official layout."""
    ckpt = make_checkpoint(demo_root, tmp_path, "cl")
    common = ["--dataroot", str(demo_root / "demo" / "testA"), "--model", "test", "--model_suffix", "_A",
              "--name", "cl", "--checkpoints_dir", str(ckpt), "--num_test", "3", "--gpu_ids", "-1"]
    auto = result_images(run_test(common + ["--results_dir", str(tmp_path / "auto")]))
    off = result_images(run_test(common + ["--channels_last", "off", "--results_dir", str(tmp_path / "off")]))
    assert len(auto) == 6 and auto.keys() == off.keys()
    for name, im in off.items():
        assert np.abs(auto[name] - im).max() <= 1, name  # float summation order only


@pytest.mark.parametrize("netG", networks.list_generators())
@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_channels_last_inference_equals_contiguous(netG: str, norm: str) -> None:
    """Every generator in eval mode gives the same output (to float rounding) with channels-last weights."""
    from models.layers import use_fast_kernels
    from models.wrappers import to_channels_last

    torch.manual_seed(0)
    net = networks.define_G(3, 3, 8, netG, norm, False, "normal", 0.02)
    net.eval()
    other = to_channels_last(use_fast_kernels(copy.deepcopy(net)))
    size = 256 if netG == "unet_256" else 128 if netG == "unet_128" else 40
    x = torch.rand(2, 3, size, size) * 2 - 1
    with torch.inference_mode():
        expected, actual = net(x), other(x)
    assert_close(actual.contiguous(), expected, f"{netG}/{norm}", rtol=1e-4)


@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("channels_last", [False, True])
def test_fast_instance_norm_equals_instance_norm(affine: bool, batch: int, channels_last: bool) -> None:
    """FastInstanceNorm2d's output and its input, weight and bias gradients are the official layer's (float64
    reference with a contiguous incoming gradient), in both memory formats, the layout kept."""
    from models.layers import use_fast_kernels

    torch.manual_seed(0)
    official = torch.nn.InstanceNorm2d(6, affine=affine).double()
    if affine:
        torch.nn.init.normal_(official.weight)
        torch.nn.init.normal_(official.bias)
    fast = use_fast_kernels(copy.deepcopy(official).float())
    x = torch.randn(batch, 6, 5, 7, dtype=torch.float64) * 3 + 1
    g = torch.randn_like(x)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x64, x32 = x.clone().requires_grad_(), x.float().contiguous(memory_format=fmt).requires_grad_()
    expected, actual = official(x64), fast(x32)
    expected.backward(g)
    actual.backward(g.float().contiguous(memory_format=fmt))
    assert actual.is_contiguous(memory_format=fmt)
    assert_close(actual, expected, "output", rtol=1e-5)
    assert_close(x32.grad, x64.grad, "input gradient", rtol=1e-5)
    for name, p in official.named_parameters():
        assert_close(dict(fast.named_parameters())[name].grad, p.grad, f"{name} gradient", rtol=1e-5)


class _ConvWeights(torch.overrides.TorchFunctionMode):
    """Records the weight shape of every ``F.conv2d`` call."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: List[tuple] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: D105 - the mode's hook
        if func is torch.nn.functional.conv2d:
            self.shapes.append(tuple(args[1].shape))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("in_ch,out_ch,kernel,padding", [(8, 3, 7, 0), (8, 3, 7, 3), (16, 1, 4, 1), (4, 3, 3, 1),
                                                         (5, 2, (5, 3), (2, 0)), (6, 4, 7, 0)])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batch", [1, 2])
def test_few_outputs_conv_equals_conv(in_ch: int, out_ch: int, kernel, padding, bias: bool, batch: int) -> None:
    """FewOutputsConv2d: at inference on fp32 CPU inputs (both layouts) it runs by kernel rows and gives the
    official convolution's output (float64 reference), the layout kept; with gradients on (fp32 training) it is the
    official convolution itself. Keys and printed name stay Conv2d's."""
    from models.layers import FewOutputsConv2d, use_fast_kernels

    torch.manual_seed(0)
    official = torch.nn.Conv2d(in_ch, out_ch, kernel, padding=padding, bias=bias).double()
    fast = use_fast_kernels(copy.deepcopy(official).float())
    assert type(fast) is FewOutputsConv2d and repr(fast) == repr(official)
    assert fast.state_dict().keys() == official.state_dict().keys()
    x = torch.randn(batch, in_ch, 19, 23, dtype=torch.float64)
    with torch.no_grad():
        expected = official(x)
    kh, kw = official.kernel_size
    for fmt in (torch.contiguous_format, torch.channels_last):
        x32 = x.float().contiguous(memory_format=fmt)
        with torch.inference_mode(), _ConvWeights() as seen:
            actual = fast(x32)
        assert seen.shapes == [(out_ch * kh, in_ch, 1, kw)]  # the row form ran
        assert_close(actual, expected, f"row form, {fmt}", rtol=1e-5)
        assert actual.is_contiguous(memory_format=fmt) or min(actual.shape[1:]) == 1
        with _ConvWeights() as seen:  # gradients on: the official convolution, bit for bit
            out = fast(x32)
        assert seen.shapes == [tuple(official.weight.shape)]
        assert torch.equal(out, torch.nn.functional.conv2d(x32, fast.weight, fast.bias, 1, fast.padding))


@pytest.mark.parametrize("in_ch,out_ch,kernel,padding", [(8, 3, 7, 0), (8, 3, 7, 3), (16, 1, 4, 1), (4, 3, 3, 1),
                                                         (5, 2, (5, 3), (2, 0)), (6, 4, 7, 0)])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("amx", [False, True], ids=["no_amx", "amx"])
def test_few_outputs_conv_under_bf16_autocast(in_ch: int, out_ch: int, kernel, padding, bias: bool,
                                              batch: int, amx: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under bf16 autocast (``--amp bf16``), in training and at inference, kernels of 5 rows or more run by rows
    on a CPU without AMX tiles: a bf16 output like the official layer's, and output and gradients as close to the
    float64 values as the official layer's under autocast (both layouts); smaller kernels, and every kernel on a
    CPU with AMX, run the official layer itself."""
    import models.layers
    from models.layers import FEW_OUTPUTS_MIN_KERNEL_BF16, use_fast_kernels

    monkeypatch.setattr(models.layers, "has_amx_bf16", lambda: amx)  # whatever this machine's CPU is
    torch.manual_seed(0)
    official = torch.nn.Conv2d(in_ch, out_ch, kernel, padding=padding, bias=bias)
    fast = use_fast_kernels(copy.deepcopy(official))
    reference = copy.deepcopy(official).double()
    x = torch.randn(batch, in_ch, 19, 23)
    x64 = x.double().requires_grad_(True)
    expected = reference(x64)
    out_grad = torch.randn_like(expected)
    expected.backward(out_grad)
    by_rows = official.kernel_size[0] >= FEW_OUTPUTS_MIN_KERNEL_BF16 and not amx

    def run(conv: torch.nn.Conv2d, x_in: torch.Tensor) -> tuple:
        x_in = x_in.clone().requires_grad_(True)
        conv.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16), _ConvWeights() as seen:
            y = conv(x_in)
        y.backward(out_grad.to(y.dtype))
        return seen.shapes, y, x_in.grad, conv.weight.grad

    for fmt in (torch.contiguous_format, torch.channels_last):
        x_in = x.bfloat16().contiguous(memory_format=fmt)  # the bf16 activations of the layers before
        shapes, y, x_grad, w_grad = run(fast, x_in)
        kh, kw = official.kernel_size
        assert shapes == ([(out_ch * kh, in_ch, 1, kw)] if by_rows else [tuple(official.weight.shape)])
        _, y_off, x_grad_off, w_grad_off = run(official, x_in)
        assert y.dtype == y_off.dtype == torch.bfloat16
        for name, got, official_got, want in (("output", y, y_off, expected), ("input gradient", x_grad, x_grad_off,
                                               x64.grad), ("weight gradient", w_grad, w_grad_off, reference.weight.grad)):
            error = (got.double() - want).abs().max().item()
            official_error = (official_got.double() - want).abs().max().item()
            # the row form rounds each row's partial result to bf16: allow twice the official layer's error
            assert error <= 2 * official_error + 1e-6, f"{name}, {fmt}: {error:.3g} vs official {official_error:.3g}"
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16), _ConvWeights() as seen:
            fast(x_in)
        assert seen.shapes == shapes


@pytest.mark.parametrize("conv", [torch.nn.Conv2d(64, 3, 7, stride=2), torch.nn.Conv2d(64, 3, 7, dilation=2),
                                  torch.nn.Conv2d(6, 3, 7, groups=3), torch.nn.Conv2d(64, 3, 7, padding="same"),
                                  torch.nn.Conv2d(64, 3, 7, padding=3, padding_mode="reflect"),
                                  torch.nn.Conv2d(64, 3, 1), torch.nn.Conv2d(64, 8, 7), torch.nn.Conv2d(3, 64, 7)],
                         ids=repr)
def test_few_outputs_conv_only_where_it_applies(conv: torch.nn.Conv2d) -> None:
    """Strided, dilated, grouped, non-zero-padded, one-row and many-output convolutions stay official."""
    from models.layers import use_fast_kernels

    assert type(use_fast_kernels(conv)) is torch.nn.Conv2d
