//! Filtered bulk replay against the real binary: `POST .../endpoint/{ep}/bulk-replay` re-sends
//! exactly the endpoint's deliveries that match the window and each filter field, and
//! `GET .../bulk-replay/{id}` reports its progress.

#[path = "support/hookd.rs"]
mod hookd;
#[path = "support/receiver.rs"]
mod receiver;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use hookd::Hookd;
use receiver::{Receiver, Reply};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

struct Setup {
    h: Hookd,
    rx: Receiver,
    ep: String,
    /// Message ids in creation order, with (event type, channel, fails at the receiver).
    msgs: Vec<(String, &'static str, &'static str, bool)>,
    /// The creation time of the fourth message (RFC 3339).
    fourth_at: String,
}

fn setup() -> Setup {
    // The receiver fails (500) every message whose payload says so, answers 200 otherwise.
    let rx = Receiver::builder()
        .handler(|r| {
            let body: Value = serde_json::from_slice(&r.body).unwrap_or_default();
            match body["fail"].as_bool() {
                Some(true) => Reply::status(500),
                _ => Reply::ok(),
            }
        })
        .start();
    let h =
        Hookd::start("[delivery]\nretry_schedule = [\"50ms\"]\nallow_private_networks = true\n");
    h.create("/api/v1/app", json!({"name": "Shop", "uid": "shop"}));
    let ep = h.create("/api/v1/app/shop/endpoint", json!({"url": rx.url("/hook")}))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let plan = [
        ("order.paid", "eu", true),
        ("order.paid", "us", false),
        ("order.refunded", "eu", true),
        ("order.paid", "eu", true),
        ("order.refunded", "us", true),
        ("order.paid", "us", false),
    ];
    let mut msgs = Vec::new();
    let mut fourth_at = String::new();
    for (i, (t, ch, fail)) in plan.into_iter().enumerate() {
        if i == 3 {
            // Messages are stamped in milliseconds: keep the window's edge between two.
            std::thread::sleep(Duration::from_millis(5));
        }
        let body = json!({"eventType": t, "channels": [ch], "payload": {"i": i, "fail": fail}});
        let r = h.admin("POST", "/api/v1/app/shop/msg", Some(&body.to_string()));
        assert_eq!(r.status, 202, "{}", r.body);
        let m = r.json();
        if i == 3 {
            fourth_at = m["timestamp"].as_str().unwrap().to_owned();
        }
        msgs.push((m["id"].as_str().unwrap().to_owned(), t, ch, fail));
    }
    let s = Setup {
        h,
        rx,
        ep,
        msgs,
        fourth_at,
    };
    s.settle();
    s
}

