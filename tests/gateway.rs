//! Inbound sources, endpoint policies and the audit API against the real binary over loopback.
//!
//! Each verification scheme is driven with requests signed here (HMACs computed by the test,
//! not by hookd): valid, tampered, expired (where the scheme has a timestamp) and replayed.
//! "Nothing stored" is checked by listing the app's messages, which reads the log itself.

#[path = "support/hookd.rs"]
mod hookd;
#[path = "support/receiver.rs"]
mod receiver;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use hmac::{Hmac, Mac};
use hookd::{Hookd, Reply, ADMIN, INGEST, READER};
use receiver::Receiver;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const SW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const GH_SECRET: &str = "It's a Secret to Everybody";
const STRIPE_SECRET: &str = "whsec_test_secret";
const MAC_SECRET: &str = "Jefe";

fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A hookd with app `shop` and `sources` (TOML) configured.
fn start(sources: &str) -> Hookd {
    let h = Hookd::start(sources);
    let r = h.admin(
        "POST",
        "/api/v1/app",
        Some(r#"{"name":"Shop","uid":"shop"}"#),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    h
}

fn ingest(h: &Hookd, source: &str, body: &str, headers: &[(&str, &str)]) -> Reply {
    h.call_with(
        "POST",
        &format!("/ingest/{source}"),
        None,
        Some(body),
        headers,
    )
}

/// The messages stored in `shop`, newest first.
fn messages(h: &Hookd) -> Vec<Value> {
    let r = h.admin("GET", "/api/v1/app/shop/msg?limit=250", None);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["data"].as_array().unwrap().clone()
}

#[track_caller]
fn assert_refused(r: &Reply, detail_has: &str) {
    assert_eq!(r.status, 401, "{}", r.body);
    let j = r.json();
    assert_eq!(j["code"], "authentication_failed", "{j}");
    assert!(
        j["detail"].as_str().unwrap().contains(detail_has),
        "{detail_has:?} not in {j}"
    );
}

/// A stored message, read back: the body must be in the answer byte for byte (the API copies
/// the stored payload into its JSON without re-encoding it).
#[track_caller]
fn assert_stored_verbatim(h: &Hookd, msg_id: &str, body: &str, event_type: &str) {
    let r = h.admin("GET", &format!("/api/v1/app/shop/msg/{msg_id}"), None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains(&format!("\"payload\":{body}")),
        "payload not kept byte for byte: {}",
        r.body
    );
    assert_eq!(r.json()["eventType"], event_type);
}

#[test]
fn standard_webhooks_source_valid_tampered_expired_replayed() {
    let receiver = Receiver::start();
    let h = start(&format!(
        r#"
[delivery]
allow_private_networks = true
[[sources]]
name = "partner"
app = "shop"
scheme = "standard-webhooks"
secret = "{SW_SECRET}"
"#
    ));
    // Fan-out: an endpoint of the app gets what the source sent.
    let ep = json!({ "url": receiver.url("/hook") }).to_string();
    assert_eq!(
        h.admin("POST", "/api/v1/app/shop/endpoint", Some(&ep))
            .status,
        201
    );
    let key = B64
        .decode(SW_SECRET.strip_prefix("whsec_").unwrap())
        .unwrap();
    let sign = |id: &str, ts: u64, body: &str| {
        let mac = hmac(&key, &[format!("{id}.{ts}.").as_bytes(), body.as_bytes()]);
        format!("v1,{}", B64.encode(mac))
    };
    // Odd spacing on purpose: a re-encoded payload would lose it.
    let body = r#"{"type":"invoice.paid",  "data": {"n": 1} }"#;
    let now = now_secs();
    let ts = now.to_string();
    let sig = sign("msg_1", now, body);
    let headers = [
        ("webhook-id", "msg_1"),
        ("webhook-timestamp", ts.as_str()),
        ("webhook-signature", sig.as_str()),
    ];
    // Valid: stored (202) in the source's app, the body byte for byte, then delivered.
    let r = ingest(&h, "partner", body, &headers);
    assert_eq!(r.status, 202, "{}", r.body);
    let first = r.json();
    let msg_id = first["id"].as_str().unwrap().to_owned();
    assert_eq!(first["eventType"], "invoice.paid");
    assert_stored_verbatim(&h, &msg_id, body, "invoice.paid");
    let got = receiver.wait_for_requests(1, Duration::from_secs(20));
    assert_eq!(got[0].body, body.as_bytes());
    assert_eq!(got[0].header("webhook-id"), Some(msg_id.as_str()));
    // Tampered body, id or timestamp: 401, nothing stored.
    let tampered = body.replace("\"n\": 1", "\"n\": 2");
    assert_refused(
        &ingest(&h, "partner", &tampered, &headers),
        "no signature matches",
    );
    let other_id = [("webhook-id", "msg_2"), headers[1], headers[2]];
    assert_refused(
        &ingest(&h, "partner", body, &other_id),
        "no signature matches",
    );
    // Expired: correctly signed, but 10 minutes old, or 10 minutes ahead (tolerance 5 min).
    for ts in [now - 600, now + 600] {
        let t = ts.to_string();
        let s = sign("msg_3", ts, body);
        let old = [
            ("webhook-id", "msg_3"),
            ("webhook-timestamp", t.as_str()),
            ("webhook-signature", s.as_str()),
        ];
        assert_refused(&ingest(&h, "partner", body, &old), "timestamp");
    }
    assert_refused(
        &ingest(&h, "partner", body, &headers[..2]),
        "webhook-signature",
    );
    assert_eq!(messages(&h).len(), 1, "only the valid request was stored");
    // Replayed: the same request, and a sender's retry (same id, new timestamp and signature,
    // svix-* headers): answered 200 with the first answer, not stored again.
    let r = ingest(&h, "partner", body, &headers);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), first);
    let later = (now + 1).to_string();
    let resigned = sign("msg_1", now + 1, body);
    let retry = [
        ("svix-id", "msg_1"),
        ("svix-timestamp", later.as_str()),
        ("svix-signature", resigned.as_str()),
    ];
    let r = ingest(&h, "partner", body, &retry);
    assert_eq!(
        (r.status, r.json()["id"].as_str()),
        (200, Some(msg_id.as_str()))
    );
    assert_eq!(messages(&h).len(), 1);
    // A new delivery id is a new message.
    let s = sign("msg_4", now, body);
    let new = [
        ("webhook-id", "msg_4"),
        ("webhook-timestamp", ts.as_str()),
        ("webhook-signature", s.as_str()),
    ];
    assert_eq!(ingest(&h, "partner", body, &new).status, 202);
    assert_eq!(messages(&h).len(), 2);
}

