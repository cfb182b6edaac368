"""--model cut (CUT and FastCUT): options per mode, training steps for every netF and batch size, flip and
identity NCE, grayscale, the decay-epoch data rule, AMP/channels-last/compile, and the data-dependent init."""
from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import List

import numpy as np
import pytest
import torch

from conftest import load_script, tiny_flags
from data import create_dataset
from models import checkpoint_io, create_model, networks, wrappers
from models.base_model import unwrap
from models.cut_model import CUTModel
from options.test_options import TestOptions
from options.train_options import TrainOptions
from test_cut_networks import direct_patchnce

MODES = {"CUT": dict(lambda_NCE=1.0, nce_idt=True, flip_equivariance=False, n_epochs=200, n_epochs_decay=200),
         "FastCUT": dict(lambda_NCE=10.0, nce_idt=False, flip_equivariance=True, n_epochs=150, n_epochs_decay=50)}
# the smallest CUT that keeps every part: 6 blocks, ngf/ndf 4, few patches, narrow heads
SMALL = ["--netG", "resnet_6blocks", "--ngf", "4", "--ndf", "4", "--num_patches", "8", "--netF_nc", "8"]


def parse_train(tmp_path: Path, *argv: str) -> argparse.Namespace:
    return TrainOptions().parse(["--dataroot", str(tmp_path), "--checkpoints_dir", str(tmp_path / "ck"),
                                 "--gpu_ids", "-1", *argv], save=False)


def parse_test(tmp_path: Path, *argv: str) -> argparse.Namespace:
    return TestOptions().parse(["--dataroot", str(tmp_path), "--checkpoints_dir", str(tmp_path / "ck"),
                                "--gpu_ids", "-1", *argv], save=False)


def cut_opt(demo_root: Path, tmp_path: Path, *extra: str) -> argparse.Namespace:
    return TrainOptions().parse(["--dataroot", str(demo_root / "demo"), "--model", "cut",
                                 *tiny_flags("cut", tmp_path), *SMALL, "--display_id", "0", *extra], save=False)


def batch_of(opt: argparse.Namespace):
    return next(iter(create_dataset(opt)))


def ready_model(opt: argparse.Namespace) -> CUTModel:
    """Created, data-dependently initialised on the first batch, set up (the training loop's order)."""
    model = create_model(opt)
    model.data_dependent_initialize(batch_of(opt))
    model.setup(opt)
    return model


# ----------------------------------------------------------------------------- options
@pytest.mark.parametrize("spelling,mode", [("CUT", "CUT"), ("cut", "CUT"), ("Cut", "CUT"), ("FastCUT", "FastCUT"),
                                           ("fastcut", "FastCUT"), ("FASTCUT", "FastCUT")])
def test_mode_defaults(spelling: str, mode: str, tmp_path: Path) -> None:
    """--CUT_mode in any case sets its defaults; it also selects --model cut when --model is not given."""
    for opt in (parse_train(tmp_path, "--CUT_mode", spelling), parse_train(tmp_path, f"--CUT_mode={spelling}",
                                                                         "--model", "cut")):
        assert opt.model == "cut" and opt.CUT_mode == mode
        assert {k: getattr(opt, k) for k in MODES[mode]} == MODES[mode]
    test = parse_test(tmp_path, "--CUT_mode", spelling)
    assert test.model == "cut" and test.CUT_mode == mode and test.nce_idt == MODES[mode]["nce_idt"]
    assert not hasattr(test, "n_epochs")


def test_cut_repository_defaults(tmp_path: Path) -> None:
    opt = parse_train(tmp_path, "--model", "cut")
    assert (opt.init_type, opt.init_gain, opt.no_dropout, opt.pool_size, opt.beta1, opt.beta2) == \
        ("xavier", 0.02, True, 0, 0.5, 0.999)
    assert (opt.lambda_GAN, opt.nce_layers, opt.netF, opt.netF_nc, opt.nce_T, opt.num_patches) == \
        (1.0, "0,4,8,12,16", "mlp_sample", 256, 0.07, 256)
    assert (opt.normG, opt.normD, opt.no_antialias, opt.no_antialias_up) == ("instance", "instance", False, False)
    assert opt.nce_includes_all_negatives_from_minibatch is False and opt.pretrained_name is None
    assert opt.evaluation_freq == 5000 and opt.load_crop_size_in_decay is True
    assert (opt.gan_mode, opt.lr, opt.netG, opt.netD, opt.load_size, opt.crop_size) == \
        ("lsgan", 0.0002, "resnet_9blocks", "basic", 286, 256)
    other = parse_train(tmp_path)  # the CUT defaults are --model cut's only
    assert (other.model, other.init_type, other.n_epochs, other.pool_size, other.load_crop_size_in_decay) == \
        ("cycle_gan", "normal", 100, 50, False)
    assert not hasattr(other, "beta2") and not hasattr(other, "normG")