impl Setup {
    /// Waits until the endpoint's message list shows every delivery settled (success, or
    /// failed after its one retry): nothing pending or in flight.
    fn settle(&self) {
        let path = format!("/api/v1/app/shop/endpoint/{}/msg", self.ep);
        let deadline = Instant::now() + WAIT;
        loop {
            let v = self.h.admin("GET", &path, None).json();
            let settled = v["data"].as_array().is_some_and(|d| {
                d.len() == self.msgs.len() && d.iter().all(|m| m["status"] == 0 || m["status"] == 2)
            });
            if settled {
                return;
            }
            assert!(Instant::now() < deadline, "never settled: {v}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
impl Setup {
    /// Runs a bulk replay with `body`, waits for it to finish and for the receiver to get
    /// what it queued; the ids of the messages sent again, and the final progress.
    fn replay(&self, body: Value) -> (BTreeSet<String>, Value) {
        self.settle();
        let before = self.rx.requests().len();
        let path = format!("/api/v1/app/shop/endpoint/{}/bulk-replay", self.ep);
        let r = self.h.admin("POST", &path, Some(&body.to_string()));
        assert_eq!(r.status, 202, "{}", r.body);
        let started = r.json();
        assert_eq!(started["status"], "running", "{started}");
        let task = format!("{path}/{}", started["id"].as_str().unwrap());
        let deadline = Instant::now() + WAIT;
        let progress = loop {
            // A read token may follow it.
            let p = self.h.call("GET", &task, Some(hookd::READER), None);
            assert_eq!(p.status, 200, "{}", p.body);
            let p = p.json();
            if p["done"] == true {
                break p;
            }
            assert!(Instant::now() < deadline, "never done: {p}");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(progress["status"], "finished", "{progress}");
        let queued = progress["queued"].as_u64().unwrap() as usize;
        // Each one sent again is attempted once more (and its retry, if it fails again).
        let got = self.rx.wait_for_requests(before + queued, WAIT);
        let sent: BTreeSet<String> = got[before..]
            .iter()
            .map(|r| r.header("webhook-id").unwrap().to_owned())
            .collect();
        (sent, progress)
    }

    fn ids(&self, keep: impl Fn(usize, &str, &str, bool) -> bool) -> BTreeSet<String> {
        self.msgs
            .iter()
            .enumerate()
            .filter(|(i, (_, t, ch, fail))| keep(*i, t, ch, *fail))
            .map(|(_, (id, ..))| id.clone())
            .collect()
    }
}

#[test]
fn bulk_replay_sends_again_what_each_filter_field_selects() {
    let s = setup();
    let since = "2020-01-01T00:00:00Z";
    // status: the failed ones.
    let (sent, p) = s.replay(json!({"since": since, "status": 2}));
    assert_eq!(sent, s.ids(|_, _, _, fail| fail));
    assert_eq!(
        (p["matched"].as_u64(), p["queued"].as_u64()),
        (Some(4), Some(4)),
        "{p}"
    );
    // statusCodeClass: those whose last answer was a 2xx.
    let (sent, _) = s.replay(json!({"since": since, "statusCodeClass": 200}));
    assert_eq!(sent, s.ids(|_, _, _, fail| !fail));
    // eventTypes.
    let (sent, _) = s.replay(json!({"since": since, "eventTypes": ["order.refunded"]}));
    assert_eq!(sent, s.ids(|_, t, _, _| t == "order.refunded"));
    // channel.
    let (sent, _) = s.replay(json!({"since": since, "channel": "us"}));
    assert_eq!(sent, s.ids(|_, _, ch, _| ch == "us"));
    // The window: from the fourth message on, and up to it.
    let (sent, _) = s.replay(json!({"since": s.fourth_at, "channel": "eu"}));
    assert_eq!(sent, s.ids(|i, _, ch, _| i >= 3 && ch == "eu"));
    let (sent, _) =
        s.replay(json!({"since": since, "until": s.fourth_at, "eventTypes": ["order.paid"]}));
    assert_eq!(sent, s.ids(|i, t, _, _| i <= 3 && t == "order.paid"));
    // All fields at once, matching nothing: done, nothing queued.
    let (sent, p) = s.replay(json!({"since": since, "status": 0, "statusCodeClass": 500}));
    assert!(sent.is_empty());
    assert_eq!(
        (p["matched"].as_u64(), p["queued"].as_u64()),
        (Some(0), Some(0)),
        "{p}"
    );
}

#[test]
fn bulk_replay_refuses_bad_input_and_keeps_tasks_apart() {
    let s = setup();
    let path = format!("/api/v1/app/shop/endpoint/{}/bulk-replay", s.ep);
    for (body, field) in [
        (json!({}), "since"),
        (json!({"since": "yesterday"}), "since"),
        (
            json!({"since": "2020-01-01T00:00:00Z", "until": "2019-01-01T00:00:00Z"}),
            "until",
        ),
        (
            json!({"since": "2020-01-01T00:00:00Z", "status": 7}),
            "status",
        ),
        (
            json!({"since": "2020-01-01T00:00:00Z", "statusCodeClass": 250}),
            "statusCodeClass",
        ),
    ] {
        let r = s.h.admin("POST", &path, Some(&body.to_string()));
        assert_eq!(r.status, 422, "{body}: {}", r.body);
        assert_eq!(
            r.json()["detail"][0]["loc"],
            json!(["body", field]),
            "{}",
            r.body
        );
    }
    let body = json!({"since": "2020-01-01T00:00:00Z"}).to_string();
    let r = s.h.call("POST", &path, Some(hookd::READER), Some(&body));
    assert_eq!(r.status, 403, "admin only: {}", r.body);
    let task = s.h.admin("POST", &path, Some(&body)).json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Another endpoint cannot read it; an unknown task is 404.
    let other = s.h.create(
        "/api/v1/app/shop/endpoint",
        json!({"url": s.rx.url("/other")}),
    );
    let other_path = format!(
        "/api/v1/app/shop/endpoint/{}/bulk-replay/{task}",
        other["id"].as_str().unwrap()
    );
    assert_eq!(s.h.admin("GET", &other_path, None).status, 404);
    assert_eq!(
        s.h.admin("GET", &format!("{path}/task_nope"), None).status,
        404
    );
    // A disabled endpoint is not replayed to.
    let ep_path = format!("/api/v1/app/shop/endpoint/{}", s.ep);
    assert_eq!(
        s.h.admin("PATCH", &ep_path, Some(r#"{"disabled": true}"#))
            .status,
        200
    );
    assert_eq!(s.h.admin("POST", &path, Some(&body)).status, 409);
    // Audited.
    let audit = s.h.admin("GET", "/api/v1/audit", None).json();
    assert!(
        audit["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "endpoint.bulk_replay"),
        "{audit}"
    );
}
