//! `eventId` deduplication against the real binary: a repeated `eventId` in an app answers
//! 409, the claim is on disk no later than the message's 202 (a crash right after it does not
//! let a duplicate in), and it expires with the message (retention prunes it). A failed
//! append freeing its `eventId` is tested on a full disk, in `tests/disk.rs`.

#[path = "support/hookd.rs"]
mod hookd;

use std::time::{Duration, Instant};

use hookd::Hookd;

fn post(h: &Hookd, eid: &str) -> hookd::Reply {
    let body = format!(r#"{{"eventType":"e.t","eventId":"{eid}","payload":{{"k":1}}}}"#);
    h.admin("POST", "/api/v1/app/shop/msg", Some(&body))
}

fn app(h: &Hookd) {
    let r = h.admin(
        "POST",
        "/api/v1/app",
        Some(r#"{"name":"Shop","uid":"shop"}"#),
    );
    assert_eq!(r.status, 201, "{}", r.body);
}

#[test]
fn a_repeated_event_id_is_refused_even_right_after_a_crash() {
    let mut h = Hookd::start("");
    app(&h);
    for round in 0..20 {
        let eid = format!("order-{round}");
        let first = post(&h, &eid);
        assert_eq!(first.status, 202, "{}", first.body);
        // SIGKILL at once: only what was on disk before the 202 survives.
        h.crash_and_restart();
        let again = post(&h, &eid);
        assert_eq!(
            again.status, 409,
            "round {round}: a duplicate of {eid} was stored"
        );
        let msg = h.admin("GET", &format!("/api/v1/app/shop/msg/{eid}"), None);
        assert_eq!(msg.status, 200, "{}", msg.body);
        assert_eq!(msg.json()["id"], first.json()["id"]);
    }
}

#[test]
fn an_event_id_expires_with_its_message() {
    let h = Hookd::start("[storage]\nretention = \"1s\"\nsegment_age_max = \"1s\"\n");
    app(&h);
    assert_eq!(post(&h, "once").status, 202);
    assert_eq!(post(&h, "once").status, 409);
    // Retention retires the message's segment (every second here) and prunes its eventId:
    // the same eventId is then a new message.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = post(&h, "once");
        if r.status == 202 {
            break;
        }
        assert_eq!(r.status, 409, "{}", r.body);
        assert!(
            Instant::now() < deadline,
            "the eventId was still taken 30 s after its message's retention"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(post(&h, "once").status, 409);
}
