"""The shell scripts a user runs first: scripts/setup.sh (progress, errors) and the official example scripts
scripts/train_*.sh / test_*.sh (the right python, from any folder, extra flags passed on)."""
from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest

from conftest import ROOT

EXAMPLES = sorted(p.name for p in (ROOT / "scripts").glob("t*_*.sh") if p.name.split("_")[0] in ("train", "test"))

# A stand-in interpreter: `-m venv DIR` makes DIR/bin/python (itself), `-m pip ...` acts as pip (see FAKE_PIP_*),
# anything else records its arguments, working folder and PIP_* variables in $FAKE_RECORD.
FAKE_PYTHON = r"""#!/usr/bin/env bash
if [ "$1" = "--version" ]; then echo "Python 3.99 (stand-in)"; exit 0; fi
if [ "$1 $2" = "-m venv" ]; then mkdir -p "$3/bin" && cp "$0" "$3/bin/python" && exit 0; fi
{ printf '%s\n' "$0" "$PWD" "PIP_CONSTRAINT=${PIP_CONSTRAINT:-}" "PIP_BUILD_CONSTRAINT=${PIP_BUILD_CONSTRAINT:-}"
  printf '%s\n' "$@"; } > "$FAKE_RECORD"
if [ "$1 $2" = "-m pip" ]; then
  echo "Looking in links: /opt/wheels"
  echo "Processing /opt/wheels/torch-2.14.1.whl"
  echo "Collecting pillow"
  echo "Downloading torch-2.14.1.whl (900 MB) 50%"
  sleep "${FAKE_PIP_SLEEP:-0}"
  if [ "${FAKE_PIP_RC:-0}" != 0 ]; then
    echo "ERROR: No matching distribution found for torch" >&2; exit "$FAKE_PIP_RC"
  fi
  echo "Installing collected packages: torch"
  echo "Successfully installed torch-2.14.1"
fi
"""


def write_fake_python(path: Path) -> Path:
    """The stand-in interpreter at ``path`` (executable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(FAKE_PYTHON)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def fake_repo(tmp_path: Path) -> Path:
    """A copy of the repository's scripts and requirement files (no .venv)."""
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "scripts", repo / "scripts")
    for name in ("requirements.txt", "requirements-dev.txt"):
        shutil.copy(ROOT / name, repo / name)
    return repo


