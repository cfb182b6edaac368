"""A user's mistake is one line, never a traceback: every entry point, run as a user runs it, on each such case.

Each case runs the script in a subprocess and checks: exit status 2, exactly one ``<script>: error:`` line on
stderr (the last one) and no traceback, the message naming what is wrong, and that no file of the experiment
(the checkpoints folder, the results) was changed or created. Disk faults are simulated by tests/faults.py.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import pytest

from conftest import ROOT, run_train, tiny_flags
from training.experiment import ExperimentLock

PIX2PIX = ["--model", "pix2pix", "--netG", "unet_128", "--netD", "n_layers", "--n_layers_D", "2"]
FAULTS = str(ROOT / "tests" / "faults.py")
RUNPY_NOTE = "RuntimeWarning: 'data.validation' found in sys.modules after import of package 'data'"
LOGS = ("loss_log.txt", "loss_log.jsonl", "train_opt.txt")  # what a run that has started writes besides checkpoints


@pytest.fixture(scope="module")
def trained(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 1-epoch pix2pix experiment ``exp`` (checkpoints folder returned)."""
    ck = tmp_path_factory.mktemp("trained")
    run_train(PIX2PIX + tiny_flags("exp", ck) + ["--dataroot", str(demo_root / "demo_pix2pix"), "--n_epochs", "1",
                                                 "--n_epochs_decay", "0", "--max_dataset_size", "4", "--no_html",
                                                 "--print_freq", "1000"])
    return ck


@dataclass
class World:
    """A copy of the trained experiment and the data a case needs, all under ``tmp``."""

    tmp: Path
    data: Path  # the demo pix2pix data (read only)
    ck: Path  # checkpoints folder holding ``exp``
    results: Path
    bad: Path  # pix2pix data with a zero-byte image in train/ and test/
    empty: Path  # pix2pix layout with empty train/ and test/
    fakes: Path  # a folder of images for evaluate.py
    held: List[ExperimentLock] = field(default_factory=list)

    def train(self, *flags: str, name: str = "exp", dataroot: Optional[Path] = None) -> List[str]:
        """train.py arguments of the experiment (1 epoch)."""
        return ["train.py", *PIX2PIX, *tiny_flags(name, self.ck), "--dataroot", str(dataroot or self.data),
                "--n_epochs", "1", "--n_epochs_decay", "0", "--max_dataset_size", "4", "--no_html", "--print_freq",
                "1000", "--display_id", "0", *flags]

    def test(self, *flags: str, name: str = "exp", dataroot: Optional[Path] = None) -> List[str]:
        """test.py arguments of the experiment."""
        return ["test.py", "--model", "pix2pix", "--dataroot", str(dataroot or self.data), "--name", name,
                "--checkpoints_dir", str(self.ck), "--results_dir", str(self.results), "--gpu_ids", "-1",
                "--load_size", "32", "--crop_size", "32", "--num_test", "1", *flags]

    def export(self, *flags: str, name: str = "exp") -> List[str]:
        """export.py arguments of the experiment."""
        return ["export.py", "--name", name, "--checkpoints_dir", str(self.ck), "--out", str(self.tmp / "out"),
                "--format", "torchscript", "--check_size", "32", *flags]

    def hold_lock(self) -> None:
        """Hold the experiment's lock, as a running train.py would."""
        lock = ExperimentLock(str(self.ck / "exp"))
        lock.acquire()
        self.held.append(lock)

    def write(self, relative: str, content: bytes) -> None:
        """Write a file under ``tmp``."""
        (self.tmp / relative).write_bytes(content)


def make_world(tmp: Path, demo_root: Path, trained: Path) -> World:
    """Copy the experiment, make the bad and empty data sets and a folder of fake images."""
    data = demo_root / "demo_pix2pix"
    ck = tmp / "ck"
    shutil.copytree(trained, ck)
    bad = tmp / "bad"
    shutil.copytree(data, bad)
    for split in ("train", "test"):
        (bad / split / "0000_zero.png").write_bytes(b"")  # sorted second: within --max_dataset_size
        (tmp / "empty" / split).mkdir(parents=True)
    fakes = tmp / "fakes"
    shutil.copytree(data / "test", fakes)
    return World(tmp, data, ck, tmp / "results", bad, tmp / "empty", fakes)


