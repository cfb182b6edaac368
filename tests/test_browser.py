"""Open the training page and a results page in headless Chromium: every image loads, headers are right."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import browser
from test_visualizer import LOSSES, make_opt

from util.html import HTML
from util.visualizer import Visualizer, save_images

DATASET = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets" / "apple2orange" / "testA"


@pytest.fixture(scope="module", autouse=True)
def _browser_available():
    """Install or skip (with the reason) before any test of this module."""
    browser.require_browser()


def photo_tensors(count: int, size: int = 64):
    """``count`` [-1, 1] image batches: real photos when shared/datasets is there, else synthetic gradients."""
    files = sorted(DATASET.glob("*.jpg"))[:count] if DATASET.is_dir() else []
    tensors = []
    for i in range(count):
        if i < len(files):
            with Image.open(files[i]) as im:
                arr = np.asarray(im.convert("RGB").resize((size, size), Image.BICUBIC), dtype=np.float32)
            name = files[i].name
        else:
            yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
            arr = np.stack([xx, yy, np.full_like(xx, (i % 5) / 4)], -1).astype(np.float32) * 255
            name = f"synthetic_{i:03d}.png"
        tensors.append((name, torch.from_numpy(arr).permute(2, 0, 1)[None] / 127.5 - 1))
    return tensors


def assert_all_images_loaded(driver, expected: int) -> None:
    """Every <img> of the current page is complete with naturalWidth > 0."""
    states = browser.wait_for_images(driver)
    broken = [src for src, done, width in states if not (done and width > 0)]
    assert not broken, f"images that did not load: {broken[:10]}"
    assert len(states) == expected


def test_training_page_renders(tmp_path) -> None:
    """web/index.html: title header, loss plot on top, 3 epochs x 4 images, all loaded; screenshot saved."""
    opt = make_opt(tmp_path, display_winsize=128)
    v = Visualizer(opt)
    photos = photo_tensors(3)
    for epoch, (_, real) in enumerate(photos, start=1):
        v.reset()
        visuals = {"real_A": real, "fake_B": -real.flip(-1), "rec_A": real.mean(1, keepdim=True), "idt_B": real * 0.5}
        v.display_current_results(visuals, epoch, epoch * 100, False)
        for step in range(4):
            v.plot_current_losses(epoch, step / 4, {k: val / (epoch + step / 4) for k, val in LOSSES.items()},
                                  epoch * 100 + step)
    v.close()
    page = tmp_path / "checkpoints" / "exp" / "web" / "index.html"
    assert 'loading="lazy"' in page.read_text()
    with browser.headless_chromium() as driver:
        browser.open_file(driver, page)
        assert_all_images_loaded(driver, expected=1 + 3 * 4)
        assert driver.title == "Experiment name = exp"
        assert driver.find_element("tag name", "h1").text == "Experiment name = exp"
        headers = [h.text for h in driver.find_elements("tag name", "h3")]
        assert headers == ["epoch [3]", "epoch [2]", "epoch [1]"]
        plot = driver.find_element("css selector", 'img[src="loss_plot.png"]')
        assert plot.get_property("naturalWidth") == 1200  # 4 panels of 300 px per row
        browser.full_page_screenshot(driver, tmp_path / "training_page.png")
    with Image.open(tmp_path / "training_page.png") as shot:
        assert shot.format == "PNG" and shot.size[1] > 600
        assert len(shot.convert("RGB").getcolors(1 << 24) or []) > 100  # real content, not a blank page


def test_results_page_renders_with_pagination(tmp_path) -> None:
    """results/<name>/test_latest/index.html from save_images: images load on every page, next link works."""
    web_dir = tmp_path / "results" / "exp" / "test_latest"
    webpage = HTML(web_dir, "Experiment = exp, Phase = test, Epoch = latest", page_size=5)
    photos = photo_tensors(12)
    for name, real in photos:
        save_images(webpage, {"real": real, "fake": -real}, [f"/data/testA/{name}"], width=128)
    webpage.save()
    assert webpage.num_pages() == 3
    with browser.headless_chromium() as driver:
        browser.open_file(driver, web_dir / "index.html")
        assert_all_images_loaded(driver, expected=5 * 2)
        assert driver.find_element("tag name", "h1").text == "Experiment = exp, Phase = test, Epoch = latest"
        assert "page 1 of 3" in driver.find_element("css selector", "div.nav").text
        first_headers = [h.text for h in driver.find_elements("tag name", "h3")]
        assert first_headers == [Path(name).stem for name, _ in photos[:5]]
        browser.full_page_screenshot(driver, tmp_path / "results_page.png")
        driver.find_element("css selector", "div.nav a.next").click()
        assert driver.current_url.endswith("/index_2.html")
        assert_all_images_loaded(driver, expected=5 * 2)
        browser.open_file(driver, web_dir / "index_3.html")
        assert_all_images_loaded(driver, expected=2 * 2)
        assert [h.text for h in driver.find_elements("tag name", "h3")] == [Path(n).stem for n, _ in photos[10:]]
    with Image.open(tmp_path / "results_page.png") as shot:
        assert shot.format == "PNG" and shot.size[1] > 600


def test_broken_image_is_detected(tmp_path) -> None:
    """The image check really fails for a page whose image file is missing (guards the tests above)."""
    webpage = HTML(tmp_path, "broken")
    save_images(webpage, {"real": photo_tensors(1)[0][1]}, ["/x/ok.png"], width=64)
    webpage.add_images(["missing.png"], ["missing"], ["missing.png"], width=64)
    webpage.save()
    with browser.headless_chromium() as driver:
        browser.open_file(driver, tmp_path / "index.html")
        states = browser.wait_for_images(driver, timeout=3)
    assert [(src, width > 0) for src, _, width in states] == [("images/ok_real.png", True), ("images/missing.png", False)]


@pytest.mark.slow
def test_pages_of_a_short_run_render(demo_root: Path, tmp_path: Path) -> None:
    """train.py then test.py on the demo data; both pages open in Chromium with every image loaded."""
    from conftest import run_test, run_train, tiny_flags

    ck = tmp_path / "checkpoints"
    run_train(["--dataroot", str(demo_root / "demo"), "--model", "cycle_gan", "--netG", "resnet_6blocks",
               *tiny_flags("short", ck), "--n_epochs", "2", "--n_epochs_decay", "0", "--print_freq", "2",
               "--display_freq", "4", "--update_html_freq", "4", "--save_epoch_freq", "1"])
    web = Path(run_test(["--dataroot", str(demo_root / "demo"), "--model", "cycle_gan", "--name", "short",
                         "--checkpoints_dir", str(ck), "--results_dir", str(tmp_path / "results"),
                         "--num_test", "4", "--gpu_ids", "-1"]))
    with browser.headless_chromium() as driver:
        browser.open_file(driver, ck / "short" / "web" / "index.html")
        text = driver.find_element("tag name", "body").text
        assert "Experiment name = short" in text and "epoch [2]" in text and "epoch [1]" in text
        # loss plot + 2 epochs x 8 training visuals
        assert_all_images_loaded(driver, 1 + 2 * 8)
        browser.full_page_screenshot(driver, tmp_path / "training_page.png")
        browser.open_file(driver, web / "index.html")
        assert "Experiment = short, Phase = test, Epoch = latest" in driver.find_element("tag name", "body").text
        assert_all_images_loaded(driver, 4 * 6)
        browser.full_page_screenshot(driver, tmp_path / "results_page.png")
    print("screenshots:", tmp_path / "training_page.png", tmp_path / "results_page.png")


NARROW = 900  # px: 8 CycleGAN visuals at 256 px need ~2,100 px on one line


def assert_fits_the_window(driver) -> None:
    """No horizontal overflow: the page is no wider than the window."""
    width, inner = driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    assert width <= inner, f"the page is {width} px wide in a {inner} px window"


def test_training_page_rows_wrap_to_a_narrow_window(tmp_path) -> None:
    """8 visuals at 256 px and the loss plot fit a 900 px window: rows wrap, nothing runs off, all images load."""
    v = Visualizer(make_opt(tmp_path, display_winsize=256))
    (_, real), = photo_tensors(1, size=64)
    visuals = {name: real * (0.5 + i / 16) for i, name in enumerate(
        ["real_A", "fake_B", "rec_A", "idt_B", "real_B", "fake_A", "rec_B", "idt_A"])}
    for epoch in (1, 2):
        v.reset()
        v.display_current_results(visuals, epoch, epoch * 100, False)
        v.plot_current_losses(epoch, 0.5, {k: val * epoch for k, val in LOSSES.items()}, epoch * 100)
    v.close()
    with browser.headless_chromium(width=NARROW) as driver:
        browser.open_file(driver, tmp_path / "checkpoints" / "exp" / "web" / "index.html")
        assert_all_images_loaded(driver, expected=1 + 2 * 8)
        assert_fits_the_window(driver)
        rows = driver.execute_script(  # distinct top edges of the first row's images: > 1 means it wrapped
            "return new Set(Array.from(document.querySelectorAll('table')[0].querySelectorAll('img'))"
            ".map(im => Math.round(im.getBoundingClientRect().top))).size")
        assert rows >= 2
        browser.full_page_screenshot(driver, tmp_path / "narrow_training_page.png")


def test_results_page_rows_wrap_to_a_narrow_window(tmp_path) -> None:
    """test.py's page with 6 visuals at 256 px per input fits a 900 px window; every image loads."""
    web_dir = tmp_path / "results" / "exp" / "test_latest"
    webpage = HTML(web_dir, "Experiment = exp, Phase = test, Epoch = latest")
    for name, real in photo_tensors(3):
        visuals = {label: real * (1 - i / 8) for i, label in enumerate(
            ["real_A", "fake_B", "rec_A", "real_B", "fake_A", "rec_B"])}
        save_images(webpage, visuals, [f"/data/testA/{name}"], width=256)
    webpage.save()
    with browser.headless_chromium(width=NARROW) as driver:
        browser.open_file(driver, web_dir / "index.html")
        assert_all_images_loaded(driver, expected=3 * 6)
        assert_fits_the_window(driver)


