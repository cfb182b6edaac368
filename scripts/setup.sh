#!/usr/bin/env bash
# Create .venv (if needed) and install the project's requirements into it.
#   bash scripts/setup.sh          runtime requirements (requirements.txt)
#   bash scripts/setup.sh --dev    plus what the tests, benchmarks and optional features use (requirements-dev.txt)
# Then `source .venv/bin/activate` once per shell, and `python train.py ...` runs in it.
# On a terminal pip shows its own progress; in a log (CI) one line per package, and a line every
# SETUP_HEARTBEAT_S seconds (default 30) while pip works without printing (unpacking torch takes a minute).
set -euo pipefail
cd "$(dirname "$0")/.."
req=requirements.txt
[ "${1:-}" = "--dev" ] && req=requirements-dev.txt
PYTHON=${PYTHON:-python3}
start=$SECONDS
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PYTHON --version 2>&1)"
  "$PYTHON" -m venv .venv
fi
# constraints.txt keeps torch on the offline-installable build and gives visdom's source package the setuptools
# it builds with (<81). pip < 26.2 applies PIP_CONSTRAINT to build environments, newer pip PIP_BUILD_CONSTRAINT.
export PIP_CONSTRAINT="$PWD/scripts/constraints.txt" PIP_BUILD_CONSTRAINT="$PWD/scripts/constraints.txt"
echo "setup: installing $req into .venv (torch is large: one to several minutes)"
pip_install=(.venv/bin/python -m pip install --disable-pip-version-check -r "$req")
if [ -t 1 ]; then
  "${pip_install[@]}"
else
  # one-second sleeps: a killed heartbeat's last sleep keeps our stdout open for at most a second after pip ends
  (ticks=0; while sleep 1; do
     ticks=$((ticks + 1))
     if [ $((ticks % ${SETUP_HEARTBEAT_S:-30})) -eq 0 ]; then echo "setup: pip still working ($((SECONDS - start)) s)"; fi
   done) &
  heartbeat=$!
  trap 'kill "$heartbeat" 2>/dev/null || true' EXIT
  # pip's errors go to stderr unfiltered; of its stdout only the steps, as they happen (unbuffered)
  PYTHONUNBUFFERED=1 "${pip_install[@]}" --progress-bar off \
    | awk '/^(Collecting|Processing|Building wheel|Installing collected|Successfully installed)/ { print "  " $0; fflush() }'
fi
echo "setup: environment ready in $((SECONDS - start)) s: .venv ($req); activate it with: source .venv/bin/activate"
