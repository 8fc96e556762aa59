//! Hostile webhook receivers against the real binary: every byte a receiver sends is input.
//!
//! Each receiver below is a real TCP server on loopback that reads hookd's request and then
//! answers with something broken, huge, endless, slow or silent. hookd must stay up: every
//! hostile attempt is recorded as a failed attempt with a reason, a healthy endpoint beside
//! them gets every message, the redirect is not followed, no thread panics
//! (`hookd_panics_total` stays 0 and the log has no panic), and afterwards both shards still
//! take 200 messages over fresh connections.

#[path = "support/hookd.rs"]
mod hookd;
#[path = "support/receiver.rs"]
mod receiver;

use std::{
    collections::HashSet,
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use hookd::Hookd;
use receiver::Receiver;
use serde_json::{json, Value};

const CONFIG: &str = r#"
[delivery]
retry_schedule = ["300ms"]
timeout = "2s"
connect_timeout = "1s"
allow_private_networks = true
"#;

/// How long any wait of this test may take.
const WAIT: Duration = Duration::from_secs(60);
/// The longest a hostile receiver keeps a connection busy (endless bodies, drips, silence).
const HOLD_MAX: Duration = Duration::from_secs(20);
/// Messages sent to the hostile endpoints.
const HOSTILE_MESSAGES: usize = 3;

/// What a hostile receiver does once it has read a request: it writes to the stream until
/// it is done, `stop` is set, or a write fails (hookd hung up).
type Behaviour = fn(&mut TcpStream, &AtomicBool) -> std::io::Result<()>;

/// A hostile receiver: a listener thread, a thread per connection.
struct Hostile {
    name: &'static str,
    url: String,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Hostile {
    fn start(name: &'static str, behave: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/{name}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (requests.clone(), stop.clone());
        let accept = std::thread::spawn(move || {
            while !s.load(Ordering::Acquire) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        let (r, s) = (r.clone(), s.clone());
                        std::thread::spawn(move || {
                            conn.set_nonblocking(false).unwrap();
                            conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                            conn.set_write_timeout(Some(Duration::from_secs(5)))
                                .unwrap();
                            while read_request(&mut conn).is_ok() {
                                r.fetch_add(1, Ordering::AcqRel);
                                if behave(&mut conn, &s).is_err() {
                                    break;
                                }
                            }
                        });
                    }
                    // Polled so that the thread ends when the test drops the receiver.
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            name,
            url,
            requests,
            stop,
            accept: Some(accept),
        }
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request head and its `content-length` body.
fn read_request(conn: &mut TcpStream) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.push(byte[0]);
        if buf.len() > 64 << 10 {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body)
}

/// Writes `bytes`, then keeps the connection open until hookd closes it or the hold ends.
fn answer_and_hold(conn: &mut TcpStream, bytes: &[u8], stop: &AtomicBool) -> std::io::Result<()> {
    conn.write_all(bytes)?;
    hold(conn, stop)
}

/// Keeps the connection open, silent, until hookd closes it, `stop`, or [`HOLD_MAX`].
fn hold(conn: &mut TcpStream, stop: &AtomicBool) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_millis(50)))?;
    let started = Instant::now();
    let mut sink = [0u8; 4096];
    while !stop.load(Ordering::Acquire) && started.elapsed() < HOLD_MAX {
        match conn.read(&mut sink) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
    }
    // One answer per connection: hookd must not reuse it.
    Err(std::io::ErrorKind::ConnectionAborted.into())
}

/// Writes `bytes` and closes.
fn answer_and_close(conn: &mut TcpStream, bytes: &[u8]) -> std::io::Result<()> {
    conn.write_all(bytes)?;
    Err(std::io::ErrorKind::ConnectionAborted.into())
}

fn retry_after(value: &str) -> Vec<u8> {
    let mut v = b"HTTP/1.1 429 Too Many Requests\r\nretry-after: ".to_vec();
    v.extend_from_slice(value.as_bytes());
    v.extend_from_slice(b"\r\ncontent-length: 4\r\n\r\nslow");
    v
}

