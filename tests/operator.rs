//! Issue 19: what an operator meets when following the README literally, against the real
//! binary: the files a config names, bad-start exit codes, the first-start admin token, one
//! hookd per listen address.

#[path = "support/hookd.rs"]
mod harness;
#[path = "support/receiver.rs"]
mod receiver;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a hookd may take to listen or to give up.
const START_WITHIN: Duration = Duration::from_secs(60);

fn hookd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hookd"))
        .args(args)
        .output()
        .expect("run hookd")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A `hookd serve --config` started by a test, its standard error in a file.
struct Served {
    child: Child,
    addr: SocketAddr,
    stderr: PathBuf,
}

impl Served {
    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Polls standard error until it holds a line for which `pick` gives a value.
    fn wait_stderr<T>(&self, pick: impl Fn(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + START_WITHIN;
        loop {
            let err = self.stderr();
            if let Some(v) = err.lines().find_map(&pick) {
                return v;
            }
            assert!(Instant::now() < deadline, "not found in stderr:\n{err}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn terminate(mut self) -> Option<i32> {
        harness::signal(self.child.id(), nix::sys::signal::Signal::SIGTERM);
        self.child.wait().expect("wait").code()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `hookd serve --config config`: the running hookd once it prints `listening on`, or
/// its exit code and standard error if it ends first.
fn serve(config: &Path) -> Result<Served, (Option<i32>, String)> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookd"));
    cmd.args(["serve", "--config"]).arg(config);
    serve_with(cmd)
}

/// [`serve`] with the command line of `cmd`; standard error goes to a temporary file.
fn serve_with(mut cmd: Command) -> Result<Served, (Option<i32>, String)> {
    let stderr = tempfile::NamedTempFile::new()
        .expect("stderr file")
        .into_temp_path()
        .keep()
        .expect("keep");
    let mut child = cmd
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(
            std::fs::File::create(&stderr).expect("stderr file"),
        ))
        .spawn()
        .expect("spawn hookd");
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + START_WITHIN;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(rest) = line.strip_prefix("listening on ") {
                    let addr = rest.split_whitespace().next().expect("address");
                    let addr = addr.parse().expect("an address");
                    return Ok(Served {
                        child,
                        addr,
                        stderr,
                    });
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let code = child.wait().expect("wait").code();
                let err = std::fs::read_to_string(&stderr).unwrap_or_default();
                return Err((code, err));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!("hookd neither listened nor exited within {START_WITHIN:?}");
            }
        }
    }
}

/// A config without tokens: `listen`, a data directory and `extra`.
fn bare_config(dir: &Path, listen: &str, extra: &str) -> PathBuf {
    let path = dir.join("hookd.toml");
    let data = dir.join("data");
    let text = format!(
        "{extra}\n[server]\nlisten = \"{listen}\"\nshards = 1\n[storage]\npath = \"{}\"\n",
        data.display()
    );
    std::fs::write(&path, text).expect("write config");
    path
}

fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("rcgen");
    let cert = dir.join(format!("{name}-cert.pem"));
    let key = dir.join(format!("{name}-key.pem"));
    std::fs::write(&cert, pair.cert.pem()).expect("cert");
    std::fs::write(&key, pair.key_pair.serialize_pem()).expect("key");
    (cert, key)
}

/// Item 3 and 4: `check-config` loads every file the config names, as `serve` does; both
/// refuse the same files with exit 2, each problem said once, naming its key and file.
#[test]
fn check_config_and_serve_refuse_the_same_unusable_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (cert, key) = self_signed(d, "a");
    let (other_cert, _) = self_signed(d, "b");
    let garbage = d.join("garbage.pem");
    std::fs::write(&garbage, "this is not PEM\n").expect("garbage");
    let missing = d.join("missing.pem");
    let a_dir = d.join("a-directory");
    std::fs::create_dir(&a_dir).expect("dir");
    let tls = |c: &Path, k: &Path| {
        format!(
            "[server.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            c.display(),
            k.display()
        )
    };
    let cases: Vec<(String, &str, &Path)> = vec![
        (tls(&missing, &key), "server.tls.cert", &missing),
        (tls(&cert, &missing), "server.tls.key", &missing),
        (tls(&a_dir, &key), "server.tls.cert", &a_dir),
        (tls(&garbage, &key), "server.tls.cert", &garbage),
        (tls(&cert, &garbage), "server.tls.key", &garbage),
        (tls(&other_cert, &key), "server.tls", &other_cert),
        (
            format!("[delivery]\nca_file = \"{}\"\n", missing.display()),
            "delivery.ca_file",
            &missing,
        ),
        (
            format!("[delivery]\nca_file = \"{}\"\n", garbage.display()),
            "delivery.ca_file",
            &garbage,
        ),
    ];
    for (extra, key_path, file) in cases {
        let case = tempfile::tempdir().expect("tempdir");
        let config = bare_config(case.path(), "127.0.0.1:0", &extra);
        let config_s = config.to_str().expect("utf-8");
        let file_s = file.display().to_string();
        let line = format!("{config_s}: {key_path}: ");

        let out = hookd(&["check-config", config_s]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra}: {err}");
        assert_eq!(text(&out.stdout), "", "{extra}");
        let problem = err.lines().find(|l| l.starts_with(&line));
        let problem = problem.unwrap_or_else(|| panic!("{line:?} not in:\n{err}"));
        assert!(problem.contains(&file_s), "{problem}");

        let (code, serve_err) = match serve(&config) {
            Ok(s) => panic!("serve started with {extra}: {}", s.stderr()),
            Err(e) => e,
        };
        assert_eq!(code, Some(2), "{extra}: {serve_err}");
        assert!(!serve_err.contains("panicked"), "{serve_err}");
        // The same problem line as check-config's, said once.
        assert!(serve_err.lines().any(|l| l == problem), "{serve_err}");
        assert_eq!(serve_err.matches(&file_s).count(), 1, "{serve_err}");
        assert!(!case.path().join("data").exists(), "the store was opened");
    }
}

/// Item 5: a start that fails keeps no first-start admin token; the corrected start makes
/// one, shows it, and it works.
#[test]
fn a_failed_first_start_does_not_use_up_the_admin_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.pem");
    let bad = format!(
        "[server.tls]\ncert = \"{0}\"\nkey = \"{0}\"\n",
        missing.display()
    );
    let config = bare_config(dir.path(), "127.0.0.1:0", &bad);
    let (code, err) = match serve(&config) {
        Ok(s) => panic!("started: {}", s.stderr()),
        Err(e) => e,
    };
    assert_eq!(code, Some(2), "{err}");
    assert!(
        !err.contains("hkd_"),
        "a token was shown by a failed start:\n{err}"
    );

    bare_config(dir.path(), "127.0.0.1:0", "");
    let h = serve(&config).expect("the corrected config starts");
    let token = h.wait_stderr(|l| l.trim().strip_prefix("hkd_").map(|t| format!("hkd_{t}")));
    let r = get(h.addr, "/api/v1/app", &token);
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert_eq!(h.terminate(), Some(0));

    // Kept: the next start shows none, and the token still works.
    let h = serve(&config).expect("restart");
    let r = get(h.addr, "/api/v1/app", &token);
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(!h.stderr().contains("hkd_"), "{}", h.stderr());
}

fn get(addr: SocketAddr, path: &str, token: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\nconnection: close\r\n\r\n"
    )
    .expect("write");
    let mut reply = String::new();
    s.read_to_string(&mut reply).expect("read");
    reply
}

/// The test harness's config (its tokens), listening on `listen`, data in `dir/data`.
fn harness_config(dir: &Path, listen: SocketAddr) -> PathBuf {
    let path = dir.join("hookd.toml");
    let text = harness::config_text(&dir.join("data"), "");
    let text = text.replace("\"127.0.0.1:0\"", &format!("\"{listen}\""));
    std::fs::write(&path, text).expect("write config");
    path
}

