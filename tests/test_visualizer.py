"""Tests for the training reports: loss logs, loss plot, training page, rank handling, visdom fallback, loggers."""
from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import re
import socket
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from util import visualizer as vis_mod
from util.html import HTML
from util.loss_plot import collect_series, nice_ticks, render_loss_plot
from util.visualizer import Visualizer, save_images

LOSSES = {"D_A": 0.25, "G_A": 1.5, "cycle_A": 2.125, "idt_A": 0.5}


def make_opt(tmp_path, **overrides) -> argparse.Namespace:
    """Training options with the official flag names, small and local."""
    opt = argparse.Namespace(
        dataroot=str(tmp_path / "data"), name="exp", checkpoints_dir=str(tmp_path / "checkpoints"), model="cycle_gan",
        input_nc=3, output_nc=3, ngf=8, ndf=8, netD="basic", netG="resnet_6blocks", n_layers_D=3, norm="instance",
        init_type="normal", init_gain=0.02, no_dropout=True, dataset_mode="unaligned", direction="AtoB",
        serial_batches=False, num_threads=0, batch_size=1, load_size=32, crop_size=32, max_dataset_size=float("inf"),
        preprocess="resize_and_crop", no_flip=False, display_winsize=64, epoch="latest", load_iter=0, verbose=False,
        suffix="", use_wandb=False, wandb_project_name="CycleGAN-and-pix2pix", isTrain=True, phase="train",
        display_freq=400, display_ncols=4, display_id=0, display_server="http://localhost", display_env="main",
        display_port=8097, update_html_freq=1000, print_freq=100, no_html=False, save_latest_freq=5000,
        save_epoch_freq=5, save_by_iter=False, continue_train=False, epoch_count=1, n_epochs=1, n_epochs_decay=0,
        beta1=0.5, lr=0.0002, gan_mode="lsgan", pool_size=50, lr_policy="linear", lr_decay_iters=50,
    )
    for key, value in overrides.items():
        setattr(opt, key, value)
    return opt


def make_visuals(seed: int = 0, size: int = 32):
    """Four small [-1, 1] visuals (one grayscale) like a model's get_current_visuals()."""
    g = torch.Generator().manual_seed(seed)
    return {
        "real_A": torch.rand(1, 3, size, size, generator=g) * 2 - 1,
        "fake_B": torch.rand(1, 3, size, size, generator=g) * 2 - 1,
        "rec_A": torch.rand(1, 1, size, size, generator=g) * 2 - 1,
        "real_B": torch.rand(1, 3, size, size, generator=g) * 2 - 1,
    }


