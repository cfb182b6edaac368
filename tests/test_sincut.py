"""SinCUT (--model sincut): its options, R1 and identity terms, the singleimage data, the StyleGAN2 networks, and a
tiny train -> test -> export run of the scripts."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

import data
from data.base_dataset import get_params, get_transform
from data.singleimage_dataset import PATCHES_PER_EPOCH
from data.transforms import Patch, RandomZoom
from models import create_model, networks, stylegan2
from models.sincut_model import SinCUTModel
from options.defaults import default_options
from options.test_options import TestOptions
from options.train_options import TrainOptions
from util.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
A_SIZE, B_SIZE = (48, 40), (44, 52)  # (w, h): not square, not equal
# small networks: ngf 2 gives the StyleGAN2 generator 32/64 channels at the 32 px resolution
TINY = ["--ngf", "2", "--ndf", "4", "--load_size", "64", "--crop_size", "32", "--num_patches", "16", "--netF_nc", "16",
        "--gpu_ids", "-1", "--num_threads", "0", "--display_id", "0"]


@pytest.fixture()
def pair(tmp_path: Path) -> Path:
    """A single-image dataroot: trainA/a.png and trainB/b.png of random pixels."""
    rng = np.random.default_rng(0)
    for domain, (w, h) in (("A", A_SIZE), ("B", B_SIZE)):
        (tmp_path / "pair" / f"train{domain}").mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
            tmp_path / "pair" / f"train{domain}" / f"{domain.lower()}.png")
    return tmp_path / "pair"


def train_opt(root: Path, tmp_path: Path, *extra: str) -> argparse.Namespace:
    return TrainOptions().parse(["--dataroot", str(root), "--model", "sincut", "--name", "s", "--checkpoints_dir",
                                 str(tmp_path / "ck"), *TINY, *extra], save=False)


# ---------------------------------------------------------------------------------------------------- options
# The CUT code's models/sincut_model.py defaults (both phases, training, test).
CUT_CODE_DEFAULTS = dict(nce_includes_all_negatives_from_minibatch=True, dataset_mode="singleimage", netG="stylegan2",
                         stylegan2_G_num_downsampling=1, netD="stylegan2", num_patches=1, nce_layers="0,2,4",
                         lambda_NCE=4.0, ngf=10, ndf=8, load_size=1024, crop_size=64, lambda_R1=1.0,
                         lambda_identity=1.0)
CUT_CODE_TRAIN = dict(gan_mode="nonsaturating", lr=0.002, beta1=0.0, beta2=0.99, preprocess="zoom_and_patch",
                      batch_size=16, save_epoch_freq=1, save_latest_freq=20000, n_epochs=8, n_epochs_decay=8,
                      nce_idt=True, random_scale_max=3.0)
CUT_CODE_TEST = dict(preprocess="none", batch_size=1, num_test=1)


def test_option_defaults_are_the_cut_codes() -> None:
    train = default_options("sincut", is_train=True)
    for key, value in {**CUT_CODE_DEFAULTS, **CUT_CODE_TRAIN}.items():
        assert getattr(train, key) == value, key
    test = default_options("sincut", is_train=False)
    for key, value in {**CUT_CODE_DEFAULTS, **CUT_CODE_TEST}.items():
        assert getattr(test, key) == value, key
    # --CUT_mode FastCUT still sets --nce_idt/--flip_equivariance, but not SinCUT's lambda_NCE and epochs
    fast = TrainOptions().gather_options(["--dataroot", ".", "--model", "sincut", "--CUT_mode", "FastCUT"])
    assert (fast.lambda_NCE, fast.n_epochs, fast.n_epochs_decay) == (4.0, 8, 8)
    assert fast.nce_idt is False and fast.flip_equivariance is True
    small = TrainOptions().gather_options(["--dataroot", ".", "--model", "sincut", "--netG", "smallstylegan2"])
    assert small.nce_layers == "0,2"  # its encoder has layers 0 .. 3


def test_bad_combinations_are_refused(pair: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--nce_idt"):
        train_opt(pair, tmp_path, "--CUT_mode", "FastCUT")  # no identity pass, but --lambda_identity 1
    train_opt(pair, tmp_path, "--CUT_mode", "FastCUT", "--lambda_identity", "0")
    with pytest.raises(ValueError, match="--nce_layers 0,2,9"):
        train_opt(pair, tmp_path, "--nce_layers", "0,2,9")
    with pytest.raises(ValueError, match="ResNet or StyleGAN2 generator"):
        train_opt(pair, tmp_path, "--netG", "unet_128")
    with pytest.raises(ValueError, match="--eval_freq scores a held-out test split"):
        train_opt(pair, tmp_path, "--eval_freq", "4")
    with pytest.raises(ValueError, match="--upsample"):
        networks.define_G(3, 3, 4, "stylegan2", upsample="bilinear")
    with pytest.raises(ValueError, match="--upsample bilinear: --netG stylegan2"):
        train_opt(pair, tmp_path, "--upsample", "bilinear")
    with pytest.raises(ValueError, match="--stylegan2_G_num_downsampling 6"):  # 32 px halve 5 times at most
        train_opt(pair, tmp_path, "--stylegan2_G_num_downsampling", "6")
    fp16 = default_options("sincut", amp="fp16")
    with pytest.raises(ValueError, match="--amp fp16"):
        SinCUTModel.validate_options(fp16)  # (the CPU refuses fp16 earlier: checked on the model's rule)


# ---------------------------------------------------------------------------------------------------- losses
class QuadraticD(nn.Module):
    """D(x) = sum over pixels of w_c * x^2, per image: grad_x D = 2 w x, so R1 has a closed form."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor([0.5, -1.0, 2.0]).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.w * x ** 2).sum(dim=(1, 2, 3)).view(-1, 1)


