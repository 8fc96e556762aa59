//! The delivery client's reading of an answer, sans I/O: every byte here comes from a webhook
//! receiver, which is untrusted, so parsing is total (no slice, index or arithmetic on its
//! bytes can panic) and bounded.
//!
//! - [`parse_head`]: a response head by httparse, at most [`HEADERS_MAX`] fields (the caller
//!   bounds its bytes, `client::HEAD_BYTES_MAX`); `Content-Length` with checked parsing (a
//!   list of equal values is one value; differing ones, or anything not digits, is an
//!   error), `Transfer-Encoding` (chunked only as the last coding), keep-alive, and
//!   `Retry-After` kept as at most [`RETRY_AFTER_BYTES_MAX`] bytes cut at a character
//!   boundary (parsed later by `policy::parse_retry_after`).
//! - [`BodyReader`]: the body as the head frames it, fed whatever bytes arrive. A body counts
//!   only whole: cut short, badly framed (chunk syntax, a chunk size that overflows) or longer
//!   than `keep_max` + [`DRAIN_BYTES_MAX`] is an error, whatever the status.
//! - [`parse_whole`]: both over an in-memory answer split at given points, for the
//!   `response_parse` fuzz target and tests.

use super::client::{ClientError, DRAIN_BYTES_MAX, HEAD_BYTES_MAX};
use crate::http::parse::{ChunkedDecoder, Decoded};

/// The most header fields in a response head.
pub const HEADERS_MAX: usize = 64;
/// Longest `Retry-After` value kept.
pub const RETRY_AFTER_BYTES_MAX: usize = 128;

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

/// The parts of a response head the client uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub retry_after: Option<String>,
    pub framing: Framing,
    /// The server lets the connection stay open after this response.
    pub keep_alive: bool,
}

/// Parses a response head at the start of `buf`: the head and its length, `None` when
/// incomplete, or what is wrong.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut resp = httparse::Response::new(&mut headers);
    let n = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(format!("more than {HEADERS_MAX} header fields"))
        }
        Err(e) => return Err(format!("malformed response head: {e}")),
    };
    let status = resp.code.unwrap_or(0);
    let http11 = resp.version == Some(1);
    let mut length: Option<u64> = None;
    let mut codings_seen = false;
    let mut chunked_last = false;
    let (mut close, mut keep_alive) = (false, false);
    let mut retry_after = None;
    for h in resp.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            for part in h.value.split(|&b| b == b',') {
                let part = part.trim_ascii();
                let value = std::str::from_utf8(part)
                    .ok()
                    .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or_else(|| {
                        format!(
                            "content-length {:?} is not a number",
                            String::from_utf8_lossy(part)
                        )
                    })?;
                if length.is_some_and(|l| l != value) {
                    return Err("conflicting content-length values".to_owned());
                }
                length = Some(value);
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            for coding in h.value.split(|&b| b == b',') {
                let coding = coding.trim_ascii();
                if coding.is_empty() {
                    continue;
                }
                codings_seen = true;
                chunked_last = coding.eq_ignore_ascii_case(b"chunked");
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("retry-after") && retry_after.is_none() {
            let value = String::from_utf8_lossy(h.value.trim_ascii());
            let mut end = value.len().min(RETRY_AFTER_BYTES_MAX);
            while !value.is_char_boundary(end) {
                end -= 1;
            }
            retry_after = Some(value[..end].to_owned());
        }
    }
    let framing = if (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Empty
    } else if codings_seen {
        if chunked_last {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::UntilClose
    };
    let keep_alive = (if http11 { !close } else { keep_alive && !close })
        // Both framings at once is a smuggling pattern: do not trust what follows.
        && !(codings_seen && length.is_some())
        && framing != Framing::UntilClose;
    Ok(Some((
        Head {
            status,
            retry_after,
            framing,
            keep_alive,
        },
        n,
    )))
}

/// A response body being read: fed the bytes that arrive, it keeps the first `keep_max` and
/// says when the body is whole.
pub struct BodyReader {
    framing: Framing,
    keep_max: usize,
    /// The most body bytes read: `keep_max` + [`DRAIN_BYTES_MAX`].
    limit: u64,
    kept: Vec<u8>,
    seen: u64,
    chunks: ChunkedDecoder,
}

impl BodyReader {
    /// A reader for a body framed by `framing`; an error at once for a `Content-Length`
    /// beyond what the client reads.
    pub fn new(framing: Framing, keep_max: usize) -> Result<Self, ClientError> {
        let reader = Self {
            framing,
            keep_max,
            limit: keep_max as u64 + DRAIN_BYTES_MAX as u64,
            kept: Vec::new(),
            seen: 0,
            chunks: ChunkedDecoder::with_limits(usize::MAX, HEAD_BYTES_MAX),
        };
        match framing {
            Framing::Length(n) if n > reader.limit => Err(reader.too_long()),
            _ => Ok(reader),
        }
    }

    fn too_long(&self) -> ClientError {
        ClientError::Protocol(format!(
            "response body longer than {} bytes: not read to its end",
            self.limit
        ))
    }

    /// Counts and keeps body bytes; an error past the limit.
    fn take(&mut self, data: &[u8]) -> Result<(), ClientError> {
        let room = self.keep_max.saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&data[..data.len().min(room)]);
        self.seen = self.seen.saturating_add(data.len() as u64);
        if self.seen > self.limit {
            return Err(self.too_long());
        }
        Ok(())
    }

    /// Reads what it can of `input`: the bytes used (what follows the body is left) and
    /// whether the body is now whole.
    pub fn feed(&mut self, input: &[u8]) -> Result<(usize, bool), ClientError> {
        match self.framing {
            Framing::Empty => Ok((0, true)),
            Framing::Length(n) => {
                let want = n.saturating_sub(self.seen);
                let used = usize::try_from(want).map_or(input.len(), |w| w.min(input.len()));
                self.take(&input[..used])?;
                Ok((used, self.seen == n))
            }
            Framing::Chunked => {
                let mut used = 0;
                while used < input.len() {
                    let rest = &input[used..];
                    match self.chunks.decode(rest) {
                        Ok(Decoded::Data(range)) => {
                            let end = range.end;
                            self.take(rest.get(range).unwrap_or_default())?;
                            used += end;
                        }
                        // The decoder keeps what it was given.
                        Ok(Decoded::NeedMore) => return Ok((input.len(), false)),
                        Ok(Decoded::Done(n)) => return Ok((used + n, true)),
                        Err(e) => return Err(ClientError::Protocol(format!("response body: {e}"))),
                    }
                }
                Ok((used, false))
            }
            Framing::UntilClose => {
                self.take(input)?;
                Ok((input.len(), false))
            }
        }
    }

    /// The stream ended: the body if that completes it (a body framed by the close),
    /// otherwise the error that says it was cut short.
    pub fn at_eof(self) -> Result<Vec<u8>, ClientError> {
        match self.framing {
            Framing::Empty | Framing::UntilClose => Ok(self.kept),
            Framing::Length(n) => Err(ClientError::Protocol(format!(
                "the server closed the connection after {} of {n} body bytes",
                self.seen
            ))),
            Framing::Chunked => Err(ClientError::Protocol(
                "the server closed the connection in the middle of a chunked body".into(),
            )),
        }
    }

    /// The body bytes kept.
    pub fn into_kept(self) -> Vec<u8> {
        self.kept
    }
}

