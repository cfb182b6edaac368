"""A model written by a newcomer from docs/adding_a_model.md alone gets every framework flag without a line for it.

GcGAN (geometry-consistent GAN: one generator, two discriminators, a 90-degree rotation) is written below as a
researcher would, copied into ``models/`` of a copy of this repository (as a user adds a model), and trained there
with ``--amp bf16``, ``--accum_steps 2``, ``--d_steps 2``, ``--continue_train`` (bit for bit), and torchrun with two
processes and ``--eval_freq``.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest
import torch

from conftest import ROOT

GCGAN = '''"""GcGAN: G maps A to B; its output for a rotated input must be the rotated output (geometry consistency)."""
import argparse

import torch
import torch.nn as nn

from util.image_pool import ImagePool
from util.ranges import Range

from . import networks
from .base_model import BaseModel


def rot(x):
    """Rotate a batch of images by 90 degrees."""
    return torch.rot90(x, 1, dims=(2, 3))


class GcGANModel(BaseModel):
    @staticmethod
    def modify_commandline_options(parser, is_train=True):
        parser.set_defaults(no_dropout=True)
        if is_train:
            parser.add_argument("--lambda_gc", type=Range(float, 0), default=2.0, help="geometry consistency")
        return parser

    def __init__(self, opt):
        super().__init__(opt)
        self.loss_names = ["D_B", "D_gc", "G_GAN", "G_gc"]
        self.visual_names = ["real_A", "fake_B", "fake_gc_B", "real_B"]
        self.model_names = ["G", "D_B", "D_gc"] if self.isTrain else ["G"]
        self.netG = self.build_generator("G", opt.input_nc, opt.output_nc, not opt.no_dropout)
        if self.isTrain:
            self.netD_B = self.build_discriminator("D_B", opt.output_nc)
            self.netD_gc = self.build_discriminator("D_gc", opt.output_nc)
            self.fake_B_pool = ImagePool(opt.pool_size)
            self.fake_gc_B_pool = ImagePool(opt.pool_size)
            self.criterionGAN = networks.GANLoss(opt.gan_mode).to(self.device)
            self.criterionGc = nn.L1Loss()
            self.optimizer_G = self.make_optimizer(self.netG.parameters())
            self.optimizer_D = self.make_optimizer(list(self.netD_B.parameters()) + list(self.netD_gc.parameters()))
            self.optimizers = [self.optimizer_G, self.optimizer_D]

    def forward(self):
        self.fake_B = self.netG(self.real_A)
        self.fake_gc_B = self.netG(rot(self.real_A))

    def backward_G(self):
        self.loss_G_GAN = (self.criterionGAN(self.netD_B(self.fake_B), True)
                           + self.criterionGAN(self.netD_gc(self.fake_gc_B), True))
        self.loss_G_gc = self.criterionGc(rot(self.fake_B), self.fake_gc_B) * self.opt.lambda_gc
        (self.loss_G_GAN + self.loss_G_gc).backward()

    def backward_D(self):
        fake_B = self.fake_B_pool.query(self.fake_B)
        fake_gc_B = self.fake_gc_B_pool.query(self.fake_gc_B)
        self.loss_D_B = self.backward_D_basic(self.netD_B, self.real_B, fake_B).total
        self.loss_D_gc = self.backward_D_basic(self.netD_gc, rot(self.real_B), fake_gc_B).total

    def optimize_parameters(self):
        self.forward()
        self.set_requires_grad([self.netD_B, self.netD_gc], False)
        self.optimizer_G.zero_grad()
        self.backward_G()
        self.optimizer_G.step()
        self.set_requires_grad([self.netD_B, self.netD_gc], True)
        self.optimizer_D.zero_grad()
        self.backward_D()
        self.optimizer_D.step()
'''

TIMEOUT = 600


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A copy of this repository with the new model file added to ``models/``."""
    copy = tmp_path_factory.mktemp("fork") / "repo"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".venv", ".git", "checkpoints", "results",
                                                              "__pycache__", "*.pyc", "bench", "docs"))
    (copy / "models" / "gcgan_model.py").write_text(GCGAN)
    return copy


def train(repo: Path, data: Path, ckpt: Path, name: str, *extra: str, torchrun: int = 0) -> str:
    """Run the fork's train.py (under torchrun with ``torchrun`` processes); return its console."""
    flags = ["--dataroot", str(data), "--model", "gcgan", "--name", name, "--checkpoints_dir", str(ckpt),
             "--ngf", "8", "--ndf", "8", "--load_size", "32", "--crop_size", "32", "--gpu_ids", "-1",
             "--display_id", "0", "--n_epochs_decay", "0", "--seed", "3", *extra]
    launcher: List[str] = [sys.executable]
    if torchrun:
        launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={torchrun}"]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    proc = subprocess.run(launcher + [str(repo / "train.py")] + flags, cwd=str(repo), env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


def weights(path: Path) -> dict:
    return torch.load(path, weights_only=True, map_location="cpu")


def test_new_model_trains_with_amp_accumulation_and_d_steps(repo: Path, demo_root: Path, tmp_path: Path) -> None:
    out = train(repo, demo_root / "demo", tmp_path, "gc", "--n_epochs", "1", "--amp", "bf16", "--accum_steps", "2",
                "--d_steps", "2", "--num_threads", "0", "--print_freq", "2")
    assert "model [GcGANModel] was created" in out
    for net in ("G", "D_B", "D_gc"):
        assert all(torch.isfinite(v).all() for v in weights(tmp_path / "gc" / f"latest_net_{net}.pth").values())


def test_new_model_resumes_bit_for_bit(repo: Path, demo_root: Path, tmp_path: Path) -> None:
    data = demo_root / "demo"
    train(repo, data, tmp_path, "straight", "--n_epochs", "2", "--num_threads", "0")
    train(repo, data, tmp_path, "split", "--n_epochs", "1", "--num_threads", "0")
    out = train(repo, data, tmp_path, "split", "--n_epochs", "2", "--num_threads", "0", "--continue_train")
    assert "epoch 2" in out
    for net in ("G", "D_B", "D_gc"):
        a, b = weights(tmp_path / "straight" / f"2_net_{net}.pth"), weights(tmp_path / "split" / f"2_net_{net}.pth")
        assert all(torch.equal(a[k], b[k]) for k in a), net


def test_new_model_under_torchrun_with_evaluation(repo: Path, demo_root: Path, tmp_path: Path) -> None:
    out = train(repo, demo_root / "demo", tmp_path, "ddp", "--n_epochs", "1", "--num_threads", "0",
                "--eval_freq", "4", "--eval_metrics", "swd", torchrun=2)
    assert "distributed training: 2 processes" in out
    assert (tmp_path / "ddp" / "latest_net_G.pth").is_file()
    assert "swd" in out.lower()
