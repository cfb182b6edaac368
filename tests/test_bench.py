"""The benchmark command keeps working: a tiny training and test config, 2 timed iterations each."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT))
from bench import report  # noqa: E402
from bench.workloads import PRESETS, WORKLOADS, parse_config  # noqa: E402


def test_bench_command_smoke(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--config", "tiny_cycle_gan", "--config",
         "tiny_cycle_gan --amp bf16", "--config", "tiny_test --batch_size 2", "--iters", "2", "--warmup", "0",
         "--rounds", "1", "--data_dir", str(tmp_path / "data"), "--json", str(out)],
        capture_output=True, text=True, timeout=600, cwd=str(ROOT),
        env={**os.environ, "OMP_NUM_THREADS": "1"})  # tiny nets: one thread, no spin-waits on a busy machine
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "| config | s/iter median" in proc.stdout and "| tiny_test --batch_size 2 |" in proc.stdout
    result = json.loads(out.read_text())
    rows = {r["label"]: r for r in result["results"]}
    assert list(rows) == ["tiny_cycle_gan", "tiny_cycle_gan --amp bf16", "tiny_test --batch_size 2"]
    for label, row in rows.items():
        assert row["n"] == 2 and 0 < row["min_s"] <= row["median_s"] <= row["max_s"], label
        assert row["images_per_s"] > 0 and row["peak_rss_mb"] > 50, label
    assert rows["tiny_cycle_gan"]["speedup_vs_base"] == 1.0
    assert rows["tiny_cycle_gan --amp bf16"]["baseline"] == "tiny_cycle_gan"
    assert set(rows["tiny_cycle_gan"]["final_losses"]) >= {"D_A", "G_A", "cycle_A"}
    assert result["load_average_before"] is None or len(result["load_average_before"]) == 3


def test_bench_runs_another_checkout_side_by_side(tmp_path: Path) -> None:
    """--checkout DIR: every config also runs with that checkout's code, in the same rounds, in its own row."""
    import shutil

    other = tmp_path / "older"
    shutil.copytree(ROOT, other, ignore=shutil.ignore_patterns(".venv", ".git", "checkpoints", "results", "out",
                                                               "__pycache__", "docs", "tests"))
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--config", "tiny_test", "--checkout", str(other),
         "--iters", "2", "--warmup", "0", "--rounds", "1", "--data_dir", str(tmp_path / "data"), "--json", str(out)],
        capture_output=True, text=True, timeout=600, cwd=str(ROOT), env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = {r["label"]: r for r in json.loads(out.read_text())["results"]}
    assert list(rows) == ["tiny_test", "tiny_test @older"]
    assert rows["tiny_test @older"]["baseline"] == "tiny_test" and rows["tiny_test @older"]["n"] == 2
    bad = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--config", "tiny_test", "--checkout",
                          str(tmp_path)], capture_output=True, text=True, timeout=120, cwd=str(ROOT))
    assert bad.returncode == 2 and "has no bench/worker.py" in bad.stderr


def test_presets_name_known_workloads() -> None:
    for name, configs in PRESETS.items():
        for text in configs:
            assert parse_config(text).workload in WORKLOADS, (name, text)
    with pytest.raises(ValueError, match="workload"):
        parse_config("no_such_workload --amp bf16")


def test_ratios_against_baseline_and_official() -> None:
    def row(label: str, median: float, rss: float):
        runs = [{"s_per_iter": [median, median * 1.1, median * 0.9], "images_per_iter": 1, "peak_rss_mb": rss}]
        return report.summarize(label, runs)

    rows = [row("cycle_gan_256", 10.0, 2048.0), row("cycle_gan_256 --amp bf16", 5.0, 1024.0)]
    report.add_ratios(rows)
    assert rows[0]["speedup_vs_base"] == 1.0 and rows[1]["speedup_vs_base"] == pytest.approx(2.0)
    assert rows[0]["speedup_vs_official"] == pytest.approx(12.5 / 10.0)
    assert rows[1]["rss_vs_official"] == pytest.approx(1.0 / 4.2)
    text = report.table(rows, "cpu")
    assert "| cycle_gan_256 --amp bf16 | 5.000 (4.500–5.500) | 0.20 | 2.00× | — | — | 12.50 | 2.50× |" in text


