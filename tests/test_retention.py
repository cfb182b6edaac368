"""--keep_last: older checkpoint sets go as training saves new ones; latest, best, named, resumed-from and
being-read sets stay."""
from __future__ import annotations

import fcntl
from pathlib import Path

import torch

from conftest import run_train, tiny_flags
from training.retention import Retention, numbered_sets, to_remove


def make_sets(folder: Path, prefixes, nets=("G", "D")) -> None:
    for prefix in prefixes:
        for net in nets:
            torch.save({"w": torch.zeros(1000)}, folder / f"{prefix}_net_{net}.pth")
        (folder / f"{prefix}_train_state.pth").write_bytes(b"state")


def test_the_most_recent_of_each_kind_stay() -> None:
    prefixes = ["1", "2", "10", "iter_100", "iter_200", "iter_300"]
    assert to_remove(prefixes, 2, set()) == ["1", "iter_100"]
    assert to_remove(prefixes, 2, {"1"}) == ["iter_100"]
    assert to_remove(prefixes, 0, set()) == []


def test_removal_protects_named_and_resumed_sets_and_reports_the_space(tmp_path: Path) -> None:
    make_sets(tmp_path, ["1", "2", "3", "4", "5", "latest", "best"])
    removed, freed = Retention(str(tmp_path), 2, {"1"}, resumed_from="2").after_save()
    assert removed == ["3"] and freed > 8000
    assert sorted(numbered_sets(str(tmp_path))) == ["1", "2", "4", "5"]
    assert (tmp_path / "latest_net_G.pth").exists() and (tmp_path / "best_net_D.pth").exists()


def test_a_set_being_read_is_left_for_later(tmp_path: Path) -> None:
    make_sets(tmp_path, ["1", "2", "3"])
    with open(tmp_path / "1_net_G.pth", "rb") as reader:
        fcntl.flock(reader, fcntl.LOCK_SH)  # as checkpoint_io.load_shared holds it while test.py reads
        removed, _ = Retention(str(tmp_path), 1, set()).after_save()
        assert removed == ["2"] and (tmp_path / "1_net_G.pth").exists()
    removed, _ = Retention(str(tmp_path), 1, set()).after_save()
    assert removed == ["1"] and sorted(numbered_sets(str(tmp_path))) == ["3"]


def test_training_with_keep_last(demo_root: Path, tmp_path: Path, capsys) -> None:
    ckpt = tmp_path / "checkpoints"
    run_train(["--dataroot", str(demo_root / "demo"), "--model", "cycle_gan", "--netG", "resnet_6blocks",
               *tiny_flags("keep", ckpt), "--n_epochs", "4", "--n_epochs_decay", "0", "--save_epoch_freq", "1",
               "--keep_last", "2", "--keep_epochs", "1", "--display_id", "0"])
    exp = ckpt / "keep"
    assert sorted(numbered_sets(str(exp))) == ["1", "3", "4"]
    assert (exp / "latest_net_G_A.pth").exists() and (exp / "latest_train_state.pth").exists()
    out = capsys.readouterr()
    assert "--keep_last 2: removed checkpoint 2 (" in out.out + out.err
