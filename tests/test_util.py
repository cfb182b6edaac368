"""Tests for util basics: tensor2im, save_image, atomic writes, ImagePool, HTML pages, progress display."""
from __future__ import annotations

import io
import logging
import os
import random
import re
import select
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from util import html as html_mod
from util import util
from util.html import HTML, page_file_name
from util.image_pool import ImagePool
from util.logger import ROOT_NAME, get_logger, setup_logging
from util.progress import Progress, run_eta

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- tensor2im / save_image
def test_tensor2im_takes_batch_item_zero_and_scales() -> None:
    """(x + 1) / 2 * 255 of batch item 0, CHW -> HWC."""
    batch = torch.full((2, 3, 4, 5), -1.0)
    batch[0, 0] = 1.0  # red channel of item 0 at full
    batch[0, 1] = 0.0  # green mid
    out = util.tensor2im(batch)
    assert out.shape == (4, 5, 3) and out.dtype == np.uint8
    assert (out[..., 0] == 255).all() and (out[..., 1] == 127).all() and (out[..., 2] == 0).all()


def test_tensor2im_tiles_grayscale() -> None:
    """A 1-channel image becomes 3 identical channels."""
    gray = torch.linspace(-1, 1, 16).reshape(1, 1, 4, 4)
    out = util.tensor2im(gray)
    assert out.shape == (4, 4, 3)
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 255


def test_tensor2im_clips_instead_of_wrapping() -> None:
    """Overshoot beyond [-1, 1] saturates (the official cast would wrap 1.01 -> 1 and -1.01 -> 254)."""
    x = torch.tensor([1.02, -1.02, 1.0, -1.0]).reshape(1, 1, 2, 2)
    out = util.tensor2im(x)[..., 0]
    assert out.tolist() == [[255, 0], [255, 0]]


def test_tensor2im_bfloat16_and_numpy_passthrough() -> None:
    """bf16 tensors convert; numpy arrays are only cast."""
    out = util.tensor2im(torch.ones(1, 3, 2, 2, dtype=torch.bfloat16))
    assert (out == 255).all()
    arr = np.array([[[1.7, 2.2, 3.9]]])
    assert util.tensor2im(arr).tolist() == [[[1, 2, 3]]]


@pytest.mark.parametrize("aspect_ratio, expected_wh", [(1.0, (40, 20)), (2.0, (80, 20)), (0.5, (40, 40))])
def test_save_image_aspect_ratio_uses_right_axis(tmp_path, aspect_ratio, expected_wh) -> None:
    """On a non-square 40x20 (w x h) image: ar > 1 widens, ar < 1 makes it taller (fixed official quirk)."""
    arr = np.zeros((20, 40, 3), dtype=np.uint8)
    arr[:, :20] = 255
    path = tmp_path / "out.png"
    util.save_image(arr, path, aspect_ratio=aspect_ratio)
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.size == expected_wh


def test_save_image_format_from_extension(tmp_path) -> None:
    """The file extension picks the format."""
    util.save_image(np.zeros((8, 8, 3), np.uint8), tmp_path / "a.jpg")
    with Image.open(tmp_path / "a.jpg") as im:
        assert im.format == "JPEG"


@pytest.mark.parametrize("name", ["a.png", "a.PNG", "a.unknown"])
def test_save_image_png_is_lossless_at_its_fast_level(tmp_path, name) -> None:
    """PNGs (also for an unknown extension) keep every pixel, written at the fast zlib level."""
    arr = np.random.default_rng(0).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    util.save_image(arr, tmp_path / name)
    with Image.open(tmp_path / name) as im:
        assert im.format == "PNG" and np.array_equal(np.asarray(im), arr)
    plain = io.BytesIO()
    Image.fromarray(arr).save(plain, format="PNG", compress_level=util.PNG_COMPRESS_LEVEL)
    assert (tmp_path / name).read_bytes() == plain.getvalue()


def test_mkdirs_accepts_one_path_or_a_list(tmp_path) -> None:
    """mkdirs creates single paths and lists, nested and existing."""
    util.mkdirs(str(tmp_path / "a" / "b"))
    util.mkdirs([tmp_path / "c", tmp_path / "d" / "e"])
    util.mkdir(tmp_path / "c")
    assert (tmp_path / "a" / "b").is_dir() and (tmp_path / "c").is_dir() and (tmp_path / "d" / "e").is_dir()