class _Capture(logging.Handler):
    """Collects framework log records."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self, level: int = logging.DEBUG):
        return [r.getMessage() for r in self.records if r.levelno >= level]


@pytest.fixture
def captured():
    """Capture the visualizer module's log output."""
    handler = _Capture()
    logger = vis_mod.log
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on (right now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- loss_log.txt / console
def test_loss_log_txt_exact_format(tmp_path, captured) -> None:
    """Header at construction; the official [<=2024] line, logged and appended verbatim."""
    opt = make_opt(tmp_path)
    v = Visualizer(opt)
    v.print_current_losses(3, 200, LOSSES, 0.12345, 0.0049)
    v.print_current_losses(3, 300, {"G": 1.0}, 1.0, 0.0)
    v.close()
    lines = (tmp_path / "checkpoints" / "exp" / "loss_log.txt").read_text().splitlines()
    assert re.fullmatch(r"================ Training Loss \(.+\) ================", lines[0])
    expected = "(epoch: 3, iters: 200, time: 0.123, data: 0.005) D_A: 0.250 G_A: 1.500 cycle_A: 2.125 idt_A: 0.500 "
    assert lines[1] == expected
    assert lines[2] == "(epoch: 3, iters: 300, time: 1.000, data: 0.000) G: 1.000 "
    assert len(lines) == 3
    assert expected in captured.messages(logging.INFO)
    # a second run in the same folder appends a new header, as the official code does
    Visualizer(opt).close()
    assert (tmp_path / "checkpoints" / "exp" / "loss_log.txt").read_text().count("Training Loss") == 2


# ----------------------------------------------------------------------------- JSON lines + plot
def test_jsonl_one_record_per_print_and_plot_changes(tmp_path) -> None:
    """Each plot_current_losses call appends one parseable record; web/loss_plot.png is a PNG that changes."""
    v = Visualizer(make_opt(tmp_path))
    plot = tmp_path / "checkpoints" / "exp" / "web" / "loss_plot.png"
    digests = []
    for i in range(4):
        losses = {k: val + 0.1 * i for k, val in LOSSES.items()}
        v.plot_current_losses(1, i / 4, losses, total_iters=100 * (i + 1))
        with Image.open(plot) as im:
            im.verify()
        with Image.open(plot) as im:
            assert im.format == "PNG" and im.size[0] >= 400
            digests.append(np.asarray(im.convert("RGB")).copy())
    v.plot_current_losses(2, 0.0, {"D_A": float("nan"), "G_A": 1.0}, total_iters=500)
    v.close()
    records = [json.loads(line) for line in (tmp_path / "checkpoints" / "exp" / "loss_log.jsonl").read_text().splitlines()]
    assert len(records) == 5
    assert records[1]["epoch"] == 1 and records[1]["counter_ratio"] == 0.25 and records[1]["x"] == 1.25
    assert records[1]["total_iters"] == 200 and isinstance(records[1]["time"], float)
    assert list(records[1]["losses"]) == list(LOSSES)
    assert records[1]["losses"]["G_A"] == pytest.approx(1.6)
    assert records[4]["losses"]["D_A"] is None  # NaN stays strict JSON
    for before, after in zip(digests, digests[1:]):
        assert before.shape == after.shape and not np.array_equal(before, after)


def test_render_loss_plot_draws_every_series(tmp_path) -> None:
    """Each loss gets its own colour on the canvas; non-finite values are skipped; empty input still renders."""
    records = [{"epoch": e, "counter_ratio": 0.5, "losses": {"a": float(e), "b": 10.0 - e, "c": "bad"}}
               for e in range(1, 6)]
    series = collect_series(records)
    assert list(series) == ["a", "b"] and series["a"][0] == (1.5, 1.0)
    render_loss_plot(records, tmp_path / "p.png")
    with Image.open(tmp_path / "p.png") as im:
        colors = {c for _, c in im.convert("RGB").getcolors(1 << 20)}
    assert (31, 119, 180) in colors and (255, 127, 14) in colors and (44, 160, 44) not in colors
    render_loss_plot([], tmp_path / "empty.png")
    assert Image.open(tmp_path / "empty.png").format == "PNG"
    assert nice_ticks(0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]


# ----------------------------------------------------------------------------- training page
def test_training_page_contents_and_images(tmp_path) -> None:
    """Images web/images/epoch%03d_<label>.png; page: title, refresh, loss plot on top, newest epoch first."""
    opt = make_opt(tmp_path)
    v = Visualizer(opt)
    web = tmp_path / "checkpoints" / "exp" / "web"
    for epoch in (1, 2):
        v.reset()
        v.display_current_results(make_visuals(epoch), epoch, total_iters=epoch * 10, save_result=False)
        v.plot_current_losses(epoch, 0.5, LOSSES, total_iters=epoch * 10)
        # a second display in the same epoch without save_result does not rewrite the images
        stamp = os.path.getmtime(web / "images" / f"epoch{epoch:03d}_real_A.png")
        time.sleep(0.01)
        v.display_current_results(make_visuals(99), epoch, total_iters=epoch * 10 + 1, save_result=False)
        assert os.path.getmtime(web / "images" / f"epoch{epoch:03d}_real_A.png") == stamp
    v.close()
    names = sorted(p.name for p in (web / "images").iterdir())
    assert names == sorted(f"epoch{e:03d}_{k}.png" for e in (1, 2) for k in make_visuals())
    with Image.open(web / "images" / "epoch001_rec_A.png") as im:
        assert im.size == (32, 32) and im.mode == "RGB"  # grayscale saved as 3 channels (official)
    expected = ((make_visuals(1)["real_A"][0].permute(1, 2, 0).numpy() + 1) / 2 * 255).astype(np.uint8)
    assert np.array_equal(np.asarray(Image.open(web / "images" / "epoch001_real_A.png")), expected)
    text = (web / "index.html").read_text()
    assert "<title>Experiment name = exp</title>" in text
    assert '<meta content="1" http-equiv="refresh">' in text
    assert text.index('src="loss_plot.png"') < text.index("epoch [2]") < text.index("epoch [1]")
    assert 'src="images/epoch002_fake_B.png" style="width:64px"' in text
    assert text.count("<table") == 2


def test_save_result_rewrites_images_and_loss_plot_joins_existing_page(tmp_path) -> None:
    """save_result=True saves again mid-epoch; a loss plot appearing after the page was built is added to it."""
    v = Visualizer(make_opt(tmp_path))
    web = tmp_path / "checkpoints" / "exp" / "web"
    v.display_current_results(make_visuals(1), 1, 1, False)
    assert "loss_plot.png" not in (web / "index.html").read_text()
    v.plot_current_losses(1, 0.1, LOSSES, 1)
    assert 'src="loss_plot.png"' in (web / "index.html").read_text()
    before = np.asarray(Image.open(web / "images" / "epoch001_fake_B.png")).copy()
    v.display_current_results(make_visuals(2), 1, 2, True)
    assert not np.array_equal(before, np.asarray(Image.open(web / "images" / "epoch001_fake_B.png")))
    v.close()


def test_old_style_display_call_still_saves(tmp_path) -> None:
    """The [<=2024] call display_current_results(visuals, epoch, save_result) keeps working."""
    v = Visualizer(make_opt(tmp_path))
    img = tmp_path / "checkpoints" / "exp" / "web" / "images" / "epoch001_fake_B.png"
    v.display_current_results(make_visuals(1), 1, False)
    first = np.asarray(Image.open(img)).copy()
    v.display_current_results(make_visuals(2), 1, True)
    assert not np.array_equal(first, np.asarray(Image.open(img)))
    v.close()


def test_resumed_run_page_skips_missing_epochs_and_keeps_curve(tmp_path) -> None:
    """continue_train: earlier records (epochs < epoch_count) feed the plot; epochs without images get no row."""
    opt = make_opt(tmp_path)
    first = Visualizer(opt)
    first.plot_current_losses(1, 0.5, LOSSES, 10)
    first.plot_current_losses(2, 0.5, LOSSES, 20)
    first.plot_current_losses(3, 0.5, LOSSES, 30)  # after the checkpoint we resume from: dropped
    first.close()
    resumed = Visualizer(make_opt(tmp_path, continue_train=True, epoch_count=3))
    assert [r["epoch"] for r in resumed.records] == [1, 2]
    resumed.display_current_results(make_visuals(), 3, 40, False)
    text = (tmp_path / "checkpoints" / "exp" / "web" / "index.html").read_text()
    assert "epoch [3]" in text and "epoch [2]" not in text and "epoch [1]" not in text
    resumed.close()


def test_log_metrics(tmp_path, captured) -> None:
    """Metrics: a JSON record with a 'metrics' key, a console line and web/metrics_plot.png on the page."""
    v = Visualizer(make_opt(tmp_path))
    v.display_current_results(make_visuals(), 1, 1, False)
    v.log_metrics(1, 100, {"FID": 42.5, "KID": 0.0123})
    v.close()
    exp = tmp_path / "checkpoints" / "exp"
    record = json.loads((exp / "loss_log.jsonl").read_text().splitlines()[-1])
    assert record["metrics"] == {"FID": 42.5, "KID": 0.0123} and record["total_iters"] == 100
    assert "(epoch: 1, total_iters: 100) metrics: FID: 42.5000 KID: 0.0123 " in captured.messages(logging.INFO)
    assert Image.open(exp / "web" / "metrics_plot.png").format == "PNG"
    assert 'src="metrics_plot.png"' in (exp / "web" / "index.html").read_text()


def test_no_html_writes_no_web_folder(tmp_path) -> None:
    """--no_html: no web/ folder, but the logs are still written."""
    v = Visualizer(make_opt(tmp_path, no_html=True))
    v.display_current_results(make_visuals(), 1, 1, True)
    v.plot_current_losses(1, 0.5, LOSSES, 1)
    v.close()
    exp = tmp_path / "checkpoints" / "exp"
    assert not (exp / "web").exists()
    assert (exp / "loss_log.txt").exists() and (exp / "loss_log.jsonl").exists()


def test_rank_nonzero_writes_nothing(tmp_path, captured) -> None:
    """Only rank 0 writes files or logs lines."""
    opt = make_opt(tmp_path, rank=1, display_id=1, display_port=free_port())
    v = Visualizer(opt)
    v.reset()
    v.display_current_results(make_visuals(), 1, 1, True)
    v.plot_current_losses(1, 0.5, LOSSES, 1)
    v.print_current_losses(1, 1, LOSSES, 0.1, 0.1)
    v.log_metrics(1, 1, {"FID": 1.0})
    v.close()
    assert not (tmp_path / "checkpoints").exists()
    assert captured.messages() == []


# ----------------------------------------------------------------------------- visdom without a server
def test_no_visdom_server_warns_once_and_finishes(tmp_path, captured, capsys) -> None:
    """display_id > 0 and nothing listening: one warning, no traceback, everything else still works."""
    port = free_port()
    start = time.monotonic()
    v = Visualizer(make_opt(tmp_path, display_id=1, display_port=port))
    for epoch in (1, 2):
        v.reset()
        for i in range(3):
            v.display_current_results(make_visuals(i), epoch, i, i == 2)
            v.plot_current_losses(epoch, i / 3, LOSSES, i)
            v.print_current_losses(epoch, i, LOSSES, 0.1, 0.0)
    v.close()
    assert time.monotonic() - start < 20
    warnings = captured.messages(logging.WARNING)
    assert len(warnings) == 1
    assert f"Could not connect to visdom server at http://localhost:{port}" in warnings[0]
    assert "training continues without it" in warnings[0] and "--display_id 0" in warnings[0]
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err and "Exception in user code" not in out.out + out.err
    assert (tmp_path / "checkpoints" / "exp" / "web" / "index.html").exists()
    assert len((tmp_path / "checkpoints" / "exp" / "loss_log.jsonl").read_text().splitlines()) == 6


def test_visdom_not_imported_when_display_id_is_zero(tmp_path) -> None:
    """display_id <= 0 never imports visdom (decisions.md: imports only when asked); checked in a fresh process."""
    code = (
        "import sys, argparse\n"
        "from util.visualizer import Visualizer\n"
        "for display_id in (0, -1):\n"
        f"    opt = argparse.Namespace(name='exp', checkpoints_dir={str(tmp_path)!r}, isTrain=True, no_html=False,\n"
        "                             display_id=display_id, display_winsize=64, use_wandb=False)\n"
        "    Visualizer(opt).close()\n"
        "assert 'visdom' not in sys.modules, 'visdom was imported'\n"
        "assert 'wandb' not in sys.modules and 'torch.utils.tensorboard' not in sys.modules\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_visdom_error_mid_run_disables_with_one_warning(tmp_path, captured) -> None:
    """A visdom call that fails after a good connection: one warning, then visdom stays off."""
    v = Visualizer(make_opt(tmp_path, display_id=0))
    display = vis_mod.VisdomDisplay("http://localhost", 1, "main", 1, 4, "exp")

    class Broken:
        def images(self, *a, **k):
            raise ConnectionError("Error connecting to Visdom server")

        text = image = line = images

    display.vis = Broken()
    v.visdom = display
    v.display_current_results(make_visuals(), 1, 1, False)
    v.plot_current_losses(1, 0.5, LOSSES, 1)
    v.display_current_results(make_visuals(), 1, 2, False)
    assert not display.connected
    assert len(captured.messages(logging.WARNING)) == 1
    v.close()


def test_missing_visdom_package_says_how_to_install_it(captured, monkeypatch) -> None:
    """A server listens but the visdom package is absent (it is an extra): one warning naming the extra."""
    monkeypatch.setitem(sys.modules, "visdom", None)  # import visdom -> ImportError
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        display = vis_mod.VisdomDisplay("http://localhost", listener.getsockname()[1], "main", 1, 4, "exp")
        assert display.connect() is False
    warnings_ = captured.messages(logging.WARNING)
    assert len(warnings_) == 1 and "pip install -e '.[visdom]'" in warnings_[0]
    assert "docs/install.md" in warnings_[0] and "training continues without it" in warnings_[0]


# ----------------------------------------------------------------------------- results page helper
def test_save_images_results_page(tmp_path) -> None:
    """save_images: h3 with the input's stem, images/<stem>_<label>.png, one row; aspect ratio applied."""
    page = HTML(tmp_path / "results" / "exp" / "test_latest", "Experiment = exp, Phase = test, Epoch = latest")
    visuals = {"real": torch.zeros(1, 3, 16, 16), "fake": torch.ones(1, 1, 16, 16)}
    save_images(page, visuals, ["/data/testA/photo 1.jpg"], aspect_ratio=2.0, width=128)
    save_images(page, visuals, "C:\\data\\testA\\img2.png", width=128)
    page.save()
    root = tmp_path / "results" / "exp" / "test_latest"
    assert sorted(p.name for p in (root / "images").iterdir()) == [
        "img2_fake.png", "img2_real.png", "photo 1_fake.png", "photo 1_real.png"]
    assert Image.open(root / "images" / "photo 1_real.png").size == (32, 16)
    text = (root / "index.html").read_text()
    assert "<h3>photo 1</h3>" in text and "<h3>img2</h3>" in text
    assert 'src="images/photo%201_fake.png" style="width:128px"' in text
    assert text.count("<table") == 2


# ----------------------------------------------------------------------------- optional loggers
def test_missing_logger_packages_give_clear_errors(tmp_path, monkeypatch) -> None:
    """--use_wandb / --use_tensorboard without their package: an error naming the flag and the pip package."""
    from util.loggers import TensorBoardLogger, WandbLogger

    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(RuntimeError, match=r"--use_wandb.*pip install wandb"):
        WandbLogger(make_opt(tmp_path))
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(RuntimeError, match=r"--use_tensorboard.*pip install tensorboard"):
        TensorBoardLogger(make_opt(tmp_path))


def test_tensorboard_event_files_hold_scalars_and_images(tmp_path) -> None:
    """--use_tensorboard: losses at step=total_iters and images every display, read back from the event file."""
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install tensorboard)")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    v = Visualizer(make_opt(tmp_path, use_tensorboard=True))
    v.display_current_results(make_visuals(), 1, 100, False)
    v.plot_current_losses(1, 0.5, LOSSES, 100)
    v.plot_current_losses(1, 1.0, {k: val * 2 for k, val in LOSSES.items()}, 200)
    v.log_metrics(1, 200, {"FID": 12.0})
    v.close()
    log_dir = tmp_path / "checkpoints" / "exp" / "tensorboard"
    assert glob.glob(str(log_dir / "events.out.tfevents.*"))
    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    assert set(LOSSES) | {"metrics/FID"} <= set(acc.Tags()["scalars"])
    g_a = [(e.step, e.value) for e in acc.Scalars("G_A")]
    assert g_a == [(100, pytest.approx(1.5)), (200, pytest.approx(3.0))]
    assert "results/real_A" in acc.Tags()["images"]
    image_event = acc.Images("results/rec_A")[0]
    assert image_event.step == 100 and (image_event.width, image_event.height) == (32, 32)


def _read_wandb_records(path: str):
    """Minimal reader of a W&B ``.wandb`` transaction log (LevelDB log framing) -> protobuf Records."""
    from wandb.proto import wandb_internal_pb2

    block = 32768
    with open(path, "rb") as handle:
        data = handle.read()
    assert data[:4] == b":W&B", "not a W&B transaction log"
    pos, pending, records = 7, b"", []
    while pos + 7 <= len(data):
        space = block - pos % block
        if space < 7:  # block trailer padding
            pos += space
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and length == 0:
            pos += space
            continue
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 1:  # FULL
            pending = chunk
        elif kind == 2:  # FIRST
            pending = chunk
            continue
        elif kind == 3:  # MIDDLE
            pending += chunk
            continue
        else:  # LAST
            pending += chunk
        record = wandb_internal_pb2.Record()
        record.ParseFromString(pending)
        records.append(record)
        pending = b""
    return records


def test_wandb_offline_run_holds_the_scalars(tmp_path, monkeypatch) -> None:
    """--use_wandb in offline mode: the run (project, name, config) and losses at step=total_iters are on disk."""
    wandb = pytest.importorskip("wandb", reason="wandb is not installed (pip install wandb)")
    for key, value in {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_CONFIG_DIR": str(tmp_path / "wbcfg"),
                       "WANDB_CACHE_DIR": str(tmp_path / "wbcache"), "WANDB_DATA_DIR": str(tmp_path / "wbdata"),
                       "WANDB_DISABLE_GIT": "true", "WANDB_CONSOLE": "off"}.items():
        monkeypatch.setenv(key, value)
    opt = make_opt(tmp_path, use_wandb=True, wandb_project_name="proj-test")
    v = Visualizer(opt)
    try:
        assert wandb.run is not None and wandb.run.name == "exp" and wandb.run.project == "proj-test"
        v.display_current_results(make_visuals(), 1, 100, False)
        v.plot_current_losses(1, 0.5, LOSSES, 100)
        v.plot_current_losses(1, 1.0, {k: val * 2 for k, val in LOSSES.items()}, 200)
    finally:
        v.close()
    assert wandb.run is None
    run_files = glob.glob(str(tmp_path / "checkpoints" / "exp" / "wandb" / "offline-run-*" / "run-*.wandb"))
    assert len(run_files) == 1
    history, config = [], {}
    for record in _read_wandb_records(run_files[0]):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            history.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                            for item in record.history.item})
        elif kind == "run":
            assert record.run.display_name == "exp" and record.run.project == "proj-test"
            config.update({item.key: json.loads(item.value_json) for item in record.run.config.update})
    by_step = {row["_step"]: row for row in history}
    assert set(by_step) == {100, 200}
    assert by_step[100]["G_A"] == pytest.approx(1.5) and by_step[200]["cycle_A"] == pytest.approx(4.25)
    assert by_step[100]["results/real_A/caption"] == "real_A - Step 100"
    assert config["name"] == "exp" and config["netG"] == "resnet_6blocks" and config["max_dataset_size"] == "inf"
    images = glob.glob(str(tmp_path / "checkpoints" / "exp" / "wandb" / "offline-run-*" / "files" / "media" / "images"
                           / "results" / "real_A_*.png"))
    assert len(images) == 1
