"""docs/datasets.md and docs/tips.md do what they say: the own-pairs recipe (combine_A_and_B.py, then pix2pix),
every line of the common-mistakes table, --preprocess none at test time, and the README links."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest
from PIL import Image

from conftest import ROOT, tiny_flags

DOCS = ROOT / "docs"


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    """A script of the checkout in a subprocess, as the user runs it."""
    return subprocess.run([sys.executable, script, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def mistakes_table() -> List[str]:
    """The second column of datasets.md's common-mistakes table (the error lines, without backticks)."""
    text = (DOCS / "datasets.md").read_text().split("## Common mistakes")[1]
    rows = [line for line in text.splitlines() if line.startswith("| ") and "`" in line.split(" | ")[1]]
    return [row.split(" | ")[1].rstrip(" |").strip("`").replace("\\|", "|") for row in rows]


def test_own_pairs_recipe(tmp_path: Path) -> None:
    """A/train and B/train with the same file names -> combine_A_and_B.py -> A|B images -> train.py pix2pix; a file
    without a partner is left out, and the 'wrote N images' line shows it."""
    for side, color in (("A", (200, 30, 30)), ("B", (30, 30, 200))):
        (tmp_path / "mydata" / side / "train").mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (40, 32), color).save(tmp_path / "mydata" / side / "train" / f"{i:04d}.png")
    Image.new("RGB", (40, 32)).save(tmp_path / "mydata" / "A" / "train" / "lonely.png")
    out = tmp_path / "datasets" / "mydata"
    proc = run("datasets/combine_A_and_B.py", "--fold_A", str(tmp_path / "mydata" / "A"), "--fold_B",
               str(tmp_path / "mydata" / "B"), "--fold_AB", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "wrote 3 images" in proc.stdout + proc.stderr
    assert sorted(p.name for p in (out / "train").iterdir()) == ["0000.png", "0001.png", "0002.png"]
    with Image.open(out / "train" / "0000.png") as pair:
        assert pair.size == (80, 32)
        assert pair.getpixel((0, 0)) == (200, 30, 30) and pair.getpixel((79, 0)) == (30, 30, 200)
    proc = run("train.py", "--dataroot", str(out), "--model", "pix2pix", "--direction", "AtoB",
               *tiny_flags("mydata_pix2pix", tmp_path / "ck"), "--netG", "resnet_6blocks", "--n_epochs", "1",
               "--n_epochs_decay", "0", "--display_id", "0")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (tmp_path / "ck" / "mydata_pix2pix" / "latest_net_G.pth").is_file()


def test_common_mistakes_say_what_the_table_says(demo_root: Path, tmp_path: Path) -> None:
    """Each mistake of the table, made for real: one error line, exit status 2, the table's text (its paths
    written datasets/x, '...' for the parts left out)."""
    x = tmp_path / "datasets" / "x"
    shared = ["--gpu_ids", "-1", "--checkpoints_dir", str(tmp_path / "ck"), "--display_id", "0"]
    (x / "trainA").mkdir(parents=True)
    (x / "trainB").mkdir()
    for i in range(2):
        Image.new("RGB", (32, 32)).save(x / "trainA" / f"{i}.png")
        Image.new("RGB", (32, 32)).save(x / "trainB" / f"{i}.png")
    mistakes = [("train.py", ["--dataroot", str(x), "--model", "pix2pix", *shared])]
    (tmp_path / "al" / "x" / "train").mkdir(parents=True)
    Image.new("RGB", (64, 32)).save(tmp_path / "al" / "x" / "train" / "0.png")
    mistakes.append(("train.py", ["--dataroot", str(tmp_path / "al" / "x"), "--model", "cycle_gan", *shared]))
    mistakes.append(("train.py", ["--dataroot", str(x / "trainA"), *shared]))
    (tmp_path / "t" / "x" / "testA").mkdir(parents=True)
    Image.new("RGB", (32, 32)).save(tmp_path / "t" / "x" / "testA" / "0.png")
    mistakes.append(("test.py", ["--dataroot", str(tmp_path / "t" / "x"), "--model", "cycle_gan", "--name", "n",
                                 "--checkpoints_dir", str(tmp_path / "ck"), "--gpu_ids", "-1"]))
    (tmp_path / "e" / "x").mkdir(parents=True)
    mistakes.append(("test.py", ["--dataroot", str(tmp_path / "e" / "x"), "--model", "test", "--name", "n",
                                 "--checkpoints_dir", str(tmp_path / "ck"), "--gpu_ids", "-1"]))
    lines = mistakes_table()
    assert len(lines) == len(mistakes) + 1  # the last row (a bad image) is docs/resume.md's, tested there
    for (script, args), documented in zip(mistakes, lines):
        proc = run(script, *args)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        line = proc.stderr.strip().splitlines()[-1]
        for root in (x, tmp_path / "al" / "x", tmp_path / "t" / "x", tmp_path / "e" / "x"):
            line = line.replace(str(root), "datasets/x")
        pieces = [p.strip() for p in documented.split("...")]
        assert line.startswith(f"{script}: error: {pieces[0]}"), (line, documented)
        position = 0
        for piece in pieces:
            found = line.find(piece, position)
            assert found >= 0, (piece, line)
            position = found + len(piece)


def test_preprocess_none_keeps_any_size(demo_root: Path, tmp_path: Path) -> None:
    """tips.md: test.py --preprocess none translates an image of any size (50 x 37 here) at that size."""
    ck = tmp_path / "ck"
    proc = run("train.py", "--dataroot", str(demo_root / "demo"), *tiny_flags("maps_cyclegan", ck), "--netG",
               "resnet_6blocks", "--n_epochs", "1", "--n_epochs_decay", "0", "--max_dataset_size", "2",
               "--display_id", "0")
    assert proc.returncode == 0, proc.stderr[-2000:]
    (tmp_path / "testA").mkdir()
    Image.new("RGB", (50, 37), (90, 20, 200)).save(tmp_path / "testA" / "odd.png")
    proc = run("test.py", "--dataroot", str(tmp_path / "testA"), "--name", "maps_cyclegan", "--model", "test",
               "--model_suffix", "_A", "--no_dropout", "--preprocess", "none", "--checkpoints_dir", str(ck),
               "--results_dir", str(tmp_path / "results"), "--gpu_ids", "-1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    with Image.open(tmp_path / "results" / "maps_cyclegan" / "test_latest_A" / "images" / "odd_fake.png") as fake:
        assert fake.size == (50, 37)
    assert "--preprocess none" in (DOCS / "tips.md").read_text()


@pytest.mark.parametrize("page", ["datasets.md", "tips.md"])
def test_readme_links_the_page(page: str) -> None:
    """Both pages are in README.md's documentation list, and the docs they cite exist."""
    assert f"[docs/{page}](docs/{page})" in (ROOT / "README.md").read_text()
    for cited in re.findall(r"docs/(\w+\.md)", (DOCS / page).read_text()):
        assert (DOCS / cited).is_file(), cited
