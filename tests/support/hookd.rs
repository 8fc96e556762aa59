//! Runs the real `hookd` binary for integration tests and talks HTTP/1.1 to it over loopback.
#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use sha2::{Digest, Sha256};

pub const ADMIN: &str = "hkd_admin_token_for_tests";
pub const INGEST: &str = "hkd_ingest_token_for_tests";
pub const READER: &str = "hkd_read_token_for_tests";

/// Splits the `[storage]` table's lines out of a TOML snippet.
fn split_storage(extra: &str) -> (String, String) {
    let (mut storage, mut rest) = (String::new(), String::new());
    let mut in_storage = false;
    for line in extra.lines() {
        if line.trim_start().starts_with('[') {
            in_storage = line.trim() == "[storage]";
            if in_storage {
                continue;
            }
        }
        let target = if in_storage { &mut storage } else { &mut rest };
        target.push_str(line);
        target.push('\n');
    }
    (storage, rest)
}

/// A running hookd with its own data directory.
pub struct Hookd {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    config: PathBuf,
    /// Extra environment variables, kept for restarts.
    env: Vec<(String, String)>,
    /// Where hookd's standard error goes, when not inherited ([`Hookd::start_logged`]).
    log: Option<PathBuf>,
}

fn sha(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The config used by tests: three tokens, small limits where tests need them, `extra` appended
/// (its `[storage]` keys, if any, go into the config's own `[storage]` table).
pub fn config_text(data: &Path, extra: &str) -> String {
    let (storage_extra, extra) = split_storage(extra);
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
shards = 2

[storage]
path = "{data}"
{storage_extra}

[[auth.tokens]]
name = "admin"
sha256 = "{admin}"
scopes = ["admin"]

[[auth.tokens]]
name = "shop"
sha256 = "{ingest}"
scopes = ["ingest"]
apps = ["shop"]

[[auth.tokens]]
name = "viewer"
sha256 = "{read}"
scopes = ["read"]
{extra}
"#,
        data = data.display(),
        admin = sha(ADMIN),
        ingest = sha(INGEST),
        read = sha(READER),
    )
}

impl Hookd {
    /// Starts hookd with the test config plus `extra` TOML.
    pub fn start(extra: &str) -> Self {
        Self::start_with_env(extra, &[])
    }

    /// Starts hookd with the test config plus `extra` TOML and extra environment variables.
    /// The systemd variables (`NOTIFY_SOCKET`, `WATCHDOG_*`) are only set when given here.
    pub fn start_with_env(extra: &str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("hookd.toml");
        std::fs::write(&config, config_text(&dir.path().join("data"), extra)).expect("config");
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (child, addr) = spawn(&config, &env);
        Self {
            child: Some(child),
            addr,
            dir,
            config,
            env,
            log: None,
        }
    }

    /// [`Hookd::start`], with hookd's standard error (its log) going to a file of its
    /// directory instead of the test's, for [`Hookd::log`] and [`Hookd::reload`].
    pub fn start_logged(extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("hookd.toml");
        std::fs::write(&config, config_text(&dir.path().join("data"), extra)).expect("config");
        let log = dir.path().join("hookd.log");
        let (child, addr) = spawn_logged(&config, &[], Some(&log));
        Self {
            child: Some(child),
            addr,
            dir,
            config,
            env: Vec::new(),
            log: Some(log),
        }
    }

    /// The config file hookd was started with (and re-reads on SIGHUP).
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// Replaces the config file with the test config plus `extra` (as [`Hookd::start`] wrote
    /// it), whole: written aside, then renamed over the old one.
    pub fn rewrite_config(&self, extra: &str) {
        self.write_config_text(&config_text(&self.dir.path().join("data"), extra));
    }

    /// Replaces the config file with `text`, whole.
    pub fn write_config_text(&self, text: &str) {
        let aside = self.config.with_extension("toml.new");
        std::fs::write(&aside, text).expect("write config");
        std::fs::rename(&aside, &self.config).expect("rename config");
    }