@pytest.mark.parametrize("flags,expected", [
    (["--CUT_mode", "fastcut", "--nce_idt"], dict(CUT_mode="FastCUT", nce_idt=True, lambda_NCE=10.0)),
    (["--CUT_mode", "CUT", "--nce_idt", "False", "--flip_equivariance"], dict(nce_idt=False, flip_equivariance=True)),
    (["--CUT_mode", "FastCUT", "--lambda_NCE", "2", "--n_epochs", "5"], dict(lambda_NCE=2.0, n_epochs=5,
                                                                           n_epochs_decay=50)),
    (["--model", "cut", "--no_dropout", "False"], dict(no_dropout=False)),
    (["--model", "cut", "--no_dropout"], dict(no_dropout=True)),
    (["--model", "cut", "--norm", "batch"], dict(normG="batch", normD="batch")),
    (["--model", "cut", "--norm", "batch", "--normD", "none"], dict(normG="batch", normD="none")),
    (["--model", "cut", "--pool_size", "4", "--init_type", "normal"], dict(pool_size=4, init_type="normal")),
    (["--model", "cut", "--load_crop_size_in_decay", "False"], dict(load_crop_size_in_decay=False)),
    (["--CUT_mode", "CUT", "--evaluation_freq", "7", "--beta2", "0.99"], dict(evaluation_freq=7, beta2=0.99)),
])
def test_explicit_flags_win(flags: List[str], expected: dict, tmp_path: Path) -> None:
    opt = parse_train(tmp_path, *flags)
    assert {k: getattr(opt, k) for k in expected} == expected


@pytest.mark.parametrize("flags,expected", [
    (["--netG", "unet_256"], "--netG unet_256"),
    (["--netF", "strided_conv"], "--netF"),
    (["--normG", "group"], "--normG"),
    (["--nce_layers", "0,4,x"], "--nce_layers"),
    (["--nce_layers", "16,0"], "--nce_layers"),
    (["--nce_layers", "0,32"], "--nce_layers"),
    (["--netG", "resnet_6blocks", "--nce_layers", "0,4,8,12,29"], "between 0 and 28"),
    (["--input_nc", "1"], "--input_nc 1 and --output_nc 3"),
    (["--CUT_mode", "FastCUT", "--input_nc", "1"], "--input_nc 1 and --output_nc 3"),
    (["--upsample", "nearest"], "--no_antialias_up"),
    (["--num_patches", "-1"], "--num_patches"),
    (["--nce_T", "0"], "--nce_T"),
    (["--lambda_NCE", "-1"], "--lambda_NCE"),
    (["--beta2", "1"], "--beta2"),
    (["--dataset_mode", "single"], "--dataset_mode single"),
    (["--pretrained_name", "other"], "--continue_train"),
    (["--pretrained_name", "missing", "--continue_train"], "does not exist"),
])
def test_bad_values_name_the_flag(flags: List[str], expected: str, tmp_path: Path, capsys) -> None:
    """A value outside its range is refused by argparse (one error line); other checks raise ValueError."""
    try:
        parse_train(tmp_path, "--model", "cut", *flags)
    except ValueError as err:
        message = str(err)
    except SystemExit as stopped:
        assert stopped.code == 2
        message = capsys.readouterr().err.strip().splitlines()[-1]
    else:
        pytest.fail(f"{flags} was accepted")
    assert expected in message and "\n" not in message, message


