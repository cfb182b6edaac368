"""Training-time evaluation (--eval_freq), the best checkpoint, evaluate.py on test.py output, bench/quality.py."""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Dict, List, Set

import numpy as np
import pytest
import torch

from conftest import (TRAINABLE, is_unaligned, model_data, model_defaults, refusal, run_test, run_train, small_flags,
                      tiny_flags)
from options.evaluation import has_test_split
from training import evaluator as evaluation
from training.evaluator import BestTracker, Evaluator, best_value
from util.metrics import METRICS, higher_is_better


# The metrics the evaluation computes by default: paired data against its ground truth; unaligned data per
# direction the model translates (its eval_generators()), plus the classifier's accuracy on the real images once.
PAIRED_KEYS = {"psnr", "ssim", "l1"}
UNPAIRED_KEYS_PER_DIRECTION = ("swd", "domain_score")


def train_argv(model: str, demo_root: Path, name: str, ckpt: Path) -> List[str]:
    """A small ``model`` on the demo data of its default dataset mode."""
    return [*small_flags(model), "--dataroot", str(model_data(demo_root, model)), *tiny_flags(name, ckpt)]


def described(model: str, demo_root: Path, tmp_path: Path):
    """The model built from the same small training options: what it saves and which way it translates."""
    from models import create_model
    from options.train_options import TrainOptions

    return create_model(TrainOptions().parse(train_argv(model, demo_root, "describe", tmp_path / "describe"),
                                             save=False))


def expected_metric_keys(model: str, instance) -> Set[str]:
    """The keys of the default evaluation of ``model``, from its data and its ``eval_generators()``."""
    if not is_unaligned(model):
        return PAIRED_KEYS
    directions = list(instance.eval_generators())
    assert directions, f"--model {model} trains on unaligned data but names no generator in eval_generators()"
    return {f"{key}_{d}" for key in UNPAIRED_KEYS_PER_DIRECTION for d in directions} | {"domain_acc_real"}


# Models whose default data can hold a test split for --eval_freq (sincut's one image pair cannot: refused at parse
# time, tests/test_sincut.py).
EVALUABLE = [m for m in TRAINABLE if has_test_split(model_defaults(m).dataset_mode)]


@pytest.fixture(autouse=True)
def _classifier_cache(tmp_path, monkeypatch) -> None:
    """Keep the domain classifier's cache inside the test's folder."""
    monkeypatch.setenv("IMG2IMG_CACHE_DIR", str(tmp_path / "cache"))


def metric_records(exp: Path) -> List[Dict]:
    """Records of loss_log.jsonl that hold evaluation metrics."""
    records = [json.loads(line) for line in (exp / "loss_log.jsonl").read_text().splitlines() if line.strip()]
    return [r for r in records if "metrics" in r]


@pytest.mark.parametrize("model", EVALUABLE)
def test_eval_freq_logs_metrics_and_keeps_best(model: str, demo_root: Path, tmp_path: Path) -> None:
    instance = described(model, demo_root, tmp_path)
    ckpt = tmp_path / "checkpoints"
    run_train([*train_argv(model, demo_root, model, ckpt), "--n_epochs", "1", "--n_epochs_decay", "0",
               "--eval_freq", "4", "--eval_num", "3", "--print_freq", "4", "--display_freq", "4", "--seed", "0"])
    exp = ckpt / model
    records = metric_records(exp)
    assert [r["total_iters"] for r in records] == [4, 8]
    for r in records:
        assert set(r["metrics"]) == expected_metric_keys(model, instance)
        assert all(v is None or math.isfinite(v) for v in r["metrics"].values())
    for net in instance.model_names:
        sd = torch.load(exp / f"best_net_{net}.pth", weights_only=True)
        assert sd and not any(k.startswith("module.") for k in sd)
    assert (exp / "config.json").is_file()
    best = json.loads((exp / "best.json").read_text())
    key = "swd" if is_unaligned(model) else "l1"
    values = [best_value(r["metrics"], key) for r in records]
    assert best["metric"] == key and best["direction"] == "lower"
    assert best["value"] == pytest.approx(min(values))
    assert best["total_iters"] == records[values.index(min(values))]["total_iters"]
    assert (exp / "web" / "metrics_plot.png").stat().st_size > 0
    assert "metrics_plot.png" in (exp / "web" / "index.html").read_text()


