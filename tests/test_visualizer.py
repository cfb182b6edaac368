"""Tests for the training reports: loss logs, loss plot, training page, rank handling, visdom fallback, loggers,
and the one history (plot, JSON log, TensorBoard, W&B) across resumes."""
from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

import models
from conftest import TRAINABLE, model_data, small_flags, tiny_flags
from options.defaults import default_options
from util import visualizer as vis_mod
from util.html import HTML
from util.loss_plot import build_figure, collect_series, grid_shape, render_loss_plot, smooth
from util.visualizer import Visualizer, read_history, replay_history, save_images

LOSSES = {"D_A": 0.25, "G_A": 1.5, "cycle_A": 2.125, "idt_A": 0.5}
# What the plots draw: every trainable model's loss names (at spread scales, e.g. an L1 term ~ 50 next to GAN
# losses ~ 1) and the paired metrics (PSNR ~ 20 next to SSIM ~ 0.5 and L1 ~ 0.1).
SERIES_SETS = [*TRAINABLE, "paired_metrics"]
PAIRED_METRICS = {"psnr": 22.0, "ssim": 0.55, "l1": 0.12}
LOSS_SCALES = (0.25, 0.9, 2.0, 50.0)


def series_names(which: str, demo_root, tmp_path) -> dict:
    """The series of one set with a typical value each: a model's ``loss_names`` or the paired metrics."""
    if which == "paired_metrics":
        return PAIRED_METRICS
    from models import create_model
    from options.train_options import TrainOptions

    argv = [*small_flags(which), "--dataroot", str(model_data(demo_root, which)), *tiny_flags("plot", tmp_path)]
    names = create_model(TrainOptions().parse(argv, save=False)).loss_names
    return {name: LOSS_SCALES[i % len(LOSS_SCALES)] for i, name in enumerate(names)}


def make_opt(tmp_path, **overrides) -> argparse.Namespace:
    """Training options with the official flag names, small and local."""
    values = dict(dataroot=str(tmp_path / "data"), name="exp", checkpoints_dir=str(tmp_path / "checkpoints"), ngf=8,
                  ndf=8, netG="resnet_6blocks", num_threads=0, load_size=32, crop_size=32, display_winsize=64,
                  display_id=0, n_epochs=1, n_epochs_decay=0)
    return default_options("cycle_gan", **{**values, **overrides})


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
    v.plot_interval = 0.0  # redraw on every call
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
    lines = [json.loads(line) for line in (tmp_path / "checkpoints" / "exp" / "loss_log.jsonl").read_text().splitlines()]
    assert lines[0]["session"] == "fresh" and lines[0]["epoch"] == 1 and lines[0]["total_iters"] == 0
    records = lines[1:]
    assert len(records) == 5
    assert records[1]["epoch"] == 1 and records[1]["counter_ratio"] == 0.25 and records[1]["x"] == 0.25
    assert records[1]["total_iters"] == 200 and isinstance(records[1]["time"], float)
    assert list(records[1]["losses"]) == list(LOSSES)
    assert records[1]["losses"]["G_A"] == pytest.approx(1.6)
    assert records[4]["losses"]["D_A"] is None  # NaN stays strict JSON
    for before, after in zip(digests, digests[1:]):
        assert before.shape == after.shape and not np.array_equal(before, after)


def fake_records(names_values, epochs: int = 3, per_epoch: int = 4, key: str = "losses"):
    """Records like plot_current_losses writes: per epoch ``per_epoch`` points, each series noisy around its scale."""
    rng = np.random.default_rng(0)
    records, total = [], 0
    for epoch in range(1, epochs + 1):
        for i in range(1, per_epoch + 1):
            total += 1
            values = {k: float(v * (1 + 0.3 * rng.standard_normal())) for k, v in names_values.items()}
            records.append({"epoch": epoch, "counter_ratio": i / per_epoch, "x": epoch - 1 + i / per_epoch,
                            "total_iters": total, key: values})
    return records


