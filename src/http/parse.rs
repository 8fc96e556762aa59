//! Sans-IO request framing: the request head (around httparse) and chunked bodies.
//!
//! Nothing here reads a socket or a clock. [`parse_head`] is a pure function over `&[u8]`;
//! [`HeadParser`] is the same with memory between calls, so that a head arriving a byte at a
//! time costs linear work; [`ChunkedDecoder`] is an incremental state machine fed whatever
//! bytes have arrived. That makes every framing rule unit-testable and the module easy to
//! fuzz.
//!
//! The rules (RFC 9112 unless noted), each answered with [`HeadError`] or [`ChunkedError`]:
//! - request line and headers at most `header_bytes_max` bytes and `headers_count_max`
//!   lines (431), target at most `uri_bytes_max` (414), checked while the head is still
//!   arriving so that an oversized head is refused before it is complete;
//! - only `HTTP/1.0` and `HTTP/1.1`; leading empty lines are skipped; obs-fold (a header
//!   line starting with whitespace), whitespace before a colon and bare CR are refused (400);
//! - HTTP/1.1 needs exactly one `Host` (400);
//! - `Content-Length` is `1*DIGIT` (OWS around it is not part of the value, RFC 9110 §5.5);
//!   repeated or listed values must all be equal; anything else is 400, a length over
//!   `body_bytes_max` is 413 before any body byte is read;
//! - `Transfer-Encoding` must end in `chunked`, name it once, and name nothing else (hookd
//!   decodes no other coding); it is refused beside `Content-Length` and in HTTP/1.0 (400);
//! - `Expect: 100-continue` is the only expectation (417 otherwise); HTTP/1.0 expectations
//!   are ignored;
//! - HTTP/1.1 is keep-alive unless `Connection: close`; HTTP/1.0 closes unless
//!   `Connection: keep-alive`;
//! - chunk sizes are 1 to 16 hex digits (either case), extensions are skipped, trailers are
//!   read and dropped, every line ends in CRLF; extensions and trailers together are bounded
//!   by `header_bytes_max`; declared chunk sizes are summed against `body_bytes_max` (413).

use std::mem::MaybeUninit;
use std::ops::Range;

use thiserror::Error;

use super::limits::{Limits, HEADERS_COUNT_LIMIT};
use super::message::Method;

/// How a request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    None,
    /// Exactly this many bytes follow the head (at most `body_bytes_max`).
    Length(usize),
    /// A chunked body follows; decode it with [`ChunkedDecoder`].
    Chunked,
}

/// A complete, validated request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// The method.
    pub method: Method,
    /// The target in origin form (`/path?query`): an absolute-form target
    /// (`http://host/path`) is reduced to its path and query; `*` and authority-form are kept.
    pub target: String,
    /// Every header line, in order: names lowercased, values as sent without surrounding OWS.
    pub headers: Vec<(String, Vec<u8>)>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// How the body is delimited.
    pub framing: BodyFraming,
    /// Whether the client lets the connection stay open after this request.
    pub keep_alive: bool,
    /// HTTP/1.1 `Expect: 100-continue` on a request that has a body.
    pub expect_continue: bool,
    /// Bytes of the head (request line, headers and the empty line) at the start of the
    /// parsed buffer; the body, or the next request, starts there.
    pub head_bytes: usize,
}

/// The result of looking at the bytes of a head so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadStatus {
    /// The head is complete and valid.
    Complete(RequestHead),
    /// More bytes are needed; nothing seen so far breaks a rule.
    Partial,
}

