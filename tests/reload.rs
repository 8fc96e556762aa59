//! Config reload on SIGHUP, and static definitions, with the real binary: each test starts
//! hookd with its log in a file, rewrites the config file, sends SIGHUP and waits for the
//! reload's outcome line before looking at what changed.

#[path = "support/hookd.rs"]
mod hookd;
#[path = "support/receiver.rs"]
mod receiver;

use std::time::Duration;

use hookd::{config_text, Hookd};
use receiver::{Receiver, Reply};
use serde_json::json;
use sha2::{Digest, Sha256};

const WAIT: Duration = Duration::from_secs(20);

fn sha(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn token(name: &str, token: &str, scopes: &str) -> String {
    format!(
        "[[auth.tokens]]\nname = \"{name}\"\nsha256 = \"{}\"\nscopes = {scopes}\n",
        sha(token)
    )
}

fn status(h: &Hookd, token: &str) -> u16 {
    h.call("GET", "/api/v1/app", Some(token), None).status
}

#[test]
fn sighup_applies_a_new_token_and_refuses_a_bad_config_without_dying() {
    const OLD: &str = "hkd_old_token_of_the_reload_test";
    const NEW: &str = "hkd_new_token_of_the_reload_test";
    let mut h = Hookd::start_logged(&token("rotating", OLD, "[\"read\"]"));
    assert_eq!(status(&h, OLD), 200);
    assert_eq!(status(&h, NEW), 401);

    // The same name with another token's hash: the old token stops working at once.
    h.rewrite_config(&token("rotating", NEW, "[\"read\"]"));
    let outcome = h.reload();
    assert!(outcome.contains("config reloaded"), "{outcome}");
    assert!(outcome.contains("applied live: auth.tokens"), "{outcome}");
    assert_eq!(status(&h, OLD), 401, "the old token is refused");
    assert_eq!(status(&h, NEW), 200, "the new token is accepted");
    // Its scope came with it: read only.
    assert_eq!(
        h.call("POST", "/api/v1/app", Some(NEW), Some(r#"{"name":"x"}"#))
            .status,
        403
    );

    // A config with problems (and a token change that must not apply) is refused whole.
    h.rewrite_config(&format!(
        "{}[delivery]\ntimeout = \"15\"\nretry_schedule = []\n[serverr]\nlisten = \"x\"\n",
        token("rotating", OLD, "[\"read\"]")
    ));
    let outcome = h.reload();
    assert!(
        outcome.contains("config reload refused: 3 problems; the running config is unchanged"),
        "{outcome}"
    );
    let log = h.log();
    for key in ["delivery.retry_schedule", "delivery.timeout", "serverr"] {
        assert!(
            log.contains(&format!("config problem: {key}: ")),
            "{key} is named in the log:\n{log}"
        );
    }
    assert!(h.try_wait().is_none(), "hookd is still running");
    assert_eq!(status(&h, NEW), 200, "the running tokens are unchanged");
    assert_eq!(status(&h, OLD), 401);

    // Not even TOML: refused too, naming the line.
    h.write_config_text("[server\nlisten = ");
    let outcome = h.reload();
    assert!(
        outcome.contains("config reload refused: 1 problem;"),
        "{outcome}"
    );
    assert!(h.log().contains("TOML syntax error at line 1"));
    assert_eq!(status(&h, NEW), 200);

    // A good config after the bad ones applies again.
    h.rewrite_config(&token("rotating", OLD, "[\"read\"]"));
    assert!(h.reload().contains("applied live: auth.tokens"));
    assert_eq!((status(&h, OLD), status(&h, NEW)), (200, 401));
    assert_eq!(
        status(&h, hookd::ADMIN),
        200,
        "tokens left alone still work"
    );
}

#[test]
fn a_retry_schedule_change_applies_to_the_next_attempts() {
    let delivery = |schedule: &str| {
        format!(
            "[delivery]\nretry_schedule = [{schedule}]\ntimeout = \"2s\"\nallow_private_networks = true\n"
        )
    };
    let h = Hookd::start_logged(&delivery("\"300ms\""));
    h.create("/api/v1/app", json!({"name": "Shop", "uid": "shop"}));
    let rx = Receiver::start();
    h.create("/api/v1/app/shop/endpoint", json!({"url": rx.url("/hook")}));
    let send = |n: u32| {
        let body = json!({"eventType": "order.paid", "payload": {"n": n}}).to_string();
        let r = h.admin("POST", "/api/v1/app/shop/msg", Some(&body));
        assert_eq!(r.status, 202, "{}", r.body);
    };
    // Each message fails once, then lands: the gap between its two attempts is the
    // schedule's first entry (±20% jitter), measured where the receiver saw them.
    let gap = |got: &[receiver::Recorded], first: usize| {
        assert_eq!(
            got[first].header("webhook-id"),
            got[first + 1].header("webhook-id")
        );
        got[first + 1].at.duration_since(got[first].at)
    };
    rx.script([Reply::status(500)]);
    send(1);
    let got = rx.wait_for_requests(2, WAIT);
    let before = gap(&got, 0);
    assert!(
        before >= Duration::from_millis(240) && before < Duration::from_millis(1500),
        "300ms schedule: {before:?}"
    );

    h.rewrite_config(&delivery("\"2s\""));
    let outcome = h.reload();
    assert!(
        outcome.contains("applied live: delivery.retry_schedule"),
        "{outcome}"
    );
    rx.script([Reply::status(500)]);
    send(2);
    let got = rx.wait_for_requests(4, WAIT);
    let after = gap(&got, 2);
    assert!(
        after >= Duration::from_millis(1600) && after < Duration::from_millis(4000),
        "2s schedule: {after:?} (before the reload: {before:?})"
    );
}

#[test]
fn a_restart_only_change_is_logged_and_not_applied() {
    let h = Hookd::start_logged("");
    assert_eq!(h.call("GET", "/metrics", None, None).status, 401);
    // Another listen address and shard count (restart only) beside a live change.
    let text = config_text(&h.dir.path().join("data"), "[metrics]\npublic = true\n")
        .replace("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:1\"")
        .replace("shards = 2", "shards = 1");
    assert!(text.contains("127.0.0.1:1") && text.contains("shards = 1"));
    h.write_config_text(&text);
    let outcome = h.reload();
    assert!(
        outcome.contains("applied live: metrics.public; needs a restart (old value kept): server.listen, server.shards"),
        "{outcome}"
    );
    let log = h.log();
    for key in ["server.listen", "server.shards"] {
        assert!(
            log.contains(&format!("{key} changed; it needs a restart")),
            "{key}:\n{log}"
        );
    }
    // Still on the old address, and the live change took effect.
    assert_eq!(h.call("GET", "/api/v1/health", None, None).status, 204);
    assert_eq!(h.call("GET", "/metrics", None, None).status, 200);
    // Reloading the same file again changes nothing live, and still says what waits.
    let outcome = h.reload();
    assert!(
        outcome.contains(
            "config reloaded: needs a restart (old value kept): server.listen, server.shards"
        ),
        "{outcome}"
    );
}

/// A config with static definitions; `billing` delivers to `url` and signs with `secret`.
fn statics(url: &str, secret: &str, second_pass: bool) -> String {
    let mut s = format!(
        r#"
[delivery]
retry_schedule = ["100ms"]
allow_private_networks = true

[[event_types]]
name = "order.paid"
description = "{paid}"
schemas = '{{"1": {{"type": "object"}}}}'

[[apps]]
name = "{shop}"
uid = "shop"
metadata = {{ team = "payments" }}

[[apps.endpoints]]
uid = "billing"
url = "{url}"
description = "{billing}"
event_types = ["order.paid"]
secret = "{secret}"
headers = {{ X-Team = "billing" }}
"#,
        paid = if second_pass { "Paid, v2" } else { "Paid" },
        shop = if second_pass { "Shop 2" } else { "Shop" },
        billing = if second_pass { "Billing v2" } else { "Billing" },
    );
    if second_pass {
        s.push_str(
            "\n[[apps.endpoints]]\nuid = \"audit\"\nurl = \"http://127.0.0.1:9/audit\"\ndisabled = true\n",
        );
    } else {
        s.push_str(
            r#"
[[event_types]]
name = "order.refunded"

[[apps]]
name = "Legacy"
uid = "legacy"
"#,
        );
    }
    s
}

#[test]
fn static_definitions_are_applied_at_start_protected_and_updated_on_reload() {
    const S1: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let rx = Receiver::start();
    let h = Hookd::start_logged(&statics(&rx.url("/billing"), S1, false));

    // Applied at start, as declared.
    let app = h.admin("GET", "/api/v1/app/shop", None).json();
    assert_eq!(
        (app["name"].as_str(), app["metadata"]["team"].as_str()),
        (Some("Shop"), Some("payments"))
    );
    let ep = h
        .admin("GET", "/api/v1/app/shop/endpoint/billing", None)
        .json();
    assert_eq!(ep["description"], "Billing");
    assert_eq!(ep["filterTypes"], json!(["order.paid"]));
    let key = h
        .admin("GET", "/api/v1/app/shop/endpoint/billing/secret", None)
        .json()["key"]
        .clone();
    assert_eq!(key, S1, "the declared secret");
    let et = h.admin("GET", "/api/v1/event-type/order.paid", None).json();
    assert_eq!(et["description"], "Paid");
    assert_eq!(h.admin("GET", "/api/v1/app/legacy", None).status, 200);

    // The endpoint works: a message is delivered, signed with the declared secret.
    let body = json!({"eventType": "order.paid", "payload": {"n": 1}}).to_string();
    assert_eq!(
        h.admin("POST", "/api/v1/app/shop/msg", Some(&body)).status,
        202
    );
    let got = rx.wait_for_requests(1, WAIT);
    let r = &got[0];
    let ts: u64 = r.header("webhook-timestamp").unwrap().parse().unwrap();
    assert!(hookd::verify(
        &hookd::parse_secret(S1),
        r.header("webhook-id").unwrap(),
        ts,
        &r.body,
        r.header("webhook-signature").unwrap()
    ));
    assert_eq!(r.header("x-team"), Some("billing"));

    // Protected: 409 with a reason, for apps, endpoints and event types.
    for path in [
        "/api/v1/app/shop",
        "/api/v1/app/shop/endpoint/billing",
        "/api/v1/event-type/order.paid",
        "/api/v1/event-type/order.paid?expunge=true",
    ] {
        let r = h.admin("DELETE", path, None);
        assert_eq!(r.status, 409, "DELETE {path}: {}", r.body);
        assert!(
            r.json()["detail"]
                .as_str()
                .unwrap()
                .contains("declared in the config file"),
            "{}",
            r.body
        );
    }
    // What the API made itself can still be deleted.
    h.create("/api/v1/app", json!({"name": "Mine", "uid": "mine"}));
    assert_eq!(h.admin("DELETE", "/api/v1/app/mine", None).status, 204);
    // A change through the API lasts until the file is applied again.
    let r = h.admin(
        "PATCH",
        "/api/v1/app/shop/endpoint/billing",
        Some(r#"{"description":"edited by hand"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);

    // Reload: changed, added and removed definitions.
    h.rewrite_config(&statics(&rx.url("/billing"), S1, true));
    let outcome = h.reload();
    assert!(
        outcome.contains("definitions: 1 created, 3 updated, 2 no longer config-owned"),
        "{outcome}"
    );
    assert_eq!(
        h.admin("GET", "/api/v1/app/shop", None).json()["name"],
        "Shop 2"
    );
    assert_eq!(
        h.admin("GET", "/api/v1/app/shop/endpoint/billing", None)
            .json()["description"],
        "Billing v2"
    );
    let audit = h
        .admin("GET", "/api/v1/app/shop/endpoint/audit", None)
        .json();
    assert_eq!(audit["disabled"], true);
    assert_eq!(
        h.admin("GET", "/api/v1/event-type/order.paid", None).json()["description"],
        "Paid, v2"
    );
    // Removed from the file: kept, no longer protected.
    let log = h.log();
    assert!(
        log.contains("app legacy: no longer in the config file"),
        "{log}"
    );
    assert!(
        log.contains("event type order.refunded: no longer in the config file"),
        "{log}"
    );
    assert_eq!(h.admin("GET", "/api/v1/app/legacy", None).status, 200);
    assert_eq!(h.admin("DELETE", "/api/v1/app/legacy", None).status, 204);
    assert_eq!(
        h.admin(
            "DELETE",
            "/api/v1/event-type/order.refunded?expunge=true",
            None
        )
        .status,
        204
    );
    assert_eq!(
        h.admin("DELETE", "/api/v1/app/shop/endpoint/audit", None)
            .status,
        409
    );
    // The writes are audited, by "config".
    let trail = h.admin("GET", "/api/v1/audit?limit=250", None).json();
    let by_config: Vec<&str> = trail["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["tokenName"] == "config")
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "application.create",
        "endpoint.create",
        "event_type.update",
        "application.release",
    ] {
        assert!(by_config.contains(&action), "{action} in {by_config:?}");
    }
    // The same file again writes nothing.
    let outcome = h.reload();
    assert!(
        outcome.contains("config reloaded: nothing changed"),
        "{outcome}"
    );
}

#[test]
fn a_policy_tightened_on_reload_disables_violating_endpoints() {
    let extra = "[delivery]\nretry_schedule = [\"100ms\"]\nallow_private_networks = true\n";
    let h = Hookd::start_logged(extra);
    h.create("/api/v1/app", json!({"name": "Shop", "uid": "shop"}));
    let kept = Receiver::start();
    let denied = Receiver::start();
    h.create(
        "/api/v1/app/shop/endpoint",
        json!({"url": kept.url("/kept"), "uid": "kept"}),
    );
    h.create(
        "/api/v1/app/shop/endpoint",
        json!({"url": denied.url_with_host("localhost", "/denied"), "uid": "denied"}),
    );
    h.rewrite_config(&format!(
        "{extra}[endpoint_policy]\ndenied_hosts = [\"localhost\"]\n"
    ));
    let outcome = h.reload();
    assert!(
        outcome.contains("applied live: endpoint_policy.denied_hosts")
            && outcome.contains("1 endpoint(s) disabled by the endpoint policy"),
        "{outcome}"
    );
    let ep = |uid: &str| {
        h.admin("GET", &format!("/api/v1/app/shop/endpoint/{uid}"), None)
            .json()
    };
    assert_eq!(ep("denied")["disabled"], true);
    assert_eq!(ep("kept")["disabled"], false);
    let log = h.log();
    assert!(
        log.contains("endpoint disabled: it breaks the endpoint policy")
            && log.contains("endpoint_policy.denied_hosts: host localhost is denied"),
        "{log}"
    );
    // Deliveries go on to the endpoint that complies, and the disabled one gets nothing.
    let body = json!({"eventType": "order.paid", "payload": {"n": 1}}).to_string();
    let msg = h.admin("POST", "/api/v1/app/shop/msg", Some(&body)).json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    kept.wait_for_requests(1, WAIT);
    let deadline = std::time::Instant::now() + WAIT;
    let kept_id = ep("kept")["id"].clone();
    loop {
        let v = h
            .admin("GET", &format!("/api/v1/app/shop/msg/{msg}/endpoint"), None)
            .json();
        let data = v["data"].as_array().unwrap();
        if data.iter().any(|d| d["id"] == kept_id && d["status"] == 0) {
            assert_eq!(data.len(), 1, "no delivery for the disabled endpoint: {v}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not delivered: {v}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(denied.requests().is_empty());
    // The API now refuses the rule too, and re-enabling the endpoint cannot bypass it.
    let r = h.admin(
        "PATCH",
        "/api/v1/app/shop/endpoint/denied",
        Some(r#"{"disabled": false}"#),
    );
    assert_eq!(r.status, 422, "{}", r.body);
}
