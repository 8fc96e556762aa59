//! The outgoing HTTP/1.1 client of delivery: one `POST` per attempt, over monoio TCP or
//! rustls (monoio-rustls), with a keep-alive pool, name resolution off the shard, the SSRF
//! guard on every address dialled, and every wait bounded.
//!
//! **One per shard.** A [`Client`] is not `Send`: its pool and name cache are shard-local
//! (`RefCell`, never borrowed across an `.await`). The [`Resolver`] threads are shared by all
//! shards.
//!
//! **An attempt** ([`Client::post`]):
//! 1. The request is encoded whole: `POST {path} HTTP/1.1`, `host`, `content-length`,
//!    `connection: keep-alive`, then the caller's headers (any `host`, `content-length`,
//!    `transfer-encoding` or `connection` among them is dropped: the client owns framing;
//!    a header with CR, LF or NUL is refused before anything is sent), then the body.
//! 2. An idle pooled connection to the same (scheme, host, port) is taken if there is one
//!    that has been idle less than [`POOL_IDLE_MAX`] and whose socket shows no EOF or stray
//!    bytes (a non-blocking `MSG_PEEK`). If writing the request or reading the first
//!    response byte fails on it anyway (the peer closed it meanwhile), the request is sent
//!    once more on a fresh connection. Once any response byte has arrived it is never resent.
//! 3. Otherwise the host is resolved (IP literals skip this; names go to the [`Resolver`]
//!    and a per-shard cache of [`DNS_TTL`]), every address is checked with
//!    [`ssrf::check`] unless `allow_private_networks`, and the allowed ones are dialled in
//!    order until one connects; if every address is refused the attempt fails with
//!    [`ClientError::Refused`] and nothing is dialled. Then the TLS handshake, for `https`.
//! 4. The response head is read (at most [`HEAD_BYTES_MAX`]) and parsed with httparse;
//!    `1xx` heads are skipped; 3xx are returned like any status (redirects are never
//!    followed). The body is framed by `Transfer-Encoding: chunked` (decoded), by
//!    `Content-Length`, or by the close of the connection. Its first `response_bytes_max`
//!    bytes are kept; the rest is read and dropped, up to [`DRAIN_BYTES_MAX`], so that the
//!    connection can be reused. A response counts only whole: a body cut short (closed
//!    early, a read error, the deadline), badly framed (chunk syntax, a chunk size that
//!    overflows) or longer than those bounds fails the attempt, whatever its status, and
//!    the connection is closed. A webhook is delivered at least once, so the retry that
//!    follows is allowed; taking a half-read `200` as delivered would not be.
//! 5. The connection goes back to the pool only when the server allowed keep-alive, the
//!    whole body was read, nothing followed it, and no operation on it timed out.
//!
//! **Every byte of the answer is untrusted**: the head is parsed by httparse (bounded by
//! [`HEAD_BYTES_MAX`] and [`HEADERS_MAX`]), numbers with checked parsing, chunk sizes by
//! the server's own bounded decoder, `Retry-After` kept as at most 128 bytes cut at a
//! character boundary and parsed by `policy::parse_retry_after` (httpdate). The
//! `response_parse` fuzz target feeds arbitrary answers through this code.
//!
//! **Turns.** Before step 2, a request waits for a turn at its (scheme, host, port): at most
//! `in_flight_per_host_max` requests of a shard are in flight to one receiver (`hosts`).
//! The wait is bounded by `timeout` on its own; a request that gets no turn in that time
//! fails unsent with [`ClientError::HostBusy`].
//!
//! **Timeouts.** Resolution, TCP connect and TLS handshake together are bounded by
//! `connect_timeout` (the addresses of a name share it); the whole attempt from its turn,
//! connect included, by `timeout`, which gives [`ClientError::Timeout`]. A connect phase that runs
//! out of `connect_timeout` first is a [`ClientError::Connect`] (or `Resolve`, `Tls`) that
//! says it timed out. A stream whose read or write timed out is dropped at once, never
//! reused or touched again (monoio-rustls streams panic when used after a cancelled
//! operation).
//!
//! The shard's runtime must have its timer enabled (`RuntimeBuilder::enable_timer`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use monoio::buf::{IoBufMut, SliceMut};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt, OwnedReadHalf};
use monoio::net::TcpStream;
use monoio::time::{timeout_at, Instant};
use monoio::BufResult;
use monoio_rustls::{ClientTlsStream, TlsConnector};
use rustls::pki_types::ServerName;
use thiserror::Error;

use super::hosts::HostGate;
use super::pipeline::{Answer as PipeAnswer, Pipe};
use super::response::{parse_head, BodyReader, Framing, Head};
use crate::config::DeliveryConfig;
use crate::model::ssrf;
use crate::model::url::Url;
pub(super) use futures_channel::oneshot;

/// The most bytes of a response head (status line and headers, of one response; `1xx`
/// heads count separately).
pub const HEAD_BYTES_MAX: usize = 16 << 10;
/// The most body bytes read and dropped beyond those kept, to make a connection reusable;
/// a longer body closes the connection instead.
pub const DRAIN_BYTES_MAX: usize = 1 << 20;
/// Idle connections kept per (scheme, host, port), at least: up to
/// `in_flight_per_host_max` are kept when that is higher (within [`POOL_TOTAL_MAX`]).
pub const POOL_PER_KEY_MAX: usize = 8;
/// Idle connections kept per client (per shard).
pub const POOL_TOTAL_MAX: usize = 256;
/// An idle connection older than this is closed instead of reused: servers close idle
/// connections after a while, and reusing one at that moment costs a resend.
pub const POOL_IDLE_MAX: Duration = Duration::from_secs(20);
/// How long a resolved name is reused.
pub const DNS_TTL: Duration = Duration::from_secs(30);
/// Names cached per client.
pub const DNS_CACHE_MAX: usize = 1024;
/// Lookups waiting for a resolver thread; beyond this a lookup fails at once.
pub const RESOLVER_QUEUE_MAX: usize = 1024;
/// Initial capacity of a connection's read buffer.
const READ_BUF_INITIAL: usize = 8 << 10;
/// Below this much free room the read buffer is compacted or grown.
const READ_ROOM_MIN: usize = 1 << 10;
/// The read buffer's cap: one head plus room to read.
const READ_BUF_MAX: usize = HEAD_BYTES_MAX + READ_BUF_INITIAL;
/// A read buffer grown past this is shrunk before its connection goes idle.
const READ_BUF_RETAIN: usize = 2 * READ_BUF_INITIAL;

