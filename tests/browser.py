"""Drive headless Chromium (Debian `chromium` + `chromium-driver`) through Selenium for page tests.

Nothing is downloaded: the driver path is given explicitly, so Selenium Manager stays idle. Tests call
``require_browser()`` first; it installs the packages via scripts/install_browser.sh when missing, and otherwise
skips the test with the reason.
"""
from __future__ import annotations

import base64
import os
import shutil
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import pytest

CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_NAMES = ("chromium", "chromium-browser")
INSTALL_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "install_browser.sh"
CHROME_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-dev-shm-usage", "--hide-scrollbars",
)

# JavaScript: make lazy images load now, then report (src, complete, naturalWidth) for every <img>.
_IMAGE_STATE_JS = """
const imgs = Array.from(document.images);
for (const im of imgs) { if (im.loading === 'lazy') { im.loading = 'eager'; } }
return [document.readyState, imgs.map(im => [im.getAttribute('src'), im.complete, im.naturalWidth])];
"""


def chromium_binary() -> Optional[str]:
    """Return the Chromium executable, or None."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def unavailable_reason() -> Optional[str]:
    """Why a headless browser cannot run here (None when it can)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium; see requirements-dev.txt)"
    if chromium_binary() is None:
        return "chromium is not installed (apt-get install chromium, or run scripts/install_browser.sh)"
    if not os.access(CHROMEDRIVER, os.X_OK):
        return f"{CHROMEDRIVER} is missing (apt-get install chromium-driver, or run scripts/install_browser.sh)"
    return None


def require_browser() -> None:
    """Install Chromium + driver if missing (scripts/install_browser.sh); skip the calling test if impossible."""
    reason = unavailable_reason()
    if reason is None:
        return
    if reason.startswith("selenium"):
        pytest.skip(reason)
    if os.environ.get("IMG2IMG_NO_BROWSER_INSTALL"):
        pytest.skip(reason + "; IMG2IMG_NO_BROWSER_INSTALL is set")
    try:
        result = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as error:
        pytest.skip(f"{reason}; installing it failed: {error}")
    if result.returncode != 0 or unavailable_reason() is not None:
        pytest.skip(f"{reason}; scripts/install_browser.sh could not install it: {result.stderr.strip()[-300:]}")


@contextmanager
def headless_chromium(width: int = 1280, height: int = 900) -> Iterator["object"]:
    """Yield a Selenium Chrome driver for headless Chromium; always quits it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium_binary() or ""
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        driver.set_page_load_timeout(30)
        yield driver
    finally:
        driver.quit()


def open_file(driver: "object", path: os.PathLike) -> None:
    """Navigate to a local file."""
    driver.get(Path(path).resolve().as_uri())


def image_states(driver: "object") -> Tuple[str, List[Tuple[str, bool, int]]]:
    """Return (document.readyState, [(src, complete, naturalWidth) per <img>]) after forcing eager loading."""
    ready, states = driver.execute_script(_IMAGE_STATE_JS)
    return ready, [(src, bool(done), int(width or 0)) for src, done, width in states]


def wait_for_images(driver: "object", timeout: float = 20.0) -> List[Tuple[str, bool, int]]:
    """Poll until the page is loaded and every <img> is complete with naturalWidth > 0; return the states.

    Polling also copes with pages that reload themselves (meta refresh): each poll looks at the current document.
    Returns the last states seen (callers assert on them).
    """
    deadline = time.monotonic() + timeout
    states: List[Tuple[str, bool, int]] = []
    while True:
        try:
            ready, states = image_states(driver)
        except Exception:  # noqa: BLE001 - a reload can swap the document under the script
            ready, states = "loading", []
        if ready == "complete" and states and all(done and width > 0 for _, done, width in states):
            return states
        if time.monotonic() > deadline:
            return states
        time.sleep(0.2)


def full_page_screenshot(driver: "object", path: os.PathLike, max_height: int = 6000) -> None:
    """Save a PNG of the whole page (not just the viewport), height capped at ``max_height`` px."""
    size = driver.execute_script(
        "const e = document.documentElement, b = document.body;"
        "return [Math.max(e.scrollWidth, b.scrollWidth), Math.max(e.scrollHeight, b.scrollHeight)];")
    width, height = int(size[0]), min(int(size[1]), max_height)
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
    })
    Path(path).write_bytes(base64.b64decode(shot["data"]))