/// Why a request head is refused. Each maps to the status the server answers with; every
/// one of them closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HeadError {
    /// 431: the request line and headers are longer than `header_bytes_max`.
    #[error("the request line and headers exceed the limit of {limit} bytes")]
    HeadersTooLarge {
        /// `header_bytes_max`.
        limit: usize,
    },
    /// 431: more header lines than `headers_count_max`.
    #[error("the request has more than {limit} headers")]
    TooManyHeaders {
        /// `headers_count_max`.
        limit: usize,
    },
    /// 414: the target is longer than `uri_bytes_max`.
    #[error("the request target exceeds the limit of {limit} bytes")]
    UriTooLong {
        /// `uri_bytes_max`.
        limit: usize,
    },
    /// 413: the `Content-Length` is larger than `body_bytes_max`.
    #[error("the request body exceeds the limit of {limit} bytes")]
    BodyTooLarge {
        /// `body_bytes_max`.
        limit: usize,
    },
    /// 400: the request line or a header line is not HTTP/1.1 syntax.
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    /// 400: a version other than HTTP/1.0 or HTTP/1.1.
    #[error("unsupported or invalid HTTP version; hookd speaks HTTP/1.1 and HTTP/1.0")]
    UnsupportedVersion,
    /// 400: a `Content-Length` that is not one decimal number.
    #[error("invalid content-length: {0}")]
    InvalidContentLength(&'static str),
    /// 400: a `Transfer-Encoding` hookd cannot decode.
    #[error("invalid transfer-encoding: {0}")]
    InvalidTransferEncoding(&'static str),
    /// 400: both `Content-Length` and `Transfer-Encoding`.
    #[error("both content-length and transfer-encoding are present")]
    ConflictingFraming,
    /// 400: no `Host` in HTTP/1.1, or more than one.
    #[error("{0}")]
    InvalidHost(&'static str),
    /// 417: an `Expect` other than `100-continue`.
    #[error("unsupported expectation; only \"Expect: 100-continue\" is supported")]
    ExpectationFailed,
}

impl HeadError {
    /// The status the server answers with.
    pub fn status(&self) -> u16 {
        match self {
            Self::HeadersTooLarge { .. } | Self::TooManyHeaders { .. } => 431,
            Self::UriTooLong { .. } => 414,
            Self::BodyTooLarge { .. } => 413,
            Self::ExpectationFailed => 417,
            Self::Malformed(_)
            | Self::UnsupportedVersion
            | Self::InvalidContentLength(_)
            | Self::InvalidTransferEncoding(_)
            | Self::ConflictingFraming
            | Self::InvalidHost(_) => 400,
        }
    }

    /// The machine-readable `code` of the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::HeadersTooLarge { .. } => "headers_too_large",
            Self::TooManyHeaders { .. } => "too_many_headers",
            Self::UriTooLong { .. } => "uri_too_long",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::Malformed(_) => "malformed_request",
            Self::UnsupportedVersion => "unsupported_http_version",
            Self::InvalidContentLength(_) => "invalid_content_length",
            Self::InvalidTransferEncoding(_) => "invalid_transfer_encoding",
            Self::ConflictingFraming => "conflicting_framing",
            Self::InvalidHost(_) => "invalid_host",
            Self::ExpectationFailed => "expectation_failed",
        }
    }
}

/// Parses a request head at the start of `buf`, which may also hold the body and further
/// pipelined requests. Pure: the same bytes always give the same answer.
pub fn parse_head(buf: &[u8], limits: &Limits) -> Result<HeadStatus, HeadError> {
    HeadParser::new().parse(buf, limits)
}

/// [`parse_head`] with memory between calls on a growing buffer, so that a head trickling
/// in costs work linear in its length rather than quadratic.
///
/// Call [`HeadParser::parse`] with the same buffer start each time, longer each time; use a
/// new parser (or [`HeadParser::reset`]) for the next request.
#[derive(Debug, Clone, Default)]
pub struct HeadParser {
    /// Calls so far for this head.
    calls: u32,
    /// Bytes already searched for the empty line that ends a head.
    end_scanned: usize,
    /// Progress through the request line, for refusing a long target early.
    line: LineScan,
}

/// Where [`HeadParser`] is in the request line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum LineScan {
    /// Skipping empty lines before the request line.
    #[default]
    Leading,
    /// In the method; `pos` is the next byte to look at.
    Method { pos: usize },
    /// In the target, which starts at `start`.
    Target { start: usize, pos: usize },
    /// The target has ended (its length is checked by the full parse).
    Done,
}

