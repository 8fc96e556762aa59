//! One connection to an endpoint: its stream (plain or TLS), its read buffer, and reading a
//! whole response off it (`super::response` does the parsing, sans I/O).

use std::io;
use std::os::fd::RawFd;

use monoio::buf::{IoBufMut, SliceMut};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt, OwnedReadHalf};
use monoio::net::TcpStream;
use monoio::time::{timeout_at, Instant};
use monoio::BufResult;
use monoio_rustls::ClientTlsStream;

use super::super::response::{parse_head, BodyReader, Framing, Head};
use super::ClientError;
use super::HEAD_BYTES_MAX;
use super::{READ_BUF_INITIAL, READ_BUF_MAX, READ_ROOM_MIN};

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
    pub(super) fn fatal(error: ClientError) -> Self {
        Self {
            error,
            resend: None,
        }
    }

    pub(super) fn before_response(error: ClientError, request: Vec<u8>) -> Self {
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
    use rustix::net::{recv, RecvFlags};
    let mut byte = [0u8; 1];
    // SAFETY: the caller keeps `fd` open for the duration of the call, which is all the
    // borrow lives.
    let socket = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    matches!(
        recv(socket, &mut byte, RecvFlags::PEEK | RecvFlags::DONTWAIT),
        Err(rustix::io::Errno::WOULDBLOCK)
    )
}

/// A connection's byte stream.
pub(super) enum Stream {
    Plain(TcpStream),
    Tls(Box<ClientTlsStream<TcpStream>>),
    /// The reading half of a pipelined connection (see `pipeline`): never written to.
    ReadHalf(OwnedReadHalf<TcpStream>),
}

impl Stream {
    pub(super) async fn write_all(&mut self, buf: Vec<u8>) -> BufResult<usize, Vec<u8>> {
        match self {
            Self::Plain(s) => s.write_all(buf).await,
            Self::Tls(s) => s.write_all(buf).await,
            Self::ReadHalf(_) => (
                Err(io::Error::other("a pipelined connection's reading half")),
                buf,
            ),
        }
    }

    pub(super) async fn read(
        &mut self,
        buf: SliceMut<Vec<u8>>,
    ) -> BufResult<usize, SliceMut<Vec<u8>>> {
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
    pub(super) fn looks_open(&self) -> bool {
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
