//! Payload filters against the real binary: an endpoint's `filter` decides which messages it
//! gets; every operator, alias, bound and error through the API; the two test routes.

#[path = "support/hookd.rs"]
mod hookd;
#[path = "support/receiver.rs"]
mod receiver;

use std::collections::BTreeSet;
use std::time::Duration;

use hookd::Hookd;
use receiver::Receiver;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

fn start() -> Hookd {
    let h = Hookd::start("[delivery]\nallow_private_networks = true\n");
    h.create("/api/v1/app", json!({"name": "Shop", "uid": "shop"}));
    h
}

/// `POST /api/v1/filter/test`: whether `filter` lets `payload` through.
fn try_filter(h: &Hookd, filter: &Value, payload: &Value) -> bool {
    let body = json!({"filter": filter, "payload": payload}).to_string();
    let r = h.call(
        "POST",
        "/api/v1/filter/test",
        Some(hookd::READER),
        Some(&body),
    );
    assert_eq!(r.status, 200, "{filter}: {}", r.body);
    r.json()["matches"].as_bool().expect("matches")
}

#[test]
fn an_endpoint_gets_only_the_messages_its_filter_lets_through() {
    let all = Receiver::start();
    let big = Receiver::start();
    let h = start();
    h.create("/api/v1/app/shop/endpoint", json!({"url": all.url("/all")}));
    let filtered = h.create(
        "/api/v1/app/shop/endpoint",
        json!({
            "url": big.url("/big"),
            // Five clauses, aliases included.
            "filter": {"data.amount": {"$gte": 100}, "data.currency": {"$in": ["EUR", "USD"]},
                       "data.customer.email": {"$endsWith": "@example.com"},
                       "test": {"$ne": true}, "data.items.$.sku": {"$exists": true}},
        }),
    );
    assert_eq!(
        filtered["filter"],
        json!({"data.amount": {"$gte": 100}, "data.currency": {"$in": ["EUR", "USD"]},
               "data.customer.email": {"$endsWith": "@example.com"},
               "test": {"$neq": true}, "data.items.$.sku": {"$exist": true}}),
        "stored and shown in canonical form"
    );
    let payloads = [
        (
            json!({"data": {"amount": 150, "currency": "EUR", "customer": {"email": "a@example.com"}, "items": [{"sku": "x"}]}}),
            true,
        ),
        (
            json!({"data": {"amount": 99, "currency": "EUR", "customer": {"email": "a@example.com"}, "items": [{"sku": "x"}]}}),
            false,
        ),
        (
            json!({"data": {"amount": 150, "currency": "GBP", "customer": {"email": "a@example.com"}, "items": [{"sku": "x"}]}}),
            false,
        ),
        (
            json!({"data": {"amount": 150, "currency": "USD", "customer": {"email": "a@other.org"}, "items": [{"sku": "x"}]}}),
            false,
        ),
        (
            json!({"data": {"amount": 150, "currency": "USD", "customer": {"email": "b@example.com"}, "items": [{"sku": "x"}]}, "test": true}),
            false,
        ),
        (
            json!({"data": {"amount": 150, "currency": "USD", "customer": {"email": "b@example.com"}, "items": []}}),
            false,
        ),
        (
            json!({"data": {"amount": 1000, "currency": "USD", "customer": {"email": "c@example.com"}, "items": [{"n": 1}, {"sku": "y"}]}, "test": false}),
            true,
        ),
        (
            json!({"data": {"amount": "1000", "currency": "USD", "customer": {"email": "c@example.com"}, "items": [{"sku": "y"}]}}),
            false,
        ),
    ];
    let mut wanted = BTreeSet::new();
    for (payload, passes) in &payloads {
        let body = json!({"eventType": "order.paid", "payload": payload}).to_string();
        let r = h.admin("POST", "/api/v1/app/shop/msg", Some(&body));
        assert_eq!(r.status, 202, "{}", r.body);
        if *passes {
            wanted.insert(r.json()["id"].as_str().unwrap().to_owned());
        }
    }
    // Fan-out decides for every endpoint of a message at once: once the unfiltered endpoint
    // has every message, the filtered one will get no other.
    all.wait_for_requests(payloads.len(), WAIT);
    let got: BTreeSet<String> = big
        .wait_for_requests(wanted.len(), WAIT)
        .iter()
        .map(|r| r.header("webhook-id").unwrap().to_owned())
        .collect();
    assert_eq!(got, wanted);
    assert_eq!(big.requests().len(), wanted.len());

    // The endpoint's test route says the same, with a read token.
    let ep = filtered["id"].as_str().unwrap();
    let path = format!("/api/v1/app/shop/endpoint/{ep}/filter/test");
    for (payload, passes) in &payloads {
        let body = json!({"payload": payload}).to_string();
        let r = h.call("POST", &path, Some(hookd::READER), Some(&body));
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["matches"], *passes, "{payload}");
    }
    // `null` removes the filter: the next message goes through.
    let r = h.admin(
        "PATCH",
        &format!("/api/v1/app/shop/endpoint/{ep}"),
        Some(r#"{"filter": null}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json().get("filter").is_none(), "{}", r.body);
    let r = h.call(
        "POST",
        &path,
        Some(hookd::ADMIN),
        Some(r#"{"payload": {}}"#),
    );
    assert_eq!(r.json()["matches"], true, "{}", r.body);
    let body = json!({"eventType": "order.paid", "payload": {"data": {}}}).to_string();
    assert_eq!(
        h.admin("POST", "/api/v1/app/shop/msg", Some(&body)).status,
        202
    );
    big.wait_for_requests(wanted.len() + 1, WAIT);
}

#[test]
fn every_operator_and_alias_through_the_api() {
    let h = start();
    let p = json!({"n": 5, "f": 2.5, "s": "hello world", "b": true, "z": null,
                   "tags": ["gift", "sale"], "o": {"k": 1}, "items": [{"sku": "A"}, {"sku": "B"}],
                   "a.b": "dotted"});
    let cases = [
        (json!({"n": 5}), true),
        (json!({"n": 5.0}), true),
        (json!({"n": "5"}), false),
        (json!({"z": null}), true),
        (json!({"tags": "gift"}), true),
        (json!({"tags": ["sale", "gift"]}), true),
        (json!({"tags": ["gift", "new"]}), false),
        (json!({"items": {"sku": "B"}}), true),
        (json!({"o": {"k": 1}}), true),
        (json!({"n": {"$eq": 5}}), true),
        (json!({"o": {"$eq": {"k": 1}}}), true),
        (json!({"n": {"$neq": 5}}), false),
        (json!({"n": {"$ne": 4}}), true),
        (json!({"n": {"$gt": 4}}), true),
        (json!({"n": {"$gte": 5}}), true),
        (json!({"n": {"$lt": 5}}), false),
        (json!({"f": {"$lte": 2.5}}), true),
        (json!({"n": {"$gt": "4"}}), false),
        (json!({"s": {"$gt": "hello"}}), true),
        (json!({"n": {"$in": [1, 5]}}), true),
        (json!({"s": {"$in": "lo wo"}}), true),
        (json!({"n": {"$nin": [1, 2]}}), true),
        (json!({"tags": {"$in": ["gift"]}}), false),
        (json!({"s": {"$startsWith": "hell"}}), true),
        (json!({"s": {"$startsWith": ["x", "y"]}}), false),
        (json!({"s": {"$endsWith": ["x", "world"]}}), true),
        (json!({"missing": {"$exist": false}}), true),
        (json!({"n": {"$exists": true}}), true),
        (json!({"s": {"$regex": "^hel+o\\s"}}), true),
        (json!({"s": {"$regex": "^world"}}), false),
        (json!({"$or": [{"n": 1}, {"b": true}]}), true),
        (json!({"$and": [{"n": 5}, {"b": false}]}), false),
        (json!({"$not": {"n": 1}}), true),
        (json!({"n": {"$or": [1, 5]}}), true),
        (json!({"items.$.sku": "B"}), true),
        (json!({"items.0.sku": "B"}), false),
        (json!({"o.k": 1}), true),
        (json!({"a.b": "dotted"}), true),
    ];
    for (filter, want) in cases {
        assert_eq!(try_filter(&h, &filter, &p), want, "{filter}");
    }
}

#[test]
fn bad_filters_are_refused_with_their_place() {
    let h = start();
    let refused = |path: &str, body: Value| {
        let r = h.admin("POST", path, Some(&body.to_string()));
        assert_eq!(r.status, 422, "{body}: {}", r.body);
        let d = &r.json()["detail"][0];
        (d["loc"].clone(), d["msg"].as_str().unwrap().to_owned())
    };
    let ep = |filter: Value| {
        refused(
            "/api/v1/app/shop/endpoint",
            json!({"url": "http://127.0.0.1:9/h", "filter": filter}),
        )
    };
    let (loc, msg) = ep(json!({"data.user": {"$near": 1}}));
    assert_eq!(loc, json!(["body", "filter", "data.user", "$near"]));
    assert!(msg.contains("unknown operator"), "{msg}");
    assert_eq!(ep(json!([1])).0, json!(["body", "filter"]));
    assert_eq!(
        ep(json!({"a": {"$gt": true}})).0,
        json!(["body", "filter", "a", "$gt"])
    );
    assert_eq!(
        ep(json!({"a": {"$regex": "("}})).0,
        json!(["body", "filter", "a", "$regex"])
    );
    let (loc, msg) = ep(json!({"a": {"$regex": "x".repeat(1025)}}));
    assert_eq!(loc, json!(["body", "filter", "a", "$regex"]));
    assert!(msg.contains("1024"), "{msg}");
    let (_, msg) = ep(json!({"a": {"$regex": "\\w{1000}\\w{1000}"}}));
    assert!(msg.contains("invalid $regex"), "{msg}");
    let mut deep = json!(1);
    for _ in 0..8 {
        deep = json!({ "k": deep });
    }
    assert!(ep(deep).1.contains("deeper than 8"));
    let many: serde_json::Map<String, Value> =
        (0..65).map(|i| (format!("k{i}"), json!(i))).collect();
    assert!(ep(Value::Object(many)).1.contains("64"));
    assert!(ep(json!({"a": {"$ne": 1, "$neq": 2}})).1.contains("twice"));
    // The body-only route locates problems the same way; a read token may use it.
    let (loc, _) = refused(
        "/api/v1/filter/test",
        json!({"filter": {"x": {"$exist": "yes"}}, "payload": {}}),
    );
    assert_eq!(loc, json!(["body", "filter", "x", "$exist"]));
    let r = h.call(
        "POST",
        "/api/v1/filter/test",
        Some(hookd::READER),
        Some(r#"{"payload": {}}"#),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    // Nothing was created by the refused writes.
    let list = h.admin("GET", "/api/v1/app/shop/endpoint", None).json();
    assert_eq!(list["data"].as_array().unwrap().len(), 0, "{list}");
}

/// A filter declared in the config file applies as one written through the API.
#[test]
fn a_filter_from_the_config_file_applies() {
    let rx = Receiver::start();
    let h = Hookd::start(&format!(
        r#"
[delivery]
allow_private_networks = true

[[apps]]
name = "Shop"
uid = "shop"

[[apps.endpoints]]
uid = "eu"
url = "{}"
filter = {{ region = "eu" }}
"#,
        rx.url("/eu")
    ));
    let ep = h.admin("GET", "/api/v1/app/shop/endpoint/eu", None).json();
    assert_eq!(ep["filter"], json!({"region": "eu"}), "{ep}");
    let all = Receiver::start();
    h.create("/api/v1/app/shop/endpoint", json!({"url": all.url("/all")}));
    let mut eu = None;
    for region in ["us", "eu", "ap"] {
        let body = json!({"eventType": "a", "payload": {"region": region}}).to_string();
        let r = h.admin("POST", "/api/v1/app/shop/msg", Some(&body));
        assert_eq!(r.status, 202, "{}", r.body);
        if region == "eu" {
            eu = Some(r.json()["id"].as_str().unwrap().to_owned());
        }
    }
    // Once the unfiltered endpoint has all three, fan-out is done with them.
    all.wait_for_requests(3, WAIT);
    let got = rx.wait_for_requests(1, WAIT);
    assert_eq!(got[0].header("webhook-id"), eu.as_deref());
    assert_eq!(rx.requests().len(), 1);
}