/// Every hostile receiver of the issue, by name.
fn hostiles() -> Vec<Hostile> {
    let list: Vec<(&'static str, Behaviour)> = vec![
        ("retry-after-non-ascii", |c, s| {
            answer_and_hold(c, &retry_after("Sun,\u{e9}6 Nov 1994 08:49:37 GMT"), s)
        }),
        ("retry-after-overflow", |c, s| {
            answer_and_hold(c, &retry_after("99999999999999999999999999999"), s)
        }),
        ("retry-after-negative", |c, s| {
            answer_and_hold(c, &retry_after("-120"), s)
        }),
        ("retry-after-year-9999", |c, s| {
            answer_and_hold(c, &retry_after("Fri, 31 Dec 9999 23:59:59 GMT"), s)
        }),
        ("retry-after-1970", |c, s| {
            answer_and_hold(c, &retry_after("Thu, 01 Jan 1970 00:00:00 GMT"), s)
        }),
        ("retry-after-overlong", |c, s| {
            answer_and_hold(c, &retry_after(&"\u{e9}".repeat(4000)), s)
        }),
        ("header-4mib", |c, _| {
            let mut v = b"HTTP/1.1 200 OK\r\nx-big: ".to_vec();
            v.resize(v.len() + (4 << 20), b'a');
            v.extend_from_slice(b"\r\ncontent-length: 0\r\n\r\n");
            answer_and_close(c, &v)
        }),
        ("headers-20000", |c, _| {
            let mut v = b"HTTP/1.1 200 OK\r\n".to_vec();
            for i in 0..20_000 {
                v.extend_from_slice(format!("x-h{i}: v\r\n").as_bytes());
            }
            v.extend_from_slice(b"content-length: 0\r\n\r\n");
            answer_and_close(c, &v)
        }),
        ("header-nul", |c, s| {
            answer_and_hold(
                c,
                b"HTTP/1.1 200 OK\r\nx-a: a\0b\r\ncontent-length: 0\r\n\r\n",
                s,
            )
        }),
        ("header-obs-fold", |c, s| {
            answer_and_hold(
                c,
                b"HTTP/1.1 200 OK\r\nx-a: a\r\n  folded\r\ncontent-length: 0\r\n\r\n",
                s,
            )
        }),
        ("chunked-endless", |c, s| {
            c.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")?;
            let chunk = [b"1000\r\n".as_slice(), &[b'z'; 4096], b"\r\n"].concat();
            let started = Instant::now();
            while !s.load(Ordering::Acquire) && started.elapsed() < HOLD_MAX {
                c.write_all(&chunk)?;
            }
            Err(std::io::ErrorKind::ConnectionAborted.into())
        }),
        ("chunk-size-22-hex-digits", |c, s| {
            answer_and_hold(
                c,
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nffffffffffffffffffffff\r\nabc\r\n",
                s,
            )
        }),
        ("chunk-bad-syntax", |c, s| {
            answer_and_hold(
                c,
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz;;\r\nabc\r\n0\r\n\r\n",
                s,
            )
        }),
        ("content-length-negative", |c, s| {
            answer_and_hold(c, b"HTTP/1.1 200 OK\r\ncontent-length: -5\r\n\r\nabc", s)
        }),
        ("content-length-conflicting", |c, s| {
            answer_and_hold(
                c,
                b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd",
                s,
            )
        }),
        ("body-shorter-than-length", |c, _| {
            answer_and_close(
                c,
                b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this",
            )
        }),
        ("status-2x0", |c, s| {
            answer_and_hold(c, b"HTTP/1.1 2x0 OK\r\ncontent-length: 0\r\n\r\n", s)
        }),
        ("status-999", |c, s| {
            answer_and_hold(c, b"HTTP/1.1 999 Whatever\r\ncontent-length: 0\r\n\r\n", s)
        }),
        ("status-100-then-silence", |c, s| {
            answer_and_hold(c, b"HTTP/1.1 100 Continue\r\n\r\n", s)
        }),
        ("status-101", |c, s| {
            answer_and_hold(
                c,
                b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n",
                s,
            )
        }),
        ("no-status-line", |c, s| {
            answer_and_hold(c, b"content-length: 0\r\nx-a: b\r\n\r\n", s)
        }),
        ("binary-garbage", |c, _| {
            let garbage: Vec<u8> = (0..4096u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect();
            answer_and_close(c, &garbage)
        }),
        ("one-byte-every-250ms", |c, s| {
            let started = Instant::now();
            for b in b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
                .iter()
                .cycle()
            {
                if s.load(Ordering::Acquire) || started.elapsed() > HOLD_MAX {
                    break;
                }
                c.write_all(&[*b])?;
                std::thread::sleep(Duration::from_millis(250));
            }
            Err(std::io::ErrorKind::ConnectionAborted.into())
        }),
        ("silence", hold),
    ];
    list.into_iter()
        .map(|(name, behave)| Hostile::start(name, behave))
        .collect()
}

fn send(h: &Hookd, event_type: &str, n: usize) -> String {
    let body = json!({"eventType": event_type, "payload": {"n": n}});
    let r = h.admin("POST", "/api/v1/app/shop/msg", Some(&body.to_string()));
    assert_eq!(r.status, 202, "{}", r.body);
    r.json()["id"].as_str().unwrap().to_owned()
}

/// The attempts made to endpoint `ep`, newest first.
fn attempts(h: &Hookd, ep: &str) -> Vec<Value> {
    let r = h.admin(
        "GET",
        &format!("/api/v1/app/shop/attempt/endpoint/{ep}?limit=250"),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["data"].as_array().unwrap().clone()
}

#[test]
fn hostile_receivers_cannot_hurt_hookd_or_the_other_endpoints() {
    let mut h = Hookd::start_logged(CONFIG);
    h.create("/api/v1/app", json!({"name": "Shop", "uid": "shop"}));
    for name in ["hostile.test", "bulk.test"] {
        h.create(
            "/api/v1/event-type",
            json!({"name": name, "description": "d"}),
        );
    }
    // The redirect points at a receiver that must never be asked anything.
    let target = Receiver::start();
    let redirect_to = target.url("/stolen");
    let mut hostile = hostiles();
    let redirect_body = format!(
        "HTTP/1.1 307 Temporary Redirect\r\nlocation: {redirect_to}\r\ncontent-length: 0\r\n\r\n"
    );
    // `Behaviour` is a plain fn: the redirect's address is passed through a static.
    REDIRECT.set(redirect_body).unwrap();
    hostile.push(Hostile::start("redirect-307", |c, s| {
        answer_and_hold(c, REDIRECT.get().unwrap().as_bytes(), s)
    }));
    let healthy = Receiver::start();
    let healthy_ep = h.create(
        "/api/v1/app/shop/endpoint",
        json!({"url": healthy.url("/ok")}),
    );
    let mut hostile_eps = Vec::new();
    for x in &hostile {
        let ep = h.create(
            "/api/v1/app/shop/endpoint",
            json!({"url": x.url, "filterTypes": ["hostile.test"]}),
        );
        hostile_eps.push((x, ep["id"].as_str().unwrap().to_owned()));
    }

    let mut sent: HashSet<String> = (0..HOSTILE_MESSAGES)
        .map(|n| send(&h, "hostile.test", n))
        .collect();

    // Every hostile endpoint: each message attempted, each attempt failed with a reason.
    let deadline = Instant::now() + WAIT;
    for (x, ep) in &hostile_eps {
        let failed = loop {
            let all = attempts(&h, ep);
            let done: Vec<&Value> = all.iter().filter(|a| a["status"] != 3).collect();
            let msgs: HashSet<&str> = done.iter().filter_map(|a| a["msgId"].as_str()).collect();
            if msgs.len() == HOSTILE_MESSAGES {
                break all;
            }
            assert!(
                Instant::now() < deadline,
                "{}: attempts of {} messages after {WAIT:?}: {all:?}",
                x.name,
                msgs.len()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        // Pipelined requests behind a broken answer may never be read: at least one was.
        assert!(x.requests.load(Ordering::Acquire) >= 1, "{}", x.name);
        for a in failed.iter().filter(|a| a["status"] != 3) {
            assert_eq!(
                a["status"], 2,
                "{}: an attempt that did not fail: {a}",
                x.name
            );
            let code = a["responseStatusCode"].as_i64().unwrap();
            let reason = a["response"].as_str().unwrap();
            assert!(!(200..300).contains(&code), "{}: {a}", x.name);
            assert!(
                code != 0 || !reason.is_empty(),
                "{}: a failure without a reason: {a}",
                x.name
            );
        }
    }
    assert!(target.requests().is_empty(), "the redirect was followed");

    // Both shards still ingest: 200 messages over fresh connections, all 202.
    for n in 0..200 {
        sent.insert(send(&h, "bulk.test", n));
    }
    // The healthy endpoint got every message, hostile or not.
    let got = healthy.wait_for_requests(sent.len(), WAIT);
    let ids: HashSet<String> = got
        .iter()
        .filter_map(|r| r.header("webhook-id").map(str::to_owned))
        .collect();
    assert_eq!(ids, sent);
    let healthy_attempts = attempts(&h, healthy_ep["id"].as_str().unwrap());
    assert!(healthy_attempts.iter().all(|a| a["status"] == 0));

    assert!(h.try_wait().is_none(), "hookd exited");
    assert_eq!(h.call("GET", "/api/v1/health", None, None).status, 204);
    assert_eq!(h.metric("hookd_panics_total"), 0.0);
    assert_eq!(h.metric("hookd_unhealthy_parts"), 0.0);
    let log = h.log();
    assert!(!log.contains("panic"), "a thread panicked:\n{log}");
    drop(hostile);
}

static REDIRECT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
