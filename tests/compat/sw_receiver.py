"""A webhook receiver that verifies every delivery with the `standardwebhooks` reference
library (PyPI). Prints its port, then one line per request: `ok <webhook-id>` or
`bad <reason>`. Exits after COUNT requests.

Usage: python3 sw_receiver.py SECRET COUNT
"""

import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from standardwebhooks.webhooks import Webhook

secret, count = sys.argv[1], int(sys.argv[2])
hook = Webhook(secret)
seen = 0


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        global seen
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            hook.verify(body, headers)
            line = f"ok {headers['webhook-id']}"
        except Exception as e:  # the line says what failed
            line = f"bad {type(e).__name__}: {e}"
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()
        print(line, flush=True)
        seen += 1

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
while seen < count:
    server.handle_request()