    /// What hookd has logged so far ([`Hookd::start_logged`] only).
    pub fn log(&self) -> String {
        let path = self.log.as_ref().expect("started with start_logged");
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// Waits until at least `n` log lines satisfy `pred`, and returns them; fails the test
    /// with the log after `within`.
    pub fn wait_for_log(
        &self,
        n: usize,
        within: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let deadline = std::time::Instant::now() + within;
        loop {
            let log = self.log();
            let lines: Vec<String> = log.lines().filter(|l| pred(l)).map(str::to_owned).collect();
            if lines.len() >= n {
                return lines;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "fewer than {n} matching log lines after {within:?}; the log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends SIGHUP and waits for the reload to finish: returns its outcome line, which holds
    /// `config reloaded` or `config reload refused` ([`Hookd::start_logged`] only).
    pub fn reload(&self) -> String {
        let outcome =
            |l: &str| l.contains("config reloaded") || l.contains("config reload refused");
        let before = self.log().lines().filter(|l| outcome(l)).count();
        signal(self.pid(), nix::sys::signal::Signal::SIGHUP);
        let lines = self.wait_for_log(before + 1, Duration::from_secs(20), outcome);
        lines[before].clone()
    }

    /// Starts hookd with its data directory at `data` (for example on a filesystem the test
    /// made) instead of inside its own temporary directory.
    pub fn start_with_data(data: &Path, extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("hookd.toml");
        std::fs::write(&config, config_text(data, extra)).expect("config");
        let (child, addr) = spawn(&config, &[]);
        Self {
            child: Some(child),
            addr,
            dir,
            config,
            env: Vec::new(),
            log: None,
        }
    }

    /// The process id of the running hookd.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Stops with SIGKILL (a crash) and starts again on the same data.
    pub fn crash_and_restart(&mut self) {
        self.crash_and_restart_after(|| {});
    }

    /// [`Hookd::crash_and_restart`], running `between` while hookd is down.
    pub fn crash_and_restart_after(&mut self, between: impl FnOnce()) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        between();
        let (child, addr) = spawn_logged(&self.config, &self.env, self.log.as_deref());
        self.child = Some(child);
        self.addr = addr;
    }

    /// The exit status if hookd has exited on its own (never after a kill by this harness,
    /// which restarts it or drops it).
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// Stops with SIGTERM and returns the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        signal(c.id(), nix::sys::signal::Signal::SIGTERM);
        c.wait().expect("wait")
    }

    /// One request on a fresh connection.
    pub fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Reply {
        self.call_with(method, path, token, body, &[])
    }

    /// One request with extra headers.
    pub fn call_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut s = TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let req = encode_request(method, path, token, headers, body);
        s.write_all(req.as_bytes()).expect("write");
        read_reply_to(&mut s, method == "HEAD")
    }

    /// `method path` with the admin token and `body` as raw bytes (which need not be UTF-8).
    pub fn call_bytes(&self, method: &str, path: &str, body: &[u8]) -> Reply {
        let mut s = TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {ADMIN}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).expect("write");
        s.write_all(body).expect("write");
        read_reply_to(&mut s, false)
    }

    /// Polls `GET path` with `token` until it answers 200 with JSON for which `done` holds
    /// (what it waits for settles asynchronously); fails, showing the last answer, after
    /// `within`.
    pub fn wait_json(
        &self,
        path: &str,
        token: &str,
        within: Duration,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = std::time::Instant::now() + within;
        loop {
            let r = self.call("GET", path, Some(token), None);
            let v = r.json();
            if r.status == 200 && done(&v) {
                return v;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{path} never reached the expected state: {} {v}",
                r.status
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn admin(&self, method: &str, path: &str, body: Option<&str>) -> Reply {
        self.call(method, path, Some(ADMIN), body)
    }

    /// An admin POST of `body` to `path` that must answer 201; the created object.
    pub fn create(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let r = self.admin("POST", path, Some(&body.to_string()));
        assert_eq!(r.status, 201, "POST {path}: {}", r.body);
        r.json()
    }

    /// The value of the unlabelled series `name` in `/metrics`.
    pub fn metric(&self, name: &str) -> f64 {
        let r = self.admin("GET", "/metrics", None);
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} not in /metrics"))
    }
}

impl Drop for Hookd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn(config: &Path, env: &[(String, String)]) -> (Child, SocketAddr) {
    spawn_logged(config, env, None)
}

/// [`spawn`], with standard error appended to `log` when given (inherited otherwise).
fn spawn_logged(
    config: &Path,
    env: &[(String, String)],
    log: Option<&Path>,
) -> (Child, SocketAddr) {
    let stderr = match log {
        Some(path) => Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .expect("open the log file"),
        ),
        None => Stdio::inherit(),
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_hookd"))
        .args(["serve", "--config"])
        .arg(config)
        // Hermetic: a test runner started by systemd must not make hookd notify it.
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawn hookd");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(a) = line.strip_prefix("listening on ") {
                    break a
                        .split_whitespace()
                        .next()
                        .unwrap()
                        .parse()
                        .expect("address");
                }
            }
            _ => panic!("hookd exited before listening"),
        }
    };
    // Keep draining stdout so hookd never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