# ---------------------------------------------------------------------------------------------------- best logic
@pytest.mark.parametrize("key", [metric.key for metric in METRICS.values()])
def test_every_best_metric_has_a_direction(key: str) -> None:
    higher = higher_is_better(key)
    assert higher == (key in {"psnr", "ssim", "domain_score"})
    tracker = BestTracker(Path("unused"), key, higher)
    assert tracker.improves(1.0)
    tracker.value = 1.0
    assert tracker.improves(2.0) is higher
    assert tracker.improves(0.5) is (not higher)
    assert not tracker.improves(1.0)  # ties do not replace the best
    assert not tracker.improves(float("nan"))


def test_unknown_direction_raises() -> None:
    with pytest.raises(ValueError, match="direction"):
        higher_is_better("domain_acc_real")


def test_best_value_averages_both_directions() -> None:
    assert best_value({"swd_AtoB": 10.0, "swd_BtoA": 20.0}, "swd") == 15.0
    assert best_value({"l1": 0.25, "psnr": 20.0}, "l1") == 0.25
    with pytest.raises(KeyError, match="fid"):
        best_value({"swd_AtoB": 1.0}, "fid")


class ScriptedSuite:
    """Stands in for a test subset: returns scripted metrics."""

    metrics = ["psnr", "ssim", "l1"]

    def __init__(self, l1_values: List[float]) -> None:
        self.values = list(l1_values)

    def evaluate(self, model) -> Dict[str, float]:
        return {"psnr": 20.0, "ssim": 0.5, "l1": self.values.pop(0)}


class RecordingModel:
    """A model that records save_networks calls."""

    def __init__(self, save_dir: Path) -> None:
        self.save_dir = str(save_dir)
        self.saved: List[str] = []

    def save_networks(self, prefix) -> None:
        self.saved.append(str(prefix))


class RecordingVisualizer:
    def __init__(self) -> None:
        self.logged: List[tuple] = []

    def log_metrics(self, epoch, total_iters, metrics, counter_ratio=0.0) -> None:
        self.logged.append((epoch + counter_ratio, total_iters, dict(metrics)))


def eval_opt(**kw) -> argparse.Namespace:
    base = dict(eval_freq=10, eval_best="", eval_metrics="", dataset_mode="aligned", model="pix2pix", rank=0,
                continue_train=False, overwrite=False, eval_num=5, inception_weights="")
    base.update(kw)
    return argparse.Namespace(**base)


def test_best_is_replaced_only_on_improvement(tmp_path: Path) -> None:
    model, vis = RecordingModel(tmp_path), RecordingVisualizer()
    ev = Evaluator(eval_opt(), model, vis, suite=ScriptedSuite([0.5, 0.4, 0.45, 0.4, 0.3]))
    assert ev.maybe_evaluate(1, 15) is None  # not a multiple of --eval_freq
    saved_at = []
    for i, it in enumerate((10, 20, 30, 40, 50)):
        ev.maybe_evaluate(1, it, it / 100)  # the metrics share the losses' x = epoch + fraction of the epoch
        saved_at.append(len(model.saved))
        best = json.loads((tmp_path / "best.json").read_text())
    assert saved_at == [1, 2, 2, 2, 3]  # 0.45 is worse, 0.4 only ties
    assert model.saved == ["best"] * 3
    assert best == {"metric": "l1", "value": 0.3, "direction": "lower", "epoch": 1, "total_iters": 50,
                    "checkpoint": "best_net_*.pth"}
    assert [(x, t) for x, t, _ in vis.logged] == [(1.1, 10), (1.2, 20), (1.3, 30), (1.4, 40), (1.5, 50)]


def test_resumed_run_keeps_the_earlier_best(tmp_path: Path) -> None:
    (tmp_path / "best.json").write_text(json.dumps({"metric": "l1", "value": 0.2, "epoch": 3, "total_iters": 90}))
    model = RecordingModel(tmp_path)
    ev = Evaluator(eval_opt(continue_train=True), model, None, suite=ScriptedSuite([0.3, 0.1]))
    ev.evaluate(4, 100)
    assert model.saved == [] and json.loads((tmp_path / "best.json").read_text())["value"] == 0.2
    ev.evaluate(4, 110)
    assert model.saved == ["best"] and json.loads((tmp_path / "best.json").read_text())["value"] == 0.1


