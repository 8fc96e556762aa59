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
        if m["hookd_deliveries_total{outcome=2xx}"] >= 3.0 || std::time::Instant::now() > deadline {
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
    // Public metrics need no token.
    let open = Hookd::start("[metrics]\npublic = true\n");
    assert_eq!(open.call("GET", "/metrics", None, None).status, 200);
}
