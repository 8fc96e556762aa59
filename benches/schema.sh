#!/usr/bin/env bash
# Payload schema benchmark: what `validation.enforce_schemas` costs on the ingest path. wrk
# POSTs the 1 KiB-payload message of benches/common.sh to hookd (`sync` durability) whose event
# type has a JSON Schema the payload matches, once with enforcement off and once on, on a fresh
# data directory each time; rounds alternate which goes first.
#
#   benches/schema.sh [SECONDS_PER_RUN] [ROUNDS]      (defaults: 10 s, 3 rounds)
#
# Installs wrk from Debian's packages if missing. Prints a Markdown table and writes it to
# benches/results/schema.md. Loopback only; every process it starts it stops.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
ROUNDS=${2:-3}
# shellcheck source=benches/common.sh
source benches/common.sh
HOOKD_PORT=18073

# The schema of `bench.event` (version "1"): what the payload {"data": "x...x"} matches, with
# the usual keywords of a real one.
SCHEMA='{"1": {"type": "object", "required": ["data"], "additionalProperties": false,
  "properties": {"data": {"type": "string", "minLength": 1, "maxLength": 4096, "pattern": "^x+$"},
                 "id": {"type": "string"}, "n": {"type": "integer", "minimum": 0}}}}'

stop_hookd() {
  kill "$HOOKD_PID" 2>/dev/null && wait "$HOOKD_PID" 2>/dev/null || true
  HOOKD_PID=
}

# run ENFORCE(true|false): one wrk run; sets RESULT to "rate p50 p99 non2xx". Runs in this
# shell (not in a command substitution), so the exit trap always stops the hookd it started.
run() {
  local data="$WORK/data-$1"
  start_hookd "$data" "
[validation]
enforce_schemas = $1"
  grep -q "listening on" "$WORK/hookd.out" || { cat "$WORK/hookd.out" "$WORK/hookd.toml" >&2; echo "hookd did not start" >&2; exit 1; }
  api POST app '{"name":"bench","uid":"bench"}' > /dev/null
  api POST event-type "{\"name\": \"bench.event\", \"description\": \"bench\", \"schemas\": $SCHEMA}" > /dev/null
  # The payload passes (a 202, not a 422), so both runs do the same work after the check.
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$HOOKD_PORT/api/v1/app/bench/msg" \
    -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d "$PAYLOAD")
  [ "$code" = 202 ] || { echo "probe answered $code" >&2; exit 1; }
  local out
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --latency -s "$WORK/post.lua" \
    "http://127.0.0.1:$HOOKD_PORT/api/v1/app/bench/msg")
  stop_hookd
  rm -rf "$data"
  local rate p50 p99 non2xx
  rate=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
  RESULT="$rate $p50 $p99 ${non2xx:-0}"
}

declare -a OFF ON
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then
    run false; OFF+=("$RESULT")
    run true; ON+=("$RESULT")
  else
    run true; ON+=("$RESULT")
    run false; OFF+=("$RESULT")
  fi
done

CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)
{
  echo "Machine: $(nproc) cores ($CPU), $(free -g | awk '/Mem/ {print $2}') GiB, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end; wrk -t$THREADS -c$CONNS -d${SECS}s, 1 KiB payload matching a JSON Schema (type, required, additionalProperties, minLength/maxLength, pattern), hookd \`sync\` durability, $(nproc) shards, a fresh data directory per run. Rounds alternate which setting runs first."
  echo
  echo "| round | off req/s | off p50 | off p99 | on req/s | on p50 | on p99 | on / off |"
  echo "|---|---|---|---|---|---|---|---|"
  for i in $(seq 0 $((ROUNDS - 1))); do
    read -r fr f50 f99 fbad <<<"${OFF[$i]}"
    read -r nr n50 n99 nbad <<<"${ON[$i]}"
    ratio=$(python3 -c "print(f'{$nr/$fr:.2f}')")
    [ "$fbad" != "0" ] && fr="$fr ($fbad non-2xx)"
    [ "$nbad" != "0" ] && nr="$nr ($nbad non-2xx)"
    echo "| $((i + 1)) | $fr | $f50 | $f99 | $nr | $n50 | $n99 | $ratio |"
  done
} | tee "$WORK/table.md"
mkdir -p benches/results
cp "$WORK/table.md" benches/results/schema.md