impl HeadParser {
    /// A parser for a new head.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets everything, for the next request.
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// Looks at the head at the start of `buf` (everything received for this request so far).
    pub fn parse(&mut self, buf: &[u8], limits: &Limits) -> Result<HeadStatus, HeadError> {
        if buf.len() < self.end_scanned {
            // Not the growing buffer of one head (a misuse, or a fuzzer): start over.
            self.reset();
        }
        // httparse runs on the first look and then only when the empty line that ends a head
        // may have arrived, so a head sent a byte at a time is not re-parsed for every byte.
        let from = self.end_scanned.saturating_sub(2);
        let first = self.calls == 0;
        self.calls = self.calls.saturating_add(1);
        self.end_scanned = buf.len();
        if first || has_head_end(&buf[from.min(buf.len())..]) {
            if let HeadStatus::Complete(head) = parse_full(buf, limits)? {
                return Ok(HeadStatus::Complete(head));
            }
        }
        self.check_partial(buf, limits)?;
        Ok(HeadStatus::Partial)
    }

    /// The limits that apply to an incomplete head: the target so far, then the bytes so far.
    fn check_partial(&mut self, buf: &[u8], limits: &Limits) -> Result<(), HeadError> {
        loop {
            match self.line {
                LineScan::Leading => match buf.iter().position(|&b| b != b'\r' && b != b'\n') {
                    Some(pos) => self.line = LineScan::Method { pos },
                    None => break,
                },
                LineScan::Method { pos } => {
                    match buf[pos..].iter().position(|&b| b == b' ' || b == b'\n') {
                        Some(i) if buf[pos + i] == b' ' => {
                            let start = pos + i + 1;
                            self.line = LineScan::Target { start, pos: start };
                        }
                        // A request line without a target: httparse has already said no,
                        // or will when the head ends.
                        Some(_) => self.line = LineScan::Done,
                        None => {
                            self.line = LineScan::Method { pos: buf.len() };
                            break;
                        }
                    }
                }
                LineScan::Target { start, pos } => {
                    match buf[pos..].iter().position(|&b| b == b' ' || b == b'\n') {
                        Some(i) => {
                            if pos + i - start > limits.uri_bytes_max {
                                return Err(HeadError::UriTooLong {
                                    limit: limits.uri_bytes_max,
                                });
                            }
                            self.line = LineScan::Done;
                        }
                        None => {
                            if buf.len() - start > limits.uri_bytes_max {
                                return Err(HeadError::UriTooLong {
                                    limit: limits.uri_bytes_max,
                                });
                            }
                            self.line = LineScan::Target {
                                start,
                                pos: buf.len(),
                            };
                            break;
                        }
                    }
                }
                LineScan::Done => break,
            }
        }
        if buf.len() > limits.header_bytes_max {
            return Err(HeadError::HeadersTooLarge {
                limit: limits.header_bytes_max,
            });
        }
        Ok(())
    }
}

/// Whether `bytes` holds an empty line (`\n\n` or `\n\r\n`), which is where a head ends.
fn has_head_end(bytes: &[u8]) -> bool {
    bytes.windows(2).any(|w| w == b"\n\n") || bytes.windows(3).any(|w| w == b"\n\r\n")
}

/// Runs httparse over `buf` and validates a complete head.
fn parse_full(buf: &[u8], limits: &Limits) -> Result<HeadStatus, HeadError> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; HEADERS_COUNT_LIMIT];
    let count_max = limits.headers_count_max.clamp(1, HEADERS_COUNT_LIMIT);
    let mut req = httparse::Request::new(&mut []);
    let head_bytes = match req.parse_with_uninit_headers(buf, &mut slots[..count_max]) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(HeadStatus::Partial),
        Err(e) => return Err(map_httparse_error(e, buf, limits)),
    };
    let (Some(method), Some(target), Some(minor_version)) = (req.method, req.path, req.version)
    else {
        return Err(HeadError::Malformed("incomplete request line"));
    };
    if target.len() > limits.uri_bytes_max {
        return Err(HeadError::UriTooLong {
            limit: limits.uri_bytes_max,
        });
    }
    if head_bytes > limits.header_bytes_max {
        return Err(HeadError::HeadersTooLarge {
            limit: limits.header_bytes_max,
        });
    }
    let http11 = minor_version == 1;

    let facts = HeaderFacts::scan(req.headers)?;
    match (http11, facts.hosts) {
        (true, 0) => return Err(HeadError::InvalidHost("HTTP/1.1 requires a Host header")),
        (_, 2..) => return Err(HeadError::InvalidHost("more than one Host header")),
        _ => {}
    }
    let HeaderFacts {
        content_length,
        te,
        close,
        keep_alive_token,
        expect_continue,
        expect_other,
        headers,
        ..
    } = facts;
    let framing = body_framing(te, content_length, http11, limits)?;
    // RFC 9110 §10.1.1: an HTTP/1.0 expectation is ignored.
    if http11 && expect_other {
        return Err(HeadError::ExpectationFailed);
    }
    Ok(HeadStatus::Complete(RequestHead {
        method: Method::from_token(method),
        target: origin_form(target),
        headers,
        minor_version,
        framing,
        keep_alive: if http11 {
            !close
        } else {
            keep_alive_token && !close
        },
        expect_continue: http11 && expect_continue && framing != BodyFraming::None,
        head_bytes,
    }))
}

