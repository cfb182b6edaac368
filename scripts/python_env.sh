# Sourced by the example scripts (train_*.sh, test_*.sh): go to the repository root and set PY to the python to
# run: the active virtual environment's, else the project's .venv (bash scripts/setup.sh), else python on PATH.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then
  PY="$VIRTUAL_ENV/bin/python"
elif [ -x "$ROOT/.venv/bin/python" ]; then
  PY="$ROOT/.venv/bin/python"
else
  PY="$(command -v python || command -v python3 || echo python)"
  echo "using $PY (no .venv in $ROOT: bash scripts/setup.sh creates it)" >&2
fi