const _: () = assert!(READ_ROOM_MIN <= READ_BUF_INITIAL && READ_BUF_INITIAL <= READ_BUF_MAX);
const _: () = assert!(POOL_PER_KEY_MAX <= POOL_TOTAL_MAX);

/// Why an attempt got no response. Expected outcomes of delivery, not bugs.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClientError {
    /// The SSRF guard refused every address of the endpoint; the sentence says which and why.
    #[error("{0}")]
    Refused(String),
    /// The host name could not be resolved.
    #[error("name resolution failed: {0}")]
    Resolve(String),
    /// No TCP connection could be made.
    #[error("connection failed: {0}")]
    Connect(String),
    /// The TLS handshake failed (untrusted or mismatched certificate, protocol error), or
    /// [`ClientConfig::from_config`] could not build the TLS configuration (`ca_file`).
    #[error("TLS failed: {0}")]
    Tls(String),
    /// The attempt did not finish within `delivery.timeout`.
    #[error("no response within delivery.timeout")]
    Timeout,
    /// The attempt waited all of `delivery.timeout` for its turn at a receiver that had
    /// `delivery.in_flight_per_host_max` requests of this shard in flight; nothing was sent.
    #[error("not sent: no turn within delivery.timeout ({0})")]
    HostBusy(String),
    /// The response was not valid HTTP/1.1 framing (or a request header could not be sent).
    #[error("invalid HTTP exchange: {0}")]
    Protocol(String),
    /// The connection failed while sending or receiving.
    #[error("I/O error: {0}")]
    Io(String),
}

impl ClientError {
    /// A short stable label of the kind of failure, for metrics and attempt records.
    pub fn outcome_class(&self) -> &'static str {
        match self {
            Self::Refused(_) => "refused",
            Self::Resolve(_) => "resolve",
            Self::Connect(_) => "connect",
            Self::Tls(_) => "tls",
            Self::Timeout => "timeout",
            Self::HostBusy(_) => "host_busy",
            Self::Protocol(_) => "protocol",
            Self::Io(_) => "io",
        }
    }
}

/// What the client needs from `[delivery]`.
#[derive(Clone)]
pub struct ClientConfig {
    /// Resolution, TCP connect and TLS handshake together; within `timeout`.
    pub connect_timeout: Duration,
    /// The whole attempt, connect included.
    pub timeout: Duration,
    /// Response body bytes kept.
    pub response_bytes_max: usize,
    /// Skip the SSRF guard.
    pub allow_private_networks: bool,
    /// Roots: webpki's, plus `delivery.ca_file`; ALPN `http/1.1`.
    pub tls: Arc<rustls::ClientConfig>,
    /// Requests outstanding at once on one plain-HTTP connection (1: no pipelining).
    pub pipeline_depth: usize,
    /// Requests in flight at once to one (scheme, host, port); the rest wait their turn.
    pub in_flight_per_host_max: usize,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .field("response_bytes_max", &self.response_bytes_max)
            .field("allow_private_networks", &self.allow_private_networks)
            .field("pipeline_depth", &self.pipeline_depth)
            .field("in_flight_per_host_max", &self.in_flight_per_host_max)
            .finish_non_exhaustive()
    }
}

impl ClientConfig {
    /// From the validated `[delivery]` section; reads `ca_file` when set. A problem with the
    /// CA file is a [`ClientError::Tls`] naming the file.
    pub fn from_config(delivery: &DeliveryConfig) -> Result<Self, ClientError> {
        Ok(Self {
            connect_timeout: delivery.connect_timeout,
            timeout: delivery.timeout,
            response_bytes_max: usize::try_from(delivery.response_bytes_max).unwrap_or(usize::MAX),
            allow_private_networks: delivery.allow_private_networks,
            tls: Arc::new(tls_config(delivery.ca_file.as_deref())?),
            pipeline_depth: delivery.pipeline_depth as usize,
            in_flight_per_host_max: delivery.in_flight_per_host_max as usize,
        })
    }
}

/// A rustls client config trusting the webpki roots and the certificates in `ca_file`.
pub fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, ClientError> {
    crate::http::tls::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let name = path.display();
        let pem = std::fs::read(path)
            .map_err(|e| ClientError::Tls(format!("cannot read delivery.ca_file {name}: {e}")))?;
        let certs = rustls_pemfile::certs(&mut pem.as_slice())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                ClientError::Tls(format!("delivery.ca_file {name} is not valid PEM: {e}"))
            })?;
        if certs.is_empty() {
            return Err(ClientError::Tls(format!(
                "delivery.ca_file {name} holds no PEM certificate"
            )));
        }
        for (i, cert) in certs.into_iter().enumerate() {
            roots.add(cert).map_err(|e| {
                ClientError::Tls(format!(
                    "certificate {} of delivery.ca_file {name} is not usable as a CA: {e}",
                    i + 1
                ))
            })?;
        }
    }
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// What came back from an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The final status (after any `1xx`); a 3xx is returned as is.
    pub status: u16,
    /// The `Retry-After` header, trimmed, at most 128 bytes, as sent (seconds or a date).
    pub retry_after: Option<String>,
    /// The first `response_bytes_max` bytes of the (de-chunked) body.
    pub body: Vec<u8>,
    /// From the request's turn at its host (see `hosts`) to the end of the response
    /// (connect included).
    pub duration: Duration,
}