def test_scripts_give_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for flags, expected in ((["--CUT_mode", "SlowCUT"], "argument --CUT_mode: 'SlowCUT' is not a mode"),
                            (["--CUT_mode", "CUT", "--input_nc", "1"], "error: --input_nc 1 and --output_nc 3")):
        with pytest.raises(SystemExit) as exit_info:
            load_script("train").main(["--dataroot", str(tmp_path), "--checkpoints_dir", str(tmp_path / "ck"),
                                       *flags])
        assert exit_info.value.code == 2
        assert expected in capsys.readouterr().err.strip().splitlines()[-1]


def test_grayscale_and_antialias_off_parse(tmp_path: Path) -> None:
    opt = parse_train(tmp_path, "--model", "cut", "--input_nc", "1", "--output_nc", "1", "--no_antialias",
                      "--no_antialias_up", "--upsample", "bilinear", "--nce_layers", "0,4,8,12,16,26")
    assert (opt.input_nc, opt.output_nc, opt.upsample) == (1, 1, "bilinear")
    parse_train(tmp_path, "--model", "cut", "--input_nc", "1", "--lambda_NCE", "0", "--nce_idt", "False")


# ----------------------------------------------------------------------------- training steps
def step_and_check(model: CUTModel, opt: argparse.Namespace, batch) -> None:
    """One optimize_parameters: finite losses in order, every trainable network moved, visuals present."""
    before = {n: copy.deepcopy(unwrap(net).state_dict()) for n, net in model.named_networks().items()}
    model.set_input(batch)
    model.optimize_parameters()
    losses = model.get_current_losses()
    expected = ["G_GAN", "D_real", "D_fake", "G", "NCE"] + (["NCE_Y"] if opt.nce_idt else [])
    assert list(losses) == expected and all(np.isfinite(v) for v in losses.values()), losses
    assert list(model.get_current_visuals()) == ["real_A", "fake_B", "real_B"] + (["idt_B"] if opt.nce_idt else [])
    for name, net in model.named_networks().items():
        if not list(net.parameters()):
            continue
        moved = any(not torch.equal(before[name][k], v) for k, v in unwrap(net).state_dict().items())
        assert moved, f"{name} was not updated"


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("netF", networks.list_feature_networks())
@pytest.mark.parametrize("mode", list(MODES))
def test_every_mode_netF_and_batch_trains(mode: str, netF: str, batch: int, demo_root: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    opt = cut_opt(demo_root, tmp_path, "--CUT_mode", mode, "--netF", netF, "--batch_size", str(batch))
    torch.manual_seed(0)
    model = ready_model(opt)
    assert model.model_names == ["G", "F", "D"]
    has_heads = netF == "mlp_sample"
    assert (model.optimizer_F is not None) == has_heads and len(model.optimizers) == 2 + has_heads
    assert len(model.schedulers) == len(model.optimizers)  # F's optimizer was there before setup()
    if has_heads:
        assert networks.count_parameters(model.netF) > 0
    seen = []
    real_crit = model.criterionNCE.forward
    monkeypatch.setattr(model.criterionNCE, "forward", lambda q, k, batch_size=None: (
        seen.append(batch_size), real_crit(q, k, batch_size))[1])
    step_and_check(model, opt, batch_of(opt))
    n_calls = 5 * (2 if opt.nce_idt else 1)
    assert seen == [batch] * n_calls  # grouped by the batch at hand


@pytest.mark.parametrize("aa", [(True, True), (True, False), (False, True)], ids=["both-off", "up-on", "down-on"])
def test_antialias_settings_train(aa, demo_root: Path, tmp_path: Path) -> None:
    flags = [f for f, off in zip(("--no_antialias", "--no_antialias_up"), aa) if off]
    opt = cut_opt(demo_root, tmp_path, *flags, "--nce_layers", "0,2,4,8,12")
    model = ready_model(opt)
    assert checkpoint_io.antialias_layout(model.netG.state_dict()) == \
        {"no_antialias": aa[0], "no_antialias_up": aa[1]}
    step_and_check(model, opt, batch_of(opt))


def test_short_last_batch_and_lambda_zero(demo_root: Path, tmp_path: Path) -> None:
    """A batch smaller than --batch_size trains (grouping by the real batch); lambda_NCE 0 has no F optimizer."""
    opt = cut_opt(demo_root, tmp_path, "--batch_size", "3")
    model = ready_model(opt)
    batch = batch_of(opt)
    short = {k: v[:1] for k, v in batch.items()}
    step_and_check(model, opt, short)
    opt0 = cut_opt(demo_root, tmp_path, "--lambda_NCE", "0")
    model0 = ready_model(opt0)
    assert model0.optimizer_F is None and not list(model0.netF.parameters())
    model0.set_input(batch_of(opt0))
    model0.optimize_parameters()
    assert model0.get_current_losses()["NCE"] == 0.0


def test_setup_without_data_dependent_init_is_refused(demo_root: Path, tmp_path: Path) -> None:
    opt = cut_opt(demo_root, tmp_path)
    model = create_model(opt)
    model.setup(opt)
    model.set_input(batch_of(opt))
    with pytest.raises(RuntimeError, match="data_dependent_initialize"):
        model.optimize_parameters()


def test_grayscale_trains(demo_root: Path, tmp_path: Path) -> None:
    opt = cut_opt(demo_root, tmp_path, "--input_nc", "1", "--output_nc", "1")
    model = ready_model(opt)
    batch = batch_of(opt)
    assert batch["A"].shape[1] == 1 and batch["B"].shape[1] == 1
    step_and_check(model, opt, batch)


def test_nce_uses_key_ids_for_flipped_queries(demo_root: Path, tmp_path: Path) -> None:
    """calculate_NCE_loss: queries are G's features of tgt flipped back, keys G's features of src; F's ids are
    drawn on the keys and reused; each layer's loss is lambda * mean PatchNCE, averaged over layers."""
    opt = cut_opt(demo_root, tmp_path, "--CUT_mode", "FastCUT", "--num_patches", "4", "--batch_size", "2")
    model = ready_model(opt)
    model.set_input(batch_of(opt))
    src, tgt = model.real_A, torch.flip(model.real_B, [3])
    layers = model.nce_layers
    for flipped in (False, True):
        model.flipped_for_equivariance = flipped
        torch.manual_seed(7)
        with torch.no_grad():
            got = float(model.calculate_NCE_loss(src, tgt))
            torch.manual_seed(7)
            q = model.netG(tgt, layers, encode_only=True)
            q = [torch.flip(f, [3]) for f in q] if flipped else q
            k = model.netG(src, layers, encode_only=True)
            k_rows, ids = model.netF(k, 4)
            q_rows, _ = model.netF(q, 4, ids)
        expected = np.mean([float(direct_patchnce(a, b, 2, 0.07).mean()) * opt.lambda_NCE
                            for a, b in zip(q_rows, k_rows)])
        assert abs(got - expected) < 1e-4 * max(1.0, abs(expected)), (flipped, got, expected)


def test_flip_equivariance_flips_the_input(demo_root: Path, tmp_path: Path) -> None:
    opt = cut_opt(demo_root, tmp_path, "--CUT_mode", "FastCUT")
    model = ready_model(opt)
    model.set_input(batch_of(opt))
    seen = set()
    for seed in range(8):
        torch.manual_seed(seed)
        with torch.no_grad():
            model.forward()
            expected = model.netG(torch.flip(model.real_A, [3]) if model.flipped_for_equivariance else model.real_A)
        assert torch.equal(model.fake_B, expected)
        seen.add(model.flipped_for_equivariance)
    assert seen == {False, True}
    model.isTrain = False  # at test time: never flipped
    model.forward()
    assert not model.flipped_for_equivariance


@pytest.mark.parametrize("flags", [["--amp", "bf16"], ["--channels_last"], ["--d_steps", "2", "--accum_steps", "2"]],
                         ids=["bf16", "channels-last", "d2-accum2"])
def test_framework_options_train(flags: List[str], demo_root: Path, tmp_path: Path) -> None:
    opt = cut_opt(demo_root, tmp_path, "--netD", "n_layers", "--n_layers_D", "2", *flags)
    model = ready_model(opt)
    batch = batch_of(opt)
    for _ in range(4):
        model.set_input(batch)
        model.optimize_parameters()
        assert all(np.isfinite(v) for v in model.get_current_losses().values())
    assert model.get_current_visuals()["fake_B"].dtype == torch.float32


def test_compile_wraps_G_and_D_and_keeps_F_eager(demo_root: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """--compile: G and D go through torch.compile's wrapper, F stays eager; steps and saving work through it.
    (torch.compile itself is run on the CUT generator in test_cut_networks.py; compiling a whole model on a
    CPU takes minutes.)"""
    class Compiled(torch.nn.Module):
        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self._orig_mod = net

        def forward(self, *args, **kwargs):
            return self._orig_mod(*args, **kwargs)

    monkeypatch.setattr(wrappers, "compile_network", Compiled)
    opt = cut_opt(demo_root, tmp_path, "--compile")
    model = ready_model(opt)
    assert isinstance(model.netG, Compiled) and isinstance(model.netD, Compiled)
    assert not isinstance(model.netF, Compiled)
    step_and_check(model, opt, batch_of(opt))
    model.save_networks("latest")
    for name in ("G", "F", "D"):
        saved = torch.load(Path(model.save_dir) / f"latest_net_{name}.pth", weights_only=True)
        assert list(saved) == list(unwrap(getattr(model, "net" + name)).state_dict())


# ----------------------------------------------------------------------------- data
def test_decay_epochs_load_at_crop_size(demo_root: Path, tmp_path: Path) -> None:
    """After --n_epochs the unaligned dataset resizes to --crop_size: the crop no longer moves."""
    opt = cut_opt(demo_root, tmp_path, "--load_size", "48", "--crop_size", "32", "--no_flip", "--n_epochs", "1",
                  "--n_epochs_decay", "1")
    loader = create_dataset(opt)
    ds = loader.dataset

    def two_draws():
        torch.manual_seed(0)
        first = ds[0]["A"]
        return [first, ds[0]["A"]]

    loader.set_epoch(1)
    a, b = two_draws()
    assert a.shape[-1] == 32 and not torch.equal(a, b)  # random crops of the 48 px image
    loader.set_epoch(2)
    a, b = two_draws()
    assert torch.equal(a, b)  # the whole 32 px image
    assert ds.set_epoch(2) is False and ds.set_epoch(1) is True
    off = cut_opt(demo_root, tmp_path, "--load_crop_size_in_decay", "False", "--n_epochs", "1")
    assert create_dataset(off).dataset.set_epoch(5) is False


def test_test_time_single_folder(demo_root: Path, tmp_path: Path) -> None:
    """--dataset_mode single at test time needs no B: visuals real_A and fake_B."""
    opt = TestOptions().parse(["--dataroot", str(demo_root / "demo" / "testA"), "--model", "cut",
                               "--dataset_mode", "single", "--checkpoints_dir", str(tmp_path), "--name", "t",
                               *SMALL, "--gpu_ids", "-1"], save=False)
    model = create_model(opt)
    assert model.model_names == ["G"] and model.visual_names == ["real_A", "fake_B"]
    model.data_dependent_initialize(batch_of(opt))  # nothing to do at test time
    model.set_input(batch_of(opt))
    model.test()
    visuals = model.get_current_visuals()
    assert visuals["fake_B"].shape == visuals["real_A"].shape


def test_f_optimizer_betas_and_schedule(demo_root: Path, tmp_path: Path) -> None:
    """F's optimizer, made from the first batch, has the --beta2 betas and its own LR schedule after setup."""
    opt = cut_opt(demo_root, tmp_path, "--beta2", "0.9")
    model = ready_model(opt)
    assert model.optimizer_F.param_groups[0]["betas"] == (0.5, 0.9)
    assert model.optimizer_G.param_groups[0]["betas"] == (0.5, 0.9)
    assert model.schedulers[-1].optimizer is model.optimizer_F.optimizer  # the managed one's torch optimizer


def test_key_features_build_no_graph(demo_root: Path, tmp_path: Path) -> None:
    """G's passes for PatchNCE: queries with gradient, keys (detached by PatchNCE anyway) without a graph."""
    opt = cut_opt(demo_root, tmp_path, "--CUT_mode", "CUT", "--lambda_GAN", "0")
    model = ready_model(opt)
    model.set_input(batch_of(opt))
    model.forward()
    grad_enabled: List[bool] = []
    handle = model.netG.register_forward_pre_hook(lambda m, args: grad_enabled.append(torch.is_grad_enabled()))
    model.compute_G_loss()
    handle.remove()
    assert grad_enabled == [True, False, True, False]  # NCE: query, key; NCE_Y: query, key
