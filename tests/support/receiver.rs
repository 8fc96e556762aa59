//! A real HTTP/1.1 webhook receiver for delivery tests: a `std` listener on 127.0.0.1:0, one
//! thread per connection, optionally TLS (an rcgen CA and a leaf for `localhost` and
//! `127.0.0.1`, served with rustls over `std::net::TcpStream`).
//!
//! What it answers is scripted: queued [`Reply`]s are used first, one per request, then the
//! handler closure (by default `200 ok`). A reply can carry any status and headers, a delay,
//! a chunked body, `connection: close`, a silent close after answering, raw bytes, or a
//! hang-up without any answer.
//!
//! What it saw is recorded: every request ([`Recorded`], headers lowercased), connections
//! accepted and closed, and the most requests in flight at once. Tests wait for a count with
//! [`Receiver::wait_for_requests`] / [`Receiver::wait_for_closed`] (a condvar with a timeout,
//! which fails the test), never with a sleep.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Longest request head the receiver reads.
const HEAD_BYTES_MAX: usize = 64 << 10;
/// Size of the chunks of a chunked reply body.
const CHUNK_BYTES: usize = 7;

/// One request as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Names lowercased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Which accepted connection (0, 1, ...) carried it.
    pub connection: usize,
    /// When its head arrived.
    pub at: Instant,
}

impl Recorded {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the receiver does with one request.
#[derive(Debug, Clone)]
pub struct Reply {
    what: What,
    delay: Duration,
    after: After,
}

#[derive(Debug, Clone)]
enum What {
    Answer {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        chunked: bool,
    },
    Raw(Vec<u8>),
    HangUp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    /// Keep the connection for the next request.
    KeepOpen,
    /// Answer with `connection: close`, then close.
    Close,
    /// Answer as if keeping the connection, then close it anyway.
    CloseSilently,
}

impl Reply {
    /// `200` with body `ok`.
    pub fn ok() -> Self {
        Self::status(200).body("ok")
    }

    /// `status` with an empty body, keep-alive.
    pub fn status(status: u16) -> Self {
        Self {
            what: What::Answer {
                status,
                headers: Vec::new(),
                body: Vec::new(),
                chunked: false,
            },
            delay: Duration::ZERO,
            after: After::KeepOpen,
        }
    }

    /// These bytes verbatim, then a silent close (unless [`Reply::keep_open`]).
    pub fn raw(bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            what: What::Raw(bytes.into()),
            delay: Duration::ZERO,
            after: After::CloseSilently,
        }
    }

    /// Read the request, then close the connection without a byte of answer.
    pub fn hang_up() -> Self {
        Self {
            what: What::HangUp,
            delay: Duration::ZERO,
            after: After::CloseSilently,
        }
    }

    /// Adds a response header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let What::Answer { headers, .. } = &mut self.what {
            headers.push((name.to_owned(), value.to_owned()));
        }
        self
    }

    /// Sets the response body.
    pub fn body(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        if let What::Answer { body, .. } = &mut self.what {
            *body = bytes.into();
        }
        self
    }

    /// Sends the body chunked (in 7-byte chunks) instead of with `content-length`.
    pub fn chunked(mut self) -> Self {
        if let What::Answer { chunked, .. } = &mut self.what {
            *chunked = true;
        }
        self
    }

    /// Waits this long before answering (cut short when the receiver is dropped).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Answers with `connection: close` and closes.
    pub fn close(mut self) -> Self {
        self.after = After::Close;
        self
    }

    /// Answers as if keeping the connection alive, then closes it.
    pub fn close_silently(mut self) -> Self {
        self.after = After::CloseSilently;
        self
    }

    /// Keeps the connection open after a raw reply.
    pub fn keep_open(mut self) -> Self {
        self.after = After::KeepOpen;
        self
    }
}

type Handler = dyn Fn(&Recorded) -> Reply + Send + Sync;

struct Shared {
    requests: Mutex<Vec<Recorded>>,
    /// Notified on every new request.
    arrived: Condvar,
    script: Mutex<VecDeque<Reply>>,
    handler: Box<Handler>,
    /// Whether `requests` keeps what arrives (see [`Builder::unrecorded`]).
    record: bool,
    accepted: AtomicUsize,
    closed: Mutex<usize>,
    /// Notified on every closed connection.
    closed_changed: Condvar,
    in_flight: AtomicUsize,
    in_flight_max: AtomicUsize,
    stopped: Mutex<bool>,
    stop_changed: Condvar,
    stopping: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running receiver; stops when dropped.
pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    tls: Option<Tls>,
    accept: Option<JoinHandle<()>>,
}

struct Tls {
    ca_pem: String,
    config: Arc<rustls::ServerConfig>,
}

/// How to start a [`Receiver`].
pub struct Builder {
    tls: bool,
    handler: Box<Handler>,
    /// Where to listen; `127.0.0.1:0` unless [`Builder::bind`] says otherwise.
    addr: SocketAddr,
    /// Whether requests are kept for [`Receiver::requests`].
    record: bool,
}

