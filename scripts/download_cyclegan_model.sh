#!/usr/bin/env bash
# Download a pretrained CycleGAN generator to ./checkpoints/<name>_pretrained/latest_net_G.pth
#   bash ./scripts/download_cyclegan_model.sh horse2zebra
# then: python test.py --dataroot datasets/horse2zebra/testA --name horse2zebra_pretrained --model test --no_dropout
# MODEL_BASE_URL overrides the server (mirrors, tests).
set -u
NAMES="apple2orange, orange2apple, summer2winter_yosemite, winter2summer_yosemite, horse2zebra, zebra2horse, monet2photo, style_monet, style_cezanne, style_ukiyoe, style_vangogh, sat2map, map2sat, cityscapes_photo2label, cityscapes_label2photo, facades_photo2label, facades_label2photo, iphone2dslr_flower"
FILE="${1:-}"
case ",${NAMES// /}," in
  *",$FILE,"*) [[ -n "$FILE" ]] || { echo "Usage: $0 <name>. Available models are: $NAMES" >&2; exit 1; } ;;
  *) echo "Unknown model '$FILE'. Available models are: $NAMES" >&2; exit 1 ;;
esac
echo "Note: available models are $NAMES"
echo "Specified [$FILE]"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
exec bash "$ROOT/scripts/download_model.sh" "${MODEL_BASE_URL:-http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models}" \
  "$FILE" "${CHECKPOINTS_DIR:-./checkpoints}/${FILE}_pretrained"
