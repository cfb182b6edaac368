#!/usr/bin/env bash
# Download a dataset of the CUT repository into datasets/<name>/ (trainA, trainB, testA, testB): the CycleGAN
# datasets and grumpifycat (Russian Blue -> Grumpy Cat, the single-image-pair figure of the CUT paper).
#   bash ./datasets/download_cut_dataset.sh grumpifycat
# then: python train.py --dataroot ./datasets/grumpifycat --name grumpycat_CUT --CUT_mode CUT
# DATASET_BASE_URL overrides the server (mirrors, tests).
set -u

NAMES="apple2orange, summer2winter_yosemite, horse2zebra, monet2photo, cezanne2photo, ukiyoe2photo, vangogh2photo, maps, cityscapes, facades, iphone2dslr_flower, ae_photos, mini, mini_pix2pix, mini_colorization, grumpifycat"
FILE="${1:-}"

case ",${NAMES// /}," in
  *",$FILE,"*) [[ -n "$FILE" ]] || { echo "Usage: $0 <name>. Available datasets are: ${NAMES}" >&2; exit 1; } ;;
  *) echo "Unknown dataset '${FILE}'. Available datasets are: ${NAMES}" >&2; exit 1 ;;
esac

if [[ "$FILE" == "cityscapes" ]]; then
  echo "Due to license issue, we cannot provide the Cityscapes dataset from our repository. Please download the Cityscapes dataset from https://cityscapes-dataset.com, and use the script ./datasets/prepare_cityscapes_dataset.py." >&2
  echo "You need to download gtFine_trainvaltest.zip and leftImg8bit_trainvaltest.zip. For further instruction, please read ./datasets/prepare_cityscapes_dataset.py" >&2
  exit 1
fi

echo "Specified [$FILE]"
DATASETS_DIR="$(cd "$(dirname "$0")" && pwd)"
BASE_URL="${DATASET_BASE_URL:-https://efrosgans.eecs.berkeley.edu/cyclegan/datasets}"
bash "$DATASETS_DIR/download_archive.sh" "$BASE_URL/$FILE.zip" "$DATASETS_DIR/$FILE.zip" "$DATASETS_DIR" || exit 1
echo "Dataset $FILE is in $DATASETS_DIR/$FILE"
