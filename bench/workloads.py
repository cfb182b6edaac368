"""The benchmark's workloads (training or test configurations), the official figures, and presets of configs.

A *config* is a workload plus extra flags, written as one string: ``"cycle_gan_256 --amp bf16"``. The first
config of a workload in a run is that workload's baseline for the ratios. The bench-only flag ``--plain`` runs
the official step written plainly (bench/plain_steps.py) instead of ours.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple


@dataclass(frozen=True)
class Workload:
    """One benchmarked configuration: train.py or test.py flags, the generated data it needs, official figures."""

    kind: str  # "train" or "test"
    flags: Tuple[str, ...]
    data: str  # "unaligned" (trainA/trainB/testA), "aligned" (pix2pix pairs)
    image_size: int  # side of the generated images
    iters: int  # default timed iterations per round (about 30 s per round on a 2-core CPU)
    official_s: Optional[float] = None  # official s/iter (s/image for test) on the 2-core CPU, fp32, batch 1
    official_rss_gb: Optional[float] = None  # official peak RSS (GB)
    note: str = ""


WORKLOADS: Dict[str, Workload] = {
    "cycle_gan_256": Workload("train", ("--model", "cycle_gan"), "unaligned", 256, 3, 12.5, 4.2,
                              "resnet_9blocks, load 286 -> crop 256"),
    "cycle_gan_128": Workload("train", ("--model", "cycle_gan", "--load_size", "128", "--crop_size", "128"),
                              "unaligned", 256, 8, 3.4, 2.0, "resnet_9blocks, load/crop 128"),
    "pix2pix_256": Workload("train", ("--model", "pix2pix",), "aligned", 256, 20, 1.0, 1.9,
                            "unet_256, batch norm, load 286 -> crop 256"),
    "test_256": Workload("test", ("--model", "test", "--no_dropout"), "unaligned", 256, 20, 0.67, 0.85,
                         "test.py --model test, resnet_9blocks, 256"),
    # the README's demo (scripts/run_demo.sh): what a new user runs first, also on a busy laptop (bench/busy.py)
    "demo": Workload("train", ("--model", "cycle_gan", "--netG", "resnet_6blocks", "--ngf", "32", "--ndf", "32",
                               "--load_size", "64", "--crop_size", "64"), "unaligned", 64, 20,
                     note="scripts/run_demo.sh's training: resnet_6blocks, ngf/ndf 32, 64 px"),
    # CUT and FastCUT (docs/cut.md) with the CUT code's defaults: resnet_9blocks, antialiased G and D, PatchNCE on
    # 5 layers x 256 patches; the same data and sizes as cycle_gan_256 / cycle_gan_128 for side-by-side ratios
    "cut_256": Workload("train", ("--model", "cut", "--CUT_mode", "CUT"), "unaligned", 256, 5,
                        note="CUT, resnet_9blocks, load 286 -> crop 256"),
    "fastcut_256": Workload("train", ("--model", "cut", "--CUT_mode", "FastCUT"), "unaligned", 256, 6,
                            note="FastCUT, resnet_9blocks, load 286 -> crop 256"),
    "cut_128": Workload("train", ("--model", "cut", "--CUT_mode", "CUT", "--load_size", "128", "--crop_size", "128"),
                        "unaligned", 256, 12, note="CUT, load/crop 128"),
    "fastcut_128": Workload("train", ("--model", "cut", "--CUT_mode", "FastCUT", "--load_size", "128",
                                      "--crop_size", "128"), "unaligned", 256, 16, note="FastCUT, load/crop 128"),
    # tiny workloads: the smoke test of the benchmark itself (tests/test_bench.py)
    "tiny_cycle_gan": Workload("train", ("--model", "cycle_gan", "--netG", "resnet_6blocks", "--ngf", "8", "--ndf",
                                         "8", "--load_size", "32", "--crop_size", "32", "--num_threads", "0"),
                               "unaligned", 32, 2, note="smoke test"),
    "tiny_pix2pix": Workload("train", ("--model", "pix2pix", "--netG", "resnet_6blocks", "--ngf", "8", "--ndf", "8",
                                       "--load_size", "32", "--crop_size", "32", "--num_threads", "0"),
                             "aligned", 32, 2, note="smoke test"),
    "tiny_cut": Workload("train", ("--model", "cut", "--netG", "resnet_6blocks", "--ngf", "8", "--ndf", "8",
                                   "--num_patches", "16", "--netF_nc", "16", "--load_size", "32", "--crop_size", "32",
                                   "--num_threads", "0"), "unaligned", 32, 2, note="smoke test"),
    "tiny_test": Workload("test", ("--model", "test", "--no_dropout", "--netG", "resnet_6blocks", "--ngf", "8",
                                   "--load_size", "32", "--crop_size", "32"), "unaligned", 32, 2,
                          note="smoke test"),
}

_GPU_FAST = "--amp bf16 --channels_last --compile"

PRESETS: Dict[str, List[str]] = {
    # the CPU table: every workload as the official step written plainly (--plain, the baseline measured
    # in the same run), ours in fp32 (official numerics), and ours with --amp bf16
    "cpu": [c for w in ("cycle_gan_256", "cycle_gan_128", "pix2pix_256", "test_256")
            for c in (f"{w} --plain", w, f"{w} --amp bf16")],
    # one GPU at 256^2: batch 1 and batch 8, default and all opt-in speed flags
    "gpu": ["cycle_gan_256", f"cycle_gan_256 {_GPU_FAST}", "cycle_gan_256 --batch_size 8",
            f"cycle_gan_256 --batch_size 8 {_GPU_FAST}", "pix2pix_256", f"pix2pix_256 {_GPU_FAST}",
            "test_256", f"test_256 {_GPU_FAST}", "test_256 --batch_size 8", f"test_256 --batch_size 8 {_GPU_FAST}"],
    # issue 16: CUT and FastCUT against our cycle_gan at 128^2 and 256^2, fp32 and --amp bf16, one run
    "cut": [f"{w}{amp}" for size in (128, 256) for w in (f"cycle_gan_{size}", f"cut_{size}", f"fastcut_{size}")
            for amp in ("", " --amp bf16")],
    "smoke": ["tiny_cycle_gan", "tiny_cycle_gan --amp bf16", "tiny_pix2pix", "tiny_cut", "tiny_test",
              "tiny_test --batch_size 2"],
}


# How our flags reach the official code (bench/official.py, ``--official DIR``). A flag not listed here has the same
# name and meaning there (checked against the official option and model files before a run). Listed: our flag ->
# (the official flag, or None: ours only, dropped; how many values it takes, -1: an optional one).
OFFICIAL_FLAGS: Dict[str, Tuple[Optional[str], int]] = {
    "--amp": (None, 1), "--compile": (None, 0), "--channels_last": (None, -1),  # speed options of ours: the
    "--plain": (None, 0), "--official_runtime": (None, 0),  # official row is always the official fp32 step
    "--gpu_ids": (None, 1),  # the official code takes the GPU when there is one: --device cpu hides the GPUs instead
    "--display_id": (None, 1),  # the 2025 official code has no visdom (nothing to turn off)
}
# flags of ours that have no official counterpart at all: a config with one has no official row
OFFICIAL_TAG = "@official"  # the official rows' label: "<config> @official"
OFFICIAL_NONE = ("--CUT_mode", "--num_patches", "--netF_nc", "--nce_layers", "--lambda_NCE")


@dataclass(frozen=True)
class Config:
    """A workload name plus extra flags; ``label`` is the config string as written."""

    workload: str
    extra: Tuple[str, ...] = field(default_factory=tuple)

    @property
    def label(self) -> str:
        """The config as one string (workload first)."""
        return " ".join((self.workload,) + self.extra)

    @property
    def spec(self) -> Workload:
        """The workload definition."""
        return WORKLOADS[self.workload]

    def flag_value(self, flag: str, default: str) -> str:
        """The last value given for ``flag`` in the workload's or the extra flags (``default`` if absent)."""
        args = list(self.spec.flags) + list(self.extra)
        value = default
        for i, a in enumerate(args[:-1]):
            if a == flag:
                value = args[i + 1]
        return value


