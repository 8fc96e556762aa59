//! The index database's typed APIs.

mod common;

use std::collections::BTreeMap;

use storage::{
    state::{
        AppRecord, AttemptRecord, AuditRecord, DeliveryState, DeliveryStatus, EndpointRecord,
        EventTypeRecord, IdempotencyRecord, MessageRef, OutcomeRecord, SigningKey, Trigger,
    },
    Error, ManualClock,
};

fn app(key: u64, id: &str, uid: Option<&str>) -> AppRecord {
    AppRecord {
        key,
        id: id.into(),
        uid: uid.map(Into::into),
        name: format!("app {key}"),
        rate_limit: None,
        metadata: BTreeMap::from([("k".into(), "v".into())]),
        created_ms: 1,
        updated_ms: 1,
        config_owned: false,
    }
}

fn endpoint(key: u64, app_key: u64, uid: Option<&str>) -> EndpointRecord {
    EndpointRecord {
        key,
        app_key,
        id: format!("ep_{key}"),
        uid: uid.map(Into::into),
        url: "https://example.com/hook".into(),
        description: String::new(),
        version: 1,
        event_types: Some(vec!["user.created".into()]),
        channels: None,
        secrets: vec![SigningKey {
            key: vec![1, 2, 3],
            expires_ms: None,
        }],
        disabled: false,
        disabled_reason: None,
        metadata: BTreeMap::new(),
        headers: BTreeMap::from([("x-a".into(), "b".into())]),
        throttle_rate: Some(10),
        failing_since_ms: None,
        config_owned: false,
        created_ms: 1,
        updated_ms: 1,
        legacy_signatures: Vec::new(),
        filter: None,
        fifo: false,
    }
}

fn pending(at: u64) -> DeliveryState {
    DeliveryState {
        status: DeliveryStatus::Pending,
        attempts: 0,
        next_at_ms: at,
        last_status_code: None,
        updated_ms: 0,
        trigger: Trigger::Scheduled,
    }
}

/// A first attempt at `(ep, seq)` that succeeded, with attempt key `key`.
fn settled(key: u64, seq: u64, ep: u64) -> OutcomeRecord {
    OutcomeRecord {
        attempt: AttemptRecord {
            key,
            id: format!("atmpt_{key}"),
            msg_seq: seq,
            endpoint_key: ep,
            url: "https://x".into(),
            status_code: Some(200),
            response: String::new(),
            duration_ms: 1,
            trigger: Trigger::Scheduled,
            status: DeliveryStatus::Success,
            ts_ms: key,
        },
        next: DeliveryState {
            status: DeliveryStatus::Success,
            ..pending(1)
        },
        first_write: true,
        fifo_lane: None,
    }
}

#[test]
fn apps_are_found_by_id_or_uid_and_uids_are_unique() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), &ManualClock::new(1));
    let st = store.state();
    st.put_app(&app(1, "app_1", Some("one"))).unwrap();
    st.put_app(&app(2, "app_2", None)).unwrap();
    assert_eq!(st.app_by_id_or_uid("app_1").unwrap().unwrap().key, 1);
    assert_eq!(st.app_by_id_or_uid("one").unwrap().unwrap().key, 1);
    assert!(st.app_by_id_or_uid("two").unwrap().is_none());
    let err = st.put_app(&app(2, "app_2", Some("one"))).unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    // Changing a uid frees the old one.
    st.put_app(&app(1, "app_1", Some("uno"))).unwrap();
    assert!(st.app_by_id_or_uid("one").unwrap().is_none());
    st.put_app(&app(2, "app_2", Some("one"))).unwrap();
    assert_eq!(st.app_by_id_or_uid("one").unwrap().unwrap().key, 2);
    // Paging.
    let p = st.list_apps(None, 1, false).unwrap();
    assert_eq!((p.items[0].key, p.done), (1, false));
    let p2 = st.list_apps(Some(1), 5, false).unwrap();
    assert_eq!(p2.items.iter().map(|a| a.key).collect::<Vec<_>>(), vec![2]);
    assert!(p2.done);
    let desc = st.list_apps(None, 5, true).unwrap();
    assert_eq!(
        desc.items.iter().map(|a| a.key).collect::<Vec<_>>(),
        vec![2, 1]
    );
    let desc = st.list_apps(Some(2), 5, true).unwrap();
    assert_eq!(
        desc.items.iter().map(|a| a.key).collect::<Vec<_>>(),
        vec![1]
    );
}

