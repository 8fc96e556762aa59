//! The `hookd` binary as an operator runs it: exit status, stdout and stderr.

use std::path::Path;
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

fn hookd(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hookd"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run hookd")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("utf-8 stdout")
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).expect("utf-8 stderr")
}

fn no_panic(out: &Output) {
    let err = stderr(out);
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains("RUST_BACKTRACE"), "{err}");
}

#[test]
fn check_config_accepts_a_good_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hookd.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = \"0.0.0.0:8080\"\n[delivery]\nretry_schedule = [\"1s\", \"1m\"]\n",
    )
    .unwrap();
    let out = hookd(&["check-config", path.to_str().unwrap()], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "ok\n");
    assert_eq!(stderr(&out), "");
}

#[test]
fn check_config_accepts_the_example() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("hookd.example.toml");
    let out = hookd(&["check-config", example.to_str().unwrap()], Path::new("."));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "ok\n");
}

#[test]
fn check_config_lists_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[server]\nlistn = \"127.0.0.1:1\"\n\
         [storage]\ndurability = \"always\"\n\
         [delivery]\ntimeout = 15\nretry_schedule = [\"5s\", \"5\"]\n\
         [ingest]\npayload_bytes_max = \"lots\"\n",
    )
    .unwrap();
    let out = hookd(&["check-config", path.to_str().unwrap()], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stdout(&out), "");
    no_panic(&out);
    let err = stderr(&out);
    let file = path.display().to_string();
    for key in [
        "server.listn: unknown field `listn`",
        "storage.durability: unknown value \"always\"",
        "delivery.timeout: invalid type: integer `15`, expected a string",
        "delivery.retry_schedule[1]: invalid duration \"5\"",
        "ingest.payload_bytes_max: invalid size \"lots\"",
    ] {
        let line = format!("{file}: {key}");
        assert!(
            err.lines().any(|l| l.starts_with(&line)),
            "{line:?} not in:\n{err}"
        );
    }
    assert!(err.contains("5 problems"), "{err}");
}

#[test]
fn check_config_refuses_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let syntax = dir.path().join("syntax.toml");
    std::fs::write(&syntax, "[server]\nlisten = \n").unwrap();
    let binary = dir.path().join("binary.toml");
    std::fs::write(&binary, [0xff, 0xfe, 0x00]).unwrap();
    let missing = dir.path().join("missing.toml");
    let cases = [
        (syntax, "TOML syntax error at line 2"),
        (binary, "not UTF-8"),
        (missing, "cannot read config file"),
        (dir.path().to_owned(), "cannot read config file"),
    ];
    for (path, want) in cases {
        let out = hookd(&["check-config", path.to_str().unwrap()], dir.path());
        assert_eq!(out.status.code(), Some(2), "{}", path.display());
        no_panic(&out);
        assert!(
            stderr(&out).contains(want),
            "{}: {}",
            path.display(),
            stderr(&out)
        );
    }
}

