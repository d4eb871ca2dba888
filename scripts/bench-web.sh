#!/usr/bin/env bash
# fom-web's memory and speed against the local Redis: idle RSS, peak RSS while N concurrent
# uploads of one M MB PDF stream into the Redis upload store, wrk on GET /health, and the web's
# Redis connections. Usage: scripts/bench-web.sh [UPLOADS] [FILE_MB] (default 20 20).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
uploads="${1:-20}"
file_mb="${2:-20}"
redis_url="${REDIS_URL:-redis://127.0.0.1:6379}"
hostport="${redis_url#*://}"; hostport="${hostport#*@}"; hostport="${hostport%%/*}"
redis_port="${hostport##*:}"; [[ "$redis_port" == "$hostport" ]] && redis_port=6379
rcli() { redis-cli -u "$redis_url" "$@"; }

if ! command -v wrk >/dev/null; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; } >/dev/null 2>&1 ||
    echo "bench-web: wrk is missing and could not be installed (apt-get install wrk)" >&2
fi
"$root/scripts/ensure-redis.sh"
(cd "$root" && ${CARGO:-cargo} build --release --locked -q -p fom-web)

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
prefix="bench-web-$(openssl rand -hex 6)"
password="correct horse battery"
tmp="$(mktemp -d)"
pid=""
cleanup() {
  [[ -n "$pid" ]] && { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; }
  rcli --scan --pattern "$prefix:*" | xargs -r -n 500 redis-cli -u "$redis_url" del >/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

kb() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$pid/status"; } # VmRSS / VmHWM in kB
mb() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
clients() { rcli client list | wc -l; }
web_conns() { ss -tnpH state established "( dport = :$redis_port )" | grep -c "pid=$pid," || true; }

clients_before=$(clients)
PORT=$port REDIS_URL="$redis_url" KEY_PREFIX="$prefix" WEB_CONCURRENCY=2 MAX_FILE_MB=25 \
  APP_PASSWORD="$password" SESSION_SECRET="$(openssl rand -base64 64 | tr -d '\n')" \
  INSECURE_COOKIES=1 RUST_LOG=warn "$root/target/release/fom-web" >"$tmp/web.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do curl -fs -o /dev/null "$base/health" && break; sleep 0.1; done
curl -fs -o /dev/null "$base/health" || { cat "$tmp/web.log" >&2; exit 1; }
sleep 2
idle=$(kb VmRSS)
clients_idle=$(clients)
echo "idle: RSS $(mb "$idle") MB, Redis clients $clients_before -> $clients_idle, web's own $(web_conns)"

# Sign in, one deposit, one file that sniffs as a PDF.
login=$(curl -s -o /dev/null -w '%{http_code}' -c "$tmp/jar" -H "Origin: $base" \
  --data-urlencode "password=$password" "$base/login")
[[ "$login" == 303 ]] || { echo "bench-web: sign-in answered $login" >&2; exit 1; }
deposit=$(curl -fs -b "$tmp/jar" -H "Origin: $base" -H 'Content-Type: application/json' \
  -d '{"name":"bench-web"}' "$base/api/deposits" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
{ printf '%%PDF-1.7\n'; head -c $((file_mb * 1048576 - 9)) /dev/urandom; } >"$tmp/scan.pdf"

# Sample VmRSS every 50 ms while the uploads run; VmHWM, reset first, catches what falls between.
echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true
(while kill -0 "$pid" 2>/dev/null; do kb VmRSS; sleep 0.05; done) >"$tmp/rss" &
sampler=$!
start=$(date +%s.%N)
curls=()
for i in $(seq 1 "$uploads"); do
  curl -s -o "$tmp/up$i.json" -w '%{http_code}\n' -b "$tmp/jar" -H "Origin: $base" \
    -F "files=@$tmp/scan.pdf;type=application/pdf" "$base/api/deposits/$deposit/files" >"$tmp/code$i" &
  curls+=($!)
done
wait "${curls[@]}"
secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {printf "%.2f", e - s}')
sleep 0.2; kill "$sampler"; wait "$sampler" 2>/dev/null || true
peak=$(sort -n "$tmp/rss" | tail -1)
hwm=$(kb VmHWM)
after=$(kb VmRSS)
ok=$(cat "$tmp"/code* | grep -cx 202 || true)
whole=$(cat "$tmp"/up*.json | grep -o "\"size\":$((file_mb * 1048576))[,}]" | wc -l) # stored in full
echo "uploads: $ok/$uploads answered 202 ($whole stored whole) in $secs s; peak RSS (50 ms samples) $(mb "$peak") MB," \
  "VmHWM $(mb "$hwm") MB, RSS after $(mb "$after") MB ($(wc -l <"$tmp/rss") samples)"
status=0
if [[ "$ok" != "$uploads" || "$whole" != "$uploads" ]]; then
  echo "bench-web: not every upload answered 202 with the whole file:" >&2; cat "$tmp"/up*.json >&2; status=1
fi

# GET /health under wrk.
rps=- p50=- p99=-
if command -v wrk >/dev/null; then
  wrk -t2 -c32 -d15s --latency "$base/health" | tee "$tmp/wrk"
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$tmp/wrk")
  p50=$(awk '$1 == "50%" {print $2}' "$tmp/wrk")
  p99=$(awk '$1 == "99%" {print $2}' "$tmp/wrk")
fi
clients_after=$(clients)
conns=$(web_conns)

echo
echo "== fom-web bench ($(nproc) cores, WEB_CONCURRENCY=2, Redis at $hostport) =="
row() { printf '%-36s %s\n' "$1" "$2"; }
row "idle RSS" "$(mb "$idle") MB"
row "peak RSS, $uploads x $file_mb MB uploads" \
  "$(mb "$peak") MB sampled, VmHWM $(mb "$hwm") MB ($ok/$uploads answered 202, $secs s)"
row "GET /health (wrk -t2 -c32 -d15s)" "$rps req/s, p50 $p50, p99 $p99"
row "Redis connections of the web" \
  "$conns (CLIENT LIST: $clients_before before start, $clients_idle idle, $clients_after after load)"
exit "$status"
