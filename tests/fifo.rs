//! Ordered (FIFO) endpoints against the real binary: one delivery at a time per
//! `orderingKey`, in the order of the 202s, through failures, retries, a SIGKILL and a
//! restart; other keys go on meanwhile; the stats show a blocked head; `PATCH` to `"none"`
//! releases the queue and disabling fails it; the fields' checks.

#[path = "support/hookd.rs"]
mod hookd;
#[path = "support/receiver.rs"]
mod receiver;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hookd::Hookd;
use receiver::{Receiver, Recorded, Reply};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

fn config(schedule: &str) -> String {
    format!(
        "[delivery]\nretry_schedule = {schedule}\ntimeout = \"2s\"\nallow_private_networks = true\n"
    )
}

/// One request as the receiver answered it.
#[derive(Debug, Clone)]
struct Seen {
    key: String,
    i: u64,
    ok: bool,
}

/// What a receiver's handler saw, in arrival order, with the answer it chose.
#[derive(Default, Clone)]
struct Journal(Arc<Mutex<Vec<Seen>>>);

impl Journal {
    fn record(&self, r: &Recorded, ok: bool) -> (String, u64) {
        let v: Value = serde_json::from_slice(&r.body).expect("a JSON payload");
        let key = v["key"].as_str().unwrap_or("").to_owned();
        let i = v["i"].as_u64().expect("i");
        self.0.lock().unwrap().push(Seen {
            key: key.clone(),
            i,
            ok,
        });
        (key, i)
    }

    fn seen(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }

