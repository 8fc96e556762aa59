//! The app portal against the real binary: portal tokens from
//! `POST /api/v1/auth/app-portal-access/{app}` (Svix's route and shapes), scoped to one app and
//! to their capabilities on every route family, refused after expiry, logout, `expire-all` and
//! the app's deletion, durable across a crash; the page's headers and theme; and the portal in
//! Debian's headless Chromium (`tests/compat/portal.py`), which creates an endpoint, sends a
//! test event, reads a failing endpoint's attempts, resends, rotates the secret, and checks a
//! read-only link shows no write control.

#[path = "support/browser.rs"]
mod browser;
#[path = "support/hookd.rs"]
mod hookd;
#[path = "support/receiver.rs"]
mod receiver;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hookd::{Hookd, ADMIN, INGEST, READER};
use receiver::Receiver;
use serde_json::{json, Value};

const CONFIG: &str = r#"
[delivery]
retry_schedule = ["100ms"]
timeout = "2s"
connect_timeout = "1s"
allow_private_networks = true
"#;
const WAIT: Duration = Duration::from_secs(20);
/// Messages to one endpoint in the browser test: more than the page's 50 per page.
const PAGED: usize = 60;
/// Event types named to list before the browser test's own: more than a page (250).
const CATALOGUE_FILLER: usize = 260;

