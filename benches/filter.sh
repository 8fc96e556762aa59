#!/usr/bin/env bash
# Payload filter cost: one app with 100 endpoints (each its own nginx path, `return 200`), N
# messages of about 1 KiB ingested over one keep-alive connection, and the time until nginx has
# every delivery (N x 100). Run twice on the same machine, one after the other: endpoints
# without a filter, then each with the same 5-clause filter, which every message passes (so
# both runs deliver the same N x 100). ROUNDS rounds, alternating which runs first; the ratio
# of the two rates (median over rounds) is the cost of parsing each payload once and
# evaluating 100 filters on it in fan-out (issue 16's bar: >= 0.9).
#
#   benches/filter.sh [MESSAGES] [ROUNDS]      (default 2000 3)
#
# Installs wrk and nginx from Debian's packages if missing (benches/common.sh). Writes
# benches/results/filter.md.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000}
ROUNDS=${2:-3}
# shellcheck source=benches/common.sh
source benches/common.sh
HOOKD_PORT=18181
NGINX_PORT=18182
ENDPOINTS=100
FILTER='{"data.amount": {"$gte": 100}, "data.currency": {"$in": ["EUR", "USD"]}, "data.customer.email": {"$endsWith": "@example.com"}, "test": {"$ne": true}, "data.items.$.sku": {"$exists": true}}'

start_nginx
served() { curl -sf "http://127.0.0.1:$NGINX_PORT/status" | awk 'NR==3 {print $3}'; }

# run NAME FILTER_JSON_OR_EMPTY: prints "messages/s deliveries/s ingest_seconds".
run() {
  start_hookd "$WORK/data-$1" "allow_private_networks = true"
  python3 - "$N" "$ENDPOINTS" "$HOOKD_PORT" "$TOKEN" "$NGINX_PORT" "$2" "$(served)" <<'PY'
import http.client, json, sys, time, urllib.request
n, eps, port, token, nginx, flt, base = sys.argv[1:8]
n, eps, base = int(n), int(eps), int(base)
c = http.client.HTTPConnection("127.0.0.1", int(port))
h = {"authorization": f"Bearer {token}", "content-type": "application/json"}
def post(path, body, want):
    c.request("POST", "/api/v1/" + path, json.dumps(body), h)
    r = c.getresponse(); r.read()
    assert r.status == want, (path, r.status)
post("app", {"name": "bench", "uid": "bench"}, 201)
for e in range(eps):
    ep = {"url": f"http://127.0.0.1:{nginx}/hook/{e}"}
    if flt:
        ep["filter"] = json.loads(flt)
    post("app/bench/endpoint", ep, 201)
payload = {"type": "order.paid", "data": {"amount": 150, "currency": "EUR",
           "customer": {"email": "a@example.com"}, "items": [{"sku": "a"}, {"sku": "b"}],
           "note": "x" * 850}}
msg = {"eventType": "order.paid", "payload": payload}
def served():
    with urllib.request.urlopen(f"http://127.0.0.1:{nginx}/status") as r:
        return int(r.read().decode().splitlines()[2].split()[2])
t0 = time.time()
for _ in range(n):
    post("app/bench/msg", msg, 202)
t1 = time.time()
want = base + n * eps
while served() - 1 < want:
    time.sleep(0.02)
t2 = time.time()
print(f"{n / (t2 - t0):.0f} {n * eps / (t2 - t0):.0f} {t1 - t0:.2f}")
PY
  stop_hookd
}

ROWS=()
RATIOS=()
for r in $(seq "$ROUNDS"); do
  in_turn "$r" run "plain$r" "" -- run "filtered$r" "$FILTER"
  read -r PM PR PI <<<"$A_OUT"
  read -r FM FR FI <<<"$B_OUT"
  RATIO=$(python3 -c "print(f'{$FR/$PR:.2f}')")
  RATIOS+=("$RATIO")
  ROWS+=("| $r | $PM | $PR | $PI s | $FM | $FR | $FI s | $RATIO |")
done
MEDIAN=$(median "${RATIOS[@]}")

CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)
{
  echo "Machine: $(nproc) cores ($CPU), kernel $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg) at the end; $N messages of about 1 KiB, one app with $ENDPOINTS endpoints (nginx \`return 200\` on loopback), each message to all of them; hookd \`sync\` durability, default settings; the filter: \`$FILTER\` (every message passes it)."
  echo
  echo "| round | no filter: messages/s (first POST to last delivery) | deliveries/s | ingest time | 5-clause filter: messages/s | deliveries/s | ingest time | filtered / unfiltered |"
  echo "|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "Median ratio over $ROUNDS rounds (odd rounds run the unfiltered case first): $MEDIAN."
} | tee "$WORK/table.md"
mkdir -p benches/results
cp "$WORK/table.md" benches/results/filter.md