#[test]
fn endpoints_belong_to_their_app_and_go_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), &ManualClock::new(1));
    let st = store.state();
    st.put_app(&app(1, "app_1", None)).unwrap();
    st.put_app(&app(2, "app_2", None)).unwrap();
    st.put_endpoint(&endpoint(10, 1, Some("main"))).unwrap();
    st.put_endpoint(&endpoint(11, 1, None)).unwrap();
    st.put_endpoint(&endpoint(12, 2, Some("main"))).unwrap(); // same uid, other app: fine
    assert_eq!(
        st.endpoint_by_id_or_uid(1, "main").unwrap().unwrap().key,
        10
    );
    assert_eq!(
        st.endpoint_by_id_or_uid(2, "main").unwrap().unwrap().key,
        12
    );
    assert!(
        st.endpoint_by_id_or_uid(2, "ep_10").unwrap().is_none(),
        "other app's id"
    );
    let err = st.put_endpoint(&endpoint(11, 1, Some("main"))).unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }));
    assert_eq!(
        st.endpoint(10).unwrap().unwrap(),
        endpoint(10, 1, Some("main"))
    );
    let page = st.list_endpoints(1, None, 1, false).unwrap();
    assert_eq!((page.items[0].key, page.done), (10, false));
    let page = st.list_endpoints(1, Some(10), 10, false).unwrap();
    assert_eq!((page.items[0].key, page.done), (11, true));
    let page = st.list_endpoints(1, None, 10, true).unwrap();
    assert_eq!(
        page.items.iter().map(|e| e.key).collect::<Vec<_>>(),
        vec![11, 10]
    );
    let page = st.list_endpoints(1, Some(11), 10, true).unwrap();
    assert_eq!(
        page.items.iter().map(|e| e.key).collect::<Vec<_>>(),
        vec![10]
    );
    assert!(st.delete_app(1).unwrap());
    assert!(st.endpoint(10).unwrap().is_none());
    assert!(st.app_endpoints(1).unwrap().is_empty());
    assert_eq!(st.app_endpoints(2).unwrap().len(), 1);
    assert!(!st.delete_app(1).unwrap());
}

#[test]
fn event_types_list_by_name_and_hide_archived() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), &ManualClock::new(1));
    let st = store.state();
    for (name, archived) in [("b.two", false), ("a.one", false), ("c.three", true)] {
        st.put_event_type(&EventTypeRecord {
            name: name.into(),
            description: "d".into(),
            archived,
            deprecated: false,
            feature_flags: vec![],
            schemas: None,
            config_owned: false,
            created_ms: 1,
            updated_ms: 1,
        })
        .unwrap();
    }
    let names =
        |p: storage::Page<EventTypeRecord>| p.items.into_iter().map(|e| e.name).collect::<Vec<_>>();
    assert_eq!(
        names(st.list_event_types(None, 10, false).unwrap()),
        vec!["a.one", "b.two"]
    );
    assert_eq!(
        names(st.list_event_types(Some("a.one"), 10, true).unwrap()),
        vec!["b.two", "c.three"]
    );
    assert!(st.delete_event_type("a.one").unwrap());
    assert!(st.event_type("a.one").unwrap().is_none());
}

