#!/usr/bin/env bash
# End-to-end delivery benchmark: wrk POSTs 1 KiB messages to hookd (sync durability) for a
# while; hookd delivers each one, signed, to an nginx receiver (`return 200`) on loopback. It
# reports deliveries per second and the lag from the last 202 to the last delivery, beside
# nginx's own request rate measured in the same run, and hookd's RSS with 100k deliveries
# pending against a dead endpoint. The delivery run is made twice: with the default config,
# then with `storage.commit_window = "0ms"` (fdatasyncs back to back).
#
#   benches/deliver.sh [SECONDS]      (default 10)
#
# Installs wrk and nginx from Debian's packages if missing. Writes benches/results/deliver.md.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
# shellcheck source=benches/common.sh
source benches/common.sh
HOOKD_PORT=18171
NGINX_PORT=18172
DEAD_PORT=18179

start_nginx
served() { curl -sf "http://127.0.0.1:$NGINX_PORT/status" | awk 'NR==3 {print $3}'; }


# nginx's own rate for the same POST, as the yardstick.
NGINX_RATE=$(wrk -t$THREADS -c$CONNS -d"${SECS}s" -s "$WORK/post.lua" "http://127.0.0.1:$NGINX_PORT/hook" | awk '/Requests\/sec/ {print $2}')

# deliveries NAME [EXTRA_STORAGE_TOML]: ingest for SECS seconds, wait for the receiver to have
# every acknowledged message; prints "rate lag ingest_rate acked peak_rss_kib".
deliveries() {
  start_hookd "$WORK/data-$1" "allow_private_networks = true" "${2:-}"
  api POST app '{"name":"bench","uid":"bench"}' > /dev/null
  api POST app/bench/endpoint "{\"url\":\"http://127.0.0.1:$NGINX_PORT/hook\"}" > /dev/null
  local base t0 t1 t2 out acked non2xx ingest delivered=0 rss
  base=$(served)
  t0=$(date +%s.%N)
  out=$(wrk -t$THREADS -c$CONNS -d"${SECS}s" -s "$WORK/post.lua" "http://127.0.0.1:$HOOKD_PORT/api/v1/app/bench/msg")
  t1=$(date +%s.%N)
  acked=$(echo "$out" | awk '/requests in/ {print $1}')
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
  acked=$((acked - ${non2xx:-0}))
  ingest=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  for _ in $(seq 6000); do
    delivered=$(($(served) - base - 1))
    [ "$delivered" -ge "$acked" ] && break
    sleep 0.05
  done
  t2=$(date +%s.%N)
  rss=$(awk '/VmHWM/ {print $2}' /proc/$HOOKD_PID/status)
  stop_hookd
  python3 -c "print(f'{$delivered/($t2-$t0):.0f} {$t2-$t1:.2f} $ingest $acked $rss')"
}
read -r DRATE LAG INGEST_RATE ACKED RSS_BUSY <<<"$(deliveries default)"
RATIO=$(python3 -c "print(f'{$DRATE/$NGINX_RATE:.2f}')")
read -r ZRATE ZLAG ZINGEST ZACKED _ <<<"$(deliveries window0 'commit_window = "0ms"')"
ZRATIO=$(python3 -c "print(f'{$ZRATE/$NGINX_RATE:.2f}')")

# RSS with 100k deliveries pending against a dead endpoint.
start_hookd "$WORK/data-dead" "allow_private_networks = true"
api POST app '{"name":"dead","uid":"dead"}' > /dev/null
api POST app/dead/endpoint "{\"url\":\"http://127.0.0.1:$DEAD_PORT/nobody\"}" > /dev/null
PENDING=0
while [ "$PENDING" -lt 100000 ]; do
  N=$(wrk -t$THREADS -c$CONNS -d2s -s "$WORK/post.lua" "http://127.0.0.1:$HOOKD_PORT/api/v1/app/dead/msg" | awk '/requests in/ {print $1}')
  PENDING=$((PENDING + N))
done
sleep 3
RSS_PENDING=$(awk '/VmRSS/ {print $2}' /proc/$HOOKD_PID/status)

CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)
{
  echo "Machine: $(nproc) cores ($CPU), kernel $(uname -r); wrk -t$THREADS -c$CONNS -d${SECS}s, 1 KiB payload, one endpoint (nginx \`return 200\` on loopback), hookd \`sync\` durability and default settings (among them \`delivery.pipeline_depth = 8\`, \`storage.commit_window = \"1ms\"\`)."
  echo
  echo "| measure | value |"
  echo "|---|---|"
  echo "| nginx, same POST straight to it | $NGINX_RATE req/s |"
  echo "| hookd ingest while delivering | $INGEST_RATE req/s ($ACKED acknowledged) |"
  echo "| end-to-end deliveries (first 202 to last delivery) | $DRATE /s |"
  echo "| deliveries / nginx rate | $RATIO |"
  echo "| lag, last 202 to last delivery | $LAG s |"
  echo "| peak RSS during the run | $((RSS_BUSY / 1024)) MiB |"
  echo "| the same with \`storage.commit_window = \"0ms\"\`: deliveries (ratio), lag, ingest | $ZRATE /s ($ZRATIO), $ZLAG s, $ZINGEST req/s ($ZACKED acknowledged) |"
  echo "| RSS with $PENDING deliveries pending to a dead endpoint | $((RSS_PENDING / 1024)) MiB |"
} | tee "$WORK/table.md"
mkdir -p benches/results
cp "$WORK/table.md" benches/results/deliver.md