@pytest.mark.parametrize("model_name,root,extra", [
    ("cycle_gan", "demo", ["--netG", "resnet_6blocks", "--pool_size", "0"]),
    ("pix2pix", "demo_pix2pix", ["--netG", "unet_128", "--no_dropout", "--norm", "instance"]),
])
def test_plain_baseline_matches_our_step(model_name: str, root: str, extra: list, demo_root: Path,
                                         tmp_path: Path) -> None:
    """The benchmark's plain official step (--plain) and our step train the same: losses over three steps."""
    import copy

    import torch

    from bench.plain_steps import make_plain
    from data import create_dataset
    from models import create_model
    from options.train_options import TrainOptions

    from conftest import tiny_flags

    opt = TrainOptions().parse(["--dataroot", str(demo_root / root), "--model", model_name,
                                *tiny_flags(model_name, tmp_path), "--display_id", "0", "--serial_batches",
                                "--no_flip", *extra], save=False)
    torch.manual_seed(0)
    ours = create_model(opt)
    ours.setup(opt)
    plain = copy.deepcopy(ours)
    make_plain(plain)
    kinds = {type(m).__name__ for name in plain.model_names for m in getattr(plain, "net" + name).modules()}
    assert "InstanceNorm2d" in kinds and "FastInstanceNorm2d" not in kinds  # the official kernels again
    batch = next(iter(create_dataset(opt)))
    for step in range(3):
        for model in (ours, plain):
            model.set_input(batch)
            model.optimize_parameters()
        a, b = ours.get_current_losses(), plain.get_current_losses()
        for name in a:
            # step 0: same weights, same losses up to kernel rounding. Later steps differ by that rounding
            # (fused vs foreach Adam, group_norm vs instance_norm) amplified by Adam where gradients are ~0
            # (biases in front of a norm), so they only have to stay close.
            tol = 1e-5 if step == 0 else 5e-2
            assert abs(a[name] - b[name]) <= tol * max(1.0, abs(b[name])), (step, name, a, b)


@pytest.mark.slow
def test_busy_bench_reports_the_fair_share(tmp_path: Path) -> None:
    """bench/busy.py on a tiny config: quiet and busy runs of ours and --plain, the table and its ratios."""
    from bench import busy

    out = tmp_path / "busy.json"
    result = busy.main(["--config", "tiny_cycle_gan", "--config", "tiny_cycle_gan --plain", "--busy", "1",
                        "--rounds", "1", "--iters", "2", "--warmup", "0", "--data_dir", str(tmp_path / "data"),
                        "--json", str(out)])
    assert [r["config"] for r in result["rows"]] == ["tiny_cycle_gan", "tiny_cycle_gan --plain"]
    for row in result["rows"]:
        assert row["quiet_s"] > 0 and row["busy_s"] > 0 and row["quiet_cores"] > 0
        assert row["fair_s"] >= row["quiet_s"] and row["vs_fair"] == pytest.approx(row["busy_s"] / row["fair_s"])
    assert json.loads(out.read_text())["busy"] == 1


def test_torch_busy_processes_run_convolutions_and_stop() -> None:
    """--busy_kind torch: the busy processes are PyTorch loops that run (use CPU) and are gone after ``set(0)``."""
    import time

    from bench import busy
    spinners = busy.Spinners("torch")
    spinners.set(1)
    try:
        proc = spinners.procs[0]
        deadline = time.time() + 60
        used = 0.0
        while time.time() < deadline and used < 0.5:
            time.sleep(0.5)
            assert proc.poll() is None, "the torch busy loop exited"
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            used = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        assert used >= 0.5
    finally:
        spinners.set(0)
    assert proc.poll() is not None