def official_flags(config: Config) -> List[str]:
    """The workload's and the extra flags as the official code spells them; ValueError when it has no counterpart."""
    args = list(config.spec.flags) + list(config.extra)
    if config.flag_value("--model", "cycle_gan") == "cut" or set(OFFICIAL_NONE) & set(args):
        raise ValueError(f"'{config.label}': CUT is not part of the official CycleGAN/pix2pix code (no official row)")
    return _to_official(args)


def official_label(config: Config) -> Optional[str]:
    """The row label of the config's official counterpart (``"cycle_gan_128 @official"`` also for ``cycle_gan_128
    --amp bf16``); None when it has none."""
    try:
        official_flags(config)
    except ValueError:
        return None
    return Config(config.workload, tuple(_to_official(list(config.extra)))).label + " " + OFFICIAL_TAG


def _to_official(args: List[str]) -> List[str]:
    """Flags as the official code spells them (OFFICIAL_FLAGS)."""
    out: List[str] = []
    i = 0
    while i < len(args):
        name, values = OFFICIAL_FLAGS.get(args[i], (args[i], 0))
        if values == -1:  # an optional value: the next word unless it is a flag
            values = 1 if i + 1 < len(args) and not args[i + 1].startswith("--") else 0
        if args[i] not in OFFICIAL_FLAGS:  # the same flag there: keep its values (up to the next flag)
            values = 0
            while i + 1 + values < len(args) and not args[i + 1 + values].startswith("--"):
                values += 1
        if name is not None:
            out.extend([name, *args[i + 1:i + 1 + values]])
        i += 1 + values
    return out


def parse_config(text: str) -> Config:
    """``"cycle_gan_256 --amp bf16"`` -> Config; raises ValueError naming the unknown workload."""
    parts = shlex.split(text)
    if not parts or parts[0] not in WORKLOADS:
        raise ValueError(f"--config '{text}': the first word must be a workload, one of: {', '.join(WORKLOADS)}")
    return Config(parts[0], tuple(parts[1:]))
