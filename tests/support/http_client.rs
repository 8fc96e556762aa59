//! A raw HTTP/1.1 client for `tests/http.rs`: writes exactly the bytes a test gives and
//! reads responses one at a time, over plain TCP or rustls. Every read has a 5 s timeout, so
//! a server that hangs fails the test instead of blocking it.

#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long a test waits for any byte before failing.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// One response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// Names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// The first header called `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Asserts this is an error answer of the HTTP layer: `status`, JSON `{"code","detail"}`
    /// with `code`, and `connection: close`.
    #[track_caller]
    pub fn assert_refusal(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.header("content-type"), Some("application/json"));
        let json = self.json();
        assert_eq!(json["code"], code, "{json}");
        assert!(
            json["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{json}"
        );
        assert_eq!(self.header("connection"), Some("close"), "{self:?}");
    }
}

/// A connection to the server under test.
#[derive(Debug)]
pub struct Client<S> {
    pub stream: S,
    buf: Vec<u8>,
}

impl Client<TcpStream> {
    /// A plain TCP connection.
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        Self::new(stream)
    }
}

impl<S: Read + Write> Client<S> {
    /// A client over an established stream.
    pub fn new(stream: S) -> Self {
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    /// Writes `bytes` in one call.
    #[track_caller]
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream.write_all(bytes.as_ref()).expect("write");
        self.stream.flush().expect("flush");
    }

    /// Sends a request with `host` and, for a body, `content-length`, then reads the reply.
    #[track_caller]
    pub fn request(&mut self, method: &str, target: &str, body: &[u8]) -> Reply {
        self.send(request_bytes(method, target, body));
        self.read_reply()
    }

    /// Reads the next response, its body framed by `content-length`.
    #[track_caller]
    pub fn read_reply(&mut self) -> Reply {
        self.read_reply_with(false)
            .expect("the server closed instead of answering")
    }

    /// Reads the next response to a HEAD request (no body whatever `content-length` says).
    #[track_caller]
    pub fn read_head_reply(&mut self) -> Reply {
        self.read_reply_with(true)
            .expect("the server closed instead of answering")
    }

    /// The next response, or `None` if the connection ends first.
    #[track_caller]
    pub fn try_read_reply(&mut self) -> Option<Reply> {
        self.read_reply_with(false)
    }

    #[track_caller]
    fn read_reply_with(&mut self, head: bool) -> Option<Reply> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&self.buf).expect("a well-formed response") {
                httparse::Status::Complete(head_len) => {
                    let status = resp.code.expect("status");
                    let headers: Vec<(String, String)> = resp
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_ascii_lowercase(),
                                String::from_utf8(h.value.to_vec()).expect("ASCII header"),
                            )
                        })
                        .collect();
                    let length = headers
                        .iter()
                        .find(|(n, _)| n == "content-length")
                        .map(|(_, v)| v.parse::<usize>().expect("numeric content-length"));
                    let bodiless = head || status < 200 || status == 204 || status == 304;
                    let body_len = if bodiless { 0 } else { length.unwrap_or(0) };
                    while self.buf.len() < head_len + body_len {
                        assert!(self.fill(), "the server closed in the middle of a body");
                    }
                    let body = self.buf[head_len..head_len + body_len].to_vec();
                    self.buf.drain(..head_len + body_len);
                    return Some(Reply {
                        status,
                        headers,
                        body,
                    });
                }
                httparse::Status::Partial => {
                    if !self.fill() {
                        assert!(
                            self.buf.is_empty(),
                            "the server closed in the middle of a response: {:?}",
                            String::from_utf8_lossy(&self.buf)
                        );
                        return None;
                    }
                }
            }
        }
    }

    /// Reads more bytes; false at the end of the stream (a reset counts as the end).
    #[track_caller]
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 << 10];
        match self.stream.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionReset | ErrorKind::UnexpectedEof
                ) =>
            {
                false
            }
            Err(e) => panic!("reading a reply: {e} (no answer within {READ_TIMEOUT:?}?)"),
        }
    }

    /// Asserts the server closes the connection with no further bytes.
    #[track_caller]
    pub fn expect_closed(&mut self) {
        let more = self.fill();
        assert!(
            !more && self.buf.is_empty(),
            "expected the connection to be closed, got {:?}",
            String::from_utf8_lossy(&self.buf)
        );
    }
}

impl Client<TcpStream> {
    /// Asserts the server ends the connection with a FIN and no further bytes, not a reset
    /// (which can destroy an answer the client has not read yet).
    #[track_caller]
    pub fn expect_clean_close(&mut self) {
        assert!(
            self.buf.is_empty(),
            "unread bytes: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            Ok(0) => {}
            Ok(_) => panic!("expected the end of the stream, got more bytes"),
            Err(e) => panic!("expected a clean close, got {e}"),
        }
    }
}

/// A request with `host` and, when `body` is not empty, `content-length`.
pub fn request_bytes(method: &str, target: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\nhost: test\r\n").into_bytes();
    if !body.is_empty() {
        out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}