/// What a head's headers say about framing, the connection and expectations, and the
/// headers themselves with lowercased names.
struct HeaderFacts {
    content_length: Option<u64>,
    te: TransferCodings,
    close: bool,
    keep_alive_token: bool,
    expect_continue: bool,
    expect_other: bool,
    hosts: u32,
    headers: Vec<(String, Vec<u8>)>,
}

impl HeaderFacts {
    fn scan(parsed: &[httparse::Header<'_>]) -> Result<Self, HeadError> {
        let mut facts = HeaderFacts {
            content_length: None,
            te: TransferCodings::default(),
            close: false,
            keep_alive_token: false,
            expect_continue: false,
            expect_other: false,
            hosts: 0,
            headers: Vec::with_capacity(parsed.len()),
        };
        for h in parsed {
            let name = h.name;
            if name.eq_ignore_ascii_case("content-length") {
                let n = parse_content_length(h.value)?;
                if facts.content_length.is_some_and(|m| m != n) {
                    return Err(HeadError::InvalidContentLength(
                        "several content-length values that differ",
                    ));
                }
                facts.content_length = Some(n);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                facts.te.add(h.value)?;
            } else if name.eq_ignore_ascii_case("connection") {
                for token in list_elements(h.value) {
                    if token.eq_ignore_ascii_case(b"close") {
                        facts.close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        facts.keep_alive_token = true;
                    }
                }
            } else if name.eq_ignore_ascii_case("expect") {
                if h.value.eq_ignore_ascii_case(b"100-continue") {
                    facts.expect_continue = true;
                } else {
                    facts.expect_other = true;
                }
            } else if name.eq_ignore_ascii_case("host") {
                facts.hosts += 1;
            }
            facts
                .headers
                .push((name.to_ascii_lowercase(), h.value.to_vec()));
        }
        Ok(facts)
    }
}

/// How the body is framed (RFC 9112 §6.3), refusing both framings at once, chunked in
/// HTTP/1.0, and a length over the body limit.
fn body_framing(
    te: TransferCodings,
    content_length: Option<u64>,
    http11: bool,
    limits: &Limits,
) -> Result<BodyFraming, HeadError> {
    match (te.present, content_length) {
        (true, Some(_)) => Err(HeadError::ConflictingFraming),
        (true, None) if !http11 => Err(HeadError::InvalidTransferEncoding(
            "transfer-encoding is not allowed in HTTP/1.0",
        )),
        (true, None) => {
            te.finish()?;
            Ok(BodyFraming::Chunked)
        }
        (false, Some(0)) | (false, None) => Ok(BodyFraming::None),
        (false, Some(n)) => match usize::try_from(n) {
            Ok(n) if n <= limits.body_bytes_max => Ok(BodyFraming::Length(n)),
            _ => Err(HeadError::BodyTooLarge {
                limit: limits.body_bytes_max,
            }),
        },
    }
}

/// The [`HeadError`] for an httparse error on `buf`.
fn map_httparse_error(e: httparse::Error, buf: &[u8], limits: &Limits) -> HeadError {
    match e {
        httparse::Error::TooManyHeaders => HeadError::TooManyHeaders {
            limit: limits.headers_count_max,
        },
        httparse::Error::Version => HeadError::UnsupportedVersion,
        httparse::Error::Token => HeadError::Malformed("invalid method or request target"),
        httparse::Error::HeaderName if is_obs_fold(buf) => {
            HeadError::Malformed("header line folding (obs-fold) is not allowed")
        }
        httparse::Error::HeaderName => HeadError::Malformed("invalid header name"),
        httparse::Error::HeaderValue => HeadError::Malformed("invalid byte in a header value"),
        httparse::Error::NewLine => HeadError::Malformed("invalid line ending"),
        httparse::Error::Status => HeadError::Malformed("invalid request line"),
    }
}

/// Whether a header line of `buf` starts with whitespace (an obsolete line fold).
fn is_obs_fold(buf: &[u8]) -> bool {
    buf.windows(2)
        .any(|w| w[0] == b'\n' && (w[1] == b' ' || w[1] == b'\t'))
}

/// Parses a `Content-Length` value: one decimal number, or a list of equal ones.
fn parse_content_length(value: &[u8]) -> Result<u64, HeadError> {
    let mut result = None;
    for part in value.split(|&b| b == b',') {
        let digits = trim_ows(part);
        if digits.is_empty() {
            return Err(HeadError::InvalidContentLength("empty value"));
        }
        let mut n: u64 = 0;
        for &b in digits {
            if !b.is_ascii_digit() {
                return Err(HeadError::InvalidContentLength(
                    "not a non-negative decimal number",
                ));
            }
            // An overflowing length is a valid number, just far too large (413 below).
            n = n.saturating_mul(10).saturating_add(u64::from(b - b'0'));
        }
        if result.is_some_and(|m| m != n) {
            return Err(HeadError::InvalidContentLength(
                "several content-length values that differ",
            ));
        }
        result = Some(n);
    }
    result.ok_or(HeadError::InvalidContentLength("empty value"))
}

/// The transfer codings of a request, over every `Transfer-Encoding` line.
#[derive(Debug, Default)]
struct TransferCodings {
    present: bool,
    /// The last coding seen was `chunked`.
    chunked_last: bool,
    /// Some coding other than `chunked` was seen.
    other: bool,
}

impl TransferCodings {
    fn add(&mut self, value: &[u8]) -> Result<(), HeadError> {
        self.present = true;
        for coding in list_elements(value) {
            if self.chunked_last {
                return Err(HeadError::InvalidTransferEncoding(
                    "chunked must be the last coding and appear once",
                ));
            }
            if coding.eq_ignore_ascii_case(b"chunked") {
                self.chunked_last = true;
            } else {
                self.other = true;
            }
        }
        Ok(())
    }