impl Builder {
    /// Serves HTTPS with a fresh test CA (see [`Receiver::ca_pem`]).
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Answers requests not covered by the script with `handler`.
    pub fn handler(mut self, handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Self {
        self.handler = Box::new(handler);
        self
    }

    /// Listens on `addr` instead of a fresh port on 127.0.0.1, for example to come back on
    /// the port of a receiver that was dropped (a receiver that is down refuses connections).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Keeps no requests: [`Receiver::requests`] stays empty and
    /// [`Receiver::wait_for_requests`] cannot be used. For long runs whose handler keeps
    /// what it needs.
    pub fn unrecorded(mut self) -> Self {
        self.record = false;
        self
    }

    pub fn start(self) -> Receiver {
        let addr = self.addr;
        self.try_start()
            .unwrap_or_else(|e| panic!("bind {addr}: {e}"))
    }

    /// [`Builder::start`], returning the error if the address cannot be bound.
    pub fn try_start(self) -> io::Result<Receiver> {
        let listener = TcpListener::bind(self.addr)?;
        let addr = listener.local_addr()?;
        let tls = self.tls.then(make_tls);
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
            script: Mutex::new(VecDeque::new()),
            handler: self.handler,
            record: self.record,
            accepted: AtomicUsize::new(0),
            closed: Mutex::new(0),
            closed_changed: Condvar::new(),
            in_flight: AtomicUsize::new(0),
            in_flight_max: AtomicUsize::new(0),
            stopped: Mutex::new(false),
            stop_changed: Condvar::new(),
            stopping: AtomicBool::new(false),
        });
        let config = tls.as_ref().map(|t| t.config.clone());
        let accept = {
            let shared = shared.clone();
            thread::Builder::new()
                .name("receiver-accept".into())
                .spawn(move || accept_loop(listener, shared, config))
                .expect("spawn accept thread")
        };
        Ok(Receiver {
            addr,
            shared,
            tls,
            accept: Some(accept),
        })
    }
}

impl Receiver {
    /// A receiver that answers `status` with `body` until the flag it returns is set, then 200.
    pub fn failing_until_healed(status: u16, body: &'static str) -> (Self, Arc<AtomicBool>) {
        let healed = Arc::new(AtomicBool::new(false));
        let flag = healed.clone();
        let rx = Self::builder()
            .handler(move |_| {
                if flag.load(Ordering::SeqCst) {
                    Reply::ok()
                } else {
                    Reply::status(status).body(body)
                }
            })
            .start();
        (rx, healed)
    }

    /// A plain HTTP receiver answering `200 ok`.
    pub fn start() -> Self {
        Self::builder().start()
    }

    pub fn builder() -> Builder {
        Builder {
            tls: false,
            handler: Box::new(|_| Reply::ok()),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            record: true,
        }
    }

    /// Queues replies for the next requests, in order, ahead of the handler.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        lock(&self.shared.script).extend(replies);
    }

    /// `http(s)://127.0.0.1:{port}{path}`.
    pub fn url(&self, path: &str) -> String {
        self.url_with_host("127.0.0.1", path)
    }

    /// The URL of `path` with another host name for this receiver (such as `localhost`).
    pub fn url_with_host(&self, host: &str, path: &str) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{host}:{}{path}", self.addr.port())
    }

    /// The PEM of the CA that signed the TLS certificate (TLS receivers only).
    pub fn ca_pem(&self) -> &str {
        &self.tls.as_ref().expect("a TLS receiver").ca_pem
    }

    /// Writes [`Receiver::ca_pem`] to `dir/ca.pem` and returns the path.
    pub fn write_ca_file(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, self.ca_pem()).expect("write ca.pem");
        path
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.requests).clone()
    }

    /// Waits until at least `n` requests have arrived, failing the test after `within`.
    #[track_caller]
    pub fn wait_for_requests(&self, n: usize, within: Duration) -> Vec<Recorded> {
        let guard = lock(&self.shared.requests);
        let (guard, _) = self
            .shared
            .arrived
            .wait_timeout_while(guard, within, |r| r.len() < n)
            .unwrap_or_else(|e| e.into_inner());
        assert!(
            guard.len() >= n,
            "expected {n} requests within {within:?}, got {}",
            guard.len()
        );
        guard.clone()
    }

    /// Waits until at least `n` connections have been closed by the receiver or the client,
    /// failing the test after `within`.
    #[track_caller]
    pub fn wait_for_closed(&self, n: usize, within: Duration) {
        let guard = lock(&self.shared.closed);
        let (guard, _) = self
            .shared
            .closed_changed
            .wait_timeout_while(guard, within, |c| *c < n)
            .unwrap_or_else(|e| e.into_inner());
        assert!(
            *guard >= n,
            "expected {n} closed connections within {within:?}, got {}",
            *guard
        );
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// The most requests that were being answered at once.
    pub fn in_flight_max(&self) -> usize {
        self.shared.in_flight_max.load(Ordering::SeqCst)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        *lock(&self.shared.stopped) = true;
        self.shared.stop_changed.notify_all();
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

/// A test CA and a leaf it signed for `localhost` and `127.0.0.1`: the CA certificate, the
/// leaf certificate and the leaf's private key, as PEM.
pub fn test_pki() -> (String, String, String) {
    let (ca, leaf, key) = make_pki();
    (ca.pem(), leaf.pem(), key.serialize_pem())
}

fn make_tls() -> Tls {
    hookd::http::tls::install_crypto_provider();
    let (ca, leaf, leaf_key) = make_pki();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .expect("server config");
    Tls {
        ca_pem: ca.pem(),
        config: Arc::new(config),
    }
}

fn make_pki() -> (rcgen::Certificate, rcgen::Certificate, rcgen::KeyPair) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "hookd test CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca_key = rcgen::KeyPair::generate().expect("ca key");
    let ca = ca_params.self_signed(&ca_key).expect("ca cert");

    let leaf_params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("leaf params");
    let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
    let leaf = leaf_params
        .signed_by(&leaf_key, &ca, &ca_key)
        .expect("leaf cert");
    (ca, leaf, leaf_key)
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>, tls: Option<Arc<rustls::ServerConfig>>) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let index = shared.accepted.fetch_add(1, Ordering::SeqCst);
        let shared = shared.clone();
        let tls = tls.clone();
        let _ = thread::Builder::new()
            .name(format!("receiver-conn-{index}"))
            .spawn(move || {
                let _ = stream.set_nodelay(true);
                match tls {
                    None => serve(stream, index, &shared),
                    Some(config) => {
                        if let Ok(conn) = rustls::ServerConnection::new(config) {
                            serve(rustls::StreamOwned::new(conn, stream), index, &shared);
                        }
                    }
                }
                *lock(&shared.closed) += 1;
                shared.closed_changed.notify_all();
            });
    }
}

