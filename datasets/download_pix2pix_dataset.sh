#!/usr/bin/env bash
# Download a pix2pix (aligned A|B) dataset into datasets/<name>/ (train, val, test).
#   bash ./datasets/download_pix2pix_dataset.sh facades
# DATASET_BASE_URL overrides the server (mirrors, tests).
set -u

NAMES="cityscapes, night2day, edges2handbags, edges2shoes, facades, maps"
FILE="${1:-}"

case "$FILE" in
  cityscapes|night2day|edges2handbags|edges2shoes|facades|maps) ;;
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
BASE_URL="${DATASET_BASE_URL:-http://efrosgans.eecs.berkeley.edu/pix2pix/datasets}"
bash "$DATASETS_DIR/download_archive.sh" "$BASE_URL/$FILE.tar.gz" "$DATASETS_DIR/$FILE.tar.gz" "$DATASETS_DIR" || exit 1
echo "Dataset $FILE is in $DATASETS_DIR/$FILE"