@pytest.mark.parametrize("smoothing", [0.0, 0.6], ids=["raw", "smoothed"])
@pytest.mark.parametrize("which", SERIES_SETS)
def test_plot_has_one_panel_per_series_on_a_shared_epoch_axis(which: str, smoothing: float, demo_root,
                                                              tmp_path) -> None:
    """Each loss/metric gets its own panel and y scale; every panel shares the x axis (epochs); smoothing draws the
    raw points faintly behind the moving average."""
    names = series_names(which, demo_root, tmp_path)
    series = collect_series(fake_records(names))
    figure = build_figure(series, "exp", smoothing=smoothing)
    panels = [ax for ax in figure.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == list(names)
    rows, columns = grid_shape(len(names))
    assert len(figure.axes) == rows * columns and columns <= 4
    for ax in panels:
        assert ax.get_shared_x_axes().joined(ax, panels[0])
        assert ax.get_xlim()[0] <= 0.25 and ax.get_xlim()[1] >= 3.0  # epoch 1 spans 0-1, epoch 3 ends at 3.0
    bottoms = {ax for ax in panels if ax.get_xlabel() == "epoch"}
    assert len(bottoms) == min(columns, len(names))  # one x label per column, under its lowest panel
    for ax, (name, points) in zip(panels, series.items()):
        ys = [y for _, y in points]
        low, high = ax.get_ylim()
        assert low <= min(ys) and high >= max(ys)
        assert high - low < 4 * (max(ys) - min(ys))  # its own scale: the data fill the panel, not a flat line
        lines = ax.get_lines()
        if smoothing:
            raw, avg = lines
            assert raw.get_alpha() < 0.5 and list(raw.get_ydata()) == ys
            assert list(avg.get_ydata()) == pytest.approx(smooth(ys, smoothing))
        else:
            (raw,) = lines
            assert list(raw.get_ydata()) == ys and list(raw.get_xdata()) == [x for x, _ in points]


def test_smooth_is_a_debiased_moving_average() -> None:
    """weight 0 = the raw values; a constant stays constant from the first point; the known first values."""
    assert smooth([3.0, -1.0, 2.0], 0.0) == [3.0, -1.0, 2.0]
    assert smooth([5.0] * 4, 0.9) == pytest.approx([5.0] * 4)
    assert smooth([0.0, 1.0], 0.5) == pytest.approx([0.0, 2 / 3])
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match="smoothing weight"):
            smooth([1.0], bad)


@pytest.mark.parametrize("which", SERIES_SETS)
def test_render_loss_plot_writes_the_grid_png(tmp_path, which: str, demo_root) -> None:
    """The PNG holds the whole grid; it returns the series it drew (non-finite values left out); empty input too."""
    names = series_names(which, demo_root, tmp_path)
    records = fake_records(names)
    records[2]["losses"][next(iter(names))] = None  # a NaN logged as null
    drawn = render_loss_plot(records, tmp_path / "p.png", title="exp")
    assert list(drawn) == list(names) and len(drawn[next(iter(names))]) == len(records) - 1
    rows, columns = grid_shape(len(names))
    with Image.open(tmp_path / "p.png") as im:
        assert im.format == "PNG" and im.size == (300 * columns, round((210 * rows + 40)))
        assert len(im.convert("RGB").getcolors(1 << 20)) > 50  # curves and text, not a blank canvas
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically: no temporary file left
    assert render_loss_plot([], tmp_path / "empty.png") == {}
    assert Image.open(tmp_path / "empty.png").format == "PNG"


