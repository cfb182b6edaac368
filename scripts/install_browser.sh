#!/usr/bin/env bash
# Install headless Chromium + chromedriver (Debian packages) for the browser tests.
# Idempotent: returns at once when both are present. Exits non-zero with a message when it cannot install them.
set -u

have_all() {
    command -v chromium >/dev/null 2>&1 && [ -x /usr/bin/chromedriver ]
}

if have_all; then
    echo "install_browser: chromium and chromedriver already installed"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_browser: apt-get not found; install chromium and chromedriver with your system's package manager" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "install_browser: need root (or password-less sudo) to apt-get install chromium chromium-driver" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -q --no-install-recommends chromium chromium-driver >/tmp/install_browser.log 2>&1; then
    # The package lists may be missing or stale: refresh once and retry.
    $SUDO apt-get update -q >>/tmp/install_browser.log 2>&1 || true
    if ! $SUDO apt-get install -y -q --no-install-recommends chromium chromium-driver >>/tmp/install_browser.log 2>&1; then
        echo "install_browser: apt-get install chromium chromium-driver failed (see /tmp/install_browser.log)" >&2
        exit 1
    fi
fi

if ! have_all; then
    echo "install_browser: packages installed but chromium or /usr/bin/chromedriver is still missing" >&2
    exit 1
fi
echo "install_browser: installed $(chromium --version 2>/dev/null | head -n 1)"
