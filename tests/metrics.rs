//! `GET /metrics` against the real binary, parsed by the reference Prometheus text parser
//! (`prometheus_client`, PyPI): the key series are there and they move.

#[path = "support/hookd.rs"]
mod hookd;
#[path = "support/receiver.rs"]
mod receiver;

use std::{
    collections::HashMap,
    io::Write,
    process::{Command, Stdio},
    time::Duration,
};

use hookd::{Hookd, READER};

fn scrape(h: &Hookd, token: Option<&str>) -> HashMap<String, f64> {
    let r = h.call("GET", "/metrics", token, None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let mut py = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/compat/prom_parse.py"
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    py.stdin
        .take()
        .unwrap()
        .write_all(r.body.as_bytes())
        .unwrap();
    let out = py.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser refused the page:\n{}",
        r.body
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The histograms of `/metrics`, each with only the `le` label.
const HISTOGRAMS: [&str; 4] = [
    "hookd_log_append_seconds",
    "hookd_log_flush_seconds",
    "hookd_log_flush_batch_records",
    "hookd_delivery_seconds",
];

/// Histogram `name` as parsed: its buckets `(le, cumulative count)` in bound order, ending with
/// `+Inf`, then its sum and count. Fails unless the buckets never decrease and the `+Inf`
/// bucket equals the count.
fn histogram(m: &HashMap<String, f64>, name: &str) -> (Vec<(f64, f64)>, f64, f64) {
    let prefix = format!("{name}_bucket{{le=");
    let mut buckets: Vec<(f64, f64)> = m
        .iter()
        .filter_map(|(k, &v)| {
            let le = k.strip_prefix(&prefix)?.strip_suffix('}')?;
            let le = match le {
                "+Inf" => f64::INFINITY,
                b => b.parse().unwrap_or_else(|_| panic!("{k}: bad le")),
            };
            Some((le, v))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(
        buckets.len() >= 10,
        "{name}: only {} buckets",
        buckets.len()
    );
    assert!(
        buckets.windows(2).all(|w| w[0].1 <= w[1].1),
        "{name}: {buckets:?}"
    );
    let sum = m[&format!("{name}_sum{{}}")];
    let count = m[&format!("{name}_count{{}}")];
    assert_eq!(buckets.last(), Some(&(f64::INFINITY, count)), "{name}");
    // Bounded label sets: the buckets are all there is, no other label on any series.
    let series = m.keys().filter(|k| k.starts_with(name)).count();
    assert_eq!(series, buckets.len() + 2, "{name}: unexpected series");
    (buckets, sum, count)
}

#[test]
fn metrics_parse_and_move() {
    let probe = Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .output();
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "the prometheus-client Python package is missing: pip install prometheus-client"
    );
    let h = Hookd::start("[delivery]\nallow_private_networks = true\n");
    assert_eq!(
        h.call("GET", "/metrics", None, None).status,
        401,
        "a read token is needed"
    );
    let rx = receiver::Receiver::start();
    assert_eq!(
        h.admin("POST", "/api/v1/app", Some(r#"{"name":"m","uid":"m"}"#))
            .status,
        201
    );
    let ep = format!(r#"{{"url":"{}"}}"#, rx.url("/m"));
    assert_eq!(
        h.admin("POST", "/api/v1/app/m/endpoint", Some(&ep)).status,
        201
    );
    let before = scrape(&h, Some(READER));
    for key in [
        "hookd_build_info{version=0.1.0}",
        "hookd_pending_deliveries{}",
        "hookd_disk_bytes{}",
        "hookd_shard_queue_depth{shard=0}",
        "hookd_oldest_pending_age_seconds{}",
    ] {
        assert!(before.contains_key(key), "{key} missing: {before:?}");
    }
    assert!(before
        .keys()
        .any(|k| k.starts_with("hookd_io_driver{driver=")));
    for i in 0..3 {
        let body = format!(r#"{{"eventType":"m.x","payload":{{"i":{i}}}}}"#);
        assert_eq!(
            h.admin("POST", "/api/v1/app/m/msg", Some(&body)).status,
            202
        );
    }
    rx.wait_for_requests(3, Duration::from_secs(20));
    // Delivery counters are bumped right after the response; give the shard a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let after = loop {
        let m = scrape(&h, Some(READER));
        // The latency is observed just after the outcome is counted.
        let timed = m["hookd_delivery_seconds_count{}"] - before["hookd_delivery_seconds_count{}"];
        if (m["hookd_deliveries_total{outcome=2xx}"] >= 3.0 && timed >= 3.0)
            || std::time::Instant::now() > deadline
        {
            break m;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let grew = |k: &str, by: f64| {
        let a = before.get(k).copied().unwrap_or(0.0);
        let b = *after
            .get(k)
            .unwrap_or_else(|| panic!("{k} missing: {after:?}"));
        assert!(b - a >= by, "{k}: {a} -> {b}, expected +{by}");
    };
    grew("hookd_events_appended_total{}", 3.0);
    grew("hookd_event_bytes_total{}", 3.0 * 7.0);
    grew("hookd_deliveries_total{outcome=2xx}", 3.0);
    grew("hookd_http_requests_total{route=message,status=2xx}", 3.0);
    grew("hookd_http_requests_total{route=metrics,status=2xx}", 1.0);
    grew("hookd_log_flushes_total{}", 1.0);
    // The histograms move: three appends made durable, at least one group commit of them,
    // three deliveries timed.
    for name in HISTOGRAMS {
        histogram(&before, name);
    }
    let moved = |name: &str| {
        let (_, sum_a, count_a) = histogram(&before, name);
        let (buckets, sum_b, count_b) = histogram(&after, name);
        (count_b - count_a, sum_b - sum_a, buckets)
    };
    let (appends, append_secs, buckets) = moved("hookd_log_append_seconds");
    assert_eq!(appends, 3.0);
    assert!(append_secs > 0.0, "three appends took no time at all");
    assert!(buckets[0].0 > 0.0 && buckets[0].0 < 0.001, "{buckets:?}");
    let (flushes, _, _) = moved("hookd_log_flush_seconds");
    assert!(flushes >= 1.0);
    let (batches, records, _) = moved("hookd_log_flush_batch_records");
    assert_eq!(batches, flushes, "one batch size per flush");
    assert!(records >= 3.0, "{records} records flushed for 3 appends");
    let (deliveries, _, _) = moved("hookd_delivery_seconds");
    assert!(deliveries >= 3.0);
    // Public metrics need no token.
    let open = Hookd::start("[metrics]\npublic = true\n");
    assert_eq!(open.call("GET", "/metrics", None, None).status, 200);
}
