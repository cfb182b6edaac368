"""The command line of train.py and test.py: argument files, "did you mean" for misspelled flags, and
``--model X --help`` listing the model's and the dataset mode's own flags; for every registered model."""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

import data
import models
from conftest import ROOT, load_script
from options.cli import OptionParser

SCRIPTS = {"train": True, "test": False}  # script -> is_train


def own_flags(model: str, is_train: bool, dataset_mode: Optional[str] = None) -> Optional[List[str]]:
    """The flags a model's option setter (and its dataset mode's) add; None when the model refuses this script."""
    parser = OptionParser(add_help=False)
    try:
        models.get_option_setter(model)(parser, is_train)
    except ValueError:
        return None
    mode = dataset_mode or parser.get_default("dataset_mode") or "unaligned"
    data.get_option_setter(mode)(parser, is_train)
    return parser.flags()


CASES = [(script, model) for script in SCRIPTS for model in models.list_models()]
USABLE = [(s, m) for s, m in CASES if own_flags(m, SCRIPTS[s]) is not None]


def run_main(script: str, argv: List[str], monkeypatch: pytest.MonkeyPatch) -> argparse.Namespace:
    """The script's real ``main(argv)`` up to the parsed options (training / testing itself is replaced)."""
    module = load_script(script)
    seen: Dict[str, Any] = {}
    monkeypatch.setattr(module, "run" if script == "train" else "run_test", lambda opt, *rest, **kw: seen.setdefault("opt", opt))
    module.main(argv)
    return seen["opt"]


def exit_of(script: str, argv: List[str], capsys: pytest.CaptureFixture) -> tuple:
    """(exit status, stdout, stderr) of the script's ``main(argv)`` when it exits while parsing."""
    with pytest.raises(SystemExit) as stopped:
        load_script(script).main(argv)
    out, err = capsys.readouterr()
    return stopped.value.code, out, err


def misspell(flag: str) -> str:
    """Swap two letters after the dashes: --lambda_A -> --almbda_A."""
    return flag[:2] + flag[3] + flag[2] + flag[4:]


# ---------------------------------------------------------------------------------------------------- --help
@pytest.mark.parametrize("script,model", CASES)
def test_model_help_lists_the_models_own_flags(script: str, model: str, capsys) -> None:
    """``--model X --help`` (no --dataroot needed) lists the model's and its dataset mode's flags too."""
    flags = own_flags(model, SCRIPTS[script])
    code, out, err = exit_of(script, ["--model", model, "--help"], capsys)
    if flags is None:  # e.g. --model test in train.py: the model's own one-line refusal
        assert code == 2 and f"--model {model}" in err.splitlines()[-1]
        return
    assert code == 0, err
    assert "--dataroot" in out and "-h, --help" in out
    missing = [f for f in flags if f not in out]
    assert not missing, f"--model {model} --help does not list {missing}"


def test_help_names_the_flags_people_look_for(capsys) -> None:
    """The flags the official --help hides: cycle_gan's lambdas, pix2pix's L1 weight, a dataset mode's flags."""
    assert {"--lambda_A", "--lambda_B", "--lambda_identity"} <= set(own_flags("cycle_gan", True))
    _, out, _ = exit_of("train", ["--help"], capsys)
    assert "--lambda_A" in out and "--lambda_L1" not in out  # the default model is cycle_gan
    _, out, _ = exit_of("train", ["--model", "pix2pix", "-h"], capsys)
    assert "--lambda_L1" in out and "--lambda_A" not in out
    _, out, _ = exit_of("train", ["--model", "template", "--dataset_mode", "template", "--help"], capsys)
    assert "--lambda_regression" in out and "--new_dataset_option" in out