    fn finish(&self) -> Result<(), HeadError> {
        if !self.chunked_last {
            return Err(HeadError::InvalidTransferEncoding(
                "the last transfer coding must be chunked",
            ));
        }
        if self.other {
            return Err(HeadError::InvalidTransferEncoding(
                "only chunked is supported; send the body without other transfer codings",
            ));
        }
        Ok(())
    }
}

/// The non-empty elements of a comma-separated header list, without OWS.
fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

/// `bytes` without leading and trailing spaces and tabs.
fn trim_ows(bytes: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !is_ows(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// An absolute-form target (`http://host/p?q`) reduced to origin form (`/p?q`); any other
/// target as it is.
fn origin_form(target: &str) -> String {
    let bytes = target.as_bytes();
    let scheme_len = if bytes.len() >= 7 && bytes[..7].eq_ignore_ascii_case(b"http://") {
        7
    } else if bytes.len() >= 8 && bytes[..8].eq_ignore_ascii_case(b"https://") {
        8
    } else {
        return target.to_owned();
    };
    // Every byte searched for is ASCII, so the index is a char boundary.
    let rest = &target[scheme_len..];
    match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => rest[i..].to_owned(),
        Some(i) => format!("/{}", &rest[i..]),
        None => "/".to_owned(),
    }
}

/// Why a chunked body is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChunkedError {
    /// 413: the chunk sizes add up to more than `body_bytes_max`.
    #[error("the request body exceeds the limit of {limit} bytes")]
    TooLarge {
        /// `body_bytes_max`.
        limit: usize,
    },
    /// 400: the chunked framing is broken.
    #[error("invalid chunked body: {0}")]
    Invalid(&'static str),
}

impl ChunkedError {
    /// The status the server answers with.
    pub fn status(&self) -> u16 {
        match self {
            Self::TooLarge { .. } => 413,
            Self::Invalid(_) => 400,
        }
    }

    /// The machine-readable `code` of the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "body_too_large",
            Self::Invalid(_) => "invalid_chunked_body",
        }
    }
}