def test_print_numpy_and_diagnose_network_log(caplog) -> None:
    """print_numpy and diagnose_network go through the logger, not print()."""
    logger = util.log
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level("INFO", logger=logger.name):
            util.print_numpy(np.array([1.0, 2.0, 3.0]), val=True, shp=True)
            net = torch.nn.Linear(2, 1)
            net(torch.ones(1, 2)).sum().backward()
            util.diagnose_network(net, "tiny")
    finally:
        logger.removeHandler(caplog.handler)
    text = caplog.text
    assert "mean = 2.000, min = 1.000, max = 3.000, median = 2.000" in text
    assert "shape, (3,)" in text and "tiny" in text


# ----------------------------------------------------------------------------- atomic writes
def test_atomic_write_replaces_and_leaves_no_temp(tmp_path) -> None:
    """atomic writes replace the file and leave no temporary files behind."""
    target = tmp_path / "file.txt"
    util.atomic_write_text(target, "first")
    util.atomic_write_text(target, "second")
    util.atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert target.read_text() == "second"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.bin", "file.txt"]
    if os.name == "posix":
        umask = os.umask(0)
        os.umask(umask)
        assert (target.stat().st_mode & 0o777) == (0o666 & ~umask)


def test_atomic_write_failure_keeps_old_content(tmp_path, monkeypatch) -> None:
    """If the replace step fails, the old file is intact and the temp file is removed."""
    target = tmp_path / "file.txt"
    util.atomic_write_text(target, "old")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(util.os, "replace", boom)
    with pytest.raises(OSError):
        util.atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]


# ----------------------------------------------------------------------------- ImagePool
def test_image_pool_size_zero_is_passthrough() -> None:
    """pool_size 0 returns the very same tensor."""
    pool = ImagePool(0)
    x = torch.randn(2, 3, 4, 4)
    assert pool.query(x) is x


def test_image_pool_fills_then_mixes() -> None:
    """While filling, images come back unchanged; once full, about half are swapped with stored ones."""
    random.seed(0)
    pool = ImagePool(3)
    first = torch.arange(3, dtype=torch.float32).reshape(3, 1, 1, 1)
    out = pool.query(first)
    assert torch.equal(out, first) and pool.num_imgs == 3
    swapped = 0
    for step in range(200):
        new = torch.full((1, 1, 1, 1), 100.0 + step)
        stored_before = {float(t) for t in pool.images}
        out = pool.query(new)
        assert out.shape == new.shape
        value = float(out)
        if value != 100.0 + step:
            swapped += 1
            assert value in stored_before  # an older image came back
            assert any(float(t) == 100.0 + step for t in pool.images)  # and the new one is stored
    assert 60 < swapped < 140
    assert len(pool.images) == 3


def test_image_pool_detaches_and_matches_official_rng() -> None:
    """Outputs carry no graph; decisions use python's random exactly like the official pool."""
    pool = ImagePool(1)
    x = torch.ones(1, 1, 2, 2, requires_grad=True)
    assert not pool.query(x * 2).requires_grad
    random.seed(123)
    expected_p = random.uniform(0, 1)
    random.seed(123)
    out = pool.query(torch.zeros(1, 1, 2, 2))
    assert torch.equal(out, torch.full((1, 1, 2, 2), 2.0) if expected_p > 0.5 else torch.zeros(1, 1, 2, 2))


def test_image_pool_state_round_trip(tmp_path) -> None:
    """state_dict -> torch.save(weights_only load) -> load_state_dict gives identical future behaviour."""
    pool = ImagePool(4)
    torch.manual_seed(0)
    for _ in range(3):
        pool.query(torch.randn(2, 3, 4, 4))
    state = pool.state_dict()
    assert all(t.device.type == "cpu" for t in state["images"])
    torch.save(state, tmp_path / "pool.pt")
    loaded = torch.load(tmp_path / "pool.pt", weights_only=True)
    other = ImagePool(4)
    other.load_state_dict(loaded)
    assert other.num_imgs == pool.num_imgs == 4
    probe = torch.randn(3, 3, 4, 4)
    random.seed(7)
    a = pool.query(probe.clone())
    random.seed(7)
    b = other.query(probe.clone())
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="pool_size"):
        ImagePool(5).load_state_dict(state)


# ----------------------------------------------------------------------------- HTML
def _make_page(tmp_path, rows, page_size=html_mod.DEFAULT_PAGE_SIZE, refresh=0):
    """Build a page with ``rows`` header + image rows and save it."""
    page = HTML(tmp_path / "web", "Experiment = x, Phase = test, Epoch = latest", refresh=refresh, page_size=page_size)
    for i in range(rows):
        page.add_header(f"img{i}")
        page.add_images([f"img{i}_real.png", f"img{i}_fake.png"], ["real", "fake"],
                        [f"img{i}_real.png", f"img{i}_fake.png"], width=64)
    page.save()
    return page