def test_cut_preset_compares_cut_fastcut_and_cycle_gan() -> None:
    labels = PRESETS["cut"]
    for size in (128, 256):
        for model in ("cycle_gan", "cut", "fastcut"):
            assert f"{model}_{size}" in labels and f"{model}_{size} --amp bf16" in labels
    assert parse_config("cut_256").flag_value("--CUT_mode", "") == "CUT"
    assert parse_config("fastcut_128").flag_value("--crop_size", "") == "128"


@pytest.mark.slow
def test_equal_time_quality_bench_tiny_run(demo_root: Path, tmp_path: Path) -> None:
    """bench/quality_cut.py: trains for a fixed time, stops by SIGTERM, scores A -> B with the baselines."""
    from bench import quality_cut

    res = quality_cut.main(["--dataroot", str(demo_root / "demo"), "--out", str(tmp_path / "out"), "--models",
                            "cut", "--minutes", "0.4", "--size", "32", "--threads", "1", "--eval_num", "3",
                            "--extra", "--netG resnet_6blocks --ngf 8 --ndf 8 --num_patches 16 --netF_nc 16"])
    run = res["models"]["cut"]
    assert run["total_iters"] >= 1 and run["wall_s"] >= 0.4 * 60
    assert {"swd_AtoB", "domain_score_AtoB"} <= set(run["scores"]) and "swd_BtoA" not in run["scores"]
    assert "| identity (untranslated testA) |" in (tmp_path / "out" / "quality_cut.md").read_text()


FAKE_TRAIN = """import sys, pathlib
args = sys.argv[1:]
value = lambda flag, default: args[args.index(flag) + 1] if flag in args else default
pathlib.Path(__file__).with_name("argv.txt").write_text(" ".join(args))
n, batch = int(value("--max_dataset_size", "0")) // int(value("--batch_size", "1")), int(value("--batch_size", "1"))
print("The number of training images = %d" % (n * batch))
for i in range(n):
    print("[Rank 0] (epoch: 1, iters: %d, time: %.3f, data: %.3f) , G_A: 0.512, D_A: 0.250" % (
        (i + 1) * batch, 0.1 * (i + 1), 0.01))
"""
FAKE_TEST = """import sys, pathlib
args = sys.argv[1:]
pathlib.Path(__file__).with_name("argv.txt").write_text(" ".join(args))
assert (pathlib.Path(args[args.index("--checkpoints_dir") + 1]) / "bench" / "latest_net_G.pth").is_file()
for i in range(int(args[args.index("--num_test") + 1])):
    if i % 5 == 0:
        print("processing (%04d)-th image... ['x.png']" % i)
"""
FAKE_OPTIONS = """import argparse, pathlib
FLAGS = ["--model", "--netG", "--ngf", "--ndf", "--load_size", "--crop_size", "--num_threads", "--no_dropout",
         "--batch_size"]
class TestOptions:
    def parse(self):
        import sys
        args = sys.argv[1:]
        return argparse.Namespace(checkpoints_dir=args[args.index("--checkpoints_dir") + 1], name="bench")
"""
FAKE_MODELS = """import pathlib
class Model:
    def __init__(self, opt):
        self.opt = opt
    def save_networks(self, epoch):
        folder = pathlib.Path(self.opt.checkpoints_dir) / self.opt.name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ("%s_net_G.pth" % epoch)).write_bytes(b"")
def create_model(opt):
    return Model(opt)
"""