#[test]
fn delivery_index_due_index_and_pending_floor_move_together() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), &ManualClock::new(1));
    let st = store.state();
    st.set_delivery(7, 100, &pending(5_000)).unwrap();
    st.set_delivery(8, 100, &pending(1_000)).unwrap();
    st.set_delivery(7, 101, &pending(3_000)).unwrap();
    assert_eq!(st.pending_count(), 3);
    assert_eq!(st.min_pending_seq().unwrap(), Some(100));
    let due: Vec<_> = st
        .due_before(4_000, 10)
        .unwrap()
        .iter()
        .map(|d| (d.at_ms, d.endpoint, d.seq))
        .collect();
    assert_eq!(due, vec![(1_000, 8, 100), (3_000, 7, 101)]);
    // Rescheduling moves the due entry rather than adding one.
    st.set_delivery(
        8,
        100,
        &DeliveryState {
            attempts: 1,
            next_at_ms: 9_000,
            ..pending(0)
        },
    )
    .unwrap();
    assert_eq!(st.due_before(4_000, 10).unwrap().len(), 1);
    // Success removes it from due and pending; the floor moves only when both of seq 100's go.
    st.set_delivery(
        8,
        100,
        &DeliveryState {
            status: DeliveryStatus::Success,
            ..pending(0)
        },
    )
    .unwrap();
    assert_eq!(st.min_pending_seq().unwrap(), Some(100));
    st.set_delivery(
        7,
        100,
        &DeliveryState {
            status: DeliveryStatus::Fail,
            ..pending(0)
        },
    )
    .unwrap();
    assert_eq!(st.min_pending_seq().unwrap(), Some(101));
    assert_eq!(st.due_before(u64::MAX, 10).unwrap().len(), 1);
    let per_msg = st.message_deliveries(100, [7, 8]).unwrap();
    assert_eq!(
        per_msg
            .iter()
            .map(|(ep, s)| (*ep, s.status))
            .collect::<Vec<_>>(),
        vec![(7, DeliveryStatus::Fail), (8, DeliveryStatus::Success)]
    );
    assert_eq!(st.pending_count(), 1, "one delivery is still open");
    let per_ep = st.endpoint_deliveries(7, 0, 10).unwrap();
    assert_eq!(
        per_ep.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        vec![100, 101]
    );
}

#[test]
fn attempts_list_newest_first_by_message_and_by_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), &ManualClock::new(1));
    let st = store.state();
    // Recorded with the delivery states they lead to, the last one succeeding.
    for (key, seq, ep) in [(1, 100, 7), (2, 100, 8), (3, 101, 7), (4, 100, 7)] {
        let next = DeliveryState {
            status: if key == 4 {
                DeliveryStatus::Success
            } else {
                DeliveryStatus::Pending
            },
            ..pending(1_000 + key)
        };
        st.record_outcomes(&[OutcomeRecord {
            attempt: AttemptRecord {
                key,
                id: format!("atmpt_{key}"),
                msg_seq: seq,
                endpoint_key: ep,
                url: "https://x".into(),
                status_code: Some(500),
                response: "oops".into(),
                duration_ms: 3,
                trigger: Trigger::Scheduled,
                status: DeliveryStatus::Fail,
                ts_ms: key,
            },
            next,
            first_write: false,
            fifo_lane: None,
        }])
        .unwrap();
    }
    assert_eq!(
        st.delivery(7, 100).unwrap().unwrap().status,
        DeliveryStatus::Success
    );
    assert_eq!(st.delivery(7, 101).unwrap().unwrap().next_at_ms, 1_003);
    assert_eq!(
        st.due_before(u64::MAX, 10)
            .unwrap()
            .iter()
            .map(|d| (d.endpoint, d.seq))
            .collect::<Vec<_>>(),
        vec![(8, 100), (7, 101)],
        "the succeeded delivery left the due index"
    );
    let keys = |p: storage::Page<AttemptRecord>| p.items.iter().map(|a| a.key).collect::<Vec<_>>();
    assert_eq!(
        keys(st.attempts_for_message(100, None, 10).unwrap()),
        vec![4, 2, 1]
    );
    let first = st.attempts_for_endpoint(7, None, 2).unwrap();
    assert!(!first.done);
    assert_eq!(keys(first), vec![4, 3]);
    assert_eq!(
        keys(st.attempts_for_endpoint(7, Some(3), 2).unwrap()),
        vec![1]
    );
    assert_eq!(st.attempt(100, 2).unwrap().unwrap().endpoint_key, 8);
    assert_eq!(
        st.attempt(101, 2).unwrap(),
        None,
        "an attempt is found under its own message"
    );
}

#[test]
fn idempotency_keys_expire_and_are_purged() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), &ManualClock::new(1));
    let st = store.state();
    let rec = |exp| IdempotencyRecord {
        expires_ms: exp,
        status: 202,
        body: b"{}".to_vec(),
    };
    st.put_idempotency("app_1", "k1", &rec(1_000)).unwrap();
    st.put_idempotency("app_1", "k2", &rec(5_000)).unwrap();
    st.put_idempotency("app_2", "k1", &rec(5_000)).unwrap();
    assert_eq!(
        st.idempotency("app_1", "k1", 999).unwrap(),
        Some(rec(1_000))
    );
    assert_eq!(st.idempotency("app_1", "k1", 1_000).unwrap(), None);
    assert_eq!(st.purge_idempotency(2_000).unwrap(), 1);
    assert_eq!(
        st.idempotency("app_2", "k1", 2_000).unwrap(),
        Some(rec(5_000))
    );
}

