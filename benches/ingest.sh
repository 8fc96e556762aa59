#!/usr/bin/env bash
# Ingest benchmark: wrk POSTs 1 KiB-payload messages to hookd (sync durability) and the same
# POST to nginx answering `return 200`, alternated in one run on this machine.
#
#   benches/ingest.sh [SECONDS_PER_RUN] [ROUNDS] [CONNECTIONS]      (defaults: 10 s, 2, 64)
#
# Installs wrk and nginx from Debian's packages if missing. Prints a Markdown table and writes
# it to benches/results/ingest.md (ingest-c<CONNECTIONS>.md when CONNECTIONS is not 64).
# Loopback only; every process it starts it stops.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
ROUNDS=${2:-2}
# shellcheck source=benches/common.sh
source benches/common.sh
CONNS=${3:-$CONNS}
RESULT=$(result_path ingest)
HOOKD_PORT=18071
NGINX_PORT=18072

start_nginx

start_hookd "$WORK/data"
api POST app '{"name":"bench","uid":"bench"}' > /dev/null
sleep 0.3

run() { # name url -> "rate p50 p99"
  local out
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --latency -s "$WORK/post.lua" "$2")
  echo "$out" > "$WORK/wrk-$1.txt"
  local rate p50 p99 non2xx
  rate=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
  echo "$rate $p50 $p99 ${non2xx:-0}"
}

declare -a H N
for _ in $(seq "$ROUNDS"); do
  N+=("$(run nginx "http://127.0.0.1:$NGINX_PORT/api/v1/app/bench/msg")")
  H+=("$(run hookd "http://127.0.0.1:$HOOKD_PORT/api/v1/app/bench/msg")")
done

CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)
{
  echo "Machine: $(nproc) cores ($CPU), $(free -g | awk '/Mem/ {print $2}') GiB, kernel $(uname -r); wrk -t$THREADS -c$CONNS -d${SECS}s, 1 KiB payload, hookd \`sync\` durability, $(nproc) shards; nginx $(nginx -v 2>&1 | cut -d/ -f2) with $(nproc) workers, \`return 200\`. Rounds alternate nginx and hookd."
  echo
  echo "| round | nginx req/s | nginx p50 | nginx p99 | hookd req/s | hookd p50 | hookd p99 | hookd / nginx |"
  echo "|---|---|---|---|---|---|---|---|"
  for i in $(seq 0 $((ROUNDS - 1))); do
    read -r nr n50 n99 _ <<<"${N[$i]}"
    read -r hr h50 h99 hbad <<<"${H[$i]}"
    ratio=$(python3 -c "print(f'{$hr/$nr:.2f}')")
    [ "$hbad" != "0" ] && hr="$hr ($hbad non-2xx)"
    echo "| $((i + 1)) | $nr | $n50 | $n99 | $hr | $h50 | $h99 | $ratio |"
  done
} | tee "$WORK/table.md"
mkdir -p benches/results
cp "$WORK/table.md" "$RESULT"