/// The HTTP client of one shard.
pub struct Client {
    config: ClientConfig,
    connector: TlsConnector,
    resolver: Arc<Resolver>,
    pool: RefCell<Pool>,
    /// Turns per destination (`in_flight_per_host_max`).
    gate: HostGate<PoolKey>,
    dns: RefCell<DnsCache>,
    /// Pipelined connections per (host, port), and the servers not pipelined to, until when.
    pipes: RefCell<HashMap<PoolKey, Vec<Rc<Pipe>>>>,
    no_pipelining: RefCell<HashMap<PoolKey, Instant>>,
    /// Keys a pipe is being connected to, with the requests waiting for it.
    connecting: RefCell<HashMap<PoolKey, Vec<oneshot::Sender<()>>>>,
}

impl Client {
    /// A client resolving names through `resolver`.
    pub fn new(config: ClientConfig, resolver: Arc<Resolver>) -> Self {
        Self {
            connector: TlsConnector::from(config.tls.clone()),
            pool: RefCell::new(Pool::new(config.in_flight_per_host_max)),
            gate: HostGate::new(config.in_flight_per_host_max),
            config,
            resolver,
            dns: RefCell::new(DnsCache::default()),
            pipes: RefCell::default(),
            no_pipelining: RefCell::default(),
            connecting: RefCell::default(),
        }
    }

    /// The configuration this client runs with.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Idle pooled connections.
    pub fn idle_connections(&self) -> usize {
        self.pool.borrow().total
    }