def test_eval_off_or_other_rank_does_nothing(tmp_path: Path) -> None:
    for opt in (eval_opt(eval_freq=0), eval_opt(rank=1)):
        model = RecordingModel(tmp_path)
        ev = Evaluator(opt, model, None, suite=ScriptedSuite([0.1]))
        assert ev.maybe_evaluate(1, 10) is None and model.saved == []
    assert not (tmp_path / "best.json").exists()


# ---------------------------------------------------------------------------------------------------- options
def parse(demo_root: Path, tmp_path: Path, *extra: str, model: str = "cycle_gan", root: str = "demo"):
    from options.train_options import TrainOptions

    argv = ["--dataroot", str(demo_root / root), "--model", model, *tiny_flags("opt", tmp_path), *extra]
    return TrainOptions().parse(argv, save=False)


# The default metrics and best key of the data a model trains on: unaligned (True) or paired (False).
DEFAULT_METRICS = {True: (["swd", "classifier"], "swd"), False: (["psnr", "ssim", "l1"], "l1")}


@pytest.mark.parametrize("model", TRAINABLE)
def test_default_metrics_per_model(model: str, demo_root: Path, tmp_path: Path) -> None:
    unaligned = is_unaligned(model)
    metrics, best = DEFAULT_METRICS[unaligned]
    opt = parse(demo_root, tmp_path, model=model, root=str(model_data(demo_root, model).relative_to(demo_root)))
    assert opt.eval_freq == 0 and opt.eval_num == 50
    assert evaluation.resolve_metrics(opt) == metrics
    assert evaluation.resolve_best(opt, metrics) == best
    for chosen, key in (("fid,kid", "fid"), ("classifier,swd", "swd" if unaligned else None),
                        ("ssim,psnr", "ssim"), ("kid", "kid")):
        if key is not None:  # without --eval_best: the default when computed, else the first metric's key
            assert evaluation.resolve_best(opt, chosen.split(",")) == key


@pytest.mark.parametrize("flags,model,root,message", [
    (["--eval_metrics", "psnr"], "cycle_gan", "demo", "ground-truth pairs"),
    (["--eval_metrics", "classifier"], "pix2pix", "demo_pix2pix", "two domains"),
    (["--eval_metrics", "swd,bogus"], "cycle_gan", "demo", "unknown metric 'bogus'"),
    (["--eval_best", "psnr"], "pix2pix", "demo_pix2pix", None),
    (["--eval_best", "fid"], "cycle_gan", "demo", "add fid to --eval_metrics"),
    (["--eval_best", "accuracy"], "cycle_gan", "demo", "argument --eval_best: 'accuracy' is not valid; choose one of"),
    (["--eval_freq", "-1"], "cycle_gan", "demo", "--eval_freq must be >= 0"),
    (["--eval_num", "1"], "cycle_gan", "demo", "--eval_num must be >= 2"),
])
def test_bad_eval_flags_are_rejected(flags, model, root, message, demo_root: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture) -> None:
    if message is None:  # a valid combination for contrast
        parse(demo_root, tmp_path, *flags, model=model, root=root)
        return
    assert message in refusal(lambda: parse(demo_root, tmp_path, *flags, model=model, root=root), capsys)


def test_fid_without_weights_fails_at_parse_time(demo_root: Path, tmp_path: Path, monkeypatch) -> None:
    from util.metrics.inception import ENV_VAR, InceptionWeightsError

    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(InceptionWeightsError, match="--inception_weights"):
        parse(demo_root, tmp_path, "--eval_freq", "4", "--eval_metrics", "swd,fid")
    with pytest.raises(InceptionWeightsError, match="not found"):
        parse(demo_root, tmp_path, "--eval_freq", "4", "--eval_metrics", "fid,kid",
              "--inception_weights", str(tmp_path / "missing.pth"))
    parse(demo_root, tmp_path, "--eval_metrics", "fid", "--eval_best", "fid")  # --eval_freq 0: not needed


def test_unaligned_data_needs_a_named_generator(demo_root: Path, tmp_path: Path) -> None:
    """A one-generator model translates A to B by its usual name G; a model whose networks have other names must
    say which one translates (eval_generators), else --eval_freq stops with one line before training."""
    from models import create_model

    opt = parse(demo_root, tmp_path, "--dataset_mode", "unaligned", "--eval_freq", "4", "--eval_metrics", "swd",
                "--netG", "resnet_6blocks", model="template", root="demo")
    model = create_model(opt)
    assert model.eval_generators() == {"AtoB": "G"}
    Evaluator(opt, model)
    model.model_names = ["Gen", "D"]  # names the default rule does not know
    assert model.eval_generators() == {}
    with pytest.raises(ValueError, match="--model template has no G_A, G_B"):
        Evaluator(opt, model)