/// Serves requests on one connection until either side closes it.
fn serve<S: Read + Write + Close>(mut stream: S, connection: usize, shared: &Shared) {
    let mut buf = Vec::new();
    loop {
        let request = match read_request(&mut stream, &mut buf, connection) {
            Ok(Some(request)) => request,
            Ok(None) | Err(_) => return,
        };
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.in_flight_max.fetch_max(now, Ordering::SeqCst);
        let reply = lock(&shared.script).pop_front();
        let reply = reply.unwrap_or_else(|| (shared.handler)(&request));
        if shared.record {
            lock(&shared.requests).push(request);
        }
        shared.arrived.notify_all();

        if !reply.delay.is_zero() {
            let deadline = Instant::now() + reply.delay;
            let mut stopped = lock(&shared.stopped);
            while !*stopped {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                stopped = shared
                    .stop_changed
                    .wait_timeout(stopped, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
        // Counted out before the answer goes: once it is written the client may send its next
        // request, on another connection, before this thread would get here again (under load
        // that once counted one request too many as side by side).
        shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        let written = match &reply.what {
            What::HangUp => Ok(()),
            What::Raw(bytes) => stream.write_all(bytes).and_then(|()| stream.flush()),
            What::Answer {
                status,
                headers,
                body,
                chunked,
            } => {
                let bytes = encode(
                    *status,
                    headers,
                    body,
                    *chunked,
                    reply.after == After::Close,
                );
                stream.write_all(&bytes).and_then(|()| stream.flush())
            }
        };
        if written.is_err() || reply.after != After::KeepOpen || matches!(reply.what, What::HangUp)
        {
            stream.close();
            return;
        }
    }
}

fn encode(
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    chunked: bool,
    close: bool,
) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} Test\r\n").into_bytes();
    for (name, value) in headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    if chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
        for chunk in body.chunks(CHUNK_BYTES) {
            out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            out.extend_from_slice(chunk);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
    } else {
        out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
        out.extend_from_slice(body);
    }
    out
}

/// Reads one request (head and `content-length` body); `None` on a clean close between
/// requests. `buf` carries bytes read past the previous request.
fn read_request<S: Read>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    connection: usize,
) -> io::Result<Option<Recorded>> {
    let mut chunk = [0u8; 8192];
    let (mut request, head_len) = loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        if let httparse::Status::Complete(n) = req
            .parse(buf)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?
        {
            let recorded = Recorded {
                method: req.method.unwrap_or_default().to_owned(),
                path: req.path.unwrap_or_default().to_owned(),
                headers: req
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect(),
                body: Vec::new(),
                connection,
                at: Instant::now(),
            };
            break (recorded, n);
        }
        if buf.len() > HEAD_BYTES_MAX {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "head too large"));
        }
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let length: usize = request
        .header("content-length")
        .map(|v| v.trim().parse().expect("numeric content-length"))
        .unwrap_or(0);
    buf.drain(..head_len);
    while buf.len() < length {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    request.body = buf.drain(..length).collect();
    Ok(Some(request))
}

/// Closing a connection: TLS says `close_notify` first.
trait Close {
    fn close(&mut self);
}

impl Close for TcpStream {
    fn close(&mut self) {
        let _ = self.shutdown(Shutdown::Both);
    }
}

impl Close for rustls::StreamOwned<rustls::ServerConnection, TcpStream> {
    fn close(&mut self) {
        self.conn.send_close_notify();
        let _ = self.conn.complete_io(&mut self.sock);
        let _ = self.sock.shutdown(Shutdown::Both);
    }
}