@pytest.fixture
def fake_official(tmp_path: Path) -> Path:
    """A stand-in for the official checkout that prints its lines in the official format (no torch work)."""
    folder = tmp_path / "official"
    (folder / "options").mkdir(parents=True)
    (folder / "models").mkdir()
    (folder / "train.py").write_text(FAKE_TRAIN)
    (folder / "test.py").write_text(FAKE_TEST)
    (folder / "options" / "base_options.py").write_text(FAKE_OPTIONS)
    (folder / "options" / "test_options.py").write_text(FAKE_OPTIONS)
    (folder / "options" / "__init__.py").write_text("")
    (folder / "models" / "__init__.py").write_text(FAKE_MODELS)
    return folder


def test_official_flags_drop_our_speed_options_and_refuse_cut() -> None:
    from bench.workloads import official_flags, official_label

    config = parse_config("cycle_gan_128 --amp bf16 --channels_last --num_threads 0 --compile")
    assert official_flags(config) == ["--model", "cycle_gan", "--load_size", "128", "--crop_size", "128",
                                      "--num_threads", "0"]
    assert official_label(config) == "cycle_gan_128 --num_threads 0 @official"
    assert official_label(parse_config("test_256 --channels_last off")) == "test_256 @official"
    assert official_label(parse_config("cut_128")) is None
    with pytest.raises(ValueError, match="CUT"):
        official_flags(parse_config("fastcut_256"))


def test_official_training_is_timed_from_its_loss_lines(fake_official: Path, tmp_path: Path) -> None:
    """(time + data) x batch per loss line; warm-up lines untimed; exactly warmup + iters iterations run."""
    from bench.official import run_official

    seen: list = []
    result = run_official(parse_config("tiny_cycle_gan --batch_size 2 --amp bf16"), fake_official, "cpu", 1, 3,
                          str(tmp_path / "data"), 120, on_iteration=seen.append)
    assert result["warmup_s"] == pytest.approx([0.22])
    assert result["s_per_iter"] == pytest.approx([0.42, 0.62, 0.82])
    assert result["data_wait_s"] == pytest.approx([0.02] * 3) and result["images_per_iter"] == 2
    assert seen == [1, 2, 3, 4] and len(result["wall_s_per_iter"]) == 3
    argv = (fake_official / "argv.txt").read_text().split()
    assert "--amp" not in argv and "--gpu_ids" not in argv and "--display_id" not in argv
    assert argv[argv.index("--max_dataset_size") + 1] == "8" and argv[argv.index("--print_freq") + 1] == "1"
    assert "--no_html" in argv and argv[argv.index("--netG") + 1] == "resnet_6blocks"
    checkpoints = Path(argv[argv.index("--checkpoints_dir") + 1])
    assert not checkpoints.exists()  # removed afterwards


def test_official_test_is_timed_per_block_of_five_images(fake_official: Path, tmp_path: Path) -> None:
    from bench.official import run_official

    result = run_official(parse_config("tiny_test --batch_size 2"), fake_official, "cpu", 5, 7,
                          str(tmp_path / "data"), 120)
    assert len(result["warmup_s"]) == 1 and len(result["s_per_iter"]) == 2  # ceil(5/5) + ceil(7/5) blocks
    assert all(t >= 0 for t in result["s_per_iter"]) and result["images_per_iter"] == 1


