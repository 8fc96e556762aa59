//! `config`: `hookd::config::from_toml_str`, both stages (TOML shape, then validation), over
//! any text (bytes that are not UTF-8 are replaced, as `load` would refuse them before).
//!
//! Checked, beyond "no panic":
//! - the answer is deterministic (the same text gives the same config or the same errors);
//! - a refusal lists at least one problem, each with a message;
//! - an accepted config keeps every range and relationship that validation promises, so that
//!   nothing downstream (HTTP limits, storage, delivery) meets a value it cannot take.

use std::collections::HashSet;
use std::sync::OnceLock;
use std::time::Duration;

use hookd::config::{
    from_toml_str, Config, Scope, BODY_BYTES_MAX, PAYLOAD_BYTES_MAX, RETRY_SCHEDULE_LEN_MAX,
    SHARDS_MAX, TOKEN_NAME_BYTES_MAX,
};
use hookd::http::limits::HEADERS_COUNT_LIMIT;
use hookd::http::Limits;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let first = from_toml_str(&text);
    let again = from_toml_str(&text);
    assert_eq!(first, again, "the same text gave two answers");
    match first {
        Ok(config) => check_config(&config),
        Err(errors) => {
            assert!(!errors.errors.is_empty(), "refused without a reason");
            for e in &errors.errors {
                assert!(!e.message.is_empty(), "a problem without a message: {e:?}");
                if !e.path.is_empty() {
                    assert!(errors.has_path(&e.path));
                }
            }
            assert!(!errors.to_string().is_empty());
        }
    }
}

fn check_config(c: &Config) {
    let s = &c.server;
    assert!(s.shards <= SHARDS_MAX);
    assert!((1..=1_000_000).contains(&s.connections_per_shard_max));
    assert!((1..=MIB).contains(&s.header_bytes_max));
    assert!((1..=HEADERS_COUNT_LIMIT as u32).contains(&s.headers_count_max));
    assert!((1..=MIB).contains(&s.uri_bytes_max));
    assert!((1..=BODY_BYTES_MAX).contains(&s.body_bytes_max));
    for d in [s.header_read_timeout, s.idle_timeout, s.request_timeout] {
        assert!(!d.is_zero());
    }
    if let Some(tls) = &s.tls {
        assert!(!tls.cert.as_os_str().is_empty() && !tls.key.as_os_str().is_empty());
    }
    let limits = Limits::from(s);
    assert!(limits.header_bytes_max >= 1 && limits.uri_bytes_max >= 1);
    assert!(limits.body_bytes_max >= 1 && limits.connections_per_shard_max >= 1);
    assert!((1..=HEADERS_COUNT_LIMIT).contains(&limits.headers_count_max));
    // With `server.shards = 0` the answer depends on the machine alone: the available
    // parallelism, which the standard library reads from cgroup files (a dozen system calls,
    // most of an accepted input's time): the same for every such config, so it is asked once
    // per process. Other values are asked every time.
    static AUTO_SHARDS: OnceLock<usize> = OnceLock::new();
    let shards = match s.shards {
        0 => *AUTO_SHARDS.get_or_init(|| c.effective_shards()),
        _ => c.effective_shards(),
    };
    assert!((1..=SHARDS_MAX as usize).contains(&shards));

    let st = &c.storage;
    assert!(!st.path.as_os_str().is_empty());
    assert!(!st.flush_interval.is_zero());
    assert!((KIB..=4 * GIB).contains(&st.segment_bytes_max));
    assert!(st.max_bytes >= st.segment_bytes_max);
    assert!((1..=u64::from(u32::MAX)).contains(&st.segment_events_max));
    for d in [st.segment_age_max, st.retention, st.idempotency_ttl] {
        assert!(!d.is_zero());
    }
    assert!(st.cache_bytes >= 1);

    let payload = c.ingest.payload_bytes_max;
    assert!((1..=PAYLOAD_BYTES_MAX).contains(&payload) && payload <= s.body_bytes_max);

    let d = &c.delivery;
    assert!((1..=RETRY_SCHEDULE_LEN_MAX).contains(&d.retry_schedule.len()));
    assert!(d.retry_schedule.iter().all(|w| *w > Duration::ZERO));
    assert!(!d.timeout.is_zero() && !d.connect_timeout.is_zero());
    assert!(d.connect_timeout <= d.timeout);
    assert!(!d.disable_after.is_zero());
    assert!((1..=1_000_000).contains(&d.in_flight_per_shard_max));
    assert!((1..=d.in_flight_per_shard_max).contains(&d.in_flight_per_endpoint_max));
    assert!((1..=65_536).contains(&d.in_flight_per_host_max));
    assert!((1..=1 << 24).contains(&d.queue_capacity));
    assert!((1..=MIB).contains(&d.response_bytes_max));
    if let Some(ca) = &d.ca_file {
        assert!(!ca.as_os_str().is_empty());
    }

    let mut names = HashSet::new();
    let mut hashes = HashSet::new();
    for t in &c.auth.tokens {
        assert!(!t.name.is_empty() && t.name.len() <= TOKEN_NAME_BYTES_MAX);
        assert!(t
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')));
        assert!(names.insert(t.name.clone()), "duplicate token name");
        assert!(hashes.insert(t.sha256), "duplicate token hash");
        assert!(!t.scopes.is_empty());
        let distinct: HashSet<Scope> = t.scopes.iter().copied().collect();
        assert_eq!(distinct.len(), t.scopes.len(), "duplicate scope");
        if t.apps.is_some() || t.rate_limit.is_some() {
            assert!(
                t.has_scope(Scope::Ingest),
                "ingest settings on a non-ingest token"
            );
        }
        if let Some(apps) = &t.apps {
            assert!(!apps.is_empty() && apps.iter().all(|a| !a.is_empty()));
        }
        if let Some(rate) = t.rate_limit {
            assert!((1..=1_000_000).contains(&rate.per_second));
            assert!((1..=10_000_000).contains(&rate.burst));
        }
    }
}
