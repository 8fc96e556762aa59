//! A small blocking HTTP/1.1 client over `std::net::TcpStream`, for the commands that ask a
//! running hookd (`hookd status`). One `GET` per connection (`connection: close`), plain HTTP
//! or HTTPS (rustls, trusting the webpki roots plus the certificates of a CA file, as the
//! delivery client does), every step under a timeout, the answer capped at
//! [`RESPONSE_BYTES_MAX`].

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream, ToSocketAddrs},
    path::Path,
    sync::Arc,
    time::Duration,
};

use crate::model::url::Url;

/// The largest answer read.
pub const RESPONSE_BYTES_MAX: usize = 8 << 20;

/// One answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("invalid URL {url:?}: {why}")]
    BadUrl { url: String, why: String },
    #[error("{0}")]
    Tls(String),
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot connect to {addr}: {source} (is hookd running and listening there?)")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("talking to {addr}: {source}")]
    Io {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{addr} sent a malformed HTTP response: {why}")]
    Malformed { addr: SocketAddr, why: String },
}

/// `GET base + path` with `headers`; `timeout` bounds the connect and each read and write.
/// An `https` base is verified against the webpki roots and the certificates in `ca_file`.
pub fn get(
    base: &str,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
    ca_file: Option<&Path>,
) -> Result<Response, HttpError> {
    let url = Url::parse(base).map_err(|why| HttpError::BadUrl {
        url: base.to_owned(),
        why,
    })?;
    let tls = match url.https {
        true => Some(tls_session(&url.host, ca_file)?),
        false => None,
    };
    let prefix = url
        .path
        .split('?')
        .next()
        .unwrap_or("")
        .trim_end_matches('/');
    let target = format!("{prefix}{path}");
    let host = match url.host.contains(':') {
        true => format!("[{}]", url.host),
        false => url.host.clone(),
    };
    let authority = format!("{host}:{}", url.port);
    let addrs: Vec<SocketAddr> = authority
        .to_socket_addrs()
        .map_err(|source| HttpError::Resolve {
            host: url.host.clone(),
            source,
        })?
        .collect();
    let mut last = None;
    for addr in addrs {
        let stream = match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => stream,
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        let io = |source| HttpError::Io { addr, source };
        stream.set_read_timeout(Some(timeout)).map_err(io)?;
        stream.set_write_timeout(Some(timeout)).map_err(io)?;
        let request = request(&authority, &target, headers);
        return match tls {
            Some(session) => {
                let tls_error = |e: std::io::Error| match e.get_ref() {
                    // What the handshake found wrong (an untrusted certificate, say).
                    Some(inner) if e.kind() == std::io::ErrorKind::InvalidData => {
                        HttpError::Tls(format!("TLS with {addr} failed: {inner}"))
                    }
                    _ => io(e),
                };
                let mut stream = rustls::StreamOwned::new(session, stream);
                exchange(&mut stream, &request).map_err(tls_error)
            }
            None => {
                let mut stream = stream;
                exchange(&mut stream, &request).map_err(io)
            }
        }
        .and_then(|buf| read_response(&buf, addr));
    }
    Err(HttpError::Connect {
        addr: authority,
        source: last.unwrap_or_else(|| std::io::Error::other("no address")),
    })
}

/// A TLS client session for `host`, trusting the webpki roots and `ca_file`.
fn tls_session(host: &str, ca_file: Option<&Path>) -> Result<rustls::ClientConnection, HttpError> {
    let config = crate::deliver::client::tls_config(ca_file).map_err(|e| {
        let why = match e {
            crate::deliver::client::ClientError::Tls(why) => why,
            other => other.to_string(),
        };
        HttpError::Tls(why.replace("delivery.ca_file", "--ca-file"))
    })?;
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| HttpError::Tls(format!("{host} is not a TLS server name: {e}")))?;
    rustls::ClientConnection::new(Arc::new(config), name)
        .map_err(|e| HttpError::Tls(format!("TLS with {host}: {e}")))
}

/// The request's bytes: `GET target` with `headers`, the connection closed after it.
fn request(authority: &str, target: &str, headers: &[(&str, &str)]) -> String {
    let mut req = format!(
        "GET {target} HTTP/1.1\r\nhost: {authority}\r\nuser-agent: hookd-cli/{}\r\n\
         accept: application/json\r\nconnection: close\r\n",
        env!("CARGO_PKG_VERSION")
    );
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    req
}