    /// Sends `POST url` with `headers` and `body`; see the module doc for every step.
    pub async fn post(
        &self,
        url: &Url,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, ClientError> {
        let mut request = encode_request(url, headers, body)?;
        let key = PoolKey {
            https: url.https,
            host: url.host.clone(),
            port: url.port,
        };
        // The wait for a turn is hookd's own queue, not the receiver's time: it is bounded
        // by `timeout` on its own, and the attempt's `timeout` starts with the turn.
        let waited_until = deadline_after(Instant::now(), self.config.timeout);
        let Some(_turn) = self.gate.enter(&key, waited_until).await else {
            let (in_flight, waiting) = self.gate.load(&key);
            return Err(ClientError::HostBusy(format!(
                "{}:{} has {in_flight} requests of this shard in flight \
                 (delivery.in_flight_per_host_max) and {waiting} waiting",
                key.host, key.port
            )));
        };
        let started = Instant::now();
        let deadline = deadline_after(started, self.config.timeout);
        if !url.https && self.config.pipeline_depth > 1 && self.may_pipeline(&key, started) {
            return self
                .post_pipelined(url, key, request, started, deadline)
                .await;
        }
        let pooled = self.pool.borrow_mut().take(&key, started);
        if let Some(mut conn) = pooled {
            match self.exchange(&mut conn, request, deadline).await {
                Ok(exchanged) => return Ok(self.finish(key, conn, exchanged, started)),
                Err(failure) => match failure.resend {
                    // The pooled connection was dead before the server saw anything.
                    Some(returned) => request = returned,
                    None => return Err(failure.error),
                },
            }
        }
        let mut conn = self.connect(url, deadline).await?;
        match self.exchange(&mut conn, request, deadline).await {
            Ok(exchanged) => Ok(self.finish(key, conn, exchanged, started)),
            Err(failure) => Err(failure.error),
        }
    }

    /// Whether requests to `key` may be pipelined (none broke a pipeline lately).
    fn may_pipeline(&self, key: &PoolKey, now: Instant) -> bool {
        let mut off = self.no_pipelining.borrow_mut();
        match off.get(key) {
            Some(&until) if now < until => false,
            Some(_) => {
                off.remove(key);
                true
            }
            None => true,
        }
    }

    /// [`Client::post`] on a pipelined connection (see `pipeline`): the fullest open pipe to
    /// `key` with room, or a new one. A request the pipe could not answer is sent again on a
    /// connection of its own.
    async fn post_pipelined(
        &self,
        url: &Url,
        key: PoolKey,
        request: Vec<u8>,
        started: Instant,
        deadline: Instant,
    ) -> Result<Response, ClientError> {
        // Unanswered once (the server ended the connection, as servers may after any
        // response), the request goes on another pipe; twice, on a connection of its own.
        let mut unanswered = 0;
        while unanswered < 2 {
            if !self.may_pipeline(&key, Instant::now()) {
                break;
            }
            let pipe = match self.pick_pipe(&key) {
                Some(pipe) => pipe,
                None => match self.open_pipe(url, &key, deadline).await? {
                    Some(pipe) => pipe,
                    None => continue, // another request opened one meanwhile: look again
                },
            };
            let answer = pipe.send(&request, deadline).await;
            if let Some(off) = pipe.pipelining_off_for() {
                let until = Instant::now() + off;
                let mut no = self.no_pipelining.borrow_mut();
                if no.get(&key).is_none_or(|&u| u < until) {
                    tracing::debug!(host = %key.host, port = key.port, secs = off.as_secs(), "not pipelining to this server for a while (it answers slowly, or does not keep pipelined requests)");
                    no.insert(key.clone(), until);
                }
            }
            match answer {
                PipeAnswer::Response(exchanged) => {
                    return Ok(Response {
                        status: exchanged.status,
                        retry_after: exchanged.retry_after,
                        body: exchanged.body,
                        duration: Instant::now().saturating_duration_since(started),
                    })
                }
                PipeAnswer::Failed(error) => return Err(error),
                PipeAnswer::Unanswered => unanswered += 1,
            }
        }
        let mut conn = self.connect(url, deadline).await?;
        match self.exchange(&mut conn, request, deadline).await {
            Ok(exchanged) => Ok(self.finish(key, conn, exchanged, started)),
            Err(failure) => Err(failure.error),
        }
    }

    /// Connects a new pipe to `key`, unless another request is already connecting one: then
    /// waits for that (`None`: look for a pipe again), so that a burst of requests shares
    /// one connection instead of opening one each.
    async fn open_pipe(
        &self,
        url: &Url,
        key: &PoolKey,
        deadline: Instant,
    ) -> Result<Option<Rc<Pipe>>, ClientError> {
        let waiting = match self.connecting.borrow_mut().entry(key.clone()) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                let (tx, rx) = oneshot::channel::<()>();
                e.get_mut().push(tx);
                Some(rx)
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(Vec::new());
                None
            }
        };
        if let Some(rx) = waiting {
            return match timeout_at(deadline, rx).await {
                Ok(_) => Ok(None),
                Err(_) => Err(ClientError::Timeout),
            };
        }
        // Whatever comes of it (even if this future is dropped), those waiting look again,
        // and connect themselves if this failed.
        struct Done<'a>(&'a Client, &'a PoolKey);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.connecting.borrow_mut().remove(self.1);
            }
        }
        let done = Done(self, key);
        let connected = self.connect(url, deadline).await;
        drop(done);
        let pipe = Pipe::start(connected?, self.config.response_bytes_max, POOL_IDLE_MAX)
            .ok_or_else(|| ClientError::Io("pipelining needs a plain TCP connection".into()))?;
        self.pipes
            .borrow_mut()
            .entry(key.clone())
            .or_default()
            .push(pipe.clone());
        Ok(Some(pipe))
    }

    /// The open pipe to `key` with the most requests outstanding below the depth (so that
    /// requests share writes); closed pipes, and idle ones whose server has hung up, are
    /// dropped on the way.
    fn pick_pipe(&self, key: &PoolKey) -> Option<Rc<Pipe>> {
        let mut pipes = self.pipes.borrow_mut();
        let list = pipes.get_mut(key)?;
        let depth = self.config.pipeline_depth;
        let now = Instant::now();
        let best = loop {
            list.retain(|p| !p.is_closed());
            let Some(best) = list
                .iter()
                .filter(|p| p.has_room(depth, now))
                .max_by_key(|p| p.outstanding())
                .cloned()
            else {
                break None;
            };
            if best.outstanding() > 0 || best.looks_open() {
                break Some(best);
            }
            best.close();
        };
        if list.is_empty() {
            pipes.remove(key);
        }
        best
    }

    /// Pools the connection when it may be reused and builds the response.
    fn finish(&self, key: PoolKey, conn: Conn, exchanged: Exchanged, started: Instant) -> Response {
        let now = Instant::now();
        if exchanged.reusable && !exchanged.trailing {
            self.pool.borrow_mut().put(key, conn, now);
        }
        Response {
            status: exchanged.status,
            retry_after: exchanged.retry_after,
            body: exchanged.body,
            duration: now.saturating_duration_since(started),
        }
    }

    /// Resolves, checks, dials and (for https) handshakes, within `connect_timeout` and
    /// `deadline`.
    async fn connect(&self, url: &Url, deadline: Instant) -> Result<Conn, ClientError> {
        let begun = Instant::now();
        let phase_end = deadline_after(begun, self.config.connect_timeout).min(deadline);
        // Which error a timeout of the connect phase is: the attempt's own when its
        // deadline is the nearer one.
        let phase_timeout = |what: &str| -> Option<String> {
            (phase_end < deadline).then(|| {
                format!(
                    "{what} did not finish within delivery.connect_timeout ({} ms)",
                    self.config.connect_timeout.as_millis()
                )
            })
        };

        let ips = match self.resolve(&url.host, url.port, phase_end).await {
            Ok(ips) => ips,
            Err(None) => {
                let message = phase_timeout(&format!("resolving {}", url.host));
                return Err(message.map_or(ClientError::Timeout, ClientError::Resolve));
            }
            Err(Some(e)) => return Err(e),
        };
        let mut allowed = Vec::with_capacity(ips.len());
        let mut refused = None;
        for ip in ips {
            if !self.config.allow_private_networks {
                if let Some(why) = ssrf::refusal(&url.host, ip) {
                    refused.get_or_insert(why);
                    continue;
                }
            }
            allowed.push(SocketAddr::new(ip, url.port));
        }
        if allowed.is_empty() {
            let why = refused.unwrap_or_else(|| format!("{} has no address", url.host));
            return Err(ClientError::Refused(why));
        }

        let tcp = self.dial(&allowed, phase_end, &phase_timeout).await?;
        // Requests are written whole; Nagle would only delay them.
        let _ = tcp.set_nodelay(true);
        let fd = tcp.as_raw_fd();
        let stream = if url.https {
            let name = match url.ip() {
                Some(ip) => ServerName::IpAddress(ip.into()),
                None => ServerName::try_from(url.host.clone()).map_err(|e| {
                    ClientError::Tls(format!("{} is not a valid TLS server name: {e}", url.host))
                })?,
            };
            match timeout_at(phase_end, self.connector.connect(name, tcp)).await {
                Ok(Ok(tls)) => Stream::Tls(Box::new(tls)),
                Ok(Err(e)) => {
                    let detail = match e {
                        monoio_rustls::TlsError::Io(e) => e.to_string(),
                        monoio_rustls::TlsError::Rustls(e) => e.to_string(),
                    };
                    return Err(ClientError::Tls(format!(
                        "handshake with {} failed: {detail}",
                        url.host
                    )));
                }
                Err(_) => {
                    let message = phase_timeout("the TLS handshake");
                    return Err(message.map_or(ClientError::Timeout, ClientError::Tls));
                }
            }
        } else {
            Stream::Plain(tcp)
        };
        Ok(Conn {
            stream,
            fd,
            rbuf: Vec::with_capacity(READ_BUF_INITIAL),
            pos: 0,
        })
    }

    /// Connects to the first of `addrs` that accepts. Each address gets an equal share of
    /// what is left of the phase, so one black hole does not starve the others.
    async fn dial(
        &self,
        addrs: &[SocketAddr],
        phase_end: Instant,
        phase_timeout: &dyn Fn(&str) -> Option<String>,
    ) -> Result<TcpStream, ClientError> {
        let mut failures = Vec::new();
        for (i, &addr) in addrs.iter().enumerate() {
            let now = Instant::now();
            let left = phase_end.saturating_duration_since(now);
            let share = left / u32::try_from(addrs.len() - i).unwrap_or(u32::MAX);
            let until = deadline_after(now, share).min(phase_end);
            match timeout_at(until, TcpStream::connect_addr(addr)).await {
                Ok(Ok(tcp)) => return Ok(tcp),
                Ok(Err(e)) => failures.push(format!("{addr}: {e}")),
                Err(_) if until < phase_end => {
                    failures.push(format!("{addr}: timed out after {} ms", share.as_millis()))
                }
                Err(_) => {
                    let what = format!("connecting to {addr}");
                    return Err(match phase_timeout(&what) {
                        Some(message) if failures.is_empty() => ClientError::Connect(message),
                        Some(message) => {
                            ClientError::Connect(format!("{}; {message}", failures.join("; ")))
                        }
                        None => ClientError::Timeout,
                    });
                }
            }
        }
        Err(ClientError::Connect(failures.join("; ")))
    }

    /// The addresses of `host`: the literal itself, the cached answer, or a lookup on the
    /// resolver threads. `Err(None)`: `until` passed first.
    async fn resolve(
        &self,
        host: &str,
        port: u16,
        until: Instant,
    ) -> Result<Vec<IpAddr>, Option<ClientError>> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let now = Instant::now();
        if let Some(ips) = self.dns.borrow().get(host, now) {
            return Ok(ips);
        }
        let answer = self
            .resolver
            .lookup(host, port)
            .map_err(|e| Some(ClientError::Resolve(e)))?;
        match timeout_at(until, answer).await {
            Ok(Ok(Ok(ips))) if !ips.is_empty() => {
                self.dns.borrow_mut().put(host, ips.clone(), Instant::now());
                Ok(ips)
            }
            Ok(Ok(Ok(_))) => Err(Some(ClientError::Resolve(format!("{host} has no address")))),
            Ok(Ok(Err(e))) => Err(Some(ClientError::Resolve(e))),
            Ok(Err(_)) => Err(Some(ClientError::Resolve(
                "the resolver threads have stopped".to_owned(),
            ))),
            Err(_) => Err(None),
        }
    }

    /// Writes `request` and reads the response on `conn`.
    async fn exchange(
        &self,
        conn: &mut Conn,
        request: Vec<u8>,
        deadline: Instant,
    ) -> Result<Exchanged, Failure> {
        let sent = match timeout_at(deadline, conn.stream.write_all(request)).await {
            Ok((Ok(_), sent)) => sent,
            Ok((Err(e), request)) => {
                return Err(Failure::before_response(
                    ClientError::Io(format!("sending the request: {e}")),
                    request,
                ))
            }
            Err(_) => return Err(Failure::fatal(ClientError::Timeout)),
        };
        let mut request = Some(sent);
        conn.read_response(deadline, &mut request, self.config.response_bytes_max)
            .await
    }
}

