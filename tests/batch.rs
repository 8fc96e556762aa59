//! Batch ingest against the real binary: `POST /api/v1/app/{app}/msg/batch` stores the valid
//! messages of an array under one group commit and answers one item per input, in order, with
//! the status and body the single create would have given.

#[path = "support/hookd.rs"]
mod hookd;
#[path = "support/receiver.rs"]
mod receiver;

use std::collections::BTreeSet;
use std::time::Duration;

use hookd::Hookd;
use receiver::Receiver;
use serde_json::{json, Value};

use sha2::{Digest, Sha256};

/// An ingest token limited to 1 message a second with a burst of 5.
const SLOW: &str = "hkd_slow_ingest_token";

fn start(rx: &Receiver) -> Hookd {
    let slow = hex::encode(Sha256::digest(SLOW.as_bytes()));
    let h = Hookd::start(&format!(
        r#"
[ingest]
payload_bytes_max = 200
batch_max = 6

[delivery]
allow_private_networks = true

[[auth.tokens]]
name = "slow"
sha256 = "{slow}"
scopes = ["ingest"]
rate_per_second = 1
burst = 5
"#
    ));
    h.create("/api/v1/app", json!({"name": "Shop", "uid": "shop"}));
    h.create("/api/v1/app", json!({"name": "Other", "uid": "other"}));
    h.create("/api/v1/app/shop/endpoint", json!({"url": rx.url("/hook")}));
    h
}

fn batch(h: &Hookd, token: &str, app: &str, items: &Value) -> (u16, Value) {
    let r = h.call(
        "POST",
        &format!("/api/v1/app/{app}/msg/batch"),
        Some(token),
        Some(&items.to_string()),
    );
    let body = serde_json::from_str(&r.body).unwrap_or(Value::Null);
    (r.status, body)
}

#[test]
fn a_batch_stores_the_valid_messages_and_answers_each_item() {
    let rx = Receiver::start();
    let h = start(&rx);
    // One message holds eventId "taken" already.
    let r = h.admin(
        "POST",
        "/api/v1/app/shop/msg",
        Some(r#"{"eventType":"a","eventId":"taken","payload":{}}"#),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let items = json!([
        {"eventType": "order.paid", "payload": {"n": 0}},
        {"eventType": "not a name", "payload": {"n": 1}},
        {"eventType": "order.paid", "eventId": "e-1", "payload": {"n": 2}},
        {"eventType": "order.paid", "eventId": "e-1", "payload": {"n": 3}},
        {"eventType": "order.paid", "eventId": "taken", "payload": {"n": 4}},
        {"eventType": "order.paid", "payload": {"big": "x".repeat(300)}},
    ]);
    let (status, out) = batch(&h, hookd::INGEST, "shop", &items);
    assert_eq!(status, 202, "{out}");
    let statuses: Vec<u64> = out
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [202, 422, 202, 409, 409, 413], "{out}");
    assert_eq!(
        out[1]["body"]["detail"][0]["loc"],
        json!(["body", "1", "eventType"])
    );
    assert_eq!(out[3]["body"]["code"], "conflict");
    assert_eq!(out[2]["body"]["eventId"], "e-1");
    assert_eq!(out[0]["body"]["payload"], json!({"n": 0}));
    // What was stored reads back, and is delivered; nothing else is.
    let stored: BTreeSet<String> = [&out[0], &out[2]]
        .iter()
        .map(|i| i["body"]["id"].as_str().unwrap().to_owned())
        .collect();
    for id in &stored {
        let m = h.admin("GET", &format!("/api/v1/app/shop/msg/{id}"), None);
        assert_eq!(m.status, 200, "{}", m.body);
    }
    let got = rx.wait_for_requests(3, Duration::from_secs(20));
    let delivered: BTreeSet<String> = got
        .iter()
        .map(|r| r.header("webhook-id").unwrap().to_owned())
        .filter(|id| stored.contains(id))
        .collect();
    assert_eq!(delivered, stored);
    let list = h.admin("GET", "/api/v1/app/shop/msg", None).json();
    assert_eq!(list["data"].as_array().unwrap().len(), 3, "{list}");
    // The eventId "e-1" is taken by the batch's message now.
    let again = h.admin(
        "POST",
        "/api/v1/app/shop/msg",
        Some(r#"{"eventType":"a","eventId":"e-1","payload":{}}"#),
    );
    assert_eq!(again.status, 409, "{}", again.body);
}

#[test]
fn a_batch_is_bounded_scoped_rate_limited_and_idempotent() {
    let rx = Receiver::start();
    let h = start(&rx);
    let one = json!({"eventType": "a", "payload": {}});
    // Bounds: not an array, empty, more than ingest.batch_max.
    for body in [
        json!({"eventType": "a"}),
        json!([]),
        json!(vec![one.clone(); 7]),
    ] {
        let (status, out) = batch(&h, hookd::ADMIN, "shop", &body);
        assert_eq!(status, 422, "{out}");
    }
    // The ingest token of "shop" may not write to "other".
    let (status, _) = batch(&h, hookd::INGEST, "other", &json!([one]));
    assert_eq!(status, 403);
    // The rate limit counts messages: a burst of 5 lets 5 through, then nothing.
    let (status, out) = batch(&h, SLOW, "shop", &json!(vec![one.clone(); 5]));
    assert_eq!(status, 202, "{out}");
    let (status, _) = batch(&h, SLOW, "shop", &json!([one]));
    assert_eq!(status, 429);
    // More than the burst at once can never pass: said so, not "retry later".
    let (status, out) = batch(&h, SLOW, "shop", &json!(vec![one.clone(); 6]));
    assert_eq!(status, 422, "{out}");
    // An Idempotency-Key covers the whole batch: the retry gets the first answer.
    let before = h.admin("GET", "/api/v1/app/shop/msg", None).json()["data"]
        .as_array()
        .unwrap()
        .len();
    let body = json!([one, {"eventType": "b", "payload": {"k": 1}}]).to_string();
    let send = || {
        h.call_with(
            "POST",
            "/api/v1/app/shop/msg/batch",
            Some(hookd::ADMIN),
            Some(&body),
            &[("idempotency-key", "batch-1")],
        )
    };
    let (first, second) = (send(), send());
    assert_eq!((first.status, second.status), (202, 202));
    assert_eq!(first.body, second.body);
    let after = h.admin("GET", "/api/v1/app/shop/msg", None).json()["data"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(after, before + 2);
    // The path's last segment is also a message eventId "batch": GET reads that message.
    let r = h.admin(
        "POST",
        "/api/v1/app/shop/msg",
        Some(r#"{"eventType":"a","eventId":"batch","payload":{"named":true}}"#),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let got = h.admin("GET", "/api/v1/app/shop/msg/batch", None);
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.json()["payload"], json!({"named": true}));
}
