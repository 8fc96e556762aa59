# Shared by the benchmark scripts (sourced, not run): tools, the release build, a work
# directory cleaned up on exit, the bench token, and the wrk POST script.
CONNS=64
THREADS=2

need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }
need wrk wrk
need nginx nginx-light

cargo build --release -q -p hookd
BIN=target/release/hookd
WORK=$(mktemp -d /var/tmp/hookd-bench.XXXXXX)
cleanup() {
  [ -n "${HOOKD_PID:-}" ] && kill "$HOOKD_PID" 2>/dev/null && wait "$HOOKD_PID" 2>/dev/null
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

TOKEN=hkd_bench_token
SHA=$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)

# wrk POSTs a message with a 1 KiB payload, authenticated.
PAYLOAD=$(python3 -c 'import json; print(json.dumps({"eventType":"bench.event","payload":{"data":"x"*1000}}))')
cat > "$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$PAYLOAD'
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "Bearer $TOKEN"
LUA
