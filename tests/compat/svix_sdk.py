"""Drives hookd through the official `svix` Python SDK, unchanged.

Usage: python3 svix_sdk.py SERVER_URL ADMIN_TOKEN
Exits non-zero (with a traceback) on the first thing that does not work.
"""

import sys

from svix.api import (
    ApplicationIn,
    EndpointIn,
    EventTypeIn,
    MessageGetOptions,
    MessageIn,
    Svix,
    SvixOptions,
)

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
print("svix SDK compatibility: ok")
