#!/usr/bin/env bash
# The official example (test, maps_cyclegan); extra arguments are passed on to test.py, e.g. --gpu_ids -1.
# Runs in the active virtual environment, else in .venv (scripts/python_env.sh).
source "$(dirname "${BASH_SOURCE[0]}")/python_env.sh"
set -ex
"$PY" test.py --dataroot ./datasets/maps --name maps_cyclegan --model cycle_gan --phase test --no_dropout "$@"
