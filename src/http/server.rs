//! Serving HTTP/1.1 connections on one shard: the accept loop ([`run_listener`]) and the
//! per-connection request loop ([`serve_connection`]).
//!
//! **Buffers.** A connection owns one read buffer and one write buffer for its whole life.
//! The read buffer starts at 4 KiB and grows, only while a head is arriving, up to
//! `header_bytes_max` + 4 KiB; it may hold several pipelined requests. A `Content-Length`
//! body is read straight into the request's own `Vec` (the one the handler receives), grown
//! as bytes arrive, never past `body_bytes_max`, so a client that announces a large body and
//! sends nothing costs no memory. A chunked body is decoded from the read buffer into its
//! `Vec`. Responses are encoded into the write buffer; responses to pipelined requests that
//! arrived together accumulate there and go out in one write, which happens before the
//! connection waits to read again, or once 64 KiB are pending. After a large response the
//! write buffer shrinks back.
//!
//! **Timeouts**, all from [`Limits`]: a request head must arrive within
//! `header_read_timeout` of its first byte (of accept for the first request): 408 and close;
//! a keep-alive connection waits `idle_timeout` for the next request, then closes quietly;
//! the body must arrive within `request_timeout` of the request's first byte: 408 and close;
//! each write of responses must finish within `request_timeout`, else the connection is
//! dropped. A TLS handshake must finish within `header_read_timeout`.
//!
//! **Closing.** Every refusal (4xx from the parser or the body decoder, 408, 503) carries a
//! JSON error body and `connection: close`. After it the server shuts down its sending side
//! and reads and discards what the client still sends, for at most 1 s and 1 MiB, so that
//! the client gets the answer instead of a reset. A read or write that timed out is never
//! retried on that stream (monoio-rustls streams cannot be used after a cancelled
//! operation), so such a connection is closed without lingering.
//!
//! **Shutdown.** See `shutdown.rs`: idle connections close at once, busy ones finish their
//! request and answer with `connection: close`.
//!
//! The shard's runtime must have its timer enabled (`RuntimeBuilder::enable_timer`).

use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};
use monoio::time::{timeout_at, Instant};
use monoio_rustls::TlsAcceptor;
use socket2::{Domain, Protocol, Socket, Type};

use super::encode::{asks_to_close, encode_response, http_date_now, ConnectionHeader, CONTINUE};
use super::limits::{Limits, LimitsSource};
use super::message::{Handler, Method, Request, Response};
use super::parse::{BodyFraming, ChunkedDecoder, Decoded, HeadParser, HeadStatus, RequestHead};
use super::shutdown::{ConnSlot, Connections, Shutdown};
use crate::panics::CatchUnwind;

/// Initial capacity of a connection's read buffer.
const READ_BUF_INITIAL: usize = 4 << 10;
/// Room the read buffer may have beyond `header_bytes_max`.
const READ_BUF_SLACK: usize = 4 << 10;
/// Below this much free room the read buffer is compacted (and grown, up to its cap).
const READ_ROOM_MIN: usize = 1 << 10;
/// Initial capacity of a connection's write buffer.
const WRITE_BUF_INITIAL: usize = 4 << 10;
/// Pending response bytes that trigger a write even if more pipelined requests wait.
const WRITE_PENDING_MAX: usize = 64 << 10;
/// A write buffer grown past this is shrunk back after it has been written.
const WRITE_BUF_RETAIN: usize = 64 << 10;
/// A `Content-Length` body gets at most this much capacity ahead of the bytes received.
const BODY_RESERVE_STEP: usize = 64 << 10;
/// The longest a closing connection keeps reading and discarding (also capped by
/// `header_read_timeout`).
const LINGER_TIME_MAX: Duration = Duration::from_secs(1);
/// The most bytes a closing connection reads and discards.
const LINGER_BYTES_MAX: usize = 1 << 20;
/// Connections being refused with 503 at once per shard; beyond this they are just closed.
const REJECTS_IN_FLIGHT_MAX: usize = 256;
/// Pause after a failed accept (such as EMFILE), so that the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(20);
/// Backlog of listening sockets.
const LISTEN_BACKLOG: i32 = 1024;