def test_html_official_structure(tmp_path) -> None:
    """h3 header, table(border=1, fixed layout) > tr > td > p > a(href=images/..) > img(style=width, lazy)."""
    page = _make_page(tmp_path, 2, refresh=3)
    assert os.path.isdir(page.get_image_dir()) and page.get_image_dir().endswith("images")
    text = (tmp_path / "web" / "index.html").read_text()
    assert "<title>Experiment = x, Phase = test, Epoch = latest</title>" in text
    assert "<h1" in text and "Experiment = x, Phase = test, Epoch = latest</h1>" in text
    assert '<meta content="3" http-equiv="refresh">' in text
    assert text.count("<h3>img") == 2
    assert text.count('<table border="1" style="table-layout: fixed;">') == 2
    assert '<td halign="center" style="word-wrap: break-word;" valign="top">' in text
    assert re.search(r'<a href="images/img0_real.png">\s*<img alt="real" loading="lazy" src="images/img0_real.png" '
                     r'style="width:64px">', text)
    assert "<p>fake</p>" in text
    assert not (tmp_path / "web" / "index_2.html").exists()
    assert "page 1 of" not in text


def test_html_without_refresh_has_no_meta(tmp_path) -> None:
    """refresh=0 writes no refresh meta."""
    _make_page(tmp_path, 1)
    assert "refresh" not in (tmp_path / "web" / "index.html").read_text()


def test_html_quotes_file_names(tmp_path) -> None:
    """Names with spaces or '#' still resolve (URL-quoted relative paths)."""
    page = HTML(tmp_path, "t")
    page.add_images(["a b#1.png"], ["x"], ["a b#1.png"])
    page.save()
    assert 'src="images/a%20b%231.png"' in (tmp_path / "index.html").read_text()


@pytest.mark.parametrize("rows, page_size, pages", [(5, 5, 1), (6, 5, 2), (11, 5, 3), (0, 5, 1)])
def test_html_pagination(tmp_path, rows, page_size, pages) -> None:
    """At most page_size rows per page, every row exactly once, headers stay with their rows, prev/next links."""
    page = _make_page(tmp_path, rows, page_size=page_size)
    assert page.num_pages() == pages
    web = tmp_path / "web"
    files = sorted(p.name for p in web.glob("index*.html"))
    assert files == sorted(page_file_name(n) for n in range(1, pages + 1))
    seen = []
    for n in range(1, pages + 1):
        text = (web / page_file_name(n)).read_text()
        headers = re.findall(r"<h3>(img\d+)</h3>", text)
        tables = text.count("<table")
        assert len(headers) == tables <= page_size
        for h in headers:  # each header is followed by its own row
            assert re.search(rf"<h3>{h}</h3>\s*<table[^>]*>\s*<tr>\s*<td[^>]*>\s*<p>\s*<a href=\"images/{h}_real.png\"", text)
        seen += headers
        if pages > 1:
            assert f"page {n} of {pages}" in text
            assert ('href="%s"' % page_file_name(n + 1) in text) == (n < pages)
            assert ('href="%s"' % page_file_name(n - 1) in text) == (n > 1)
    assert seen == [f"img{i}" for i in range(rows)]


def test_html_save_removes_stale_pages(tmp_path) -> None:
    """A smaller rebuild in the same folder deletes the extra pages of an earlier, bigger one."""
    _make_page(tmp_path, 7, page_size=2)
    assert (tmp_path / "web" / "index_4.html").exists()
    _make_page(tmp_path, 3, page_size=2)
    assert (tmp_path / "web" / "index_2.html").exists()
    assert not (tmp_path / "web" / "index_3.html").exists() and not (tmp_path / "web" / "index_4.html").exists()


def test_html_figure_and_bad_args(tmp_path) -> None:
    """add_figure shows a web_dir-relative image; mismatched lists and page_size 0 raise."""
    page = HTML(tmp_path, "t")
    page.add_figure("loss_plot.png", "losses")
    page.save()
    text = (tmp_path / "index.html").read_text()
    assert 'src="loss_plot.png"' in text and "<p>losses</p>" in text
    with pytest.raises(ValueError):
        page.add_images(["a.png"], [], ["a.png"])
    with pytest.raises(ValueError):
        HTML(tmp_path, "t", page_size=0)


