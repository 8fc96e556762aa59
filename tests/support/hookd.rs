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
        let (child, addr) = spawn(&self.config, &self.env);
        self.child = Some(child);
        self.addr = addr;
    }

    /// Stops with SIGTERM and returns the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        // SAFETY: kill(2) with a pid we own and a valid signal number.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
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
        s.write_all(req.as_bytes()).expect("write");
        read_reply_to(&mut s, method == "HEAD")
    }

    pub fn admin(&self, method: &str, path: &str, body: Option<&str>) -> Reply {
        self.call(method, path, Some(ADMIN), body)
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
    let mut child = Command::new(env!("CARGO_BIN_EXE_hookd"))
        .args(["serve", "--config"])
        .arg(config)
        // Hermetic: a test runner started by systemd must not make hookd notify it.
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
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

/// Reads one response (Content-Length or until close).
pub fn read_reply(s: &mut TcpStream) -> Reply {
    read_reply_to(s, false)
}

/// Reads one response; the answer to a HEAD request has no body whatever its headers say.
pub fn read_reply_to(s: &mut TcpStream, no_body: bool) -> Reply {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut tmp).expect("read");
        assert!(
            n > 0,
            "connection closed before a response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    let len: Option<usize> = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map(|(_, v)| v.parse().unwrap());
    let mut body = buf[head_end..].to_vec();
    match len {
        _ if no_body => body.clear(),
        Some(len) => {
            while body.len() < len {
                let n = s.read(&mut tmp).expect("read body");
                assert!(n > 0, "closed inside the body");
                body.extend_from_slice(&tmp[..n]);
            }
            body.truncate(len);
        }
        None => {
            let _ = s.read_to_end(&mut body);
        }
    }
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// The key inside a `whsec_` secret.
pub fn parse_secret(s: &str) -> Vec<u8> {
    ::hookd::deliver::sign::parse_secret(s).expect("a whsec_ secret")
}

/// Standard Webhooks verification, by hookd's own signer module.
pub fn verify(key: &[u8], id: &str, ts: u64, body: &[u8], header: &str) -> bool {
    ::hookd::deliver::sign::verify(key, id, ts, body, header)
}