@dataclass
class Case:
    """One mistake: the command (built from the world), what the message says, and the fault to simulate."""

    argv: Callable[[World], List[str]]
    expect: str
    fault: Optional[Tuple[str, Callable[[World], str]]] = None  # (kind, pattern)
    setup: Optional[Callable[[World], None]] = None
    started: bool = False  # the run got past its start: its logs may change, its checkpoints must not
    env: Dict[str, str] = field(default_factory=dict)


def fifo(relative: str) -> Callable[[World], None]:
    """Setup: replace the experiment's file ``relative`` with a FIFO (reading it would block forever)."""
    def make(w: World) -> None:
        path = w.ck / "exp" / relative
        if path.exists():
            path.unlink()
        os.mkfifo(path)
    return make


def dev_zero(relative: str) -> Callable[[World], None]:
    """Setup: replace the experiment's file ``relative`` with a symbolic link to /dev/zero (endless zeros)."""
    def make(w: World) -> None:
        path = w.ck / "exp" / relative
        path.unlink()
        os.symlink("/dev/zero", path)
    return make


def later_epoch(w: World) -> None:
    """Setup: epoch 2's network files beside epoch 1's (as a 2-epoch run leaves them)."""
    for path in (w.ck / "exp").glob("1_net_*.pth"):
        shutil.copy(path, path.with_name("2" + path.name[1:]))


def best_json(record: object, raw: Optional[str] = None) -> Callable[[World], None]:
    """Setup: a best.json (``record`` as JSON, or the text ``raw``) and a best_net_G.pth beside it."""
    def make(w: World) -> None:
        (w.ck / "exp" / "best.json").write_text(raw if raw is not None else json.dumps(record))
        shutil.copy(w.ck / "exp" / "latest_net_G.pth", w.ck / "exp" / "best_net_G.pth")
    return make


def args_file_including_itself(w: World) -> None:
    """Setup: an argument file whose second line names itself."""
    (w.tmp / "loop.args").write_text(f"--n_epochs 2\n@{w.tmp / 'loop.args'}\n")


def a_file(w: World) -> None:
    """Setup: a regular file ``afile`` where a folder is expected."""
    w.write("afile", b"not a folder")


def nan_weights(relative: str) -> Callable[[World], None]:
    """Setup: one NaN in the first floating tensor of the experiment's weights file ``relative`` (a diverged run)."""
    def make(w: World) -> None:
        import torch

        path = w.ck / "exp" / relative
        sd = torch.load(path, weights_only=True)
        key = next(k for k, v in sd.items() if v.is_floating_point())
        sd[key].view(-1)[0] = float("nan")
        torch.save(sd, path)
    return make


def config_option(key: str, value: object) -> Callable[[World], None]:
    """Setup: config.json with ``options.<key>`` set to ``value`` (a hand-edited or damaged record)."""
    def make(w: World) -> None:
        path = w.ck / "exp" / "config.json"
        cfg = json.loads(path.read_text())
        cfg["options"][key] = value
        path.write_text(json.dumps(cfg))
    return make


def ab_exists(w: World) -> None:
    """Setup: A and B folders of one pair and an A|B image already written for it."""
    for fold in ("A", "B", "AB"):
        (w.tmp / fold / "train").mkdir(parents=True)
    for fold in ("A", "B"):
        shutil.copy(next((w.data / "train").glob("*.png")), w.tmp / fold / "train" / "x.png")
    w.write("AB/train/x.png", b"an earlier A|B image")


EVAL = ("--eval_freq", "4", "--eval_metrics", "l1", "--eval_best", "l1", "--n_epochs", "2")
BEST_RECORD = {"metric": "l1", "value": 0.5, "direction": "lower", "epoch": 1, "total_iters": 4}


def module(name: str, *args: str) -> List[str]:
    """``python -m name args``."""
    return ["-m", name, *args]


