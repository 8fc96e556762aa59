//! Issue 19: what an operator meets when following the README literally, against the real
//! binary: the files a config names, bad-start exit codes, the first-start admin token, one
//! hookd per listen address.

#[path = "support/hookd.rs"]
mod harness;

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
        // SAFETY: kill(2) with a pid we own and a valid signal number.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
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
    let stderr = config.with_extension(format!("{}.stderr", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_hookd"))
        .args(["serve", "--config"])
        .arg(config)
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