def test_overflow_check_fails_on_an_unwrapped_row(tmp_path) -> None:
    """The width check really catches a row that runs off the window (guards the two tests above)."""
    (tmp_path / "wide.html").write_text('<table><tr>' + '<td><div style="width:256px">x</div></td>' * 8
                                        + '</tr></table>')
    with browser.headless_chromium(width=NARROW) as driver:
        browser.open_file(driver, tmp_path / "wide.html")
        with pytest.raises(AssertionError, match="px wide in a"):
            assert_fits_the_window(driver)


def visual_tops(driver, table: int = 0):
    """Caption -> top edge (px) of each image of the page's ``table``-th image table."""
    return driver.execute_script(
        "return Object.fromEntries(Array.from(document.querySelectorAll('table')[arguments[0]]"
        ".querySelectorAll('td')).map(td => [td.textContent.trim(),"
        " Math.round(td.querySelector('img').getBoundingClientRect().top)]))", table)


@pytest.mark.parametrize("width", [1280, 1920])
def test_results_page_shows_a_row_per_direction(tmp_path, width: int) -> None:
    """cycle_gan's 6 visuals: real_A fake_B rec_A on one line, real_B fake_A rec_B on the next, in a window
    wide enough for 4 (where one wrapping row put real_B after rec_A) and in one wide enough for all 6;
    pix2pix's real_A fake_B real_B stay on one line."""
    web_dir = tmp_path / "results" / "exp" / "test_latest"
    webpage = HTML(web_dir, "Experiment = exp, Phase = test, Epoch = latest")
    (name, real), = photo_tensors(1)
    labels = ["real_A", "fake_B", "rec_A", "real_B", "fake_A", "rec_B"]
    save_images(webpage, {label: real * (1 - i / 8) for i, label in enumerate(labels)}, [f"/d/testA/{name}"],
                width=256)
    save_images(webpage, {label: real for label in ("real_A", "fake_B", "real_B")}, ["/d/test/p2p.png"], width=256)
    webpage.save()
    shot = tmp_path / f"results_rows_{width}.png"
    with browser.headless_chromium(width=width) as driver:
        browser.open_file(driver, web_dir / "index.html")
        assert_all_images_loaded(driver, expected=6 + 3)
        tops = visual_tops(driver, 0)
        assert tops["real_A"] == tops["fake_B"] == tops["rec_A"] < tops["real_B"] == tops["fake_A"] == tops["rec_B"]
        tops = visual_tops(driver, 1)
        assert tops["real_A"] == tops["fake_B"] == tops["real_B"]
        browser.full_page_screenshot(driver, shot)
    print("screenshot:", shot)


def test_training_page_shows_a_row_per_direction(tmp_path) -> None:
    """web/index.html: each epoch's 8 cycle_gan visuals as the A->B row over the B->A row."""
    v = Visualizer(make_opt(tmp_path, display_winsize=128))
    (_, real), = photo_tensors(1)
    labels = ["real_A", "fake_B", "rec_A", "idt_B", "real_B", "fake_A", "rec_B", "idt_A"]
    v.display_current_results({label: real * (1 - i / 16) for i, label in enumerate(labels)}, 1, 1, True)
    v.close()
    with browser.headless_chromium(width=1920) as driver:  # room for all 8 in one line
        browser.open_file(driver, tmp_path / "checkpoints" / "exp" / "web" / "index.html")
        assert_all_images_loaded(driver, expected=8)
        tops = visual_tops(driver, 0)
        assert len({tops[label] for label in labels[:4]}) == 1 and len({tops[label] for label in labels[4:]}) == 1
        assert tops["real_A"] < tops["real_B"]
