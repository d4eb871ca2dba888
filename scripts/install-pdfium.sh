#!/usr/bin/env bash
# Installs libpdfium.so from the pinned pypdfium2 wheel (PyPI) into vendor/pdfium/.
# Idempotent: does nothing when the pinned version is already there.
set -euo pipefail

PYPDFIUM2_VERSION="5.15.2"
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/vendor/pdfium"
stamp="$dest/VERSION"

if [[ -f "$dest/libpdfium.so" && -f "$stamp" && "$(cat "$stamp")" == "pypdfium2==$PYPDFIUM2_VERSION" ]]; then
  exit 0
fi

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64|Linux-aarch64) ;;
  *) echo "install-pdfium: unsupported platform $(uname -s)-$(uname -m); set PDFIUM_LIB_PATH to a libpdfium you built" >&2; exit 1 ;;
esac

py="$(command -v python3 || command -v python || true)"
if [[ -z "$py" ]]; then
  echo "install-pdfium: python3 with pip is needed to fetch the pypdfium2 wheel (apt-get install python3-pip)" >&2
  exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "install-pdfium: fetching pypdfium2==$PYPDFIUM2_VERSION wheel" >&2
"$py" -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp" "pypdfium2==$PYPDFIUM2_VERSION"
wheel="$(ls "$tmp"/pypdfium2-*.whl)"
"$py" - "$wheel" "$tmp/lib" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    z.extract("pypdfium2_raw/libpdfium.so", sys.argv[2])
    z.extract("pypdfium2_raw/version.json", sys.argv[2])
PY
mkdir -p "$dest"
install -m 0644 "$tmp/lib/pypdfium2_raw/libpdfium.so" "$dest/libpdfium.so.tmp"
mv "$dest/libpdfium.so.tmp" "$dest/libpdfium.so"
cp "$tmp/lib/pypdfium2_raw/version.json" "$dest/pdfium-version.json"
echo "pypdfium2==$PYPDFIUM2_VERSION" > "$stamp"
echo "install-pdfium: installed $dest/libpdfium.so (pdfium build $(grep -o '"build": *[0-9]*' "$dest/pdfium-version.json" | grep -o '[0-9]*$'))" >&2
