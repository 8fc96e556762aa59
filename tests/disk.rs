//! The disk-full path against the real binary: at the log's ceiling (`storage.max_bytes`)
//! and on a real, small filesystem that fills up (ENOSPC), ingest answers 507 with a clear
//! error, delivery and retention keep running, nothing acknowledged is lost, and hookd takes
//! messages again by itself once space is freed.
//!
//! The ENOSPC tests mount a tmpfs of their own, so they need root; without it (or when the
//! mount is refused) they say why, and fail under CI (`CI=true`, which runs as root) or are
//! skipped elsewhere.

#[path = "support/hookd.rs"]
mod hookd;
#[path = "support/receiver.rs"]
mod receiver;

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use hookd::{Hookd, Reply};

/// What one ingest attempt got.
#[derive(Debug)]
enum Ingest {
    Accepted(String),
    Full(Reply),
}

/// POSTs message `i` with `pad` bytes of padding to app `app`; anything but 202 or 507 fails
/// the test.
fn ingest(h: &Hookd, app: &str, i: usize, pad: usize) -> Ingest {
    let body = format!(
        r#"{{"eventType":"disk.test","payload":{{"i":{i},"pad":"{}"}}}}"#,
        "x".repeat(pad)
    );
    let r = h.admin("POST", &format!("/api/v1/app/{app}/msg"), Some(&body));
    match r.status {
        202 => Ingest::Accepted(r.json()["id"].as_str().expect("an id").to_owned()),
        507 => Ingest::Full(r),
        s => panic!(
            "ingest of message {i} answered {s}, not 202 or 507: {}",
            r.body
        ),
    }
}

/// Ingests until the first 507 (at most `max` tries); returns the ids accepted and the 507.
fn fill(h: &Hookd, app: &str, pad: usize, max: usize) -> (Vec<String>, Reply) {
    let mut accepted = Vec::new();
    for i in 0..max {
        match ingest(h, app, i, pad) {
            Ingest::Accepted(id) => accepted.push(id),
            Ingest::Full(r) => return (accepted, r),
        }
    }
    panic!("no 507 after {max} messages ({} accepted)", accepted.len());
}