# ---------------------------------------------------------------------------------------------------- @file
@pytest.mark.parametrize("script,model", USABLE)
def test_argument_file(script: str, model: str, tmp_path: Path, monkeypatch) -> None:
    """``script.py @run.args``: comments and blank lines skipped, a value with spaces kept, the model's own flags
    read, and flags from the file count as given (test.py keeps a --batch_size given in the file)."""
    flags = own_flags(model, SCRIPTS[script])
    parser = OptionParser(add_help=False)
    models.get_option_setter(model)(parser, SCRIPTS[script])
    lines = ["# a recipe", "", f"--dataroot {tmp_path / 'data dir'}", "--name my run", f"--model {model}",
             "   --batch_size 2   ", "--serial_batches", "--gpu_ids", "-1"]
    takes_value = {s for action in parser.recorded if action.nargs != 0 for s in action.option_strings}
    lines += [f"{flag} {parser.get_default(flag[2:])}" for flag in flags if flag in takes_value
              and parser.get_default(flag[2:]) not in (None, "")]  # store_true flags take no value
    args_file = tmp_path / "run.args"
    args_file.write_text("\n".join(lines) + "\n")
    opt = run_main(script, [f"@{args_file}", "--checkpoints_dir", str(tmp_path / "ck")], monkeypatch)
    assert opt.dataroot == str(tmp_path / "data dir") and opt.name == "my run" and opt.model == model
    assert opt.batch_size == 2 and opt.serial_batches and opt.gpu_ids == []
    file_flags = {line.split()[0][2:] for line in lines if line.strip().startswith("--")}
    assert file_flags <= set(opt.explicit_flags), file_flags - set(opt.explicit_flags)


def test_argument_file_then_command_line_and_nested_files(tmp_path: Path, monkeypatch) -> None:
    """Later arguments win over the file's; a file may name another file."""
    (tmp_path / "base.args").write_text(f"--dataroot {tmp_path}\n--ngf 16\n--gpu_ids -1\n")
    (tmp_path / "run.args").write_text(f"@{tmp_path / 'base.args'}\n--ndf 8\n")
    opt = run_main("train", [f"@{tmp_path / 'run.args'}", "--ngf", "32", "--checkpoints_dir", str(tmp_path)],
                   monkeypatch)
    assert (opt.ngf, opt.ndf, opt.dataroot) == (32, 8, str(tmp_path))


@pytest.mark.parametrize("script", list(SCRIPTS))
def test_missing_argument_file_is_one_error_line(script: str, tmp_path: Path, capsys) -> None:
    code, _, err = exit_of(script, [f"@{tmp_path / 'nope.args'}"], capsys)
    assert code == 2 and "nope.args" in err.splitlines()[-1] and "Traceback" not in err


# ---------------------------------------------------------------------------------------------------- did you mean
@pytest.mark.parametrize("script,model", USABLE)
def test_misspelled_flag_gets_a_suggestion(script: str, model: str, tmp_path: Path, capsys) -> None:
    """Every flag of the model (or a shared one) misspelled: the one error line suggests the right one."""
    flags = [f for f in own_flags(model, SCRIPTS[script]) if f.startswith("--")] or ["--netG"]
    for flag in flags + ["--ngf"]:
        wrong = misspell(flag)
        code, _, err = exit_of(script, ["--dataroot", str(tmp_path), "--model", model, wrong, "1"], capsys)
        last = err.splitlines()[-1]
        assert code == 2 and f"unrecognized arguments: {wrong} 1" in last, last
        assert f"did you mean {flag}?" in last, last


def test_flag_of_another_model_says_which(tmp_path: Path, capsys) -> None:
    """A right flag for the wrong model names the model that has it."""
    code, _, err = exit_of("train", ["--dataroot", str(tmp_path), "--model", "pix2pix", "--lambda_A", "5"], capsys)
    assert code == 2 and "--lambda_A is a flag of --model cycle_gan" in err.splitlines()[-1]