/// Sends `request` and reads until the connection ends (or one byte more than the cap).
fn exchange(stream: &mut (impl Read + Write), request: &str) -> std::io::Result<Vec<u8>> {
    stream.write_all(request.as_bytes())?;
    stream.flush()?;
    let mut buf = Vec::new();
    match stream
        .take(RESPONSE_BYTES_MAX as u64 + 1)
        .read_to_end(&mut buf)
    {
        Ok(_) => Ok(buf),
        // A TLS peer that closes without close_notify: what came is judged by its framing.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !buf.is_empty() => Ok(buf),
        Err(e) => Err(e),
    }
}

fn read_response(buf: &[u8], addr: SocketAddr) -> Result<Response, HttpError> {
    if buf.len() > RESPONSE_BYTES_MAX {
        return Err(HttpError::Malformed {
            addr,
            why: format!("longer than {RESPONSE_BYTES_MAX} bytes"),
        });
    }
    parse(buf).map_err(|why| HttpError::Malformed { addr, why })
}

/// Parses a whole response read to the end of the connection.
fn parse(buf: &[u8]) -> Result<Response, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf).map_err(|e| e.to_string())? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Err("the connection closed inside the head".into()),
    };
    let status = resp.code.ok_or("no status code")?;
    let header = |name: &str| {
        resp.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).into_owned())
    };
    if header("transfer-encoding").is_some() {
        return Err("transfer-encoding is not supported".into());
    }
    let rest = &buf[head_len..];
    let body = match header("content-length") {
        Some(len) => {
            let len: usize = len.trim().parse().map_err(|_| "bad content-length")?;
            rest.get(..len)
                .ok_or("the connection closed inside the body")?
                .to_vec()
        }
        None => rest.to_vec(),
    };
    Ok(Response { status, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_framed_response() {
        let r = parse(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx: y\r\n\r\n{}junk").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"{}"[..]));
        let r = parse(b"HTTP/1.1 401 Unauthorized\r\n\r\nno").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (401, &b"no"[..]));
    }

    #[test]
    fn refuses_broken_responses() {
        for bad in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n{}"[..],
            b"HTTP/1.1 200 OK\r\ncontent-le",
            b"garbage\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn refuses_bad_urls_and_ca_files() {
        let t = Duration::from_secs(1);
        assert!(matches!(
            get("ftp://x", "/x", &[], t, None),
            Err(HttpError::BadUrl { .. })
        ));
        let missing = Path::new("/nonexistent/ca.pem");
        let e = get("https://127.0.0.1:1", "/x", &[], t, Some(missing)).unwrap_err();
        assert!(matches!(e, HttpError::Tls(_)), "{e}");
        assert!(
            e.to_string().contains("--ca-file /nonexistent/ca.pem"),
            "{e}"
        );
    }

    #[test]
    fn talks_to_a_server_and_sends_the_headers() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = Vec::new();
            let mut byte = [0u8; 1];
            while !req.ends_with(b"\r\n\r\n") {
                s.read_exact(&mut byte).unwrap();
                req.push(byte[0]);
            }
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\npong")
                .unwrap();
            String::from_utf8(req).unwrap()
        });
        let base = format!("http://{addr}/prefix/");
        let r = get(
            &base,
            "/ping",
            &[("authorization", "Bearer t")],
            Duration::from_secs(5),
            None,
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"pong"[..]));
        let req = server.join().unwrap();
        assert!(req.starts_with("GET /prefix/ping HTTP/1.1\r\n"), "{req}");
        assert!(req.contains("\r\nauthorization: Bearer t\r\n"), "{req}");
        assert!(req.contains(&format!("\r\nhost: {addr}\r\n")), "{req}");
    }

    #[test]
    fn a_closed_port_is_a_connect_error() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let e = get(
            &format!("http://127.0.0.1:{port}"),
            "/",
            &[],
            Duration::from_secs(5),
            None,
        )
        .unwrap_err();
        assert!(matches!(e, HttpError::Connect { .. }), "{e}");
    }
}
