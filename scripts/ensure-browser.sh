#!/usr/bin/env bash
# Installs what the browser tests need when it is missing: Debian's chromium (apt) and
# playwright-core from tests/browser/package-lock.json (npm ci). Idempotent and quiet when
# everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

chromium_bin="${CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$chromium_bin" ]]; then
  echo "ensure-browser: installing Debian's chromium"
  sudo_cmd=()
  [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
"$chromium_bin" --version >/dev/null

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "ensure-browser: node and npm are needed (Node.js 20 or newer)" >&2
  exit 1
fi
marker=tests/browser/node_modules/playwright-core/package.json
want=$(sed -n 's/.*"playwright-core": "\(.*\)".*/\1/p' tests/browser/package.json)
have=$(sed -n 's/^  "version": "\(.*\)",/\1/p' "$marker" 2>/dev/null || true)
if [[ "$have" != "$want" ]]; then
  echo "ensure-browser: installing playwright-core $want"
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi
