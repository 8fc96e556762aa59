"""Verifies a delivery's migration signatures the way receivers written for other senders do.

    python3 legacy_verify.py stripe SECRET BODY_FILE STRIPE_SIGNATURE
    python3 legacy_verify.py hmac SECRET BODY_FILE SIGNATURE ENCODING PREFIX

`stripe` uses Stripe's own library (`stripe` on PyPI, pinned in requirements.txt):
`stripe.Webhook.construct_event`, which checks the `t=...,v1=...` header and its timestamp.
`hmac` recomputes a generic HMAC-SHA256 of the body with the standard library and compares it
in constant time. Prints "<scheme>: verified" and exits 0, or exits 1.
"""

import base64
import hashlib
import hmac
import sys

scheme, secret, body_file = sys.argv[1:4]
body = open(body_file, "rb").read()
if scheme == "stripe":
    import stripe

    try:
        stripe.Webhook.construct_event(body.decode("utf-8"), sys.argv[4], secret)
    except stripe.SignatureVerificationError as e:
        print(f"stripe: {e}")
        sys.exit(1)
elif scheme == "hmac":
    signature, encoding, prefix = sys.argv[4:7]
    tag = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    text = base64.b64encode(tag).decode() if encoding == "base64" else tag.hex()
    if not hmac.compare_digest(prefix + text, signature):
        print(f"hmac: {signature!r} is not {prefix + text!r}")
        sys.exit(1)
else:
    sys.exit(f"unknown scheme {scheme}")
print(f"{scheme}: verified")
