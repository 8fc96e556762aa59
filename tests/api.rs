//! The management and ingest API against the real binary over loopback sockets.

#[path = "support/hookd.rs"]
mod hookd;

use hookd::{Hookd, ADMIN, INGEST, READER};
use serde_json::{json, Value};

fn create_app(h: &Hookd, name: &str, uid: Option<&str>) -> Value {
    let body = match uid {
        Some(u) => json!({ "name": name, "uid": u }),
        None => json!({ "name": name }),
    };
    let r = h.admin("POST", "/api/v1/app", Some(&body.to_string()));
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()
}

#[test]
fn applications_crud_paging_and_errors() {
    let h = Hookd::start("");
    assert_eq!(h.call("GET", "/api/v1/health", None, None).status, 204);
    // Svix's ping, GET and HEAD, no token: 204 with no body.
    for method in ["GET", "HEAD"] {
        for path in ["/api/v1/health/ping", "/api/v1/health/ping/"] {
            let r = h.call(method, path, None, None);
            assert_eq!((r.status, r.body.as_str()), (204, ""), "{method} {path}");
        }
    }
    assert_eq!(
        h.call("POST", "/api/v1/health/ping", None, Some("{}"))
            .status,
        405
    );
    let a = create_app(&h, "Shop", Some("shop"));
    let id = a["id"].as_str().unwrap();
    assert!(id.starts_with("app_") && id.len() == 31, "{id}");
    assert_eq!(a["uid"], "shop");
    assert!(a["createdAt"].as_str().unwrap().ends_with('Z'));
    for key in [id, "shop"] {
        let r = h.admin("GET", &format!("/api/v1/app/{key}"), None);
        assert_eq!((r.status, r.json()["id"].as_str()), (200, Some(id)));
    }
    // Duplicate uid: 409, or the existing one with get_if_exists.
    let dup = json!({"name": "again", "uid": "shop"}).to_string();
    let r = h.admin("POST", "/api/v1/app", Some(&dup));
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["code"], "conflict");
    let r = h.admin("POST", "/api/v1/app?get_if_exists=true", Some(&dup));
    assert_eq!((r.status, r.json()["id"].as_str()), (200, Some(id)));
    // Validation: 422 with a located detail array.
    let r = h.admin("POST", "/api/v1/app", Some("{}"));
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["detail"][0]["loc"], json!(["body", "name"]));
    let r = h.admin(
        "POST",
        "/api/v1/app",
        Some(r#"{"name":"x","uid":"has space"}"#),
    );
    assert_eq!(
        (r.status, r.json()["detail"][0]["loc"][1].as_str()),
        (422, Some("uid"))
    );
    // Paging: 5 apps, pages of 2, ascending by creation.
    for i in 0..4 {
        create_app(&h, &format!("app {i}"), None);
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/app?limit=2".to_owned();
    loop {
        let page = h.admin("GET", &path, None).json();
        seen.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["name"].as_str().unwrap().to_owned()),
        );
        if page["done"].as_bool().unwrap() {
            break;
        }
        path = format!(
            "/api/v1/app?limit=2&iterator={}",
            page["iterator"].as_str().unwrap()
        );
    }
    assert_eq!(seen, vec!["Shop", "app 0", "app 1", "app 2", "app 3"]);
    let desc = h
        .admin("GET", "/api/v1/app?order=descending&limit=1", None)
        .json();
    assert_eq!(desc["data"][0]["name"], "app 3");
    assert_eq!(h.admin("GET", "/api/v1/app?limit=0", None).status, 422);
    // PUT creates (201) then updates (200); PATCH changes one field.
    let r = h.admin(
        "PUT",
        "/api/v1/app/new-uid",
        Some(r#"{"name":"made by put"}"#),
    );
    assert_eq!((r.status, r.json()["uid"].as_str()), (201, Some("new-uid")));
    let r = h.admin(
        "PUT",
        "/api/v1/app/new-uid",
        Some(r#"{"name":"renamed","uid":"new-uid"}"#),
    );
    assert_eq!(
        (r.status, r.json()["name"].as_str()),
        (200, Some("renamed"))
    );
    let r = h.admin(
        "PATCH",
        "/api/v1/app/new-uid",
        Some(r#"{"metadata":{"k":"v"}}"#),
    );
    assert_eq!(
        (
            r.status,
            r.json()["metadata"]["k"].as_str(),
            r.json()["name"].as_str()
        ),
        (200, Some("v"), Some("renamed"))
    );
    assert_eq!(h.admin("DELETE", "/api/v1/app/new-uid", None).status, 204);
    assert_eq!(h.admin("GET", "/api/v1/app/new-uid", None).status, 404);
    assert_eq!(h.admin("DELETE", "/api/v1/app/new-uid", None).status, 404);
}

#[test]
fn authentication_and_scopes() {
    let h = Hookd::start("");
    create_app(&h, "Shop", Some("shop"));
    create_app(&h, "Other", Some("other"));
    let r = h.call("GET", "/api/v1/app", None, None);
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (401, Some("authentication_failed"))
    );
    assert_eq!(
        h.call("GET", "/api/v1/app", Some("wrong"), None).status,
        401
    );
    assert_eq!(h.call("GET", "/api/v1/app", Some(READER), None).status, 200);
    assert_eq!(
        h.call("POST", "/api/v1/app", Some(READER), Some(r#"{"name":"x"}"#))
            .status,
        403
    );
    assert_eq!(h.call("GET", "/api/v1/app", Some(INGEST), None).status, 403);
    let msg = r#"{"eventType":"order.paid","payload":{"n":1}}"#;
    assert_eq!(
        h.call("POST", "/api/v1/app/shop/msg", Some(INGEST), Some(msg))
            .status,
        202
    );
    assert_eq!(
        h.call("POST", "/api/v1/app/other/msg", Some(INGEST), Some(msg))
            .status,
        403
    );
    assert_eq!(
        h.call("POST", "/api/v1/app/shop/msg", Some(READER), Some(msg))
            .status,
        403
    );
    // Methods: 405 with Allow, HEAD answers like GET without a body.
    let r = h.admin("POST", "/api/v1/health", Some("{}"));
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
    let r = h.admin("HEAD", "/api/v1/app/shop", None);
    assert_eq!((r.status, r.body.as_str()), (200, ""));
    assert_eq!(h.admin("GET", "/api/v1/nothing-here", None).status, 404);
}

#[test]
fn event_types_and_endpoints() {
    let h = Hookd::start("");
    create_app(&h, "Shop", Some("shop"));
    let et = json!({"name": "order.paid", "description": "An order was paid", "schemas": {"1": {"type": "object"}}});
    let r = h.admin("POST", "/api/v1/event-type", Some(&et.to_string()));
    assert_eq!(
        (r.status, r.json()["schemas"]["1"]["type"].as_str()),
        (201, Some("object"))
    );
    assert_eq!(
        h.admin("POST", "/api/v1/event-type", Some(&et.to_string()))
            .status,
        409
    );
    h.admin(
        "POST",
        "/api/v1/event-type",
        Some(r#"{"name":"order.shipped","description":"d"}"#),
    );
    let list = h
        .admin("GET", "/api/v1/event-type?with_content=false", None)
        .json();
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    assert!(list["data"][0]["schemas"].is_null());
    let r = h.admin(
        "PATCH",
        "/api/v1/event-type/order.shipped",
        Some(r#"{"deprecated":true}"#),
    );
    assert_eq!(r.json()["deprecated"], true);
    // Endpoint with a generated secret; unknown event types are named.
    let r = h.admin(
        "POST",
        "/api/v1/app/shop/endpoint",
        Some(r#"{"url":"https://example.com/h","eventTypes":["order.paid","nope.x"]}"#),
    );
    assert_eq!(r.status, 422);
    assert!(r.body.contains("nope.x"), "{}", r.body);
    let r = h.admin(
        "POST",
        "/api/v1/app/shop/endpoint",
        Some(r#"{"url":"ftp://x"}"#),
    );
    assert_eq!(
        (r.status, r.json()["detail"][0]["loc"][1].as_str()),
        (422, Some("url"))
    );
    let r = h.admin("POST", "/api/v1/app/shop/endpoint", Some(r#"{"url":"https://example.com/h","uid":"main","filterTypes":["order.paid"],"headers":{"X-Team":"a"}}"#));
    assert_eq!(r.status, 201, "{}", r.body);
    let ep = r.json();
    assert_eq!(ep["eventTypes"], json!(["order.paid"]));
    assert_eq!(ep["filterTypes"], json!(["order.paid"]));
    let ep_id = ep["id"].as_str().unwrap();
    assert!(ep_id.starts_with("ep_"));
    let secret = h
        .admin("GET", "/api/v1/app/shop/endpoint/main/secret", None)
        .json()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        secret.starts_with("whsec_") && secret.len() == 6 + 32,
        "{secret}"
    );
    // Rotation answers the new secret (current Svix SDKs parse it), the one GET shows next.
    let answer = h.admin(
        "POST",
        "/api/v1/app/shop/endpoint/main/secret/rotate",
        Some("{}"),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    let answered = answer.json()["key"].as_str().unwrap().to_owned();
    let rotated = h
        .admin(
            "GET",
            &format!("/api/v1/app/shop/endpoint/{ep_id}/secret"),
            None,
        )
        .json()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(rotated, secret);
    assert_eq!(answered, rotated);
    let own = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let answer = h.admin(
        "POST",
        "/api/v1/app/shop/endpoint/main/secret/rotate",
        Some(&json!({"key": own}).to_string()),
    );
    assert_eq!(answer.json()["key"], own);
    assert_eq!(
        h.admin("GET", "/api/v1/app/shop/endpoint/main/secret", None)
            .json()["key"],
        own
    );
    // Custom headers: get, patch (merge + delete), reserved names refused.
    assert_eq!(
        h.admin("GET", "/api/v1/app/shop/endpoint/main/headers", None)
            .json()["headers"]["X-Team"],
        "a"
    );
    assert_eq!(
        h.admin(
            "PATCH",
            "/api/v1/app/shop/endpoint/main/headers",
            Some(r#"{"headers":{"X-B":"2"},"deleteHeaders":["X-Team"]}"#)
        )
        .status,
        204
    );
    assert_eq!(
        h.admin("GET", "/api/v1/app/shop/endpoint/main/headers", None)
            .json()["headers"],
        json!({"X-B": "2"})
    );
    assert_eq!(
        h.admin(
            "PUT",
            "/api/v1/app/shop/endpoint/main/headers",
            Some(r#"{"headers":{"webhook-id":"x"}}"#)
        )
        .status,
        422
    );
    // Patch, list, stats, delete.
    let r = h.admin(
        "PATCH",
        "/api/v1/app/shop/endpoint/main",
        Some(r#"{"disabled":true,"description":"off"}"#),
    );
    assert_eq!(
        (r.json()["disabled"].as_bool(), r.json()["url"].as_str()),
        (Some(true), Some("https://example.com/h"))
    );
    let list = h.admin("GET", "/api/v1/app/shop/endpoint", None).json();
    assert_eq!(
        (
            list["data"].as_array().unwrap().len(),
            list["done"].as_bool()
        ),
        (1, Some(true))
    );
    let stats = h
        .admin("GET", "/api/v1/app/shop/endpoint/main/stats", None)
        .json();
    assert_eq!(stats["pending"], 0);
    assert_eq!(
        h.admin("DELETE", "/api/v1/app/shop/endpoint/main", None)
            .status,
        204
    );
    assert_eq!(
        h.admin("GET", "/api/v1/app/shop/endpoint/main", None)
            .status,
        404
    );
    // Archive, then expunge.
    assert_eq!(
        h.admin("DELETE", "/api/v1/event-type/order.shipped", None)
            .status,
        204
    );
    assert_eq!(
        h.admin("GET", "/api/v1/event-type/order.shipped", None)
            .json()["archived"],
        true
    );
    assert_eq!(
        h.admin("GET", "/api/v1/event-type", None).json()["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        h.admin(
            "DELETE",
            "/api/v1/event-type/order.shipped?expunge=true",
            None
        )
        .status,
        204
    );
    assert_eq!(
        h.admin("GET", "/api/v1/event-type/order.shipped", None)
            .status,
        404
    );
}

#[test]
fn messages_ingest_get_list_and_idempotency() {
    let h = Hookd::start("[ingest]\npayload_bytes_max = \"2KiB\"\n");
    create_app(&h, "Shop", Some("shop"));
    let r = h.call("POST", "/api/v1/app/shop/msg", Some(INGEST), Some(r#"{"eventType":"order.paid","eventId":"evt-1","payload":{"total":12.5,"items":[1,2]},"channels":["eu"]}"#));
    assert_eq!(r.status, 202, "{}", r.body);
    let m = r.json();
    let id = m["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("msg_") && id.len() == 31);
    assert_eq!(m["payload"], json!({"total": 12.5, "items": [1, 2]}));
    assert_eq!(
        (m["eventId"].as_str(), m["channels"][0].as_str()),
        (Some("evt-1"), Some("eu"))
    );
    for key in [id.as_str(), "evt-1"] {
        let got = h.admin("GET", &format!("/api/v1/app/shop/msg/{key}"), None);
        assert_eq!(
            (got.status, got.json()["id"].as_str()),
            (200, Some(id.as_str()))
        );
    }
    let bare = h
        .admin(
            "GET",
            &format!("/api/v1/app/shop/msg/{id}?with_content=false"),
            None,
        )
        .json();
    assert_eq!(bare["payload"], json!({}));
    // Same eventId again: 409. Forged id: 404.
    let again = h.call(
        "POST",
        "/api/v1/app/shop/msg",
        Some(INGEST),
        Some(r#"{"eventType":"order.paid","eventId":"evt-1","payload":{}}"#),
    );
    assert_eq!(again.status, 409);
    let mut forged = id.clone();
    forged.replace_range(30.., if id.ends_with('a') { "b" } else { "a" });
    assert_eq!(
        h.admin("GET", &format!("/api/v1/app/shop/msg/{forged}"), None)
            .status,
        404
    );
    // Bad input.
    let post = |body: &str| h.call("POST", "/api/v1/app/shop/msg", Some(ADMIN), Some(body));
    assert_eq!(post(r#"{"eventType":"x","payload":[1]}"#).status, 422);
    assert_eq!(post(r#"{"eventType":"bad type","payload":{}}"#).status, 422);
    assert_eq!(post(r#"{"payload":{}}"#).status, 422);
    assert_eq!(post(r#"{"eventType":"x","payload":{"#).status, 422);
    let big = format!(
        r#"{{"eventType":"x","payload":{{"b":"{}"}}}}"#,
        "y".repeat(3000)
    );
    let r = post(&big);
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (413, Some("payload_too_large"))
    );
    assert_eq!(
        h.call(
            "POST",
            "/api/v1/app/nope/msg",
            Some(ADMIN),
            Some(r#"{"eventType":"x","payload":{}}"#)
        )
        .status,
        404
    );
    // A message may bring its application.
    let r =
        post(r#"{"eventType":"x","payload":{},"application":{"name":"Ignored","uid":"ignored"}}"#);
    assert_eq!(
        r.status, 202,
        "the path's app exists, so `application` is not used"
    );
    assert_eq!(h.admin("GET", "/api/v1/app/ignored", None).status, 404);
    let r = h.call(
        "POST",
        "/api/v1/app/auto/msg",
        Some(ADMIN),
        Some(r#"{"eventType":"x","payload":{},"application":{"name":"Auto"}}"#),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(
        h.admin("GET", "/api/v1/app/auto", None).json()["name"],
        "Auto"
    );
    // Idempotency-Key: the second request replays the first answer and stores nothing.
    let idem = [("idempotency-key", "key-1")];
    let body = r#"{"eventType":"order.shipped","payload":{"n":2}}"#;
    let first = h.call_with(
        "POST",
        "/api/v1/app/shop/msg",
        Some(ADMIN),
        Some(body),
        &idem,
    );
    let second = h.call_with(
        "POST",
        "/api/v1/app/shop/msg",
        Some(ADMIN),
        Some(body),
        &idem,
    );
    assert_eq!((first.status, second.status), (202, 202));
    assert_eq!(first.json()["id"], second.json()["id"]);
    // A failed request does not use up its key: the corrected retry runs.
    let idem2 = [("idempotency-key", "key-2")];
    let bad = h.call_with(
        "POST",
        "/api/v1/app/shop/msg",
        Some(ADMIN),
        Some(r#"{"eventType":"x","payload":[]}"#),
        &idem2,
    );
    assert_eq!(bad.status, 422);
    let good = h.call_with(
        "POST",
        "/api/v1/app/shop/msg",
        Some(ADMIN),
        Some(body),
        &idem2,
    );
    assert_eq!(good.status, 202);
    assert_ne!(good.json()["id"], first.json()["id"]);
    // List: newest first, filters, paging; it sees what was just written.
    for i in 0..5 {
        let r = post(&format!(
            r#"{{"eventType":"bulk.{}","payload":{{"i":{i}}}}}"#,
            i % 2
        ));
        assert_eq!(r.status, 202);
    }
    let list = h.admin("GET", "/api/v1/app/shop/msg?limit=3", None).json();
    let ids: Vec<&Value> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["payload"]["i"])
        .collect();
    assert_eq!(ids, vec![&json!(4), &json!(3), &json!(2)]);
    assert_eq!(list["done"], false);
    let next = h
        .admin(
            "GET",
            &format!(
                "/api/v1/app/shop/msg?limit=3&iterator={}",
                list["iterator"].as_str().unwrap()
            ),
            None,
        )
        .json();
    assert_eq!(next["data"][0]["payload"]["i"], 1);
    let filtered = h
        .admin("GET", "/api/v1/app/shop/msg?event_types=bulk.1", None)
        .json();
    assert_eq!(filtered["data"].as_array().unwrap().len(), 2);
    let chan = h
        .admin("GET", "/api/v1/app/shop/msg?channel=eu", None)
        .json();
    assert_eq!(chan["data"][0]["id"], id.as_str());
    // Attempts: none yet (no delivery engine), but the routes answer.
    let att = h
        .admin("GET", &format!("/api/v1/app/shop/attempt/msg/{id}"), None)
        .json();
    assert_eq!(
        (att["data"].as_array().unwrap().len(), att["done"].as_bool()),
        (0, Some(true))
    );
    assert_eq!(
        h.admin("GET", "/api/v1/app/shop/attempt/msg/msg_nope", None)
            .status,
        404
    );
    assert_eq!(
        h.admin("GET", &format!("/api/v1/app/shop/msg/{id}/endpoint"), None)
            .json()["data"],
        json!([])
    );
}

#[test]
fn state_and_idempotency_keys_survive_a_crash() {
    let mut h = Hookd::start("");
    create_app(&h, "Shop", Some("shop"));
    h.admin(
        "POST",
        "/api/v1/event-type",
        Some(r#"{"name":"a.b","description":"d"}"#),
    );
    let ep = h
        .admin(
            "POST",
            "/api/v1/app/shop/endpoint",
            Some(r#"{"url":"https://example.com/","uid":"e"}"#),
        )
        .json();
    let idem = [("idempotency-key", "k-restart")];
    let body = r#"{"eventType":"a.b","eventId":"e-1","payload":{"x":1}}"#;
    let first = h
        .call_with(
            "POST",
            "/api/v1/app/shop/msg",
            Some(ADMIN),
            Some(body),
            &idem,
        )
        .json();
    h.crash_and_restart();
    assert_eq!(h.admin("GET", "/api/v1/app/shop", None).status, 200);
    assert_eq!(h.admin("GET", "/api/v1/event-type/a.b", None).status, 200);
    assert_eq!(
        h.admin("GET", "/api/v1/app/shop/endpoint/e", None).json()["id"],
        ep["id"]
    );
    let got = h.admin(
        "GET",
        &format!("/api/v1/app/shop/msg/{}", first["id"].as_str().unwrap()),
        None,
    );
    assert_eq!(
        (got.status, &got.json()["payload"]),
        (200, &json!({"x": 1}))
    );
    let replay = h
        .call_with(
            "POST",
            "/api/v1/app/shop/msg",
            Some(ADMIN),
            Some(body),
            &idem,
        )
        .json();
    assert_eq!(replay["id"], first["id"]);
    assert_eq!(
        h.call("POST", "/api/v1/app/shop/msg", Some(ADMIN), Some(body))
            .status,
        409,
        "eventId kept too"
    );
    let list = h.admin("GET", "/api/v1/app/shop/msg", None).json();
    assert_eq!(
        list["data"].as_array().unwrap().len(),
        1,
        "listing rebuilt from the log: {list}"
    );
    let status = h.terminate();
    assert!(status.success(), "SIGTERM exits 0: {status}");
}

#[test]
fn ingest_rate_limit_answers_429_with_retry_after() {
    let extra = format!(
        "\n[[auth.tokens]]\nname = \"slow\"\nsha256 = \"{}\"\nscopes = [\"ingest\"]\nrate_per_second = 1\nburst = 2\n",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"hkd_slow"))
    );
    let h = Hookd::start(&extra);
    create_app(&h, "Shop", Some("shop"));
    let post = || {
        h.call(
            "POST",
            "/api/v1/app/shop/msg",
            Some("hkd_slow"),
            Some(r#"{"eventType":"x","payload":{}}"#),
        )
    };
    let start = std::time::Instant::now();
    let replies: Vec<_> = (0..8).map(|_| post()).collect();
    let elapsed = start.elapsed().as_secs_f64();
    let accepted = replies.iter().filter(|r| r.status == 202).count();
    let limited: Vec<_> = replies.iter().filter(|r| r.status == 429).collect();
    assert_eq!(accepted + limited.len(), 8);
    // A burst of 2, then 1 a second: however slow the machine, no more than that got through.
    assert!(
        accepted as f64 <= 2.0 + elapsed.ceil(),
        "{accepted} accepted in {elapsed:.2}s"
    );
    assert!(!limited.is_empty());
    assert!(limited.iter().all(|r| r
        .header("retry-after")
        .is_some_and(|s| s.parse::<u64>().unwrap() >= 1)));
    assert_eq!(limited[0].json()["code"], "rate_limited");
}

/// A missing, non-UTF-8 or malformed body on any write is a 422 with Svix's validation shape,
/// located at `["body"]`, as Svix's server answers it (its SDKs raise their validation error
/// type for it); the same write with a good body succeeds.
#[test]
fn a_missing_or_malformed_body_is_a_422_in_svix_shape() {
    let h = Hookd::start("");
    assert_eq!(
        h.admin("POST", "/api/v1/app", Some(r#"{"name":"a","uid":"a"}"#))
            .status,
        201
    );
    let writes = [
        ("POST", "/api/v1/app", r#"{"name":"b"}"#),
        ("PUT", "/api/v1/app/a", r#"{"name":"a2","uid":"a"}"#),
        (
            "POST",
            "/api/v1/event-type",
            r#"{"name":"t.one","description":"d"}"#,
        ),
        (
            "POST",
            "/api/v1/app/a/endpoint",
            r#"{"url":"https://example.com/h"}"#,
        ),
        (
            "POST",
            "/api/v1/app/a/msg",
            r#"{"eventType":"t.one","payload":{}}"#,
        ),
    ];
    for (method, path, good) in writes {
        let trailing = format!("{good} x");
        for bad in [
            &b""[..],
            b"{\"name\":",
            b"\xff\xfe",
            trailing.as_bytes(),
            b"nul",
        ] {
            let r = h.call_bytes(method, path, bad);
            assert_eq!(r.status, 422, "{method} {path} {:?}: {}", bad, r.body);
            let detail = &r.json()["detail"];
            assert_eq!(detail[0]["loc"], serde_json::json!(["body"]), "{}", r.body);
            assert_eq!(detail[0]["type"], "value_error.jsondecode", "{}", r.body);
            assert!(
                detail[0]["msg"].as_str().is_some_and(|m| !m.is_empty()),
                "{}",
                r.body
            );
        }
        let r = h.admin(method, path, Some(good));
        assert!(
            (200..300).contains(&r.status),
            "{method} {path}: {} {}",
            r.status,
            r.body
        );
    }
}