/// With no config, `serve` runs the embedded default: 127.0.0.1:8071, data under
/// ./hookd-data, and at first start one admin token, printed once, that works.
#[test]
fn serve_runs_with_the_embedded_default() {
    use std::io::{BufRead, BufReader, Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hookd"))
        .arg("serve")
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run hookd");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("a line").expect("utf-8");
    assert!(first.starts_with("listening on 127.0.0.1:8071"), "{first}");
    assert!(dir.path().join("hookd-data").join("HOOKD").exists());
    // The token is on stderr, once; it authenticates.
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut token = None;
    let mut seen = String::new();
    for _ in 0..20 {
        let mut line = String::new();
        if err.read_line(&mut line).unwrap() == 0 {
            break;
        }
        seen.push_str(&line);
        if let Some(t) = line.trim().strip_prefix("hkd_") {
            token = Some(format!("hkd_{t}"));
            break;
        }
    }
    let token = token.unwrap_or_else(|| panic!("no token printed: {seen}"));
    let mut s = std::net::TcpStream::connect("127.0.0.1:8071").unwrap();
    write!(s, "GET /api/v1/app HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\nconnection: close\r\n\r\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    // SIGTERM: a clean stop.
    harness::signal(child.id(), nix::sys::signal::Signal::SIGTERM);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn serve_refuses_a_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hookd.toml");
    std::fs::write(&path, "[server]\nshards = 99999\n").unwrap();
    let out = hookd(&["serve", "--config", path.to_str().unwrap()], dir.path());
    assert_eq!(out.status.code(), Some(2));
    no_panic(&out);
    assert!(stderr(&out).contains("server.shards: must be between 0 and 1024, got 99999"));
    assert!(!stdout(&out).contains("serving"));
}

#[test]
fn token_new_prints_a_token_and_an_entry_that_accepts_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = hookd(
        &[
            "token", "new", "--name", "ci", "--scope", "ingest", "--scope", "read",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let (token, entry) = text.split_once('\n').expect("two parts");

    let hex_part = token.strip_prefix("hkd_").expect("hkd_ prefix");
    assert_eq!(hex_part.len(), 64);
    assert!(hex_part
        .bytes()
        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));

    let hash = hex::encode(Sha256::digest(token.as_bytes()));
    assert!(entry.contains(&format!("sha256 = \"{hash}\"")), "{entry}");

    let config_text = format!("[server]\nlisten = \"127.0.0.1:0\"\n\n{entry}");
    let config = hookd::config::from_toml_str(&config_text).expect("entry is valid");
    assert_eq!(config.auth.tokens.len(), 1);
    let t = &config.auth.tokens[0];
    assert_eq!(t.name, "ci");
    assert_eq!(hex::encode(t.sha256), hash);
    assert_eq!(
        t.scopes,
        [hookd::config::Scope::Ingest, hookd::config::Scope::Read]
    );

    // The same file passes check-config.
    let path = dir.path().join("hookd.toml");
    std::fs::write(&path, &config_text).unwrap();
    let check = hookd(&["check-config", path.to_str().unwrap()], dir.path());
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));

    // And a second token differs.
    let again = hookd(&["token", "new"], dir.path());
    let second = stdout(&again);
    assert_ne!(second.lines().next(), Some(token));
    assert!(second.contains("scopes = [\"admin\"]"), "{second}");
    assert!(second.contains("name = \"token-"), "{second}");
}

#[test]
fn token_new_refuses_a_bad_name() {
    let out = hookd(&["token", "new", "--name", "has space"], Path::new("."));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stdout(&out), "");
    no_panic(&out);
    assert!(stderr(&out).contains("--name: invalid token name \"has space\""));
}

#[test]
fn version() {
    let out = hookd(&["version"], Path::new("."));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stdout(&out),
        format!("hookd {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["check-config"][..],
        &["frobnicate"],
        &["token", "new", "--scope", "root"],
    ] {
        let out = hookd(args, Path::new("."));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        no_panic(&out);
    }
}

#[path = "support/hookd.rs"]
mod harness;

/// Runs `hookd ARGS` with `env` set and `HOOKD_TOKEN` unset unless given.
fn hookd_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hookd"))
        .args(args)
        .env_remove("HOOKD_TOKEN")
        .envs(env.iter().copied())
        .output()
        .expect("run hookd")
}