#[test]
fn idempotency_claims_are_exclusive_until_released_or_expired() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), &ManualClock::new(1));
    let st = store.state();
    let claim = |exp| IdempotencyRecord {
        expires_ms: exp,
        status: 0,
        body: vec![],
    };
    assert_eq!(
        st.claim_idempotency("s", "k", &claim(100), 10).unwrap(),
        None
    );
    assert_eq!(
        st.claim_idempotency("s", "k", &claim(100), 20).unwrap(),
        Some(claim(100))
    );
    st.release_idempotency("s", "k").unwrap();
    assert_eq!(
        st.claim_idempotency("s", "k", &claim(100), 30).unwrap(),
        None
    );
    // An expired claim (its request died) can be taken over.
    assert_eq!(
        st.claim_idempotency("s", "k", &claim(300), 150).unwrap(),
        None
    );
    let done = IdempotencyRecord {
        expires_ms: 1_000,
        status: 202,
        body: b"{}".to_vec(),
    };
    st.put_idempotency("s", "k", &done).unwrap();
    assert_eq!(
        st.claim_idempotency("s", "k", &claim(300), 200).unwrap(),
        Some(done)
    );
}

#[test]
fn event_ids_are_claimed_once_per_app() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), &ManualClock::new(1));
    let st = store.state();
    let r = |seq: u64, id: &str| MessageRef { seq, id: id.into() };
    let live = |_: &MessageRef| false;
    st.claim_event_id(1, "evt-1", &r(0, ""), live).unwrap();
    st.claim_event_id(2, "evt-1", &r(0, ""), live).unwrap();
    let err = st.claim_event_id(1, "evt-1", &r(0, ""), live).unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }));
    st.set_event_id(1, "evt-1", Some(&r(10, "msg_a"))).unwrap();
    assert_eq!(st.message_by_event_id(1, "evt-1").unwrap().unwrap().seq, 10);
    st.set_event_id(2, "evt-1", None).unwrap();
    assert!(st.message_by_event_id(2, "evt-1").unwrap().is_none());
    st.claim_event_id(2, "evt-1", &r(0, ""), live).unwrap();
}

#[test]
fn a_stale_event_id_claim_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), &ManualClock::new(1));
    let st = store.state();
    let r = |seq: u64, id: &str| MessageRef { seq, id: id.into() };
    // Left by a message that never became durable: the claim names seq 7.
    st.claim_event_id(1, "evt", &r(0, ""), |_| false).unwrap();
    st.set_event_id(1, "evt", Some(&r(7, "msg_lost"))).unwrap();
    let seen = std::cell::Cell::new(0);
    st.claim_event_id(1, "evt", &r(0, ""), |found| {
        seen.set(found.seq);
        true
    })
    .unwrap();
    assert_eq!(seen.get(), 7, "the stale test saw the claim found");
    st.set_event_id(1, "evt", Some(&r(9, "msg_new"))).unwrap();
    assert_eq!(st.message_by_event_id(1, "evt").unwrap().unwrap().seq, 9);
    // Pruning below 8 leaves the new claim (its seq is 9); below 10 removes it.
    assert!(!st
        .prune_below(
            8,
            std::time::Instant::now() + std::time::Duration::from_secs(5)
        )
        .unwrap());
    assert_eq!(st.message_by_event_id(1, "evt").unwrap().unwrap().seq, 9);
    assert!(!st
        .prune_below(
            10,
            std::time::Instant::now() + std::time::Duration::from_secs(5)
        )
        .unwrap());
    assert!(st.message_by_event_id(1, "evt").unwrap().is_none());
    st.claim_event_id(1, "evt", &r(0, ""), |_| false).unwrap();
}