/// A response read off a connection.
pub(super) struct Exchanged {
    pub(super) status: u16,
    pub(super) retry_after: Option<String>,
    pub(super) body: Vec<u8>,
    /// The server keeps the connection open and the whole body was read.
    pub(super) reusable: bool,
    /// Bytes followed the response (a stray answer, or the next one when pipelining).
    pub(super) trailing: bool,
}

/// A failed exchange.
pub(super) struct Failure {
    pub(super) error: ClientError,
    /// Set when the server cannot have answered anything yet and the stream failed without
    /// a timeout: the request, given back for a resend on a fresh connection.
    pub(super) resend: Option<Vec<u8>>,
}

impl Failure {
    fn fatal(error: ClientError) -> Self {
        Self {
            error,
            resend: None,
        }
    }

    fn before_response(error: ClientError, request: Vec<u8>) -> Self {
        Self {
            error,
            resend: Some(request),
        }
    }
}

/// Whether the idle socket `fd` has neither EOF nor bytes waiting (an idle HTTP connection
/// has nothing to say; a TLS alert or stray bytes mean it is done). `fd` must be a socket
/// its caller keeps open for the call.
pub(super) fn socket_looks_open(fd: RawFd) -> bool {
    let mut byte = 0u8;
    // SAFETY: the caller keeps `fd` open during the call; the buffer is one writable byte
    // that outlives the call, which does not block.
    let n = unsafe {
        libc::recv(
            fd,
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock
}

/// A connection's byte stream.
pub(super) enum Stream {
    Plain(TcpStream),
    Tls(Box<ClientTlsStream<TcpStream>>),
    /// The reading half of a pipelined connection (see `pipeline`): never written to.
    ReadHalf(OwnedReadHalf<TcpStream>),
}

impl Stream {
    async fn write_all(&mut self, buf: Vec<u8>) -> BufResult<usize, Vec<u8>> {
        match self {
            Self::Plain(s) => s.write_all(buf).await,
            Self::Tls(s) => s.write_all(buf).await,
            Self::ReadHalf(_) => (
                Err(io::Error::other("a pipelined connection's reading half")),
                buf,
            ),
        }
    }

    async fn read(&mut self, buf: SliceMut<Vec<u8>>) -> BufResult<usize, SliceMut<Vec<u8>>> {
        match self {
            Self::Plain(s) => s.read(buf).await,
            Self::Tls(s) => s.read(buf).await,
            Self::ReadHalf(s) => s.read(buf).await,
        }
    }
}

/// An open connection and its read buffer.
pub(super) struct Conn {
    pub(super) stream: Stream,
    /// The TCP socket under `stream`, for the liveness peek; owned by `stream`.
    pub(super) fd: RawFd,
    /// Received bytes; `rbuf[pos..]` is not consumed yet.
    pub(super) rbuf: Vec<u8>,
    pub(super) pos: usize,
}

/// What one read brought.
enum Filled {
    Data,
    Eof,
}

/// Why a read brought nothing.
enum FillError {
    TimedOut,
    Io(io::Error),
}

impl Conn {
    fn buffered(&self) -> usize {
        self.rbuf.len() - self.pos
    }

    /// Whether an idle connection still looks usable: the socket has neither EOF nor bytes
    /// waiting (an idle HTTP connection has nothing to say; a TLS alert or stray bytes
    /// mean it is done).
    fn looks_open(&self) -> bool {
        socket_looks_open(self.fd)
    }

    /// Reads more bytes after the buffered ones, until `deadline`.
    async fn fill(&mut self, deadline: Instant) -> Result<Filled, FillError> {
        if self.pos == self.rbuf.len() {
            self.rbuf.clear();
            self.pos = 0;
        }
        let room = |b: &Vec<u8>| b.capacity() - b.len();
        if room(&self.rbuf) < READ_ROOM_MIN {
            if self.pos > 0 {
                self.rbuf.copy_within(self.pos.., 0);
                self.rbuf.truncate(self.rbuf.len() - self.pos);
                self.pos = 0;
            }
            if room(&self.rbuf) < READ_ROOM_MIN && self.rbuf.capacity() < READ_BUF_MAX {
                let want = (self.rbuf.capacity() * 2).clamp(READ_BUF_INITIAL, READ_BUF_MAX);
                self.rbuf.reserve_exact(want - self.rbuf.len());
            }
        }
        // Callers stop before the buffer holds more than a head, so there is always room.
        debug_assert!(room(&self.rbuf) > 0);
        let buf = std::mem::take(&mut self.rbuf);
        let (start, end) = (buf.len(), buf.capacity());
        match timeout_at(deadline, self.stream.read(buf.slice_mut(start..end))).await {
            Err(_) => Err(FillError::TimedOut),
            Ok((result, slice)) => {
                self.rbuf = slice.into_inner();
                match result {
                    Ok(0) => Ok(Filled::Eof),
                    Ok(_) => Ok(Filled::Data),
                    // A TLS peer that closed without close_notify.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(Filled::Eof),
                    Err(e) => Err(FillError::Io(e)),
                }
            }
        }
    }

    /// Reads one response (skipping `1xx` heads), keeping `keep_max` bytes of its body.
    /// `request` is `Some` until the first response byte arrives: a failure before that
    /// gives it back for a resend.
    pub(super) async fn read_response(
        &mut self,
        deadline: Instant,
        request: &mut Option<Vec<u8>>,
        keep_max: usize,
    ) -> Result<Exchanged, Failure> {
        let head = loop {
            let head = self.read_head(deadline, request).await?;
            if !(100..200).contains(&head.status) {
                break head;
            }
            if head.status == 101 {
                return Err(Failure::fatal(ClientError::Protocol(
                    "the server switched protocols (101) in answer to a POST".to_owned(),
                )));
            }
        };
        // A response counts only whole: a body cut short, badly framed, or longer than the
        // client reads fails the attempt (it is retried; at least once allows that).
        let body = self
            .read_body(head.framing, keep_max, deadline)
            .await
            .map_err(Failure::fatal)?;
        Ok(Exchanged {
            status: head.status,
            retry_after: head.retry_after,
            body,
            reusable: head.keep_alive,
            trailing: self.pos < self.rbuf.len(),
        })
    }

    /// Reads and parses one response head. `request` is `Some` until the first response
    /// byte arrives: a failure before that gives it back for a resend.
    async fn read_head(
        &mut self,
        deadline: Instant,
        request: &mut Option<Vec<u8>>,
    ) -> Result<Head, Failure> {
        loop {
            if self.buffered() > 0 {
                request.take();
                match parse_head(&self.rbuf[self.pos..]) {
                    Ok(Some((head, n))) => {
                        self.pos += n;
                        return Ok(head);
                    }
                    Ok(None) if self.buffered() >= HEAD_BYTES_MAX => {
                        return Err(Failure::fatal(ClientError::Protocol(format!(
                            "response head longer than {HEAD_BYTES_MAX} bytes"
                        ))))
                    }
                    Ok(None) => {}
                    Err(e) => return Err(Failure::fatal(ClientError::Protocol(e))),
                }
            }
            let error = match self.fill(deadline).await {
                Ok(Filled::Data) => continue,
                Ok(Filled::Eof) if request.is_some() => {
                    ClientError::Io("the server closed the connection without answering".into())
                }
                Ok(Filled::Eof) => ClientError::Protocol(
                    "the server closed the connection in the middle of the response head".into(),
                ),
                Err(FillError::TimedOut) => return Err(Failure::fatal(ClientError::Timeout)),
                Err(FillError::Io(e)) => ClientError::Io(format!("reading the response: {e}")),
            };
            return Err(match request.take() {
                Some(returned) => Failure::before_response(error, returned),
                None => Failure::fatal(error),
            });
        }
    }

    /// Reads the body as `head` frames it, through a [`BodyReader`] (see there for what
    /// counts as a whole body).
    async fn read_body(
        &mut self,
        framing: Framing,
        keep_max: usize,
        deadline: Instant,
    ) -> Result<Vec<u8>, ClientError> {
        let mut body = BodyReader::new(framing, keep_max)?;
        loop {
            let (used, done) = body.feed(&self.rbuf[self.pos..])?;
            self.pos += used;
            if done {
                return Ok(body.into_kept());
            }
            match self.fill(deadline).await {
                Ok(Filled::Data) => {}
                Ok(Filled::Eof) => return body.at_eof(),
                Err(FillError::TimedOut) => return Err(ClientError::Timeout),
                Err(FillError::Io(e)) => {
                    return Err(ClientError::Io(format!("reading the response body: {e}")))
                }
            }
        }
    }
}

/// Header names the client writes itself; the caller's are dropped.
const FRAMING_HEADERS: [&str; 4] = ["host", "content-length", "transfer-encoding", "connection"];

/// The whole request: head and body.
fn encode_request(
    url: &Url,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Vec<u8>, ClientError> {
    let headers_len: usize = headers.iter().map(|(n, v)| n.len() + v.len() + 4).sum();
    let mut head = String::with_capacity(128 + url.path.len() + url.host.len() + headers_len);
    let default_port = if url.https { 443 } else { 80 };
    // Writing to a String cannot fail.
    let _ = write!(head, "POST {} HTTP/1.1\r\nhost: ", url.path);
    if url.host.contains(':') {
        let _ = write!(head, "[{}]", url.host);
    } else {
        head.push_str(&url.host);
    }
    if url.port != default_port {
        let _ = write!(head, ":{}", url.port);
    }
    let _ = write!(
        head,
        "\r\ncontent-length: {}\r\nconnection: keep-alive\r\n",
        body.len()
    );
    for &(name, value) in headers {
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(ClientError::Protocol(format!(
                "request header name {name:?} is not a valid HTTP token"
            )));
        }
        if value.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7f) {
            return Err(ClientError::Protocol(format!(
                "request header {name:?} has a control character in its value"
            )));
        }
        if FRAMING_HEADERS.iter().any(|f| name.eq_ignore_ascii_case(f)) {
            continue;
        }
        let _ = write!(head, "{name}: {}\r\n", value.trim_matches([' ', '\t']));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    Ok(out)
}

/// `tchar` of RFC 9110.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `from + after`, or far in the future when that overflows.
fn deadline_after(from: Instant, after: Duration) -> Instant {
    from.checked_add(after)
        .or_else(|| from.checked_add(Duration::from_secs(86_400 * 365)))
        .unwrap_or(from)
}

/// Where pooled connections lead.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PoolKey {
    https: bool,
    host: String,
    port: u16,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// Idle keep-alive connections, most recently used last.
struct Pool {
    idle: HashMap<PoolKey, Vec<Idle>>,
    total: usize,
    /// Idle connections kept per key.
    per_key_max: usize,
}

impl Pool {
    /// A pool keeping as many idle connections per key as may be in flight to it (at least
    /// [`POOL_PER_KEY_MAX`], at most [`POOL_TOTAL_MAX`]).
    fn new(in_flight_per_host_max: usize) -> Self {
        Self {
            idle: HashMap::new(),
            total: 0,
            per_key_max: in_flight_per_host_max.clamp(POOL_PER_KEY_MAX, POOL_TOTAL_MAX),
        }
    }

    /// The most recently pooled live connection to `key`; stale ones found on the way are
    /// closed.
    fn take(&mut self, key: &PoolKey, now: Instant) -> Option<Conn> {
        let list = self.idle.get_mut(key)?;
        let mut found = None;
        while let Some(idle) = list.pop() {
            self.total -= 1;
            if now.saturating_duration_since(idle.since) < POOL_IDLE_MAX && idle.conn.looks_open() {
                found = Some(idle.conn);
                break;
            }
        }
        if list.is_empty() {
            self.idle.remove(key);
        }
        found
    }

    /// Keeps `conn` for reuse, unless the caps are reached (then it is closed).
    fn put(&mut self, key: PoolKey, mut conn: Conn, now: Instant) {
        if self.total >= POOL_TOTAL_MAX {
            self.sweep(now);
        }
        if self.total >= POOL_TOTAL_MAX {
            return;
        }
        let list = self.idle.entry(key).or_default();
        if list.len() >= self.per_key_max {
            return;
        }
        if conn.rbuf.capacity() > READ_BUF_RETAIN {
            conn.rbuf = Vec::with_capacity(READ_BUF_INITIAL);
        }
        conn.rbuf.clear();
        conn.pos = 0;
        list.push(Idle { conn, since: now });
        self.total += 1;
    }

    /// Closes every connection idle for too long.
    fn sweep(&mut self, now: Instant) {
        let mut total = 0;
        self.idle.retain(|_, list| {
            list.retain(|idle| now.saturating_duration_since(idle.since) < POOL_IDLE_MAX);
            total += list.len();
            !list.is_empty()
        });
        self.total = total;
    }
}

/// Resolved names of one shard, each kept for [`DNS_TTL`].
#[derive(Default)]
struct DnsCache {
    entries: HashMap<String, (Vec<IpAddr>, Instant)>,
}

impl DnsCache {
    fn get(&self, host: &str, now: Instant) -> Option<Vec<IpAddr>> {
        let (ips, at) = self.entries.get(host)?;
        (now.saturating_duration_since(*at) < DNS_TTL).then(|| ips.clone())
    }

    fn put(&mut self, host: &str, ips: Vec<IpAddr>, now: Instant) {
        if self.entries.len() >= DNS_CACHE_MAX && !self.entries.contains_key(host) {
            self.entries
                .retain(|_, (_, at)| now.saturating_duration_since(*at) < DNS_TTL);
            if self.entries.len() >= DNS_CACHE_MAX {
                self.entries.clear();
            }
        }
        self.entries.insert(host.to_owned(), (ips, now));
    }
}

/// Name resolution off the shards: `getaddrinfo` blocks, so lookups run on a few threads
/// of their own, fed by one bounded queue shared by every shard. The answer comes back
/// through a one-shot slot that wakes the waiting task (monoio's `sync` feature makes that
/// cross-thread wake work). A lookup whose waiter gave up still runs to its end; the
/// threads exit once the `Resolver` is dropped and the queue is empty.
pub struct Resolver {
    jobs: crossbeam_channel::Sender<Lookup>,
}

type Answer = Result<Vec<IpAddr>, String>;

struct Lookup {
    host: String,
    port: u16,
    reply: oneshot::Sender<Answer>,
}

impl Resolver {
    /// Starts `threads` resolver threads (at least one).
    pub fn start(threads: usize) -> io::Result<Arc<Self>> {
        let (jobs, queue) = crossbeam_channel::bounded::<Lookup>(RESOLVER_QUEUE_MAX);
        for i in 0..threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("hookd-resolve-{i}"))
                .spawn(move || {
                    for job in queue.iter() {
                        let answer = lookup_blocking(&job.host, job.port);
                        // The lookup's caller may have given up (timed out): nothing to do.
                        let _ = job.reply.send(answer);
                    }
                })?;
        }
        Ok(Arc::new(Self { jobs }))
    }

    /// Queues a lookup of `host`; the future gives the answer (`None` if the threads died).
    fn lookup(&self, host: &str, port: u16) -> Result<oneshot::Receiver<Answer>, String> {
        let (reply, answer) = oneshot::channel();
        let job = Lookup {
            host: host.to_owned(),
            port,
            reply,
        };
        self.jobs.try_send(job).map_err(|e| match e {
            crossbeam_channel::TrySendError::Full(_) => {
                format!("the resolver queue is full ({RESOLVER_QUEUE_MAX} lookups waiting)")
            }
            crossbeam_channel::TrySendError::Disconnected(_) => {
                "the resolver threads have stopped".to_owned()
            }
        })?;
        Ok(answer)
    }
}

