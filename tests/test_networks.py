"""Every generator, discriminator, norm, GAN mode and LR policy: shapes, layouts, counts, losses, schedules."""
from __future__ import annotations

import argparse
import math
from collections import OrderedDict

import pytest
import torch
import torch.nn as nn

from models import checkpoint_io, networks

GENERATORS = networks.list_generators()
DISCRIMINATORS = networks.list_discriminators()
NORMS = [n for n in networks.list_norms() if n != "syncbatch"]  # SyncBatchNorm needs a process group to run
ALL_NORMS = networks.list_norms()


def small_G(netG: str, norm: str = "instance", dropout: bool = False, upsample: str = "deconv",
            in_nc: int = 3, out_nc: int = 3, ngf: int = 4) -> nn.Module:
    """A small generator for shape tests."""
    torch.manual_seed(0)
    return networks.define_G(in_nc, out_nc, ngf, netG, norm, dropout, upsample=upsample)


# ----------------------------------------------------------------------------- shapes
# Generators with the --norm, --no_dropout and --upsample variants, and the StyleGAN2 ones (SinCUT), which have no
# normalization or dropout and refuse --upsample: one case each.
UPSAMPLING_GENERATORS = [g for g in GENERATORS if g not in networks.STYLEGAN2_GENERATORS]
SHAPE_CASES = [(g, n, d, u) for g in UPSAMPLING_GENERATORS for n in NORMS for d in (False, True)
               for u in networks.UPSAMPLE_MODES] + [(g, "none", False, "deconv") for g in networks.STYLEGAN2_GENERATORS]


@pytest.mark.parametrize("netG, norm, dropout, upsample", SHAPE_CASES)
def test_generator_output_shapes(netG: str, norm: str, dropout: bool, upsample: str) -> None:
    net = small_G(netG, norm, dropout, upsample, in_nc=3, out_nc=2).eval()
    native = 128 if netG == "unet_128" else (256 if netG == "unet_256" else 32)
    for h, w in [(native, native), (37, 53)]:
        with torch.no_grad():
            y = net(torch.randn(2, 3, h, w))
        assert y.shape == (2, 2, h, w)
        if any(isinstance(m, nn.Tanh) for m in net.modules()):  # StyleGAN2's output is not squashed (CUT code)
            assert y.abs().max() <= 1.0  # Tanh output


@pytest.mark.parametrize("norm", ALL_NORMS)
@pytest.mark.parametrize("netG", GENERATORS)
def test_generator_builds_with_every_norm(netG: str, norm: str) -> None:
    net = small_G(netG, norm)
    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
    assert has_bn == (norm in ("batch", "syncbatch") and getattr(net, "takes_norm", True))


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("netD", DISCRIMINATORS)
def test_discriminator_output_shapes(netD: str, norm: str) -> None:
    torch.manual_seed(0)
    net = networks.define_D(3, 4, netD, n_layers_D=3, norm=norm).eval()
    for size in (64, 256):
        geo = networks.discriminator_geometry(net, size)
        with torch.no_grad():
            y = net(torch.randn(2, 3, size, size))
        if getattr(net, "judges_whole_image", False):  # StyleGAN2's: one logit per image
            assert y.shape == (2, 1) and geo == {"receptive_field": size, "output_size": 1}
        else:
            assert y.shape == (2, 1, geo["output_size"], geo["output_size"])


@pytest.mark.parametrize("netD,n_layers,rf,out256", [("basic", 3, 70, 30), ("pixel", 3, 1, 256),
                                                     ("n_layers", 4, 142, 14), ("n_layers", 3, 70, 30)])
def test_receptive_fields(netD: str, n_layers: int, rf: int, out256: int) -> None:
    net = networks.define_D(3, 8, netD, n_layers_D=n_layers, norm="instance")
    geo = networks.discriminator_geometry(net, 256)
    assert geo == {"receptive_field": rf, "output_size": out256}