#[test]
fn event_ids_of_retired_messages_are_pruned_in_bounded_slices() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), &ManualClock::new(1));
    let st = store.state();
    for seq in 1..=2000u64 {
        let eid = format!("evt-{seq}");
        st.claim_event_id(
            1,
            &eid,
            &MessageRef {
                seq: 0,
                id: String::new(),
            },
            |_| false,
        )
        .unwrap();
        st.set_event_id(
            1,
            &eid,
            Some(&MessageRef {
                seq,
                id: format!("m{seq}"),
            }),
        )
        .unwrap();
    }
    // A deadline already past stops after the first slice.
    assert!(st.prune_below(1500, std::time::Instant::now()).unwrap());
    while st
        .prune_below(
            1500,
            std::time::Instant::now() + std::time::Duration::from_secs(5),
        )
        .unwrap()
    {}
    assert!(st.message_by_event_id(1, "evt-1499").unwrap().is_none());
    assert!(st.message_by_event_id(1, "evt-1").unwrap().is_none());
    assert_eq!(
        st.message_by_event_id(1, "evt-1500").unwrap().unwrap().seq,
        1500
    );
}

#[test]
fn audit_trail_is_newest_first_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1);
    {
        let store = common::open(dir.path(), &clock);
        for (i, action) in ["app.create", "endpoint.create", "endpoint.delete"]
            .iter()
            .enumerate()
        {
            store
                .state()
                .audit(&AuditRecord {
                    ts_ms: i as u64,
                    actor: "ops".into(),
                    action: (*action).into(),
                    target: "x".into(),
                })
                .unwrap();
        }
        let ticket = store.commit_index();
        store.index_durable().wait(ticket).blocking().unwrap();
    }
    let store = common::open(dir.path(), &clock);
    let p = store.state().list_audit(None, 2).unwrap();
    assert_eq!(
        p.items
            .iter()
            .map(|a| a.action.as_str())
            .collect::<Vec<_>>(),
        vec!["endpoint.delete", "endpoint.create"]
    );
    let p = store.state().list_audit(p.last_key.as_deref(), 2).unwrap();
    assert_eq!((p.items[0].action.as_str(), p.done), ("app.create", true));
}

#[test]
fn cursors_persist() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1);
    {
        let store = common::open(dir.path(), &clock);
        store.state().set_cursor("fanout", 42).unwrap();
    }
    let store = common::open(dir.path(), &clock);
    assert_eq!(store.state().cursor("fanout").unwrap(), Some(42));
    assert_eq!(store.state().cursor("other").unwrap(), None);
}

#[test]
fn a_first_attempt_that_settles_is_written_without_index_moves() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), &ManualClock::new(1));
    let st = store.state();
    let attempt = |key: u64, seq: u64| AttemptRecord {
        key,
        id: format!("atmpt_{key}"),
        msg_seq: seq,
        endpoint_key: 7,
        url: "https://x".into(),
        status_code: Some(200),
        response: "ok".into(),
        duration_ms: 1,
        trigger: Trigger::Scheduled,
        status: DeliveryStatus::Success,
        ts_ms: key,
    };
    // One settles at once; the other fails its first attempt and is due again later.
    st.record_outcomes(&[
        OutcomeRecord {
            attempt: attempt(1, 100),
            next: DeliveryState {
                status: DeliveryStatus::Success,
                ..pending(10)
            },
            first_write: true,
            fifo_lane: None,
        },
        OutcomeRecord {
            attempt: attempt(2, 101),
            next: pending(5_000),
            first_write: true,
            fifo_lane: None,
        },
    ])
    .unwrap();
    assert_eq!(
        st.delivery(7, 100).unwrap().unwrap().status,
        DeliveryStatus::Success
    );
    assert_eq!(
        st.message_deliveries(100, [7, 8]).unwrap().len(),
        1,
        "the message lists its endpoint"
    );
    assert_eq!(
        st.attempts_for_endpoint(7, None, 10).unwrap().items.len(),
        2
    );
    assert_eq!(
        st.due_before(u64::MAX, 10)
            .unwrap()
            .iter()
            .map(|d| d.seq)
            .collect::<Vec<_>>(),
        vec![101],
        "only the retry is due"
    );
    assert_eq!(st.pending_count(), 1);
    assert_eq!(st.min_pending_seq().unwrap(), Some(101));
}

