//! A bug that panics is contained and visible, against the real (debug) binary: a delivery
//! attempt that panics is recorded as a failed attempt ("internal error") and retried, the
//! shard goes on serving and delivering, and the panic is logged once with its location,
//! counted in `/metrics` and shown by `hookd status`. A shard whose thread dies anyway makes
//! `/api/v1/health` answer 503 and `hookd status` exit 3.
//!
//! The panics are asked for through endpoint URLs that debug builds act on
//! (`deliver::engine::TEST_PANIC_IN_ATTEMPT`, `TEST_PANIC_IN_SHARD`); release builds ignore
//! them.

#[path = "support/hookd.rs"]
mod hookd;
#[path = "support/receiver.rs"]
mod receiver;

use std::time::{Duration, Instant};

use hookd::Hookd;
use receiver::Receiver;
use serde_json::json;

const CONFIG: &str = r#"
[delivery]
retry_schedule = ["200ms", "200ms"]
timeout = "2s"
allow_private_networks = true
"#;

/// Runs `hookd status` against `h`: its exit code and output.
fn status(h: &Hookd) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookd"))
        .args(["status", "--url", &format!("http://{}", h.addr), "--token"])
        .arg(hookd::ADMIN)
        .output()
        .expect("run hookd status");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn a_panicking_attempt_costs_that_attempt_only() {
    let h = Hookd::start_logged(CONFIG);
    h.create("/api/v1/app", json!({"name": "Shop", "uid": "shop"}));
    let good = Receiver::start();
    let bad = Receiver::start();
    h.create("/api/v1/app/shop/endpoint", json!({"url": good.url("/ok")}));
    let ep = h.create(
        "/api/v1/app/shop/endpoint",
        json!({"url": bad.url("/__hookd_test_panic_in_attempt__")}),
    );
    let ep = ep["id"].as_str().unwrap().to_owned();
    let msg = r#"{"eventType":"t","payload":{"k":1}}"#;
    for _ in 0..3 {
        assert_eq!(
            h.admin("POST", "/api/v1/app/shop/msg", Some(msg)).status,
            202
        );
    }
    // The healthy endpoint gets every message; the panicking one never sends a byte.
    good.wait_for_requests(3, Duration::from_secs(20));
    // Three messages, three attempts each (the first and two retries), all failed.
    let deadline = Instant::now() + Duration::from_secs(30);
    let attempts = loop {
        let r = h.admin(
            "GET",
            &format!("/api/v1/app/shop/attempt/endpoint/{ep}"),
            None,
        );
        let data = r.json()["data"].as_array().unwrap().clone();
        if data.len() >= 9 {
            break data;
        }
        assert!(Instant::now() < deadline, "attempts so far: {data:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    for a in &attempts {
        assert_eq!(a["status"], 2, "{a}");
        assert!(
            a["response"].as_str().unwrap().contains("internal error"),
            "{a}"
        );
    }
    assert!(bad.requests().is_empty());
    let panics = h.metric("hookd_panics_total");
    assert!(panics >= 9.0, "hookd_panics_total {panics}");
    assert_eq!(h.metric("hookd_unhealthy_parts"), 0.0);
    // Logged once each, with where.
    let log = h.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("panic (a bug in hookd)"))
        .collect();
    assert_eq!(lines.len() as f64, panics, "{log}");
    assert!(lines[0].contains("src/deliver/engine.rs"), "{}", lines[0]);
    // Still serving, and healthy: one task failed, not the shard.
    assert_eq!(h.call("GET", "/api/v1/health", None, None).status, 204);
    let (code, text) = status(&h);
    assert!(text.contains("panics:"), "{text}");
    assert_eq!(code, Some(3), "{text}");
}

#[test]
fn a_shard_that_dies_makes_health_answer_503() {
    let mut h = Hookd::start_logged(CONFIG);
    h.create("/api/v1/app", json!({"name": "Shop", "uid": "shop"}));
    let rx = Receiver::start();
    h.create(
        "/api/v1/app/shop/endpoint",
        json!({"url": rx.url("/__hookd_test_panic_in_shard__")}),
    );
    let msg = r#"{"eventType":"t","payload":{}}"#;
    assert_eq!(
        h.admin("POST", "/api/v1/app/shop/msg", Some(msg)).status,
        202
    );
    // The owning shard's engine panics outside any task that catches it: its thread ends.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // Health is answered by whichever shard takes the connection: the live one says 503.
        match hookd::try_request(
            h.addr,
            "GET",
            "/api/v1/health",
            None,
            None,
            Duration::from_secs(2),
        ) {
            Ok(r) if r.status == 503 => {
                assert!(r.body.contains("stopped unexpectedly"), "{}", r.body);
                break;
            }
            Ok(r) => assert_eq!(r.status, 204, "{}", r.body),
            Err(_) => {} // the dead shard's listener: connections to it hang or fail
        }
        assert!(Instant::now() < deadline, "health never said 503");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The dead shard's listener left the port: every new connection reaches the live one
    // (a connection handed to a dead listener would hang until the timeout).
    for _ in 0..40 {
        let r = hookd::try_request(
            h.addr,
            "GET",
            "/api/v1/health",
            None,
            None,
            Duration::from_secs(3),
        )
        .expect("a connection reached a dead shard");
        assert_eq!(r.status, 503, "{}", r.body);
    }
    assert_eq!(h.metric("hookd_unhealthy_parts"), 1.0);
    assert!(h.log().contains("stopped unexpectedly"));
    assert!(
        h.try_wait().is_none(),
        "the process lives on (systemd's watchdog restarts it)"
    );
}