const _: () = assert!(READ_ROOM_MIN <= READ_BUF_SLACK && READ_ROOM_MIN <= READ_BUF_INITIAL);

/// A listening socket with `SO_REUSEADDR` and `SO_REUSEPORT`, non-blocking, backlog 1024,
/// so that every shard can bind its own listener on the same address and the kernel spreads
/// connections among them. Convert it with `monoio::net::TcpListener::from_std` on the shard
/// thread that serves it. With port 0, bind the first shard's listener, then the others to
/// its `local_addr()`.
pub fn bind_reuseport(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// Accepts connections on `listener` until `shutdown` is triggered, serving each in its own
/// task (through `tls` when given), then closes idle connections, waits for busy ones to
/// finish their request, and returns. Accept errors (such as EMFILE) are logged and retried
/// after a short pause; they do not end the loop.
///
/// At most `limits.connections_per_shard_max` connections are served at once; one more is
/// answered `503 {"code":"too_many_connections"}` with `connection: close`, without its
/// request being read, in a task of its own so that the accept loop never waits. Each
/// connection takes its limits from `limits` when it is accepted (`Rc<Limits>`: fixed ones).
pub async fn run_listener<H: Handler, L: LimitsSource>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    handler: Rc<H>,
    limits_source: L,
    shutdown: Shutdown,
) {
    let conns = Connections::new();
    let tls = Rc::new(tls);
    let mut stop = pin!(shutdown.wait());
    loop {
        let accepted = {
            let mut accept = pin!(listener.accept());
            poll_fn(|cx| {
                if stop.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(None);
                }
                accept.as_mut().poll(cx).map(Some)
            })
            .await
        };
        let Some(accepted) = accepted else {
            break;
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                let pause = monoio::time::sleep(ACCEPT_ERROR_PAUSE);
                let mut pause = pin!(pause);
                poll_fn(|cx| {
                    if stop.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(());
                    }
                    pause.as_mut().poll(cx)
                })
                .await;
                continue;
            }
        };
        let limits = limits_source.current();
        if conns.served() >= limits.connections_per_shard_max {
            if conns.rejecting() < REJECTS_IN_FLIGHT_MAX {
                let slot = conns.register_reject();
                let tls = tls.clone();
                monoio::spawn(async move {
                    refuse_connection(stream, &tls, &limits).await;
                    drop(slot);
                });
            }
            continue;
        }
        // Responses are written whole; Nagle would only delay the last segment.
        let _ = stream.set_nodelay(true);
        let slot = conns.register();
        let (tls, handler) = (tls.clone(), handler.clone());
        monoio::spawn(async move {
            // A panic while serving (a bug) closes this connection only; the hook logs it.
            let served = serve_accepted(stream, peer, &tls, &*handler, &limits, &slot);
            let _ = CatchUnwind::new(served).await;
        });
    }
    drop(listener);
    conns.close_all();
    conns.drained().await;
}