#[test]
fn endpoint_attempts_page_through_batches_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), &ManualClock::new(1));
    let st = store.state();
    // Three batches; endpoint 7's attempts spread over them, endpoint 8's mixed in.
    st.record_outcomes(&[settled(1, 100, 7), settled(2, 101, 8), settled(3, 102, 7)])
        .unwrap();
    st.record_outcomes(&[settled(4, 103, 7)]).unwrap();
    st.record_outcomes(&[settled(5, 104, 7), settled(6, 105, 7), settled(7, 106, 8)])
        .unwrap();
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = st.attempts_for_endpoint(7, before, 2).unwrap();
        seen.extend(page.items.iter().map(|a| (a.key, a.msg_seq)));
        if page.done {
            break;
        }
        before = page.items.last().map(|a| a.key);
    }
    assert_eq!(
        seen,
        vec![(6, 105), (5, 104), (4, 103), (3, 102), (1, 100)],
        "every attempt once, newest first, across batch boundaries"
    );
    let eight = st.attempts_for_endpoint(8, Some(7), 10).unwrap();
    assert_eq!(
        eight.items.iter().map(|a| a.key).collect::<Vec<_>>(),
        vec![2],
        "`before` excludes attempt 7 inside its batch"
    );
}

#[test]
fn pruning_forgets_what_is_below_the_floor_and_keeps_what_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), &ManualClock::new(1));
    let st = store.state();
    for seq in 1..=10 {
        st.record_outcomes(&[settled(seq * 2, seq, 7), settled(seq * 2 + 1, seq, 8)])
            .unwrap();
    }
    st.set_delivery(9, 3, &pending(50)).unwrap();
    let later = std::time::Instant::now() + std::time::Duration::from_secs(60);
    assert!(!st.prune_below(6, later).unwrap(), "all done in one go");
    for seq in 1..=10 {
        assert_eq!(
            st.attempts_for_message(seq, None, 10).unwrap().items.len(),
            if seq < 6 { 0 } else { 2 },
            "seq {seq}"
        );
        assert_eq!(
            st.delivery(7, seq).unwrap().is_some(),
            seq >= 6,
            "seq {seq}"
        );
    }
    assert_eq!(
        st.attempts_for_endpoint(8, None, 100)
            .unwrap()
            .items
            .iter()
            .map(|a| a.msg_seq)
            .collect::<Vec<_>>(),
        vec![10, 9, 8, 7, 6]
    );
    assert_eq!(
        st.delivery(9, 3).unwrap(),
        Some(pending(50)),
        "an open delivery stays"
    );
    assert_eq!(st.pending_count(), 1);

    // Out of time: it stops and says there is more.
    for seq in 11..=400 {
        st.record_outcomes(&[settled(seq * 2, seq, 7)]).unwrap();
    }
    let past = std::time::Instant::now();
    assert!(st.prune_below(401, past).unwrap(), "more left");
    assert!(!st.prune_below(401, later).unwrap());
    assert!(st
        .attempts_for_endpoint(7, None, 10)
        .unwrap()
        .items
        .is_empty());
}

