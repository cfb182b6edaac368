#!/usr/bin/env bash
# The main job on a fresh machine: set up, generate the embedded demo dataset, train a small CycleGAN on it,
# translate the test images and print where the results page is. Extra arguments go to train.py.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=.venv/bin/python
$PY datasets/make_demo_dataset.py --out datasets/demo --size 64
common=(--dataroot datasets/demo --name demo_cyclegan --model cycle_gan --netG resnet_6blocks --ngf 32 --ndf 32
        --load_size 64 --crop_size 64 --gpu_ids 0)
again=()
if ls checkpoints/demo_cyclegan/*_net_*.pth >/dev/null 2>&1; then
  # a rerun of the demo trains it again from scratch; train.py refuses to overwrite checkpoints unless asked
  echo "checkpoints/demo_cyclegan holds an earlier demo run: training it again from scratch (--overwrite)"
  again=(--overwrite)
fi
$PY train.py "${common[@]}" --n_epochs 3 --n_epochs_decay 2 --display_id 0 --print_freq 200 \
    --display_freq 200 --update_html_freq 200 ${again[@]+"${again[@]}"} "$@"
$PY test.py "${common[@]}" --num_test 20
echo "training page: checkpoints/demo_cyclegan/web/index.html"
echo "results page:  results/demo_cyclegan/test_latest/index.html"