def test_r1_penalty_equals_the_hand_computation() -> None:
    torch.manual_seed(0)
    d, real = QuadraticD(), torch.randn(2, 3, 4, 5, requires_grad=True)
    self = SimpleNamespace(opt=argparse.Namespace(lambda_R1=2.0))
    penalty = SinCUTModel.r1_penalty(self, d(real), real)
    by_hand = (2.0 / 2) * ((2 * d.w * real) ** 2).sum(dim=(1, 2, 3)).mean()
    assert torch.allclose(penalty, by_hand)


def test_discriminator_loss_adds_r1_at_the_real_images(pair: Path, tmp_path: Path) -> None:
    model = create_model(train_opt(pair, tmp_path, "--lambda_R1", "3"))
    model.netD = QuadraticD()
    torch.manual_seed(1)
    model.real_B, model.fake_B = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    model.backward_D()
    w, real, fake = model.netD.w.detach().clone().requires_grad_(True), model.real_B, model.fake_B
    r1 = 1.5 * ((2 * w * real) ** 2).sum(dim=(1, 2, 3)).mean()
    gan = 0.5 * (F.softplus((w * fake ** 2).sum(dim=(1, 2, 3))).mean()
                 + F.softplus(-(w * real ** 2).sum(dim=(1, 2, 3))).mean())
    assert torch.allclose(model.loss_D_R1, r1) and torch.allclose(model.loss_D, gan + r1)
    expected, = torch.autograd.grad(gan + r1, w)
    assert torch.allclose(model.netD.w.grad, expected)  # D is trained on the penalty too


def test_identity_loss_and_the_loss_names(pair: Path, tmp_path: Path) -> None:
    opt = train_opt(pair, tmp_path, "--batch_size", "2", "--max_dataset_size", "2")
    model = create_model(opt)
    assert model.loss_names == ["G_GAN", "D_real", "D_fake", "G", "NCE", "NCE_Y", "D_R1", "idt"]
    batch = next(iter(data.create_dataset(opt)))
    model.data_dependent_initialize(batch)
    model.setup(opt)
    model.set_input(batch)
    model.optimize_parameters()
    losses = model.get_current_losses()
    assert all(np.isfinite(v) for v in losses.values()) and losses["D_R1"] > 0 and losses["idt"] > 0
    assert model.idt_B.shape == model.real_B.shape  # G(real_B), compared with real_B
    assert torch.allclose(model.loss_idt, F.l1_loss(model.idt_B, model.real_B) * opt.lambda_identity)
    bare = create_model(train_opt(pair, tmp_path, "--lambda_R1", "0", "--lambda_identity", "0"))
    assert "D_R1" not in bare.loss_names and "idt" not in bare.loss_names