#[test]
fn first_attempts_that_succeed_are_kept_in_runs_and_read_back_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), &ManualClock::new(1));
    let st = store.state();
    // One batch: successes for seqs 100..=104 at endpoints 7 and 8, one far enough on to need
    // a run of its own, and a first attempt that failed for good (410), which gets state.
    let mut batch = Vec::new();
    let mut key = 0;
    for seq in 100..=104 {
        for ep in [7, 8] {
            key += 1;
            batch.push(settled(key, seq, ep));
        }
    }
    batch.push(settled(50, 100 + 5_000, 7));
    let mut gone = settled(51, 105, 7);
    gone.attempt.status_code = Some(410);
    gone.attempt.status = DeliveryStatus::Fail;
    gone.next.status = DeliveryStatus::Fail;
    batch.push(gone);
    batch.reverse(); // the order outcomes come in does not matter
    st.record_outcomes(&batch).unwrap();

    for (ep, seq) in [(7, 100), (8, 104), (7, 5_100)] {
        assert_eq!(
            st.delivery(ep, seq).unwrap().map(|d| d.status),
            Some(DeliveryStatus::Success),
            "({ep}, {seq})"
        );
    }
    assert_eq!(
        st.delivery(7, 105).unwrap().unwrap().status,
        DeliveryStatus::Fail
    );
    assert_eq!(st.delivery(8, 105).unwrap(), None, "never attempted");
    assert_eq!(st.delivery(7, 99).unwrap(), None);
    assert_eq!(
        st.message_deliveries(102, [7, 8, 9]).unwrap().len(),
        2,
        "both endpoints, from one run"
    );
    let a = st.attempt(102, 6).unwrap().unwrap();
    assert_eq!((a.msg_seq, a.endpoint_key), (102, 8));
    assert_eq!(
        st.attempt(103, 6).unwrap(),
        None,
        "under its own message only"
    );
    assert_eq!(st.attempt(5_100, 50).unwrap().unwrap().endpoint_key, 7);

    // A manual resend to (7, 102) later: its state and attempt go in the usual trees, and
    // they win over the run.
    st.record_outcomes(&[OutcomeRecord {
        attempt: AttemptRecord {
            key: 60,
            status_code: Some(500),
            status: DeliveryStatus::Fail,
            trigger: Trigger::Manual,
            ..settled(60, 102, 7).attempt
        },
        next: pending(9_000),
        first_write: false,
        fifo_lane: None,
    }])
    .unwrap();
    assert_eq!(
        st.delivery(7, 102).unwrap().unwrap().status,
        DeliveryStatus::Pending
    );
    let keys = |p: storage::Page<AttemptRecord>| p.items.iter().map(|a| a.key).collect::<Vec<_>>();
    assert_eq!(
        keys(st.attempts_for_message(102, None, 10).unwrap()),
        vec![60, 6, 5]
    );
    let first = st.attempts_for_message(102, None, 2).unwrap();
    assert!(!first.done);
    assert_eq!(keys(first), vec![60, 6]);
    assert_eq!(
        keys(st.attempts_for_message(102, Some(6), 2).unwrap()),
        vec![5]
    );
    assert_eq!(
        st.attempts_for_endpoint(7, None, 100)
            .unwrap()
            .items
            .iter()
            .map(|a| a.msg_seq)
            .collect::<Vec<_>>(),
        vec![102, 105, 5_100, 104, 103, 102, 101, 100],
        "newest first: the resend, then the batch by attempt key"
    );

    // Stats: endpoint 7 has 5 successes (100, 101, 103, 104, 5100), one pending, one failed.
    let counts = st.endpoint_status_counts(7, 0..u64::MAX, 1_000).unwrap();
    assert_eq!(counts[DeliveryStatus::Success as usize], 5);
    assert_eq!(counts[DeliveryStatus::Pending as usize], 1);
    assert_eq!(counts[DeliveryStatus::Fail as usize], 1);
    assert_eq!(
        st.endpoint_status_counts(8, 0..u64::MAX, 1_000).unwrap()[DeliveryStatus::Success as usize],
        5
    );
    // Expunging a response: in a run (attempt 6 of 102), and in the usual tree (the resend,
    // attempt 60); the neighbours keep theirs; an attempt that does not exist is reported.
    let before_neighbour = st.attempt(102, 5).unwrap().unwrap().response;
    for (seq, k) in [(102, 6), (102, 60)] {
        assert!(
            st.replace_attempt_response(seq, k, "EXPUNGED").unwrap(),
            "({seq}, {k})"
        );
        assert_eq!(st.attempt(seq, k).unwrap().unwrap().response, "EXPUNGED");
    }
    assert_eq!(
        st.attempt(102, 5).unwrap().unwrap().response,
        before_neighbour
    );
    assert!(!st.replace_attempt_response(103, 6, "EXPUNGED").unwrap());
    assert_eq!(
        st.delivery(8, 102).unwrap().map(|d| d.status),
        Some(DeliveryStatus::Success)
    );
    // A window of messages counts theirs alone, and windows that split the log add up.
    let window = st.endpoint_status_counts(7, 103..5_000, 1_000).unwrap();
    assert_eq!(window[DeliveryStatus::Success as usize], 2, "103 and 104");
    let before = st.endpoint_status_counts(7, 0..103, 1_000).unwrap();
    let after = st.endpoint_status_counts(7, 103..u64::MAX, 1_000).unwrap();
    for status in 0..4 {
        assert_eq!(
            before[status] + after[status],
            counts[status],
            "status {status}"
        );
    }
    assert_eq!(
        st.endpoint_status_counts(7, 5_101..u64::MAX, 1_000)
            .unwrap(),
        [0; 4]
    );

    // Retention forgets the runs wholly below the floor.
    let later = std::time::Instant::now() + std::time::Duration::from_secs(60);
    st.set_delivery(
        7,
        102,
        &DeliveryState {
            status: DeliveryStatus::Success,
            ..pending(1)
        },
    )
    .unwrap();
    assert!(!st.prune_below(1_000, later).unwrap());
    assert_eq!(st.delivery(8, 104).unwrap(), None);
    assert!(st
        .attempts_for_message(100, None, 10)
        .unwrap()
        .items
        .is_empty());
    assert!(st.delivery(7, 5_100).unwrap().is_some(), "above the floor");
}