#[test]
fn github_source_valid_tampered_replayed() {
    let h = start(&format!(
        r#"
[[sources]]
name = "github"
app = "shop"
scheme = "github"
secret = "{GH_SECRET}"
"#
    ));
    let sign = |body: &str| {
        format!(
            "sha256={}",
            hex::encode(hmac(GH_SECRET.as_bytes(), &[body.as_bytes()]))
        )
    };
    let body = r#"{"zen":"Design for failure.","hook_id":1}"#;
    let sig = sign(body);
    let headers = [
        ("x-hub-signature-256", sig.as_str()),
        ("x-github-event", "ping"),
        ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
    ];
    let r = ingest(&h, "github", body, &headers);
    assert_eq!(r.status, 202, "{}", r.body);
    let first = r.json();
    assert_stored_verbatim(&h, first["id"].as_str().unwrap(), body, "ping");
    // Tampered: a changed body, or a signature for another secret.
    assert_refused(
        &ingest(&h, "github", &body.replace("failure", "success"), &headers),
        "no signature matches",
    );
    let foreign = format!(
        "sha256={}",
        hex::encode(hmac(b"another secret", &[body.as_bytes()]))
    );
    let forged = [
        ("x-hub-signature-256", foreign.as_str()),
        headers[1],
        headers[2],
    ];
    assert_refused(&ingest(&h, "github", body, &forged), "no signature matches");
    assert_refused(
        &ingest(&h, "github", body, &headers[1..]),
        "x-hub-signature-256",
    );
    // Expired does not apply: GitHub signs no timestamp (see src/inbound.rs). Replayed:
    // the same delivery id is answered with the first answer and not stored again.
    let r = ingest(&h, "github", body, &headers);
    assert_eq!((r.status, r.json()), (200, first));
    assert_eq!(messages(&h).len(), 1);
    // A verified request without the event type header: 422, nothing stored.
    let r = ingest(&h, "github", body, &[headers[0], headers[2]]);
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(
        r.json()["detail"][0]["loc"],
        json!(["header", "x-github-event"])
    );
    assert_eq!(messages(&h).len(), 1);
}

