//! `http_request`: the sans-IO request framing of `hookd::http::parse`, driven the way the
//! connection loop in `src/http/server.rs` drives it, over bytes that arrive in several reads.
//!
//! Input: byte 0 picks a [`Limits`] profile, byte 1 the sizes of the reads the rest of the input
//! arrives in (see [`Reads`]); the rest is the byte stream of one connection, which may hold
//! several pipelined requests. For each request the head is parsed with a [`HeadParser`] on the
//! growing buffer, then the body is read by its framing (`Content-Length` or chunked).
//!
//! Checked, beyond "no panic":
//! - the incremental [`HeadParser`] agrees with the one-shot [`parse_head`] on the same bytes,
//!   and a complete head parses the same from its own bytes alone;
//! - a head never claims more bytes than were given, nor more than `header_bytes_max`; its
//!   target, header count and `Content-Length` respect their limits; a partial head is refused
//!   once it outgrows `header_bytes_max`;
//! - every [`Decoded`] range and count lies inside the input it was given, a body never
//!   exceeds `body_bytes_max`, and the chunked decoder gives the same body, end or error
//!   whatever the read boundaries (compared with [`dechunk`] over the same bytes at once);
//! - every refusal maps to one of the statuses the server documents.

use hookd::http::parse::{
    dechunk, parse_head, BodyFraming, ChunkedDecoder, ChunkedError, Decoded, HeadError, HeadParser,
    HeadStatus, RequestHead,
};
use hookd::http::{Limits, Request};

/// Requests looked at per input, at most (pipelining keeps going while heads keep arriving).
const REQUESTS_MAX: usize = 64;

/// The limits for profile `p`: the defaults, or small ones that fuzzed inputs can reach.
fn limits(p: u8) -> Limits {
    let base = Limits::default();
    match p % 4 {
        0 => base,
        1 => Limits {
            header_bytes_max: 256,
            headers_count_max: 8,
            uri_bytes_max: 64,
            body_bytes_max: 100,
            ..base
        },
        2 => Limits {
            header_bytes_max: 64,
            headers_count_max: 2,
            uri_bytes_max: 16,
            body_bytes_max: 8,
            ..base
        },
        _ => Limits {
            header_bytes_max: 1,
            headers_count_max: 1,
            uri_bytes_max: 1,
            body_bytes_max: 1,
            ..base
        },
    }
}

/// The input stream cut into reads: sizes cycle through four, each taken from two bits of
/// the seed (1, 2, 7 or everything left).
struct Reads<'a> {
    rest: &'a [u8],
    sizes: [usize; 4],
    turn: usize,
}

impl<'a> Reads<'a> {
    fn new(stream: &'a [u8], seed: u8) -> Self {
        let size = |k: u8| match (seed >> (2 * k)) & 3 {
            0 => 1,
            1 => 2,
            2 => 7,
            _ => usize::MAX,
        };
        Self {
            rest: stream,
            sizes: [size(0), size(1), size(2), size(3)],
            turn: 0,
        }
    }

    /// The next read, or `None` at the end of the stream (the peer closed).
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let n = self.sizes[self.turn % 4].min(self.rest.len());
        self.turn += 1;
        let (read, rest) = self.rest.split_at(n);
        self.rest = rest;
        Some(read)
    }
}

/// The connection: everything received so far (never dropped, so that checks can look back)
/// and how much of it is consumed.
struct Conn<'a> {
    reads: Reads<'a>,
    rbuf: Vec<u8>,
    pos: usize,
}

impl Conn<'_> {
    fn buffered(&self) -> usize {
        self.rbuf.len() - self.pos
    }

    /// Receives one more read; false at the end of the stream.
    fn fill(&mut self) -> bool {
        match self.reads.next() {
            Some(read) => {
                self.rbuf.extend_from_slice(read);
                true
            }
            None => false,
        }
    }
}

pub fn run(data: &[u8]) {
    let [profile, seed, stream @ ..] = data else {
        return;
    };
    let limits = limits(*profile);
    let mut conn = Conn {
        reads: Reads::new(stream, *seed),
        rbuf: Vec::with_capacity(stream.len()),
        pos: 0,
    };
    for _ in 0..REQUESTS_MAX {
        let Some(keep_alive) = one_request(&mut conn, &limits) else {
            return;
        };
        if !keep_alive {
            return;
        }
    }
}

