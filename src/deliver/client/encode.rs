//! The request as the client writes it: `POST`, framing headers of its own, the caller's
//! headers (those with CR, LF or NUL refused), then the body.

use std::fmt::Write as _;

use super::ClientError;
use crate::model::url::Url;

/// Header names the client writes itself; the caller's are dropped.
const FRAMING_HEADERS: [&str; 4] = ["host", "content-length", "transfer-encoding", "connection"];

/// The whole request: head and body.
pub(super) fn encode_request(
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
}
