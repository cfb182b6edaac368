#!/usr/bin/env bash
# Download a CycleGAN (unpaired) dataset into datasets/<name>/ (trainA, trainB, testA, testB).
#   bash ./datasets/download_cyclegan_dataset.sh horse2zebra
# Without any download, `python datasets/make_demo_dataset.py` makes a small built-in dataset instead.
# DATASET_BASE_URL overrides the server (mirrors, tests).
set -u

NAMES="apple2orange, summer2winter_yosemite, horse2zebra, monet2photo, cezanne2photo, ukiyoe2photo, vangogh2photo, maps, cityscapes, facades, iphone2dslr_flower, ae_photos, mini, mini_pix2pix, mini_colorization"
FILE="${1:-}"

case "$FILE" in
  apple2orange|summer2winter_yosemite|horse2zebra|monet2photo|cezanne2photo|ukiyoe2photo|vangogh2photo|maps|cityscapes|facades|iphone2dslr_flower|ae_photos|mini|mini_pix2pix|mini_colorization) ;;
  *)
    echo "Unknown dataset '${FILE}'. Available datasets are: ${NAMES}" >&2
    exit 1
    ;;
esac

if [[ "$FILE" == "cityscapes" ]]; then
  echo "Due to license issue, we cannot provide the Cityscapes dataset from our repository. Please download the Cityscapes dataset from https://cityscapes-dataset.com, and use the script ./datasets/prepare_cityscapes_dataset.py." >&2
  echo "You need to download gtFine_trainvaltest.zip and leftImg8bit_trainvaltest.zip. For further instruction, please read ./datasets/prepare_cityscapes_dataset.py" >&2
  exit 1
fi

echo "Specified [$FILE]"
DATASETS_DIR="$(cd "$(dirname "$0")" && pwd)"
BASE_URL="${DATASET_BASE_URL:-http://efrosgans.eecs.berkeley.edu/cyclegan/datasets}"
bash "$DATASETS_DIR/download_archive.sh" "$BASE_URL/$FILE.zip" "$DATASETS_DIR/$FILE.zip" "$DATASETS_DIR" || exit 1
echo "Dataset $FILE is in $DATASETS_DIR/$FILE"
