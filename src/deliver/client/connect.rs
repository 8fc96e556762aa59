//! Connecting to an endpoint: the name resolved (off the shard), every address checked by the
//! SSRF guard, dialled in order within `connect_timeout`, and the TLS handshake for `https`.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::Path;

use monoio::net::TcpStream;
use monoio::time::{timeout_at, Instant};
use rustls::pki_types::ServerName;

use super::conn::{Conn, Stream};
use super::READ_BUF_INITIAL;
use super::{deadline_after, Client, ClientError};
use crate::model::ssrf;
use crate::model::url::Url;

/// A rustls client config trusting the webpki roots and the certificates in `ca_file`.
pub fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, ClientError> {
    crate::http::tls::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let name = path.display();
        let pem = std::fs::read(path)
            .map_err(|e| ClientError::Tls(format!("cannot read delivery.ca_file {name}: {e}")))?;
        let certs = rustls_pemfile::certs(&mut pem.as_slice())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                ClientError::Tls(format!("delivery.ca_file {name} is not valid PEM: {e}"))
            })?;
        if certs.is_empty() {
            return Err(ClientError::Tls(format!(
                "delivery.ca_file {name} holds no PEM certificate"
            )));
        }
        for (i, cert) in certs.into_iter().enumerate() {
            roots.add(cert).map_err(|e| {
                ClientError::Tls(format!(
                    "certificate {} of delivery.ca_file {name} is not usable as a CA: {e}",
                    i + 1
                ))
            })?;
        }
    }
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

impl Client {
    /// Resolves, checks, dials and (for https) handshakes, within `connect_timeout` and
    /// `deadline`.
    pub(super) async fn connect(&self, url: &Url, deadline: Instant) -> Result<Conn, ClientError> {
        let begun = Instant::now();
        let phase_end = deadline_after(begun, self.config.connect_timeout).min(deadline);
        // Which error a timeout of the connect phase is: the attempt's own when its
        // deadline is the nearer one.
        let phase_timeout = |what: &str| -> Option<String> {
            (phase_end < deadline).then(|| {
                format!(
                    "{what} did not finish within delivery.connect_timeout ({} ms)",
                    self.config.connect_timeout.as_millis()
                )
            })
        };

        let ips = match self.resolve(&url.host, url.port, phase_end).await {
            Ok(ips) => ips,
            Err(None) => {
                let message = phase_timeout(&format!("resolving {}", url.host));
                return Err(message.map_or(ClientError::Timeout, ClientError::Resolve));
            }
            Err(Some(e)) => return Err(e),
        };
        let mut allowed = Vec::with_capacity(ips.len());
        let mut refused = None;
        for ip in ips {
            if !self.config.allow_private_networks {
                if let Some(why) = ssrf::refusal(&url.host, ip) {
                    refused.get_or_insert(why);
                    continue;
                }
            }
            allowed.push(SocketAddr::new(ip, url.port));
        }
        if allowed.is_empty() {
            let why = refused.unwrap_or_else(|| format!("{} has no address", url.host));
            return Err(ClientError::Refused(why));
        }

        let tcp = self.dial(&allowed, phase_end, &phase_timeout).await?;
        // Requests are written whole; Nagle would only delay them.
        let _ = tcp.set_nodelay(true);
        let fd = tcp.as_raw_fd();
        let stream = if url.https {
            let name = match url.ip() {
                Some(ip) => ServerName::IpAddress(ip.into()),
                None => ServerName::try_from(url.host.clone()).map_err(|e| {
                    ClientError::Tls(format!("{} is not a valid TLS server name: {e}", url.host))
                })?,
            };
            match timeout_at(phase_end, self.connector.connect(name, tcp)).await {
                Ok(Ok(tls)) => Stream::Tls(Box::new(tls)),
                Ok(Err(e)) => {
                    let detail = match e {
                        monoio_rustls::TlsError::Io(e) => e.to_string(),
                        monoio_rustls::TlsError::Rustls(e) => e.to_string(),
                    };
                    return Err(ClientError::Tls(format!(
                        "handshake with {} failed: {detail}",
                        url.host
                    )));
                }
                Err(_) => {
                    let message = phase_timeout("the TLS handshake");
                    return Err(message.map_or(ClientError::Timeout, ClientError::Tls));
                }
            }
        } else {
            Stream::Plain(tcp)
        };
        Ok(Conn {
            stream,
            fd,
            rbuf: Vec::with_capacity(READ_BUF_INITIAL),
            pos: 0,
        })
    }

    /// Connects to the first of `addrs` that accepts. Each address gets an equal share of
    /// what is left of the phase, so one black hole does not starve the others.
    async fn dial(
        &self,
        addrs: &[SocketAddr],
        phase_end: Instant,
        phase_timeout: &dyn Fn(&str) -> Option<String>,
    ) -> Result<TcpStream, ClientError> {
        let mut failures = Vec::new();
        for (i, &addr) in addrs.iter().enumerate() {
            let now = Instant::now();
            let left = phase_end.saturating_duration_since(now);
            let share = left / u32::try_from(addrs.len() - i).unwrap_or(u32::MAX);
            let until = deadline_after(now, share).min(phase_end);
            match timeout_at(until, TcpStream::connect_addr(addr)).await {
                Ok(Ok(tcp)) => return Ok(tcp),
                Ok(Err(e)) => failures.push(format!("{addr}: {e}")),
                Err(_) if until < phase_end => {
                    failures.push(format!("{addr}: timed out after {} ms", share.as_millis()))
                }
                Err(_) => {
                    let what = format!("connecting to {addr}");
                    return Err(match phase_timeout(&what) {
                        Some(message) if failures.is_empty() => ClientError::Connect(message),
                        Some(message) => {
                            ClientError::Connect(format!("{}; {message}", failures.join("; ")))
                        }
                        None => ClientError::Timeout,
                    });
                }
            }
        }
        Err(ClientError::Connect(failures.join("; ")))
    }

    /// The addresses of `host`: the literal itself, the cached answer, or a lookup on the
    /// resolver threads. `Err(None)`: `until` passed first.
    async fn resolve(
        &self,
        host: &str,
        port: u16,
        until: Instant,
    ) -> Result<Vec<IpAddr>, Option<ClientError>> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let now = Instant::now();
        if let Some(ips) = self.dns.borrow().get(host, now) {
            return Ok(ips);
        }
        let answer = self
            .resolver
            .lookup(host, port)
            .map_err(|e| Some(ClientError::Resolve(e)))?;
        match timeout_at(until, answer).await {
            Ok(Ok(Ok(ips))) if !ips.is_empty() => {
                self.dns.borrow_mut().put(host, ips.clone(), Instant::now());
                Ok(ips)
            }
            Ok(Ok(Ok(_))) => Err(Some(ClientError::Resolve(format!("{host} has no address")))),
            Ok(Ok(Err(e))) => Err(Some(ClientError::Resolve(e))),
            Ok(Err(_)) => Err(Some(ClientError::Resolve(
                "the resolver threads have stopped".to_owned(),
            ))),
            Err(_) => Err(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let broken = dir.path().join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        for path in [&missing, &empty, &broken] {
            let err = tls_config(Some(path)).unwrap_err();
            let message = err.to_string();
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(message.contains("delivery.ca_file"), "{message}");
        }
        let ca = rcgen::generate_simple_self_signed(vec!["x.test".to_owned()]).unwrap();
        let good = dir.path().join("ca.pem");
        std::fs::write(&good, ca.cert.pem()).unwrap();
        let config = tls_config(Some(&good)).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }
}
