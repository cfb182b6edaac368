#!/usr/bin/env bash
# The official example (train, facades_pix2pix); extra arguments are passed on to train.py, e.g. --gpu_ids -1.
# Runs in the active virtual environment, else in .venv (scripts/python_env.sh).
source "$(dirname "${BASH_SOURCE[0]}")/python_env.sh"
set -ex
"$PY" train.py --dataroot ./datasets/facades --name facades_pix2pix --model pix2pix --netG unet_256 --direction BtoA --lambda_L1 100 --dataset_mode aligned --norm batch --pool_size 0 "$@"
