#!/usr/bin/env bash
# Peak RSS and pages/s of the Gemini extraction path on a generated scanned PDF, against the
# local contract fake answering at a fixed latency (no network, no key).
#   scripts/bench-gemini.sh [PAGES] [LATENCY_MS]
set -euo pipefail
cd "$(dirname "$0")/.."
pages=${1:-200}
latency=${2:-300}
cargo build --release --quiet -p fom-worker -p fom-testkit --bin fom-worker --bin fake-gemini
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
./target/release/fake-gemini --port "$port" --latency-ms "$latency" > /dev/null &
fake=$!
trap 'kill $fake 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
run() {
  RUST_LOG=warn EXTRACTOR=gemini GEMINI_API_KEY=test-key GEMINI_BASE_URL="http://127.0.0.1:$port" \
    GEMINI_RPM=0 ./target/release/fom-worker memtest --pages "$pages" --json "$@"
}
echo "pages only (no extraction):        $(run)"
echo "gemini, pass-through pages:        $(run --extract)"
echo "gemini, rendered pages (150 DPI):  $(run --extract --force-render)"
