//! Responses to bytes: the status line, the handler's headers, the headers the server owns
//! (`date`, `content-length`, `connection`) and the body, appended to a reused buffer.
//!
//! Body rules (RFC 9110 §6.4.1, §9.3.2): a response to HEAD carries the headers a GET
//! would, `content-length` included, and no body; 1xx, 204 and 304 responses have no body,
//! and 1xx and 204 no `content-length`. The handler's own `content-length`,
//! `transfer-encoding`, `date` and `connection` headers are not copied (the server frames
//! every response itself), except that a HEAD or 304 response with an empty body keeps the
//! handler's `content-length`, which then states the length a GET would have had. A header
//! value holding CR, LF or NUL is dropped rather than let split the response.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

use super::message::Response;

/// What the `connection` header of a response says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionHeader {
    /// Nothing: HTTP/1.1 keep-alive.
    Omit,
    /// `connection: keep-alive`, for an HTTP/1.0 client that asked for it.
    KeepAlive,
    /// `connection: close`: the server closes after this response.
    Close,
}

/// The reason phrase hookd sends with `status` (empty for codes it does not name).
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        507 => "Insufficient Storage",
        _ => "",
    }
}

/// Whether the handler asked for the connection to close (`connection: close`).
pub fn asks_to_close(resp: &Response) -> bool {
    resp.headers.iter().any(|(name, value)| {
        name.eq_ignore_ascii_case("connection")
            && value
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("close"))
    })
}

/// Appends `resp` to `out` as the answer to a request (`head_request`: the request was HEAD).
pub fn encode_response(
    out: &mut Vec<u8>,
    resp: &Response,
    head_request: bool,
    connection: ConnectionHeader,
    date: &[u8; DATE_LEN],
) {
    // A status outside 100..=999 is a handler bug; answer something well-formed instead.
    let status = if (100..=999).contains(&resp.status) {
        resp.status
    } else {
        tracing::error!(status = resp.status, "handler returned an invalid status");
        500
    };
    let no_body = status < 200 || status == 204 || status == 304;
    let length_allowed = status >= 200 && status != 204;
    let keep_handler_length =
        length_allowed && resp.body.is_empty() && (head_request || status == 304);

    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\n");

    let mut length_written = false;
    for (name, value) in &resp.headers {
        let is_length = name.eq_ignore_ascii_case("content-length");
        let server_owned = is_length
            || name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("date")
            || name.eq_ignore_ascii_case("connection");
        let handler_length = is_length
            && keep_handler_length
            && !length_written
            && !value.is_empty()
            && value.bytes().all(|b| b.is_ascii_digit());
        if server_owned && !handler_length {
            continue;
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            tracing::error!(
                header = name,
                "dropped a response header value with CR, LF or NUL"
            );
            continue;
        }
        length_written |= is_length;
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }

    out.extend_from_slice(b"date: ");
    out.extend_from_slice(date);
    out.extend_from_slice(b"\r\n");
    if !length_written && !no_body {
        out.extend_from_slice(b"content-length: ");
        push_decimal(out, resp.body.len() as u64);
        out.extend_from_slice(b"\r\n");
    }
    match connection {
        ConnectionHeader::Omit => {}
        ConnectionHeader::KeepAlive => out.extend_from_slice(b"connection: keep-alive\r\n"),
        ConnectionHeader::Close => out.extend_from_slice(b"connection: close\r\n"),
    }
    out.extend_from_slice(b"\r\n");
    if !no_body && !head_request {
        out.extend_from_slice(&resp.body);
    }
}

/// The interim `100 Continue` response.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Appends `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Bytes of an IMF-fixdate such as `Sun, 06 Nov 1994 08:49:37 GMT`.
pub const DATE_LEN: usize = 29;

thread_local! {
    /// The `date` of this shard's responses: (Unix second, its IMF-fixdate).
    static DATE: Cell<(u64, [u8; DATE_LEN])> = const { Cell::new((u64::MAX, [0; DATE_LEN])) };
}

/// The current time as an IMF-fixdate, formatted at most once a second per thread.
pub fn http_date_now() -> [u8; DATE_LEN] {
    // The wall clock, not the injected one: `date` is informational and must be real time.
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE.with(|cache| {
        let (cached_secs, cached) = cache.get();
        if cached_secs == secs {
            return cached;
        }
        let date = format_http_date(secs);
        cache.set((secs, date));
        date
    })
}