def test_receptive_field_matches_gradient_support() -> None:
    """The reported receptive field equals the input region that influences one output pixel."""
    net = networks.define_D(1, 4, "basic", norm="none")
    x = torch.zeros(1, 1, 160, 160, requires_grad=True)
    y = net(x)
    y[0, 0, y.shape[2] // 2, y.shape[3] // 2].backward()
    rows = (x.grad[0, 0].abs().sum(1) > 0).nonzero()
    assert rows.max() - rows.min() + 1 == networks.discriminator_geometry(net, 160)["receptive_field"]


# ----------------------------------------------------------------------------- parameter counts
@pytest.mark.parametrize("build,count", [
    (lambda: networks.define_G(3, 3, 64, "resnet_9blocks", "instance"), 11_378_179),
    (lambda: networks.define_G(3, 3, 64, "resnet_6blocks", "instance"), 7_837_699),
    (lambda: networks.define_D(3, 64, "basic", norm="instance"), 2_764_737),
    (lambda: networks.define_D(6, 64, "basic", norm="batch"), 2_768_705),
])
def test_official_parameter_counts(build, count: int) -> None:
    assert networks.count_parameters(build()) == count


def test_unet256_parameter_count_prints_as_official() -> None:
    n = networks.count_parameters(networks.define_G(3, 3, 64, "unet_256", "batch", use_dropout=True))
    assert "%.3f M" % (n / 1e6) == "54.414 M"


# ----------------------------------------------------------------------------- key layouts
def expected_resnet_keys(n_blocks: int, dropout: bool, norm: str) -> list:
    """Key list written out from the official ResNet generator's layout (independent of networks.py)."""
    bias = norm == "instance"
    bn = norm == "batch"

    def conv(i: int, has_bias: bool) -> list:
        return [f"model.{i}.weight"] + ([f"model.{i}.bias"] if has_bias else [])

    def normk(prefix: str) -> list:
        return [f"{prefix}.{s}" for s in ("weight", "bias", "running_mean", "running_var",
                                          "num_batches_tracked")] if bn else []

    keys = conv(1, bias) + normk("model.2") + conv(4, bias) + normk("model.5") + conv(7, bias) + normk("model.8")
    second = 6 if dropout else 5
    for b in range(10, 10 + n_blocks):
        p = f"model.{b}.conv_block"
        keys += [f"{p}.1.weight"] + ([f"{p}.1.bias"] if bias else []) + normk(f"{p}.2")
        keys += [f"{p}.{second}.weight"] + ([f"{p}.{second}.bias"] if bias else []) + normk(f"{p}.{second + 1}")
    up = 10 + n_blocks
    keys += conv(up, bias) + normk(f"model.{up + 1}") + conv(up + 3, bias) + normk(f"model.{up + 4}")
    keys += conv(up + 7, True)
    return keys


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("dropout", [False, True])
@pytest.mark.parametrize("netG,n_blocks", [("resnet_9blocks", 9), ("resnet_6blocks", 6)])
def test_resnet_key_layout(netG: str, n_blocks: int, dropout: bool, norm: str) -> None:
    net = small_G(netG, norm, dropout)
    assert list(net.state_dict()) == expected_resnet_keys(n_blocks, dropout, norm)


def test_spot_check_official_keys() -> None:
    g = networks.define_G(3, 3, 8, "resnet_9blocks", "instance", use_dropout=False).state_dict()
    assert "model.10.conv_block.5.weight" in g and "model.19.weight" in g and "model.26.bias" in g
    g = networks.define_G(3, 3, 8, "resnet_9blocks", "instance", use_dropout=True).state_dict()
    assert "model.10.conv_block.6.weight" in g and "model.10.conv_block.5.weight" not in g
    u = networks.define_G(3, 3, 8, "unet_256", "batch", use_dropout=True).state_dict()
    inner = "model.model.1" + ".model.3" * 6 + ".model."
    assert {inner + "1.weight", inner + "3.weight", inner + "4.running_mean"} <= set(u)
    assert {"model.model.0.weight", "model.model.3.weight", "model.model.3.bias",
            "model.model.1.model.1.weight", "model.model.1.model.2.running_var",
            "model.model.1.model.5.weight", "model.model.1.model.6.weight"} <= set(u)
    assert "model.model.0.bias" not in u and "model.model.1.model.1.bias" not in u  # batch norm: no conv bias
    d = networks.define_D(3, 8, "basic", norm="instance").state_dict()
    assert list(d) == ["model.0.weight", "model.0.bias", "model.2.weight", "model.2.bias", "model.5.weight",
                       "model.5.bias", "model.8.weight", "model.8.bias", "model.11.weight", "model.11.bias"]
    p = networks.define_D(3, 8, "pixel", norm="batch").state_dict()
    assert "net.0.bias" in p and "net.5.weight" in p and "net.5.bias" not in p and "net.3.running_mean" in p


def test_unet_dropout_placement() -> None:
    for netG, n_drop in (("unet_256", 3), ("unet_128", 2)):
        net = networks.define_G(3, 3, 8, netG, "batch", use_dropout=True)
        assert sum(isinstance(m, nn.Dropout) for m in net.modules()) == n_drop


@pytest.mark.parametrize("netG", UPSAMPLING_GENERATORS)
def test_resize_conv_keeps_other_keys(netG: str) -> None:
    a = set(small_G(netG, "instance").state_dict())
    b = set(small_G(netG, "instance", upsample="bilinear").state_dict())
    # only the upsampling convolutions change: X.weight -> X.2.weight (Upsample, ReflectionPad2d, Conv2d)
    assert b - a and len(b - a) == len(a - b)
    assert {k[: -len(".2.weight")] + ".weight" if k.endswith(".2.weight") else k[: -len(".2.bias")] + ".bias"
            for k in b - a} == a - b
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in small_G(netG, upsample="nearest").modules())