def test_command_line_in_a_real_process(tmp_path: Path) -> None:
    """What a user types: an argument file with --help, and a misspelled flag (exit 2, one line, no traceback)."""
    (tmp_path / "p2p.args").write_text("# pix2pix recipe\n--model pix2pix\n--direction BtoA\n")
    proc = subprocess.run([sys.executable, "train.py", f"@{tmp_path / 'p2p.args'}", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "--lambda_L1" in proc.stdout, proc.stderr[-2000:]
    proc = subprocess.run([sys.executable, "train.py", "--dataroot", str(tmp_path), "--lamda_A", "5"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[-1] == ("train.py: error: unrecognized arguments: --lamda_A 5 "
                                            "(did you mean --lambda_A?)")


@pytest.mark.parametrize("script, lines, check, typo, meant", [
    ("evaluate", ["--fake_dir results/my run/images", "# ground truth", "--real_dir datasets/x/testB", "--paired"],
     lambda a: a.fake_dir == "results/my run/images" and a.real_dir == "datasets/x/testB" and a.paired,
     "--mterics", "--metrics"),
    ("export", ["--name maps cyclegan", "--out exported", "--format torchscript"],
     lambda a: a.name == "maps cyclegan" and a.out == "exported" and a.format == "torchscript",
     "--tolerence", "--tolerance"),
    ("export", ["--name x", "--out y"], lambda a: a.name == "x" and a.out == "y", "--nrom", "--norm"),  # a group's
])
def test_argument_files_for_evaluate_and_export(script: str, lines: List[str], check, typo: str, meant: str,
                                                tmp_path: Path, capsys) -> None:
    """evaluate.py and export.py read @files the same way, and suggest flags the same way."""
    module = load_script(script)
    parser = module.build_parser() if script == "evaluate" else module.make_parser()
    (tmp_path / "a.args").write_text("\n".join(lines) + "\n")
    assert check(parser.parse_args([f"@{tmp_path / 'a.args'}"]))
    with pytest.raises(SystemExit):
        parser.parse_args([f"@{tmp_path / 'a.args'}", typo, "1"])
    assert f"unrecognized arguments: {typo} 1 (did you mean {meant}?)" in capsys.readouterr().err.splitlines()[-1]


# ---------------------------------------------------------------------------------------------------- --help groups
def help_groups(text: str) -> Dict[str, List[str]]:
    """``--help`` output as group title -> the flags listed under it."""
    groups: Dict[str, List[str]] = {}
    title = ""
    for line in text.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            title = line[:-1]
            groups[title] = []
        elif title and line.startswith("  -"):
            groups[title] += [part.split()[0] for part in line.strip().split(", ") if part.startswith("-")]
    return groups


@pytest.mark.parametrize("script,argv", [("train", []), ("train", ["--model", "pix2pix"]), ("test", []),
                                         ("test", ["--model", "cycle_gan"])])
def test_help_is_grouped_and_keeps_every_flag(script: str, argv: List[str], capsys) -> None:
    """--help lists the flags by topic (data, model and networks, training, reports and visualization, the
    model's own, ours), each flag once; every [ours] flag sits in "beyond the official flags"."""
    code, out, _ = exit_of(script, argv + ["--help"], capsys)
    assert code == 0
    groups = help_groups(out)
    model = (argv or ["", "cycle_gan" if script == "train" else "test"])[1]
    expected = {"basic", "data", "model and networks", "reports and visualization", "beyond the official flags",
                "training" if script == "train" else "testing"} | ({f"--model {model}"} if own_flags(model, SCRIPTS[
                    script]) else set())  # a model without flags for this script has no group
    assert expected <= set(groups), set(groups)
    listed = [flag for flags in groups.values() for flag in flags]
    assert len(listed) == len(set(listed))
    options = load_script(script).TrainOptions() if script == "train" else load_script(script).TestOptions()
    parser = options.make_parser()
    models.get_option_setter(model)(parser, SCRIPTS[script])
    assert set(listed) == set(parser.flags()) | {"-h", "--help"}
    ours = {s for a in parser.recorded if (a.help or "").startswith("[ours]") for s in a.option_strings}
    assert ours and ours <= set(groups["beyond the official flags"]), ours - set(groups["beyond the official flags"])
    assert {"--dataroot", "--name"} <= set(groups["basic"]) and "--crop_size" in groups["data"]
    assert "--netG" in groups["model and networks"]
    if script == "train":
        assert {"--n_epochs", "--lr", "--continue_train"} <= set(groups["training"])
        assert {"--display_freq", "--print_freq", "--no_html"} <= set(groups["reports and visualization"])
    else:
        assert {"--results_dir", "--num_test"} <= set(groups["testing"])


# ---------------------------------------------------------------------------------------------------- one-line errors
@pytest.mark.parametrize("argv, line", [
    (["--dataroot", "x", "--n_epochs_dec", "5"],
     "train.py: error: unrecognized arguments: --n_epochs_dec 5 (did you mean --n_epochs_decay?)"),
    (["--name", "x"], "train.py: error: the following arguments are required: --dataroot"),
    (["--dataroot", "x", "--netG", "resnet_7blocks"], None),
    (["--dataroot", "x", "--n_epochs", "many"], "train.py: error: argument --n_epochs: invalid int value: 'many'"),
])
def test_every_argparse_error_is_one_line(argv: List[str], line: Optional[str]) -> None:
    """No usage block before the error: stderr is the one ``train.py: error:`` line, exit status 2; an
    abbreviated flag is a misspelling, not the flag it starts."""
    proc = subprocess.run([sys.executable, "train.py", *argv], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("train.py: error: ") and "usage" not in proc.stderr
    if line is not None:
        assert proc.stderr.strip() == line


def test_abbreviations_are_refused(tmp_path: Path, capsys) -> None:
    """--n_epochs_dec is not --n_epochs_decay, --lambda_ide not --lambda_identity (also in test.py)."""
    for script, flag, meant in (("train", "--n_epochs_dec", "--n_epochs_decay"),
                                ("train", "--lambda_ide", "--lambda_identity"), ("test", "--num_te", "--num_test")):
        code, _, err = exit_of(script, ["--dataroot", str(tmp_path), flag, "5"], capsys)
        assert code == 2 and err.splitlines()[-1].endswith(f"(did you mean {meant}?)"), err


# ---------------------------------------------------------------------------------------------------- shared @file
def test_one_argument_file_serves_train_and_test(tmp_path: Path, monkeypatch, capsys) -> None:
    """train.py and test.py read the same file: each leaves out the other's flags, with one note naming them;
    the same flag typed on the command line is still an error."""
    shared = tmp_path / "maps.args"
    shared.write_text(f"--dataroot {tmp_path}\n--name maps\n--model cycle_gan\n--gpu_ids -1\n--display_id 0\n"
                      f"--n_epochs 3\n--lambda_A 5\n--results_dir {tmp_path / 'results'}\n--num_test 7\n")
    ck = ["--checkpoints_dir", str(tmp_path / "ck")]
    opt = run_main("train", [f"@{shared}", *ck], monkeypatch)
    assert (opt.display_id, opt.n_epochs, opt.lambda_A) == (0, 3, 5.0) and not hasattr(opt, "results_dir")
    out = capsys.readouterr().out
    assert out.count("train.py ignores") == 1
    assert f"train.py ignores --results_dir --num_test from {shared} (flags of test.py)" in out
    opt = run_main("test", [f"@{shared}", *ck], monkeypatch)
    assert opt.num_test == 7 and opt.results_dir == str(tmp_path / "results") and not hasattr(opt, "lambda_A")
    out = capsys.readouterr().out
    assert out.count("test.py ignores") == 1
    assert f"test.py ignores --display_id --n_epochs --lambda_A from {shared} (flags of train.py)" in out
    code, _, err = exit_of("test", [f"@{shared}", *ck, "--display_id", "0"], capsys)
    assert code == 2 and err.strip().endswith(": error: unrecognized arguments: --display_id 0 (--display_id is a "
                                              "flag of train.py)")
    (tmp_path / "other.args").write_text("--model pix2pix\n--lambda_A 5\n")  # a flag of no script with this model
    code, _, err = exit_of("test", [f"@{shared}", f"@{tmp_path / 'other.args'}", *ck], capsys)
    assert code == 2 and "unrecognized arguments: --lambda_A 5" in err