/// What one [`ChunkedDecoder::decode`] call found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// `input[range]` is body data; everything up to `range.end` is consumed.
    Data(Range<usize>),
    /// All of `input` is consumed (framing only); more bytes are needed.
    NeedMore,
    /// The body ended after this many bytes of `input`; what follows belongs to the next
    /// request.
    Done(usize),
}

/// The most hex digits of a chunk size (16 fill a `u64`).
const CHUNK_SIZE_DIGITS_MAX: u8 = 16;

/// An incremental decoder of a `Transfer-Encoding: chunked` body.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: ChunkState,
    /// Sum of the chunk sizes so far.
    body_bytes: u64,
    body_bytes_max: usize,
    /// Bytes of chunk extensions and trailer lines so far.
    overhead_bytes: usize,
    overhead_bytes_max: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// In the hex digits of a chunk size.
    Size { size: u64, digits: u8 },
    /// Whitespace after the size; only `;` may follow.
    SizeSpace { size: u64 },
    /// In a chunk extension, up to the CR.
    Extension { size: u64 },
    /// After the CR of a size line.
    SizeLf { size: u64 },
    /// In chunk data.
    Data { remaining: u64 },
    /// After chunk data, expecting CR.
    DataCr,
    /// After chunk data and CR, expecting LF.
    DataLf,
    /// At the start of a trailer line or of the final CRLF.
    TrailerStart,
    /// In a trailer line, up to the CR.
    Trailer,
    /// After the CR of a trailer line.
    TrailerLf,
    /// After the final CR.
    EndLf,
    /// The body is complete.
    Done,
}

impl ChunkedDecoder {
    /// A decoder for one body, bounded by `limits.body_bytes_max` (data) and
    /// `limits.header_bytes_max` (extensions and trailers).
    pub fn new(limits: &Limits) -> Self {
        Self::with_limits(limits.body_bytes_max, limits.header_bytes_max)
    }

    /// A decoder with explicit bounds.
    pub fn with_limits(body_bytes_max: usize, overhead_bytes_max: usize) -> Self {
        Self {
            state: ChunkState::Size { size: 0, digits: 0 },
            body_bytes: 0,
            body_bytes_max,
            overhead_bytes: 0,
            overhead_bytes_max,
        }
    }

