#!/usr/bin/env bash
# Download the CUT repository's pretrained models (one archive holds all six) and unpack the one named, or all:
#   bash ./scripts/download_cut_model.sh horse2zebra_cut_pretrained     # or: all
# Each lands in ./checkpoints/<name>/latest_net_G.pth (CHECKPOINTS_DIR overrides ./checkpoints); then, e.g.
#   python test.py --dataroot ./datasets/horse2zebra --name horse2zebra_cut_pretrained --CUT_mode CUT --phase test
# An existing model is never replaced; a failed download leaves nothing behind. MODEL_BASE_URL overrides the server.
set -u
NAMES="horse2zebra_cut_pretrained, horse2zebra_fastcut_pretrained, cat2dog_cut_pretrained, cat2dog_fastcut_pretrained, cityscapes_cut_pretrained, cityscapes_fastcut_pretrained"
FILE="${1:-}"
case ",${NAMES// /},all," in
  *",$FILE,"*) [[ -n "$FILE" ]] || { echo "Usage: $0 <name>|all. Available models are: $NAMES" >&2; exit 1; } ;;
  *) echo "Unknown model '$FILE'. Available models are: $NAMES (or all)" >&2; exit 1 ;;
esac
URL="${MODEL_BASE_URL:-http://efrosgans.eecs.berkeley.edu/CUT}/pretrained_models.tar"
CHECKPOINTS="${CHECKPOINTS_DIR:-./checkpoints}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM
STATUS=0
if command -v wget >/dev/null 2>&1; then
  wget --tries=2 --timeout=30 -O "$WORK/models.tar" "$URL" || STATUS=$?
elif command -v curl >/dev/null 2>&1; then
  curl -fL --retry 1 --connect-timeout 30 -o "$WORK/models.tar" "$URL" || STATUS=$?
else
  echo "neither wget nor curl is installed: install one of them to download $URL" >&2
  exit 1
fi
if [[ $STATUS -ne 0 || ! -s "$WORK/models.tar" ]]; then
  echo "cannot download $URL: check your network (the server may also be down or the archive moved)" >&2
  exit 1
fi
# Unpack with Python's tarfile: only checkpoints/<name>/<file> entries that are regular files (no links, no paths
# leaving the folder), written through a .part file; an existing file is kept.
PYTHON="$(command -v python3 || command -v python)"
"$PYTHON" - "$WORK/models.tar" "$CHECKPOINTS" "$FILE" "$NAMES" <<'PY' || exit 1
import os, re, sys, tarfile
archive, checkpoints, wanted, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].replace(" ", "").split(",")
wanted = names if wanted == "all" else [wanted]
done = set()
try:
    tar = tarfile.open(archive)
except tarfile.TarError as exc:
    sys.exit(f"cannot unpack {archive} (corrupt download?): {exc}")
with tar:
    for member in tar:
        match = re.fullmatch(r"(?:\./)?checkpoints/([A-Za-z0-9_]+)/([A-Za-z0-9_.]+\.pth)", member.name)
        if not match or match.group(1) not in wanted or not member.isfile():
            continue
        name, leaf = match.groups()
        target = os.path.join(checkpoints, name, leaf)
        if os.path.exists(target):
            print(f"kept the existing {target} (delete it to download it again)")
            done.add(name)
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with tar.extractfile(member) as src, open(target + ".part", "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
        os.replace(target + ".part", target)
        print(f"saved {target}")
        done.add(name)
missing = [n for n in wanted if n not in done]
if missing:
    sys.exit(f"{archive} has no checkpoints/<name>/*.pth for {', '.join(missing)}: the archive may have changed")
PY
