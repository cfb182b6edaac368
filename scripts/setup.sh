#!/usr/bin/env bash
# Create .venv (if needed) and install the project's requirements into it.
#   bash scripts/setup.sh          runtime requirements (requirements.txt)
#   bash scripts/setup.sh --dev    plus what the tests, benchmarks and optional features use
set -euo pipefail
cd "$(dirname "$0")/.."
req=requirements.txt
[ "${1:-}" = "--dev" ] && req=requirements-dev.txt
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
# constraints.txt keeps torch on the offline-installable build and lets visdom's sdist build.
export PIP_CONSTRAINT="$PWD/scripts/constraints.txt"
.venv/bin/python -m pip install -q --disable-pip-version-check -r "$req"
echo "environment ready: .venv ($req)"
