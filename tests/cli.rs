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
    // SAFETY: kill(2) on our own child's pid with a valid signal.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
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
