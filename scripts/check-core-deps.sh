#!/usr/bin/env bash
# fom-core holds the pipeline, the stores and the jobs; the web framework (actix) and the queue
# library (apalis) stay out of its normal dependencies, so core builds and tests without them
# (docs/ARCHITECTURE.md, "Workspace"). `make test` runs this check.
set -euo pipefail
cd "$(dirname "$0")/.."
tree=$("${CARGO:-cargo}" tree -p fom-core -e normal --prefix none)
bad=$(grep -E '^(actix|apalis)[a-z0-9_-]* ' <<<"$tree" | sort -u || true)
if [ -n "$bad" ]; then
  echo "check-core-deps: fom-core must not depend on the web framework or the queue library:"
  echo "$bad"
  exit 1
fi
echo "check-core-deps: fom-core depends on neither actix nor apalis"