def test_plot_redraws_are_spaced_and_close_draws_the_rest(tmp_path) -> None:
    """Within plot_interval a new point waits; close() draws it, so the final PNG shows every record."""
    v = Visualizer(make_opt(tmp_path))
    v.plot_interval = 3600.0
    plot = tmp_path / "checkpoints" / "exp" / "web" / "loss_plot.png"
    v.plot_current_losses(1, 0.25, LOSSES, 1)
    first = plot.read_bytes()
    v.plot_current_losses(1, 0.5, {k: val * 3 for k, val in LOSSES.items()}, 2)
    assert plot.read_bytes() == first
    records = list(v.records)
    v.close()
    render_loss_plot(records, tmp_path / "expected.png", title="exp loss over time")
    assert plot.read_bytes() != first and plot.read_bytes() == (tmp_path / "expected.png").read_bytes()


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


def test_log_metrics(tmp_path, captured, monkeypatch) -> None:
    """Metrics: a JSON record with a 'metrics' key at the losses' x, a console line and web/metrics_plot.png on the
    page, drawn without smoothing (the losses with --plot_smoothing)."""
    smoothing = {}

    def spy(records, path, **kwargs):
        smoothing[kwargs["key"]] = kwargs["smoothing"]
        return real(records, path, **kwargs)

    real = vis_mod.render_loss_plot
    monkeypatch.setattr(vis_mod, "render_loss_plot", spy)
    v = Visualizer(make_opt(tmp_path, plot_smoothing=0.8))
    v.display_current_results(make_visuals(), 1, 1, False)
    v.plot_current_losses(1, 0.5, LOSSES, 100)
    v.log_metrics(1, 100, {"FID": 42.5, "KID": 0.0123}, counter_ratio=0.5)
    v.close()
    assert smoothing == {"losses": 0.8, "metrics": 0.0}
    exp = tmp_path / "checkpoints" / "exp"
    lines = (exp / "loss_log.jsonl").read_text().splitlines()
    loss_record, record = json.loads(lines[-2]), json.loads(lines[-1])
    assert record["metrics"] == {"FID": 42.5, "KID": 0.0123} and record["total_iters"] == 100
    assert record["x"] == loss_record["x"] == 0.5 and record["counter_ratio"] == 0.5
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
    assert len(read_history(str(tmp_path / "checkpoints" / "exp" / "loss_log.jsonl"))) == 6


def run_fresh_python(code: str) -> None:
    """Run ``code`` in a new python process at the repository root; it must exit 0."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_visdom_not_imported_when_display_id_is_zero(tmp_path) -> None:
    """display_id <= 0 never imports visdom (docs/differences.md: imported only when asked for); checked in a fresh process."""
    code = (
        "import sys\n"
        "from options.defaults import default_options\n"
        "from util.visualizer import Visualizer\n"
        "for display_id in (0, -1):\n"
        f"    opt = default_options(name='exp', checkpoints_dir={str(tmp_path)!r}, display_id=display_id,\n"
        "                          display_winsize=64)\n"
        "    Visualizer(opt).close()\n"
        "assert 'visdom' not in sys.modules, 'visdom was imported'\n"
        "assert 'wandb' not in sys.modules and 'torch.utils.tensorboard' not in sys.modules\n"
    )
    run_fresh_python(code)


def test_matplotlib_is_imported_only_when_a_plot_is_drawn(tmp_path) -> None:
    """train.py and a Visualizer that shows images and prints losses leave matplotlib unloaded; the first plot loads
    it (checked in a fresh process)."""
    code = (
        "import sys, argparse, torch\n"
        "import importlib.util\n"
        "spec = importlib.util.spec_from_file_location('train_script', 'train.py')\n"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "from options.defaults import default_options\n"
        "from util.visualizer import Visualizer\n"
        f"opt = default_options(name='exp', checkpoints_dir={str(tmp_path)!r}, display_id=0, display_winsize=64)\n"
        "v = Visualizer(opt)\n"
        "v.display_current_results({'real_A': torch.zeros(1, 3, 8, 8)}, 1, 1, False)\n"
        "v.print_current_losses(1, 1, {'G': 1.0}, 0.1, 0.0)\n"
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported before any plot'\n"
        "v.plot_current_losses(1, 0.5, {'G': 1.0}, 1)\n"
        "assert 'matplotlib' in sys.modules\n"
        "v.close()\n"
    )
    run_fresh_python(code)


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
    from util.trackers import TensorBoardLogger, WandbLogger

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


def _wandb_run_records(run_file: str, timeout: float = 60.0):
    """The records of a finished offline run; waits for its 'exit' record (wandb-core writes the file after
    ``finish()`` returns)."""
    deadline = time.monotonic() + timeout
    while True:
        records = _read_wandb_records(run_file)
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.1)


def _wandb_history(run_file: str):
    """{step: row} of a finished offline run's history."""
    rows = [{item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in r.history.item}
            for r in _wandb_run_records(run_file) if r.WhichOneof("record_type") == "history"]
    return {row["_step"]: row for row in rows}