CASES: Dict[str, Case] = {
    # train.py
    "train-bad-data": Case(lambda w: w.train(name="fresh", dataroot=w.bad),
                           "1 of 4 image files cannot be used (--bad_data error); fix or remove them, or pass "
                           "--bad_data skip to leave them out: "),
    "train-missing-dataroot": Case(lambda w: w.train(name="fresh", dataroot=w.tmp / "nope"), "does not exist"),
    "train-empty-dataroot": Case(lambda w: w.train(name="fresh", dataroot=w.empty), "no images found in"),
    "train-missing-checkpoint": Case(lambda w: w.train("--continue_train", name="other"),
                                     "checkpoint file not found"),
    "train-nothing-left": Case(lambda w: w.train("--continue_train"), "nothing left to train"),
    "train-earlier-run": Case(lambda w: w.train(), "holds checkpoints of an earlier run"),
    "train-in-use": Case(lambda w: w.train("--continue_train", "--n_epochs", "2"),
                         f"is in use by another training run (PID {os.getpid()} on host",
                         setup=World.hold_lock),
    "train-read-only": Case(lambda w: w.train(name="fresh"), "Read-only file system",
                            fault=("erofs", lambda w: str(w.ck))),
    "train-disk-full-at-start": Case(lambda w: w.train("--continue_train", "--n_epochs", "2"),
                                     "No space left on device", fault=("enospc", lambda w: "train_opt.txt")),
    "train-disk-full-at-save": Case(lambda w: w.train("--continue_train", "--n_epochs", "2"),
                                    "cannot write checkpoint latest into", fault=("enospc", lambda w: "_net_"),
                                    started=True),
    # test.py
    "test-bad-data": Case(lambda w: w.test(dataroot=w.bad), "image files cannot be used (--bad_data error)"),
    "test-missing-dataroot": Case(lambda w: w.test(dataroot=w.tmp / "nope"), "does not exist"),
    "test-empty-dataroot": Case(lambda w: w.test(dataroot=w.empty), "no images found in"),
    "test-missing-checkpoint": Case(lambda w: w.test(name="other"), "checkpoint file not found"),
    "test-bad-config": Case(lambda w: w.test(), "cannot read the checkpoint config",
                            setup=lambda w: w.write("ck/exp/config.json", b"{not json")),
    "test-disk-full": Case(lambda w: w.test(), "No space left on device", fault=("enospc", lambda w: str(w.tmp))),
    # evaluate.py
    "evaluate-missing-folder": Case(lambda w: ["evaluate.py", "--fake_dir", str(w.tmp / "nope"), "--real_dir",
                                               str(w.fakes), "--metrics", "swd"], "image folder not found"),
    "evaluate-empty-folder": Case(lambda w: ["evaluate.py", "--fake_dir", str(w.empty / "test"), "--real_dir",
                                             str(w.fakes), "--metrics", "swd"], "no images found in"),
    "evaluate-bad-image": Case(lambda w: ["evaluate.py", "--fake_dir", str(w.bad / "test"), "--real_dir",
                                          str(w.fakes), "--metrics", "swd"], "cannot read image"),
    "evaluate-no-inception-weights": Case(lambda w: ["evaluate.py", "--fake_dir", str(w.fakes), "--real_dir",
                                                     str(w.fakes), "--metrics", "fid"],
                                          "no Inception weights file given"),
    "evaluate-disk-full": Case(lambda w: ["evaluate.py", "--fake_dir", str(w.fakes), "--real_dir", str(w.fakes),
                                          "--metrics", "swd", "--json", str(w.tmp / "out" / "m.json")],
                               "No space left on device", fault=("enospc", lambda w: str(w.tmp / "out"))),
    # export.py
    "export-missing-folder": Case(lambda w: w.export(name="other"), "checkpoint folder not found"),
    "export-missing-checkpoint": Case(lambda w: w.export("--epoch", "7"), "checkpoint file not found"),
    "export-bad-config": Case(lambda w: w.export(), "cannot read the checkpoint config",
                              setup=lambda w: w.write("ck/exp/config.json", b"{not json")),
    "export-read-only-out": Case(lambda w: w.export(), "Read-only file system",
                                 fault=("erofs", lambda w: str(w.tmp / "out"))),
    # paths that escape --checkpoints_dir, checkpoints of another experiment (options/paths.py)
    "train-name-dotdot": Case(lambda w: w.train(name="../escaped"), "--name '../escaped' has a '..' part"),
    "train-name-absolute": Case(lambda w: w.train(name=str(w.tmp / "abs")), "is an absolute path"),
    "train-name-empty": Case(lambda w: w.train(name=""), "--name '' is empty"),
    "train-name-dots": Case(lambda w: w.train(name="./"), "--name './' names no folder"),
    "test-name-dotdot": Case(lambda w: w.test(name="../ck/exp"), "--name '../ck/exp' has a '..' part"),
    "export-name-dotdot": Case(lambda w: w.export(name="../ck/exp"), "--name '../ck/exp' has a '..' part"),
    "export-name-absolute": Case(lambda w: w.export(name=str(w.ck / "exp")), "is an absolute path"),
    "train-epoch-path": Case(lambda w: w.train("--continue_train", "--epoch", "../exp/latest", "--n_epochs", "2",
                                               name="other"), "--epoch '../exp/latest' is not a checkpoint name"),
    "test-epoch-path": Case(lambda w: w.test("--epoch", "../exp/latest", name="exp"),
                            "--epoch '../exp/latest' is not a checkpoint name"),
    "export-epoch-path": Case(lambda w: w.export("--epoch", "../exp/latest"),
                              "--epoch '../exp/latest' is not a checkpoint name"),
    # a file where a folder belongs
    "train-checkpoints-dir-file": Case(lambda w: w.train("--checkpoints_dir", str(w.tmp / "afile")),
                                       "afile is a file, not a folder", setup=a_file),
    "test-results-dir-file": Case(lambda w: w.test("--results_dir", str(w.tmp / "afile" / "sub")),
                                  "afile is a file, not a folder (in the path", setup=a_file),
    "export-out-file": Case(lambda w: w.export("--out", str(w.tmp / "afile")), "--out", setup=a_file),
    # a resume that would overwrite later checkpoints, or another metric's best checkpoint
    "train-resume-before-later-checkpoints": Case(
        lambda w: w.train("--continue_train", "--epoch", "1", "--n_epochs", "3"),
        "holds checkpoints taken after 1 (2): resuming from 1 would train those iterations again and overwrite "
        "them; resume from the newest with --epoch 2", setup=later_epoch),
    "train-best-of-another-metric": Case(lambda w: w.train("--continue_train", *EVAL),
                                         "best.json records the best checkpoint (best_net_*.pth) by psnr",
                                         setup=best_json(dict(BEST_RECORD, metric="psnr"))),
    "train-best-json-nan": Case(lambda w: w.train("--continue_train", *EVAL), "best.json: value must be a number",
                                setup=best_json(None, raw='{"metric": "l1", "value": NaN}')),
    "train-best-json-wrong-type": Case(lambda w: w.train("--continue_train", *EVAL),
                                       "best.json: value must be a number (or \"inf\"/\"-inf\"), got 'low'",
                                       setup=best_json(dict(BEST_RECORD, value="low"))),
    "train-best-json-missing-key": Case(lambda w: w.train("--continue_train", *EVAL),
                                        "best.json: the key 'metric' is missing",
                                        setup=best_json({"value": 0.5})),
    # special files where a checkpoint or a log belongs: said, never opened
    "test-checkpoint-fifo": Case(lambda w: w.test(), "latest_net_G.pth is a FIFO (named pipe), not a regular",
                                 setup=fifo("latest_net_G.pth")),
    "test-checkpoint-dev-zero": Case(lambda w: w.test(), "latest_net_G.pth is a symbolic link to /dev/zero, a "
                                                         "character device", setup=dev_zero("latest_net_G.pth")),
    "export-checkpoint-fifo": Case(lambda w: w.export(), "latest_net_G.pth is a FIFO (named pipe), not a regular",
                                   setup=fifo("latest_net_G.pth")),
    "train-checkpoint-fifo": Case(lambda w: w.train("--continue_train", "--n_epochs", "2"),
                                  "latest_net_D.pth is a FIFO (named pipe), not a regular",
                                  setup=fifo("latest_net_D.pth")),
    "train-state-fifo": Case(lambda w: w.train("--continue_train", "--n_epochs", "2"),
                             "latest_train_state.pth is a FIFO (named pipe), not a regular",
                             setup=fifo("latest_train_state.pth")),
    "train-loss-log-fifo": Case(lambda w: w.train("--continue_train", "--n_epochs", "2"),
                                "loss_log.jsonl is a FIFO (named pipe), not a regular file",
                                setup=fifo("loss_log.jsonl")),
    "test-config-fifo": Case(lambda w: w.test(), "config.json is a FIFO (named pipe), not a regular file",
                             setup=fifo("config.json")),
    # an argument file that includes itself
    "train-args-file-loop": Case(lambda w: w.train("@" + str(w.tmp / "loop.args")), "loop.args includes itself",
                                 setup=args_file_including_itself),
    # a file-size limit (ulimit -f) while saving: the earlier checkpoint files are intact
    "train-file-size-limit-at-save": Case(lambda w: w.train("--continue_train", "--n_epochs", "2"),
                                          "cannot write checkpoint latest into", fault=("fsize", lambda w: "50000"),
                                          started=True),
    # the dataset scripts
    "combine-missing-folder": Case(lambda w: ["datasets/combine_A_and_B.py", "--fold_A", str(w.tmp / "nope"),
                                              "--fold_B", str(w.tmp / "nope"), "--fold_AB", str(w.tmp / "ab")],
                                   "is not a folder"),
    "aligned-missing-folder": Case(lambda w: ["datasets/make_dataset_aligned.py", "--dataset-path",
                                              str(w.tmp / "nope")], "is not a folder"),
    "cityscapes-missing-folder": Case(lambda w: ["datasets/prepare_cityscapes_dataset.py", "--gtFine_dir",
                                                 str(w.tmp / "nope"), "--leftImg8bit_dir", str(w.tmp / "nope"),
                                                 "--output_dir", str(w.tmp / "city")], "does not exist"),
    "demo-too-small": Case(lambda w: ["datasets/make_demo_dataset.py", "--out", str(w.tmp / "demo"), "--size", "4"],
                           "--size must be at least 8"),
    # weights with NaN/Inf (a diverged run): refused by name, never all-black results
    "test-nan-weights": Case(lambda w: w.test(), "latest_net_G.pth: tensor ", setup=nan_weights("latest_net_G.pth")),
    "export-nan-weights": Case(lambda w: w.export(), "latest_net_G.pth: tensor ",
                               setup=nan_weights("latest_net_G.pth")),
    "train-nan-weights": Case(lambda w: w.train("--continue_train", "--n_epochs", "2"), "latest_net_D.pth: tensor ",
                              setup=nan_weights("latest_net_D.pth")),
    # what the run recorded: a direction against it, a damaged value; a discriminator is no generator to export
    "test-direction-against-record": Case(lambda w: w.test("--direction", "BtoA"),
                                          "--direction BtoA: the checkpoint was trained with --direction AtoB"),
    "test-config-wrong-type": Case(lambda w: w.test(), "config.json: options.crop_size must be an integer",
                                   setup=config_option("crop_size", "32")),
    "export-discriminator": Case(lambda w: w.export("--net", "D"),
                                 "--net D is a discriminator: only generators export; choose --net G"),
    "combine-existing-output": Case(lambda w: ["datasets/combine_A_and_B.py", "--fold_A", str(w.tmp / "A"),
                                               "--fold_B", str(w.tmp / "B"), "--fold_AB", str(w.tmp / "AB"),
                                               "--no_multiprocessing"],
                                    "AB/train/x.png exists: pass --overwrite to replace the A|B images",
                                    setup=ab_exists),
    "validation-missing-folder": Case(lambda w: module("data.validation", str(w.tmp / "nope")), "does not exist"),
}


