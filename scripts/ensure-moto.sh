#!/usr/bin/env bash
# Installs moto_server (the S3-protocol fake the S3 upload-store tests run against) into a venv
# at target/tools/moto, pinned, and only when it is missing or another version. Quiet on success.
set -euo pipefail

MOTO_VERSION=5.2.5
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/target/tools/moto"
stamp="$venv/.moto-version"

if [[ -x "$venv/bin/moto_server" && "$(cat "$stamp" 2>/dev/null)" == "$MOTO_VERSION" ]]; then
  exit 0
fi

python="${PYTHON:-python3}"
if ! command -v "$python" >/dev/null 2>&1; then
  echo "ensure-moto: $python not found; install Python 3 (with venv) first" >&2
  exit 1
fi
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# A fresh venv: a half-finished earlier install must not linger.
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
if ! { "$python" -m venv "$venv" &&
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "ensure-moto: installing moto[server]==$MOTO_VERSION into $venv failed" >&2
  exit 1
fi
echo "$MOTO_VERSION" >"$stamp"