/// Reads one request (head and body). `Some(keep_alive)` if it was complete and valid,
/// `None` when the connection ends (refused, or the stream ran out).
fn one_request(conn: &mut Conn<'_>, limits: &Limits) -> Option<bool> {
    let mut parser = HeadParser::new();
    let head = loop {
        if conn.buffered() > 0 {
            let buf = &conn.rbuf[conn.pos..];
            let got = parser.parse(buf, limits);
            compare_with_one_shot(&got, buf, limits);
            match got {
                Ok(HeadStatus::Complete(head)) => {
                    check_head(&head, buf, limits);
                    break head;
                }
                Ok(HeadStatus::Partial) => assert!(
                    buf.len() <= limits.header_bytes_max,
                    "a partial head of {} bytes passed header_bytes_max {}",
                    buf.len(),
                    limits.header_bytes_max
                ),
                Err(e) => {
                    check_head_error(&e, limits);
                    return None;
                }
            }
        }
        if !conn.fill() {
            return None;
        }
    };
    conn.pos += head.head_bytes;

    let body = match head.framing {
        BodyFraming::None => Vec::new(),
        BodyFraming::Length(n) => {
            while conn.buffered() < n {
                if !conn.fill() {
                    return None;
                }
            }
            let body = conn.rbuf[conn.pos..conn.pos + n].to_vec();
            conn.pos += n;
            body
        }
        BodyFraming::Chunked => read_chunked(conn, limits)?,
    };
    assert!(
        body.len() <= limits.body_bytes_max,
        "a body of {} bytes passed body_bytes_max {}",
        body.len(),
        limits.body_bytes_max
    );

    let keep_alive = head.keep_alive;
    let req = Request {
        method: head.method,
        target: head.target,
        headers: head.headers,
        body,
        peer: None,
    };
    let rebuilt = match req.query() {
        Some(q) => format!("{}?{q}", req.path()),
        None => req.path().to_owned(),
    };
    assert_eq!(rebuilt, req.target, "path and query do not make the target");
    if req.header("host").is_some() {
        assert!(req.headers.iter().any(|(n, _)| n == "host"));
    }
    Some(keep_alive)
}

/// The incremental parser and a fresh one-shot parse of the same bytes must agree: equal when
/// the head is complete, and the one-shot parse never accepts or waits on what the incremental
/// one refused. (The one-shot parse may refuse earlier: the incremental one runs httparse again
/// only once the end of the head may have arrived.)
fn compare_with_one_shot(got: &Result<HeadStatus, HeadError>, buf: &[u8], limits: &Limits) {
    let once = parse_head(buf, limits);
    match (got, &once) {
        (Ok(HeadStatus::Complete(a)), Ok(HeadStatus::Complete(b))) => {
            assert_eq!(a, b, "incremental and one-shot heads differ")
        }
        (Ok(HeadStatus::Complete(_)), _) => {
            panic!("incremental parse is complete, one-shot says {once:?}")
        }
        (Ok(HeadStatus::Partial), Ok(HeadStatus::Complete(_))) => {
            panic!("incremental parse waits for more, one-shot is complete")
        }
        (Err(e), Ok(o)) => panic!("incremental parse refused ({e:?}), one-shot says {o:?}"),
        _ => {}
    }
}