# ----------------------------------------------------------------------------- progress
class _FakeClock:
    """A controllable clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _TTY(io.StringIO):
    """A StringIO that claims to be a terminal."""

    def isatty(self) -> bool:
        return True


def shown_lines(text: str) -> list:
    """What a terminal shows of each line: the text after its last carriage return."""
    return [line.split("\r")[-1] for line in text.split("\n")]


def test_progress_terminal_bar_resumed_position_and_run_eta() -> None:
    """A terminal gets one redrawn bar: counts from the resumed position, rate, epoch ETA, run ETA, one newline."""
    out = _TTY()
    bar = Progress(40, desc="epoch 3/10", unit="img", initial=28, later=7 * 40, file=out, interval=0)
    assert "28/40" in out.getvalue()  # the resumed epoch shows its place in the whole epoch
    for _ in range(8):
        bar.update(2)  # the last update would pass the total (a padded last batch): it stops at 40
    bar.close()
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n") and text.count("\r") >= 6
    last = shown_lines(text)[-2]
    assert re.fullmatch(r"epoch 3/10: 100%\|#+\| 40/40 \[\d\d:\d\d<00:00, +[\d.?]+s?/?img/?s?, run ETA [\d:?]+\]",
                        last.strip()), last
    bar.close()
    assert out.getvalue() == text  # close is idempotent


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_progress_draws_on_a_terminal_that_reports_no_size() -> None:
    """A fresh pseudo-terminal reports 0 x 0 characters (as some CI runners' do): the bar is still drawn."""
    master, slave = os.openpty()
    code = "from util.progress import Progress\nwith Progress(3, desc='pty', unit='img') as bar:\n    bar.update(3)\n"
    try:
        proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, stderr=slave, timeout=300)
        screen = b""
        while select.select([master], [], [], 0.5)[0]:
            chunk = os.read(master, 65536)
            if not chunk:
                break
            screen += chunk
    finally:
        os.close(slave)
        os.close(master)
    assert proc.returncode == 0
    assert re.search(r"pty: 100%\|\S+\| 3/3 \[", screen.decode()), screen


def test_progress_log_lines_are_not_glued_to_the_bar(monkeypatch) -> None:
    """While a terminal bar is open, framework log lines get lines of their own and the bar is redrawn after."""
    screen = _TTY()
    monkeypatch.setattr("sys.stdout", screen)
    monkeypatch.setattr("sys.stderr", screen)
    root = setup_logging()  # the framework's handler on (the patched) stdout, as train.py sets it up
    handlers = list(root.handlers)
    try:
        log = get_logger("train")
        with Progress(6, desc="test", unit="img", interval=0) as bar:
            for i in range(6):
                bar.update(1)
                log.info("message %d", i)
        log.info("after the bar")
        assert root.handlers == handlers  # the redirect is undone
    finally:
        setup_logging()  # back to the real stdout
    lines = shown_lines(screen.getvalue())
    assert [line for line in lines if line.startswith("message")] == [f"message {i}" for i in range(6)]
    assert lines[-2] == "after the bar" and lines[-1] == ""
    assert any(line.startswith("test: 100%") for line in lines)


def test_progress_plain_lines_when_not_a_terminal() -> None:
    """Not a terminal: no carriage return, no line at the start, a line at most every interval, one at the end."""
    clock, out = _FakeClock(), io.StringIO()
    bar = Progress(800, desc="test", unit="img", file=out, clock=clock)
    assert out.getvalue() == ""
    for _ in range(800):
        clock.now += 0.125  # 100 s in total: lines at 30, 60, 90 s and the end
        bar.update()
    bar.close()
    bar.close()
    text = out.getvalue()
    assert "\r" not in text
    assert text.splitlines() == [
        "test: 240/800 (30%) [00:30<01:10,  8.00img/s]",
        "test: 480/800 (60%) [01:00<00:40,  8.00img/s]",
        "test: 720/800 (90%) [01:30<00:10,  8.00img/s]",
        "test: 800/800 (100%) [01:40<00:00,  8.00img/s]",
    ]


def test_progress_run_eta_counts_the_epochs_to_come() -> None:
    """Resumed at 20/40 with 2 more epochs of 40: rate from this run's images only, ETA of the epoch and the run."""
    clock, out = _FakeClock(), io.StringIO()
    bar = Progress(40, desc="epoch 2/3", unit="img", initial=20, later=80, file=out, clock=clock, interval=5)
    for _ in range(10):
        clock.now += 1.0
        bar.update()
    assert out.getvalue().splitlines()[-1] == "epoch 2/3: 30/40 (75%) [00:10<00:10,  1.00img/s, run ETA 01:30]"
    assert run_eta(10, 80, 1.0) == 90.0 and run_eta(10, 80, None) is None and run_eta(0, 0, 2.0) == 0.0