# ---------------------------------------------------------------------------------------------------- side effects
def test_evaluation_changes_nothing_in_training(demo_root: Path, tmp_path: Path) -> None:
    """RNG streams, BatchNorm buffers and module modes are as before; two evaluations agree (seeded dropout)."""
    from models import create_model

    opt = parse(demo_root, tmp_path, "--eval_num", "3", "--norm", "batch", model="pix2pix", root="demo_pix2pix")
    model = create_model(opt)
    model.setup(opt)
    suite = evaluation.make_suite(opt, torch.device("cpu"))
    buffers = {k: v.clone() for k, v in model.netG.state_dict().items() if "running" in k or "num_batches" in k}
    assert buffers
    rng = torch.get_rng_state()
    first = suite.evaluate(model)
    second = suite.evaluate(model)
    assert torch.equal(torch.get_rng_state(), rng)
    assert first == second
    for k, v in model.netG.state_dict().items():
        if k in buffers:
            assert torch.equal(v, buffers[k]), k
    assert model.netG.training and all(m.training for m in model.netG.modules())


@pytest.mark.parametrize("model", EVALUABLE)
def test_training_is_identical_with_and_without_eval(model: str, demo_root: Path, tmp_path: Path) -> None:
    """Seeded runs give bit-identical weights whether --eval_freq evaluates (dropout, BatchNorm) or not."""
    ckpt = tmp_path / "checkpoints"
    for name, extra in (("plain", []), ("evaluated", ["--eval_freq", "2", "--eval_num", "3"])):
        run_train([*train_argv(model, demo_root, name, ckpt), "--n_epochs", "1", "--n_epochs_decay", "0",
                   "--seed", "0", "--norm", "batch", "--no_dropout", "False", "--max_dataset_size", "6",
                   "--save_epoch_freq", "1", *extra])
    assert len(metric_records(ckpt / "evaluated")) == 3
    for net in described(model, demo_root, tmp_path).model_names:
        plain = torch.load(ckpt / "plain" / f"latest_net_{net}.pth", weights_only=True)
        evaluated = torch.load(ckpt / "evaluated" / f"latest_net_{net}.pth", weights_only=True)
        for key in plain:
            assert torch.equal(plain[key], evaluated[key]), (net, key)


def test_unpaired_subset_is_first_sorted_files(demo_root: Path, tmp_path: Path) -> None:
    opt = parse(demo_root, tmp_path, "--eval_num", "3", "--eval_metrics", "swd", "--crop_size", "16",
                "--load_size", "16", "--netD", "n_layers", "--n_layers_D", "2")  # the basic PatchGAN needs 24 px
    suite = evaluation.make_suite(opt, torch.device("cpu"))
    assert suite.real["A"].shape == (3, 3, 16, 16) and suite.real["A"].dtype == torch.uint8
    assert suite.inputs["B"].shape == (3, 3, 16, 16) and suite.inputs["B"].abs().max() <= 1.0
    from PIL import Image

    first = sorted((demo_root / "demo" / "testA").iterdir())[0]
    expected = torch.from_numpy(np.array(Image.open(first).convert("RGB").resize((16, 16), Image.BICUBIC)))
    assert torch.equal(suite.real["A"][0], expected.permute(2, 0, 1))
    ident = suite.score(suite.real["A"], suite.real["B"])
    assert ident["swd_AtoB"] == pytest.approx(ident["swd_BtoA"])  # the same two sets, swapped
    same = suite.score(suite.real["B"], suite.real["A"])
    assert same["swd_AtoB"] == 0.0 and same["swd_BtoA"] == 0.0


