#!/usr/bin/env bash
# Peak RSS of the photo path: a generated 6000 x 6600 PNG and JPEG (EXIF orientation 6) through
# `fom-worker process` with the Gemini extractor against the local contract fake.
#   scripts/bench-photo.sh [WORKER_BINARY]   (default: this tree's release build)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p fom-worker -p fom-testkit --bin fom-worker --bin fake-gemini
cargo build --release --quiet -p fom-core --example write_photo
worker=${1:-./target/release/fom-worker}
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
./target/release/fake-gemini --port "$port" > /dev/null &
fake=$!
trap 'kill $fake 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
./target/release/examples/write_photo "$dir/check.png" 6000 6600
./target/release/examples/write_photo "$dir/check.jpg" 6000 6600 6
for f in "$dir/check.png" "$dir/check.jpg"; do
  RUST_LOG=warn EXTRACTOR=gemini GEMINI_API_KEY=test-key GEMINI_BASE_URL="http://127.0.0.1:$port" \
    GEMINI_RPM=0 MEMORY_CRITICAL_MB=300 MEMORY_WARNING_MB=250 \
    /usr/bin/time -v "$worker" process --json "$f" > "$dir/out.json" 2> "$dir/time.txt" || true
  python3 - "$f" "$dir/out.json" "$dir/time.txt" <<'PY'
import json, re, sys
name, out, timing = sys.argv[1:]
report = json.load(open(out))
t = open(timing).read()
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1)) / 1024
wall = re.search(r"Elapsed \(wall clock\) time.*: (\S+)", t).group(1)
f = report["files"][0]
print(f"{name.rsplit('/', 1)[-1]}: peak RSS {report['peak_rss_mb']} MB (time -v {rss:.1f} MB), "
      f"wall {wall}, records {f['records']}, error {f['error']}")
PY
done
