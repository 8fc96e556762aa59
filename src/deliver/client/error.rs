//! Why a delivery attempt got no response: [`ClientError`], an expected outcome of delivery.

use thiserror::Error;

/// Why an attempt got no response. Expected outcomes of delivery, not bugs.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClientError {
    /// The SSRF guard refused every address of the endpoint; the sentence says which and why.
    #[error("{0}")]
    Refused(String),
    /// The host name could not be resolved.
    #[error("name resolution failed: {0}")]
    Resolve(String),
    /// No TCP connection could be made.
    #[error("connection failed: {0}")]
    Connect(String),
    /// The TLS handshake failed (untrusted or mismatched certificate, protocol error), or
    /// [`ClientConfig::from_config`] could not build the TLS configuration (`ca_file`).
    #[error("TLS failed: {0}")]
    Tls(String),
    /// The attempt did not finish within `delivery.timeout`.
    #[error("no response within delivery.timeout")]
    Timeout,
    /// The attempt waited all of `delivery.timeout` for its turn at a receiver that had
    /// `delivery.in_flight_per_host_max` requests of this shard in flight; nothing was sent.
    #[error("not sent: no turn within delivery.timeout ({0})")]
    HostBusy(String),
    /// The response was not valid HTTP/1.1 framing (or a request header could not be sent).
    #[error("invalid HTTP exchange: {0}")]
    Protocol(String),
    /// The connection failed while sending or receiving.
    #[error("I/O error: {0}")]
    Io(String),
}

impl ClientError {
    /// A short stable label of the kind of failure, for metrics and attempt records.
    pub fn outcome_class(&self) -> &'static str {
        match self {
            Self::Refused(_) => "refused",
            Self::Resolve(_) => "resolve",
            Self::Connect(_) => "connect",
            Self::Tls(_) => "tls",
            Self::Timeout => "timeout",
            Self::HostBusy(_) => "host_busy",
            Self::Protocol(_) => "protocol",
            Self::Io(_) => "io",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_classes_are_distinct() {
        let all = [
            ClientError::Refused(String::new()),
            ClientError::Resolve(String::new()),
            ClientError::Connect(String::new()),
            ClientError::Tls(String::new()),
            ClientError::Timeout,
            ClientError::HostBusy(String::new()),
            ClientError::Protocol(String::new()),
            ClientError::Io(String::new()),
        ];
        let mut classes: Vec<_> = all.iter().map(ClientError::outcome_class).collect();
        classes.sort_unstable();
        classes.dedup();
        assert_eq!(classes.len(), all.len());
    }
}
