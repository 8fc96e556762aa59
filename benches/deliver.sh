#!/usr/bin/env bash
# End-to-end delivery benchmark: wrk POSTs 1 KiB messages to hookd (sync durability) for a
# while; hookd delivers each one, signed, to an nginx receiver (`return 200`) on loopback. It
# reports deliveries per second and the lag from the last 202 to the last delivery, beside
# nginx's own request rate measured in the same run, and hookd's RSS with 100k deliveries
# pending against a dead endpoint. The delivery run is made twice: with the default config,
# then with `storage.commit_window = "0ms"` (fdatasyncs back to back), then with 1,000 apps of
# 10 endpoints each (each message to one app at random: 10 deliveries per message).
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

# many_endpoints APPS PER_APP: creates APPS apps with PER_APP endpoints each (all subscribed
# to everything, each at its own nginx path) over one keep-alive connection, and writes the
# wrk script $WORK/post-many.lua, which sends each message to one app picked at random.
many_endpoints() {
  python3 - "$1" "$2" "$HOOKD_PORT" "$TOKEN" "$NGINX_PORT" <<'PY'
import http.client, json, sys
apps, per_app, port, token, nginx = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
c = http.client.HTTPConnection("127.0.0.1", int(port))
h = {"authorization": f"Bearer {token}", "content-type": "application/json"}
def post(path, body):
    c.request("POST", "/api/v1/" + path, json.dumps(body), h)
    r = c.getresponse(); r.read()
    assert r.status == 201, (path, r.status)
for a in range(apps):
    post("app", {"name": f"b{a}", "uid": f"b{a}"})
    for e in range(per_app):
        post(f"app/b{a}/endpoint", {"url": f"http://127.0.0.1:{nginx}/hook/{a}/{e}"})
PY
  sed -e "s|^wrk.method = \"POST\"|wrk.method = \"POST\"\nrequest = function() return wrk.format(nil, \"/api/v1/app/b\" .. math.random(0, $(($1 - 1))) .. \"/msg\") end|" \
    "$WORK/post.lua" > "$WORK/post-many.lua"
}

# deliveries NAME [EXTRA_STORAGE_TOML] [APPS PER_APP]: ingest for SECS seconds, wait for the
# receiver to have every delivery of every acknowledged message; prints "rate lag ingest_rate
# acked peak_rss_kib". One app with one endpoint, or APPS apps of PER_APP endpoints each.
deliveries() {
  start_hookd "$WORK/data-$1" "allow_private_networks = true" "${2:-}"
  local script=post.lua path=app/bench/msg fan=1
  if [ -n "${3:-}" ]; then
    many_endpoints "$3" "$4"
    script=post-many.lua path=app/b0/msg fan=$4
  else
    api POST app '{"name":"bench","uid":"bench"}' > /dev/null
    api POST app/bench/endpoint "{\"url\":\"http://127.0.0.1:$NGINX_PORT/hook\"}" > /dev/null
  fi
  local base t0 t1 t2 out acked non2xx ingest delivered=0 rss
  base=$(served)
  t0=$(date +%s.%N)
  out=$(wrk -t$THREADS -c$CONNS -d"${SECS}s" -s "$WORK/$script" "http://127.0.0.1:$HOOKD_PORT/api/v1/$path")
  t1=$(date +%s.%N)
  acked=$(echo "$out" | awk '/requests in/ {print $1}')
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
  acked=$((acked - ${non2xx:-0}))
  ingest=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  for _ in $(seq 6000); do
    delivered=$(($(served) - base - 1))
    [ "$delivered" -ge $((acked * fan)) ] && break
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
# 1,000 apps of 10 endpoints each, every message to one app: the engine's work must follow the
# endpoints with work, not all 10,000 it knows.
read -r MRATE MLAG MINGEST MACKED MRSS <<<"$(deliveries many "" 1000 10)"
MRATIO=$(python3 -c "print(f'{$MRATE/$DRATE:.2f}')")

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
  echo "| 1,000 apps x 10 endpoints (each message to one app, so 10 deliveries): deliveries, ratio to the one-endpoint run, lag, ingest, peak RSS | $MRATE /s ($MRATIO), $MLAG s, $MINGEST req/s ($MACKED acknowledged), $((MRSS / 1024)) MiB |"
  echo "| RSS with $PENDING deliveries pending to a dead endpoint | $((RSS_PENDING / 1024)) MiB |"
} | tee "$WORK/table.md"
mkdir -p benches/results
cp "$WORK/table.md" benches/results/deliver.md
