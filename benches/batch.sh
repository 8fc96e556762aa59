#!/usr/bin/env bash
# Batch ingest benchmark: wrk POSTs batches of 100 messages of 1 KiB each (about 100 KiB) to
# hookd's `POST /api/v1/app/{app}/msg/batch` (sync durability), beside nginx (`return 200`)
# taking the same 100 KiB POST and the single 1 KiB POST, alternated in one run. hookd's
# events/s is 100 x its request rate; issue 17's bar: >= 2x nginx's 1 KiB request rate.
# hookd is asked `?with_content=false`, as a high-volume producer would (its answer then
# carries ids, not the 100 KiB back).
#
#   benches/batch.sh [SECONDS_PER_RUN] [ROUNDS]      (defaults: 10 s, 2 rounds)
#
# Installs wrk and nginx from Debian's packages if missing. Writes benches/results/batch.md.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
ROUNDS=${2:-2}
# shellcheck source=benches/common.sh
source benches/common.sh
HOOKD_PORT=18191
NGINX_PORT=18192
BATCH=100

start_nginx
start_hookd "$WORK/data"
api POST app '{"name":"bench","uid":"bench"}' > /dev/null

# The batch body: 100 messages of the bench's 1 KiB message.
python3 - "$BATCH" > "$WORK/batch.json" <<'PY'
import json, sys
msg = {"eventType": "bench.event", "payload": {"data": "x" * 1000}}
print(json.dumps([msg] * int(sys.argv[1])), end="")
PY
BODY_BYTES=$(wc -c < "$WORK/batch.json")
cat > "$WORK/batch.lua" <<LUA
wrk.method = "POST"
local f = io.open("$WORK/batch.json", "rb")
wrk.body = f:read("*all")
f:close()
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "Bearer $TOKEN"
LUA

run() { # script url -> "req/s p50 p99 non2xx"
  local out
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --latency -s "$WORK/$1" "$2")
  echo "$(echo "$out" | awk '/Requests\/sec/ {print $2}') $(echo "$out" | awk '$1=="50%" {print $2}') $(echo "$out" | awk '$1=="99%" {print $2}') $(echo "$out" | awk '/Non-2xx/ {print $NF}')"
}

ROWS=()
for r in $(seq "$ROUNDS"); do
  read -r N1 _ _ _ <<<"$(run post.lua "http://127.0.0.1:$NGINX_PORT/api/v1/app/bench/msg")"
  read -r NB _ _ _ <<<"$(run batch.lua "http://127.0.0.1:$NGINX_PORT/api/v1/app/bench/msg/batch")"
  read -r HB H50 H99 BAD <<<"$(run batch.lua "http://127.0.0.1:$HOOKD_PORT/api/v1/app/bench/msg/batch?with_content=false")"
  EVENTS=$(python3 -c "print(f'{$HB*$BATCH:.0f}')")
  RATIO=$(python3 -c "print(f'{$HB*$BATCH/$N1:.2f}')")
  ROWS+=("| $r | $N1 | $NB | $HB${BAD:+ ($BAD non-2xx)} | $H50 | $H99 | $EVENTS | $RATIO |")
done

CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)
{
  echo "Machine: $(nproc) cores ($CPU), kernel $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg) at the end; wrk -t$THREADS -c$CONNS -d${SECS}s; a batch is $BATCH messages of 1 KiB ($BODY_BYTES bytes), hookd \`sync\` durability; nginx \`return 200\`. Rounds run nginx 1 KiB, nginx batch body, hookd batch."
  echo
  echo "| round | nginx 1 KiB req/s | nginx 100 KiB req/s | hookd batch req/s | hookd p50 | hookd p99 | hookd events/s | events/s / nginx 1 KiB req/s |"
  echo "|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
} | tee "$WORK/table.md"
mkdir -p benches/results
cp "$WORK/table.md" benches/results/batch.md