/// Item 1: a second hookd on an address a hookd listens on exits 2 naming it, and the first
/// keeps every connection; a hookd stopped with SIGTERM starts again on its address at once.
#[test]
fn one_hookd_per_listen_address() {
    let h = harness::Hookd::start("");
    let second = tempfile::tempdir().expect("tempdir");
    let config = harness_config(second.path(), h.addr);
    let (code, err) = match serve(&config) {
        Ok(s) => panic!("a second hookd listens on {}: {}", s.addr, s.stderr()),
        Err(e) => e,
    };
    assert_eq!(code, Some(2), "{err}");
    let line = format!("server.listen: {} is in use", h.addr);
    assert!(err.contains(&line), "{line:?} not in:\n{err}");
    assert!(
        !second.path().join("data").exists(),
        "the second opened a store"
    );

    // Every message goes to the first.
    let app = h.admin("POST", "/api/v1/app", Some(r#"{"name":"p","uid":"p"}"#));
    assert_eq!(app.status, 201, "{}", app.body);
    for i in 0..20 {
        let body = format!(r#"{{"eventType":"t","payload":{{"i":{i}}}}}"#);
        let r = h.admin("POST", "/api/v1/app/p/msg", Some(&body));
        assert_eq!(r.status, 202, "{}", r.body);
    }
    let list = h.admin("GET", "/api/v1/app/p/msg?limit=100", None).json();
    assert_eq!(list["data"].as_array().map(Vec::len), Some(20), "{list}");

    // Stop it (connections it closed linger in TIME_WAIT) and start on its address at once.
    let addr = h.addr;
    let mut h = h;
    assert_eq!(h.terminate().code(), Some(0));
    let again = tempfile::tempdir().expect("tempdir");
    let restarted = serve(&harness_config(again.path(), addr)).expect("restart on the address");
    assert_eq!(restarted.addr, addr);
    assert_eq!(restarted.terminate(), Some(0));
}

/// Item 1: of two hookds started at the same instant on one address, exactly one listens.
#[test]
fn two_hookds_started_together_on_one_address() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let dirs: Vec<_> = (0..2)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let configs: Vec<PathBuf> = dirs
        .iter()
        .map(|d| harness_config(d.path(), port))
        .collect();
    let runs: Vec<_> = configs
        .into_iter()
        .map(|c| std::thread::spawn(move || serve(&c)))
        .collect();
    let results: Vec<_> = runs
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .collect();
    let listening = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(listening, 1, "exactly one listens");
    for r in &results {
        if let Err((code, err)) = r {
            assert_eq!(*code, Some(2), "{err}");
            assert!(err.contains(&format!("{port} is in use")), "{err}");
        }
    }
}

/// `(offset, seq)` of every frame of a segment file, read before any is corrupted.
fn frames(path: &Path) -> Vec<(usize, u64)> {
    let bytes = std::fs::read(path).expect("segment");
    let mut out = Vec::new();
    let mut pos = 32;
    while pos + 21 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().expect("4 bytes"));
        let seq = u64::from_le_bytes(bytes[pos + 13..pos + 21].try_into().expect("8 bytes"));
        out.push((pos, seq));
        pos += 12 + len as usize;
    }
    out
}

fn flip(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).expect("segment");
    bytes[at] ^= 0x5a;
    std::fs::write(path, &bytes).expect("write segment");
}