/// An ordered lane in the index: parked deliveries are blocked (never due), the head's
/// settling makes the next one due and only it, a crash between the two is repaired at
/// start, the heads are listed, and a release or a failed endpoint empties the lanes.
#[test]
fn ordered_lanes_wait_in_the_index_one_head_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), &ManualClock::new(1));
    let st = store.state();
    let (ep, lane) = (5, 77);
    // The head (seq 10) failed once and waits for a retry at 100; three wait behind it.
    st.set_delivery(ep, 10, &pending(100)).unwrap();
    st.fifo_hold(ep, lane, 10).unwrap();
    st.fifo_park(
        ep,
        lane,
        &[(11, 0, Trigger::Scheduled), (12, 0, Trigger::Scheduled)],
        3,
    )
    .unwrap();
    st.fifo_park(ep, lane, &[(13, 0, Trigger::Manual)], 3)
        .unwrap();
    assert!(st.fifo_any(ep).unwrap());
    assert!(!st.fifo_any(ep + 1).unwrap());
    assert_eq!(st.fifo_first(ep, lane).unwrap(), Some((10, false)));
    let due: Vec<u64> = st
        .due_before(u64::MAX - 1, 10)
        .unwrap()
        .iter()
        .map(|d| d.seq)
        .collect();
    assert_eq!(due, vec![10], "blocked deliveries are never due");
    assert_eq!(st.pending_count(), 4, "but they are open");
    assert!(st.delivery(ep, 12).unwrap().unwrap().is_blocked());
    let (heads, more) = st.fifo_heads(ep, 10).unwrap();
    assert!(!more);
    assert_eq!(heads.len(), 1);
    assert_eq!(
        (heads[0].lane, heads[0].seq, heads[0].behind),
        (lane, 10, 3)
    );

    // The head succeeds: its entry goes and the next (only) is due at once.
    let mut done = settled(1, 10, ep);
    done.first_write = false;
    done.fifo_lane = Some(lane);
    done.next.updated_ms = 50;
    st.record_outcomes(&[done]).unwrap();
    assert_eq!(st.fifo_first(ep, lane).unwrap(), Some((11, false)));
    let due: Vec<(u64, u64)> = st
        .due_before(u64::MAX - 1, 10)
        .unwrap()
        .iter()
        .map(|d| (d.seq, d.at_ms))
        .collect();
    assert_eq!(due, vec![(11, 50)]);
    assert!(st.delivery(ep, 12).unwrap().unwrap().is_blocked());

    // A crash after 11 settled but before 12 was made due: the start repairs the lane.
    st.set_delivery(
        ep,
        11,
        &DeliveryState {
            status: DeliveryStatus::Success,
            ..pending(0)
        },
    )
    .unwrap();
    assert_eq!(st.fifo_first(ep, lane).unwrap(), Some((11, false)));
    assert_eq!(st.fifo_repair(60).unwrap(), 1);
    assert_eq!(st.fifo_first(ep, lane).unwrap(), Some((12, false)));
    assert_eq!(st.delivery(ep, 12).unwrap().unwrap().next_at_ms, 60);
    assert_eq!(st.fifo_repair(61).unwrap(), 0, "nothing left to repair");

    // An older delivery goes first: the due head is blocked again.
    st.fifo_demote(ep, 12).unwrap();
    assert!(st.delivery(ep, 12).unwrap().unwrap().is_blocked());
    st.set_delivery(ep, 12, &pending(70)).unwrap();

    // The endpoint is no longer ordered: what is blocked comes due, the lane goes.
    assert_eq!(
        st.fifo_release(ep, 80).unwrap(),
        1,
        "13 was blocked, 12 was not"
    );
    assert_eq!(st.fifo_first(ep, lane).unwrap(), None);
    assert_eq!(st.delivery(ep, 13).unwrap().unwrap().next_at_ms, 80);

    // Parked again, then the endpoint is disabled: everything open fails, the lanes go.
    st.fifo_park(ep, lane + 1, &[(14, 2, Trigger::Scheduled)], 90)
        .unwrap();
    assert_eq!(st.fail_open_deliveries(ep, 95).unwrap(), 3);
    assert!(!st.fifo_any(ep).unwrap());
    assert_eq!(st.pending_count(), 0);
}
