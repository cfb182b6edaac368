#!/usr/bin/env bash
# Shared body of the dataset download scripts: download_archive.sh <url> <archive_path> <unpack_dir>.
# Downloads <url> to <archive_path> (through a .part file, removed on failure or interrupt), unpacks it into
# <unpack_dir> (.zip with unzip or Python's zipfile, .tar.gz with tar) and deletes the archive. Every failure
# ends with one clear line on stderr and exit status 1; a corrupt archive is deleted.
set -u
URL="$1"; ARCHIVE="$2"; UNPACK_DIR="$3"
PART_FILE="$ARCHIVE.part"

trap 'rm -f "$PART_FILE"' EXIT
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
mv "$PART_FILE" "$ARCHIVE"

unpack_failed() { echo "cannot unpack $ARCHIVE (corrupt download?)" >&2; rm -f "$ARCHIVE"; exit 1; }
case "$ARCHIVE" in
  *.zip)
    if command -v unzip >/dev/null 2>&1; then
      unzip -q -o "$ARCHIVE" -d "$UNPACK_DIR" || unpack_failed
    else
      python3 -m zipfile -e "$ARCHIVE" "$UNPACK_DIR" || unpack_failed
    fi
    ;;
  *.tar.gz) tar -zxf "$ARCHIVE" -C "$UNPACK_DIR" || unpack_failed ;;
  *) echo "download_archive.sh: unknown archive type: $ARCHIVE" >&2; exit 1 ;;
esac
rm -f "$ARCHIVE"