#[test]
fn stripe_source_valid_tampered_expired_replayed() {
    let h = start(&format!(
        r#"
[[sources]]
name = "stripe"
app = "shop"
scheme = "stripe"
secret = "{STRIPE_SECRET}"
"#
    ));
    let header = |t: u64, body: &str| {
        let v1 = hex::encode(hmac(
            STRIPE_SECRET.as_bytes(),
            &[format!("{t}.").as_bytes(), body.as_bytes()],
        ));
        format!("t={t},v1={v1},v0=00")
    };
    let body = r#"{"id":"evt_1","object":"event","type":"payment_intent.succeeded"}"#;
    let now = now_secs();
    let sig = header(now, body);
    let r = ingest(&h, "stripe", body, &[("stripe-signature", &sig)]);
    assert_eq!(r.status, 202, "{}", r.body);
    let first = r.json();
    assert_stored_verbatim(
        &h,
        first["id"].as_str().unwrap(),
        body,
        "payment_intent.succeeded",
    );
    assert_refused(
        &ingest(
            &h,
            "stripe",
            &body.replace("succeeded", "failed"),
            &[("stripe-signature", &sig)],
        ),
        "no signature matches",
    );
    // Expired: signed 10 minutes ago (tolerance 5 min), for another event id.
    let other = body.replace("evt_1", "evt_2");
    let old = header(now - 600, &other);
    assert_refused(
        &ingest(&h, "stripe", &other, &[("stripe-signature", &old)]),
        "timestamp",
    );
    // Replayed: Stripe's retry of evt_1 is signed anew; it is deduplicated by the event id.
    let retry = header(now + 1, body);
    let r = ingest(&h, "stripe", body, &[("stripe-signature", &retry)]);
    assert_eq!((r.status, r.json()), (200, first));
    assert_eq!(messages(&h).len(), 1);
}