# ---------------------------------------------------------------------------------------------------- data
def test_zoom_and_patch_shapes_and_cells() -> None:
    opt = default_options("sincut", crop_size=16, random_scale_max=3.0)
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8))  # 70x50
    for size in ((70, 50), (9, 30), (16, 16)):  # larger, smaller than a patch, exactly one
        for _ in range(5):
            out = get_transform(opt)(img.resize(size))
            assert out.shape == (3, 16, 16) and out.min() >= -1 and out.max() <= 1
    zoom = RandomZoom(16, 3.0)
    for _ in range(20):  # each side shrunk by at most 3, never below the patch
        w, h = zoom(img).size
        assert 16 <= w <= 70 and 16 <= h <= 50 and w >= round(70 / 3) - 1 and h >= round(50 / 3) - 1
    assert RandomZoom(16, 3.0, factors=(0.5, 0.1))(img).size == (35, 16)
    # 70x50 in 16 px cells: 4 columns, 3 rows, margins 6 and 2; cell 5 = column 1, row 2 (counted down columns)
    arr = np.asarray(img)
    cell = np.asarray(Patch(16, index=5, offset=(0.0, 0.99))(img))
    assert np.array_equal(cell, arr[2 + 32:2 + 48, 16:32])
    assert np.array_equal(np.asarray(Patch(16, index=5 + 12, offset=(0.0, 0.99))(img)), cell)  # modulo the cells
    params = get_params(opt, img.size)
    assert {"scale_factor", "patch_index", "patch_offset", "flip"} <= set(params)
    assert all(1 / 3 <= f <= 1 for f in params["scale_factor"])
    assert torch.equal(get_transform(opt, params)(img), get_transform(opt, params)(img))  # params fix everything


def test_singleimage_dataset(pair: Path, tmp_path: Path) -> None:
    opt = train_opt(pair, tmp_path)
    ds = data.find_dataset_using_name("singleimage")(opt)
    assert len(ds) == PATCHES_PER_EPOCH == 100_000  # the CUT code's epoch
    item = ds[123]
    assert set(item) == {"A", "B", "A_paths", "B_paths"}
    assert item["A"].shape == item["B"].shape == (3, 32, 32)
    assert item["A_paths"].endswith("a.png") and item["B_paths"].endswith("b.png")
    crops = {ds[i]["A"].sum().item() for i in range(6)}
    assert len(crops) > 1  # random zoom, cell, flip
    loader = data.create_dataset(train_opt(pair, tmp_path, "--max_dataset_size", "6", "--batch_size", "4"))
    assert len(loader) == len(loader.dataset) == 6 and [b["A"].shape[0] for b in loader] == [4, 2]
    test_opt = TestOptions().parse(["--dataroot", str(pair), "--model", "sincut", "--name", "s", "--checkpoints_dir",
                                    str(tmp_path / "ck"), "--gpu_ids", "-1"], save=False)
    whole = data.find_dataset_using_name("singleimage")(test_opt)
    assert len(whole) == 1  # test.py translates the training image A, whole
    assert tuple(whole[0]["A"].shape[1:]) == A_SIZE[::-1] and tuple(whole[0]["B"].shape[1:]) == B_SIZE[::-1]


def test_singleimage_needs_one_image_per_folder(pair: Path, tmp_path: Path) -> None:
    Image.new("RGB", (40, 40)).save(pair / "trainA" / "second.png")
    with pytest.raises(UserError) as err:
        data.create_dataset(train_opt(pair, tmp_path))
    message = str(err.value)
    assert "trainA holds 2 images" in message and "keep one image" in message and "\n" not in message
    (pair / "trainA" / "a.png").write_bytes(b"")  # a broken extra file can be left out with --bad_data skip
    data.create_dataset(train_opt(pair, tmp_path, "--bad_data", "skip"))


