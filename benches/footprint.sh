#!/usr/bin/env bash
# Footprint of an idle hookd, as issue 17 measures it: the stripped size of the binary that is
# shipped (`cargo build --profile dist`), and, with one app and no traffic, its RSS and the CPU
# it uses over IDLE_SECS seconds (utime + stime from /proc/<pid>/stat, in % of one core).
#
#   benches/footprint.sh [IDLE_SECS]      (default 60)
#
# Writes benches/results/footprint.md.
set -euo pipefail
cd "$(dirname "$0")/.."
IDLE_SECS=${1:-60}
# shellcheck source=benches/common.sh
source benches/common.sh
HOOKD_PORT=18201

cargo build --profile dist -q -p hookd
DIST=target/dist/hookd
SIZE=$(stat -c %s "$DIST")

BIN=$DIST start_hookd "$WORK/data"
api POST app '{"name":"idle","uid":"idle"}' > /dev/null
# Past start-up: the first segment is open, the first retention pass has run.
sleep 5
TCK=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$HOOKD_PID/stat"; }
T0=$(ticks)
sleep "$IDLE_SECS"
T1=$(ticks)
RSS=$(awk '/VmRSS/ {print $2}' "/proc/$HOOKD_PID/status")
ANON=$(awk '/RssAnon/ {print $2}' "/proc/$HOOKD_PID/status")
THREADS=$(ls "/proc/$HOOKD_PID/task" | wc -l)
stop_hookd
CPU_PCT=$(python3 -c "print(f'{100 * ($T1 - $T0) / $TCK / $IDLE_SECS:.2f}')")

CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)
{
  echo "Machine: $(nproc) cores ($CPU), kernel $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg) at the end; \`cargo build --profile dist\` (release, no debug info, stripped); hookd with default settings, one app, no traffic, $THREADS threads."
  echo
  echo "| measure | value | issue 17's bar |"
  echo "|---|---|---|"
  echo "| release binary, stripped | $(python3 -c "print(f'{$SIZE / 1048576:.1f}')") MiB | <= 15 MiB |"
  echo "| RSS idle (anonymous: $((ANON / 1024)) MiB) | $((RSS / 1024)) MiB | <= 32 MiB |"
  echo "| CPU idle, over $IDLE_SECS s | $CPU_PCT% of one core ($((T1 - T0)) ticks of 1/$TCK s) | <= 0.5% |"
} | tee "$WORK/table.md"
mkdir -p benches/results
cp "$WORK/table.md" benches/results/footprint.md