/// `secs` since the Unix epoch as an IMF-fixdate (RFC 9110 §5.6.7), by `httpdate` (years
/// past 9999 are shown as 9999-12-31 23:59:59).
pub fn format_http_date(secs: u64) -> [u8; DATE_LEN] {
    const LAST: u64 = 253_402_300_799; // 9999-12-31T23:59:59Z, httpdate's last date
    let at = UNIX_EPOCH + std::time::Duration::from_secs(secs.min(LAST));
    let text = httpdate::fmt_http_date(at);
    let mut out = [b' '; DATE_LEN];
    let n = text.len().min(DATE_LEN);
    out[..n].copy_from_slice(&text.as_bytes()[..n]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &[u8; DATE_LEN] = b"Sun, 06 Nov 1994 08:49:37 GMT";

    fn encode(resp: &Response, head: bool, connection: ConnectionHeader) -> String {
        let mut out = Vec::new();
        encode_response(&mut out, resp, head, connection, DATE);
        String::from_utf8(out).expect("ASCII")
    }

    #[test]
    fn http_dates_match_known_instants() {
        assert_eq!(&format_http_date(784_111_777), DATE);
        assert_eq!(&format_http_date(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            &format_http_date(951_782_400),
            b"Tue, 29 Feb 2000 00:00:00 GMT"
        );
        assert_eq!(
            &format_http_date(1_709_251_199),
            b"Thu, 29 Feb 2024 23:59:59 GMT"
        );
        assert_eq!(
            &format_http_date(4_102_444_800),
            b"Fri, 01 Jan 2100 00:00:00 GMT"
        );
    }

    #[test]
    fn a_json_response_gets_date_and_content_length() {
        let resp = Response::json(200, b"{\"a\":1}".to_vec());
        assert_eq!(
            encode(&resp, false, ConnectionHeader::Omit),
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
             date: Sun, 06 Nov 1994 08:49:37 GMT\r\ncontent-length: 7\r\n\r\n{\"a\":1}"
        );
    }

    #[test]
    fn connection_headers_are_written_as_asked() {
        let resp = Response::empty(202);
        let close = encode(&resp, false, ConnectionHeader::Close);
        assert!(close.contains("\r\nconnection: close\r\n"), "{close}");
        let keep = encode(&resp, false, ConnectionHeader::KeepAlive);
        assert!(keep.contains("\r\nconnection: keep-alive\r\n"), "{keep}");
        assert!(!encode(&resp, false, ConnectionHeader::Omit).contains("connection"));
    }

    #[test]
    fn a_head_response_has_the_get_headers_and_no_body() {
        let resp = Response::json(200, b"{\"a\":1}".to_vec());
        let text = encode(&resp, true, ConnectionHeader::Omit);
        assert!(text.ends_with("content-length: 7\r\n\r\n"), "{text}");
        // A handler that already dropped the body states the length itself.
        let resp = Response::empty(200).with_header("content-length", "42");
        let text = encode(&resp, true, ConnectionHeader::Omit);
        assert_eq!(text.matches("content-length").count(), 1, "{text}");
        assert!(text.contains("content-length: 42\r\n"), "{text}");
        // ...but only a well-formed one.
        let resp = Response::empty(200).with_header("content-length", "4 2");
        let text = encode(&resp, true, ConnectionHeader::Omit);
        assert!(text.contains("content-length: 0\r\n"), "{text}");
    }

    #[test]
    fn bodiless_statuses_have_no_body_and_204_no_length() {
        let resp = Response::json(204, b"ignored".to_vec());
        let text = encode(&resp, false, ConnectionHeader::Omit);
        assert!(!text.contains("content-length"), "{text}");
        assert!(text.ends_with("\r\n\r\n"), "{text}");
        let resp = Response::json(304, b"ignored".to_vec());
        let text = encode(&resp, false, ConnectionHeader::Omit);
        assert!(
            text.ends_with("\r\n\r\n") && !text.contains("ignored"),
            "{text}"
        );
    }

    #[test]
    fn framing_headers_of_the_handler_are_replaced() {
        let resp = Response::json(200, b"abc".to_vec())
            .with_header("content-length", "999")
            .with_header("Transfer-Encoding", "chunked")
            .with_header("date", "yesterday")
            .with_header("connection", "close");
        let text = encode(&resp, false, ConnectionHeader::Close);
        assert!(!text.contains("999") && !text.contains("chunked"), "{text}");
        assert!(!text.contains("yesterday"), "{text}");
        assert_eq!(text.matches("connection").count(), 1, "{text}");
        assert!(text.ends_with("content-length: 3\r\nconnection: close\r\n\r\nabc"));
        assert!(asks_to_close(&resp));
        assert!(!asks_to_close(&Response::empty(200)));
    }

    #[test]
    fn header_values_that_would_split_the_response_are_dropped() {
        let resp = Response::empty(200)
            .with_header("x-evil", "a\r\nx-injected: 1")
            .with_header("x-fine", "ok");
        let text = encode(&resp, false, ConnectionHeader::Omit);
        assert!(
            !text.contains("injected") && text.contains("x-fine: ok\r\n"),
            "{text}"
        );
    }

    #[test]
    fn unknown_and_invalid_statuses() {
        let text = encode(&Response::empty(299), false, ConnectionHeader::Omit);
        assert!(text.starts_with("HTTP/1.1 299 \r\n"), "{text}");
        let text = encode(&Response::empty(42), false, ConnectionHeader::Omit);
        assert!(
            text.starts_with("HTTP/1.1 500 Internal Server Error\r\n"),
            "{text}"
        );
    }
}