@pytest.fixture
def wandb_offline(tmp_path, monkeypatch):
    """W&B in offline mode with every folder under tmp_path."""
    wandb = pytest.importorskip("wandb", reason="wandb is not installed (pip install wandb)")
    for key, value in {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_CONFIG_DIR": str(tmp_path / "wbcfg"),
                       "WANDB_CACHE_DIR": str(tmp_path / "wbcache"), "WANDB_DATA_DIR": str(tmp_path / "wbdata"),
                       "WANDB_DISABLE_GIT": "true", "WANDB_CONSOLE": "off"}.items():
        monkeypatch.setenv(key, value)
    return wandb


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
    for record in _wandb_run_records(run_files[0]):
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


# ----------------------------------------------------------------------------- one history across resumes
class Point:
    """What train.py passes as ``resume``: a training_state.ResumePoint's epoch and total_iters."""

    def __init__(self, epoch: int, total_iters: int) -> None:
        self.epoch, self.total_iters = epoch, total_iters


def exact(first: int, last: int):
    """(epoch, total_iters) of iterations first..last at 4 images per epoch, batch size 1."""
    return [((t - 1) // 4 + 1, t) for t in range(first, last + 1)]


# id: sessions as (continue_train, resume point or None, [(epoch, total_iters) logged]), expected (session, t)
HISTORIES = {
    "crash-mid-epoch-then-two-resumes": (
        [(False, Point(1, 0), exact(1, 8)),  # killed in epoch 2 after iteration 8; latest saved at 6
         (True, Point(2, 6), exact(7, 10)),  # Ctrl-C after iteration 10: latest saved there
         (True, Point(3, 10), exact(11, 12))],
        [(0, t) for t in range(1, 7)] + [(1, t) for t in range(7, 11)] + [(2, 11), (2, 12)]),
    "resume-from-epoch-end": (
        [(False, Point(1, 0), exact(1, 10)), (True, Point(3, 8), exact(9, 12))],
        [(0, t) for t in range(1, 9)] + [(1, t) for t in range(9, 13)]),
    "resume-from-an-earlier-checkpoint": (
        [(False, Point(1, 0), exact(1, 12)), (True, Point(2, 4), exact(5, 12))],
        [(0, t) for t in range(1, 5)] + [(1, t) for t in range(5, 13)]),
    "weights-only-resume": (  # no training state: --epoch_count 3, total_iters restarts at 0
        [(False, Point(1, 0), exact(1, 10)), (True, None, [(3, t) for t in range(1, 5)])],
        [(0, t) for t in range(1, 9)] + [(1, t) for t in range(1, 5)]),
    "fresh-run-in-the-same-folder": (
        [(False, Point(1, 0), exact(1, 8)), (False, Point(1, 0), exact(1, 4))],
        [(1, t) for t in range(1, 5)]),
}


def run_sessions(tmp_path, sessions, **overrides):
    """Log each session's losses (value 'session' = its index) as train.py would; return the last Visualizer."""
    v = None
    for index, (resumed, point, logged) in enumerate(sessions):
        v = Visualizer(make_opt(tmp_path, continue_train=resumed, epoch_count=3 if point is None else 1,
                                **overrides), resume=point)
        for epoch, t in logged:
            ratio = ((t - 1) % 4 + 1) / 4
            v.plot_current_losses(epoch, ratio, {"G": 10.0 * index + ratio, "session": index}, t)
        v.close()
    return v


@pytest.mark.parametrize("case", list(HISTORIES))
def test_history_keeps_each_iteration_once_across_sessions(tmp_path, case: str) -> None:
    """The plot's records (and read_history) hold every kept iteration once, from the session that trained it
    last; loss_log.jsonl keeps every line ever written."""
    sessions, expected = HISTORIES[case]
    last = run_sessions(tmp_path, sessions)
    jsonl = tmp_path / "checkpoints" / "exp" / "loss_log.jsonl"
    history = read_history(str(jsonl))
    assert [(r["losses"]["session"], r["total_iters"]) for r in history] == expected
    assert [(r["losses"]["session"], r["total_iters"]) for r in last.records] == expected
    xs = [x for x, _ in collect_series(history)["G"]]
    assert xs == sorted(xs) and len(set(xs)) == len(xs)  # one curve: x only moves forward
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [line["session"] for line in lines if "session" in line] == [
        "resume" if resumed else "fresh" for resumed, _, _ in sessions]
    assert len([line for line in lines if "session" not in line]) == sum(len(s[2]) for s in sessions)
    assert Image.open(tmp_path / "checkpoints" / "exp" / "web" / "loss_plot.png").format == "PNG"


def test_history_survives_a_line_cut_short_by_a_crash(tmp_path) -> None:
    """A crash mid-write leaves half a line; the next session's marker still starts on its own line."""
    run_sessions(tmp_path, HISTORIES["crash-mid-epoch-then-two-resumes"][0][:1])
    jsonl = tmp_path / "checkpoints" / "exp" / "loss_log.jsonl"
    with open(jsonl, "a", encoding="utf-8") as handle:
        handle.write('{"epoch": 3, "counter_ratio": 0.25, "x": 3.2')
    run_sessions(tmp_path, [(True, Point(2, 6), exact(7, 8))])
    assert [r["total_iters"] for r in read_history(str(jsonl))] == list(range(1, 9))
    assert replay_history([{"epoch": 1, "total_iters": 1}, {"session": "resume", "epoch": 1, "total_iters": 0}]) == []


def test_tensorboard_continues_one_curve_after_a_resume(tmp_path) -> None:
    """An exact resume hides the steps the interrupted session wrote after the checkpoint: one value per step."""
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install tensorboard)")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    sessions, expected = HISTORIES["crash-mid-epoch-then-two-resumes"]
    run_sessions(tmp_path, sessions, use_tensorboard=True)
    acc = EventAccumulator(str(tmp_path / "checkpoints" / "exp" / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    assert [(int(e.value), e.step) for e in acc.Scalars("session")] == expected


def test_wandb_resume_continues_the_same_run(tmp_path, wandb_offline) -> None:
    """An exact resume logs into the same W&B run (id kept in the experiment folder) and does not send again the
    steps that run already holds (W&B keeps one value per step and its steps only grow)."""
    sessions, _ = HISTORIES["crash-mid-epoch-then-two-resumes"]
    run_sessions(tmp_path, sessions[:2], use_wandb=True)
    exp = tmp_path / "checkpoints" / "exp"
    run_id = (exp / "wandb_run_id.txt").read_text().strip()
    runs = sorted(glob.glob(str(exp / "wandb" / "offline-run-*")))  # offline-run-<time>-<id>[-1]: oldest first
    assert len(runs) == 2 and all(run_id in os.path.basename(r) for r in runs)
    first, second = (_wandb_history(glob.glob(os.path.join(r, "run-*.wandb"))[0]) for r in runs)
    assert sorted(first) == list(range(1, 9)) and sorted(second) == [9, 10]
    assert all(row["session"] == 1 for row in second.values())


# What the user does: train, a double Ctrl-C mid-epoch (no save: the run resumes from an earlier checkpoint),
# --continue_train, Ctrl-C (saves), --continue_train to the end. 3 epochs of 4 images, a loss line every image.
def ctrl_c_at(monkeypatch, model_class, call: int, times: int) -> None:
    """Press Ctrl-C ``times`` times during this session's ``call``-th training step (before it when twice)."""
    original = model_class.optimize_parameters
    calls = {"n": 0}

    def optimize_parameters(self):
        calls["n"] += 1
        if calls["n"] == call and times == 2:
            signal.raise_signal(signal.SIGINT)  # a stop request ...
            signal.raise_signal(signal.SIGINT)  # ... and the second Ctrl-C: KeyboardInterrupt now, nothing saved
        original(self)
        if calls["n"] == call and times == 1:
            signal.raise_signal(signal.SIGINT)  # saves latest after this step, then stops

    monkeypatch.setattr(model_class, "optimize_parameters", optimize_parameters)


@pytest.mark.slow
@pytest.mark.parametrize("model", TRAINABLE)
def test_interrupted_and_twice_resumed_run_plots_one_curve(model: str, demo_root, tmp_path, monkeypatch) -> None:
    """The loss plot after the last session is drawn from every iteration of all sessions, each once; TensorBoard
    holds one value per step."""
    from conftest import run_train

    model_class = models.find_model_using_name(model)
    flags = [*small_flags(model), "--netD", "n_layers", "--n_layers_D", "2"]
    drawn = {}

    def spy(records, path, *args, **kwargs):
        drawn[os.path.basename(str(path))] = [dict(r) for r in records]
        return real_render(records, path, *args, **kwargs)

    real_render = vis_mod.render_loss_plot

    def session(ctrl_c_call: int = 0, times: int = 0) -> None:
        """Patches for the next session: the plot spy and, when asked, the Ctrl-C."""
        monkeypatch.undo()
        monkeypatch.setattr(vis_mod, "render_loss_plot", spy)
        if ctrl_c_call:
            ctrl_c_at(monkeypatch, model_class, ctrl_c_call, times)

    argv = [*flags, *tiny_flags("run", tmp_path / "ck"), "--dataroot", str(model_data(demo_root, model)),
            "--max_dataset_size",
            "4", "--n_epochs", "2", "--n_epochs_decay", "1", "--print_freq", "1", "--display_freq", "100",
            "--save_latest_freq", "3", "--save_epoch_freq", "100", "--seed", "0", "--use_tensorboard"]
    session(ctrl_c_call=9, times=2)  # iterations 1-8 logged, latest saved at 6
    with pytest.raises(SystemExit) as stopped:
        run_train(argv)
    assert stopped.value.code == 130
    session(ctrl_c_call=4, times=1)  # iterations 7-10, latest saved at 10
    with pytest.raises(SystemExit) as stopped:
        run_train(argv + ["--continue_train"])
    assert stopped.value.code == 130
    session()
    run_train(argv + ["--continue_train"])  # iterations 11-12

    exp = tmp_path / "ck" / "run"
    plotted = drawn["loss_plot.png"]
    assert [r["total_iters"] for r in plotted] == list(range(1, 13))
    assert [r["x"] for r in plotted] == [e - 1 + i / 4 for e in (1, 2, 3) for i in (1, 2, 3, 4)]
    assert Image.open(exp / "web" / "loss_plot.png").format == "PNG"
    lines = [json.loads(line) for line in (exp / "loss_log.jsonl").read_text().splitlines()]
    assert [r["total_iters"] for r in lines if "session" not in r] == [*range(1, 9), *range(7, 13)]
    assert [r["total_iters"] for r in read_history(str(exp / "loss_log.jsonl"))] == list(range(1, 13))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(exp / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    first_loss = acc.Tags()["scalars"][0]
    assert [e.step for e in acc.Scalars(first_loss)] == list(range(1, 13))


DAMAGED_LINES = {
    "bad-bytes": b'{"epoch": 1, "total_iters": \xff\xfe}\n',
    "not-an-object": b'[1, 2, 3]\n',
    "bad-counter": b'{"epoch": "one", "total_iters": 5, "losses": {"G": 1.0}}\n',
    "cut-short": b'{"epoch": 1, "total_iters": 3, "los\n',
}


@pytest.mark.parametrize("case", list(DAMAGED_LINES))
def test_damaged_loss_log_line_is_skipped_with_a_warning(tmp_path, captured, case: str) -> None:
    """A damaged line of loss_log.jsonl is left out with one warning naming the file; the other records stay."""
    run_sessions(tmp_path, [(False, Point(1, 0), exact(1, 4))])
    jsonl = tmp_path / "checkpoints" / "exp" / "loss_log.jsonl"
    lines = jsonl.read_bytes().splitlines(keepends=True)
    jsonl.write_bytes(b"".join(lines[:3] + [DAMAGED_LINES[case]] + lines[3:]))
    captured.records.clear()
    run_sessions(tmp_path, [(True, Point(1, 4), exact(5, 6))])
    assert [r["total_iters"] for r in read_history(str(jsonl))] == list(range(1, 7))
    warnings = [r.getMessage() for r in captured.records if r.levelno == logging.WARNING and "damaged" in r.getMessage()]
    assert len(warnings) >= 1 and str(jsonl) in warnings[0] and "line 4" in warnings[0]


@pytest.mark.slow
def test_resume_over_a_damaged_loss_log(demo_root, tmp_path) -> None:
    """What the user does: a finished run whose loss_log.jsonl got a bad byte is extended with --continue_train."""
    from conftest import run_train, tiny_flags

    argv = ["--model", "pix2pix", "--netG", "resnet_6blocks", *tiny_flags("run", tmp_path / "ck"), "--dataroot",
            str(demo_root / "demo_pix2pix"), "--max_dataset_size", "4", "--n_epochs", "1", "--n_epochs_decay",
            "0", "--print_freq", "1", "--save_epoch_freq", "1", "--seed", "0"]
    run_train(argv)
    jsonl = tmp_path / "ck" / "run" / "loss_log.jsonl"
    lines = jsonl.read_bytes().splitlines(keepends=True)
    jsonl.write_bytes(b"".join(lines[:2] + [b'{"epoch": 1, \xff\n'] + lines[2:]))
    run_train(argv[:-6] + ["--n_epochs", "2", "--n_epochs_decay", "0", "--print_freq", "1", "--continue_train"])
    assert [r["total_iters"] for r in read_history(str(jsonl))] == list(range(1, 9))


# ---------------------------------------------------------------------------------------------------- epoch ends
def short_run(tmp_path, name: str, *extra: str) -> str:
    """train.py in a subprocess: 16 images, 2 epochs, the default frequencies unless ``extra`` sets them."""
    from make_demo_dataset import make_demo_dataset

    from conftest import ROOT, tiny_flags

    root = tmp_path / "data16"
    if not root.exists():
        make_demo_dataset(root, size=32, n_train=16, n_test=2, seed=0)
    proc = subprocess.run([sys.executable, "train.py", "--dataroot", str(root), *tiny_flags(name, tmp_path / "ck"),
                           "--netG", "resnet_6blocks", "--n_epochs", "1", "--n_epochs_decay", "1", "--display_id", "0",
                           *extra], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return str(tmp_path / "ck" / name)


def loss_lines(exp: str):
    """The loss lines of loss_log.txt (its session headers left out)."""
    with open(os.path.join(exp, "loss_log.txt")) as handle:
        return [line for line in handle.read().splitlines() if line.startswith("(epoch: ")]


def test_a_run_shorter_than_the_frequencies_reports_every_epoch_end(tmp_path) -> None:
    """16 images with --print_freq 100 / --display_freq 400 (the defaults): each epoch still ends with its loss
    line (iters 16), its images on the page, and the loss plot."""
    exp = short_run(tmp_path, "short")
    assert [re.match(r"\(epoch: (\d+), iters: (\d+),", line).groups() for line in loss_lines(exp)] == \
        [("1", "16"), ("2", "16")]
    web = os.path.join(exp, "web")
    assert os.path.exists(os.path.join(web, "loss_plot.png"))
    page = open(os.path.join(web, "index.html")).read()
    assert "loss_plot.png" in page and "epoch [1]" in page and "epoch [2]" in page
    for epoch in (1, 2):
        for label in ("real_A", "fake_B", "rec_A", "real_B", "fake_A", "rec_B"):
            assert os.path.exists(os.path.join(web, "images", "epoch%03d_%s.png" % (epoch, label)))
            assert "images/epoch%03d_%s.png" % (epoch, label) in page
    records = [r for r in read_history(os.path.join(exp, "loss_log.jsonl")) if "losses" in r]
    assert [(r["epoch"], r["total_iters"], r["x"]) for r in records] == [(1, 16, 1.0), (2, 32, 2.0)]


def test_the_plot_axis_counts_epochs_trained(tmp_path) -> None:
    """A 2-epoch run printing every 4 of 16 images: the plot spans 0.25-2.0 (epoch 1 is 0-1, epoch 2 ends at
    2.0), under the label "epoch"; a record written when x was epoch + fraction is drawn at the same place."""
    exp = short_run(tmp_path, "axis", "--print_freq", "4")
    records = read_history(os.path.join(exp, "loss_log.jsonl"))
    series = collect_series(records)
    xs = [x for x, _ in series["G_A"]]
    assert xs == [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]
    figure = build_figure(series, "t")
    ax = figure.axes[0]
    assert min(ax.get_xlim()) <= 0.25 and 2.0 <= max(ax.get_xlim()) < 2.5
    assert {a.get_xlabel() for a in figure.axes if a.get_visible()} >= {"epoch"}
    old_style = dict(records[-1], x=3.0)  # the x an earlier version wrote for the end of epoch 2
    assert collect_series([old_style])["G_A"][0][0] == 2.0


def test_an_epoch_end_already_reported_is_not_reported_twice(tmp_path) -> None:
    """--print_freq 8 --display_freq 8: the last iteration of each epoch prints and displays; the epoch's end adds
    nothing to it (two lines per epoch, at 8 and 16)."""
    exp = short_run(tmp_path, "freq8", "--print_freq", "8", "--display_freq", "8")
    assert [tuple(map(int, re.findall(r"epoch: (\d+), iters: (\d+)", line)[0])) for line in loss_lines(exp)] == \
        [(1, 8), (1, 16), (2, 8), (2, 16)]


@pytest.mark.slow
def test_torchrun_loss_lines_count_the_whole_dataset(demo_root, tmp_path) -> None:
    """2 processes x 2 images of a 4-image epoch: the loss lines say iters 2 and 4 and the plot 0.5 and 1.0, as
    the progress bar (4/4), not each process's 1 and 2."""
    from conftest import tiny_flags
    from test_ddp import torchrun

    ckpt = tmp_path / "checkpoints"
    out, _ = torchrun(["--dataroot", str(demo_root / "demo"), "--netG", "resnet_6blocks", "--n_epochs", "1",
                       "--n_epochs_decay", "0", "--max_dataset_size", "4", "--print_freq", "1", "--display_freq",
                       "100"] + tiny_flags("ddp_count", ckpt), ckpt, tmp_path)
    assert re.findall(r"\(epoch: 1, iters: (\d+),", out) == ["2", "4"]
    assert "epoch 1/1: 4/4 (100%)" in out
    records = [r for r in read_history(str(ckpt / "ddp_count" / "loss_log.jsonl")) if "losses" in r]
    assert [(r["x"], r["total_iters"]) for r in records] == [(0.5, 1), (1.0, 2)]  # total_iters: one process's