#[test]
fn generic_hmac_source_valid_tampered_replayed_and_the_window_ends() {
    let h = start(&format!(
        r#"
[[sources]]
name = "legacy"
app = "shop"
scheme = "hmac-sha256"
secret = "{MAC_SECRET}"
signature_header = "X-Signature"
signature_encoding = "base64"
signature_prefix = "sha256="
event_type_header = "X-Event"
delivery_id_header = "X-Delivery"
tolerance = "1s"
"#
    ));
    let sign = |body: &str| {
        format!(
            "sha256={}",
            B64.encode(hmac(MAC_SECRET.as_bytes(), &[body.as_bytes()]))
        )
    };
    let body = r#"{"order": 7}"#;
    let sig = sign(body);
    let headers = [
        ("x-signature", sig.as_str()),
        ("x-event", "order.created"),
        ("x-delivery", "d-1"),
    ];
    let r = ingest(&h, "legacy", body, &headers);
    let answered = Instant::now();
    assert_eq!(r.status, 202, "{}", r.body);
    let first = r.json();
    assert_stored_verbatim(&h, first["id"].as_str().unwrap(), body, "order.created");
    assert_refused(
        &ingest(&h, "legacy", r#"{"order": 8}"#, &headers),
        "no signature matches",
    );
    // The right MAC in the wrong encoding (hex where base64 is configured), or without the
    // prefix: refused.
    let hex_sig = format!(
        "sha256={}",
        hex::encode(hmac(MAC_SECRET.as_bytes(), &[body.as_bytes()]))
    );
    let wrong = [("x-signature", hex_sig.as_str()), headers[1], headers[2]];
    assert_refused(&ingest(&h, "legacy", body, &wrong), "no signature matches");
    let bare = [
        ("x-signature", &sig["sha256=".len()..]),
        headers[1],
        headers[2],
    ];
    assert_refused(&ingest(&h, "legacy", body, &bare), "x-signature");
    let r = ingest(&h, "legacy", body, &headers);
    assert_eq!((r.status, r.json()), (200, first.clone()));
    assert_eq!(messages(&h).len(), 1);
    // No timestamp is signed, so "expired" is the end of the replay window: twice the
    // tolerance after the first answer, the same delivery is stored again. The window was set
    // before that answer left, so once 2 s have passed since it arrived it has ended.
    let window = Duration::from_secs(2);
    std::thread::sleep(window.saturating_sub(answered.elapsed()) + Duration::from_millis(50));
    let r = ingest(&h, "legacy", body, &headers);
    assert_eq!(r.status, 202, "{}", r.body);
    assert_ne!(r.json()["id"], first["id"]);
    assert_eq!(messages(&h).len(), 2);
}

#[test]
fn basic_and_token_sources_valid_wrong_replayed() {
    let h = start(&format!(
        r#"
[[sources]]
name = "scanner"
app = "shop"
scheme = "basic"
username = "Aladdin"
password_sha256 = "{}"
event_type = "scan.finished"
delivery_id_pointer = "/scan/id"

[[sources]]
name = "cron"
app = "shop"
scheme = "token"
token_sha256 = "{}"
event_type_pointer = "/kind"

[[sources]]
name = "cron-header"
app = "shop"
scheme = "token"
token_header = "X-Cron-Token"
token_sha256 = "{}"
event_type = "cron.tick"
delivery_id_header = "X-Run"
"#,
        sha256_hex("open sesame"),
        sha256_hex("t0ken"),
        sha256_hex("t0ken"),
    ));
    // Basic auth (RFC 7617's example credentials).
    let body = r#"{"scan":{"id":"s-1","ok":true}}"#;
    let good = [("authorization", "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")];
    let r = ingest(&h, "scanner", body, &good);
    assert_eq!(r.status, 202, "{}", r.body);
    let first = r.json();
    assert_stored_verbatim(&h, first["id"].as_str().unwrap(), body, "scan.finished");
    let wrong = format!("Basic {}", B64.encode("Aladdin:open sesame!"));
    assert_refused(
        &ingest(&h, "scanner", body, &[("authorization", &wrong)]),
        "wrong credentials",
    );
    assert_refused(&ingest(&h, "scanner", body, &[]), "authorization");
    // The API's own tokens are no credentials here.
    let bearer = format!("Bearer {ADMIN}");
    assert_refused(
        &ingest(&h, "scanner", body, &[("authorization", &bearer)]),
        "authorization",
    );
    let r = ingest(&h, "scanner", body, &good);
    assert_eq!((r.status, r.json()), (200, first));
    // A static bearer token; the event type from a JSON pointer; no delivery id, so no
    // deduplication: the same request twice is two messages.
    let tick = r#"{"kind":"cron.tick"}"#;
    for _ in 0..2 {
        let r = ingest(&h, "cron", tick, &[("authorization", "Bearer t0ken")]);
        assert_eq!(r.status, 202, "{}", r.body);
    }
    assert_refused(
        &ingest(&h, "cron", tick, &[("authorization", "Bearer t0kem")]),
        "wrong credentials",
    );
    let r = ingest(
        &h,
        "cron",
        r#"{"kind":7}"#,
        &[("authorization", "Bearer t0ken")],
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.json()["detail"][0]["loc"], json!(["body", "kind"]));
    // A token in its own header, with a delivery id header: replays deduplicated.
    let run = [("x-cron-token", "t0ken"), ("x-run", "r-1")];
    let r = ingest(&h, "cron-header", "{}", &run);
    assert_eq!(r.status, 202, "{}", r.body);
    let again = ingest(&h, "cron-header", "{}", &run);
    assert_eq!((again.status, again.json()), (200, r.json()));
    assert_refused(
        &ingest(
            &h,
            "cron-header",
            "{}",
            &[("x-cron-token", "nope"), ("x-run", "r-2")],
        ),
        "wrong credentials",
    );
    assert_eq!(messages(&h).len(), 4);
}

#[test]
fn refused_ingest_requests_store_nothing() {
    let h = start(&format!(
        r#"
[ingest]
payload_bytes_max = "1KiB"

[[sources]]
name = "github"
app = "shop"
scheme = "github"
secret = "{GH_SECRET}"

[[sources]]
name = "orphan"
app = "no-such-app"
scheme = "token"
token_sha256 = "{}"
event_type = "x"
"#,
        sha256_hex("t0ken")
    ));
    let signed = |body: &str| {
        format!(
            "sha256={}",
            hex::encode(hmac(GH_SECRET.as_bytes(), &[body.as_bytes()]))
        )
    };
    let post = |body: &str| {
        let sig = signed(body);
        ingest(
            &h,
            "github",
            body,
            &[
                ("x-hub-signature-256", &sig),
                ("x-github-event", "push"),
                ("x-github-delivery", "d"),
            ],
        )
    };
    assert_eq!(ingest(&h, "nope", "{}", &[]).status, 404);
    let r = h.call("GET", "/ingest/github", None, None);
    assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
    let big = format!(r#"{{"b":"{}"}}"#, "x".repeat(2000));
    assert_eq!(post(&big).status, 413);
    // Verified, but not one JSON object.
    assert_eq!(post("not json").status, 400);
    assert_eq!(post("[1,2]").status, 422);
    assert_eq!(post(r#"{"a":1} {"b":2}"#).status, 400);
    // Unverified requests are refused before their body is looked at.
    assert_refused(
        &ingest(&h, "github", "not json", &[]),
        "x-hub-signature-256",
    );
    // A source whose application does not exist.
    let r = ingest(&h, "orphan", "{}", &[("authorization", "Bearer t0ken")]);
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(messages(&h).is_empty());
    // The health of the server is unaffected, and a valid request still lands.
    assert_eq!(post(r#"{"ok":true}"#).status, 202);
    assert_eq!(messages(&h).len(), 1);
}

#[test]
fn sources_are_listed_for_admins_without_secrets() {
    let password_hash = sha256_hex("open sesame");
    let h = start(&format!(
        r#"
[[sources]]
name = "github"
app = "shop"
scheme = "github"
secret = "{GH_SECRET}"

[[sources]]
name = "legacy"
app = "shop"
scheme = "hmac-sha256"
secret = "{MAC_SECRET}"
signature_header = "X-Signature"
event_type = "legacy.event"

[[sources]]
name = "scanner"
app = "app_x"
scheme = "basic"
username = "Aladdin"
password_sha256 = "{password_hash}"
event_type = "scan.finished"
tolerance = "1m"
"#
    ));
    let r = h.admin("GET", "/api/v1/source", None);
    assert_eq!(r.status, 200, "{}", r.body);
    for secret in [GH_SECRET, MAC_SECRET, "Aladdin", password_hash.as_str()] {
        assert!(!r.body.contains(secret), "{secret:?} leaked: {}", r.body);
    }
    let list = r.json();
    assert_eq!(list["done"], true);
    let data = list["data"].as_array().unwrap();
    let summary: Vec<(&str, &str, &str)> = data
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap(),
                s["scheme"].as_str().unwrap(),
                s["path"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("github", "github", "/ingest/github"),
            ("legacy", "hmac-sha256", "/ingest/legacy"),
            ("scanner", "basic", "/ingest/scanner"),
        ]
    );
    assert_eq!(data[0]["eventType"], json!({"header": "x-github-event"}));
    assert_eq!(
        data[0]["deliveryId"],
        json!({"header": "x-github-delivery"})
    );
    assert_eq!(data[1]["header"], "x-signature");
    assert_eq!(data[1]["signatureEncoding"], "hex");
    assert_eq!(data[2]["app"], "app_x");
    assert_eq!(data[2]["toleranceSeconds"], 60);
    assert_eq!(
        h.call("GET", "/api/v1/source", Some(READER), None).status,
        403
    );
    assert_eq!(
        h.call("GET", "/api/v1/source", Some(INGEST), None).status,
        403
    );
    assert_eq!(h.call("GET", "/api/v1/source", None, None).status, 401);
}

/// The one policy error of a refused endpoint write: (loc, rule named in msg, type).
#[track_caller]
fn policy_error(r: &Reply) -> (Value, String) {
    assert_eq!(r.status, 422, "{}", r.body);
    let detail = r.json()["detail"].clone();
    assert_eq!(detail.as_array().unwrap().len(), 1, "{detail}");
    assert_eq!(detail[0]["type"], "policy_violation", "{detail}");
    let msg = detail[0]["msg"].as_str().unwrap();
    let rule = msg.split(':').next().unwrap().to_owned();
    (detail[0]["loc"].clone(), rule)
}

#[test]
fn endpoint_policy_rules_are_enforced_on_create_and_update() {
    let h = start(
        r#"
[endpoint_policy]
https_only = true
allowed_host_suffixes = ["example.com", ".hooks.test"]
denied_hosts = ["bad.example.com"]
endpoints_per_app_max = 2
"#,
    );
    let create = |url: &str| {
        let body = json!({ "url": url }).to_string();
        h.admin("POST", "/api/v1/app/shop/endpoint", Some(&body))
    };
    let url_loc = json!(["body", "url"]);
    // Each rule, named.
    assert_eq!(
        policy_error(&create("http://example.com/h")),
        (url_loc.clone(), "endpoint_policy.https_only".into())
    );
    assert_eq!(
        policy_error(&create("https://example.org/h")),
        (
            url_loc.clone(),
            "endpoint_policy.allowed_host_suffixes".into()
        )
    );
    assert_eq!(
        policy_error(&create("https://badexample.com/h")),
        (
            url_loc.clone(),
            "endpoint_policy.allowed_host_suffixes".into()
        ),
        "a suffix matches whole labels"
    );
    assert_eq!(
        policy_error(&create("https://hooks.test/h")),
        (
            url_loc.clone(),
            "endpoint_policy.allowed_host_suffixes".into()
        ),
        ".hooks.test allows only names under it"
    );
    assert_eq!(
        policy_error(&create("https://x.bad.example.com/h")),
        (url_loc.clone(), "endpoint_policy.denied_hosts".into())
    );
    // Within the rules: created, up to the maximum per app.
    let first = create("https://a.example.com/h");
    assert_eq!(first.status, 201, "{}", first.body);
    let first_id = first.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(create("https://in.hooks.test/h").status, 201);
    assert_eq!(
        policy_error(&create("https://example.com/third")),
        (
            json!(["body"]),
            "endpoint_policy.endpoints_per_app_max".into()
        )
    );
    // PUT that would create a third endpoint: the same rule.
    let r = h.admin(
        "PUT",
        "/api/v1/app/shop/endpoint/new-uid",
        Some(r#"{"url":"https://example.com/put"}"#),
    );
    assert_eq!(
        policy_error(&r),
        (
            json!(["body"]),
            "endpoint_policy.endpoints_per_app_max".into()
        )
    );
    // Updates are checked too (PATCH and PUT), but do not count as a new endpoint.
    let path = format!("/api/v1/app/shop/endpoint/{first_id}");
    assert_eq!(
        policy_error(&h.admin("PATCH", &path, Some(r#"{"url":"http://a.example.com/h"}"#))),
        (url_loc.clone(), "endpoint_policy.https_only".into())
    );
    assert_eq!(
        policy_error(&h.admin("PUT", &path, Some(r#"{"url":"https://bad.example.com/h"}"#))),
        (url_loc, "endpoint_policy.denied_hosts".into())
    );
    let r = h.admin("PATCH", &path, Some(r#"{"url":"https://b.example.com/h"}"#));
    assert_eq!(
        (r.status, r.json()["url"].as_str()),
        (200, Some("https://b.example.com/h"))
    );
    // The refused writes changed nothing; a freed slot can be used again.
    let list = h.admin("GET", "/api/v1/app/shop/endpoint", None).json();
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    assert_eq!(h.admin("DELETE", &path, None).status, 204);
    assert_eq!(create("https://example.com/again").status, 201);
    // Several broken rules are all named.
    let r = create("http://evil.test/h");
    assert_eq!(r.status, 422);
    let msgs: Vec<String> = r.json()["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            d["msg"]
                .as_str()
                .unwrap()
                .split(':')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        msgs,
        [
            "endpoint_policy.https_only",
            "endpoint_policy.allowed_host_suffixes",
            "endpoint_policy.endpoints_per_app_max"
        ]
    );
}

#[test]
fn every_management_write_is_audited_newest_first() {
    let ops = "hkd_second_admin_for_audit";
    let h = Hookd::start(&format!(
        "\n[[auth.tokens]]\nname = \"ops\"\nsha256 = \"{}\"\nscopes = [\"admin\"]\n",
        sha256_hex(ops)
    ));
    let mut want: Vec<(String, String, String)> = Vec::new();
    let mut expect = |token: &str, action: &str, target: &str| {
        want.push((token.into(), action.into(), target.into()));
    };
    let call = |token: &str, method: &str, path: &str, body: Option<&str>, status: u16| {
        let r = h.call(method, path, Some(token), body);
        assert_eq!(r.status, status, "{method} {path}: {}", r.body);
        if r.body.is_empty() {
            Value::Null
        } else {
            r.json()
        }
    };
    // Applications.
    let app = call(
        ADMIN,
        "POST",
        "/api/v1/app",
        Some(r#"{"name":"Shop","uid":"shop"}"#),
        201,
    );
    let app_id = app["id"].as_str().unwrap().to_owned();
    expect("admin", "application.create", &app_id);
    call(
        ops,
        "PUT",
        "/api/v1/app/shop",
        Some(r#"{"name":"Shop 2","uid":"shop"}"#),
        200,
    );
    expect("ops", "application.update", &app_id);
    call(
        ADMIN,
        "PATCH",
        "/api/v1/app/shop",
        Some(r#"{"name":"Shop 3"}"#),
        200,
    );
    expect("admin", "application.update", &app_id);
    let put_app = call(
        ADMIN,
        "PUT",
        "/api/v1/app/other",
        Some(r#"{"name":"Other"}"#),
        201,
    );
    expect(
        "admin",
        "application.create",
        put_app["id"].as_str().unwrap(),
    );
    // A message that brings its application creates it: audited too.
    call(
        ADMIN,
        "POST",
        "/api/v1/app/auto/msg",
        Some(r#"{"eventType":"a.b","payload":{},"application":{"name":"Auto"}}"#),
        202,
    );
    let auto = call(ADMIN, "GET", "/api/v1/app/auto", None, 200);
    expect("admin", "application.create", auto["id"].as_str().unwrap());
    // Event types.
    call(
        ADMIN,
        "POST",
        "/api/v1/event-type",
        Some(r#"{"name":"a.b","description":"d"}"#),
        201,
    );
    expect("admin", "event_type.create", "a.b");
    call(
        ADMIN,
        "PUT",
        "/api/v1/event-type/a.c",
        Some(r#"{"description":"d"}"#),
        201,
    );
    expect("admin", "event_type.create", "a.c");
    call(
        ADMIN,
        "PUT",
        "/api/v1/event-type/a.c",
        Some(r#"{"description":"e"}"#),
        200,
    );
    expect("admin", "event_type.update", "a.c");
    call(
        ops,
        "PATCH",
        "/api/v1/event-type/a.b",
        Some(r#"{"deprecated":true}"#),
        200,
    );
    expect("ops", "event_type.update", "a.b");
    call(ADMIN, "DELETE", "/api/v1/event-type/a.c", None, 204);
    expect("admin", "event_type.archive", "a.c");
    call(
        ADMIN,
        "DELETE",
        "/api/v1/event-type/a.c?expunge=true",
        None,
        204,
    );
    expect("admin", "event_type.expunge", "a.c");
    // Endpoints.
    let ep = call(
        ADMIN,
        "POST",
        "/api/v1/app/shop/endpoint",
        Some(r#"{"url":"https://example.com/h","uid":"main"}"#),
        201,
    );
    let ep_id = ep["id"].as_str().unwrap().to_owned();
    expect("admin", "endpoint.create", &ep_id);
    call(
        ADMIN,
        "PUT",
        "/api/v1/app/shop/endpoint/main",
        Some(r#"{"url":"https://example.com/h2","uid":"main"}"#),
        200,
    );
    expect("admin", "endpoint.update", &ep_id);
    let ep2 = call(
        ADMIN,
        "PUT",
        "/api/v1/app/shop/endpoint/second",
        Some(r#"{"url":"https://example.com/2"}"#),
        201,
    );
    let ep2_id = ep2["id"].as_str().unwrap().to_owned();
    expect("admin", "endpoint.create", &ep2_id);
    call(
        ADMIN,
        "PATCH",
        "/api/v1/app/shop/endpoint/main",
        Some(r#"{"description":"x"}"#),
        200,
    );
    expect("admin", "endpoint.update", &ep_id);
    call(
        ADMIN,
        "POST",
        "/api/v1/app/shop/endpoint/main/secret/rotate",
        Some("{}"),
        200,
    );
    expect("admin", "endpoint.secret.rotate", &ep_id);
    call(
        ADMIN,
        "PUT",
        "/api/v1/app/shop/endpoint/main/headers",
        Some(r#"{"headers":{"X-A":"1"}}"#),
        204,
    );
    expect("admin", "endpoint.headers.update", &ep_id);
    call(
        ops,
        "PATCH",
        "/api/v1/app/shop/endpoint/main/headers",
        Some(r#"{"headers":{"X-B":"2"}}"#),
        204,
    );
    expect("ops", "endpoint.headers.update", &ep_id);
    // Re-sending.
    let msg = call(
        INGEST,
        "POST",
        "/api/v1/app/shop/msg",
        Some(r#"{"eventType":"a.b","payload":{}}"#),
        202,
    );
    let msg_id = msg["id"].as_str().unwrap();
    call(
        ADMIN,
        "POST",
        &format!("/api/v1/app/shop/msg/{msg_id}/endpoint/main/resend"),
        None,
        202,
    );
    expect("admin", "message.resend", &ep_id);
    let window = r#"{"since":"2020-01-01T00:00:00Z"}"#;
    call(
        ADMIN,
        "POST",
        "/api/v1/app/shop/endpoint/main/recover",
        Some(window),
        202,
    );
    expect("admin", "endpoint.recover", &ep_id);
    call(
        ADMIN,
        "POST",
        "/api/v1/app/shop/endpoint/main/replay-missing",
        Some(window),
        202,
    );
    expect("admin", "endpoint.replay_missing", &ep_id);
    // Deletions.
    call(
        ADMIN,
        "DELETE",
        "/api/v1/app/shop/endpoint/second",
        None,
        204,
    );
    expect("admin", "endpoint.delete", &ep2_id);
    call(ops, "DELETE", "/api/v1/app/other", None, 204);
    expect("ops", "application.delete", put_app["id"].as_str().unwrap());
    // Refused writes and reads are not audited.
    call(ADMIN, "POST", "/api/v1/app", Some("{}"), 422);
    call(ADMIN, "DELETE", "/api/v1/app/nope", None, 404);
    call(READER, "POST", "/api/v1/app", Some(r#"{"name":"x"}"#), 403);
    call(ADMIN, "GET", "/api/v1/app", None, 200);

    // One page holds everything, newest first.
    want.reverse();
    let page = call(ADMIN, "GET", "/api/v1/audit?limit=250", None, 200);
    assert_eq!(page["done"], true);
    let entries = page["data"].as_array().unwrap();
    let got: Vec<(String, String, String)> = entries
        .iter()
        .map(|e| {
            (
                e["tokenName"].as_str().unwrap().to_owned(),
                e["action"].as_str().unwrap().to_owned(),
                e["target"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(got, want);
    let times: Vec<&str> = entries
        .iter()
        .map(|e| e["timestamp"].as_str().unwrap())
        .collect();
    assert!(
        times.iter().all(|t| t.ends_with('Z') && t.len() == 24),
        "{times:?}"
    );
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
    // Pages of 5 walk the same list; prevIterator leads back to the page before.
    let ids: Vec<&str> = entries.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let mut walked = Vec::new();
    let mut pages = Vec::new();
    let mut path = "/api/v1/audit?limit=5".to_owned();
    loop {
        let p = call(ADMIN, "GET", &path, None, 200);
        walked.extend(
            p["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_owned()),
        );
        pages.push(p.clone());
        if p["done"] == true {
            break;
        }
        path = format!(
            "/api/v1/audit?limit=5&iterator={}",
            p["iterator"].as_str().unwrap()
        );
    }
    assert_eq!(walked, ids);
    assert!(pages[0]["prevIterator"].is_null());
    let back = call(
        ADMIN,
        "GET",
        &format!(
            "/api/v1/audit?limit=5&iterator={}",
            pages[1]["prevIterator"].as_str().unwrap()
        ),
        None,
        200,
    );
    assert_eq!(back["data"], pages[0]["data"]);
    // Admins only; a bad iterator is a 422.
    assert_eq!(
        h.call("GET", "/api/v1/audit", Some(READER), None).status,
        403
    );
    assert_eq!(
        h.call("GET", "/api/v1/audit", Some(INGEST), None).status,
        403
    );
    assert_eq!(
        h.admin("GET", "/api/v1/audit?iterator=zz", None).status,
        422
    );
}
