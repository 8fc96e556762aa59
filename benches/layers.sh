#!/usr/bin/env bash
# Which layer of ingest costs the ratio to nginx: the suite's 1 KiB message POST, alternated in
# one run against nginx (`return 200`) and against four things hookd does with it:
#   health  POST /api/v1/health: the body is read, 405 (the HTTP layer alone)
#   422     the message route with an invalid eventType: auth, app lookup, JSON, then 422
#   202 interval / 202 sync: stored, with `durability = "interval"` (no wait for fdatasync)
#           and `"sync"` (the default: the 202 waits for the group commit)
#
#   benches/layers.sh [SECONDS_PER_RUN] [ROUNDS] [CONNECTIONS]     (defaults: 10 s, 2, 64)
#
# Prints a Markdown table of requests/s and ratios to nginx and writes it to
# benches/results/layers.md (layers-c<CONNECTIONS>.md when CONNECTIONS is not 64).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
ROUNDS=${2:-2}
# shellcheck source=benches/common.sh
source benches/common.sh
CONNS=${3:-$CONNS}
RESULT=$(result_path layers)
NGINX_PORT=18472
INTERVAL_PORT=18473
SYNC_PORT=18474

start_nginx

# hookd_on PORT DURABILITY: a hookd with the bench config and an app `bench`; its pid in
# $WORK/DURABILITY/pid.
hookd_on() {
  mkdir -p "$WORK/$2"
  HOOKD_PORT=$1 DURABILITY=$2 write_config "$WORK/$2/data"
  mv "$WORK/hookd.toml" "$WORK/$2/hookd.toml"
  "$BIN" serve --config "$WORK/$2/hookd.toml" > "$WORK/$2/out" 2>&1 &
  echo $! > "$WORK/$2/pid"
  for _ in $(seq 300); do grep -q "listening on" "$WORK/$2/out" && break; sleep 0.1; done
  curl -sf -o /dev/null -X POST "http://127.0.0.1:$1/api/v1/app" -H "authorization: Bearer $TOKEN" \
    -H 'content-type: application/json' -d '{"name":"bench","uid":"bench"}'
}
hookd_on "$INTERVAL_PORT" interval
hookd_on "$SYNC_PORT" sync
trap 'kill "$(cat "$WORK/interval/pid")" "$(cat "$WORK/sync/pid")" 2>/dev/null; cleanup' EXIT

BAD=$(python3 -c 'import json; print(json.dumps({"eventType":"bad event!","payload":{"data":"x"*1000}}))')
sed "s|^wrk.body = .*|wrk.body = '$BAD'|" "$WORK/post.lua" > "$WORK/bad.lua"

rate() { # script url -> requests/s
  wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" -s "$WORK/$1" "$2" | awk '/Requests\/sec/ {print $2}'
}
ratio() { python3 -c "print(f'{$1:.0f} ({$1/$2:.2f})')"; }

{
  echo "Machine: $(nproc) cores, kernel $(uname -r); wrk -t$THREADS -c$CONNS -d${SECS}s, the 1 KiB message POST; requests/s (ratio to nginx). Rounds alternate the five."
  echo
  echo "| round | nginx | health 405 | 422 after JSON | 202 interval | 202 sync |"
  echo "|---|---|---|---|---|---|"
  for r in $(seq "$ROUNDS"); do
    n=$(rate post.lua "http://127.0.0.1:$NGINX_PORT/x")
    h=$(rate post.lua "http://127.0.0.1:$INTERVAL_PORT/api/v1/health")
    b=$(rate bad.lua "http://127.0.0.1:$INTERVAL_PORT/api/v1/app/bench/msg")
    i=$(rate post.lua "http://127.0.0.1:$INTERVAL_PORT/api/v1/app/bench/msg")
    s=$(rate post.lua "http://127.0.0.1:$SYNC_PORT/api/v1/app/bench/msg")
    echo "| $r | ${n%.*} | $(ratio "$h" "$n") | $(ratio "$b" "$n") | $(ratio "$i" "$n") | $(ratio "$s" "$n") |"
  done
} | tee "$WORK/table.md"
mkdir -p benches/results
cp "$WORK/table.md" "$RESULT"
