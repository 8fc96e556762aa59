//! A small blocking HTTP/1.1 client over `std::net::TcpStream`, for the commands that ask a
//! running hookd (`hookd status`). One `GET` per connection (`connection: close`), plain HTTP
//! only, every step under a timeout, the answer capped at [`RESPONSE_BYTES_MAX`].

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream, ToSocketAddrs},
    time::Duration,
};

use crate::url::Url;

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
    #[error("{url}: https is not supported here; give hookd's plain-HTTP address")]
    Https { url: String },
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
pub fn get(
    base: &str,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Result<Response, HttpError> {
    let url = Url::parse(base).map_err(|why| HttpError::BadUrl {
        url: base.to_owned(),
        why,
    })?;
    if url.https {
        return Err(HttpError::Https {
            url: base.to_owned(),
        });
    }
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
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => return exchange(stream, addr, &authority, &target, headers, timeout),
            Err(e) => last = Some(e),
        }
    }
    Err(HttpError::Connect {
        addr: authority,
        source: last.unwrap_or_else(|| std::io::Error::other("no address")),
    })
}

fn exchange(
    mut stream: TcpStream,
    addr: SocketAddr,
    authority: &str,
    target: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Result<Response, HttpError> {
    let io = |source| HttpError::Io { addr, source };
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let mut req = format!(
        "GET {target} HTTP/1.1\r\nhost: {authority}\r\nuser-agent: hookd-cli/{}\r\n\
         accept: application/json\r\nconnection: close\r\n",
        env!("CARGO_PKG_VERSION")
    );
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).map_err(io)?;
    let mut buf = Vec::new();
    Read::by_ref(&mut stream)
        .take(RESPONSE_BYTES_MAX as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(io)?;
    if buf.len() > RESPONSE_BYTES_MAX {
        return Err(HttpError::Malformed {
            addr,
            why: format!("longer than {RESPONSE_BYTES_MAX} bytes"),
        });
    }
    parse(&buf).map_err(|why| HttpError::Malformed { addr, why })
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
    fn refuses_https_and_bad_urls() {
        let t = Duration::from_secs(1);
        assert!(matches!(
            get("https://127.0.0.1:1", "/x", &[], t),
            Err(HttpError::Https { .. })
        ));
        assert!(matches!(
            get("ftp://x", "/x", &[], t),
            Err(HttpError::BadUrl { .. })
        ));
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
        )
        .unwrap_err();
        assert!(matches!(e, HttpError::Connect { .. }), "{e}");
    }
}
