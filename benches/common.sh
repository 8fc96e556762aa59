# Shared by the benchmark scripts (sourced, not run): tools, the release build, a work
# directory cleaned up on exit, the bench token, and the wrk POST script.
# shellcheck shell=bash disable=SC2034 # CONNS and THREADS are read by the scripts that source this.
CONNS=64
THREADS=2

# result_path NAME: where a benchmark run with $CONNS connections writes its table:
# benches/results/NAME.md, or NAME-c<CONNS>.md when CONNS is not the default 64.
result_path() {
  if [ "$CONNS" = 64 ]; then echo "benches/results/$1.md"; else echo "benches/results/$1-c$CONNS.md"; fi
}

need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }
need wrk wrk
need nginx nginx-light

# HOOKD_BIN benchmarks another build (e.g. target/dist/hookd, the shipped profile) instead.
if [ -n "${HOOKD_BIN:-}" ]; then
  BIN=$HOOKD_BIN
else
  cargo build --release -q -p hookd
  BIN=target/release/hookd
fi
WORK=$(mktemp -d /var/tmp/hookd-bench.XXXXXX)
cleanup() {
  [ -n "${HOOKD_PID:-}" ] && kill "$HOOKD_PID" 2>/dev/null && wait "$HOOKD_PID" 2>/dev/null
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

TOKEN=hkd_bench_token
SHA=$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)

# wrk POSTs a message with a 1 KiB payload, authenticated, and ends its report with one line of
# latency percentiles in microseconds (p99.9 and max too, which --latency does not print).
PAYLOAD=$(python3 -c 'import json; print(json.dumps({"eventType":"bench.event","payload":{"data":"x"*1000}}))')
cat > "$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$PAYLOAD'
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "Bearer $TOKEN"
done = function(summary, latency, requests)
  io.write(string.format("latency percentiles (us): p50 %d p90 %d p99 %d p99.9 %d max %d\n",
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
LUA

# write_config DATA_DIR [EXTRA_DELIVERY_TOML] [EXTRA_STORAGE_TOML]: the bench config in
# $WORK/hookd.toml: hookd on $HOOKD_PORT, `sync` durability (or $DURABILITY), the bench token.
write_config() {
  cat > "$WORK/hookd.toml" <<TOML
[server]
listen = "127.0.0.1:$HOOKD_PORT"
[storage]
path = "$1"
durability = "${DURABILITY:-sync}"
${3:-}
[delivery]
${2:-}
[log]
level = "warn"
[[auth.tokens]]
name = "bench"
sha256 = "$SHA"
scopes = ["admin"]
TOML
}

# start_nginx: nginx on $NGINX_PORT, one worker per core, answering `return 200` (and its
# request count at /status).
start_nginx() {
  cat > "$WORK/nginx.conf" <<NGINX
worker_processes $(nproc);
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_buffer_size 64k;
  server {
    listen 127.0.0.1:$NGINX_PORT reuseport;
    location = /status { stub_status; }
    location / { return 200; }
  }
}
NGINX
  nginx -c "$WORK/nginx.conf"
}

# start_hookd DATA_DIR [EXTRA_DELIVERY_TOML] [EXTRA_STORAGE_TOML]: hookd with the bench
# config; returns once it listens.
start_hookd() {
  write_config "$@"
  # Emptied here, not only by the redirect of the background job, which may come after the
  # first check below and let it see the `listening on` of the previous start.
  : > "$WORK/hookd.out"
  "$BIN" serve --config "$WORK/hookd.toml" > "$WORK/hookd.out" 2>&1 &
  HOOKD_PID=$!
  # Up to 30 s: starting takes milliseconds, but a few fsyncs on a disk shared with other work
  # can take seconds.
  for _ in $(seq 300); do grep -q "listening on" "$WORK/hookd.out" && break; sleep 0.1; done
}

# stop_hookd: SIGTERM to the running hookd, and wait for it.
stop_hookd() {
  kill "$HOOKD_PID"
  wait "$HOOKD_PID" 2>/dev/null || true
  HOOKD_PID=
}

# api METHOD PATH [JSON]: one authenticated call to the running hookd.
api() { curl -sf -X "$1" "http://127.0.0.1:$HOOKD_PORT/api/v1/$2" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' ${3:+-d "$3"}; }

# in_turn ROUND A... -- B...: runs command A, then B, in odd rounds and B, then A, in even ones
# (so that neither always runs on the warmer machine); their outputs go to A_OUT and B_OUT.
in_turn() {
  local r=$1 a=()
  shift
  while [ "$1" != "--" ]; do a+=("$1"); shift; done
  shift
  if [ $((r % 2)) = 1 ]; then
    A_OUT=$("${a[@]}")
    B_OUT=$("$@")
  else
    B_OUT=$("$@")
    A_OUT=$("${a[@]}")
  fi
}

# median VALUES...: their median (the lower of the middle two for an even count).
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