/// A parsed response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `sig` to process `pid` (a hookd this test started); a process already gone is fine.
pub fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).expect("a pid fits an i32"));
    let _ = nix::sys::signal::kill(pid, sig);
}

/// Reads one response (Content-Length or until close).
pub fn read_reply(s: &mut TcpStream) -> Reply {
    read_reply_to(s, false)
}

/// Reads one response; the answer to a HEAD request has no body whatever its headers say.
pub fn read_reply_to(s: &mut TcpStream, no_body: bool) -> Reply {
    try_read_reply_to(s, no_body).unwrap_or_else(|e| panic!("{e}"))
}

/// [`read_reply_to`] that returns an error instead of failing the test when the connection
/// breaks or times out, or the response is malformed.
pub fn try_read_reply_to(s: &mut TcpStream, no_body: bool) -> std::io::Result<Reply> {
    use std::io::{Error, ErrorKind};
    let bad = |what: &str| Error::new(ErrorKind::InvalidData, what.to_owned());
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut tmp)?;
        if n == 0 {
            return Err(Error::new(
                ErrorKind::UnexpectedEof,
                format!(
                    "connection closed before a response: {:?}",
                    String::from_utf8_lossy(&buf)
                ),
            ));
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(':').ok_or_else(|| bad("bad header line"))?;
            Ok((k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        })
        .collect::<std::io::Result<_>>()?;
    let len: Option<usize> = match headers.iter().find(|(k, _)| k == "content-length") {
        Some((_, v)) => Some(v.parse().map_err(|_| bad("bad content-length"))?),
        None => None,
    };
    let mut body = buf[head_end..].to_vec();
    match len {
        _ if no_body => body.clear(),
        Some(len) => {
            while body.len() < len {
                let n = s.read(&mut tmp)?;
                if n == 0 {
                    return Err(Error::new(
                        ErrorKind::UnexpectedEof,
                        "closed inside the body",
                    ));
                }
                body.extend_from_slice(&tmp[..n]);
            }
            body.truncate(len);
        }
        None => {
            let _ = s.read_to_end(&mut body);
        }
    }
    Ok(Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// A whole request on a `connection: close` connection: the bearer `token`, `headers`, and a
/// JSON `body` (with its length; POST, PUT and PATCH always say one).
fn encode_request(
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> String {
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("authorization: Bearer {t}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        req.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    req
}

/// One request to `addr` on a fresh connection, with `timeout` for connecting and for each
/// read and write. Errors (refused, reset, timed out) are returned, not test failures: for
/// tests that kill hookd while clients talk to it.
pub fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
    timeout: Duration,
) -> std::io::Result<Reply> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let req = encode_request(method, path, token, &[], body);
    s.write_all(req.as_bytes())?;
    try_read_reply_to(&mut s, method == "HEAD")
}

/// The key inside a `whsec_` secret.
pub fn parse_secret(s: &str) -> Vec<u8> {
    ::hookd::deliver::sign::parse_secret(s).expect("a whsec_ secret")
}

/// Standard Webhooks verification, by hookd's own signer module.
pub fn verify(key: &[u8], id: &str, ts: u64, body: &[u8], header: &str) -> bool {
    ::hookd::deliver::sign::verify(key, id, ts, body, header)
}