def test_dataroot_gives_ours_and_the_official_the_same_real_images(fake_official: Path, tmp_path: Path) -> None:
    """--dataroot DIR: both codes read DIR instead of the generated images; a folder too small, or one without
    the training folders, is refused by name."""
    import numpy as np
    from PIL import Image

    from bench.official import run_official
    from bench.worker import checked_dataroot, run

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(32):
        Image.fromarray(rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)).save(photos / f"p{i:02d}.jpg")
    result = run({"workload": "tiny_test", "extra": [], "device": "cpu", "iters": 2, "warmup": 0,
                  "data_dir": str(tmp_path / "data"), "dataroot": str(photos)})
    assert result["dataroot"] == str(photos) and len(result["s_per_iter"]) == 2
    assert not (tmp_path / "data").exists()  # nothing generated
    official = run_official(parse_config("tiny_test"), fake_official, "cpu", 0, 2, str(tmp_path / "data"), 120,
                            dataroot=str(photos))
    argv = (fake_official / "argv.txt").read_text().split()
    assert argv[argv.index("--dataroot") + 1] == str(photos) and official["dataroot"] == str(photos)
    with pytest.raises(ValueError, match="read 64 images from .*photos, found 32"):
        checked_dataroot(photos, WORKLOADS["tiny_test"], 64)
    with pytest.raises(ValueError, match="trainA, found 0"):
        checked_dataroot(photos, WORKLOADS["tiny_cycle_gan"], 2)
    bad = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--config", "tiny_test", "--dataroot",
                          str(tmp_path / "nowhere")], capture_output=True, text=True, timeout=120, cwd=str(ROOT))
    assert bad.returncode == 2 and "--dataroot" in bad.stderr and "no such folder" in bad.stderr


def test_official_flags_it_lacks_are_named(fake_official: Path, tmp_path: Path) -> None:
    from bench.official import check_flags

    check_flags(fake_official, ["--model", "cycle_gan", "--ngf", "8"])
    with pytest.raises(ValueError, match="--lambda_identity"):
        check_flags(fake_official, ["--model", "cycle_gan", "--lambda_identity", "0"])


def test_run_py_gives_the_official_code_its_own_row(fake_official: Path, tmp_path: Path) -> None:
    """--official: one official row per distinct official command, in the same rounds, with same-run ratios."""
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--config", "tiny_test", "--config",
         "tiny_test --amp bf16", "--config", "tiny_cut", "--official", str(fake_official), "--iters", "2",
         "--warmup", "0", "--rounds", "1", "--data_dir", str(tmp_path / "data"), "--json", str(out)],
        capture_output=True, text=True, timeout=600, cwd=str(ROOT), env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = {r["label"]: r for r in json.loads(out.read_text())["results"]}
    assert list(rows) == ["tiny_test", "tiny_test --amp bf16", "tiny_cut", "tiny_test @official"]
    official = rows["tiny_test @official"]
    assert official["baseline"] is None and official["n"] == 1
    assert rows["tiny_test --amp bf16"]["speedup_vs_official_run"] == pytest.approx(
        rows["tiny_test --amp bf16"]["images_per_s"] / official["images_per_s"])
    assert rows["tiny_cut"]["speedup_vs_official_run"] is None
    bad = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--config", "tiny_test", "--official",
                          str(tmp_path)], capture_output=True, text=True, timeout=120, cwd=str(ROOT))
    assert bad.returncode == 2 and "has no train.py" in bad.stderr


def test_phases_switch_the_load_between_iterations_and_split_the_times(monkeypatch) -> None:
    """--phases: the busy processes start and stop as iterations report in; the switching one is left out."""
    import argparse

    from bench import busy

    calls: list = []
    monkeypatch.setattr(busy.Spinners, "set", lambda self, n: calls.append(n))

    def runner(config, args, on_iteration=None):
        assert args.iters == 9  # every phase's iterations, timed, in one run
        for done in range(1, args.warmup + args.iters + 1):
            on_iteration(done)
        return {"s_per_iter": [1.0] * 3 + [2.0] * 3 + [1.0] * 3, "cpu_s_per_iter": [1.5] * 9,
                "threads_per_iter": [2] * 3 + [1] * 3 + [2] * 3}

    args = argparse.Namespace(phases=["quiet", "busy", "quiet"], warmup=1, iters=3, busy=3, busy_kind="spin")
    result = busy.run_phased(parse_config("demo"), runner, args)
    assert calls == [0, 3, 0, 0]  # start quiet; busy after 1 + 3 iterations; quiet after 7; all stopped at the end
    assert result["phase_of_iter"] == ["1:quiet"] * 3 + ["switch", "2:busy", "2:busy", "switch", "3:quiet",
                                                         "3:quiet"]
    rows = busy.summarise_phases("demo", [result], busy=3, n_cores=2)
    assert [r["phase"] for r in rows] == ["1:quiet", "2:busy", "3:quiet"]
    assert rows[1]["s"] == 2.0 and rows[1]["n"] == 2 and rows[1]["threads_end"] == 1
    assert rows[1]["vs_fair"] == pytest.approx(2.0 / 3.0)  # fair: max(1.0 s, 1.5 CPU s x 4 processes / 2 cores)
    assert rows[0]["vs_fair"] is None and rows[2]["threads_end"] == 2
    assert "| demo | 2:busy | 2.000 |" in busy.phase_table(rows, 3, 2)


