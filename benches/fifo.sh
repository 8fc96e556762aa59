#!/usr/bin/env bash
# Ordered endpoints' cost: one app with one endpoint (nginx `return 200` on loopback), N
# messages of about 1 KiB spread round robin over 100 ordering keys, ingested with the batch
# route (100 per request, over one keep-alive connection, so that ingest is not what limits)
# and timed from the first POST to nginx's last delivery. Run twice on the same machine, one
# after the other: the endpoint unordered (`"ordering": "none"`, the keys ignored), then
# ordered (`"fifo"`: one delivery per key at a time). ROUNDS rounds, alternating which runs
# first; the ratio of the two delivery rates (median over rounds) is what ordering costs
# (issue 16's bar: >= 0.5).
#
#   benches/fifo.sh [MESSAGES] [ROUNDS]      (default 20000 3)
#
# Installs wrk and nginx from Debian's packages if missing (benches/common.sh). Writes
# benches/results/fifo.md.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20000}
ROUNDS=${2:-3}
# shellcheck source=benches/common.sh
source benches/common.sh
HOOKD_PORT=18191
NGINX_PORT=18192
KEYS=100

start_nginx

# run NAME ORDERING: prints "deliveries/s ingest_seconds".
run() {
  start_hookd "$WORK/data-$1" "allow_private_networks = true"
  python3 - "$N" "$KEYS" "$HOOKD_PORT" "$TOKEN" "$NGINX_PORT" "$2" <<'PY'
import http.client, json, sys, time, urllib.request
n, keys, port, token, nginx, ordering = sys.argv[1:7]
n, keys = int(n), int(keys)
c = http.client.HTTPConnection("127.0.0.1", int(port))
h = {"authorization": f"Bearer {token}", "content-type": "application/json"}
def post(path, body, want):
    c.request("POST", "/api/v1/" + path, json.dumps(body), h)
    r = c.getresponse(); r.read()
    assert r.status == want, (path, r.status)
post("app", {"name": "bench", "uid": "bench"}, 201)
post("app/bench/endpoint", {"url": f"http://127.0.0.1:{nginx}/hook", "ordering": ordering}, 201)
def served():
    with urllib.request.urlopen(f"http://127.0.0.1:{nginx}/status") as r:
        return int(r.read().decode().splitlines()[2].split()[2])
batches = []
for start in range(0, n, 100):
    batches.append([{"eventType": "order.paid", "orderingKey": f"customer-{i % keys}",
                     "payload": {"i": i, "note": "x" * 1000}}
                    for i in range(start, min(start + 100, n))])
base = served()
t0 = time.time()
for b in batches:
    post("app/bench/msg/batch", b, 202)
t1 = time.time()
want = base + n
while served() - 1 < want:
    time.sleep(0.02)
t2 = time.time()
print(f"{n / (t2 - t0):.0f} {t1 - t0:.2f}")
PY
  stop_hookd
}

ROWS=()
RATIOS=()
for r in $(seq "$ROUNDS"); do
  in_turn "$r" run "none$r" none -- run "fifo$r" fifo
  read -r PR PI <<<"$A_OUT"
  read -r FR FI <<<"$B_OUT"
  RATIO=$(python3 -c "print(f'{$FR/$PR:.2f}')")
  RATIOS+=("$RATIO")
  ROWS+=("| $r | $PR | $PI s | $FR | $FI s | $RATIO |")
done
MEDIAN=$(median "${RATIOS[@]}")

CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)
{
  echo "Machine: $(nproc) cores ($CPU), kernel $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg) at the end; $N messages of about 1 KiB over $KEYS ordering keys (round robin), ingested 100 per batch request; one endpoint (nginx \`return 200\` on loopback); hookd \`sync\` durability, default settings (\`in_flight_per_endpoint_max\` 8)."
  echo
  echo "| round | unordered: deliveries/s (first POST to last delivery) | ingest time | fifo, $KEYS keys: deliveries/s | ingest time | fifo / unordered |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "Median ratio over $ROUNDS rounds (odd rounds run the unordered case first): $MEDIAN."
} | tee "$WORK/table.md"
mkdir -p benches/results
cp "$WORK/table.md" benches/results/fifo.md