/// Asserts `r` is a clear 507: JSON `{"code": "insufficient_storage", "detail": ...}` whose
/// detail contains `says` and tells the client to retry.
#[track_caller]
fn assert_clear_507(r: &Reply, says: &str) {
    assert_eq!(r.status, 507, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let json = r.json();
    assert_eq!(json["code"], "insufficient_storage", "{json}");
    let detail = json["detail"].as_str().expect("a detail");
    assert!(detail.contains(says), "{detail:?} does not say {says:?}");
    assert!(detail.contains("retry"), "{detail:?} does not say to retry");
}

/// Ingests messages of `pad` bytes until one is accepted, failing after `within`; each
/// refusal must be a 507. Returns the accepted id.
fn ingest_until_accepted(h: &Hookd, app: &str, pad: usize, within: Duration) -> String {
    let deadline = Instant::now() + within;
    for i in 0.. {
        match ingest(h, app, 1_000_000 + i, pad) {
            Ingest::Accepted(id) => return id,
            Ingest::Full(r) => assert!(
                Instant::now() < deadline,
                "still 507 after {within:?}: {}",
                r.body
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    unreachable!()
}

/// The `webhook-id`s the receiver has seen, once it has seen at least `n` requests.
fn delivered_ids(rx: &receiver::Receiver, n: usize) -> BTreeSet<String> {
    rx.wait_for_requests(n, Duration::from_secs(60))
        .iter()
        .map(|r| r.header("webhook-id").expect("webhook-id").to_owned())
        .collect()
}

fn app_with_endpoint(h: &Hookd, app: &str, url: &str) {
    let body = format!(r#"{{"name":"{app}","uid":"{app}"}}"#);
    assert_eq!(h.admin("POST", "/api/v1/app", Some(&body)).status, 201);
    let ep = format!(r#"{{"url":"{url}"}}"#);
    let path = format!("/api/v1/app/{app}/endpoint");
    assert_eq!(h.admin("POST", &path, Some(&ep)).status, 201);
}

/// At `storage.max_bytes` ingest gets a clear 507, refused messages are not stored or
/// delivered, the accepted ones are all delivered, and once retention has dropped the
/// delivered segments, ingest works again without a restart.
#[test]
fn at_the_log_ceiling_ingest_gets_507_and_recovers_after_retention() {
    let rx = receiver::Receiver::start();
    let h = Hookd::start(
        "[storage]\nsegment_bytes_max = \"16KiB\"\nmax_bytes = \"64KiB\"\nretention = \"2s\"\n\
         [delivery]\nallow_private_networks = true\n",
    );
    app_with_endpoint(&h, "full", &rx.url("/full"));
    let (accepted, refused) = fill(&h, "full", 1000, 1000);
    assert!(
        accepted.len() >= 40,
        "only {} messages of 1 KiB fit in 64 KiB",
        accepted.len()
    );
    assert_clear_507(&refused, "storage.max_bytes");
    // Still full: every further attempt is refused the same way.
    for i in 0..5 {
        match ingest(&h, "full", 10_000 + i, 1000) {
            Ingest::Full(r) => assert_clear_507(&r, "storage.max_bytes"),
            Ingest::Accepted(id) => panic!("accepted {id} at the ceiling"),
        }
    }
    // Delivery keeps running at the ceiling: exactly the accepted messages go out.
    let want: BTreeSet<String> = accepted.iter().cloned().collect();
    assert_eq!(delivered_ids(&rx, accepted.len()), want);
    // Retention (every second here) drops the delivered segments; ingest works again.
    let id = ingest_until_accepted(&h, "full", 1000, Duration::from_secs(30));
    let ids = delivered_ids(&rx, accepted.len() + 1);
    assert!(
        ids.contains(&id),
        "the message after recovery was not delivered"
    );
    let r = h.admin("GET", &format!("/api/v1/app/full/msg/{id}"), None);
    assert_eq!(r.status, 200, "{}", r.body);
}

/// The same when the ceiling is one segment (`max_bytes = segment_bytes_max`): the open
/// segment fills it, can never roll (it takes no appends), and retention seals it itself.
#[test]
fn a_log_of_one_full_segment_recovers_too() {
    let rx = receiver::Receiver::start();
    let h = Hookd::start(
        "[storage]\nsegment_bytes_max = \"32KiB\"\nmax_bytes = \"32KiB\"\nretention = \"2s\"\n\
         [delivery]\nallow_private_networks = true\n",
    );
    app_with_endpoint(&h, "one", &rx.url("/one"));
    let (accepted, refused) = fill(&h, "one", 1000, 1000);
    assert!(accepted.len() >= 20, "{} accepted", accepted.len());
    assert_clear_507(&refused, "storage.max_bytes");
    delivered_ids(&rx, accepted.len());
    let id = ingest_until_accepted(&h, "one", 1000, Duration::from_secs(30));
    assert!(delivered_ids(&rx, accepted.len() + 1).contains(&id));
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Mount {
    path: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Mount {
    /// Mounts a tmpfs of `mib` MiB, or says why not (then the test is skipped).
    fn tmpfs(mib: u32) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("fs");
        std::fs::create_dir(&path).map_err(|e| e.to_string())?;
        let mut m = Self::tmpfs_at(&path, mib)?;
        m._dir = Some(dir);
        Ok(m)
    }

    /// Mounts a tmpfs of `mib` MiB on the existing directory `path` (hiding what it holds).
    fn tmpfs_at(path: &Path, mib: u32) -> Result<Self, String> {
        if !nix::unistd::geteuid().is_root() {
            return Err("not running as root, so no filesystem can be mounted".into());
        }
        let path = path.to_path_buf();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(&path)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs refused: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Self { path, _dir: None })
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let umount = |lazy: bool| {
            let mut cmd = Command::new("umount");
            if lazy {
                cmd.arg("-l");
            }
            cmd.arg(&self.path).status().is_ok_and(|s| s.success())
        };
        // Busy only if a hookd still runs there; detach it then, so the mount never leaks.
        if !umount(false) {
            umount(true);
        }
    }
}

/// Mounts a tmpfs, or says why the test cannot run: under CI (`CI=true`, where it runs as
/// root and must run) that fails the test; elsewhere it is skipped with the reason printed.
macro_rules! tmpfs_or_skip {
    ($mount:expr) => {
        match $mount {
            Ok(m) => m,
            Err(why) if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("this test must run under CI and cannot: {why}")
            }
            Err(why) => {
                eprintln!("skipped (not under CI): {why}");
                return;
            }
        }
    };
}

/// Writes a file of `bytes` zero bytes.
fn filler(path: &Path, bytes: usize) {
    std::fs::write(path, vec![0u8; bytes]).expect("write the filler file");
}

/// Every accepted message reads back after a restart, and `hookd inspect` finds the store
/// sound.
fn assert_all_present(h: &mut Hookd, data: &Path, app: &str, accepted: &[String]) {
    assert_eq!(h.terminate().code(), Some(0), "hookd did not stop cleanly");
    let out = Command::new(env!("CARGO_BIN_EXE_hookd"))
        .args(["inspect", "--data"])
        .arg(data)
        .output()
        .expect("run hookd inspect");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("result: ok"), "{text}");
    h.crash_and_restart();
    for id in accepted {
        let r = h.admin("GET", &format!("/api/v1/app/{app}/msg/{id}"), None);
        assert_eq!(r.status, 200, "{id} lost after the restart: {}", r.body);
    }
}

/// A real ENOSPC in the log (no reserve kept): 507, never a 500 or a crash; the failed writes
/// leave nothing half-written; freeing space (the test's filler file) lets ingest in again at
/// once; after a restart every accepted message is there and the store checks clean.
#[test]
fn a_real_enospc_in_the_log_is_507_and_loses_nothing() {
    let fs = tmpfs_or_skip!(Mount::tmpfs(16));
    let fill_path = fs.path.join("filler");
    filler(&fill_path, 6 << 20);
    let data = fs.path.join("data");
    let mut h = Hookd::start_with_data(
        &data,
        "[storage]\nsegment_bytes_max = \"1MiB\"\nreserve_bytes = 0\n",
    );
    assert_eq!(
        h.admin("POST", "/api/v1/app", Some(r#"{"name":"e","uid":"e"}"#))
            .status,
        201
    );
    let (mut accepted, refused) = fill(&h, "e", 4000, 5000);
    assert!(accepted.len() > 500, "{} accepted", accepted.len());
    assert_clear_507(&refused, "disk holding the event log is full");
    for i in 0..5 {
        if let Ingest::Accepted(id) = ingest(&h, "e", 20_000 + i, 4000) {
            accepted.push(id); // a smaller gap left by a failed write may still take one
        }
    }
    std::fs::remove_file(&fill_path).expect("remove the filler");
    accepted.push(ingest_until_accepted(
        &h,
        "e",
        4000,
        Duration::from_secs(10),
    ));
    for i in 0..20 {
        match ingest(&h, "e", 30_000 + i, 4000) {
            Ingest::Accepted(id) => accepted.push(id),
            Ingest::Full(r) => panic!("507 with space free again: {}", r.body),
        }
    }
    assert_all_present(&mut h, &data, "e", &accepted);
}

/// With the reserve kept for the index (`storage.reserve_bytes`), a filling disk stops ingest
/// with 507 before the filesystem is full, while delivery and management writes carry on;
/// freeing space lets ingest in again, and nothing is lost.
#[test]
fn the_space_reserve_keeps_delivery_and_management_running() {
    let fs = tmpfs_or_skip!(Mount::tmpfs(16));
    let fill_path = fs.path.join("filler");
    filler(&fill_path, 6 << 20);
    let data = fs.path.join("data");
    let rx = receiver::Receiver::start();
    let mut h = Hookd::start_with_data(
        &data,
        "[storage]\nsegment_bytes_max = \"1MiB\"\nreserve_bytes = \"3MiB\"\n\
         [delivery]\nallow_private_networks = true\n",
    );
    app_with_endpoint(&h, "r", &rx.url("/r"));
    let (mut accepted, refused) = fill(&h, "r", 4000, 5000);
    assert!(accepted.len() > 200, "{} accepted", accepted.len());
    assert_clear_507(&refused, "storage.reserve_bytes");
    // The index still takes writes: a management write, and every delivery's attempt.
    assert_eq!(
        h.admin("POST", "/api/v1/app", Some(r#"{"name":"m","uid":"m"}"#))
            .status,
        201
    );
    let want: BTreeSet<String> = accepted.iter().cloned().collect();
    assert_eq!(delivered_ids(&rx, accepted.len()), want);
    let id = accepted.last().expect("one accepted");
    let attempts = h.admin("GET", &format!("/api/v1/app/r/attempt/msg/{id}"), None);
    assert_eq!(attempts.status, 200, "{}", attempts.body);
    assert_eq!(attempts.json()["data"][0]["responseStatusCode"], 200);
    std::fs::remove_file(&fill_path).expect("remove the filler");
    let id = ingest_until_accepted(&h, "r", 4000, Duration::from_secs(10));
    assert!(delivered_ids(&rx, accepted.len() + 1).contains(&id));
    accepted.push(id);
    assert_all_present(&mut h, &data, "r", &accepted);
}

/// A message whose write fails on a full disk is not stored, and neither is its `eventId`:
/// the producer's retry with the same `eventId` is stored once there is room (it was answered
/// 409 for good while the failed claim pointed at a record that never reached the disk). Only
/// the log's directory is on the small filesystem, so the write that fails is the log's
/// (the index, on the test's disk, keeps working).
#[test]
fn a_message_refused_by_a_full_disk_frees_its_event_id() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = "[storage]\nsegment_bytes_max = \"1MiB\"\nreserve_bytes = 0\n";
    // A first start makes the store; its log directory then moves onto a small tmpfs.
    let mut h = Hookd::start_with_data(&data, config);
    assert_eq!(
        h.admin("POST", "/api/v1/app", Some(r#"{"name":"e","uid":"e"}"#))
            .status,
        201
    );
    assert_eq!(h.terminate().code(), Some(0));
    let log = data.join("log");
    let saved = dir.path().join("log-saved");
    std::fs::rename(&log, &saved).unwrap();
    std::fs::create_dir(&log).unwrap();
    let fs = tmpfs_or_skip!(Mount::tmpfs_at(&log, 8));
    copy_dir(&saved, &log);
    let fill_path = fs.path.join("filler");
    filler(&fill_path, 5 << 20);
    let h = Hookd::start_with_data(&data, config);
    let post = |eid: &str| {
        let body = format!(
            r#"{{"eventType":"disk.test","eventId":"{eid}","payload":{{"pad":"{}"}}}}"#,
            "x".repeat(4000)
        );
        h.admin("POST", "/api/v1/app/e/msg", Some(&body))
    };
    let refused = (0..5000)
        .map(|i| format!("evt-{i}"))
        .find(|eid| {
            let r = post(eid);
            assert!(matches!(r.status, 202 | 507), "{}: {}", r.status, r.body);
            r.status == 507
        })
        .expect("the disk never filled");
    // Still refused while full, and not a 409: nothing holds the eventId.
    assert_eq!(post(&refused).status, 507);
    std::fs::remove_file(&fill_path).expect("remove the filler");
    let r = post(&refused);
    assert_eq!(r.status, 202, "the retry with the same eventId: {}", r.body);
    assert_eq!(post(&refused).status, 409);
    drop(h);
}

/// Copies the files of `from` (one level, and its subdirectories) into `to`.
fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