def command(case: Case, world: World, *extra: str) -> List[str]:
    """The command line of a case (through tests/faults.py when it simulates a fault)."""
    argv = case.argv(world) + list(extra)
    if argv[0] != "-m":
        argv[0] = str(ROOT / argv[0])
    if case.fault is not None:
        kind, pattern = case.fault
        argv = [FAULTS, kind, pattern(world), *argv]
    return [sys.executable, *argv]


def run(cmd: List[str], env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """Run a command from the repository root, without the debug variable and the Inception weights."""
    clean = {k: v for k, v in os.environ.items() if k not in ("IMG2IMG_DEBUG", "IMG2IMG_INCEPTION_WEIGHTS")}
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env={**clean, **(env or {})})


def snapshot(folder: Path, skip: Tuple[str, ...] = ()) -> Dict[str, str]:
    """SHA-256 of every file under ``folder`` by relative path (names in ``skip`` left out)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name not in skip}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_user_error_is_one_line(name: str, demo_root: Path, trained: Path, tmp_path: Path) -> None:
    case = CASES[name]
    world = make_world(tmp_path, demo_root, trained)
    try:
        if case.setup is not None:
            case.setup(world)
        skip = LOGS if case.started else ()
        before = snapshot(tmp_path, skip)
        res = run(command(case, world), case.env)
    finally:
        for lock in world.held:
            lock.release()
    script = Path(case.argv(world)[1 if case.argv(world)[0] == "-m" else 0]).name
    prog = "validation.py" if script == "data.validation" else script
    # Python's own note that data/__init__.py imported data.validation before ``-m`` ran it: not ours to print
    lines = [line for line in res.stderr.splitlines() if line.strip() and RUNPY_NOTE not in line]
    errors = [line for line in lines if ": error: " in line]
    assert res.returncode == 2, res.stdout[-3000:] + res.stderr[-3000:]
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    assert len(errors) == 1 and lines[-1] == errors[0], res.stderr[-3000:]
    assert errors[0].startswith(f"{prog}: error: ") and case.expect in errors[0], errors[0]
    if not case.started:
        assert lines == errors, res.stderr[-3000:]  # nothing else on stderr
    if name == "train-in-use":
        before.pop("ck/exp/train.lock")  # ours: removed when released above
    assert snapshot(tmp_path, skip) == before, "files of the experiment changed"
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "abs").exists(), "a folder outside ck was made"


@pytest.mark.slow
def test_bad_files_are_listed_once(demo_root: Path, trained: Path, tmp_path: Path) -> None:
    """The bad-file list is printed once: in the error line, each file with what is wrong and what to do."""
    world = make_world(tmp_path, demo_root, trained)
    res = run(command(CASES["train-bad-data"], world))
    bad = str(world.bad / "train" / "0000_zero.png")
    assert bad not in res.stdout and res.stderr.count(bad) == 1 and res.stderr.count("\n") == 1
    assert f"{bad}: empty file (0 bytes); delete it or copy it again" in res.stderr


@pytest.mark.slow
@pytest.mark.parametrize("how", ["flag", "environment"])
def test_debug_shows_the_traceback(how: str, demo_root: Path, trained: Path, tmp_path: Path) -> None:
    world = make_world(tmp_path, demo_root, trained)
    case = CASES["train-missing-dataroot"]
    res = run(command(case, world, *(["--debug"] if how == "flag" else [])),
              {"IMG2IMG_DEBUG": "1"} if how == "environment" else None)
    assert res.returncode == 1 and "Traceback" in res.stderr and "MissingPathError" in res.stderr


@pytest.mark.slow
def test_internal_error_keeps_its_traceback(demo_root: Path, trained: Path, tmp_path: Path) -> None:
    """An I/O error that is not the user's business (EIO while saving) is not dressed up as a user error."""
    world = make_world(tmp_path, demo_root, trained)
    case = Case(CASES["train-disk-full-at-save"].argv, "", fault=("eio", lambda w: "_net_"))
    res = run(command(case, world))
    assert res.returncode == 1 and "Traceback" in res.stderr and "Input/output error" in res.stderr
    assert not list((world.ck / "exp").glob(".staging-*")) and not (world.ck / "exp" / "train.lock").exists()


@pytest.mark.slow
def test_read_only_checkpoints_are_fine_for_testing(demo_root: Path, trained: Path, tmp_path: Path) -> None:
    """test.py only reads the checkpoints: a read-only folder costs test_opt.txt (a warning), nothing else."""
    world = make_world(tmp_path, demo_root, trained)
    res = run(command(Case(lambda w: w.test(), "", fault=("erofs", lambda w: str(w.ck))), world))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "test_opt.txt not written (Read-only file system): testing goes on" in res.stdout
    assert (world.results / "exp" / "test_latest" / "index.html").is_file()
