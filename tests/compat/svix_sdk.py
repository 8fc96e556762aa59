"""Drives hookd through the official `svix` Python SDK, unchanged.

Usage: python3 svix_sdk.py SERVER_URL ADMIN_TOKEN
Exits non-zero (with a traceback) on the first thing that does not work.
"""

import datetime
import http.server
import json
import sys
import threading
import time

from svix.api import (
    AppPortalAccessIn,
    ApplicationIn,
    ApplicationListOptions,
    ApplicationPatch,
    ApplicationTokenExpireIn,
    EndpointGetStatsOptions,
    EndpointHeadersIn,
    EndpointHeadersPatchIn,
    EndpointIn,
    EndpointPatch,
    EndpointSecretRotateIn,
    EventExampleIn,
    EventTypeIn,
    EventTypePatch,
    MessageGetOptions,
    MessageIn,
    MessageListOptions,
    RecoverIn,
    ReplayIn,
    Svix,
    SvixOptions,
)
from svix.exceptions import HttpError
from svix.webhooks import Webhook

server_url, token = sys.argv[1], sys.argv[2]
svix = Svix(token, SvixOptions(server_url=server_url))

app = svix.application.create(ApplicationIn(name="Compat app", uid="compat-app"))
assert app.id.startswith("app_"), app.id
assert svix.application.get("compat-app").id == app.id

et = svix.event_type.create(EventTypeIn(name="invoice.paid", description="An invoice was paid"))
assert et.name == "invoice.paid"

ep = svix.endpoint.create(
    app.id,
    EndpointIn(url="https://example.com/webhook", event_types=["invoice.paid"], description="compat"),
)
assert ep.id.startswith("ep_"), ep.id
assert ep.event_types == ["invoice.paid"], ep.event_types
secret = svix.endpoint.get_secret(app.id, ep.id)
assert secret.key.startswith("whsec_"), secret.key

msg = svix.message.create(
    app.id,
    MessageIn(event_type="invoice.paid", event_id="inv-1", payload={"invoice": 42, "paid": True}),
)
assert msg.id.startswith("msg_"), msg.id
# SDK v2 asks for the payload explicitly; without with_content it gets {} (as from Svix).
got = svix.message.get(app.id, msg.id, MessageGetOptions(with_content=True))
assert got.payload == {"invoice": 42, "paid": True}, got.payload
assert svix.message.get(app.id, "inv-1").payload == {}
assert got.event_type == "invoice.paid"
listed = svix.message.list(app.id)
assert [m.id for m in listed.data] == [msg.id], listed
apps = svix.application.list()
assert any(a.id == app.id for a in apps.data)
eps = svix.endpoint.list(app.id)
assert [e.id for e in eps.data] == [ep.id]

# --- Every other route family, with deliveries to a receiver here that verifies them with
# the SDK's own Webhook class. ---

received = []
verifier = {}


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"])).decode()
        try:
            verifier["wh"].verify(body, dict(self.headers.items()))
            received.append(json.loads(body))
            self.send_response(200)
        except Exception:  # noqa: BLE001 - any failure to verify is a 400
            self.send_response(400)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
threading.Thread(target=server.serve_forever, daemon=True).start()
receiver_url = f"http://127.0.0.1:{server.server_address[1]}/hook"


def eventually(what, check):
    deadline = time.time() + 20
    while True:
        value = check()
        if value:
            return value
        assert time.time() < deadline, f"never: {what}"
        time.sleep(0.05)


svix.health.get()

# applications: patch, upsert, delete, paging both ways
assert svix.application.patch(app.id, ApplicationPatch(name="Compat 2")).name == "Compat 2"
for i in range(3):
    svix.application.create(ApplicationIn(name=f"extra {i}", uid=f"py-extra-{i}"))
page1 = svix.application.list(ApplicationListOptions(limit=2))
assert len(page1.data) == 2 and not page1.done
page2 = svix.application.list(ApplicationListOptions(limit=2, iterator=page1.iterator))
assert not {a.id for a in page1.data} & {a.id for a in page2.data}
back = svix.application.list(ApplicationListOptions(limit=2, iterator=page2.prev_iterator))
assert [a.id for a in back.data] == [a.id for a in page1.data]
upserted = svix.application.upsert("py-upserted", ApplicationIn(name="upserted"))
assert svix.application.get("py-upserted").id == upserted.id
svix.application.delete("py-extra-0")

# event types: patch, list, archive
svix.event_type.create(EventTypeIn(name="invoice.voided", description="voided"))
assert svix.event_type.patch("invoice.voided", EventTypePatch(description="void")).description == "void"
assert sorted(t.name for t in svix.event_type.list().data) == ["invoice.paid", "invoice.voided"]
svix.event_type.delete("invoice.voided")
assert svix.event_type.get("invoice.voided").archived