# ---------------------------------------------------------------------------------------------------- evaluate.py
def test_evaluate_py_reads_a_test_results_page(demo_root: Path, tmp_path: Path) -> None:
    """evaluate.py on test.py's page gives the numbers of the in-training evaluation of the same checkpoint."""
    import evaluate
    from models import create_model
    from options.test_options import TestOptions

    ckpt = tmp_path / "checkpoints"
    data = str(demo_root / "demo_pix2pix")
    run_train(["--model", "pix2pix", "--dataroot", data, "--netG", "resnet_6blocks", "--no_dropout",
               *tiny_flags("p2p", ckpt), "--n_epochs", "1", "--n_epochs_decay", "0", "--save_epoch_freq", "1"])
    test_argv = ["--model", "pix2pix", "--dataroot", data, "--name", "p2p", "--checkpoints_dir", str(ckpt),
                 "--results_dir", str(tmp_path / "results"), "--num_test", "4", "--gpu_ids", "-1",
                 "--crop_size", "32", "--load_size", "32"]
    images = Path(run_test(test_argv)) / "images"
    out = tmp_path / "eval.json"
    results = evaluate.main(["--fake_dir", str(images), "--fake_suffix", "_fake_B", "--real_dir", str(images),
                             "--real_suffix", "_real_B", "--paired", "--metrics", "psnr,ssim,l1",
                             "--json", str(out)])
    assert json.loads(out.read_text())["num_fake"] == 4
    assert 0.0 < results["l1"] < 1.0 and 0.0 < results["psnr"] < 60.0 and -1.0 <= results["ssim"] <= 1.0
    # the ground truth against itself: perfect scores
    same = evaluate.main(["--fake_dir", str(images), "--fake_suffix", "_real_B", "--real_dir", str(images),
                          "--real_suffix", "_real_B", "--paired", "--metrics", "l1,ssim"])
    assert same["l1"] == 0.0 and same["ssim"] == pytest.approx(1.0)
    # the same checkpoint through the training-time protocol
    opt = TestOptions().parse(test_argv, save=False)
    opt.eval_num, opt.inception_weights = 4, ""
    model = create_model(opt)
    model.setup(opt)
    ours = evaluation.PairedSuite(opt, ["psnr", "ssim", "l1"], torch.device("cpu")).evaluate(model)
    for key in ("psnr", "ssim", "l1"):
        assert ours[key] == pytest.approx(results[key], rel=1e-6), key


@pytest.mark.parametrize("extra, expected", [
    ([], ["swd"]),
    (["--train_A", "{root}/trainA", "--train_B", "{root}/trainB"], ["swd", "classifier"]),
])
def test_evaluate_py_defaults_need_no_download(extra: List[str], expected: List[str], demo_root: Path,
                                               monkeypatch, capsys) -> None:
    """Without --metrics, evaluate.py computes what needs no download (torch-fidelity made unimportable, no
    Inception weights) and says in one line what the other metrics need."""
    import evaluate
    from util.metrics.inception import ENV_VAR

    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)
    root = demo_root / "demo"
    argv = ["--fake_dir", str(root / "testA"), "--real_dir", str(root / "testB")]
    results = evaluate.main(argv + [a.format(root=root) for a in extra])
    out = capsys.readouterr().out
    assert "swd" in results and "fid" not in results and "kid" not in results
    assert {k for k in results if not k.startswith("swd")} == (
        {"domain_score", "domain_acc_real"} if "classifier" in expected else set())
    assert f"metrics: {','.join(expected)} (choose with --metrics)" in out
    also = [line for line in out.splitlines() if line.startswith("also available: ")]
    assert len(also) == 1 and f"--inception_weights FILE or set {ENV_VAR}" in also[0]
    assert ("--train_A and --train_B" in also[0]) == ("classifier" not in expected)


def test_evaluate_py_default_metrics_follow_the_flags(tmp_path: Path, monkeypatch) -> None:
    """FID/KID join the defaults when weights are given (flag or environment); --paired means psnr, ssim, l1."""
    import evaluate
    from util.metrics.inception import ENV_VAR

    monkeypatch.delenv(ENV_VAR, raising=False)
    parse = evaluate.build_parser().parse_args
    assert evaluate.default_metrics(parse(["--fake_dir", "f", "--real_dir", "r"]))[0] == ["swd"]
    names, others = evaluate.default_metrics(parse(["--fake_dir", "f", "--real_dir", "r", "--inception_weights",
                                                     str(tmp_path / "w.pth")]))
    assert names == ["swd", "fid", "kid"] and "fid" not in others
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "w.pth"))
    assert evaluate.default_metrics(parse(["--fake_dir", "f", "--real_dir", "r"]))[0] == ["swd", "fid", "kid"]
    assert evaluate.default_metrics(parse(["--fake_dir", "f", "--real_dir", "r", "--paired"])) == (
        ["psnr", "ssim", "l1"], "")