/// `getaddrinfo`, on a resolver thread: the distinct addresses in the order given.
fn lookup_blocking(host: &str, port: u16) -> Answer {
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?;
    let mut ips: Vec<IpAddr> = Vec::new();
    for addr in addrs {
        if !ips.contains(&addr.ip()) {
            ips.push(addr.ip());
        }
    }
    Ok(ips)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_framing_and_the_callers_headers() {
        let url = Url::parse("https://Example.com/hook?a=1").unwrap();
        let req = encode_request(
            &url,
            &[
                ("content-type", "application/json"),
                ("Host", "evil"),
                ("x-a", " b "),
            ],
            b"{}",
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(req).unwrap(),
            "POST /hook?a=1 HTTP/1.1\r\nhost: example.com\r\ncontent-length: 2\r\n\
             connection: keep-alive\r\ncontent-type: application/json\r\nx-a: b\r\n\r\n{}"
        );
        let url = Url::parse("http://[::1]:8080/").unwrap();
        let req = encode_request(&url, &[], b"").unwrap();
        assert!(req.starts_with(b"POST / HTTP/1.1\r\nhost: [::1]:8080\r\n"));
        for bad in [
            ("x-a", "b\r\nx-injected: 1"),
            ("bad name", "v"),
            ("", "v"),
            ("x", "\0"),
        ] {
            let err = encode_request(&url, &[bad], b"").unwrap_err();
            assert_eq!(err.outcome_class(), "protocol", "{bad:?}");
        }
    }

    #[test]
    fn outcome_classes_are_distinct() {
        let all = [
            ClientError::Refused(String::new()),
            ClientError::Resolve(String::new()),
            ClientError::Connect(String::new()),
            ClientError::Tls(String::new()),
            ClientError::Timeout,
            ClientError::HostBusy(String::new()),
            ClientError::Protocol(String::new()),
            ClientError::Io(String::new()),
        ];
        let mut classes: Vec<_> = all.iter().map(ClientError::outcome_class).collect();
        classes.sort_unstable();
        classes.dedup();
        assert_eq!(classes.len(), all.len());
    }

    #[test]
    fn ca_file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let broken = dir.path().join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        for path in [&missing, &empty, &broken] {
            let err = tls_config(Some(path)).unwrap_err();
            let message = err.to_string();
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(message.contains("delivery.ca_file"), "{message}");
        }
        let ca = rcgen::generate_simple_self_signed(vec!["x.test".to_owned()]).unwrap();
        let good = dir.path().join("ca.pem");
        std::fs::write(&good, ca.cert.pem()).unwrap();
        let config = tls_config(Some(&good)).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    #[test]
    fn dns_cache_expires_and_stays_bounded() {
        let mut cache = DnsCache::default();
        let t0 = Instant::now();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        cache.put("a.test", vec![ip], t0);
        assert_eq!(cache.get("a.test", t0), Some(vec![ip]));
        assert_eq!(cache.get("a.test", t0 + DNS_TTL), None);
        for i in 0..DNS_CACHE_MAX + 10 {
            cache.put(&format!("h{i}.test"), vec![ip], t0);
        }
        assert!(cache.entries.len() <= DNS_CACHE_MAX);
    }

    #[test]
    fn resolver_answers_through_the_oneshot() {
        let resolver = Resolver::start(1).unwrap();
        let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        rt.block_on(async {
            let answer = resolver.lookup("localhost", 80).unwrap().await;
            let ips = answer.expect("sent").expect("localhost resolves");
            assert!(ips.iter().all(|ip| ip.is_loopback()), "{ips:?}");
            let answer = resolver.lookup("name.invalid", 80).unwrap().await;
            assert!(answer.expect("sent").is_err());
        });
        // A sender dropped unsent wakes its receiver with `None`.
        let (tx, rx) = oneshot::channel::<u8>();
        let waiter = std::thread::spawn(move || {
            let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
                .build()
                .unwrap();
            rt.block_on(rx).ok()
        });
        drop(tx);
        assert_eq!(waiter.join().unwrap(), None);
    }
}
