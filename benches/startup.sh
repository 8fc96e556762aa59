#!/usr/bin/env bash
# Start-up time and memory: hookd's RSS idle and after 100k messages, the time from exec to
# serving on a fresh data directory, and the time to READY=1 when restarting with 1M
# deliveries pending.
#
#   benches/startup.sh          (STARTUP_MESSAGES=100000 STARTUP_PENDING=1000000 by default)
#
# STARTUP_STORAGE adds lines to the config's [storage] table (e.g. 'cache_bytes = "16MiB"').
#
# Times are taken by a small Python helper that starts hookd with $NOTIFY_SOCKET pointing at a
# datagram socket of its own: exec to READY=1 (sent once every shard serves and recovery is
# done), exec to the `listening on` line, and hookd's own figure from that line (config
# loaded to listening). RSS is VmRSS from /proc. The pending case fills an endpoint nobody
# listens on (every attempt is refused, as in benches/deliver.sh), waits until every message
# is fanned out into a delivery, stops hookd with SIGTERM and times the restart. The page
# cache is warm (nothing is dropped: the machine is shared). Writes benches/results/startup.md.
set -euo pipefail
cd "$(dirname "$0")/.."
MESSAGES=${STARTUP_MESSAGES:-100000}
PENDING_WANT=${STARTUP_PENDING:-1000000}
# shellcheck source=benches/common.sh
source benches/common.sh
HOOKD_PORT=18181
DEAD_PORT=18189
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)


cat > "$WORK/ready.py" <<'PY'
"""Starts hookd, prints `<pid> <ms to READY=1> <ms to 'listening on'> <hookd's own ms>`."""
import os, re, socket, subprocess, sys, threading, time

binary, config, log = sys.argv[1:4]
path = os.path.join(os.path.dirname(log), "notify.sock")
if os.path.exists(path):
    os.unlink(path)
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(path)
sock.settimeout(900)
env = dict(os.environ, NOTIFY_SOCKET=path)
env.pop("WATCHDOG_USEC", None)
listening = {}
t0 = time.monotonic()
proc = subprocess.Popen([binary, "serve", "--config", config], env=env,
                        stdout=subprocess.PIPE, stderr=open(log, "a"), text=True)

def read_stdout():
    for line in proc.stdout:
        if line.startswith("listening on") and "t" not in listening:
            listening["t"] = time.monotonic()
            m = re.search(r"ready in (\d+) ms", line)
            listening["own"] = m.group(1) if m else "?"

threading.Thread(target=read_stdout, daemon=True).start()
while True:
    msg = sock.recv(4096)
    if b"READY=1" in msg.split(b"\n"):
        ready = time.monotonic()
        break
deadline = time.monotonic() + 10
while "t" not in listening and time.monotonic() < deadline:
    time.sleep(0.001)
ms = lambda t: f"{(t - t0) * 1000:.0f}"
print(proc.pid, ms(ready), ms(listening.get("t", float("nan"))), listening.get("own", "?"))
PY

# start DATA_DIR: starts hookd through the helper; sets HOOKD_PID, READY_MS, LISTEN_MS, OWN_MS.
start() {
  write_config "$1" "allow_private_networks = true" "${STARTUP_STORAGE:-}"
  read -r HOOKD_PID READY_MS LISTEN_MS OWN_MS < <(python3 "$WORK/ready.py" "$BIN" "$WORK/hookd.toml" "$WORK/hookd.log")
}
rss_mib() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$HOOKD_PID/status"; }
metric() { curl -sf "http://127.0.0.1:$HOOKD_PORT/metrics" -H "authorization: Bearer $TOKEN" | awk -v m="$1" '$1 == m {print $2}'; }
# stop: SIGTERM, wait; sets STOP_MS.
stop() {
  local t0
  t0=$(date +%s%N)
  kill -TERM "$HOOKD_PID"
  while kill -0 "$HOOKD_PID" 2>/dev/null; do sleep 0.05; done
  STOP_MS=$((($(date +%s%N) - t0) / 1000000))
  HOOKD_PID=
}
# ingest APP N: wrk until at least N messages are acknowledged; prints how many were.
ingest() {
  local acked=0 out n bad
  while [ "$acked" -lt "$2" ]; do
    out=$(wrk -t"$THREADS" -c"$CONNS" -d2s -s "$WORK/post.lua" "http://127.0.0.1:$HOOKD_PORT/api/v1/app/$1/msg")
    n=$(echo "$out" | awk '/requests in/ {print $1}')
    bad=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
    acked=$((acked + n - ${bad:-0}))
  done
  echo "$acked"
}