# ---------------------------------------------------------------------------------------------------- bench
def test_paired_photos_for_every_derivation(demo_root: Path, tmp_path: Path) -> None:
    from PIL import Image

    from bench.make_paired_from_photos import DERIVATIONS, make_paired_from_photos

    for mode in DERIVATIONS:
        out = tmp_path / mode
        counts = make_paired_from_photos(demo_root / "demo", out, mode, size=24, limit=6)
        assert counts == {"train": 6, "test": 6}
        files = sorted((out / "train").glob("*.jpg"))
        assert [f.name.split("_")[1] for f in files] == ["A", "B"] * 3  # both domains interleaved
        pair = np.asarray(Image.open(files[0]), dtype=np.int16)
        assert pair.shape == (24, 48, 3)
        left = pair[:, :24]
        assert np.abs(left[..., 0] - left[..., 1]).max() <= 6  # gray / edges: no colour (JPEG noise aside)
        if mode == "edges":
            assert ((left < 40) | (left > 215)).mean() > 0.9  # lines on white
        assert make_paired_from_photos(demo_root / "demo", out, mode, size=24, limit=6) == counts  # reused
    with pytest.raises(ValueError, match="--mode 'sketch'"):
        make_paired_from_photos(demo_root / "demo", tmp_path / "x", "sketch")


def test_quality_bench_skips_without_photos(tmp_path: Path, monkeypatch, capsys) -> None:
    from bench import quality

    monkeypatch.setattr(quality, "DEFAULT_DATAROOT", tmp_path / "absent")
    assert quality.main(["--out", str(tmp_path / "out")]) is None
    assert "skipped" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()
    with pytest.raises(FileNotFoundError, match="--dataroot"):
        quality.main(["--dataroot", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")])


@pytest.mark.parametrize("flags,message", [
    (["--eval_every", "700"], "--eval_every 700 must divide"),
    (["--paired_eval_every", "3000"], "--paired_eval_every 3000 must divide"),
    (["--decay_epochs", "3"], "--decay_epochs must be in"),
    (["--threads", "0"], "--threads must be >= 1"),
])
def test_quality_bench_argument_checks(flags, message, tmp_path: Path) -> None:
    from bench import quality

    with pytest.raises(ValueError, match=message):
        quality.main(flags + ["--dataroot", str(tmp_path)])


def test_quality_bench_commands() -> None:
    from bench import quality

    args = quality.build_parser().parse_args([])
    cyc = quality.cycle_argv(args, Path("photos"), Path("ck"))
    assert cyc[cyc.index("--eval_freq") + 1] == "500" and cyc[cyc.index("--crop_size") + 1] == "64"
    assert cyc[cyc.index("--n_epochs") + 1] == "2" and cyc[cyc.index("--n_epochs_decay") + 1] == "1"
    p2p = quality.paired_argv(args, Path("pairs"), Path("ck"))
    assert p2p[p2p.index("--model") + 1] == "pix2pix" and p2p[p2p.index("--eval_best") + 1] == "l1"


@pytest.mark.slow
def test_quality_bench_tiny_run(demo_root: Path, tmp_path: Path) -> None:
    from bench import quality

    out = tmp_path / "out"
    res = quality.main(["--dataroot", str(demo_root / "demo"), "--out", str(out), "--size", "32", "--ngf", "8",
                        "--ndf", "8", "--iters_per_epoch", "4", "--epochs", "1", "--decay_epochs", "0",
                        "--eval_every", "4", "--eval_num", "3", "--paired_size", "32", "--paired_netG",
                        "resnet_6blocks", "--paired_epochs", "1", "--paired_decay_epochs", "0",
                        "--paired_eval_every", "4", "--threads", str(torch.get_num_threads())])
    cyc, p2p = res["cycle_gan"], res["pix2pix"]
    assert [r["row"] for r in cyc["rows"]][-2:] == ["identity (untranslated test images)",
                                                    "floor (real train images of the target domain)"]
    assert cyc["baselines"]["identity"]["domain_score_AtoB"] <= 0.5  # the classifier sees apples as apples
    assert len(p2p["rows"]) == 3 and "psnr" in p2p["rows"][0]
    saved = json.loads((out / "quality.json").read_text())
    assert set(saved) >= {"command", "cycle_gan", "pix2pix", "wall_s"}
    assert "| identity (untranslated test images) |" in (out / "quality.md").read_text()
