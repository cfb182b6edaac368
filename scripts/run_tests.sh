#!/usr/bin/env bash
# Set up everything the test-suite needs on a fresh machine, then run it. This is what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
# Headless Chromium for the page-rendering tests; they skip with a reason when it cannot be installed.
bash scripts/install_browser.sh || echo "chromium could not be installed: the browser tests will be skipped"
.venv/bin/python -m pytest -q "$@"
