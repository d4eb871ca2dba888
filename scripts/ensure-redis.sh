#!/usr/bin/env bash
# Makes sure a Redis server answers for the tests: REDIS_URL if set, else 127.0.0.1:6379.
# Starts a local redis-server when none answers (installing it from the OS packages if absent).
set -euo pipefail

url="${REDIS_URL:-redis://127.0.0.1:6379}"
hostport="${url#*://}"; hostport="${hostport#*@}"; hostport="${hostport%%/*}"
host="${hostport%%:*}"; port="${hostport##*:}"
[[ "$port" == "$hostport" ]] && port=6379

ping() {
  if command -v redis-cli >/dev/null 2>&1; then
    redis-cli -u "$url" ping 2>/dev/null | grep -q PONG
  else
    # No client installed: speak RESP over bash's /dev/tcp.
    exec 3<>"/dev/tcp/$host/$port" 2>/dev/null || return 1
    printf 'PING\r\n' >&3
    local reply
    read -r -t 2 reply <&3 || true
    exec 3>&-
    [[ "$reply" == +PONG* ]]
  fi
}

if ping; then
  echo "ensure-redis: Redis answers at $host:$port" >&2
  exit 0
fi
case "$host" in
  127.0.0.1|localhost|::1) ;;
  *) echo "ensure-redis: REDIS_URL points at $host:$port, which does not answer; start it or unset REDIS_URL" >&2; exit 1 ;;
esac
if ! command -v redis-server >/dev/null 2>&1; then
  echo "ensure-redis: installing redis-server from the OS packages" >&2
  if command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "ensure-redis: no apt-get here; install redis-server yourself" >&2
    exit 1
  fi
fi
echo "ensure-redis: starting redis-server on $host:$port" >&2
redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
  --logfile "${TMPDIR:-/tmp}/fom-qbo-redis-$port.log"
for _ in $(seq 1 50); do
  ping && exit 0
  sleep 0.1
done
echo "ensure-redis: redis-server did not answer on $host:$port" >&2
exit 1
