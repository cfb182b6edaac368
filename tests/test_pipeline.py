"""Acceptance test in the spirit of the official test_before_push: train one short epoch, test, check files."""
from __future__ import annotations

import re
from pathlib import Path
from typing import List, Tuple

import pytest
import torch

from models.base_model import BaseModel

from conftest import TRAINABLE, model_data, run_test, run_train, small_flags, tiny_flags

LOSS_LINE = re.compile(r"^\(epoch: \d+, iters: \d+, time: \d+\.\d{3}, data: \d+\.\d{3}\) (\w+: -?\d+\.\d{3} )+$")

# Every trainable model trains with its defaults, then tests with them (and its A-to-B generator alone through
# --model test); one more case trains a model the other way round.
CASES = {model: (model, []) for model in TRAINABLE}
CASES["pix2pix_BtoA"] = ("pix2pix", ["--direction", "BtoA"])


def planned_test_runs(model: str, extra: List[str], demo_root: Path,
                      instance: BaseModel) -> List[Tuple[List[str], Path]]:
    """The test.py runs after training: the model itself, and the generator its ``eval_generators()`` names for
    A to B loaded alone by ``--model test`` (``G_A`` -> ``--model_suffix _A``) where that builds the same net."""
    runs = [(["--model", model, *extra], model_data(demo_root, model, is_train=False))]
    generator = instance.eval_generators().get("AtoB")
    opt = instance.opt
    # --model test builds a plain generator from the flags (and config.json): not one with the model's own layout
    # or generator norm (CUT's antialiasing and --normG load with their model only)
    plain = (type(instance).network_layout(opt) == BaseModel.network_layout(opt)
             and type(instance).network_norms(opt)["G"] == opt.norm)
    if generator and plain and not extra:
        runs.append((["--model", "test", "--model_suffix", generator[1:]],
                     model_data(demo_root, "test", is_train=False)))
    return runs


def labels_and_layout(argv: List[str]) -> Tuple[List[str], bool, int]:
    """The visuals a test run writes (the test-time model's ``visual_names``), whether it writes them per
    visual (``images/<visual>/<stem>.png``) or per image (``images/<stem>_<visual>.png``), and how many inputs it
    translates (``--num_test``, or fewer when the test data has fewer: singleimage has its one pair)."""
    from data import find_dataset_using_name
    from models import create_model
    from options.test_options import TestOptions

    opt = TestOptions().parse(argv, save=False)
    instance = create_model(opt)
    count = min(opt.num_test, len(find_dataset_using_name(opt.dataset_mode)(opt)))
    return list(instance.visual_names), type(instance).results_by_visual, count


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_train_then_test(case: str, demo_root: Path, tmp_path: Path, capsys) -> None:
    from models import create_model
    from options.train_options import TrainOptions

    model, extra = CASES[case]
    ckpt = tmp_path / "checkpoints"
    train_argv = [*small_flags(model), *extra, *tiny_flags(case, ckpt), "--dataroot", str(model_data(demo_root, model))]
    instance = create_model(TrainOptions().parse(train_argv, save=False))
    run_train(train_argv + ["--n_epochs", "1", "--n_epochs_decay", "0",
        "--print_freq", "2", "--display_freq", "2", "--update_html_freq", "2", "--save_latest_freq", "4",
        "--save_epoch_freq", "1"])
    # not a terminal here: the progress of the epoch is a plain line (the whole dataset, the run's ETA)
    assert re.search(r"^epoch 1/1: (\d+)/\1 \(100%\) \[.*, run ETA 00:00\]$", capsys.readouterr().out, re.M)
    exp = ckpt / case
    for prefix in ("latest", "1"):
        for net in instance.model_names:
            sd = torch.load(exp / f"{prefix}_net_{net}.pth", weights_only=True)
            assert sd and not any(k.startswith("module.") for k in sd)
    assert (exp / "train_opt.txt").read_text().startswith("----------------- Options ---------------")
    lines = (exp / "loss_log.txt").read_text().splitlines()
    assert lines[0].startswith("================ Training Loss (")
    loss_lines = [line for line in lines[1:] if line.strip()]
    assert len(loss_lines) >= 2 and all(LOSS_LINE.match(line) for line in loss_lines), loss_lines
    page = (exp / "web" / "index.html").read_text()
    assert f"Experiment name = {case}" in page and "epoch [1]" in page
    assert list((exp / "web" / "images").glob("epoch001_*.png"))
    for flags, test_root in planned_test_runs(model, extra, demo_root, instance):
        test_argv = flags + ["--dataroot", str(test_root), "--name", case, "--checkpoints_dir", str(ckpt),
                             "--results_dir", str(tmp_path / "results"), "--num_test", "3", "--gpu_ids", "-1"]
        labels, by_visual, count = labels_and_layout(test_argv)
        web_dir = Path(run_test(test_argv))
        suffix = flags[flags.index("--model_suffix") + 1] if "--model_suffix" in flags else ""
        assert web_dir == tmp_path / "results" / case / f"test_latest{suffix}"  # each generator its own folder
        assert re.search(rf"^test: {count}/{count} \(100%\) \[\d\d:\d\d<00:00, ", capsys.readouterr().out, re.M)
        html = (web_dir / "index.html").read_text()
        assert f"Experiment = {case}, Phase = test, Epoch = latest" in html
        if by_visual:  # images/<visual>/<stem>.png
            assert sorted(p.name for p in (web_dir / "images").iterdir()) == sorted(labels)
            stems = {label: sorted(p.name for p in (web_dir / "images" / label).iterdir()) for label in labels}
            assert all(len(files) == count and files == stems[labels[0]] for files in stems.values()), stems
            assert all(f"images/{label}/{f}" in html for label, files in stems.items() for f in files)
            continue
        images = sorted(p.name for p in (web_dir / "images").iterdir())
        stems = sorted({name[: -len(f"_{label}.png")] for name in images for label in labels
                        if name.endswith(f"_{label}.png") and not name.endswith(f"_B_{label}.png")})
        assert len(stems) == count
        for stem in stems:
            for label in labels:
                assert f"{stem}_{label}.png" in images
                assert f"images/{stem}_{label}.png" in html