# endpoints: one that receives, headers, patch
rx = svix.endpoint.create(app.id, EndpointIn(url=receiver_url, uid="py-rx", event_types=["invoice.paid"]))
verifier["wh"] = Webhook(svix.endpoint.get_secret(app.id, rx.id).key)
assert svix.endpoint.patch(app.id, rx.id, EndpointPatch(description="patched")).description == "patched"
svix.endpoint.set_headers(app.id, rx.id, EndpointHeadersIn(headers={"X-Tenant": "acme"}))
svix.endpoint.patch_headers(app.id, rx.id, EndpointHeadersPatchIn(headers={"X-Region": "eu"}))
assert svix.endpoint.get_headers(app.id, rx.id).headers == {"X-Tenant": "acme", "X-Region": "eu"}

# messages: filtered list with paging, deliveries verified by the receiver
sent = [
    svix.message.create(app.id, MessageIn(event_type="invoice.paid", payload={"n": n}))
    for n in range(3)
]
paid = svix.message.list(app.id, MessageListOptions(event_types=["invoice.paid"], limit=2))
assert [m.id for m in paid.data] == [sent[2].id, sent[1].id], paid
rest = svix.message.list(app.id, MessageListOptions(event_types=["invoice.paid"], iterator=paid.iterator))
assert [m.id for m in rest.data] == [sent[0].id, msg.id], rest
eventually("three verified deliveries", lambda: len(received) >= 3)
assert sorted(p["n"] for p in received) == [0, 1, 2]

# attempts: by message, by endpoint, one, attempted messages and destinations, expunge, resend
# (The first endpoint, at example.com, is sent these too; its attempts fail here, offline.)
attempt = eventually(
    "an attempt at the receiver",
    lambda: next(
        (a for a in svix.message_attempt.list_by_msg(app.id, sent[0].id).data if a.endpoint_id == rx.id),
        None,
    ),
)
assert attempt.response_status_code == 200
assert svix.message_attempt.get(app.id, sent[0].id, attempt.id).response == "ok"
eventually("three attempts", lambda: len(svix.message_attempt.list_by_endpoint(app.id, rx.id).data) == 3)
attempted = svix.message_attempt.list_attempted_messages(app.id, rx.id)
assert [m.id for m in attempted.data] == [m.id for m in reversed(sent)]
dests = svix.message_attempt.list_attempted_destinations(app.id, sent[0].id)
assert rx.id in [d.id for d in dests.data]
svix.message_attempt.expunge_content(app.id, sent[0].id, attempt.id)
assert svix.message_attempt.get(app.id, sent[0].id, attempt.id).response == "EXPUNGED"
svix.message_attempt.resend(app.id, sent[1].id, rx.id)
eventually("the resend", lambda: len(received) >= 4)

# stats, recover, replay-missing, send-example, rotation
since = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
eventually(
    "three successes in the stats",
    lambda: svix.endpoint.get_stats(app.id, rx.id, EndpointGetStatsOptions(since=since)).success == 3,
)
assert svix.endpoint.recover(app.id, rx.id, RecoverIn(since=since)).id
assert svix.endpoint.replay_missing(app.id, rx.id, ReplayIn(since=since)).id
# The first message was created before this endpoint: replay-missing sends it now.
eventually("the replayed message", lambda: {"invoice": 42, "paid": True} in received)
ping = svix.endpoint.send_example(app.id, rx.id, EventExampleIn(event_type="svix.ping"))
assert ping.payload == {"success": True}
eventually("the example", lambda: {"success": True} in received)
old_key = svix.endpoint.get_secret(app.id, rx.id).key
svix.endpoint.rotate_secret(app.id, rx.id, EndpointSecretRotateIn())
assert svix.endpoint.get_secret(app.id, rx.id).key != old_key
# a message's payload expunged: shown as expired from then on
svix.message.expunge_content(app.id, sent[2].id)
expunged = svix.message.get(app.id, sent[2].id, MessageGetOptions(with_content=True))
assert expunged.payload == {"expired": True}, expunged
svix.endpoint.delete(app.id, rx.id)

# The app portal: a token for one app, used through the SDK itself, then logged out.
access = svix.authentication.app_portal_access(app.id, AppPortalAccessIn(expiry=3600, session_id="py"))
assert "/portal#token=" + access.token in access.url and access.token.startswith("hkp_"), access
portal = Svix(access.token, SvixOptions(server_url=server_url))
assert [e.id for e in portal.endpoint.list(app.id).data] == [e.id for e in svix.endpoint.list(app.id).data]
try:
    portal.application.list()
    raise AssertionError("a portal token listed every application")
except HttpError as e:
    assert e.status_code == 403, e
portal.authentication.logout()
try:
    portal.endpoint.list(app.id)
    raise AssertionError("a logged-out portal token still works")
except HttpError as e:
    assert e.status_code == 401, e
second = svix.authentication.app_portal_access(app.id, AppPortalAccessIn(read_only=True, session_id="py"))
svix.authentication.expire_all(app.id, ApplicationTokenExpireIn(session_ids=["py"]))
try:
    Svix(second.token, SvixOptions(server_url=server_url)).endpoint.list(app.id)
    raise AssertionError("expire-all left a token working")
except HttpError as e:
    assert e.status_code == 401, e

server.shutdown()
print("svix SDK compatibility: ok")