def test_progress_disabled_and_unknown_total() -> None:
    """disable writes nothing (ranks other than 0); an unknown total shows counts and rate, no ETA."""
    quiet = _TTY()
    with Progress(3, file=quiet, disable=True) as off:
        off.update(3)
    assert quiet.getvalue() == ""
    clock, out = _FakeClock(), io.StringIO()
    with Progress(None, desc="x", file=out, clock=clock) as bar:
        clock.now += 4
        bar.update(2)
    line = out.getvalue().strip()
    assert line.startswith("x: 2it [00:04, ") and "2.00s/it" in line and "<" not in line


def test_progress_delay_keeps_short_loops_quiet() -> None:
    """With ``delay``, a loop that ends sooner shows nothing; a longer one shows its progress."""
    clock, out = _FakeClock(), io.StringIO()
    with Progress(10, desc="short", file=out, clock=clock, delay=5) as bar:
        for _ in range(10):
            clock.now += 0.4
            bar.update()
    assert out.getvalue() == ""
    with Progress(10, desc="long", file=out, clock=clock, delay=5) as bar:
        for _ in range(10):
            clock.now += 0.625
            bar.update()
    assert out.getvalue().splitlines() == ["long: 10/10 (100%) [00:06<00:00,  1.60it/s]"]


def test_progress_without_file_logs_when_not_a_terminal(caplog, monkeypatch) -> None:
    """Without a file and no terminal, the plain lines go through the framework logger."""
    monkeypatch.setattr("sys.stderr", io.StringIO())
    from util import progress as progress_mod

    progress_mod.log.addHandler(caplog.handler)
    try:
        with caplog.at_level("INFO", logger=progress_mod.log.name):
            with Progress(2, desc="eval", unit="img") as bar:
                bar.update(2)
    finally:
        progress_mod.log.removeHandler(caplog.handler)
    assert "eval: 2/2 (100%)" in caplog.text
    assert sys.stderr.getvalue() == ""


def test_progress_iterate_closes_when_the_loop_fails(monkeypatch) -> None:
    """An error inside the loop (a stop, a NaN) still ends the bar and gives logging its stream back."""
    screen = _TTY()
    monkeypatch.setattr("sys.stdout", screen)
    monkeypatch.setattr("sys.stderr", screen)
    root = setup_logging()
    handlers = list(root.handlers)
    try:
        bar = Progress(10, desc="epoch 1/1", unit="img", interval=0)
        with pytest.raises(RuntimeError):
            for i in bar.iterate(range(10)):
                bar.update(1)
                if i == 3:
                    raise RuntimeError("stop")
        assert screen.getvalue().endswith("\n") and "4/10" in shown_lines(screen.getvalue())[-2]
        assert root.handlers == handlers  # the redirect is undone
    finally:
        setup_logging()


def test_progress_adds_only_tqdm_to_a_fresh_process() -> None:
    """torch already imports tqdm: the progress module adds tqdm's logging helpers and nothing else."""
    code = ("import sys, torch\nbefore = set(sys.modules)\nimport util.progress\n"
            "extra = sorted(m for m in set(sys.modules) - before if m.split('.')[0] not in ('tqdm', 'util'))\n"
            "assert 'tqdm' in before and not extra, extra\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_progress_leaves_unconfigured_logging_alone(monkeypatch) -> None:
    """A library user who never called setup_logging gets no handler added to the framework logger."""
    screen = _TTY()
    monkeypatch.setattr("sys.stderr", screen)
    root = logging.getLogger(ROOT_NAME)
    monkeypatch.setattr(root, "handlers", [])
    seen = []
    with Progress(2, desc="lib", interval=0) as bar:
        seen.append(list(root.handlers))
        bar.update(2)
    assert seen == [[]] and "lib: 100%" in screen.getvalue()


@pytest.mark.parametrize("text,amx", [
    ("processor\t: 0\nflags\t\t: fpu sse avx512f amx_bf16 amx_tile\n\nprocessor\t: 1\nflags\t\t: fpu\n", True),
    ("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16\n", False),
    ("processor\t: 0\nFeatures\t: fp asimd bf16\n", False),  # ARM
    ("", False),
])
def test_cpu_flags_from_cpuinfo(tmp_path: Path, text: str, amx: bool) -> None:
    """The first processor's flags are read (x86 ``flags``, ARM ``Features``); AMX is seen from them."""
    from util.amp import cpu_flags

    path = tmp_path / "cpuinfo"
    path.write_text(text)
    flags = cpu_flags(str(path))
    assert ("amx_bf16" in flags) is amx
    assert ("fpu" in flags) is text.startswith("processor\t: 0\nflags")
    assert cpu_flags(str(tmp_path / "missing")) == frozenset()
