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
//!
//! **Files**, one concern each, none importing this one but for the shared constants, the
//! error and the `Client` it extends: `encode.rs` (the request), `connect.rs` (resolve, SSRF
//! check, dial, TLS), `resolve.rs` (resolver threads and the name cache), `conn.rs` (a
//! connection and reading a whole response off it, with `super::response` parsing), `pool.rs`
//! (idle connections), `pipeline.rs` (pipelined connections), `error.rs` ([`ClientError`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use monoio::time::{timeout_at, Instant};
use monoio_rustls::TlsConnector;

mod conn;
mod connect;
mod encode;
mod error;
mod pipeline;
mod pool;
mod resolve;

pub use connect::tls_config;
pub use error::ClientError;
pub use resolve::Resolver;

use super::hosts::HostGate;
use crate::config::DeliveryConfig;
use crate::model::url::Url;
use conn::{Conn, Exchanged, Failure};
use encode::encode_request;
pub(super) use futures_channel::oneshot;
use pipeline::{Answer as PipeAnswer, Pipe};
use pool::{Pool, PoolKey};
use resolve::DnsCache;

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

/// `from + after`, or far in the future when that overflows.
fn deadline_after(from: Instant, after: Duration) -> Instant {
    from.checked_add(after)
        .or_else(|| from.checked_add(Duration::from_secs(86_400 * 365)))
        .unwrap_or(from)
}