# ----------------------------------------------------------------------------- init
@pytest.mark.parametrize("init_type", networks.INIT_TYPES)
def test_init_types(init_type: str) -> None:
    torch.manual_seed(0)
    net = networks.define_D(3, 16, "basic", norm="batch", init_type=init_type, init_gain=0.02)
    conv = net.model[2]
    assert conv.weight.std() > 0
    assert torch.all(net.model[0].bias == 0)
    bn = net.model[3]
    assert abs(bn.weight.mean().item() - 1.0) < 0.05 and torch.all(bn.bias == 0)
    if init_type == "normal":
        assert abs(conv.weight.std().item() - 0.02) < 0.002


def test_unknown_names_list_valid_ones() -> None:
    with pytest.raises(ValueError, match="unet_256"):
        networks.define_G(3, 3, 8, "unet_512")
    with pytest.raises(ValueError, match="pixel"):
        networks.define_D(3, 8, "patch")
    with pytest.raises(ValueError, match="instance"):
        networks.get_norm_layer("sync_batch")
    with pytest.raises(ValueError, match="orthogonal"):
        networks.define_G(3, 3, 8, "unet_128", init_type="uniform")
    with pytest.raises(ValueError, match="bilinear"):
        networks.define_G(3, 3, 8, "unet_128", upsample="pixelshuffle")


# ----------------------------------------------------------------------------- checkpoint loading
def official_style(sd: "OrderedDict[str, torch.Tensor]", net: nn.Module) -> "OrderedDict[str, torch.Tensor]":
    """A pre-0.4 style state dict: InstanceNorm layers carry running stats, with _metadata."""
    out = OrderedDict()
    for name, m in net.named_modules():
        if isinstance(m, nn.InstanceNorm2d):
            out[f"{name}.running_mean"] = torch.zeros(m.num_features)
            out[f"{name}.running_var"] = torch.ones(m.num_features)
    out.update(sd)
    out._metadata = OrderedDict()  # type: ignore[attr-defined]
    return out


def roundtrip(tmp_path, sd, name: str = "x.pth") -> str:
    path = tmp_path / name
    torch.save(sd, path)
    return str(path)


def outputs_equal(a: nn.Module, b: nn.Module, size: int = 32) -> bool:
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return torch.equal(a.eval()(x), b.eval()(x))


def test_load_legacy_instance_norm_checkpoint(tmp_path) -> None:
    src = small_G("resnet_6blocks", "instance", ngf=8)
    legacy_sd = official_style(src.state_dict(), src)
    assert any(k.endswith("running_mean") for k in legacy_sd)
    dst = networks.define_G(3, 3, 8, "resnet_6blocks", "instance", init_type="xavier")
    checkpoint_io.load_network(dst, roundtrip(tmp_path, legacy_sd))
    assert outputs_equal(src, dst)


def test_load_module_and_compile_prefixes(tmp_path) -> None:
    src = small_G("unet_128", "batch", ngf=4)
    wrapped = OrderedDict(("module._orig_mod." + k, v) for k, v in src.state_dict().items())
    dst = small_G("unet_128", "batch", ngf=4)
    networks.init_weights(dst, "kaiming")
    checkpoint_io.load_network(dst, roundtrip(tmp_path, wrapped))
    assert outputs_equal(src, dst, size=128)


def test_load_batchnorm_without_num_batches_tracked(tmp_path) -> None:
    src = networks.define_D(6, 8, "basic", norm="batch")
    old = OrderedDict((k, v) for k, v in src.state_dict().items() if not k.endswith("num_batches_tracked"))
    dst = networks.define_D(6, 8, "basic", norm="batch", init_type="xavier")
    checkpoint_io.load_network(dst, roundtrip(tmp_path, old))
    x = torch.randn(1, 6, 64, 64)
    assert torch.equal(src.eval()(x), dst.eval()(x))