/// Serves one accepted connection, after a TLS handshake when `tls` is set.
async fn serve_accepted<H: Handler>(
    stream: TcpStream,
    peer: SocketAddr,
    tls: &Option<TlsAcceptor>,
    handler: &H,
    limits: &Limits,
    slot: &ConnSlot,
) {
    let result = match tls {
        None => serve_connection(stream, Some(peer), handler, limits, slot).await,
        Some(acceptor) => {
            let deadline = deadline_after(Instant::now(), limits.header_read_timeout);
            match slot
                .unless_closing(timeout_at(deadline, acceptor.accept(stream)))
                .await
            {
                Some(Ok(Ok(stream))) => {
                    serve_connection(stream, Some(peer), handler, limits, slot).await
                }
                Some(Ok(Err(e))) => Err(io::Error::other(e)),
                Some(Err(_)) => Err(io::ErrorKind::TimedOut.into()),
                None => Ok(()),
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Answers 503 on a connection over the cap (after a TLS handshake when `tls` is set),
/// without reading its request.
async fn refuse_connection(stream: TcpStream, tls: &Option<TlsAcceptor>, limits: &Limits) {
    let mut bytes = Vec::new();
    let resp = Response::error(
        503,
        "too_many_connections",
        "this server is at its connection limit; retry later",
    );
    encode_response(
        &mut bytes,
        &resp,
        false,
        ConnectionHeader::Close,
        &http_date_now(),
    );
    let deadline = deadline_after(
        Instant::now(),
        limits.header_read_timeout.min(LINGER_TIME_MAX),
    );
    match tls {
        None => write_refusal(stream, bytes, deadline).await,
        Some(acceptor) => {
            if let Ok(Ok(stream)) = timeout_at(deadline, acceptor.accept(stream)).await {
                write_refusal(stream, bytes, deadline).await;
            }
        }
    }
}

/// Writes `bytes`, closes the sending side and lingers until `deadline`.
async fn write_refusal<S: AsyncReadRent + AsyncWriteRent>(
    mut stream: S,
    bytes: Vec<u8>,
    deadline: Instant,
) {
    let Ok((Ok(_), bytes)) = timeout_at(deadline, stream.write_all(bytes)).await else {
        return;
    };
    if !matches!(timeout_at(deadline, stream.shutdown()).await, Ok(Ok(()))) {
        return;
    }
    linger(&mut stream, bytes, deadline).await;
}

/// Reads and discards until EOF, `deadline` or [`LINGER_BYTES_MAX`] bytes.
async fn linger<S: AsyncReadRent>(stream: &mut S, mut buf: Vec<u8>, deadline: Instant) {
    if buf.capacity() < READ_BUF_INITIAL {
        buf.reserve(READ_BUF_INITIAL);
    }
    let mut discarded = 0;
    while discarded < LINGER_BYTES_MAX {
        buf.clear();
        match timeout_at(deadline, stream.read(buf)).await {
            Ok((Ok(n), returned)) if n > 0 => {
                discarded += n;
                buf = returned;
            }
            _ => return,
        }
    }
}

/// `from + after`, or far in the future when that overflows.
fn deadline_after(from: Instant, after: Duration) -> Instant {
    from.checked_add(after)
        .or_else(|| from.checked_add(Duration::from_secs(86_400 * 365)))
        .unwrap_or(from)
}

/// Serves HTTP/1.1 requests on `stream` (plain TCP or TLS) until the client closes, a
/// limit or timeout is hit, the handler or client asks to close, or the shard shuts down.
/// Returns `Err` only for I/O errors (such as a reset by the peer); every protocol problem
/// has been answered on the connection.
pub async fn serve_connection<S, H>(
    stream: S,
    peer: Option<SocketAddr>,
    handler: &H,
    limits: &Limits,
    slot: &ConnSlot,
) -> io::Result<()>
where
    S: AsyncReadRent + AsyncWriteRent,
    H: Handler,
{
    let mut conn = Conn {
        stream,
        peer,
        handler,
        limits,
        slot,
        rbuf: Vec::with_capacity(READ_BUF_INITIAL),
        pos: 0,
        wbuf: Vec::with_capacity(WRITE_BUF_INITIAL),
        read_buf_max: limits.header_bytes_max.saturating_add(READ_BUF_SLACK),
        read_cancelled: false,
        write_cancelled: false,
    };
    let outcome = conn.run(Instant::now()).await;
    conn.finish(outcome).await
}

/// Why the request loop stopped before a normal close.
#[derive(Debug)]
enum Exit {
    /// Answer with this (error) response, then close.
    Refuse(Response),
    /// Close without a word: idle timeout, shutdown, or a client gone between requests.
    Quiet,
    /// The stream failed; drop it.
    Broken(io::Error),
}

impl Exit {
    fn refuse(status: u16, code: &str, detail: &str) -> Self {
        Self::Refuse(Response::error(status, code, detail))
    }

    fn timeout(what: &str, after: Duration) -> Self {
        Self::refuse(
            408,
            "request_timeout",
            &format!("{what} did not arrive within {} ms", after.as_millis()),
        )
    }
}

/// What one read into the read buffer brought.
enum Fill {
    Data,
    Eof,
    TimedOut,
    /// The shard is shutting down (only while idle).
    Closing,
}

struct Conn<'a, S, H> {
    stream: S,
    peer: Option<SocketAddr>,
    handler: &'a H,
    limits: &'a Limits,
    slot: &'a ConnSlot,
    /// Received bytes; `rbuf[pos..]` is not consumed yet.
    rbuf: Vec<u8>,
    pos: usize,
    /// Encoded responses not yet written.
    wbuf: Vec<u8>,
    read_buf_max: usize,
    /// A read was dropped mid-flight: the stream must not be read again.
    read_cancelled: bool,
    /// A write was dropped mid-flight: the stream must not be written again.
    write_cancelled: bool,
}

impl<S, H> Conn<'_, S, H>
where
    S: AsyncReadRent + AsyncWriteRent,
    H: Handler,
{
    /// Bytes received and not consumed.
    fn buffered(&self) -> usize {
        self.rbuf.len() - self.pos
    }

    /// The request loop. `Ok` means: close after the responses written so far.
    async fn run(&mut self, accepted: Instant) -> Result<(), Exit> {
        let limits = self.limits;
        let mut first = true;
        let mut parser = HeadParser::new();
        loop {
            let (head, started) = self.read_head(&mut parser, accepted, first).await?;

            // The body.
            let body_deadline = deadline_after(started, limits.request_timeout);
            let body = match head.framing {
                BodyFraming::None => Vec::new(),
                BodyFraming::Length(n) => {
                    self.read_sized_body(n, head.expect_continue, body_deadline)
                        .await?
                }
                BodyFraming::Chunked => {
                    self.read_chunked_body(head.expect_continue, body_deadline)
                        .await?
                }
            };

            // The answer.
            let head_request = head.method == Method::Head;
            let http10 = head.minor_version == 0;
            let req = Request {
                method: head.method,
                target: head.target,
                headers: head.headers,
                body,
                peer: self.peer,
            };
            let (resp, healthy) = match call_handler(self.handler, req).await {
                Some(resp) => (resp, true),
                None => {
                    tracing::error!("request handler panicked");
                    let resp = Response::error(
                        500,
                        "internal_error",
                        "the server failed while handling this request",
                    );
                    (resp, false)
                }
            };
            let close =
                !head.keep_alive || !healthy || self.slot.is_closing() || asks_to_close(&resp);
            let connection = match (close, http10) {
                (true, _) => ConnectionHeader::Close,
                (false, true) => ConnectionHeader::KeepAlive,
                (false, false) => ConnectionHeader::Omit,
            };
            encode_response(
                &mut self.wbuf,
                &resp,
                head_request,
                connection,
                &http_date_now(),
            );
            if close {
                return Ok(());
            }
            if self.wbuf.len() >= WRITE_PENDING_MAX {
                self.flush().await?;
            }
            first = false;
        }
    }

    /// Reads the next request head: parses what is buffered and reads more until it is
    /// complete, within `header_read_timeout` (from the connection's start for the first
    /// request, from its first byte for the next) or `idle_timeout` between requests. Gives
    /// the head and when its first byte was there; the buffer is past the head.
    async fn read_head(
        &mut self,
        parser: &mut HeadParser,
        accepted: Instant,
        first: bool,
    ) -> Result<(RequestHead, Instant), Exit> {
        let limits = self.limits;
        parser.reset();
        let mut started = (self.buffered() > 0).then(Instant::now);
        let head = loop {
            if self.buffered() > 0 {
                match parser.parse(&self.rbuf[self.pos..], limits) {
                    Ok(HeadStatus::Complete(head)) => break head,
                    Ok(HeadStatus::Partial) => {}
                    Err(e) => return Err(Exit::refuse(e.status(), e.code(), &e.to_string())),
                }
            }
            self.flush().await?;
            let (deadline, idle) = match started {
                Some(t) => {
                    let from = if first { accepted } else { t };
                    (deadline_after(from, limits.header_read_timeout), false)
                }
                None if first => (deadline_after(accepted, limits.header_read_timeout), true),
                None => (deadline_after(Instant::now(), limits.idle_timeout), true),
            };
            match self.fill(deadline, idle).await? {
                Fill::Data => {
                    started.get_or_insert_with(Instant::now);
                }
                Fill::Eof | Fill::Closing => return Err(Exit::Quiet),
                Fill::TimedOut if idle => return Err(Exit::Quiet),
                Fill::TimedOut => {
                    return Err(Exit::timeout(
                        "the request head",
                        limits.header_read_timeout,
                    ))
                }
            }
        };
        self.pos += head.head_bytes;
        Ok((head, started.unwrap_or_else(Instant::now)))
    }

    /// Reads a `Content-Length` body of `n` bytes straight into its own buffer.
    async fn read_sized_body(
        &mut self,
        n: usize,
        expect_continue: bool,
        deadline: Instant,
    ) -> Result<Vec<u8>, Exit> {
        if expect_continue && self.buffered() == 0 {
            self.send_continue().await?;
        }
        let have = self.buffered().min(n);
        let mut body = Vec::with_capacity(n.min(have.max(BODY_RESERVE_STEP)));
        body.extend_from_slice(&self.rbuf[self.pos..self.pos + have]);
        self.pos += have;
        while body.len() < n {
            if body.len() == body.capacity() {
                let step = body.len().max(BODY_RESERVE_STEP);
                body.reserve_exact((n - body.len()).min(step));
            }
            let start = body.len();
            let end = body.capacity().min(n);
            match timeout_at(deadline, self.stream.read(body.slice_mut(start..end))).await {
                Ok((Ok(0), _)) => return Err(Exit::Quiet),
                Ok((Ok(_), slice)) => body = slice.into_inner(),
                Ok((Err(e), _)) => return Err(Exit::Broken(e)),
                Err(_) => {
                    self.read_cancelled = true;
                    return Err(Exit::timeout(
                        "the request body",
                        self.limits.request_timeout,
                    ));
                }
            }
        }
        Ok(body)
    }

    /// Reads and decodes a chunked body through the read buffer.
    async fn read_chunked_body(
        &mut self,
        expect_continue: bool,
        deadline: Instant,
    ) -> Result<Vec<u8>, Exit> {
        if expect_continue && self.buffered() == 0 {
            self.send_continue().await?;
        }
        let mut decoder = ChunkedDecoder::new(self.limits);
        let mut body = Vec::new();
        loop {
            if self.buffered() > 0 {
                let input = &self.rbuf[self.pos..];
                match decoder.decode(input) {
                    Ok(Decoded::Data(range)) => {
                        body.extend_from_slice(&input[range.clone()]);
                        self.pos += range.end;
                        continue;
                    }
                    Ok(Decoded::NeedMore) => self.pos = self.rbuf.len(),
                    Ok(Decoded::Done(n)) => {
                        self.pos += n;
                        return Ok(body);
                    }
                    Err(e) => return Err(Exit::refuse(e.status(), e.code(), &e.to_string())),
                }
            }
            match self.fill(deadline, false).await? {
                Fill::Data => {}
                Fill::Eof | Fill::Closing => return Err(Exit::Quiet),
                Fill::TimedOut => {
                    return Err(Exit::timeout(
                        "the request body",
                        self.limits.request_timeout,
                    ))
                }
            }
        }
    }

    /// Writes `100 Continue` (after any responses still pending, which come first).
    async fn send_continue(&mut self) -> Result<(), Exit> {
        self.wbuf.extend_from_slice(CONTINUE);
        self.flush().await
    }

    /// Reads more bytes into the read buffer, until `deadline`. While `idle` (no byte of the
    /// next request yet), a shard shutdown ends the wait.
    async fn fill(&mut self, deadline: Instant, idle: bool) -> Result<Fill, Exit> {
        if !self.make_room() {
            // Cannot happen: a head is refused before it outgrows the buffer, and body bytes
            // never stay in it. Refuse rather than read into no room.
            return Err(Exit::refuse(
                431,
                "headers_too_large",
                "the request line and headers are too large",
            ));
        }
        let buf = std::mem::take(&mut self.rbuf);
        let (start, end) = (buf.len(), buf.capacity());
        let read = timeout_at(deadline, self.stream.read(buf.slice_mut(start..end)));
        let result = if idle {
            match self.slot.unless_closing(read).await {
                Some(result) => result,
                None => {
                    self.read_cancelled = true;
                    return Ok(Fill::Closing);
                }
            }
        } else {
            read.await
        };
        match result {
            Err(_) => {
                self.read_cancelled = true;
                Ok(Fill::TimedOut)
            }
            Ok((result, slice)) => {
                self.rbuf = slice.into_inner();
                match result {
                    Ok(0) => Ok(Fill::Eof),
                    Ok(_) => Ok(Fill::Data),
                    Err(e) => Err(Exit::Broken(e)),
                }
            }
        }
    }

    /// Makes at least [`READ_ROOM_MIN`] bytes of room at the end of the read buffer by
    /// dropping consumed bytes and growing up to its cap. False when there is no room at all.
    fn make_room(&mut self) -> bool {
        if self.pos == self.rbuf.len() {
            self.rbuf.clear();
            self.pos = 0;
        }
        let room = |b: &Vec<u8>| b.capacity() - b.len();
        if room(&self.rbuf) >= READ_ROOM_MIN {
            return true;
        }
        if self.pos > 0 {
            self.rbuf.copy_within(self.pos.., 0);
            self.rbuf.truncate(self.rbuf.len() - self.pos);
            self.pos = 0;
        }
        if room(&self.rbuf) < READ_ROOM_MIN && self.rbuf.capacity() < self.read_buf_max {
            let want = (self.rbuf.capacity() * 2)
                .max(self.rbuf.len() + READ_ROOM_MIN)
                .min(self.read_buf_max);
            self.rbuf.reserve_exact(want - self.rbuf.len());
        }
        room(&self.rbuf) > 0
    }

    /// Writes every pending response, within `request_timeout`.
    async fn flush(&mut self) -> Result<(), Exit> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let deadline = deadline_after(Instant::now(), self.limits.request_timeout);
        let buf = std::mem::take(&mut self.wbuf);
        match timeout_at(deadline, self.stream.write_all(buf)).await {
            Ok((Ok(_), mut buf)) => {
                buf.clear();
                if buf.capacity() > WRITE_BUF_RETAIN {
                    buf.shrink_to(WRITE_BUF_INITIAL);
                }
                self.wbuf = buf;
                Ok(())
            }
            Ok((Err(e), _)) => Err(Exit::Broken(e)),
            Err(_) => {
                self.write_cancelled = true;
                Err(Exit::Broken(io::ErrorKind::TimedOut.into()))
            }
        }
    }

    /// Ends the connection after [`Conn::run`] stopped.
    async fn finish(&mut self, outcome: Result<(), Exit>) -> io::Result<()> {
        let lingering = match outcome {
            Ok(()) => self.buffered() > 0,
            Err(Exit::Refuse(resp)) => {
                encode_response(
                    &mut self.wbuf,
                    &resp,
                    false,
                    ConnectionHeader::Close,
                    &http_date_now(),
                );
                true
            }
            Err(Exit::Quiet) => false,
            Err(Exit::Broken(e)) => return Err(e),
        };
        if let Err(exit) = self.flush().await {
            return match exit {
                Exit::Broken(e) => Err(e),
                _ => Ok(()),
            };
        }
        if self.write_cancelled {
            return Ok(());
        }
        let deadline = deadline_after(
            Instant::now(),
            self.limits.header_read_timeout.min(LINGER_TIME_MAX),
        );
        match timeout_at(deadline, self.stream.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Ok(()),
        }
        if lingering && !self.read_cancelled {
            let buf = std::mem::take(&mut self.rbuf);
            linger(&mut self.stream, buf, deadline).await;
        }
        Ok(())
    }
}

/// Calls the handler; `None` if it panicked (the panic is contained to this request).
async fn call_handler<H: Handler>(handler: &H, req: Request) -> Option<Response> {
    let fut = catch_unwind(AssertUnwindSafe(|| handler.handle(req))).ok()?;
    CatchUnwind::new(fut).await.ok()
}
