"""How fast an ordered lane drains from the index once its receiver recovers.

One ordered endpoint, N messages on one ordering key (batch ingest), a receiver (Python's
threading HTTP server) that answers 500 until 2.5 s after the last message was stored, then
200: the head fails and waits for retries, the rest are parked in the index behind it. Prints
how long the N deliveries took after the receiver recovered, whether their first successes came
in order, and how many requests the receiver saw.

    cargo build --release -p hookd && python3 benches/fifo_drain.py [N]     (default 2000)

Uses ports 18300 (hookd) and 18301 (the receiver) and a temporary data directory.
"""
import hashlib, http.client, json, os, subprocess, sys, tempfile, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "hookd")
N = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
WORK = tempfile.mkdtemp(prefix="hookd-drain.")
failing = True
seen = []
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        i = json.loads(body)["i"]
        ok = not failing
        seen.append((time.time(), i, ok))
        code = 200 if ok else 500
        self.send_response(code); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a): pass
srv = ThreadingHTTPServer(("127.0.0.1", 18301), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()
token = "hkd_drain"; sha = hashlib.sha256(token.encode()).hexdigest()
data = os.path.join(WORK, "data")
conf = os.path.join(WORK, "hookd.toml")
open(conf, "w").write(f'''[server]
listen = "127.0.0.1:18300"
[storage]
path = "{data}"
[delivery]
allow_private_networks = true
retry_schedule = ["1s", "1s", "1s", "1s", "1s"]
[log]
level = "warn"
[[auth.tokens]]
name = "a"
sha256 = "{sha}"
scopes = ["admin"]
''')
p = subprocess.Popen([BIN, "serve", "--config", conf])
time.sleep(1)
c = http.client.HTTPConnection("127.0.0.1", 18300)
h = {"authorization": f"Bearer {token}", "content-type": "application/json"}
def post(path, body, want):
    c.request("POST", "/api/v1/" + path, json.dumps(body), h); r = c.getresponse(); r.read()
    assert r.status == want, (path, r.status)
post("app", {"name": "d", "uid": "d"}, 201)
post("app/d/endpoint", {"url": "http://127.0.0.1:18301/", "ordering": "fifo"}, 201)
for s in range(0, N, 100):
    post("app/d/msg/batch", [{"eventType": "e", "orderingKey": "one", "payload": {"i": i}} for i in range(s, min(s + 100, N))], 202)
time.sleep(2.5)
failing = False
t0 = time.time()
while len({i for _, i, ok in seen if ok}) < N:
    time.sleep(0.01)
t1 = time.time()
oks = [i for _, i, ok in seen if ok]
firsts = []
for i in oks:
    if i not in firsts: firsts.append(i)
print(f"{N} messages on one key drained in {t1 - t0:.2f} s after the receiver recovered: {N / (t1 - t0):.0f}/s; in order: {firsts == sorted(firsts)}; requests {len(seen)}")
p.terminate(); p.wait()
subprocess.run(["rm", "-rf", WORK])