# ---------------------------------------------------------------------------------------------------- networks
def test_networks_have_the_cut_codes_layout() -> None:
    g = networks.define_G(3, 3, 10, "stylegan2", stylegan2_size=64, stylegan2_G_num_downsampling=1)
    d = networks.define_D(3, 8, "stylegan2", stylegan2_size=64)
    # SinCUT's defaults (ngf 10, ndf 8, 64 px): the CUT code's parameter counts and keys
    assert networks.count_parameters(g) == 3_068_404 and networks.count_parameters(d) == 5_885_473
    keys = g.state_dict()
    assert keys["encoder.convs.1.0.weight"].shape == (80, 3, 1, 1)
    assert keys["encoder.convs.2.conv2.0.kernel"].shape == (4, 4) and keys["encoder.convs.2.skip.1.weight"].shape \
        == (160, 80, 1, 1)
    assert keys["decoder.convs.3.conv.weight"].shape == (1, 80, 160, 3, 3) and "decoder.convs.3.noise.weight" in keys
    assert keys["decoder.convs.4.0.weight"].shape == (3, 80, 1, 1) and keys["decoder.convs.4.1.bias"].shape == \
        (1, 3, 1, 1)
    assert len([k for k in keys if k.startswith("encoder.convs.") and ".conv1.0.weight" in k]) == 4
    dk = d.state_dict()
    assert dk["convs.0.0.weight"].shape == (32, 3, 1, 1) and dk["final_conv.0.weight"].shape == (384, 384, 3, 3)
    assert dk["final_linear.0.weight"].shape == (384, 384 * 16) and dk["final_linear.1.weight"].shape == (1, 384)
    assert len(d.convs) == 5  # 64 -> 4: four downsampling blocks
    assert torch.all(g.decoder.convs[3].noise.weight == 0)  # StyleGAN2's own init, not --init_type
    assert stylegan2.infer_extras(keys, 10) == {"stylegan2_size": 64, "stylegan2_G_num_downsampling": 1}


def test_generator_features_sizes_and_noise() -> None:
    torch.manual_seed(0)
    g = networks.define_G(3, 3, 4, "stylegan2", stylegan2_size=32, stylegan2_G_num_downsampling=1)
    x = torch.randn(2, 3, 32, 32)
    feats = g(x, [0, 2, 4], encode_only=True)  # SinCUT's --nce_layers: the pixels, after the downsampling, deeper
    assert [tuple(f.shape) for f in feats] == [(2, 3, 32, 32), (2, 128, 16, 16), (2, 128, 16, 16)]
    assert torch.equal(feats[0], x)
    out, again = g(x, [0, 2, 4])
    assert out.shape == x.shape and all(torch.equal(a, b) for a, b in zip(feats, again))
    assert g(torch.randn(1, 3, 37, 53)).shape == (1, 3, 37, 53)  # any size: padded, cropped back
    with torch.no_grad():
        g.decoder.convs[3].noise.weight.fill_(0.5)
    assert stylegan2.draws_noise(g) and not torch.equal(g(x), g(x))  # fresh noise at every call
    d = networks.define_D(3, 4, "stylegan2", stylegan2_size=32)
    assert d(x).shape == (2, 1) and d(torch.randn(2, 3, 48, 40)).shape == (2, 1)  # other sizes: pooled to 4x4
    with torch.autocast("cpu", dtype=torch.bfloat16):  # --amp bf16 on the CPU
        assert g(x).shape == x.shape and d(x).shape == (2, 1)


