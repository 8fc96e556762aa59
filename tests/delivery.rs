//! Delivery end to end: the real binary delivering to real HTTP receivers on loopback.

#[path = "support/hookd.rs"]
mod hookd;
#[path = "support/receiver.rs"]
mod receiver;

use std::time::Duration;

use hookd::{Hookd, ADMIN};
use receiver::{Receiver, Reply};
use serde_json::{json, Value};

/// Short schedules and loopback allowed, so tests run in seconds.
const FAST: &str = r#"
[delivery]
retry_schedule = ["100ms", "100ms", "100ms"]
timeout = "2s"
connect_timeout = "1s"
allow_private_networks = true
"#;

const WAIT: Duration = Duration::from_secs(20);

fn setup(h: &Hookd) {
    assert_eq!(
        h.admin(
            "POST",
            "/api/v1/app",
            Some(r#"{"name":"Shop","uid":"shop"}"#)
        )
        .status,
        201
    );
    for name in ["order.paid", "order.shipped"] {
        let body = json!({"name": name, "description": "d"}).to_string();
        assert_eq!(
            h.admin("POST", "/api/v1/event-type", Some(&body)).status,
            201
        );
    }
}

fn endpoint(h: &Hookd, body: Value) -> Value {
    let r = h.admin("POST", "/api/v1/app/shop/endpoint", Some(&body.to_string()));
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()
}

fn send(h: &Hookd, event_type: &str, payload: Value, channels: &[&str]) -> String {
    let body = json!({"eventType": event_type, "payload": payload, "channels": channels});
    let r = h.admin("POST", "/api/v1/app/shop/msg", Some(&body.to_string()));
    assert_eq!(r.status, 202, "{}", r.body);
    r.json()["id"].as_str().unwrap().to_owned()
}

fn secret(h: &Hookd, ep: &str) -> Vec<u8> {
    let key = h
        .admin(
            "GET",
            &format!("/api/v1/app/shop/endpoint/{ep}/secret"),
            None,
        )
        .json()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    hookd::parse_secret(&key)
}

#[test]
fn fan_out_filters_and_signed_requests() {
    let h = Hookd::start(FAST);
    setup(&h);
    let all = Receiver::start();
    let paid = Receiver::start();
    let eu = Receiver::start();
    let e_all = endpoint(
        &h,
        json!({"url": all.url("/all"), "headers": {"X-Team": "ops"}}),
    );
    endpoint(
        &h,
        json!({"url": paid.url("/paid"), "eventTypes": ["order.paid"]}),
    );
    endpoint(&h, json!({"url": eu.url("/eu"), "channels": ["eu"]}));
    let m1 = send(&h, "order.paid", json!({"n": 1}), &[]);
    let m2 = send(&h, "order.shipped", json!({"n": 2}), &["eu"]);
    let got = all.wait_for_requests(2, WAIT);
    assert_eq!(
        paid.wait_for_requests(1, WAIT)[0].header("webhook-id"),
        Some(m1.as_str())
    );
    assert_eq!(
        eu.wait_for_requests(1, WAIT)[0].header("webhook-id"),
        Some(m2.as_str())
    );
    // Each request is signed with the endpoint's secret, over the payload as stored.
    let key = secret(&h, e_all["id"].as_str().unwrap());
    for r in &got {
        let id = r.header("webhook-id").unwrap();
        let ts: u64 = r.header("webhook-timestamp").unwrap().parse().unwrap();
        let sig = r.header("webhook-signature").unwrap();
        assert!(
            hookd::verify(&key, id, ts, &r.body, sig),
            "signature of {id}"
        );
        assert_eq!(r.header("svix-id"), Some(id));
        assert_eq!(r.header("svix-signature"), Some(sig));
        assert_eq!(r.header("x-team"), Some("ops"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert!(r.header("user-agent").unwrap().starts_with("hookd/"));
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/all"));
    }
    let bodies: Vec<Value> = got
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert!(bodies.contains(&json!({"n": 1})) && bodies.contains(&json!({"n": 2})));
    // Filters held: nothing else arrived.
    assert_eq!((paid.requests().len(), eu.requests().len()), (1, 1));
}

#[test]
fn retries_until_success_with_the_same_id_and_records_attempts() {
    let h = Hookd::start(FAST);
    setup(&h);
    let rx = Receiver::start();
    rx.script([
        Reply::status(500),
        Reply::status(503).header("Retry-After", "0"),
    ]);
    let ep = endpoint(&h, json!({"url": rx.url("/h")}));
    let msg = send(&h, "order.paid", json!({"n": 1}), &[]);
    let got = rx.wait_for_requests(3, WAIT);
    assert!(got
        .iter()
        .all(|r| r.header("webhook-id") == Some(msg.as_str())));
    let path = format!("/api/v1/app/shop/attempt/msg/{msg}");
    let attempts = h.wait_json(&path, ADMIN, WAIT, |v| {
        v["data"].as_array().is_some_and(|a| a.len() == 3)
    });
    let codes: Vec<i64> = attempts["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["responseStatusCode"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, vec![200, 503, 500], "newest first");
    assert_eq!(attempts["data"][0]["endpointId"], ep["id"]);
    let status = h.wait_json(
        &format!("/api/v1/app/shop/msg/{msg}/endpoint"),
        ADMIN,
        WAIT,
        |v| v["data"][0]["status"] == 0,
    );
    assert_eq!(status["data"][0]["statusText"], "success");
}

#[test]
fn gone_disables_the_endpoint_and_exhaustion_fails() {
    let h = Hookd::start(FAST);
    setup(&h);
    let gone = Receiver::builder().handler(|_| Reply::status(410)).start();
    let broken = Receiver::builder().handler(|_| Reply::status(500)).start();
    let e_gone = endpoint(&h, json!({"url": gone.url("/")}));
    let e_broken = endpoint(&h, json!({"url": broken.url("/")}));
    let msg = send(&h, "order.paid", json!({}), &[]);
    gone.wait_for_requests(1, WAIT);
    let ep = h.wait_json(
        &format!(
            "/api/v1/app/shop/endpoint/{}",
            e_gone["id"].as_str().unwrap()
        ),
        ADMIN,
        WAIT,
        |v| v["disabled"] == true,
    );
    assert_eq!(ep["disabled"], true);
    // The 500 endpoint gets the first attempt and 3 retries, then the delivery fails.
    broken.wait_for_requests(4, WAIT);
    let st = h.wait_json(
        &format!("/api/v1/app/shop/msg/{msg}/endpoint"),
        ADMIN,
        WAIT,
        |v| {
            v["data"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|e| e["id"] == e_broken["id"] && e["status"] == 2)
            })
        },
    );
    assert!(st["data"].as_array().unwrap().len() == 2);
    assert_eq!(
        broken.requests().len(),
        4,
        "no attempt after the schedule ends"
    );
    // A disabled endpoint receives nothing more.
    send(&h, "order.paid", json!({}), &[]);
    broken.wait_for_requests(5, WAIT);
    assert_eq!(gone.requests().len(), 1);
}

/// A 410 disables the endpoint and fails its other open deliveries at once, not when their
/// retries come due.
#[test]
fn disabling_fails_the_endpoints_open_deliveries() {
    let h = Hookd::start(
        "[delivery]\nretry_schedule = [\"1h\"]\ntimeout = \"2s\"\nallow_private_networks = true\n",
    );
    setup(&h);
    let rx = Receiver::builder()
        .handler(
            |r| match String::from_utf8_lossy(&r.body).contains("first") {
                true => Reply::status(500),
                false => Reply::status(410),
            },
        )
        .start();
    endpoint(&h, json!({"url": rx.url("/")}));
    let first = send(&h, "order.paid", json!({"first": true}), &[]);
    let path = format!("/api/v1/app/shop/msg/{first}/endpoint");
    h.wait_json(&path, ADMIN, WAIT, |v| {
        v["data"][0]["statusText"] == "pending"
    });
    send(&h, "order.paid", json!({"second": true}), &[]);
    // The first is due again only in an hour; disabling the endpoint fails it now.
    let v = h.wait_json(&path, ADMIN, WAIT, |v| v["data"][0]["statusText"] == "fail");
    assert_eq!(v["data"][0]["disabled"], true, "{v}");
}

#[test]
fn concurrency_cap_holds() {
    // One request per connection, so that the receiver sees every request in flight (a
    // pipelined one waits unread behind the one being answered; the cap counts both).
    let h = Hookd::start(&format!(
        "{FAST}in_flight_per_endpoint_max = 2\npipeline_depth = 1\n"
    ));
    setup(&h);
    let rx = Receiver::builder()
        .handler(|_| Reply::ok().delay(Duration::from_millis(150)))
        .start();
    endpoint(&h, json!({"url": rx.url("/")}));
    for i in 0..10 {
        send(&h, "order.paid", json!({"i": i}), &[]);
    }
    rx.wait_for_requests(10, WAIT);
    assert!(
        rx.in_flight_max() <= 2,
        "in flight at once: {}",
        rx.in_flight_max()
    );
    assert_eq!(rx.in_flight_max(), 2, "the cap was reached");
}

#[test]
fn private_addresses_are_refused_unless_allowed() {
    let h = Hookd::start("");
    setup(&h);
    let r = h.admin(
        "POST",
        "/api/v1/app/shop/endpoint",
        Some(r#"{"url":"http://127.0.0.1:9/hook"}"#),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("loopback"), "{}", r.body);
    let r = h.admin(
        "POST",
        "/api/v1/app/shop/endpoint",
        Some(r#"{"url":"http://10.1.2.3/hook"}"#),
    );
    assert_eq!(r.status, 422, "{}", r.body);
}

/// Crash test: messages acknowledged while the endpoint is down survive a SIGKILL and are all
/// delivered once it is up.
#[test]
fn acknowledged_messages_are_delivered_after_a_crash() {
    // Retries every second for 50 s: long enough that no delivery runs out of schedule
    // before the endpoint comes up, short enough to come round quickly once it is.
    let schedule = ["\"1s\""; 50].join(", ");
    let mut h = Hookd::start(&format!(
        "[delivery]\nretry_schedule = [{schedule}]\ntimeout = \"1s\"\nconnect_timeout = \"500ms\"\nallow_private_networks = true\n"
    ));
    setup(&h);
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/down", dead.local_addr().unwrap());
    drop(dead); // nothing listens there now: connections are refused
    let ep = endpoint(&h, json!({"url": dead_url}));
    let ids: Vec<String> = (0..40)
        .map(|i| send(&h, "order.paid", json!({"i": i}), &[]))
        .collect();
    h.crash_and_restart();
    let rx = Receiver::start();
    let patch = json!({"url": rx.url("/up")}).to_string();
    let r = h.admin(
        "PATCH",
        &format!("/api/v1/app/shop/endpoint/{}", ep["id"].as_str().unwrap()),
        Some(&patch),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let got = rx.wait_for_requests(ids.len(), Duration::from_secs(60));
    let delivered: std::collections::HashSet<&str> =
        got.iter().filter_map(|r| r.header("webhook-id")).collect();
    for id in &ids {
        assert!(
            delivered.contains(id.as_str()),
            "acknowledged message {id} was never delivered"
        );
    }
}

/// Crash test for what is only in memory: first attempts go from the log to the shard with
/// no index write, and what does not fit the shard's queue is spilled to the due index. Both
/// kinds, acknowledged and unsettled when hookd is killed, are delivered after the restart.
#[test]
fn first_attempts_in_memory_or_spilled_survive_a_crash() {
    let schedule = ["\"1s\""; 50].join(", ");
    let mut h = Hookd::start(&format!(
        "[delivery]\nretry_schedule = [{schedule}]\ntimeout = \"20s\"\nallow_private_networks = true\nin_flight_per_endpoint_max = 2\nqueue_capacity = 4\npipeline_depth = 1\n"
    ));
    // One request per connection (`pipeline_depth = 1`): a second request pipelined behind
    // the held first one would reach the receiver only after it (the receiver answers a
    // connection's requests in turn), and it joins the pipe whenever it starts within 20 ms
    // of the first, as it does when the disk's fsyncs are fast.
    setup(&h);
    // Holds every request (past hookd's timeout) until released, then answers at once. The
    // timeout is long enough for the checks below to run before it, even on a loaded machine
    // (at 10 s a busy CI box once saw the first attempt time out and be recorded first).
    let held = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let h2 = held.clone();
    let rx = Receiver::builder()
        .handler(
            move |_| match h2.load(std::sync::atomic::Ordering::SeqCst) {
                true => Reply::ok().delay(Duration::from_secs(60)),
                false => Reply::ok(),
            },
        )
        .start();
    endpoint(&h, json!({"url": rx.url("/")}));
    let ids: Vec<String> = (0..40)
        .map(|i| send(&h, "order.paid", json!({"i": i}), &[]))
        .collect();
    let destinations = |id: &str| format!("/api/v1/app/shop/msg/{id}/endpoint");
    // The last message did not fit the shard's queue: it waits in the due index...
    h.wait_json(&destinations(&ids[39]), ADMIN, WAIT, |v| {
        v["data"][0]["statusText"] == "pending"
    });
    // ...while the first is in flight, held, with no state written anywhere but the log.
    rx.wait_for_requests(2, WAIT);
    let first = h.admin("GET", &destinations(&ids[0]), None).json();
    assert_eq!(first["data"], json!([]), "{first}");
    // Released while hookd is down: the restarted one is answered at once.
    let mut released = std::time::Instant::now();
    h.crash_and_restart_after(|| {
        released = std::time::Instant::now();
        held.store(false, std::sync::atomic::Ordering::SeqCst);
    });
    // Requests that arrived before the crash never got an answer to hookd: count only the
    // ones after it.
    let before = rx.requests().iter().filter(|r| r.at < released).count();
    let got = rx.wait_for_requests(before + ids.len(), Duration::from_secs(60));
    let delivered: std::collections::HashSet<&str> = got
        .iter()
        .filter(|r| r.at >= released)
        .filter_map(|r| r.header("webhook-id"))
        .collect();
    for id in &ids {
        assert!(
            delivered.contains(id.as_str()),
            "acknowledged message {id} was never delivered after the crash"
        );
    }
}

fn an_hour_ago() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 3600;
    ::hookd::time::format_rfc3339(secs * 1000)
}

#[test]
fn resend_recover_and_replay_missing() {
    let h = Hookd::start("[delivery]\nretry_schedule = [\"100ms\"]\ntimeout = \"2s\"\nallow_private_networks = true\n");
    setup(&h);
    // Fails twice (first attempt + the one retry), then answers 200.
    let rx = Receiver::start();
    rx.script([Reply::status(500), Reply::status(500)]);
    let ep = endpoint(&h, json!({"url": rx.url("/r")}));
    let ep_id = ep["id"].as_str().unwrap().to_owned();
    let msg = send(&h, "order.paid", json!({"n": 1}), &[]);
    rx.wait_for_requests(2, WAIT);
    h.wait_json(
        &format!("/api/v1/app/shop/msg/{msg}/endpoint"),
        ADMIN,
        WAIT,
        |v| v["data"][0]["status"] == 2,
    );
    // Recover the failed delivery: it is sent again and succeeds.
    let window = json!({"since": an_hour_ago()}).to_string();
    let r = h.admin(
        "POST",
        &format!("/api/v1/app/shop/endpoint/{ep_id}/recover"),
        Some(&window),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    assert!(r.json()["id"].as_str().unwrap().starts_with("qtask_"));
    let got = rx.wait_for_requests(3, WAIT);
    assert_eq!(got[2].header("webhook-id"), Some(msg.as_str()));
    h.wait_json(
        &format!("/api/v1/app/shop/msg/{msg}/endpoint"),
        ADMIN,
        WAIT,
        |v| v["data"][0]["status"] == 0,
    );
    // Resend: once more, recorded as a manual attempt.
    let r = h.admin(
        "POST",
        &format!("/api/v1/app/shop/msg/{msg}/endpoint/{ep_id}/resend"),
        Some(""),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(
        rx.wait_for_requests(4, WAIT)[3].header("webhook-id"),
        Some(msg.as_str())
    );
    let attempts = h.wait_json(
        &format!("/api/v1/app/shop/attempt/msg/{msg}"),
        ADMIN,
        WAIT,
        |v| v["data"].as_array().is_some_and(|a| a.len() == 4),
    );
    assert_eq!(
        attempts["data"][0]["triggerType"], 1,
        "the resend is manual"
    );
    assert_eq!(attempts["data"][3]["triggerType"], 0);
    // Replay-missing: a new endpoint gets the old message it never had, and only that.
    let late = Receiver::start();
    let late_ep = endpoint(&h, json!({"url": late.url("/late")}));
    let r = h.admin(
        "POST",
        &format!(
            "/api/v1/app/shop/endpoint/{}/replay-missing",
            late_ep["id"].as_str().unwrap()
        ),
        Some(&window),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(
        late.wait_for_requests(1, WAIT)[0].header("webhook-id"),
        Some(msg.as_str())
    );
    let r = h.admin(
        "POST",
        &format!(
            "/api/v1/app/shop/endpoint/{}/replay-missing",
            late_ep["id"].as_str().unwrap()
        ),
        Some(&window),
    );
    assert_eq!(r.status, 202);
    let marker = send(&h, "order.paid", json!({"marker": true}), &[]);
    let seen = late.wait_for_requests(2, WAIT);
    assert_eq!(
        seen[1].header("webhook-id"),
        Some(marker.as_str()),
        "the second replay re-sent nothing"
    );
    // Bad windows are 422.
    let r = h.admin(
        "POST",
        &format!("/api/v1/app/shop/endpoint/{ep_id}/recover"),
        Some(r#"{"since":"yesterday"}"#),
    );
    assert_eq!(r.status, 422);
}

#[test]
fn throttle_rate_holds_within_ten_percent() {
    let h = Hookd::start(FAST);
    setup(&h);
    let rx = Receiver::start();
    endpoint(&h, json!({"url": rx.url("/t"), "throttleRate": 20}));
    for i in 0..41 {
        send(&h, "order.paid", json!({"i": i}), &[]);
    }
    let got = rx.wait_for_requests(41, WAIT);
    // 40 intervals at 20/s take 2 s; measure from the first arrival to the last.
    let span = got
        .last()
        .unwrap()
        .at
        .duration_since(got[0].at)
        .as_secs_f64();
    let rate = 40.0 / span;
    assert!(
        (18.0..=22.0).contains(&rate),
        "{rate:.1} deliveries/s for a throttleRate of 20"
    );
}

#[test]
fn tls_receiver_with_a_ca_from_the_config() {
    let rx = Receiver::builder().tls().start();
    let dir = tempfile::tempdir().unwrap();
    let ca = rx.write_ca_file(dir.path());
    let h = Hookd::start(&format!("{FAST}ca_file = \"{}\"\n", ca.display()));
    setup(&h);
    endpoint(&h, json!({"url": rx.url_with_host("localhost", "/secure")}));
    let msg = send(&h, "order.paid", json!({"tls": true}), &[]);
    let got = rx.wait_for_requests(1, WAIT);
    assert_eq!(got[0].header("webhook-id"), Some(msg.as_str()));
    assert_eq!(
        serde_json::from_slice::<Value>(&got[0].body).unwrap(),
        json!({"tls": true})
    );
}

#[test]
fn a_slow_receiver_times_out_and_waits_at_least_a_minute() {
    let h = Hookd::start("[delivery]\nretry_schedule = [\"100ms\"]\ntimeout = \"300ms\"\nconnect_timeout = \"200ms\"\nallow_private_networks = true\n");
    setup(&h);
    let rx = Receiver::start();
    rx.script([Reply::ok().delay(Duration::from_millis(1500))]);
    endpoint(&h, json!({"url": rx.url("/slow")}));
    let msg = send(&h, "order.paid", json!({}), &[]);
    rx.wait_for_requests(1, WAIT);
    let attempts = h.wait_json(
        &format!("/api/v1/app/shop/attempt/msg/{msg}"),
        ADMIN,
        WAIT,
        |v| v["data"].as_array().is_some_and(|a| a.len() == 1),
    );
    let first = &attempts["data"][0];
    assert_eq!(first["responseStatusCode"], 0, "no response: {first}");
    assert_eq!(first["status"], 2);
    assert!(
        first["response"].as_str().unwrap().contains("timeout"),
        "{first}"
    );
    assert!(first["responseDurationMs"].as_u64().unwrap() < 1500);
    // After a timeout the next try waits at least 60 s, although the schedule says 100 ms.
    let st = h.wait_json(
        &format!("/api/v1/app/shop/msg/{msg}/endpoint"),
        ADMIN,
        WAIT,
        |v| v["data"][0]["status"] == 1,
    );
    let next =
        ::hookd::time::parse_rfc3339(st["data"][0]["nextAttempt"].as_str().unwrap()).unwrap();
    let attempted = ::hookd::time::parse_rfc3339(first["timestamp"].as_str().unwrap()).unwrap();
    assert!(
        next >= attempted + 59_000,
        "next attempt {} ms after the first",
        next - attempted
    );
}

/// Retention drops old messages, but never one with a delivery still pending.
#[test]
fn retention_keeps_what_is_pending_and_drops_the_rest() {
    let schedule = ["\"1h\""; 3].join(", ");
    let h = Hookd::start(&format!(
        "[storage]\nretention = \"1s\"\nsegment_events_max = 1\n[delivery]\nretry_schedule = [{schedule}]\nallow_private_networks = true\n"
    ));
    setup(&h);
    // An endpoint that refuses connections: its delivery stays pending for an hour.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/down", dead.local_addr().unwrap());
    drop(dead);
    endpoint(&h, json!({"url": url, "eventTypes": ["order.shipped"]}));
    // Segments go oldest first: the old messages come before the one that stays pending.
    let old: Vec<String> = (0..3)
        .map(|i| send(&h, "order.paid", json!({"i": i}), &[]))
        .collect();
    let pending = send(&h, "order.shipped", json!({"keep": true}), &[]);
    // A newer message makes the old segments sealed (segments roll on every event).
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        send(&h, "order.paid", json!({"tick": true}), &[]);
        if h.admin("GET", &format!("/api/v1/app/shop/msg/{}", old[0]), None)
            .status
            == 404
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "old messages were never retired"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Give retention a few more rounds: the pending message stays, and so does what follows.
    std::thread::sleep(Duration::from_millis(2500));
    let kept = h.admin("GET", &format!("/api/v1/app/shop/msg/{pending}"), None);
    assert_eq!(
        kept.status, 200,
        "a message with a pending delivery was retired"
    );
}

/// The endpoint stats count the deliveries of messages created in `[since, until]` (by
/// default the 28 days up to now), and refuse dates that do not parse (422) and windows out
/// of bounds (400 `invalid_range`), as Svix does.
#[test]
fn stats_count_the_window_and_refuse_bad_dates() {
    let rx = Receiver::start();
    let h = Hookd::start(FAST);
    setup(&h);
    let ep = endpoint(&h, json!({"url": rx.url("/hook")}));
    let ep = ep["id"].as_str().unwrap().to_owned();
    let stats = |query: &str| {
        h.admin(
            "GET",
            &format!("/api/v1/app/shop/endpoint/{ep}/stats{query}"),
            None,
        )
    };
    let rfc3339 = |t: std::time::SystemTime| {
        time::OffsetDateTime::from(t)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    // One message, then a moment, then two more: the moment splits them by creation time.
    send(&h, "order.paid", json!({"n": 1}), &[]);
    std::thread::sleep(Duration::from_millis(5));
    let between = rfc3339(std::time::SystemTime::now());
    std::thread::sleep(Duration::from_millis(5));
    send(&h, "order.paid", json!({"n": 2}), &[]);
    send(&h, "order.paid", json!({"n": 3}), &[]);
    rx.wait_for_requests(3, WAIT);
    let all = h.wait_json(
        &format!("/api/v1/app/shop/endpoint/{ep}/stats"),
        ADMIN,
        WAIT,
        |v| v["success"] == 3,
    );
    assert_eq!(
        (all["pending"].as_u64(), all["fail"].as_u64()),
        (Some(0), Some(0))
    );
    let since = stats(&format!("?since={between}"));
    assert_eq!(
        (since.status, since.json()["success"].as_u64()),
        (200, Some(2)),
        "{}",
        since.body
    );
    let until = stats(&format!("?until={between}"));
    assert_eq!(
        (until.status, until.json()["success"].as_u64()),
        (200, Some(1)),
        "{}",
        until.body
    );

    for (query, param) in [
        ("?until=AAA", "until"),
        ("?since=2026-13-01T00:00:00Z", "since"),
    ] {
        let r = stats(query);
        assert_eq!(r.status, 422, "{query}: {}", r.body);
        assert_eq!(
            r.json()["detail"][0]["loc"],
            json!(["query", param]),
            "{}",
            r.body
        );
    }
    let later = rfc3339(std::time::SystemTime::now() + Duration::from_secs(3600));
    let long_ago = rfc3339(std::time::SystemTime::now() - Duration::from_secs(29 * 86_400));
    for query in [
        format!("?until={later}"),
        format!("?since={long_ago}"),
        format!("?since={between}&until={long_ago}"),
    ] {
        let r = stats(&query);
        assert_eq!(r.status, 400, "{query}: {}", r.body);
        assert_eq!(r.json()["code"], "invalid_range", "{}", r.body);
    }
}

/// `GET .../endpoint/{ep}/msg` lists the messages sent to the endpoint, newest first, with
/// their status there; messages the endpoint does not take are not listed; `status` filters
/// and the iterator pages.
#[test]
fn an_endpoints_attempted_messages_are_listed_with_their_status() {
    let ok = Receiver::start();
    let h = Hookd::start(
        "[delivery]\nretry_schedule = [\"1h\"]\ntimeout = \"2s\"\nallow_private_networks = true\n",
    );
    setup(&h);
    let good = endpoint(
        &h,
        json!({"url": ok.url("/ok"), "filterTypes": ["order.paid"]}),
    );
    let good = good["id"].as_str().unwrap().to_owned();
    // Nobody listens here: its deliveries fail and wait an hour for their retry.
    let down = endpoint(&h, json!({"url": "http://127.0.0.1:9/down"}));
    let down = down["id"].as_str().unwrap().to_owned();
    let paid: Vec<String> = (0..3)
        .map(|n| send(&h, "order.paid", json!({"n": n}), &[]))
        .collect();
    let shipped = send(&h, "order.shipped", json!({"n": 9}), &[]);
    ok.wait_for_requests(3, WAIT);
    let list = |ep: &str, query: &str| {
        let r = h.admin(
            "GET",
            &format!("/api/v1/app/shop/endpoint/{ep}/msg{query}"),
            None,
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    };
    let ids = |v: &Value| -> Vec<String> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let newest_first: Vec<String> = paid.iter().rev().cloned().collect();
    let v = h.wait_json(
        &format!("/api/v1/app/shop/endpoint/{good}/msg"),
        ADMIN,
        WAIT,
        |v| v["data"].as_array().is_some_and(|d| d.len() == 3),
    );
    assert_eq!(
        ids(&v),
        newest_first,
        "only the messages it takes, newest first"
    );
    for m in v["data"].as_array().unwrap() {
        assert_eq!(
            (m["status"].as_u64(), m["statusText"].as_str()),
            (Some(0), Some("success"))
        );
        assert_eq!(m["nextAttempt"], Value::Null);
        assert_eq!(m["eventType"], "order.paid");
        assert!(m["payload"]["n"].is_u64(), "{m}");
    }
    let v = h.wait_json(
        &format!("/api/v1/app/shop/endpoint/{down}/msg?status=1"),
        ADMIN,
        WAIT,
        |v| v["data"].as_array().is_some_and(|d| d.len() == 4),
    );
    let mut all: Vec<String> = vec![shipped.clone()];
    all.extend(newest_first.iter().cloned());
    assert_eq!(ids(&v), all, "every message, pending");
    for m in v["data"].as_array().unwrap() {
        assert_eq!(m["status"], 1, "{m}");
        assert!(
            m["nextAttempt"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{m}"
        );
    }
    assert_eq!(ids(&list(&good, "?status=2")), Vec::<String>::new());
    // Pages of two, then the rest.
    let first = list(&down, "?limit=2");
    assert_eq!(
        (ids(&first), first["done"].as_bool()),
        (all[..2].to_vec(), Some(false))
    );
    let it = first["iterator"].as_str().unwrap();
    let second = list(&down, &format!("?limit=2&iterator={it}"));
    assert_eq!(
        (ids(&second), second["done"].as_bool()),
        (all[2..].to_vec(), Some(true))
    );
    assert_eq!(ids(&list(&good, "?with_content=false"))[0], newest_first[0]);
    assert_eq!(
        list(&good, "?with_content=false")["data"][0]["payload"],
        json!({})
    );
    let r = h.admin(
        "GET",
        &format!("/api/v1/app/shop/endpoint/{good}/msg?status=9"),
        None,
    );
    assert_eq!(r.status, 422, "{}", r.body);
    let r = h.admin("GET", "/api/v1/app/shop/endpoint/ep_nope/msg", None);
    assert_eq!(r.status, 404, "{}", r.body);
}

/// `DELETE .../msg/{msg}/content` expunges a message's payload: every read shows
/// `{"expired":true}` (as Svix), across a crash; a delivery still waiting for its retry fails
/// without another attempt; a resend is refused; admin only, audited.
#[test]
fn a_messages_payload_can_be_expunged() {
    let ok = Receiver::start();
    let failing = Receiver::builder().handler(|_| Reply::status(500)).start();
    let mut h = Hookd::start(
        "[delivery]\nretry_schedule = [\"1s\"]\ntimeout = \"2s\"\nallow_private_networks = true\n",
    );
    setup(&h);
    endpoint(&h, json!({"url": ok.url("/hook")}));
    let bad = endpoint(&h, json!({"url": failing.url("/hook")}))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let msg = send(&h, "order.paid", json!({"card": "4111-1111"}), &[]);
    let kept = send(&h, "order.paid", json!({"n": 2}), &[]);
    ok.wait_for_requests(2, WAIT);
    // The failing endpoint's first attempt of `msg` failed; its retry is a second away.
    h.wait_json(
        &format!("/api/v1/app/shop/attempt/msg/{msg}"),
        ADMIN,
        WAIT,
        |v| {
            v["data"]
                .as_array()
                .is_some_and(|d| d.iter().any(|a| a["endpointId"] == bad.as_str()))
        },
    );
    let path = format!("/api/v1/app/shop/msg/{msg}/content");
    let r = h.call("DELETE", &path, Some(hookd::READER), None);
    assert_eq!(r.status, 403, "a read token may not: {}", r.body);
    for _ in 0..2 {
        let r = h.admin("DELETE", &path, None);
        assert_eq!((r.status, r.body.as_str()), (204, ""), "{}", r.body);
    }
    let r = h.admin("DELETE", "/api/v1/app/shop/msg/msg_nope/content", None);
    assert_eq!(r.status, 404, "{}", r.body);
    let check = |h: &Hookd| {
        let one = h.admin("GET", &format!("/api/v1/app/shop/msg/{msg}"), None);
        assert_eq!(
            one.json()["payload"],
            json!({"expired": true}),
            "{}",
            one.body
        );
        let bare = h.admin(
            "GET",
            &format!("/api/v1/app/shop/msg/{msg}?with_content=false"),
            None,
        );
        assert_eq!(bare.json()["payload"], json!({}), "{}", bare.body);
        let list = h.admin("GET", "/api/v1/app/shop/msg", None).json();
        for m in list["data"].as_array().unwrap() {
            let expected = if m["id"] == msg.as_str() {
                json!({"expired": true})
            } else {
                assert_eq!(m["id"], kept.as_str());
                json!({"n": 2})
            };
            assert_eq!(m["payload"], expected, "{m}");
        }
    };
    check(&h);
    // The retry that came due finds nothing to send: the delivery fails, no second attempt.
    h.wait_json(
        &format!("/api/v1/app/shop/msg/{msg}/endpoint"),
        ADMIN,
        WAIT,
        |v| {
            v["data"].as_array().is_some_and(|d| {
                d.iter()
                    .any(|e| e["id"] == bad.as_str() && e["status"] == 2)
            })
        },
    );
    let sent = failing
        .requests()
        .iter()
        .filter(|r| r.header("webhook-id") == Some(msg.as_str()))
        .count();
    assert_eq!(sent, 1, "the expunged payload was sent again");
    let r = h.admin(
        "POST",
        &format!("/api/v1/app/shop/msg/{msg}/endpoint/{bad}/resend"),
        None,
    );
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("expunged"), "{}", r.body);
    let audit = h.admin("GET", "/api/v1/audit", None).json();
    assert!(
        audit["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "message.expunge_content" && e["target"] == msg.as_str()),
        "{audit}"
    );
    // Durable with the 204.
    h.crash_and_restart();
    check(&h);
}

/// `DELETE .../msg/{msg}/attempt/{attempt}/content` forgets the response body kept for an
/// attempt: it reads `EXPUNGED` everywhere after, for first attempts kept in a run and for
/// later ones alike; admin only.
#[test]
fn an_attempts_response_body_can_be_expunged() {
    let rx = Receiver::builder()
        .handler(|_| Reply::ok().body("token=s3cret"))
        .start();
    let h = Hookd::start(FAST);
    setup(&h);
    let ep = endpoint(&h, json!({"url": rx.url("/hook")}));
    let ep = ep["id"].as_str().unwrap().to_owned();
    let msg = send(&h, "order.paid", json!({"n": 1}), &[]);
    rx.wait_for_requests(1, WAIT);
    // A second attempt of the same message (a resend), recorded apart from the first.
    let r = h.admin(
        "POST",
        &format!("/api/v1/app/shop/msg/{msg}/endpoint/{ep}/resend"),
        None,
    );
    assert!(r.status < 300, "{}", r.body);
    rx.wait_for_requests(2, WAIT);
    let attempts = h.wait_json(
        &format!("/api/v1/app/shop/attempt/msg/{msg}"),
        ADMIN,
        WAIT,
        |v| v["data"].as_array().is_some_and(|d| d.len() == 2),
    );
    let ids: Vec<String> = attempts["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            assert_eq!(a["response"], "token=s3cret", "{a}");
            a["id"].as_str().unwrap().to_owned()
        })
        .collect();
    for id in &ids {
        let path = format!("/api/v1/app/shop/msg/{msg}/attempt/{id}/content");
        let r = h.call("DELETE", &path, Some(hookd::READER), None);
        assert_eq!(r.status, 403, "a read token may not: {}", r.body);
        for _ in 0..2 {
            let r = h.admin("DELETE", &path, None);
            assert_eq!((r.status, r.body.as_str()), (204, ""), "{path}");
        }
        let a = h.admin(
            "GET",
            &format!("/api/v1/app/shop/msg/{msg}/attempt/{id}"),
            None,
        );
        assert_eq!(a.json()["response"], "EXPUNGED", "{}", a.body);
    }
    let listed = h.admin(
        "GET",
        &format!("/api/v1/app/shop/attempt/endpoint/{ep}"),
        None,
    );
    for a in listed.json()["data"].as_array().unwrap() {
        assert_eq!(a["response"], "EXPUNGED", "{a}");
    }
    let r = h.admin(
        "DELETE",
        &format!("/api/v1/app/shop/msg/{msg}/attempt/atmpt_nope/content"),
        None,
    );
    assert_eq!(r.status, 404, "{}", r.body);
    let r = h.admin(
        "GET",
        &format!("/api/v1/app/shop/msg/{msg}/attempt/{}/content", ids[0]),
        None,
    );
    assert_eq!(r.status, 405);
}

/// A W3C `traceparent` sent with a message (API create or inbound source) goes with every
/// attempt to the receiver, and into the attempt's log line; a malformed one is ignored, as
/// the Trace Context specification asks.
#[test]
fn a_messages_traceparent_is_sent_with_every_attempt_and_logged() {
    const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    // The first attempt of the "retry" message fails; its retry must carry it too.
    let failed_once = std::sync::atomic::AtomicBool::new(false);
    let rx = Receiver::builder()
        .handler(move |r| {
            let retry = r.body.windows(5).any(|w| w == b"retry");
            if retry && !failed_once.swap(true, std::sync::atomic::Ordering::SeqCst) {
                Reply::status(500)
            } else {
                Reply::ok()
            }
        })
        .start();
    let h = Hookd::start_logged(&format!("{FAST}\n[log]\nlevel = \"debug\"\n"));
    setup(&h);
    endpoint(&h, json!({"url": rx.url("/hook")}));
    let post = |payload: Value, traceparent: Option<&str>| {
        let body = json!({"eventType": "order.paid", "payload": payload}).to_string();
        let headers: Vec<(&str, &str)> = traceparent
            .map(|t| ("traceparent", t))
            .into_iter()
            .collect();
        let r = h.call_with(
            "POST",
            "/api/v1/app/shop/msg",
            Some(hookd::ADMIN),
            Some(&body),
            &headers,
        );
        assert_eq!(r.status, 202, "{}", r.body);
    };
    post(json!({"k": "traced"}), Some(PARENT));
    post(json!({"k": "plain"}), None);
    post(
        json!({"k": "malformed"}),
        Some("00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01"),
    );
    post(json!({"k": "retry"}), Some(PARENT));
    let reqs = rx.wait_for_requests(5, WAIT);
    assert_eq!(reqs.len(), 5, "one attempt each, and one retry");
    for r in &reqs {
        let body = String::from_utf8_lossy(&r.body);
        let expected = (body.contains("traced") || body.contains("retry")).then_some(PARENT);
        assert_eq!(r.header("traceparent"), expected, "{body}");
    }
    assert_eq!(
        reqs.iter()
            .filter(|r| String::from_utf8_lossy(&r.body).contains("retry"))
            .count(),
        2,
        "the failed attempt and its retry"
    );
    h.wait_for_log(3, WAIT, |l| {
        l.contains("delivery attempt") && l.contains(PARENT)
    });
}

/// `POST .../endpoint/{ep}/send-example` sends one message, signed, to that endpoint alone
/// (whatever its filters; no other endpoint gets it): the event type's schema example, or
/// `{"success":true}` (and for `svix.ping`).
#[test]
fn send_example_reaches_that_endpoint_alone() {
    let target = Receiver::start();
    let other = Receiver::start();
    let h = Hookd::start(FAST);
    setup(&h);
    let schemas = json!({"1": {"type": "object", "examples": [{"id": "ex_1", "amount": 5}]}});
    let body = json!({"name": "invoice.issued", "description": "d", "schemas": schemas});
    assert_eq!(
        h.admin("POST", "/api/v1/event-type", Some(&body.to_string()))
            .status,
        201
    );
    let ep = endpoint(
        &h,
        json!({"url": target.url("/t"), "filterTypes": ["order.shipped"]}),
    );
    let ep = ep["id"].as_str().unwrap().to_owned();
    let other_ep = endpoint(&h, json!({"url": other.url("/o")}));
    let other_ep = other_ep["id"].as_str().unwrap().to_owned();
    let key = secret(&h, &ep);
    let example = |event_type: &str| {
        let path = format!("/api/v1/app/shop/endpoint/{ep}/send-example");
        h.admin(
            "POST",
            &path,
            Some(&json!({"eventType": event_type}).to_string()),
        )
    };
    let mut sent = Vec::new();
    for (event_type, payload) in [
        ("invoice.issued", json!({"id": "ex_1", "amount": 5})),
        ("order.paid", json!({"success": true})),
        ("svix.ping", json!({"success": true})),
    ] {
        let r = example(event_type);
        assert_eq!(r.status, 200, "{}", r.body);
        let m = r.json();
        assert_eq!(
            (m["eventType"].as_str(), &m["payload"]),
            (Some(event_type), &payload)
        );
        sent.push((m["id"].as_str().unwrap().to_owned(), payload));
    }
    let got = target.wait_for_requests(3, WAIT);
    for (id, payload) in &sent {
        let r = got
            .iter()
            .find(|r| r.header("webhook-id") == Some(id.as_str()))
            .expect("sent");
        assert_eq!(serde_json::from_slice::<Value>(&r.body).unwrap(), *payload);
        let ts: u64 = r.header("webhook-timestamp").unwrap().parse().unwrap();
        assert!(hookd::verify(
            &key,
            id,
            ts,
            &r.body,
            r.header("webhook-signature").unwrap()
        ));
    }
    // A message for everyone reaches the other endpoint; the examples never did.
    send(&h, "order.paid", json!({"n": 1}), &[]);
    let theirs = other.wait_for_requests(1, WAIT);
    assert_eq!(theirs.len(), 1);
    assert_eq!(
        serde_json::from_slice::<Value>(&theirs[0].body).unwrap(),
        json!({"n": 1})
    );
    // Fan-out goes in log order: the examples, before that message, were never for it.
    let listed = h.admin(
        "GET",
        &format!("/api/v1/app/shop/endpoint/{other_ep}/msg"),
        None,
    );
    let listed: Vec<Value> = listed.json()["data"].as_array().unwrap().clone();
    assert!(
        listed.iter().all(|m| m["payload"] == json!({"n": 1})),
        "{listed:?}"
    );
    assert_eq!(example("no.such.type").status, 404);
    let path = format!("/api/v1/app/shop/endpoint/{ep}/send-example");
    assert_eq!(h.admin("POST", &path, Some("{}")).status, 422);
    let r = h.admin(
        "POST",
        "/api/v1/app/shop/endpoint/ep_nope/send-example",
        Some(r#"{"eventType":"svix.ping"}"#),
    );
    assert_eq!(r.status, 404);
}

/// Standard Webhooks `v1a`: an ed25519 endpoint key (`whsk_`, given or made by
/// `default_signature = "ed25519"`) signs deliveries `v1a,<ed25519 signature>` that verify
/// with the `whpk_` public key its secret reads as; a rotation to an HMAC key sends both.
#[test]
fn ed25519_endpoints_sign_v1a() {
    use aws_lc_rs::signature::{UnparsedPublicKey, ED25519};
    use base64::{engine::general_purpose::STANDARD as B64, Engine};
    const SPEC: &str = include_str!("vectors/standard-webhooks-v1a.json");
    let spec: Value = serde_json::from_str(SPEC).unwrap();
    let (spec_key, spec_public) = (
        spec["vectors"][0]["secret_key"].as_str().unwrap(),
        spec["vectors"][0]["public_key"].as_str().unwrap(),
    );
    let rx = Receiver::start();
    let h = Hookd::start(&format!("{FAST}default_signature = \"ed25519\"\n"));
    setup(&h);
    let made = endpoint(&h, json!({"url": rx.url("/made"), "uid": "made"}));
    let given = endpoint(
        &h,
        json!({"url": rx.url("/given"), "uid": "given", "secret": spec_key}),
    );
    let public = |ep: &Value| {
        let path = format!(
            "/api/v1/app/shop/endpoint/{}/secret",
            ep["id"].as_str().unwrap()
        );
        h.admin("GET", &path, None).json()["key"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        public(&given),
        spec_public,
        "the secret reads as the public key"
    );
    let made_public = public(&made);
    assert!(made_public.starts_with("whpk_"), "{made_public}");
    let verifies = |r: &receiver::Recorded, whpk: &str| {
        let key = B64.decode(whpk.strip_prefix("whpk_").unwrap()).unwrap();
        let (id, ts) = (
            r.header("webhook-id").unwrap(),
            r.header("webhook-timestamp").unwrap(),
        );
        let mut signed = format!("{id}.{ts}.").into_bytes();
        signed.extend_from_slice(&r.body);
        let header = r.header("webhook-signature").unwrap();
        header
            .split(' ')
            .filter_map(|e| e.strip_prefix("v1a,"))
            .any(|sig| {
                let sig = B64.decode(sig).unwrap();
                UnparsedPublicKey::new(&ED25519, &key)
                    .verify(&signed, &sig)
                    .is_ok()
            })
    };
    send(&h, "order.paid", json!({"n": 1}), &[]);
    let got = rx.wait_for_requests(2, WAIT);
    for r in &got {
        let whpk = if r.path == "/given" {
            spec_public
        } else {
            made_public.as_str()
        };
        let header = r.header("webhook-signature").unwrap();
        assert!(
            header.starts_with("v1a,") && !header.contains(' '),
            "{header}"
        );
        assert!(verifies(r, whpk), "{} {header}", r.path);
    }
    // Rotation to an HMAC key: during the grace, both entries, each verifying.
    let hmac = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let path = format!(
        "/api/v1/app/shop/endpoint/{}/secret/rotate",
        given["id"].as_str().unwrap()
    );
    let r = h.admin("POST", &path, Some(&json!({"key": hmac}).to_string()));
    assert_eq!(
        (r.status, r.json()["key"].as_str()),
        (200, Some(hmac)),
        "{}",
        r.body
    );
    send(&h, "order.paid", json!({"n": 2}), &[]);
    let got = rx.wait_for_requests(4, WAIT);
    let last = got.iter().rev().find(|r| r.path == "/given").unwrap();
    let header = last.header("webhook-signature").unwrap();
    let ts: u64 = last.header("webhook-timestamp").unwrap().parse().unwrap();
    let id = last.header("webhook-id").unwrap();
    assert!(
        header.starts_with("v1,") && header.contains(" v1a,"),
        "{header}"
    );
    assert!(hookd::verify(
        &hookd::parse_secret(hmac),
        id,
        ts,
        &last.body,
        header
    ));
    assert!(verifies(last, spec_public));
    // A key whose halves disagree, or an ed25519 pair written as whsec_, is refused.
    let mut pair = B64.decode(spec_key.strip_prefix("whsk_").unwrap()).unwrap();
    let as_whsec = format!("whsec_{}", B64.encode(&pair));
    pair[63] ^= 1;
    for bad in [format!("whsk_{}", B64.encode(&pair)), as_whsec] {
        let body = json!({"url": rx.url("/bad"), "secret": bad});
        let r = h.admin("POST", "/api/v1/app/shop/endpoint", Some(&body.to_string()));
        assert_eq!(r.status, 422, "{}", r.body);
    }
}