def test_saved_file_is_plain_and_reloads(tmp_path) -> None:
    net = nn.parallel.DataParallel(small_G("resnet_6blocks"))
    path = tmp_path / "latest_net_G.pth"
    checkpoint_io.save_weights(checkpoint_io.plain_state_dict(net.module), path)
    sd = torch.load(path, weights_only=True)
    assert not any(k.startswith("module.") for k in sd)
    assert all(v.device.type == "cpu" for v in sd.values())
    checkpoint_io.load_network(small_G("resnet_6blocks"), path)


@pytest.mark.parametrize("built,saved,flag", [
    (dict(netG="resnet_9blocks", dropout=True), dict(netG="resnet_9blocks", dropout=False), "--no_dropout"),
    (dict(netG="resnet_9blocks"), dict(netG="unet_256", norm="batch"), "--netG unet_256"),
    (dict(netG="resnet_6blocks", norm="instance"), dict(netG="resnet_6blocks", norm="batch"), "--norm batch"),
    (dict(netG="resnet_6blocks", in_nc=3), dict(netG="resnet_6blocks", in_nc=1), "--input_nc"),
    (dict(netG="resnet_6blocks", ngf=4), dict(netG="resnet_6blocks", ngf=8), "--ngf"),
    (dict(netG="resnet_6blocks"), dict(netG="resnet_9blocks"), "--netG resnet_9blocks"),
])
def test_mismatch_names_the_flag(tmp_path, built: dict, saved: dict, flag: str) -> None:
    path = roundtrip(tmp_path, small_G(**saved).state_dict())
    with pytest.raises(checkpoint_io.CheckpointError, match=flag):
        checkpoint_io.load_network(small_G(**built), path)