fn check_head(head: &RequestHead, buf: &[u8], limits: &Limits) {
    let n = head.head_bytes;
    assert!(
        n > 0 && n <= buf.len(),
        "head of {n} bytes in {}",
        buf.len()
    );
    assert!(
        n <= limits.header_bytes_max,
        "head of {n} bytes passed the limit"
    );
    assert_eq!(buf[n - 1], b'\n', "a head ends with a line feed");
    assert!(head.target.len() <= limits.uri_bytes_max);
    assert!(head.headers.len() <= limits.headers_count_max);
    assert!(head.minor_version <= 1);
    for (name, value) in &head.headers {
        assert!(!name.is_empty(), "empty header name");
        assert_eq!(
            *name,
            name.to_ascii_lowercase(),
            "header name not lowercased"
        );
        let ows = |b: &u8| *b == b' ' || *b == b'\t';
        assert!(
            !value.first().is_some_and(ows) && !value.last().is_some_and(ows),
            "header {name} keeps surrounding whitespace: {value:?}"
        );
    }
    if head.minor_version == 1 {
        let hosts = head.headers.iter().filter(|(n, _)| n == "host").count();
        assert_eq!(hosts, 1, "an HTTP/1.1 head needs exactly one Host");
    }
    match head.framing {
        BodyFraming::None => assert!(!head.expect_continue),
        BodyFraming::Length(len) => assert!(len > 0 && len <= limits.body_bytes_max),
        BodyFraming::Chunked => assert_eq!(head.minor_version, 1),
    }
    if head.expect_continue {
        assert_eq!(head.minor_version, 1);
    }
    // What follows the head does not change it.
    match parse_head(&buf[..n], limits) {
        Ok(HeadStatus::Complete(alone)) => assert_eq!(&alone, head, "head differs alone"),
        other => panic!("the head's own bytes give {other:?}"),
    }
}

fn check_head_error(e: &HeadError, limits: &Limits) {
    assert!(matches!(e.status(), 400 | 413 | 414 | 417 | 431), "{e:?}");
    assert!(!e.code().is_empty() && !e.to_string().is_empty());
    match *e {
        HeadError::HeadersTooLarge { limit } => assert_eq!(limit, limits.header_bytes_max),
        HeadError::TooManyHeaders { limit } => assert_eq!(limit, limits.headers_count_max),
        HeadError::UriTooLong { limit } => assert_eq!(limit, limits.uri_bytes_max),
        HeadError::BodyTooLarge { limit } => assert_eq!(limit, limits.body_bytes_max),
        _ => {}
    }
}

/// Reads a chunked body as the server does: decode what is buffered, read more on `NeedMore`.
/// Whatever happens is checked against [`dechunk`] over all the body's bytes at once.
fn read_chunked(conn: &mut Conn<'_>, limits: &Limits) -> Option<Vec<u8>> {
    let start = conn.pos;
    let mut decoder = ChunkedDecoder::new(limits);
    let mut body = Vec::new();
    loop {
        if conn.buffered() > 0 {
            let input = &conn.rbuf[conn.pos..];
            match decoder.decode(input) {
                Ok(Decoded::Data(range)) => {
                    assert!(
                        range.start < range.end && range.end <= input.len(),
                        "data range {range:?} in {} bytes",
                        input.len()
                    );
                    body.extend_from_slice(&input[range.clone()]);
                    assert!(
                        body.len() <= limits.body_bytes_max,
                        "chunked body too large"
                    );
                    conn.pos += range.end;
                    continue;
                }
                Ok(Decoded::NeedMore) => {
                    assert!(!decoder.is_done());
                    conn.pos = conn.rbuf.len();
                }
                Ok(Decoded::Done(n)) => {
                    assert!(n <= input.len(), "done after {n} of {} bytes", input.len());
                    assert!(decoder.is_done());
                    conn.pos += n;
                    let whole = &conn.rbuf[start..conn.pos];
                    assert_eq!(
                        dechunk(whole, limits),
                        Ok(Some((body.clone(), whole.len()))),
                        "the body decoded at once differs"
                    );
                    // A finished decoder consumes nothing more.
                    assert_eq!(decoder.decode(b"0\r\n\r\n"), Ok(Decoded::Done(0)));
                    return Some(body);
                }
                Err(e) => {
                    check_chunked_error(&e, limits);
                    assert_eq!(
                        dechunk(&conn.rbuf[start..], limits),
                        Err(e),
                        "the body decoded at once fails differently"
                    );
                    return None;
                }
            }
        }
        if !conn.fill() {
            assert_eq!(
                dechunk(&conn.rbuf[start..], limits),
                Ok(None),
                "the body decoded at once is not incomplete"
            );
            return None;
        }
    }
}

fn check_chunked_error(e: &ChunkedError, limits: &Limits) {
    assert!(matches!(e.status(), 400 | 413), "{e:?}");
    assert!(!e.code().is_empty() && !e.to_string().is_empty());
    if let ChunkedError::TooLarge { limit } = *e {
        assert_eq!(limit, limits.body_bytes_max);
    }
}