/// A whole answer read from memory, as the client reads it off a connection: `1xx` heads
/// skipped (101 refused), the head bounded by `HEAD_BYTES_MAX`, the body fed in pieces cut
/// at `cuts` (offsets into what follows the head; the stream ends after `input`). Returns the
/// status, the raw `Retry-After` and the body kept, or why the answer does not count.
pub fn parse_whole(
    input: &[u8],
    cuts: &[usize],
    keep_max: usize,
) -> Result<(u16, Option<String>, Vec<u8>), ClientError> {
    let mut pos = 0;
    let head = loop {
        let rest = &input[pos..];
        let window = &rest[..rest.len().min(HEAD_BYTES_MAX)];
        match parse_head(window).map_err(ClientError::Protocol)? {
            None => {
                return Err(ClientError::Protocol(
                    "no whole response head within the bounds".into(),
                ))
            }
            Some((head, n)) => {
                pos += n;
                if head.status == 101 {
                    return Err(ClientError::Protocol(
                        "the server switched protocols".into(),
                    ));
                }
                if !(100..200).contains(&head.status) {
                    break head;
                }
            }
        }
    };
    let mut body = BodyReader::new(head.framing, keep_max)?;
    let rest = &input[pos..];
    let mut at = 0;
    let mut ends: Vec<usize> = cuts.iter().map(|&c| c.min(rest.len())).collect();
    ends.sort_unstable();
    ends.push(rest.len());
    for end in ends {
        // Each piece as it would arrive; what the reader leaves is offered again with the
        // next one, as the connection's buffer does.
        while at < end {
            let (used, done) = body.feed(&rest[at..end])?;
            at += used;
            if done {
                return Ok((head.status, head.retry_after, body.into_kept()));
            }
            if used == 0 {
                break;
            }
        }
    }
    body.at_eof()
        .map(|kept| (head.status, head.retry_after, kept))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> Result<Option<(Head, usize)>, String> {
        parse_head(raw.as_bytes())
    }

    #[test]
    fn heads_give_status_framing_and_keep_alive() {
        use Framing::*;
        let cases: &[(&str, u16, Framing, bool)] = &[
            (
                "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n",
                200,
                Length(5),
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n",
                200,
                Length(5),
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
                200,
                Length(0),
                false,
            ),
            (
                "HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n",
                201,
                Chunked,
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, Chunked\r\n\r\n",
                200,
                Chunked,
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n",
                200,
                UntilClose,
                false,
            ),
            (
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n",
                200,
                Chunked,
                false,
            ),
            ("HTTP/1.1 200 OK\r\n\r\n", 200, UntilClose, false),
            ("HTTP/1.1 204 No Content\r\n\r\n", 204, Empty, true),
            (
                "HTTP/1.1 304 Not Modified\r\ncontent-length: 9\r\n\r\n",
                304,
                Empty,
                true,
            ),
            ("HTTP/1.1 100 Continue\r\n\r\n", 100, Empty, true),
            (
                "HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n",
                200,
                Length(1),
                false,
            ),
            (
                "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\ncontent-length: 1\r\n\r\n",
                200,
                Length(1),
                true,
            ),
            (
                "HTTP/1.1 302 Found\r\nlocation: http://elsewhere/\r\ncontent-length: 0\r\n\r\n",
                302,
                Length(0),
                true,
            ),
        ];
        for &(raw, status, framing, keep_alive) in cases {
            let (h, n) = head(raw).expect(raw).expect(raw);
            assert_eq!(n, raw.len(), "{raw}");
            assert_eq!(
                (h.status, h.framing, h.keep_alive),
                (status, framing, keep_alive),
                "{raw}"
            );
        }
    }

    #[test]
    fn heads_that_are_partial_or_broken() {
        assert_eq!(head("HTTP/1.1 200 OK\r\ncontent-len"), Ok(None));
        for bad in [
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 0x10\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999999\r\n\r\n",
            "HTTP/2 200\r\n\r\n",
            "SMTP 220 hello\r\n\r\n",
        ] {
            assert!(head(bad).is_err(), "{bad}");
        }
        let many: String = (0..=HEADERS_MAX).map(|i| format!("x-{i}: y\r\n")).collect();
        let err = head(&format!("HTTP/1.1 200 OK\r\n{many}\r\n")).unwrap_err();
        assert!(err.contains("header fields"), "{err}");
    }

    #[test]
    fn retry_after_is_trimmed_and_bounded() {
        let (h, _) =
            head("HTTP/1.1 429 Too Many\r\nRetry-After:  120 \r\ncontent-length: 0\r\n\r\n")
                .unwrap()
                .unwrap();
        assert_eq!(h.retry_after.as_deref(), Some("120"));
        let long = "9".repeat(500);
        let (h, _) = head(&format!("HTTP/1.1 503 X\r\nretry-after: {long}\r\n\r\n"))
            .unwrap()
            .unwrap();
        assert_eq!(h.retry_after.unwrap().len(), RETRY_AFTER_BYTES_MAX);
    }

    #[test]
    fn bodies_count_only_whole() {
        let ok = |raw: &str, cuts: &[usize]| parse_whole(raw.as_bytes(), cuts, 8);
        assert_eq!(
            ok("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello", &[1, 3]),
            Ok((200, None, b"hello".to_vec()))
        );
        assert_eq!(
            ok(
                "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 C\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n6\r\ndefghi\r\n0\r\n\r\n",
                &[2, 9, 14]
            ),
            Ok((201, None, b"abcdefgh".to_vec()))
        );
        assert_eq!(
            ok("HTTP/1.1 200 OK\r\n\r\nuntil the close", &[4]),
            Ok((200, None, b"until th".to_vec()))
        );
        for bad in [
            "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort",
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nffffffffffffffffffffff\r\nabc",
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 99999999\r\n\r\n",
            "HTTP/1.1 101 Switching\r\n\r\n",
            "HTTP/1.1 100 Continue\r\n\r\n",
            "HTTP/1.1 2x0 OK\r\n\r\n",
            "\u{0}\u{1}garbage",
        ] {
            assert!(ok(bad, &[3]).is_err(), "{bad:?}");
        }
        // An endless body is cut at the limit, not read forever.
        let mut endless = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        while endless.len() < DRAIN_BYTES_MAX + (64 << 10) {
            endless.extend_from_slice(b"400\r\n");
            endless.resize(endless.len() + 0x400, b'z');
            endless.extend_from_slice(b"\r\n");
        }
        let err = parse_whole(&endless, &[], 8).unwrap_err();
        assert!(err.to_string().contains("longer than"), "{err}");
    }
}
