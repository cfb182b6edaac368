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
URL="$BASE_URL/$FILE.zip"
ZIP_FILE="$DATASETS_DIR/$FILE.zip"
PART_FILE="$ZIP_FILE.part"

cleanup() { rm -f "$PART_FILE"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

STATUS=0
if command -v wget >/dev/null 2>&1; then
  wget --tries=2 --timeout=30 -O "$PART_FILE" "$URL" || STATUS=$?
  HTTP_ERROR=8   # wget: the server answered with an error
elif command -v curl >/dev/null 2>&1; then
  curl -fL --retry 1 --connect-timeout 30 -o "$PART_FILE" "$URL" || STATUS=$?
  HTTP_ERROR=22  # curl -f: HTTP error status
else
  echo "neither wget nor curl is installed: install one of them to download $URL" >&2
  exit 1
fi
if [[ $STATUS -eq $HTTP_ERROR ]]; then
  echo "the server answered $URL with an error: the dataset may have moved or the server may be down (official issue #785)" >&2
  exit 1
elif [[ $STATUS -ne 0 || ! -s "$PART_FILE" ]]; then
  echo "cannot reach $URL: check your network (the server may also be down, see official issue #785)" >&2
  exit 1
fi
mv "$PART_FILE" "$ZIP_FILE"

if command -v unzip >/dev/null 2>&1; then
  unzip -q -o "$ZIP_FILE" -d "$DATASETS_DIR" || { echo "cannot unpack $ZIP_FILE (corrupt download?)" >&2; rm -f "$ZIP_FILE"; exit 1; }
else
  python3 -m zipfile -e "$ZIP_FILE" "$DATASETS_DIR" || { echo "cannot unpack $ZIP_FILE (corrupt download?)" >&2; rm -f "$ZIP_FILE"; exit 1; }
fi
rm -f "$ZIP_FILE"
echo "Dataset $FILE is in $DATASETS_DIR/$FILE"
