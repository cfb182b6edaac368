#!/usr/bin/env bash
# The official example (test, color_pix2pix); extra arguments are passed on to test.py, e.g. --gpu_ids -1.
# Runs in the active virtual environment, else in .venv (scripts/python_env.sh).
source "$(dirname "${BASH_SOURCE[0]}")/python_env.sh"
set -ex
"$PY" test.py --dataroot ./datasets/colorization --name color_pix2pix --model colorization "$@"