def test_malicious_pickle_is_refused(tmp_path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pth"
    torch.save({"model.0.weight": Evil()}, path)
    with pytest.raises(checkpoint_io.CheckpointError, match="refusing"):
        checkpoint_io.read_weights(path)
    assert not marker.exists()


# ----------------------------------------------------------------------------- losses
@pytest.mark.parametrize("gan_mode", networks.GAN_MODES)
def test_gan_loss_values(gan_mode: str) -> None:
    pred = torch.tensor([[0.3, -1.2], [2.0, 0.0]])
    loss = networks.GANLoss(gan_mode)
    real, fake = loss(pred, True).item(), loss(pred, False).item()
    p = pred.flatten().tolist()
    if gan_mode == "lsgan":
        exp_real = sum((x - 1) ** 2 for x in p) / 4
        exp_fake = sum(x ** 2 for x in p) / 4
    elif gan_mode in ("vanilla", "nonsaturating"):  # softplus(-x) / softplus(x): the same values
        exp_real = sum(math.log1p(math.exp(-x)) for x in p) / 4
        exp_fake = sum(math.log1p(math.exp(x)) for x in p) / 4
    else:
        exp_real, exp_fake = -sum(p) / 4, sum(p) / 4
    assert real == pytest.approx(exp_real, rel=1e-6)
    assert fake == pytest.approx(exp_fake, rel=1e-6)


def test_gan_loss_unknown_mode() -> None:
    with pytest.raises(ValueError, match="wgangp"):
        networks.GANLoss("hinge")


@pytest.mark.parametrize("gp_type", ["real", "fake", "mixed"])
def test_gradient_penalty_matches_finite_differences(gp_type: str) -> None:
    torch.manual_seed(0)
    netD = networks.define_D(1, 2, "pixel", norm="none").double()
    real = torch.randn(2, 1, 3, 3, dtype=torch.float64)
    fake = torch.randn(2, 1, 3, 3, dtype=torch.float64)
    torch.manual_seed(5)
    penalty, grads = networks.cal_gradient_penalty(netD, real, fake, "cpu", type=gp_type, lambda_gp=10.0)
    torch.manual_seed(5)
    if gp_type == "mixed":
        alpha = torch.rand(2, 1).view(2, 1, 1, 1).to(torch.float64)
        x = alpha * real + (1 - alpha) * fake
    else:
        x = real if gp_type == "real" else fake
    eps = 1e-6
    fd = torch.zeros_like(x)
    with torch.no_grad():
        for idx in range(x.numel()):
            d = torch.zeros_like(x).view(-1)
            d[idx] = eps
            d = d.view_as(x)
            fd.view(-1)[idx] = (netD(x + d).sum() - netD(x - d).sum()) / (2 * eps)
    norms = fd.view(2, -1).norm(2, dim=1)
    expected = ((norms - 1.0) ** 2).mean() * 10.0
    assert torch.allclose(grads, fd.view(2, -1), atol=1e-6)
    assert penalty.item() == pytest.approx(expected.item(), rel=1e-5)
    assert networks.cal_gradient_penalty(netD, real, fake, "cpu", lambda_gp=0.0) == (0.0, None)


# ----------------------------------------------------------------------------- schedules
def sched_opt(**kw) -> argparse.Namespace:
    base = dict(lr_policy="linear", epoch_count=1, n_epochs=5, n_epochs_decay=5, lr_decay_iters=3)
    base.update(kw)
    return argparse.Namespace(**base)


def lrs_over_epochs(opt: argparse.Namespace, epochs: int) -> list:
    """LR used in epoch 1..epochs when the scheduler steps at the end of each epoch."""
    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([param], lr=0.0002)
    scheduler = networks.get_scheduler(optimizer, opt)
    out = []
    for _ in range(epochs):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step(0.0) if opt.lr_policy == "plateau" else scheduler.step()
    return out


@pytest.mark.parametrize("policy", networks.LR_POLICIES)
@pytest.mark.parametrize("epoch_count", [1, 4])
def test_lr_policies_follow_formulas(policy: str, epoch_count: int) -> None:
    opt = sched_opt(lr_policy=policy, epoch_count=epoch_count)
    got = lrs_over_epochs(opt, 12)
    lr0 = 0.0002
    for k, lr in enumerate(got):  # k = scheduler steps taken so far
        if policy == "linear":
            expected = lr0 * (1.0 - max(0, k + epoch_count - 5) / 6.0)
        elif policy == "step":
            expected = lr0 * 0.1 ** (k // 3)
        elif policy == "cosine":
            expected = lr0 * (1 + math.cos(math.pi * k / 5)) / 2
        else:  # plateau, constant metric: the 1st step sets the best, then 0.2x after every 6 bad epochs
            expected = lr0 * 0.2 ** max(0, (k - 1) // 6)
        assert lr == pytest.approx(expected, rel=1e-6, abs=1e-12), (policy, k)


def test_linear_policy_official_epochs() -> None:
    """n_epochs=100, n_epochs_decay=100: epochs 1..100 full LR, epoch 101 at 100/101, epoch 200 at 1/101."""
    got = lrs_over_epochs(sched_opt(n_epochs=100, n_epochs_decay=100), 200)
    assert got[99] == pytest.approx(0.0002)
    assert got[100] == pytest.approx(0.0002 * 100 / 101)
    assert got[199] == pytest.approx(0.0002 * 1 / 101)


def test_unknown_lr_policy_raises() -> None:
    with pytest.raises(ValueError, match="cosine"):
        lrs_over_epochs(sched_opt(lr_policy="exponential"), 1)


@pytest.mark.parametrize("pad", [(1, 1, 1, 1), (3, 3, 3, 3), (2, 1, 0, 3)])
def test_half_precision_reflection_pad_backward_is_the_native_one(pad) -> None:
    """The CPU's faster backward of bf16 reflection pads (models/layers.py) gives the native gradients: exactly in
    float64 (also through a second backward), to bf16 rounding in bf16."""
    from models.layers import ReflectionPad2dKeepDtype, _ReflectionPad2dFold
    torch.manual_seed(0)
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: _ReflectionPad2dFold.apply(t, pad), (x,))
    assert torch.autograd.gradgradcheck(lambda t: _ReflectionPad2dFold.apply(t, pad), (x,))
    layer = ReflectionPad2dKeepDtype(pad)
    xb = x.detach().to(torch.bfloat16).requires_grad_()
    g = torch.randn(2, 3, 7 + pad[2] + pad[3], 6 + pad[0] + pad[1], dtype=torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(xb)
    assert y.dtype == torch.bfloat16 and y.grad_fn.name().endswith("_ReflectionPad2dFoldBackward")
    (ours,) = torch.autograd.grad(y, xb, g)
    (native,) = torch.autograd.grad(nn.functional.pad(xb, pad, mode="reflect"), xb, g)
    assert torch.equal(y, nn.functional.pad(xb, pad, mode="reflect"))
    torch.testing.assert_close(ours.float(), native.float(), rtol=2e-2, atol=2e-2)