/// A portal token for `app` made with `body`; its `url` and `token`.
fn access(h: &Hookd, app: &str, body: Value) -> (String, String) {
    let r = h.admin(
        "POST",
        &format!("/api/v1/auth/app-portal-access/{app}"),
        Some(&body.to_string()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    (
        v["url"].as_str().unwrap().to_owned(),
        v["token"].as_str().unwrap().to_owned(),
    )
}

fn status(h: &Hookd, method: &str, path: &str, token: &str, body: Option<&str>) -> u16 {
    h.call(method, path, Some(token), body).status
}

struct App {
    id: String,
    ep: String,
    msg: String,
}

fn app_with_traffic(h: &Hookd, uid: &str, url: &str) -> App {
    let app = h.create("/api/v1/app", json!({"name": uid, "uid": uid}));
    let ep = h.create(
        &format!("/api/v1/app/{uid}/endpoint"),
        json!({"url": url, "description": "main"}),
    );
    let r = h.admin(
        "POST",
        &format!("/api/v1/app/{uid}/msg"),
        Some(r#"{"eventType":"order.paid","payload":{"n":1}}"#),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    App {
        id: app["id"].as_str().unwrap().to_owned(),
        ep: ep["id"].as_str().unwrap().to_owned(),
        msg: r.json()["id"].as_str().unwrap().to_owned(),
    }
}

/// Every route family of an app, as (method, path, body).
fn app_routes(app: &str, ep: &str, msg: &str) -> Vec<(&'static str, String, Option<String>)> {
    let a = format!("/api/v1/app/{app}");
    let e = format!("{a}/endpoint/{ep}");
    let body = |v: Value| Some(v.to_string());
    vec![
        ("GET", a.clone(), None),
        ("PUT", a.clone(), body(json!({"name": "x"}))),
        ("DELETE", a.clone(), None),
        ("GET", format!("{a}/endpoint"), None),
        (
            "POST",
            format!("{a}/endpoint"),
            body(json!({"url": "https://example.com/h"})),
        ),
        ("GET", e.clone(), None),
        ("PATCH", e.clone(), body(json!({"description": "x"}))),
        ("DELETE", e.clone(), None),
        ("GET", format!("{e}/secret"), None),
        ("POST", format!("{e}/secret/rotate"), body(json!({}))),
        ("GET", format!("{e}/headers"), None),
        ("PUT", format!("{e}/headers"), body(json!({"headers": {}}))),
        ("GET", format!("{e}/stats"), None),
        ("GET", format!("{e}/msg"), None),
        (
            "POST",
            format!("{e}/send-example"),
            body(json!({"eventType": "svix.ping"})),
        ),
        (
            "POST",
            format!("{e}/recover"),
            body(json!({"since": "2026-01-01T00:00:00Z"})),
        ),
        (
            "POST",
            format!("{e}/replay-missing"),
            body(json!({"since": "2026-01-01T00:00:00Z"})),
        ),
        (
            "POST",
            format!("{e}/filter/test"),
            body(json!({"payload": {}})),
        ),
        ("GET", format!("{a}/msg"), None),
        (
            "POST",
            format!("{a}/msg"),
            body(json!({"eventType": "a", "payload": {}})),
        ),
        ("POST", format!("{a}/msg/batch"), body(json!([]))),
        ("GET", format!("{a}/msg/{msg}"), None),
        ("DELETE", format!("{a}/msg/{msg}/content"), None),
        ("GET", format!("{a}/msg/{msg}/endpoint"), None),
        ("POST", format!("{a}/msg/{msg}/endpoint/{ep}/resend"), None),
        ("GET", format!("{a}/attempt/msg/{msg}"), None),
        ("GET", format!("{a}/attempt/endpoint/{ep}"), None),
        (
            "POST",
            format!("/api/v1/auth/app-portal-access/{app}"),
            body(json!({})),
        ),
        (
            "POST",
            format!("/api/v1/auth/app/{app}/expire-all"),
            body(json!({})),
        ),
    ]
}

#[test]
fn portal_tokens_see_only_their_app_and_do_only_what_they_may() {
    let h = Hookd::start(CONFIG);
    let rx = Receiver::start();
    let a = app_with_traffic(&h, "shop-a", &rx.url("/a"));
    let b = app_with_traffic(&h, "shop-b", &rx.url("/b"));
    rx.wait_for_requests(2, WAIT);

    let (url, token) = access(&h, "shop-a", json!({}));
    assert!(token.starts_with("hkp_") && token.len() == 68, "{token}");
    assert_eq!(
        url,
        format!("http://test/portal#token={token}"),
        "the request's Host"
    );
    let session = h
        .call("GET", "/api/v1/auth/session", Some(&token), None)
        .json();
    assert_eq!(session["kind"], "portal");
    assert_eq!(session["appId"], a.id.as_str());
    assert_eq!(session["readOnly"], false);
    assert_eq!(session["capabilities"].as_array().unwrap().len(), 6);

    // Its own app, by id or uid: every route a customer needs answers (the writes too).
    let own = format!("/api/v1/app/{}", a.id);
    for path in [
        own.clone(),
        "/api/v1/app/shop-a".into(),
        format!("{own}/endpoint"),
        format!("{own}/endpoint/{}", a.ep),
        format!("{own}/endpoint/{}/secret", a.ep),
        format!("{own}/endpoint/{}/stats", a.ep),
        format!("{own}/endpoint/{}/msg", a.ep),
        format!("{own}/msg/{}", a.msg),
        format!("{own}/attempt/endpoint/{}", a.ep),
        format!("{own}/attempt/msg/{}", a.msg),
        "/api/v1/event-type".into(),
    ] {
        assert_eq!(status(&h, "GET", &path, &token, None), 200, "{path}");
    }
    let r = h.call(
        "POST",
        &format!("{own}/endpoint/{}/send-example", a.ep),
        Some(&token),
        Some(r#"{"eventType":"svix.ping"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);

    // App B, by id and uid, and an app that does not exist: 403 on every route family, and
    // nothing about B in the answers.
    for app in [b.id.as_str(), "shop-b", "no-such-app"] {
        for (method, path, body) in app_routes(app, &b.ep, &b.msg) {
            let r = h.call(method, &path, Some(&token), body.as_deref());
            assert_eq!(r.status, 403, "{method} {path}: {}", r.body);
            assert!(
                !r.body.contains(&b.ep) && !r.body.contains("shop-b\""),
                "{}",
                r.body
            );
        }
    }
    // Outside any app: the app list, the audit trail, sources, metrics, the status summary,
    // messages into its own app (ingest), deleting its own app.
    for (method, path) in [
        ("GET", "/api/v1/app"),
        ("POST", "/api/v1/app"),
        ("GET", "/api/v1/audit"),
        ("GET", "/api/v1/source"),
        ("POST", "/api/v1/event-type"),
        ("DELETE", "/api/v1/event-type/order.paid"),
    ] {
        assert_eq!(
            status(&h, method, path, &token, Some("{}")),
            403,
            "{method} {path}"
        );
    }
    assert_eq!(status(&h, "GET", "/metrics", &token, None), 401);
    assert_eq!(
        status(&h, "GET", "/api/v1/status/summary", &token, None),
        401
    );
    let r = h.call(
        "POST",
        &format!("{own}/msg"),
        Some(&token),
        Some(r#"{"eventType":"a","payload":{}}"#),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(status(&h, "DELETE", &own, &token, None), 403);
    // The other tokens keep their own rules on the new routes.
    assert_eq!(
        status(
            &h,
            "POST",
            "/api/v1/auth/app-portal-access/shop-a",
            READER,
            Some("{}")
        ),
        403
    );
    assert_eq!(
        status(
            &h,
            "POST",
            "/api/v1/auth/app-portal-access/shop-a",
            INGEST,
            Some("{}")
        ),
        403
    );
    assert_eq!(status(&h, "POST", "/api/v1/auth/logout", ADMIN, None), 403);
    let who = h
        .call("GET", "/api/v1/auth/session", Some(READER), None)
        .json();
    assert_eq!(who, json!({"kind": "token", "name": "viewer"}));

    // A write through the portal is audited under the portal's name.
    let r = h.call(
        "PATCH",
        &format!("{own}/endpoint/{}", a.ep),
        Some(&token),
        Some(r#"{"description":"from the portal"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let audit = h.admin("GET", "/api/v1/audit", None).json();
    let actors: Vec<(&str, &str)> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["tokenName"].as_str().unwrap(),
                e["action"].as_str().unwrap(),
            )
        })
        .collect();
    let portal_name = format!("portal:{}", a.id);
    assert!(
        actors.contains(&(portal_name.as_str(), "endpoint.update")),
        "{actors:?}"
    );
    assert!(
        actors.contains(&("admin", "app-portal-access.create")),
        "{actors:?}"
    );
}

#[test]
fn read_only_tokens_and_capabilities_limit_writes() {
    let h = Hookd::start(CONFIG);
    let rx = Receiver::start();
    let a = app_with_traffic(&h, "shop", &rx.url("/a"));
    rx.wait_for_requests(1, WAIT);
    let own = format!("/api/v1/app/{}", a.id);
    let e = format!("{own}/endpoint/{}", a.ep);

    let (_, ro) = access(&h, "shop", json!({"readOnly": true}));
    let session = h
        .call("GET", "/api/v1/auth/session", Some(&ro), None)
        .json();
    assert_eq!(session["readOnly"], true);
    assert_eq!(
        session["capabilities"],
        json!(["ViewBase", "ViewEndpointSecret"])
    );
    for path in [
        e.clone(),
        format!("{e}/secret"),
        format!("{own}/msg/{}", a.msg),
    ] {
        assert_eq!(status(&h, "GET", &path, &ro, None), 200, "{path}");
    }
    let before = h.admin("GET", &e, None).body;
    for (method, path, body) in app_routes(&a.id, &a.ep, &a.msg) {
        if method == "GET" || path.ends_with("/filter/test") {
            continue;
        }
        let r = h.call(method, &path, Some(&ro), body.as_deref());
        assert_eq!(r.status, 403, "read-only {method} {path}: {}", r.body);
    }
    assert_eq!(h.admin("GET", &e, None).body, before, "nothing changed");

    // Svix's capabilities: attempts without endpoint management, and no secret without a
    // capability that shows it.
    let (_, attempts_only) = access(
        &h,
        "shop",
        json!({"capabilities": ["ViewBase", "CreateAttempts"]}),
    );
    assert_eq!(
        status(&h, "GET", &format!("{e}/secret"), &attempts_only, None),
        403
    );
    assert_eq!(
        status(
            &h,
            "POST",
            &format!("{e}/send-example"),
            &attempts_only,
            Some(r#"{"eventType":"svix.ping"}"#)
        ),
        200
    );
    assert_eq!(
        status(
            &h,
            "PATCH",
            &e,
            &attempts_only,
            Some(r#"{"description":"x"}"#)
        ),
        403
    );
    let (_, secrets) = access(
        &h,
        "shop",
        json!({"capabilities": ["ViewBase", "ManageEndpointSecret"]}),
    );
    assert_eq!(
        status(
            &h,
            "POST",
            &format!("{e}/secret/rotate"),
            &secrets,
            Some("{}")
        ),
        200
    );
    assert_eq!(status(&h, "DELETE", &e, &secrets, None), 403);

    // The request's checks, each located.
    for (body, field) in [
        (json!({"capabilities": ["ViewBase", "Fly"]}), "capabilities"),
        (json!({"capabilities": ["CreateAttempts"]}), "capabilities"),
        (json!({"expiry": 0}), "expiry"),
        (json!({"expiry": 8 * 24 * 3600}), "expiry"),
        (json!({"sessionId": ""}), "sessionId"),
    ] {
        let r = h.admin(
            "POST",
            "/api/v1/auth/app-portal-access/shop",
            Some(&body.to_string()),
        );
        assert_eq!(r.status, 422, "{body}: {}", r.body);
        assert_eq!(
            r.json()["detail"][0]["loc"],
            json!(["body", field]),
            "{}",
            r.body
        );
    }
    let r = h.admin("POST", "/api/v1/auth/app-portal-access/nope", Some("{}"));
    assert_eq!(r.status, 404, "{}", r.body);
    // With `application`, a missing app is made, under the path's uid.
    let r = h.admin(
        "POST",
        "/api/v1/auth/app-portal-access/new-customer",
        Some(r#"{"application":{"name":"New customer"}}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let app = h.admin("GET", "/api/v1/app/new-customer", None).json();
    assert_eq!(app["name"], "New customer");
    let token = r.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(
        status(&h, "GET", "/api/v1/app/new-customer/endpoint", &token, None),
        200
    );
}

#[test]
fn tokens_expire_are_revoked_and_survive_a_crash() {
    let mut h = Hookd::start(CONFIG);
    h.create("/api/v1/app", json!({"name": "Shop", "uid": "shop"}));
    h.create("/api/v1/app", json!({"name": "Gone", "uid": "gone"}));
    let list = "/api/v1/app/shop/endpoint";

    // Expiry: a one-second token works, then is refused (hookd's clock decides).
    let (_, short) = access(&h, "shop", json!({"expiry": 1}));
    let made = Instant::now();
    assert_eq!(status(&h, "GET", list, &short, None), 200);
    std::thread::sleep(Duration::from_millis(1100).saturating_sub(made.elapsed()));
    let r = h.call("GET", list, Some(&short), None);
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.body.contains("expired"), "{}", r.body);

    // Logout revokes the token it carries, and only that one.
    let (_, one) = access(&h, "shop", json!({}));
    let (_, two) = access(&h, "shop", json!({}));
    assert_eq!(status(&h, "POST", "/api/v1/auth/logout", &one, None), 204);
    assert_eq!(status(&h, "GET", list, &one, None), 401);
    assert_eq!(status(&h, "POST", "/api/v1/auth/logout", &one, None), 401);
    assert_eq!(status(&h, "GET", list, &two, None), 200);

    // expire-all: by session, then all of them; a later token is new and works.
    let (_, s1) = access(&h, "shop", json!({"sessionId": "s1"}));
    let (_, s2) = access(&h, "shop", json!({"sessionId": "s2"}));
    let r = h.admin(
        "POST",
        "/api/v1/auth/app/shop/expire-all",
        Some(r#"{"sessionIds":["s1"]}"#),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(status(&h, "GET", list, &s1, None), 401);
    assert_eq!(status(&h, "GET", list, &s2, None), 200);
    let r = h.admin("POST", "/api/v1/auth/app/shop/expire-all", Some("{}"));
    assert_eq!(r.status, 204, "{}", r.body);
    for t in [&s2, &two] {
        assert_eq!(status(&h, "GET", list, t, None), 401);
    }
    let r = h.admin("POST", "/api/v1/auth/app/nope/expire-all", Some("{}"));
    assert_eq!(r.status, 404, "{}", r.body);

    // A 200 from the access route means the token is on disk: it works after a SIGKILL.
    let (_, kept) = access(&h, "shop", json!({}));
    let (_, gone) = access(&h, "gone", json!({}));
    h.crash_and_restart();
    assert_eq!(status(&h, "GET", list, &kept, None), 200);
    assert_eq!(status(&h, "GET", "/api/v1/app/gone", &gone, None), 200);

    // Deleting the app revokes its tokens, even if an app with the same uid comes back.
    assert_eq!(h.admin("DELETE", "/api/v1/app/gone", None).status, 204);
    h.create("/api/v1/app", json!({"name": "Gone again", "uid": "gone"}));
    assert_eq!(status(&h, "GET", "/api/v1/app/gone", &gone, None), 401);
    // Garbage and lookalikes are refused as unknown.
    for t in ["hkp_", "hkp_zz", &format!("hkp_{}", "0".repeat(64))] {
        assert_eq!(status(&h, "GET", list, t, None), 401, "{t}");
    }
}

#[test]
fn the_page_carries_its_policy_and_theme_and_can_be_turned_off() {
    let h = Hookd::start(&format!(
        "{CONFIG}\n[portal]\npublic_url = \"https://hooks.example.com/base/\"\n\
         frame_ancestors = [\"'self'\", \"https://*.example.com\"]\n\
         token_expiry_max = \"1h\"\n\
         [portal.theme]\ntitle = \"Acme <hooks>\"\naccent = \"#ff0066\"\n\
         logo_url = \"https://static.example.com/logo.svg\"\n"
    ));
    h.create("/api/v1/app", json!({"name": "Shop", "uid": "shop"}));
    let (url, token) = access(&h, "shop", json!({}));
    assert_eq!(
        url,
        format!("https://hooks.example.com/base/portal#token={token}")
    );
    // The default lifetime is the configured maximum, and no more is given.
    let session = h
        .call("GET", "/api/v1/auth/session", Some(&token), None)
        .json();
    let expires = session["expiresAt"].as_str().unwrap();
    assert!(!expires.is_empty());
    let r = h.admin(
        "POST",
        "/api/v1/auth/app-portal-access/shop",
        Some(r#"{"expiry":3601}"#),
    );
    assert_eq!(r.status, 422, "{}", r.body);

    let page = h.call("GET", "/portal", None, None);
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").unwrap_or("");
    assert!(
        csp.starts_with("default-src 'none'; script-src 'sha256-"),
        "{csp}"
    );
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    assert!(
        csp.contains("img-src 'self' data: https://static.example.com;"),
        "{csp}"
    );
    assert!(
        csp.ends_with("frame-ancestors 'self' https://*.example.com"),
        "{csp}"
    );
    assert!(
        page.body.contains("data-title=\"Acme &lt;hooks&gt;\""),
        "{}",
        &page.body[..400]
    );
    assert!(page.body.contains("data-accent=\"#ff0066\""));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(h.call("GET", "/portal/", None, None).status, 200);
    assert_eq!(h.call("POST", "/portal", None, Some("{}")).status, 405);

    // Turned off by a reload: no page, no new tokens, and the old ones stop working.
    let text = std::fs::read_to_string(h.config_path()).unwrap();
    h.write_config_text(&text.replace("[portal]\n", "[portal]\nenabled = false\n"));
    signal_reload(&h);
    assert_eq!(h.call("GET", "/portal", None, None).status, 404);
    let r = h.admin("POST", "/api/v1/auth/app-portal-access/shop", Some("{}"));
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(status(&h, "GET", "/api/v1/app/shop", &token, None), 401);
}

/// `portal.tokens_per_app_max` bounds an app's live tokens: beyond it, 409 naming the key and
/// the way out; tokens revoked, expired by `expire-all` or of other apps do not count; a
/// reload raises it.
#[test]
fn an_apps_live_tokens_are_capped() {
    let h = Hookd::start(&format!("{CONFIG}\n[portal]\ntokens_per_app_max = 3\n"));
    h.create("/api/v1/app", json!({"name": "Shop", "uid": "shop"}));
    h.create("/api/v1/app", json!({"name": "Other", "uid": "other"}));
    let list = "/api/v1/app/shop/endpoint";
    let create = |app: &str| {
        h.admin(
            "POST",
            &format!("/api/v1/auth/app-portal-access/{app}"),
            Some("{}"),
        )
    };
    let first: Vec<String> = (0..3).map(|_| access(&h, "shop", json!({})).1).collect();
    let r = create("shop");
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("portal.tokens_per_app_max"), "{}", r.body);
    assert!(r.body.contains("expire-all"), "{}", r.body);
    // Refused, not evicted: the three still work; another app has its own count.
    for t in &first {
        assert_eq!(status(&h, "GET", list, t, None), 200);
    }
    assert_eq!(create("other").status, 200);

    // A signed-out token frees its place, once.
    assert_eq!(
        status(&h, "POST", "/api/v1/auth/logout", &first[0], None),
        204
    );
    assert_eq!(create("shop").status, 200);
    assert_eq!(create("shop").status, 409);

    // Expired ones do not count (the prune has not come by: they are dropped at the limit).
    let r = h.admin("POST", "/api/v1/auth/app/shop/expire-all", Some("{}"));
    assert_eq!(r.status, 204, "{}", r.body);
    let fresh: Vec<String> = (0..3).map(|_| access(&h, "shop", json!({})).1).collect();
    assert_eq!(create("shop").status, 409);
    assert_eq!(status(&h, "GET", list, &first[1], None), 401);
    assert_eq!(status(&h, "GET", list, &fresh[2], None), 200);

    // Live on reload.
    let text = std::fs::read_to_string(h.config_path()).unwrap();
    h.write_config_text(&text.replace("tokens_per_app_max = 3", "tokens_per_app_max = 4"));
    hookd::signal(h.pid(), nix::sys::signal::Signal::SIGHUP);
    let deadline = Instant::now() + WAIT;
    while create("shop").status != 200 {
        assert!(Instant::now() < deadline, "the reload was not applied");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(create("shop").status, 409);
}

/// What the portal submits meets the same rules as any API client: the SSRF guard, the
/// endpoint policy and the API's checks and limits, each a located 422.
#[test]
fn the_portal_meets_the_endpoint_policy_the_ssrf_guard_and_the_limits() {
    let h = Hookd::start(
        "[endpoint_policy]\nhttps_only = true\ndenied_hosts = [\"evil.example\"]\nendpoints_per_app_max = 1\n",
    );
    h.create("/api/v1/app", json!({"name": "Shop", "uid": "shop"}));
    let (_, token) = access(&h, "shop", json!({}));
    let post = |body: Value| {
        h.call(
            "POST",
            "/api/v1/app/shop/endpoint",
            Some(&token),
            Some(&body.to_string()),
        )
    };
    for (url, says) in [
        ("http://example.com/hook", "endpoint_policy.https_only"),
        ("https://127.0.0.1/hook", "loopback address"),
        ("https://10.1.2.3/hook", "private address"),
        (
            "https://a.evil.example/hook",
            "endpoint_policy.denied_hosts",
        ),
    ] {
        let r = post(json!({"url": url}));
        assert_eq!(r.status, 422, "{url}: {}", r.body);
        let d = &r.json()["detail"][0];
        assert_eq!(d["loc"], json!(["body", "url"]), "{}", r.body);
        assert!(
            d["msg"].as_str().unwrap().contains(says),
            "{url}: {}",
            r.body
        );
    }
    let r = post(json!({"url": "https://hooks.example.com/a", "filterTypes": ["bad name!"]}));
    assert_eq!(r.status, 422, "{}", r.body);
    let r = post(json!({"url": "https://hooks.example.com/a"}));
    assert_eq!(r.status, 201, "{}", r.body);
    let r = post(json!({"url": "https://hooks.example.com/b"}));
    assert_eq!(r.status, 422, "endpoints_per_app_max: {}", r.body);
}

/// Sends SIGHUP and waits until the new config answers (the page is gone).
fn signal_reload(h: &Hookd) {
    hookd::signal(h.pid(), nix::sys::signal::Signal::SIGHUP);
    let deadline = Instant::now() + WAIT;
    while h.call("GET", "/portal", None, None).status != 404 {
        assert!(Instant::now() < deadline, "the reload was not applied");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn portal_in_headless_chromium() {
    browser::require();
    let started = Instant::now();
    let h = Hookd::start(CONFIG);
    let rx = Receiver::start();
    let (failing, healed) = Receiver::failing_until_healed(503, "receiver down for maintenance");
    h.create("/api/v1/app", json!({"name": "Acme Corp", "uid": "acme"}));
    h.create("/api/v1/app", json!({"name": "Other", "uid": "other"}));
    // More event types than a page of the list holds (250), listed before the test's own:
    // the page must read the whole catalogue to offer and show `invoice.paid`.
    for i in 0..CATALOGUE_FILLER {
        let r = h.admin(
            "POST",
            "/api/v1/event-type",
            Some(&json!({"name": format!("a.filler.{i:03}"), "description": "filler"}).to_string()),
        );
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let r = h.admin(
        "POST",
        "/api/v1/event-type",
        Some(
            &json!({
                "name": "invoice.paid",
                "description": "An invoice was paid in full.",
                "schemas": {"1": {"type": "object", "properties": {"amount": {"type": "integer"}},
                                  "examples": [{"invoice": "in_123", "amount": 4200}]}},
            })
            .to_string(),
        ),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let bad = h.create(
        "/api/v1/app/acme/endpoint",
        json!({"url": failing.url("/hook"), "description": "failing", "filterTypes": ["invoice.paid"]}),
    );
    // More messages than a page holds (50), to an endpoint of their own.
    let r = h.admin(
        "POST",
        "/api/v1/event-type",
        Some(r#"{"name":"bulk.event","description":"bulk"}"#),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let busy_rx = Receiver::start();
    let busy = h.create(
        "/api/v1/app/acme/endpoint",
        json!({"url": busy_rx.url("/busy"), "filterTypes": ["bulk.event"]}),
    );
    let busy_ep = busy["id"].as_str().unwrap().to_owned();
    for i in 0..PAGED {
        let r = h.admin(
            "POST",
            "/api/v1/app/acme/msg",
            Some(&json!({"eventType": "bulk.event", "payload": {"i": i}}).to_string()),
        );
        assert_eq!(r.status, 202, "{}", r.body);
    }
    busy_rx.wait_for_requests(PAGED, WAIT);
    let bad_ep = bad["id"].as_str().unwrap().to_owned();
    let r = h.admin(
        "POST",
        "/api/v1/app/acme/msg",
        Some(r#"{"eventType":"invoice.paid","payload":{"amount":1}}"#),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let failed_msg = r.json()["id"].as_str().unwrap().to_owned();
    h.wait_json(
        &format!("/api/v1/app/acme/msg/{failed_msg}/endpoint"),
        ADMIN,
        WAIT,
        |v| {
            v["data"]
                .as_array()
                .is_some_and(|d| d.iter().any(|e| e["status"] == 2))
        },
    );
    healed.store(true, Ordering::SeqCst);

    // The harness's requests say `Host: test`; the browser reaches hookd at its address.
    let here = |url: String| url.replacen("http://test/", &format!("http://{}/", h.addr), 1);
    let (url, token) = access(&h, "acme", json!({}));
    let (ro_url, ro_token) = access(&h, "acme", json!({"readOnly": true}));
    let (url, ro_url) = (here(url), here(ro_url));
    let out = browser::run(
        "portal.py",
        &[
            &url,
            &ro_url,
            &rx.url("/portal-hook"),
            &bad_ep,
            &failed_msg,
            &busy_ep,
            &PAGED.to_string(),
            &browser::artifacts_dir().display().to_string(),
        ],
        "portal: ok",
    );
    // What the page did, seen from outside: an endpoint made by the customer, to the receiver,
    // which got the test event and, after the rotation, a message signed with the new secret.
    let eps = h.admin("GET", "/api/v1/app/acme/endpoint", None).json();
    let made = eps["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["url"] == rx.url("/portal-hook"))
        .unwrap_or_else(|| panic!("no endpoint made by the page: {eps}\n{out}"))
        .clone();
    assert_eq!(made["description"], "edited in the portal");
    assert_eq!(made["disabled"], false);
    assert!(
        !eps.to_string().contains("-deleted"),
        "the endpoint deleted in the page is still there: {eps}"
    );
    assert_eq!(made["filterTypes"], json!(["invoice.paid"]));
    let made_id = made["id"].as_str().unwrap();
    let headers = h
        .admin(
            "GET",
            &format!("/api/v1/app/acme/endpoint/{made_id}/headers"),
            None,
        )
        .json();
    assert_eq!(
        headers["headers"],
        json!({"X-Customer": "acme"}),
        "{headers}"
    );
    let seen = rx.wait_for_requests(1, WAIT);
    assert!(
        seen.iter().any(|r| r.header("webhook-id").is_some()
            && String::from_utf8_lossy(&r.body).contains("in_123")),
        "the test event (the catalogue's example) did not arrive"
    );
    // The secret the page showed after rotating is the one hookd now signs with.
    let secret_line = out
        .lines()
        .find_map(|l| l.strip_prefix("rotated secret: "))
        .unwrap_or_else(|| panic!("the script did not report the rotated secret:\n{out}"));
    let secret = h
        .admin(
            "GET",
            &format!("/api/v1/app/acme/endpoint/{made_id}/secret"),
            None,
        )
        .json()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(secret_line, secret);
    let r = h.admin(
        "POST",
        "/api/v1/app/acme/msg",
        Some(r#"{"eventType":"invoice.paid","payload":{"invoice":"after-rotation"}}"#),
    );
    assert_eq!(r.status, 202);
    let after = rx.wait_for_requests(seen.len() + 1, WAIT);
    let last = after
        .iter()
        .find(|r| String::from_utf8_lossy(&r.body).contains("after-rotation"))
        .expect("the message after the rotation");
    let key = hookd::parse_secret(&secret);
    let id = last.header("webhook-id").unwrap();
    let ts: u64 = last.header("webhook-timestamp").unwrap().parse().unwrap();
    assert!(
        hookd::verify(
            &key,
            id,
            ts,
            &last.body,
            last.header("webhook-signature").unwrap()
        ),
        "not signed with the rotated secret"
    );
    // The recovery and the resend from the page reached the healed receiver.
    let attempts = h.wait_json(
        &format!("/api/v1/app/acme/attempt/msg/{failed_msg}"),
        ADMIN,
        WAIT,
        |v| {
            v["data"].as_array().is_some_and(|d| {
                d.iter()
                    .any(|a| a["triggerType"] == 1 && a["responseStatusCode"] == 200)
            })
        },
    );
    assert!(
        attempts["data"].as_array().unwrap().len() >= 3,
        "{attempts}"
    );
    // The read-only link signed out in the page: its token is revoked; the other still works.
    assert_eq!(status(&h, "GET", "/api/v1/app/acme", &ro_token, None), 401);
    assert_eq!(status(&h, "GET", "/api/v1/app/acme", &token, None), 200);
    eprintln!(
        "portal test took {:?}; screenshots in {}",
        started.elapsed(),
        browser::artifacts_dir().display()
    );
}
