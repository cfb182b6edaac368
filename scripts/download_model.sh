#!/usr/bin/env bash
# Shared downloader for the pretrained-model scripts: download_model.sh <base_url> <name> <target_dir>.
# Writes <target_dir>/latest_net_G.pth; fails with a clear message when offline and then leaves nothing behind:
# no partial file, and no folder that it created (an existing model or folder is never touched).
set -u
BASE_URL="$1"; NAME="$2"; TARGET_DIR="$3"
URL="$BASE_URL/$NAME.pth"
CREATED=()  # the folders this download creates, deepest first
dir="$TARGET_DIR"
while [[ ! -d "$dir" ]]; do CREATED+=("$dir"); dir="$(dirname "$dir")"; done
mkdir -p "$TARGET_DIR" || exit 1
MODEL_FILE="$TARGET_DIR/latest_net_G.pth"
PART_FILE="$MODEL_FILE.part"
cleanup() {
  rm -f "$PART_FILE"
  [[ -f "$MODEL_FILE" ]] && return
  for dir in ${CREATED[@]+"${CREATED[@]}"}; do rmdir "$dir" 2>/dev/null || break; done  # only while empty
}
trap cleanup EXIT
trap 'exit 130' INT TERM
STATUS=0
if command -v wget >/dev/null 2>&1; then
  wget --tries=2 --timeout=30 -O "$PART_FILE" "$URL" || STATUS=$?
elif command -v curl >/dev/null 2>&1; then
  curl -fL --retry 1 --connect-timeout 30 -o "$PART_FILE" "$URL" || STATUS=$?
else
  echo "neither wget nor curl is installed: install one of them to download $URL" >&2
  exit 1
fi
if [[ $STATUS -ne 0 || ! -s "$PART_FILE" ]]; then
  echo "cannot download $URL: check your network (the server may also be down or the model moved, official issues #785, #1696)" >&2
  exit 1
fi
mv "$PART_FILE" "$MODEL_FILE"
echo "saved $MODEL_FILE"
