"""compare.py as a user runs it: two tiny trained and tested runs, one table (console, JSON, HTML page)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest
from PIL import Image

from conftest import ROOT, run_test, run_train, tiny_flags


def compare(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run compare.py in a subprocess, as a user does."""
    return subprocess.run([sys.executable, str(ROOT / "compare.py"), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def runs(demo_root, tmp_path_factory) -> Path:
    """Two cycle_gan runs of one epoch on the demo data (different seeds), each tested: checkpoints/ and results/."""
    base = tmp_path_factory.mktemp("compare")
    for name, seed in (("run_a", "1"), ("run_b", "2")):
        flags = tiny_flags(name, base / "checkpoints") + ["--dataroot", str(demo_root / "demo"), "--model", "cycle_gan"]
        run_train(flags + ["--n_epochs", "1", "--n_epochs_decay", "0", "--seed", seed])
        run_test(flags + ["--results_dir", str(base / "results")])
    return base


def where(base: Path) -> List[str]:
    """The --checkpoints_dir and --results_dir flags of the runs."""
    return ["--checkpoints_dir", str(base / "checkpoints"), "--results_dir", str(base / "results")]


def refusal(res: subprocess.CompletedProcess) -> str:
    """The one error line of a refused command (exit status 2, no traceback)."""
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("compare.py: error: "), res.stderr
    return lines[0]


@pytest.fixture(scope="module")
def compared(runs, demo_root) -> Path:
    """compare.py on one experiment name and one results folder, scored against the real testB images."""
    out = runs / "cmp"
    res = compare("run_a", str(runs / "results" / "run_b" / "test_latest"), "--out", str(out),
                  "--real_dir", str(demo_root / "demo" / "testB"), *where(runs))
    assert res.returncode == 0, res.stderr
    header = res.stdout.splitlines()[0].split()
    assert header[:4] == ["run", "model", "epochs", "iters"] and "swd" in header
    table = {line.split()[0]: line.split() for line in res.stdout.splitlines()[1:3]}
    assert set(table) == {"run_a", "run_b"} and table["run_a"][1:4] == ["cycle_gan", "1", "8"]
    return out


def test_json_rows(compared, runs) -> None:
    """One row per run: model, epochs and iterations from its loss record, the metrics, the folders found."""
    data = json.loads((compared / "compare.json").read_text())
    rows = {row["run"]: row for row in data["rows"]}
    assert list(rows) == ["run_a", "run_b"]
    for name, row in rows.items():
        assert row["model"] == "cycle_gan" and row["epoch"] == 1 and row["total_iters"] == 8
        assert Path(row["experiment"]).resolve() == (runs / "checkpoints" / name).resolve()
        assert Path(row["results"]).resolve() == (runs / "results" / name / "test_latest").resolve()
        assert isinstance(row["metrics"]["swd"], float) and row["metrics"]["swd"] > 0
    assert rows["run_a"]["metrics"]["swd"] != rows["run_b"]["metrics"]["swd"]  # different seeds, different models
    assert "swd" in data["metric_keys"]


def test_page_shows_the_same_inputs_side_by_side(compared, runs) -> None:
    """Per input stem: the input, then each run's translation of that same file, copied beside the page."""
    data = json.loads((compared / "compare.json").read_text())
    assert data["stems"] == ["0000", "0001", "0002", "0003"]
    page = (compared / "index.html").read_text()
    for entry in data["images"]:
        assert [(c["run"], c["label"]) for c in entry["cells"]] == [("input", "real_A"), ("run_a", "fake_B"),
                                                                      ("run_b", "fake_B")]
        for cell in entry["cells"]:
            assert Path(cell["source"]).name == f"{entry['stem']}_{cell['label']}.png"
            assert (compared / cell["src"]).read_bytes() == Path(cell["source"]).read_bytes()
            assert f'src="{cell["src"]}"' in page


def test_loss_plots_overlay_every_run(compared) -> None:
    """One PNG per loss name; each has the curve of both runs, the numbers of their loss records."""
    data = json.loads((compared / "compare.json").read_text())
    losses = [plot["loss"] for plot in data["plots"]]
    assert losses == ["D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B"]
    page = (compared / "index.html").read_text()
    for plot in data["plots"]:
        assert plot["runs"] == ["run_a", "run_b"] and set(plot["curves"]) == {"run_a", "run_b"}
        with Image.open(compared / plot["file"]) as im:
            assert im.format == "PNG" and im.size[0] > 200
        assert f'src="{plot["file"]}"' in page
    record = json.loads((compared.parent / "checkpoints" / "run_b" / "loss_log.jsonl").read_text().splitlines()[-1])
    assert data["plots"][0]["curves"]["run_b"] == [[1.0, record["losses"]["D_A"]]]


def test_unknown_run_is_refused(runs, tmp_path) -> None:
    line = refusal(compare("run_a", "no_such_run", "--out", str(tmp_path / "o"), *where(runs)))
    assert "'no_such_run'" in line and "--checkpoints_dir" in line
    assert not (tmp_path / "o").exists()


def test_out_inside_a_run_is_refused(runs) -> None:
    out = runs / "results" / "run_b" / "cmp"
    line = refusal(compare("run_a", "run_b", "--out", str(out), *where(runs)))
    assert "--out" in line and "run_b" in line
    assert not out.exists()


def test_results_without_common_inputs_are_refused(runs, tmp_path) -> None:
    """A results folder of other inputs (other file stems): the line names the runs and their stems."""
    other = tmp_path / "other" / "test_latest"
    shutil.copytree(runs / "results" / "run_b" / "test_latest", other)
    for file in (other / "images").iterdir():
        file.rename(file.with_name("x" + file.name))
    (other / "checkpoint.json").unlink()
    line = refusal(compare("run_a", str(other), "--out", str(tmp_path / "o"), *where(runs)))
    assert "share no input" in line and "run_a" in line and "other" in line and "x0000" in line


def test_page_renders_in_chromium(compared) -> None:
    """The page in headless Chromium: the table has a row per run, every image loads; screenshot kept."""
    import browser

    browser.require_browser()
    data = json.loads((compared / "compare.json").read_text())
    expected = sum(len(e["cells"]) for e in data["images"]) + len(data["plots"])
    with browser.headless_chromium() as driver:
        browser.open_file(driver, compared / "index.html")
        states = browser.wait_for_images(driver)
        broken = [src for src, done, width in states if not (done and width > 0)]
        assert not broken and len(states) == expected
        rows = driver.find_elements("css selector", "table.scores tr")
        assert [r.find_elements("tag name", "td")[0].text for r in rows[1:]] == ["run_a", "run_b"]
        shot = Path("/tmp/compare_page.png")
        browser.full_page_screenshot(driver, shot)
    with Image.open(shot) as im:
        assert im.format == "PNG" and len(im.convert("RGB").getcolors(1 << 24) or []) > 100


def test_experiment_folder_without_real_dir(runs, tmp_path) -> None:
    """An experiment folder finds its latest results; unpaired runs without --real_dir get no metrics, and a line
    says what to pass."""
    res = compare(str(runs / "checkpoints" / "run_a"), "run_b", "--out", str(tmp_path / "o"), *where(runs))
    assert res.returncode == 0, res.stderr
    assert "pass --real_dir" in res.stdout
    rows = json.loads((tmp_path / "o" / "compare.json").read_text())["rows"]
    assert [r["run"] for r in rows] == ["run_a", "run_b"] and all(r["metrics"] == {} for r in rows)
    assert Path(rows[0]["results"]).resolve() == (runs / "results" / "run_a" / "test_latest").resolve()


def test_a_run_given_twice_is_refused(runs, tmp_path) -> None:
    line = refusal(compare("run_a", str(runs / "checkpoints" / "run_a"), "--out", str(tmp_path / "o"), *where(runs)))
    assert "give each run once" in line and "run_a" in line