    /// Whether the final chunk and trailers have been read.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Consumes a prefix of `input` and says what it was. Call again with the rest of the
    /// input after `Data`; after `NeedMore`, with new bytes.
    pub fn decode(&mut self, input: &[u8]) -> Result<Decoded, ChunkedError> {
        use ChunkState as S;
        let invalid = |what| Err(ChunkedError::Invalid(what));
        if self.state == S::Done {
            return Ok(Decoded::Done(0));
        }
        let mut i = 0;
        while i < input.len() {
            if let S::Data { remaining } = self.state {
                let available = (input.len() - i) as u64;
                let n = remaining.min(available);
                self.state = if n == remaining {
                    S::DataCr
                } else {
                    S::Data {
                        remaining: remaining - n,
                    }
                };
                // n <= available, which came from a usize.
                return Ok(Decoded::Data(i..i + n as usize));
            }
            let b = input[i];
            i += 1;
            self.state = match self.state {
                S::Size { size, digits } => match hex_value(b) {
                    Some(v) if digits < CHUNK_SIZE_DIGITS_MAX => S::Size {
                        size: size << 4 | u64::from(v),
                        digits: digits + 1,
                    },
                    Some(_) => return invalid("chunk size longer than 16 hex digits"),
                    None if digits == 0 => return invalid("chunk size is not a hex number"),
                    None => {
                        self.add_chunk(size)?;
                        match b {
                            b'\r' => S::SizeLf { size },
                            b'\n' => return invalid("chunk size line not ended by CRLF"),
                            b';' => S::Extension { size },
                            b' ' | b'\t' => S::SizeSpace { size },
                            _ => return invalid("chunk size is not a hex number"),
                        }
                    }
                },
                S::SizeSpace { size } => match b {
                    b' ' | b'\t' => S::SizeSpace { size },
                    b';' => S::Extension { size },
                    _ => return invalid("whitespace after a chunk size"),
                },
                S::Extension { size } => {
                    self.add_overhead()?;
                    match b {
                        b'\r' => S::SizeLf { size },
                        b'\t' | b' '..=b'~' | 0x80.. => S::Extension { size },
                        _ => return invalid("control character in a chunk extension"),
                    }
                }
                S::SizeLf { size } => match (b, size) {
                    (b'\n', 0) => S::TrailerStart,
                    (b'\n', remaining) => S::Data { remaining },
                    _ => return invalid("chunk size line not ended by CRLF"),
                },
                // Handled at the top of the loop; step back and get there.
                S::Data { remaining } => {
                    i -= 1;
                    S::Data { remaining }
                }
                S::DataCr => match b {
                    b'\r' => S::DataLf,
                    _ => return invalid("chunk data not followed by CRLF"),
                },
                S::DataLf => match b {
                    b'\n' => S::Size { size: 0, digits: 0 },
                    _ => return invalid("chunk data not followed by CRLF"),
                },
                S::TrailerStart => match b {
                    b'\r' => S::EndLf,
                    _ => {
                        self.add_overhead()?;
                        self.trailer_byte(b)?
                    }
                },
                S::Trailer => {
                    self.add_overhead()?;
                    self.trailer_byte(b)?
                }
                S::TrailerLf => match b {
                    b'\n' => S::TrailerStart,
                    _ => return invalid("trailer line not ended by CRLF"),
                },
                S::EndLf => match b {
                    b'\n' => {
                        self.state = S::Done;
                        return Ok(Decoded::Done(i));
                    }
                    _ => return invalid("chunked body not ended by CRLF"),
                },
                S::Done => return Ok(Decoded::Done(i - 1)),
            };
        }
        Ok(Decoded::NeedMore)
    }

    /// Counts a chunk of `size` bytes against the body limit.
    fn add_chunk(&mut self, size: u64) -> Result<(), ChunkedError> {
        let total = self.body_bytes.saturating_add(size);
        if total > self.body_bytes_max as u64 {
            return Err(ChunkedError::TooLarge {
                limit: self.body_bytes_max,
            });
        }
        self.body_bytes = total;
        Ok(())
    }

    /// Counts one byte of extension or trailer against its bound.
    fn add_overhead(&mut self) -> Result<(), ChunkedError> {
        self.overhead_bytes += 1;
        if self.overhead_bytes > self.overhead_bytes_max {
            return Err(ChunkedError::Invalid(
                "chunk extensions and trailers are too long",
            ));
        }
        Ok(())
    }

    /// The state after byte `b` of a trailer line.
    fn trailer_byte(&self, b: u8) -> Result<ChunkState, ChunkedError> {
        match b {
            b'\r' => Ok(ChunkState::TrailerLf),
            b'\t' | b' '..=b'~' | 0x80.. => Ok(ChunkState::Trailer),
            _ => Err(ChunkedError::Invalid("control character in a trailer")),
        }
    }
}

/// The value of one hex digit, either case.
fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes a whole chunked body at the start of `input`: the body and the bytes it took, or
/// `None` when `input` ends before the body does. For tests and fuzzing.
pub fn dechunk(input: &[u8], limits: &Limits) -> Result<Option<(Vec<u8>, usize)>, ChunkedError> {
    let mut decoder = ChunkedDecoder::new(limits);
    let mut body = Vec::new();
    let mut pos = 0;
    loop {
        match decoder.decode(&input[pos..])? {
            Decoded::Data(range) => {
                body.extend_from_slice(&input[pos..][range.clone()]);
                pos += range.end;
            }
            Decoded::NeedMore => return Ok(None),
            Decoded::Done(n) => return Ok(Some((body, pos + n))),
        }
    }
}

#[cfg(test)]
mod tests;