    /// Waits until every `(key, i)` in `want` has been answered 2xx.
    #[track_caller]
    fn wait_delivered(&self, want: &HashSet<(String, u64)>, within: Duration) -> Vec<Seen> {
        let end = Instant::now() + within;
        loop {
            let seen = self.seen();
            let done: HashSet<(String, u64)> = seen
                .iter()
                .filter(|s| s.ok)
                .map(|s| (s.key.clone(), s.i))
                .collect();
            if want.is_subset(&done) {
                return seen;
            }
            assert!(
                Instant::now() < end,
                "not delivered within {within:?}: {:?}",
                want.difference(&done).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The ordering rule, checked over everything a receiver saw: no request for message `i` of a
/// key came before every earlier message of that key had been answered 2xx (a message may
/// come again after that: at least once), and each key's first successes are in order.
#[track_caller]
fn assert_in_order(seen: &[Seen]) {
    let mut delivered: BTreeMap<&str, HashSet<u64>> = BTreeMap::new();
    let mut firsts: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for (n, s) in seen.iter().enumerate() {
        let done = delivered.entry(&s.key).or_default();
        let missing: Vec<u64> = (0..s.i).filter(|j| !done.contains(j)).collect();
        assert!(
            missing.is_empty(),
            "request {n}: message {} of key {:?} came before {missing:?} were delivered: {seen:?}",
            s.i,
            s.key
        );
        if s.ok && done.insert(s.i) {
            firsts.entry(&s.key).or_default().push(s.i);
        }
    }
    for (key, order) in firsts {
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(order, sorted, "key {key:?}");
    }
}

fn send(h: &Hookd, key: Option<&str>, i: u64) -> String {
    let mut body =
        json!({"eventType": "order.paid", "payload": {"key": key.unwrap_or(""), "i": i}});
    if let Some(k) = key {
        body["orderingKey"] = json!(k);
    }
    let r = h.admin("POST", "/api/v1/app/shop/msg", Some(&body.to_string()));
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.json()["orderingKey"].as_str(), key);
    r.json()["id"].as_str().unwrap().to_owned()
}

fn fifo_endpoint(h: &Hookd, url: &str) -> String {
    h.create("/api/v1/app", json!({"name": "Shop", "uid": "shop"}));
    let e = h.create(
        "/api/v1/app/shop/endpoint",
        json!({"url": url, "ordering": "fifo"}),
    );
    assert_eq!(e["ordering"], "fifo");
    e["id"].as_str().unwrap().to_owned()
}

/// A receiver that answers 500 to the first `times` requests whose payload `which` picks, and
/// 200 to everything else, journaling each.
fn failing_receiver(
    journal: &Journal,
    times: u32,
    which: impl Fn(&Value) -> bool + Send + Sync + 'static,
) -> Receiver {
    let journal = journal.clone();
    let left = Mutex::new(times);
    Receiver::builder()
        .handler(move |r| {
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            let mut left = left.lock().unwrap();
            let fail = which(&v) && *left > 0;
            if fail {
                *left -= 1;
            }
            journal.record(r, !fail);
            if fail {
                Reply::status(500)
            } else {
                Reply::ok()
            }
        })
        .start()
}

#[test]
fn a_failing_head_holds_its_key_back_and_no_other() {
    let journal = Journal::default();
    // Message 2 of key "a" fails three times.
    let receiver = failing_receiver(&journal, 3, |v| v["key"] == "a" && v["i"] == 2);
    let h = Hookd::start(&config(r#"["1s", "1s", "1s", "1s", "1s"]"#));
    fifo_endpoint(&h, &receiver.url("/fifo"));
    let mut want = HashSet::new();
    for i in 0..10 {
        for key in ["a", "b", "c"] {
            send(&h, Some(key), i);
            want.insert((key.to_owned(), i));
        }
    }
    let seen = journal.wait_delivered(&want, WAIT);
    assert_in_order(&seen);
    // Keys "b" and "c" did not wait for "a": all of them were delivered before a's third
    // message finally got through (about three seconds of retries).
    let a2 = seen
        .iter()
        .position(|s| s.key == "a" && s.i == 2 && s.ok)
        .unwrap();
    for key in ["b", "c"] {
        let last = seen.iter().rposition(|s| s.key == key && s.ok).unwrap();
        assert!(last < a2, "key {key} waited for key a: {seen:?}");
    }
    assert_eq!(
        seen.iter().filter(|s| s.key == "a" && s.i == 2).count(),
        4,
        "three failures, then the success"
    );
}

#[test]
fn messages_without_a_key_share_one_lane_and_keys_run_in_parallel() {
    let journal = Journal::default();
    let receiver = {
        let journal = journal.clone();
        Receiver::builder()
            .handler(move |r| {
                journal.record(r, true);
                Reply::ok().delay(Duration::from_millis(50))
            })
            .start()
    };
    let h = Hookd::start(&config(r#"["1s"]"#));
    fifo_endpoint(&h, &receiver.url("/fifo"));
    let mut want = HashSet::new();
    for i in 0..8 {
        send(&h, None, i);
        want.insert((String::new(), i));
    }
    let seen = journal.wait_delivered(&want, WAIT);
    assert_in_order(&seen);
    assert_eq!(receiver.in_flight_max(), 1, "one lane: one at a time");

    for i in 0..5 {
        for k in 0..6 {
            let key = format!("k{k}");
            send(&h, Some(&key), i);
            want.insert((key, i));
        }
    }
    let seen = journal.wait_delivered(&want, WAIT);
    assert_in_order(&seen);
    assert!(
        receiver.in_flight_max() >= 2,
        "different keys go in parallel (at most {} at once)",
        receiver.in_flight_max()
    );
}

#[test]
fn the_order_holds_across_a_sigkill_while_the_endpoint_fails() {
    let journal = Journal::default();
    let failing = Arc::new(AtomicBool::new(true));
    let receiver = {
        let (journal, failing) = (journal.clone(), failing.clone());
        Receiver::builder()
            .handler(move |r| {
                let fail = failing.load(Ordering::SeqCst);
                journal.record(r, !fail);
                if fail {
                    Reply::status(503)
                } else {
                    Reply::ok()
                }
            })
            .start()
    };
    let schedule = format!("[{}]", ["\"500ms\""; 40].join(", "));
    let mut h = Hookd::start(&config(&schedule));
    fifo_endpoint(&h, &receiver.url("/fifo"));
    let mut want = HashSet::new();
    for i in 0..10 {
        for key in ["x", "y", "z"] {
            send(&h, Some(key), i);
            want.insert((key.to_owned(), i));
        }
    }
    // Every key's head has failed at least twice: the lanes wait in the index.
    let end = Instant::now() + WAIT;
    while ["x", "y", "z"].iter().any(|k| {
        journal
            .seen()
            .iter()
            .filter(|s| s.key == *k && s.i == 0)
            .count()
            < 2
    }) {
        assert!(
            Instant::now() < end,
            "heads not retried: {:?}",
            journal.seen()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    h.crash_and_restart();
    for i in 10..15 {
        for key in ["x", "y", "z"] {
            send(&h, Some(key), i);
            want.insert((key.to_owned(), i));
        }
    }
    std::thread::sleep(Duration::from_millis(700));
    failing.store(false, Ordering::SeqCst);
    let seen = journal.wait_delivered(&want, WAIT);
    assert_in_order(&seen);
    let tried_while_failing: HashSet<u64> = seen.iter().filter(|s| !s.ok).map(|s| s.i).collect();
    assert_eq!(
        tried_while_failing,
        HashSet::from([0]),
        "only heads were tried while failing: {seen:?}"
    );
}

/// The stats of an endpoint whose one lane is blocked.
fn blocked_heads(h: &Hookd, ep: &str) -> Value {
    let r = h.call(
        "GET",
        &format!("/api/v1/app/shop/endpoint/{ep}/stats"),
        Some(hookd::READER),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["fifo"]["blockedHeads"].clone()
}

#[test]
fn stats_show_the_blocked_head_and_patching_to_none_releases_the_queue() {
    let failing = Arc::new(AtomicBool::new(true));
    let journal = Journal::default();
    let receiver = {
        let (journal, failing) = (journal.clone(), failing.clone());
        Receiver::builder()
            .handler(move |r| {
                let (_, i) = journal.record(r, true);
                if i == 0 && failing.load(Ordering::SeqCst) {
                    Reply::status(500).body("not yet")
                } else {
                    Reply::ok()
                }
            })
            .start()
    };
    let h = Hookd::start(&config(r#"["1h"]"#));
    let ep = fifo_endpoint(&h, &receiver.url("/fifo"));
    let head = send(&h, Some("k"), 0);
    for i in 1..4 {
        send(&h, Some("k"), i);
    }
    let end = Instant::now() + WAIT;
    let heads = loop {
        let heads = blocked_heads(&h, &ep);
        // The head's entry is written as its attempt ends, its state once recorded.
        if heads.as_array().is_some_and(|a| a.len() == 1)
            && heads[0]["waitingBehind"] == 3
            && heads[0]["attempts"] == 1
        {
            break heads;
        }
        assert!(Instant::now() < end, "no blocked head: {heads}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(heads[0]["msgId"], head.as_str());
    assert_eq!(heads[0]["orderingKey"], "k");
    assert_eq!(heads[0]["attempts"], 1);
    assert_eq!(heads[0]["lastStatusCode"], 500);
    assert!(heads[0]["nextAttempt"].is_string(), "{heads}");
    assert_eq!(journal.seen().len(), 1, "only the head was tried");
    // The status page's summary shows it under the failing endpoint.
    let r = h.admin("GET", "/api/v1/status/summary", None);
    assert_eq!(r.status, 200, "{}", r.body);
    let unhealthy = r.json()["endpoints"]["unhealthy"].clone();
    let shown = unhealthy
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == ep.as_str())
        .unwrap_or_else(|| panic!("{unhealthy}"))["blockedHeads"]
        .clone();
    assert_eq!(shown[0]["msgId"], head.as_str(), "{shown}");
    assert_eq!(shown[0]["attempts"], 1);
    assert_eq!(shown[0]["waitingBehind"], 3);
    assert!(shown[0]["nextAtMs"].is_u64(), "{shown}");
    // The others are pending with no time of their own.
    let r = h.admin("GET", &format!("/api/v1/app/shop/endpoint/{ep}/msg"), None);
    assert_eq!(r.status, 200, "{}", r.body);
    let items = r.json()["data"].as_array().unwrap().clone();
    assert_eq!(items.len(), 4, "{}", r.body);
    for m in &items {
        assert_eq!(m["status"], 1, "{m}");
        assert_eq!(
            m["nextAttempt"].is_string(),
            m["id"] == head.as_str(),
            "{m}"
        );
    }
    // A PUT that does not name the ordering keeps it.
    let r = h.admin(
        "PUT",
        &format!("/api/v1/app/shop/endpoint/{ep}"),
        Some(&json!({"url": receiver.url("/fifo")}).to_string()),
    );
    assert_eq!(r.json()["ordering"], "fifo", "{}", r.body);

    // No longer ordered: the three behind the head go at once; the head keeps its retry.
    let r = h.admin(
        "PATCH",
        &format!("/api/v1/app/shop/endpoint/{ep}"),
        Some(r#"{"ordering": "none"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["ordering"], "none");
    let want: HashSet<(String, u64)> = (1..4).map(|i| ("k".to_owned(), i)).collect();
    journal.wait_delivered(&want, WAIT);
    assert!(
        blocked_heads(&h, &ep).is_null(),
        "no fifo stats once unordered"
    );
}

#[test]
fn disabling_an_ordered_endpoint_fails_its_queue() {
    let receiver = Receiver::builder().handler(|_| Reply::status(500)).start();
    let h = Hookd::start(&config(r#"["1h"]"#));
    let ep = fifo_endpoint(&h, &receiver.url("/fifo"));
    for i in 0..3 {
        send(&h, Some("k"), i);
    }
    let end = Instant::now() + WAIT;
    while blocked_heads(&h, &ep)[0]["waitingBehind"] != 2 {
        assert!(Instant::now() < end, "no blocked head");
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = h.admin(
        "PATCH",
        &format!("/api/v1/app/shop/endpoint/{ep}"),
        Some(r#"{"disabled": true}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let end = Instant::now() + WAIT;
    loop {
        let r = h.admin("GET", &format!("/api/v1/app/shop/endpoint/{ep}/msg"), None);
        let statuses: Vec<Value> = r.json()["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["status"].clone())
            .collect();
        if statuses == [json!(2), json!(2), json!(2)] {
            break;
        }
        assert!(Instant::now() < end, "not failed: {statuses:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(blocked_heads(&h, &ep), json!([]), "the lanes are gone");
    assert_eq!(receiver.requests().len(), 1, "only the head was tried");
}

#[test]
fn ordering_and_ordering_key_are_checked_and_shown() {
    let h = Hookd::start(&config(r#"["1s"]"#));
    h.create("/api/v1/app", json!({"name": "Shop", "uid": "shop"}));
    let e = h.create(
        "/api/v1/app/shop/endpoint",
        json!({"url": "http://127.0.0.1:9/x"}),
    );
    assert_eq!(e["ordering"], "none", "the default");
    let r = h.admin(
        "POST",
        "/api/v1/app/shop/endpoint",
        Some(r#"{"url": "http://127.0.0.1:9/x", "ordering": "lifo"}"#),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("ordering"), "{}", r.body);
    for key in ["", &"k".repeat(129)] {
        let body = json!({"eventType": "a", "payload": {}, "orderingKey": key}).to_string();
        let r = h.admin("POST", "/api/v1/app/shop/msg", Some(&body));
        assert_eq!(r.status, 422, "{}", r.body);
        assert_eq!(r.json()["detail"][0]["loc"], json!(["body", "orderingKey"]));
    }
    let body = json!({"eventType": "a", "payload": {}, "orderingKey": "k".repeat(128)}).to_string();
    let r = h.admin("POST", "/api/v1/app/shop/msg", Some(&body));
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let r = h.admin("GET", &format!("/api/v1/app/shop/msg/{id}"), None);
    assert_eq!(r.json()["orderingKey"], "k".repeat(128));
}

#[test]
fn an_endpoint_declared_ordered_in_the_config_is_ordered() {
    let journal = Journal::default();
    let receiver = failing_receiver(&journal, 2, |_| true);
    let h = Hookd::start(&format!(
        "{}\n[[apps]]\nuid = \"shop\"\nname = \"Shop\"\n[[apps.endpoints]]\nuid = \"ordered\"\nurl = \"{}\"\nordering = \"fifo\"\n",
        config(r#"["300ms", "300ms", "300ms"]"#),
        receiver.url("/fifo")
    ));
    let r = h.admin("GET", "/api/v1/app/shop/endpoint/ordered", None);
    assert_eq!(r.json()["ordering"], "fifo", "{}", r.body);
    let mut want = HashSet::new();
    for i in 0..6 {
        send(&h, None, i);
        want.insert((String::new(), i));
    }
    assert_in_order(&journal.wait_delivered(&want, WAIT));
}

/// A lane whose head waited for retries has the rest parked in the index; once the head is
/// through they follow, in order. (The first version made each next one due only when the
/// dispatcher happened to wake, up to 250 ms later: 300 took 75 s, beyond the wait here. Now
/// the shard leases each as the one before it settles; how fast that drains is measured by
/// hand, see the closing note of issue 16, not asserted here.)
#[test]
fn a_lane_parked_in_the_index_drains_in_order() {
    let journal = Journal::default();
    let receiver = failing_receiver(&journal, 2, |_| true);
    let h = Hookd::start(&config(r#"["1s", "1s", "1s"]"#));
    fifo_endpoint(&h, &receiver.url("/fifo"));
    let mut want = HashSet::new();
    for start in (0..300).step_by(100) {
        let batch: Vec<Value> = (start..start + 100)
            .map(|i| json!({"eventType": "order.paid", "orderingKey": "one", "payload": {"key": "one", "i": i}}))
            .collect();
        let r = h.admin(
            "POST",
            "/api/v1/app/shop/msg/batch",
            Some(&Value::Array(batch).to_string()),
        );
        assert_eq!(r.status, 202, "{}", r.body);
        want.extend((start..start + 100).map(|i| ("one".to_owned(), i)));
    }
    let seen = journal.wait_delivered(&want, WAIT);
    assert_in_order(&seen);
    assert_eq!(seen.len(), 302, "two failures of the head, then each once");
}