# ---------------------------------------------------------------------------------------------------- scripts
def run(script: str, *argv: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, script, *argv], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_train_test_export_on_one_image_pair(pair: Path, tmp_path: Path) -> None:
    ckpt, results, out = tmp_path / "ck", tmp_path / "results", tmp_path / "exported"
    run("train.py", "--dataroot", str(pair), "--model", "sincut", "--name", "pair", "--checkpoints_dir", str(ckpt),
        *TINY, "--max_dataset_size", "4", "--batch_size", "2", "--n_epochs", "1", "--n_epochs_decay", "0",
        "--seed", "0")
    exp = ckpt / "pair"
    for net in ("G", "D", "F"):
        assert (exp / f"latest_net_{net}.pth").is_file() and (exp / f"1_net_{net}.pth").is_file()
    config = json.loads((exp / "config.json").read_text())
    assert config["options"]["model"] == "sincut" and config["options"]["preprocess"] == "zoom_and_patch"
    assert config["networks"]["G"]["netG"] == "stylegan2" and config["networks"]["G"]["stylegan2_size"] == 32
    assert config["networks"]["D"]["stylegan2_size"] == 32
    # test.py: the model, sizes and architecture from config.json; the whole training image A, once
    run("test.py", "--dataroot", str(pair), "--name", "pair", "--checkpoints_dir", str(ckpt), "--results_dir",
        str(results), "--gpu_ids", "-1")
    web = results / "pair" / "test_latest"
    assert "Experiment = pair" in (web / "index.html").read_text()
    assert Image.open(web / "images" / "fake_B" / "a.png").size == A_SIZE
    assert Image.open(web / "images" / "real_B" / "a.png").size == B_SIZE
    run("export.py", "--name", "pair", "--checkpoints_dir", str(ckpt), "--out", str(out))
    report = json.loads((out / "pair_latest_net_G.json").read_text())
    assert Path(report["files"]["export"]).is_file() and report["architecture"]["stylegan2_size"] == 32
    assert all(check["max_abs_diff"] <= 1e-3 for check in report["checks"]["export"])


def test_make_single_image_dataset_lays_out_a_pair(pair: Path, tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "datasets"))
    from make_single_image_dataset import make_single_image_dataset

    out = tmp_path / "made"
    written = make_single_image_dataset(str(pair / "trainA" / "a.png"), str(pair / "trainB" / "b.png"), str(out))
    assert written == {"A": str(out / "trainA" / "a.png"), "B": str(out / "trainB" / "b.png")}
    assert len(data.find_dataset_using_name("singleimage")(train_opt(out, tmp_path))) == PATCHES_PER_EPOCH
    with pytest.raises(UserError, match="already holds a.png"):  # one image per folder
        make_single_image_dataset(str(pair / "trainB" / "b.png"), str(pair / "trainB" / "b.png"), str(out))
    with pytest.raises(UserError, match="file not found"):
        make_single_image_dataset(str(pair / "missing.png"), str(pair / "trainB" / "b.png"), str(tmp_path / "x"))


def test_resume_with_the_stylegan2_networks_and_r1_is_bit_exact(pair: Path, tmp_path: Path) -> None:
    """tests/test_resume.py resumes every model with a PatchGAN; here SinCUT's own networks, noise and R1."""
    from conftest import run_train
    from test_resume import assert_same, copy_checkpoint, load_dir

    ckpt = tmp_path / "ck"

    def flags(name: str, *extra: str) -> list:
        return ["--dataroot", str(pair), "--model", "sincut", "--name", name, "--checkpoints_dir", str(ckpt), *TINY,
                "--max_dataset_size", "4", "--batch_size", "1", "--n_epochs", "1", "--n_epochs_decay", "1",
                "--seed", "0", "--print_freq", "1000", "--display_freq", "1000", "--no_html", *extra]

    run_train(flags("straight", "--save_by_iter", "--save_latest_freq", "6"))
    noise = torch.load(ckpt / "straight" / "latest_net_G.pth", weights_only=True)["decoder.convs.3.noise.weight"]
    assert noise.abs().item() > 0  # the noise is on, so its draws must resume too
    copy_checkpoint(ckpt / "straight", ckpt / "resumed", "iter_6")
    run_train(flags("resumed", "--continue_train", "--load_iter", "6"))
    a, b = load_dir(ckpt / "straight"), load_dir(ckpt / "resumed")
    for key in ("optimizers", "schedulers", "rng", "total_iters", "epoch"):
        assert_same(a["state"][key], b["state"][key], key)
    for net in ("G", "D", "F"):
        assert_same(a[net], b[net], net)
