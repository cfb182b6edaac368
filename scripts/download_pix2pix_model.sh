#!/usr/bin/env bash
# Download a pretrained pix2pix generator to ./checkpoints/<name>_pretrained/latest_net_G.pth
#   bash ./scripts/download_pix2pix_model.sh facades_label2photo
# then: python test.py --dataroot ./datasets/facades --name facades_label2photo_pretrained --model pix2pix --direction BtoA
# MODEL_BASE_URL overrides the server (mirrors, tests).
set -u
NAMES="edges2shoes, sat2map, map2sat, facades_label2photo, day2night"
FILE="${1:-}"
case ",${NAMES// /}," in
  *",$FILE,"*) [[ -n "$FILE" ]] || { echo "Usage: $0 <name>. Available models are: $NAMES" >&2; exit 1; } ;;
  *) echo "Unknown model '$FILE'. Available models are: $NAMES" >&2; exit 1 ;;
esac
echo "Note: available models are $NAMES"
echo "Specified [$FILE]"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
exec bash "$ROOT/scripts/download_model.sh" "${MODEL_BASE_URL:-http://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch}" \
  "$FILE" "${CHECKPOINTS_DIR:-./checkpoints}/${FILE}_pretrained"