@pytest.mark.slow
def test_the_real_official_code_runs_when_present(tmp_path: Path) -> None:
    """Against a checkout of the official code at ../official or $OFFICIAL_DIR (skipped where there is none)."""
    from bench.official import run_official

    folder = Path(os.environ.get("OFFICIAL_DIR", ROOT.parent / "official"))
    if not (folder / "train.py").is_file():
        pytest.skip(f"no official checkout at {folder}")
    result = run_official(parse_config("tiny_cycle_gan"), folder, "cpu", 1, 2, str(tmp_path / "data"), 600)
    assert len(result["s_per_iter"]) == 2 and all(t > 0 for t in result["s_per_iter"])


def test_roofline_reports_rates_and_conv_share(tmp_path: Path) -> None:
    """bench/roofline.py: FLOPs from the counter, rates and the convolution share for each dtype asked."""
    out = tmp_path / "roofline.json"
    res = subprocess.run([sys.executable, "bench/roofline.py", "--size", "32", "--ngf", "8", "--repeats", "1",
                          "--rounds", "1", "--dtype", "fp32", "--dtype", "bf16", "--json", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert sorted(figures) == ["bf16", "fp32"]
    for r in figures.values():
        assert r["forward_gflop"] > 0 and r["forward_gflops"] > 0 and 0 < r["conv_share"] <= 1
        assert abs(r["matmul_gflop"] - 2 * 2048 ** 3 / 1e9) < 1e-6  # the counter counts a multiply-add as 2
        assert r["last_conv_fast_s"] > 0 and r["last_conv_fast_gflop"] >= r["last_conv_gflop"] > 0
    assert "| fp32 |" in res.stdout and "| bf16 |" in res.stdout


def test_norm_kernels_times_every_kernel_in_both_layouts(capsys) -> None:
    """bench/norm_kernels.py: one row per shape, dtype and layout, a positive time for every kernel."""
    from bench import norm_kernels

    rows = norm_kernels.main(["--shape", "2,4,6,6", "--dtype", "bf16", "--repeats", "1", "--rounds", "1"])
    assert [(r["dtype"], r["layout"]) for r in rows] == [("bf16", "nchw"), ("bf16", "channels_last")]
    assert all(r[name] > 0 for r in rows for name in norm_kernels.KERNELS)
    assert capsys.readouterr().out.count("| 2,4,6,6 | bf16 |") == 2


def test_narrow_conv_times_both_forms_in_both_layouts(capsys) -> None:
    """bench/narrow_conv.py: one row per convolution and layout, both forms timed (and checked to agree)."""
    from bench import narrow_conv

    rows = narrow_conv.main(["--conv", "4,3,7,0,12", "--conv", "6,1,4,1,9", "--repeats", "1", "--rounds", "1"])
    assert [(r["conv"], r["layout"]) for r in rows] == [("4,3,7,0,12", "nchw"), ("4,3,7,0,12", "channels_last"),
                                                       ("6,1,4,1,9", "nchw"), ("6,1,4,1,9", "channels_last")]
    assert all(r["nn.Conv2d"] > 0 and r["by rows"] > 0 for r in rows)
    assert capsys.readouterr().out.count("| 4,3,7,0,12 | 21 |") == 2