/// Polls `get` until `done` holds of its value; fails with the last value after a minute.
fn poll<T: std::fmt::Debug>(what: &str, get: impl Fn() -> T, done: impl Fn(&T) -> bool) -> T {
    let deadline = Instant::now() + START_WITHIN;
    loop {
        let v = get();
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: still {v:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Item 2: bytes flipped in sealed segments (a segment's first, a middle and a last record,
/// and a segment's header) with deliveries pending. Every other acknowledged message is
/// still delivered and listed, across restarts; the corrupt ones answer a clear 404, are
/// failed without being sent, and are reported once: log, `/metrics`, `hookd inspect`.
#[test]
fn corrupt_records_cost_those_records_alone() {
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let accept = Arc::new(AtomicBool::new(false));
    let delivered = Arc::new(Mutex::new(HashSet::new()));
    let (a, d) = (accept.clone(), delivered.clone());
    let rx = receiver::Receiver::builder()
        .handler(move |r| match a.load(Ordering::SeqCst) {
            true => {
                let id = r.header("webhook-id").unwrap_or_default().to_owned();
                d.lock().expect("lock").insert(id);
                receiver::Reply::ok()
            }
            false => receiver::Reply::status(503),
        })
        .start();
    let schedule = vec!["\"1s\""; 40].join(", ");
    let mut h = harness::Hookd::start_logged(&format!(
        "[storage]\nsegment_bytes_max = \"4KiB\"\n\
         [delivery]\nretry_schedule = [{schedule}]\nallow_private_networks = true\n"
    ));
    let app = h.admin("POST", "/api/v1/app", Some(r#"{"name":"c","uid":"c"}"#));
    assert_eq!(app.status, 201, "{}", app.body);
    let ep = format!(r#"{{"url":"{}"}}"#, rx.url("/hook"));
    let r = h.admin("POST", "/api/v1/app/c/endpoint", Some(&ep));
    assert_eq!(r.status, 201, "{}", r.body);
    let pad = "x".repeat(1000);
    let ids: Vec<String> = (0..18)
        .map(|i| {
            let body = format!(r#"{{"eventType":"t","payload":{{"i":{i},"pad":"{pad}"}}}}"#);
            let r = h.admin("POST", "/api/v1/app/c/msg", Some(&body));
            assert_eq!(r.status, 202, "{}", r.body);
            r.json()["id"].as_str().expect("id").to_owned()
        })
        .collect();
    // Every message's first attempt was refused (503): all are pending in the index.
    for id in &ids {
        poll(
            "an attempt",
            || h.admin("GET", &format!("/api/v1/app/c/attempt/msg/{id}"), None),
            |r| r.status == 200 && r.json()["data"].as_array().is_some_and(|a| !a.is_empty()),
        );
    }
    assert_eq!(h.terminate().code(), Some(0));

    let log_dir = h.dir.path().join("data/log");
    let mut segs: Vec<PathBuf> = std::fs::read_dir(&log_dir)
        .expect("log dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .filter(|p| !frames(p).is_empty())
        .collect();
    segs.sort();
    segs.pop(); // the open segment
    assert!(segs.len() >= 4, "{segs:?}");
    let picks = [(0, 0), (1, 1), (2, usize::MAX)];
    let mut corrupt = Vec::new();
    for (seg, nth) in picks {
        let f = frames(&segs[seg]);
        assert!(f.len() >= 3, "{f:?}");
        let (offset, seq) = f[nth.min(f.len() - 1)];
        // The log holds only messages: record n is the n-th message.
        let bytes = std::fs::read(&segs[seg]).expect("segment");
        let at = String::from_utf8_lossy(&bytes[offset..offset + 200]).into_owned();
        assert!(at.contains(&format!("\"i\":{},", seq - 1)), "{at}");
        flip(&segs[seg], offset + 40);
        corrupt.push(ids[seq as usize - 1].clone());
    }
    flip(&segs[3], 18); // segment 4's header (its id, under the header checksum)
    let good: HashSet<String> = ids
        .iter()
        .filter(|i| !corrupt.contains(i))
        .cloned()
        .collect();

    h.crash_and_restart(); // it was stopped: this starts it on the corrupted store
    accept.store(true, Ordering::SeqCst);
    poll(
        "deliveries",
        || delivered.lock().expect("lock").clone(),
        |d| good.is_subset(d),
    );
    // The corrupt ones are failed without an attempt, never sent.
    h.wait_for_log(3, START_WITHIN, |l| {
        l.contains("message corrupt in the log")
    });
    let sent = delivered.lock().expect("lock").clone();
    for id in &corrupt {
        assert!(!sent.contains(id), "{id} was delivered");
    }
    let listed = |h: &harness::Hookd| -> HashSet<String> {
        let r = h.admin(
            "GET",
            "/api/v1/app/c/msg?limit=250&with_content=false",
            None,
        );
        assert_eq!(r.status, 200, "{}", r.body);
        let data = r.json()["data"].as_array().expect("data").clone();
        data.iter()
            .map(|m| m["id"].as_str().expect("id").to_owned())
            .collect()
    };
    assert_eq!(listed(&h), good);
    for id in &corrupt {
        let r = h.admin("GET", &format!("/api/v1/app/c/msg/{id}"), None);
        assert_eq!(r.status, 404, "{}", r.body);
        assert!(
            r.json()["detail"]
                .as_str()
                .expect("detail")
                .contains("corrupt"),
            "{}",
            r.body
        );
    }
    for id in good.iter().take(3) {
        assert_eq!(
            h.admin("GET", &format!("/api/v1/app/c/msg/{id}"), None)
                .status,
            200
        );
    }
    // The sealed segments were all read once after start (not only where reads went).
    h.wait_for_log(1, START_WITHIN, |l| l.contains("log check done"));
    // Reported: four stretches, each logged once, counted in /metrics.
    let reported = h.wait_for_log(4, START_WITHIN, |l| {
        l.contains("corrupt log stretch quarantined")
    });
    assert_eq!(reported.len(), 4, "{reported:?}");
    let metrics = h.call("GET", "/metrics", Some(harness::READER), None);
    assert!(
        metrics
            .body
            .contains("hookd_log_corrupt_stretches_total 4\n"),
        "{}",
        metrics.body
    );

    // Restarted once more: still listed, nothing found or reported again.
    h.crash_and_restart();
    assert_eq!(listed(&h), good);
    let metrics = h.call("GET", "/metrics", Some(harness::READER), None);
    assert!(
        metrics
            .body
            .contains("hookd_log_corrupt_stretches_total 0\n"),
        "{}",
        metrics.body
    );
    assert_eq!(h.terminate().code(), Some(0));
    let lines = h
        .log()
        .lines()
        .filter(|l| l.contains("corrupt log stretch quarantined"))
        .count();
    assert_eq!(lines, 4, "{}", h.log());

    // hookd inspect names the three records' stretches, and exits 3.
    let data = h.dir.path().join("data");
    let out = hookd(&["inspect", "--data", data.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
    let report = text(&out.stdout);
    for seg in 1..=3 {
        let name = segs[seg - 1]
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let id: u64 = name[4..24].parse().expect("id");
        assert!(report.contains(&format!("segment {id}: ")), "{report}");
    }
    assert!(
        report.contains("3 corrupt stretches (3 quarantined at an earlier start)"),
        "{report}"
    );
}

/// Item 6: an ingest token's `apps` entry that can name no app (neither a uid nor an app id,
/// like the example's old "app_shop") is accepted, with a warning under its key, by
/// check-config and by serve.
#[test]
fn apps_that_name_no_app_are_warned_about() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = "[[auth.tokens]]\nname = \"shop\"\n\
        sha256 = \"fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210\"\n\
        scopes = [\"ingest\"]\napps = [\"app_shop\", \"shop\"]\n";
    let config = bare_config(dir.path(), "127.0.0.1:0", token);
    let config_s = config.to_str().expect("utf-8");
    let warning = format!("{config_s}: warning: auth.tokens[0].apps[0]: \"app_shop\" is neither");
    let out = hookd(&["check-config", config_s]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "ok\n");
    let err = text(&out.stderr);
    assert!(err.starts_with(&warning), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let h = serve(&config).expect("serve starts");
    assert!(h.stderr().starts_with(&warning), "{}", h.stderr());
    assert_eq!(h.terminate(), Some(0));
}

/// Item 7: `hookd status` asks a hookd that serves HTTPS, trusting the CA given with
/// `--ca-file`; without it the certificate is not trusted and it says so.
#[test]
fn status_speaks_https() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, cert, key) = receiver::test_pki();
    let file = |name: &str, pem: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, pem).expect("pem");
        path
    };
    let (ca, cert, key) = (
        file("ca.pem", &ca),
        file("cert.pem", &cert),
        file("key.pem", &key),
    );
    let tls = format!(
        "[server.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let h = harness::Hookd::start(&tls);
    let url = format!("https://127.0.0.1:{}", h.addr.port());
    let ca_s = ca.to_str().expect("utf-8");
    let out = hookd(&[
        "status",
        "--url",
        &url,
        "--ca-file",
        ca_s,
        "--token",
        harness::READER,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    assert!(report.contains(&format!("at {url}")), "{report}");
    assert!(report.contains("shards:      2 of 2 up"), "{report}");

    let out = hookd(&["status", "--url", &url, "--token", harness::READER]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("TLS with 127.0.0.1:") && err.contains("certificate"),
        "{err}"
    );
}

/// Item 7: a refused `storage.segment_bytes_max` is the one problem reported; its default
/// is not named as a limit that `max_bytes` breaks.
#[test]
fn a_refused_segment_size_is_reported_with_the_value_given() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("hookd.toml");
    std::fs::write(
        &config,
        "[storage]\nsegment_bytes_max = \"8GiB\"\nmax_bytes = \"32MiB\"\n",
    )
    .expect("write config");
    let config_s = config.to_str().expect("utf-8");
    let out = hookd(&["check-config", config_s]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    let want = format!(
        "{config_s}: storage.segment_bytes_max: must be between 1KiB and 4GiB, got 8GiB\n\
         hookd: {config_s}: 1 problem\n"
    );
    assert_eq!(err, want);
}

/// Item 7: `serve` and `check-config` both take the config file as `--config PATH` or as
/// `PATH`.
#[test]
fn both_commands_take_the_config_file_either_way() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = bare_config(dir.path(), "127.0.0.1:0", "");
    let config_s = config.to_str().expect("utf-8");
    for args in [
        ["check-config", config_s, ""],
        ["check-config", "--config", config_s],
    ] {
        let args: Vec<&str> = args.into_iter().filter(|a| !a.is_empty()).collect();
        let out = hookd(&args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(text(&out.stdout), "ok\n");
    }
    for args in [["serve", config_s], ["serve", "--config"]] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookd"));
        cmd.args(args);
        if args[1] == "--config" {
            cmd.arg(config_s);
        }
        let out = serve_with(cmd);
        let h = out.unwrap_or_else(|(c, e)| panic!("{args:?}: exit {c:?}: {e}"));
        assert_eq!(h.terminate(), Some(0));
    }
}

/// Item 7: a torn tail is reported with the record cut short, and `inspect` exits 3 (in
/// `interval` durability that record may have been acknowledged).
#[test]
fn inspect_reports_a_torn_tail_and_the_record_cut() {
    let mut h = harness::Hookd::start("[storage]\ndurability = \"interval\"\n");
    let app = h.admin("POST", "/api/v1/app", Some(r#"{"name":"t","uid":"t"}"#));
    assert_eq!(app.status, 201);
    for i in 0..3 {
        let body = format!(r#"{{"eventType":"t","payload":{{"i":{i}}}}}"#);
        assert_eq!(
            h.admin("POST", "/api/v1/app/t/msg", Some(&body)).status,
            202
        );
    }
    assert_eq!(h.terminate().code(), Some(0));
    let seg = h.dir.path().join("data/log/seg-00000000000000000001.log");
    // Cut the last record short: as a power failure can in interval durability.
    let (last, seq) = *frames(&seg).last().expect("a record");
    assert_eq!(seq, 3);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .expect("open");
    f.set_len(last as u64 + 30).expect("cut");
    drop(f);
    let data = h.dir.path().join("data");
    let out = hookd(&["inspect", "--data", data.to_str().expect("utf-8")]);
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{report}");
    assert!(
        report.contains("segment 1: torn tail, 30 bytes at offset"),
        "{report}"
    );
    assert!(
        report.contains("record 3 (and any after it) was cut short"),
        "{report}"
    );
    assert!(report.contains("interval durability"), "{report}");
}

/// Item 7: `hookd_delivery_seconds` is measured finer than milliseconds: a loopback delivery
/// is not counted as taking no time at all, nor its time rounded to whole milliseconds.
#[test]
fn delivery_latency_is_measured_in_microseconds() {
    let rx = receiver::Receiver::start();
    let h = harness::Hookd::start("[delivery]\nallow_private_networks = true\n");
    assert_eq!(
        h.admin("POST", "/api/v1/app", Some(r#"{"name":"d","uid":"d"}"#))
            .status,
        201
    );
    let ep = format!(r#"{{"url":"{}"}}"#, rx.url("/hook"));
    assert_eq!(
        h.admin("POST", "/api/v1/app/d/endpoint", Some(&ep)).status,
        201
    );
    for i in 0..5 {
        let body = format!(r#"{{"eventType":"t","payload":{{"i":{i}}}}}"#);
        assert_eq!(
            h.admin("POST", "/api/v1/app/d/msg", Some(&body)).status,
            202
        );
    }
    let value = |text: &str, name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    };
    let metrics = poll(
        "five timed deliveries",
        || h.call("GET", "/metrics", Some(harness::READER), None).body,
        |m| value(m, "hookd_delivery_seconds_count") >= 5.0,
    );
    let zero = value(&metrics, "hookd_delivery_seconds_bucket{le=\"0.00005\"}");
    assert_eq!(zero, 0.0, "{metrics}");
    let sum_us = value(&metrics, "hookd_delivery_seconds_sum") * 1e6;
    assert!(sum_us > 0.0, "{metrics}");
    assert!(
        sum_us.round() % 1000.0 != 0.0,
        "whole milliseconds: {sum_us} us"
    );
}
