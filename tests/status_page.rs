//! The status page in a real browser: the real binary, real receivers on loopback (one of them
//! failing), and Debian's headless Chromium driven through chromedriver by
//! `tests/compat/status_page.py`. `.ci/run` installs `chromium` and `chromium-driver`; without
//! them this test fails and says so.
//!
//! The browser signs in, sees the charts draw non-zero data, finds the failing and the disabled
//! endpoint, re-enables one and recovers the other; this test then checks through the API that
//! both happened. Screenshots land in `target/test-artifacts/`.

#[path = "support/browser.rs"]
mod browser;
#[path = "support/hookd.rs"]
mod hookd;
#[path = "support/receiver.rs"]
mod receiver;

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use hookd::{Hookd, ADMIN, READER};
use receiver::Receiver;
use serde_json::{json, Value};

/// One retry 100 ms after the first attempt, then the delivery fails.
const CONFIG: &str = r#"
[delivery]
retry_schedule = ["100ms"]
timeout = "2s"
connect_timeout = "1s"
allow_private_networks = true
"#;
const MESSAGES: usize = 6;
const WAIT: Duration = Duration::from_secs(20);
const PAYLOAD_MARKER: &str = "payload-marker-7f3a";

#[test]
fn status_page_in_headless_chromium() {
    browser::require();
    let started = Instant::now();
    let h = Hookd::start(CONFIG);
    let good = Receiver::start();
    let (bad, healed) = Receiver::failing_until_healed(500, "upstream exploded");
    let r = h.admin(
        "POST",
        "/api/v1/app",
        Some(r#"{"name":"Shop","uid":"shop"}"#),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let endpoint = |body: Value| -> String {
        let r = h.admin("POST", "/api/v1/app/shop/endpoint", Some(&body.to_string()));
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()["id"].as_str().unwrap().to_owned()
    };
    let good_ep = endpoint(json!({"url": good.url("/ok")}));
    let bad_ep = endpoint(json!({"url": bad.url("/hook?token=sekrit"), "description": "billing"}));
    let off_ep = endpoint(json!({"url": good.url("/paused"), "disabled": true}));

    // The page itself needs no token and carries its policy.
    let page = h.call("GET", "/", None, None);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<title>hookd status</title>"));
    let csp = page.header("content-security-policy").unwrap_or("");
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    assert_eq!(h.call("GET", "/status", None, None).status, 200);
    assert_eq!(h.call("POST", "/", None, Some("{}")).status, 405);
    // The summary needs a read token.
    assert_eq!(
        h.call("GET", "/api/v1/status/summary", None, None).status,
        401
    );

    let mut msgs = Vec::new();
    for i in 0..MESSAGES {
        let body = json!({"eventType": "order.paid", "payload": {"i": i, "m": PAYLOAD_MARKER}});
        let r = h.admin("POST", "/api/v1/app/shop/msg", Some(&body.to_string()));
        assert_eq!(r.status, 202, "{}", r.body);
        msgs.push(r.json()["id"].as_str().unwrap().to_owned());
    }
    good.wait_for_requests(MESSAGES, WAIT);
    bad.wait_for_requests(2 * MESSAGES, WAIT);
    for m in &msgs {
        h.wait_json(
            &format!("/api/v1/app/shop/msg/{m}/endpoint"),
            ADMIN,
            WAIT,
            |v| {
                v["data"]
                    .as_array()
                    .is_some_and(|d| d.iter().any(|e| e["id"] == bad_ep && e["status"] == 2))
            },
        );
    }

    // The summary as the page gets it.
    let s = h.wait_json("/api/v1/status/summary", READER, WAIT, |v| {
        v["endpoints"]["unhealthy"]
            .as_array()
            .is_some_and(|u| u.iter().any(|e| e["id"] == bad_ep))
    });
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(s["shards"].as_array().unwrap().len(), 2);
    assert!(
        s["shards"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["up"] == true),
        "{s}"
    );
    assert!(s["driver"].as_str().is_some_and(|d| !d.is_empty()));
    assert_eq!(s["disk"]["logMaxBytes"], 10u64 << 30);
    assert!(s["disk"]["logBytes"].as_u64().unwrap() > 0);
    let totals = &s["series"]["totals"];
    assert_eq!(s["series"]["names"], json!(["ingest", "success", "failed"]));
    assert_eq!(totals[0], MESSAGES);
    assert_eq!(totals[1], MESSAGES);
    assert_eq!(totals[2], 2 * MESSAGES);
    for (i, total) in totals.as_array().unwrap().iter().enumerate() {
        let values = s["series"]["values"][i].as_array().unwrap();
        // From the start on (hookd has run for seconds), never more than the ring's 15 min.
        let since_start = s["uptimeMs"].as_u64().unwrap() / 1000 + 2;
        assert!(
            (1..=since_start).contains(&(values.len() as u64)),
            "{} values after {since_start} s",
            values.len()
        );
        let sum: u64 = values.iter().map(|v| v.as_u64().unwrap()).sum();
        assert_eq!(
            sum,
            total.as_u64().unwrap(),
            "series {i} adds up to its total"
        );
    }
    let unhealthy = s["endpoints"]["unhealthy"].as_array().unwrap();
    let ids: Vec<&str> = unhealthy
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![off_ep.as_str(), bad_ep.as_str()],
        "disabled first"
    );
    let failing = &unhealthy[1];
    assert_eq!(failing["lastAttempt"]["statusCode"], 500);
    assert_eq!(failing["lastAttempt"]["response"], "upstream exploded");
    assert!(failing["failingSinceMs"].as_u64().is_some());
    assert_eq!(failing["pending"]["count"], 0);
    assert_eq!(failing["url"], bad.url("/hook"), "the query is left out");
    assert_eq!(s["endpoints"]["truncated"], false);
    let text = s.to_string();
    for secret in ["whsec_", "sekrit", PAYLOAD_MARKER] {
        assert!(!text.contains(secret), "the summary shows {secret}: {text}");
    }
    assert!(
        !text.contains(&good_ep),
        "a healthy endpoint is listed: {text}"
    );

    // The receiver is fixed; the operator recovers from the page.
    healed.store(true, Ordering::SeqCst);
    let out_dir = browser::artifacts_dir();
    let base = format!("http://{}", h.addr);
    browser::run(
        "status_page.py",
        &[
            &base,
            READER,
            ADMIN,
            "shop",
            &bad_ep,
            &off_ep,
            &msgs[0],
            &out_dir.display().to_string(),
        ],
        "status page: ok",
    );

    // What the page did, seen through the API: the endpoint is enabled again...
    let off = h.admin("GET", &format!("/api/v1/app/shop/endpoint/{off_ep}"), None);
    assert_eq!(off.json()["disabled"], false, "{}", off.body);
    // ...and every failed delivery was sent again, by hand, and succeeded.
    for m in &msgs {
        let attempts = h.wait_json(
            &format!("/api/v1/app/shop/attempt/msg/{m}"),
            ADMIN,
            WAIT,
            |v| {
                v["data"].as_array().is_some_and(|d| {
                    d.iter().any(|a| {
                        a["endpointId"] == bad_ep
                            && a["triggerType"] == 1
                            && a["responseStatusCode"] == 200
                    })
                })
            },
        );
        let to_bad = attempts["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["endpointId"] == bad_ep)
            .count();
        assert_eq!(
            to_bad, 3,
            "two failed attempts and the recovered one: {attempts}"
        );
    }
    let seen = bad.wait_for_requests(3 * MESSAGES, WAIT);
    for m in &msgs {
        assert!(seen
            .iter()
            .skip(2 * MESSAGES)
            .any(|r| r.header("webhook-id") == Some(m.as_str())));
    }
    let png = std::fs::read(out_dir.join("status-page.png")).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000);
    eprintln!(
        "status page test took {:?}; screenshots in {}",
        started.elapsed(),
        out_dir.display()
    );
}
