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
URL="$BASE_URL/$FILE.tar.gz"
TAR_FILE="$DATASETS_DIR/$FILE.tar.gz"
PART_FILE="$TAR_FILE.part"

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
mv "$PART_FILE" "$TAR_FILE"

tar -zxf "$TAR_FILE" -C "$DATASETS_DIR" || { echo "cannot unpack $TAR_FILE (corrupt download?)" >&2; rm -f "$TAR_FILE"; exit 1; }
rm -f "$TAR_FILE"
echo "Dataset $FILE is in $DATASETS_DIR/$FILE"