def clean_env(**extra: str) -> Dict[str, str]:
    """The environment without an active virtual environment, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PIP_CONSTRAINT", "PIP_BUILD_CONSTRAINT")}
    env.update(extra)
    return env


def run_bash(script: Path, *args: str, env: Dict[str, str], cwd: Path,
             timeout: float = 60) -> subprocess.CompletedProcess:
    """``bash script args`` without a terminal, output captured."""
    return subprocess.run(["bash", str(script), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


# --------------------------------------------------------------------------------------------------- setup.sh
def test_setup_reports_progress_in_logs(tmp_path: Path) -> None:
    """Piped (as in CI): what it does, one line per pip step, a heartbeat while pip is silent, the time taken,
    and how to activate; pip's download progress is left out; both constraint variables reach pip."""
    repo, record = fake_repo(tmp_path), tmp_path / "record.txt"
    env = clean_env(PYTHON=str(write_fake_python(tmp_path / "bin" / "python3")), FAKE_RECORD=str(record),
                    FAKE_PIP_SLEEP="2.5", SETUP_HEARTBEAT_S="1")
    res = run_bash(repo / "scripts" / "setup.sh", "--dev", env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "setup: creating .venv with Python 3.99" in out
    assert "setup: installing requirements-dev.txt into .venv" in out
    assert "  Processing /opt/wheels/torch-2.14.1.whl\n  Collecting pillow\n" in out
    assert "  Successfully installed torch-2.14.1" in out and "Looking in links" not in out
    assert out.count("setup: pip still working") >= 1
    assert "Downloading" not in out
    assert "environment ready in" in out and "source .venv/bin/activate" in out
    lines = record.read_text().splitlines()
    assert lines[:2] == [".venv/bin/python", str(repo)]
    constraints = repo / "scripts" / "constraints.txt"
    assert f"PIP_CONSTRAINT={constraints}" in lines and f"PIP_BUILD_CONSTRAINT={constraints}" in lines
    assert lines[4:] == ["-m", "pip", "install", "--disable-pip-version-check", "-r", "requirements-dev.txt",
                         "--progress-bar", "off"]


def test_setup_fails_with_pips_error(tmp_path: Path) -> None:
    """A failing pip stops set-up with its status and its error message, and no 'environment ready'."""
    repo = fake_repo(tmp_path)
    env = clean_env(PYTHON=str(write_fake_python(tmp_path / "bin" / "python3")), FAKE_RECORD=str(tmp_path / "r"),
                    FAKE_PIP_RC="1")
    res = run_bash(repo / "scripts" / "setup.sh", env=env, cwd=tmp_path)
    assert res.returncode == 1
    assert "No matching distribution found for torch" in res.stderr and "environment ready" not in res.stdout


@pytest.mark.skipif(shutil.which("script") is None, reason="needs util-linux `script` for a terminal")
def test_setup_shows_pips_own_progress_on_a_terminal(tmp_path: Path) -> None:
    repo = fake_repo(tmp_path)
    env = clean_env(PYTHON=str(write_fake_python(tmp_path / "bin" / "python3")), FAKE_RECORD=str(tmp_path / "r"))
    cmd = f"bash {shlex.quote(str(repo / 'scripts' / 'setup.sh'))}"
    res = subprocess.run(["script", "-qec", cmd, "/dev/null"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Downloading torch-2.14.1.whl (900 MB) 50%" in res.stdout and "still working" not in res.stdout
    assert "--progress-bar" not in (tmp_path / "r").read_text()


# ------------------------------------------------------------------------------------- train_*.sh, test_*.sh
def official_command(script: str) -> List[str]:
    """The train.py/test.py command line written in an example script (without the interpreter)."""
    line = next(l for l in (ROOT / "scripts" / script).read_text().splitlines() if l.startswith('"$PY" '))
    words = shlex.split(line)
    assert words[-1] == "$@"
    return words[1:-1]


def test_every_example_script_is_covered() -> None:
    assert len(EXAMPLES) == 7 and {s.split("_")[0] for s in EXAMPLES} == {"train", "test"}


@pytest.mark.parametrize("script", EXAMPLES)
def test_example_script_runs_the_projects_python(script: str, tmp_path: Path) -> None:
    """From any folder: the active virtualenv's python, else .venv's, else python on PATH (with a note); always in
    the repository root, with the official flags and then the user's."""
    repo, record = fake_repo(tmp_path), tmp_path / "record.txt"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    expected = official_command(script) + ["--gpu_ids", "-1"]
    assert expected[0] == ("train.py" if script.startswith("train") else "test.py")

    on_path = write_fake_python(tmp_path / "path" / "python")
    env = clean_env(FAKE_RECORD=str(record), PATH=f"{on_path.parent}:{os.environ['PATH']}")
    res = run_bash(repo / "scripts" / script, "--gpu_ids", "-1", env=env, cwd=elsewhere)
    assert res.returncode == 0, res.stderr
    assert "no .venv" in res.stderr and "bash scripts/setup.sh" in res.stderr
    lines = record.read_text().splitlines()
    assert lines[0] == str(on_path) and lines[1] == str(repo) and lines[4:] == expected

    venv_python = write_fake_python(repo / ".venv" / "bin" / "python")
    res = run_bash(repo / "scripts" / script, "--gpu_ids", "-1", env=env, cwd=elsewhere)
    assert res.returncode == 0 and "no .venv" not in res.stderr
    lines = record.read_text().splitlines()
    assert lines[0] == str(venv_python) and lines[1] == str(repo) and lines[4:] == expected

    active = write_fake_python(tmp_path / "active" / "bin" / "python")
    res = run_bash(repo / "scripts" / script, "--gpu_ids", "-1", env={**env, "VIRTUAL_ENV": str(active.parent.parent)},
                   cwd=elsewhere)
    assert res.returncode == 0
    assert record.read_text().splitlines()[0] == str(active)


@pytest.mark.slow
def test_cyclegan_example_scripts_train_and_test(demo_root: Path, tmp_path: Path) -> None:
    """The official CycleGAN example scripts really train and test (tiny flags appended, run from elsewhere)."""
    if sys.prefix != sys.base_prefix:
        env = clean_env(VIRTUAL_ENV=sys.prefix)  # the interpreter running these tests
    else:
        env = clean_env(PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    tiny = ["--dataroot", str(demo_root / "demo"), "--checkpoints_dir", str(tmp_path / "ck"), "--ngf", "8",
            "--ndf", "8", "--load_size", "32", "--crop_size", "32", "--gpu_ids", "-1"]
    res = run_bash(ROOT / "scripts" / "train_cyclegan.sh", *tiny, "--num_threads", "0", "--display_id", "0",
                   "--max_dataset_size", "2", "--n_epochs", "1", "--n_epochs_decay", "0", "--save_epoch_freq", "1",
                   env=env, cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "ck" / "maps_cyclegan" / "latest_net_G_A.pth").is_file()
    res = run_bash(ROOT / "scripts" / "test_cyclegan.sh", *tiny, "--results_dir", str(tmp_path / "res"),
                   "--num_test", "2", env=env, cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "res" / "maps_cyclegan" / "test_latest" / "index.html").is_file()