# 1. Cold start on a fresh data directory, idle RSS, RSS after MESSAGES messages.
start "$WORK/data"
COLD_READY=$READY_MS COLD_LISTEN=$LISTEN_MS COLD_OWN=$OWN_MS
api POST app '{"name":"quiet","uid":"quiet"}' > /dev/null
sleep 2
RSS_IDLE=$(rss_mib)
ACKED=$(ingest quiet "$MESSAGES")
sleep 2
RSS_AFTER=$(rss_mib)
HWM_AFTER=$(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$HOOKD_PID/status")
stop
# Restart on that store (MESSAGES records, nothing pending).
start "$WORK/data"
WARM_READY=$READY_MS
stop

# 2. PENDING_WANT deliveries pending to a dead endpoint, then a restart.
start "$WORK/data-pending"
api POST app '{"name":"dead","uid":"dead"}' > /dev/null
api POST app/dead/endpoint "{\"url\":\"http://127.0.0.1:$DEAD_PORT/nobody\"}" > /dev/null
T0=$(date +%s)
PACKED=$(ingest dead "$PENDING_WANT")
INGEST_S=$(($(date +%s) - T0))
# Every message fanned out into a pending delivery (first attempts are refused at once).
for _ in $(seq 1200); do
  P=$(metric hookd_pending_deliveries)
  [ "${P:-0}" -ge "$PACKED" ] && break
  sleep 0.5
done
PENDING_BEFORE=$(metric hookd_pending_deliveries)
RSS_PENDING=$(rss_mib)
stop
STOP_PENDING_MS=$STOP_MS
DISK=$(du -sm "$WORK/data-pending" | cut -f1)
start "$WORK/data-pending"
PEND_READY=$READY_MS PEND_LISTEN=$LISTEN_MS PEND_OWN=$OWN_MS
PENDING_AFTER=$(metric hookd_pending_deliveries)
sleep 3
RSS_PENDING_RESTART=$(rss_mib)
stop

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)
{
  echo "Machine: $(nproc) cores ($CPU), kernel $(uname -r), $(date -u +%F); load average $LOAD_START at the start, $LOAD_END at the end (the cores are shared with other work: times are upper bounds). Release build, \`sync\` durability, 2 shards, 1 KiB payloads, warm page cache."
  echo
  echo "| measure | value |"
  echo "|---|---|"
  echo "| cold start, fresh data directory: exec to READY=1 | $COLD_READY ms (to \`listening on\`: $COLD_LISTEN ms; hookd's own count, config to listening: $COLD_OWN ms) |"
  echo "| RSS idle (one app, no traffic) | $RSS_IDLE MiB |"
  echo "| RSS after $ACKED messages (no endpoint), 2 s after the last | $RSS_AFTER MiB (peak $HWM_AFTER MiB) |"
  echo "| restart with those $ACKED messages: exec to READY=1 | $WARM_READY ms |"
  echo "| $PACKED messages to a dead endpoint: ingest time | $INGEST_S s; $PENDING_BEFORE deliveries pending, RSS $RSS_PENDING MiB, data $DISK MiB |"
  echo "| SIGTERM to exit with them pending | $STOP_PENDING_MS ms |"
  echo "| restart with $PENDING_AFTER deliveries pending: exec to READY=1 | $PEND_READY ms (to \`listening on\`: $PEND_LISTEN ms; hookd's own count: $PEND_OWN ms) |"
  echo "| RSS 3 s after that restart | $RSS_PENDING_RESTART MiB |"
} | tee "$WORK/table.md"
mkdir -p benches/results
cp "$WORK/table.md" benches/results/startup.md