/// A loopback port nobody listens on.
fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Creates app `app` (with an endpoint at `url`, if given) and sends it `n` messages of about
/// `pad` bytes; returns their ids.
fn app_with_messages(
    h: &harness::Hookd,
    app: &str,
    url: Option<&str>,
    n: usize,
    pad: usize,
) -> Vec<String> {
    let body = format!(r#"{{"name":"{app}","uid":"{app}"}}"#);
    assert_eq!(h.admin("POST", "/api/v1/app", Some(&body)).status, 201);
    if let Some(url) = url {
        let ep = format!(r#"{{"url":"{url}"}}"#);
        let r = h.admin("POST", &format!("/api/v1/app/{app}/endpoint"), Some(&ep));
        assert_eq!(r.status, 201, "{}", r.body);
    }
    (0..n)
        .map(|i| {
            let body = format!(
                r#"{{"eventType":"cli.test","payload":{{"i":{i},"pad":"{}"}}}}"#,
                "x".repeat(pad)
            );
            let r = h.admin("POST", &format!("/api/v1/app/{app}/msg"), Some(&body));
            assert_eq!(r.status, 202, "{}", r.body);
            r.json()["id"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// Waits until every message in `ids` of `app` has an attempt recorded.
fn wait_for_attempts(h: &harness::Hookd, app: &str, ids: &[String]) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    for id in ids {
        loop {
            let r = h.admin("GET", &format!("/api/v1/app/{app}/attempt/msg/{id}"), None);
            if r.status == 200 && r.json()["data"].as_array().is_some_and(|a| !a.is_empty()) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no attempt recorded for {id}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// `hookd status` against a running hookd: shards, pending deliveries with the oldest one's
/// age, disk; the token from the flag or `HOOKD_TOKEN`; `--json`; refusals on stderr.
#[test]
fn status_reports_a_running_hookd() {
    let h = harness::Hookd::start("[delivery]\nallow_private_networks = true\n");
    let dead = format!("http://127.0.0.1:{}/gone", dead_port());
    app_with_messages(&h, "s", Some(&dead), 3, 10);
    let url = format!("http://{}", h.addr);
    let args = ["status", "--url", &url, "--token", harness::READER];
    // Pending counts first attempts in flight too: three from the moment they are accepted.
    let out = hookd_env(&args, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for line in [
        format!("hookd {} at {url}: up ", env!("CARGO_PKG_VERSION")),
        "\nshards:      2 of 2 up\n".into(),
        "\n  shard 0:   up, heartbeat ".into(),
        "\n  shard 1:   up, heartbeat ".into(),
        "\ndispatcher:  up\n".into(),
        "\npending:     3 deliveries, oldest ".into(),
        "% of storage.max_bytes (10.0 GiB); index ".into(),
        "\nendpoints:   ".into(),
    ] {
        assert!(text.contains(&line), "{line:?} not in:\n{text}");
    }
    assert_eq!(stderr(&out), "");

    let out = hookd_env(
        &["status", "--url", &url, "--json"],
        &[("HOOKD_TOKEN", harness::READER)],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(json["pending"]["count"], 3);
    assert_eq!(json["shards"].as_array().map(Vec::len), Some(2));

    let out = hookd_env(&["status", "--url", &url, "--token", "hkd_wrong"], &[]);
    assert_eq!(out.status.code(), Some(1));
    no_panic(&out);
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains("hookd refused the token (401 authentication_failed)"),
        "{}",
        stderr(&out)
    );

    let out = hookd_env(&["status", "--url", &url], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("give --token or set HOOKD_TOKEN"));

    let closed = format!("http://127.0.0.1:{}", dead_port());
    let out = hookd_env(&["status", "--url", &closed, "--token", "t"], &[]);
    assert_eq!(out.status.code(), Some(1));
    no_panic(&out);
    assert!(
        stderr(&out).contains("cannot connect to 127.0.0.1:"),
        "{}",
        stderr(&out)
    );
}

/// The segment rows of `hookd inspect`'s table: (id, records, sequence range).
fn segment_rows(text: &str) -> Vec<(u64, u64, String)> {
    text.lines()
        .skip_while(|l| !l.trim_start().starts_with("id "))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (
                cols[0].parse().expect("segment id"),
                cols[1].parse().expect("record count"),
                cols[4].to_owned(),
            )
        })
        .collect()
}

/// `hookd inspect` on a stopped store with known content: its segments, the records by app,
/// the pending deliveries, and a clean decode check.
#[test]
fn inspect_reads_a_stopped_store() {
    let mut h = harness::Hookd::start(
        "[storage]\nsegment_bytes_max = \"4KiB\"\n[delivery]\nallow_private_networks = true\n",
    );
    let dead = format!("http://127.0.0.1:{}/gone", dead_port());
    let shop = app_with_messages(&h, "shop", Some(&dead), 6, 1000);
    app_with_messages(&h, "other", None, 2, 1000);
    // Each first attempt fails at once (connection refused) and is recorded as pending.
    wait_for_attempts(&h, "shop", &shop);
    assert_eq!(h.terminate().code(), Some(0));
    let data = h.dir.path().join("data");
    let out = hookd(
        &["inspect", "--data", data.to_str().unwrap()],
        Path::new("."),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
    let text = stdout(&out);
    let rows = segment_rows(&text);
    // 8 messages of 1 KiB in segments of 4 KiB: several segments, the records in order.
    assert!(rows.len() >= 3, "{text}");
    assert_eq!(rows.iter().map(|r| r.1).sum::<u64>(), 8, "{text}");
    assert!(
        text.contains(&format!("segments: {} (", rows.len())),
        "{text}"
    );
    assert!(text.contains("), 8 records\n"), "{text}");
    assert!(rows[0].2.starts_with("1..="), "{text}");
    assert!(text.contains("records by app: shop 6, other 2\n"), "{text}");
    let pending = "pending deliveries: 6 in the index; the oldest is for record 1, appended ";
    assert!(text.contains(pending), "{text}");
    assert!(
        text.contains("decode check: 8 records read, 0 undecodable; 0 corrupt stretches"),
        "{text}"
    );
    assert!(
        text.ends_with("result: ok, every record decodes\n"),
        "{text}"
    );
}

/// A store in use by a running hookd is refused, politely, and left alone.
#[test]
fn inspect_refuses_a_store_in_use() {
    let h = harness::Hookd::start("");
    let data = h.dir.path().join("data");
    let out = hookd(
        &["inspect", "--data", data.to_str().unwrap()],
        Path::new("."),
    );
    assert_eq!(out.status.code(), Some(1));
    no_panic(&out);
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert!(err.contains("is in use by a running hookd"), "{err}");
    assert!(err.contains("stop it first"), "{err}");
    assert_eq!(h.call("GET", "/api/v1/health", None, None).status, 204);

    // Neither a hookd directory nor an existing one.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
    let out = hookd(
        &["inspect", "--data", dir.path().to_str().unwrap()],
        Path::new("."),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is not a hookd data directory"));
    let missing = dir.path().join("missing");
    let out = hookd(
        &["inspect", "--data", missing.to_str().unwrap()],
        Path::new("."),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
}

/// One flipped byte in a segment: `hookd inspect` names the segment and the bytes, counts one
/// record fewer, and exits 3. The file itself is left as it was.
#[test]
fn inspect_finds_a_corrupted_byte() {
    let mut h = harness::Hookd::start("[storage]\nsegment_bytes_max = \"4KiB\"\n");
    app_with_messages(&h, "c", None, 6, 1000);
    assert_eq!(h.terminate().code(), Some(0));
    let data = h.dir.path().join("data");
    let seg = data.join("log").join("seg-00000000000000000001.log");
    let mut bytes = std::fs::read(&seg).unwrap();
    // Inside the first record's body, just past the 32-byte segment header and the 12-byte
    // frame header: its checksum no longer matches.
    bytes[32 + 12 + 40] ^= 0x5a;
    std::fs::write(&seg, &bytes).unwrap();
    let out = hookd(
        &["inspect", "--data", data.to_str().unwrap()],
        Path::new("."),
    );
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    no_panic(&out);
    let text = stdout(&out);
    assert!(text.contains("decode check: 5 records read"), "{text}");
    assert!(text.contains("result: CORRUPT, 1 problem:"), "{text}");
    assert!(
        text.contains("  segment 1: ") && text.contains(" bad bytes at offset 32: "),
        "{text}"
    );
    assert_eq!(
        std::fs::read(&seg).unwrap(),
        bytes,
        "inspect changed the file"
    );
}
