//! The bounds the HTTP layer enforces on every connection, taken from `[server]`.
//!
//! Each limit has a default (that of [`ServerConfig::default`]) and each is answered with its
//! own status when crossed:
//!
//! | limit | answer |
//! |---|---|
//! | `header_bytes_max` (request line + headers) | 431, close |
//! | `headers_count_max` | 431, close |
//! | `uri_bytes_max` | 414, close |
//! | `body_bytes_max` (`Content-Length` or de-chunked) | 413, close |
//! | `header_read_timeout` (from a request's first byte; from accept for the first) | 408, close |
//! | `idle_timeout` (between requests on a keep-alive connection) | close, no answer |
//! | `request_timeout` (the whole body; also bounds each response write) | 408, close |
//! | `connections_per_shard_max` | 503, close, request not read |

use std::rc::Rc;
use std::time::Duration;

use crate::config::ServerConfig;

/// The most headers a request may ever carry, whatever the config says (the parser keeps
/// this many header slots on the stack). `server.headers_count_max` is validated against
/// the same ceiling.
pub const HEADERS_COUNT_LIMIT: usize = 1024;

/// Per-connection limits of the HTTP server. Plain data: build it once per shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of the request line plus all header lines, CRLFs included.
    pub header_bytes_max: usize,
    /// Number of request header lines; at most [`HEADERS_COUNT_LIMIT`].
    pub headers_count_max: usize,
    /// Bytes of the request target.
    pub uri_bytes_max: usize,
    /// Bytes of a request body, after de-chunking.
    pub body_bytes_max: usize,
    /// Time for a request head to arrive, from its first byte (from accept for the first
    /// request of a connection).
    pub header_read_timeout: Duration,
    /// Time a keep-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// Time for a whole request body to arrive, from the request's first byte. Also bounds
    /// each write of responses to a client that does not read.
    pub request_timeout: Duration,
    /// Connections served at once by one shard; more are answered 503 and closed.
    pub connections_per_shard_max: usize,
}

impl From<&ServerConfig> for Limits {
    fn from(c: &ServerConfig) -> Self {
        let bytes = |n: u64| usize::try_from(n).unwrap_or(usize::MAX).max(1);
        let count = |n: u32| usize::try_from(n).unwrap_or(usize::MAX).max(1);
        Self {
            header_bytes_max: bytes(c.header_bytes_max),
            headers_count_max: count(c.headers_count_max).min(HEADERS_COUNT_LIMIT),
            uri_bytes_max: bytes(c.uri_bytes_max),
            body_bytes_max: bytes(c.body_bytes_max),
            header_read_timeout: c.header_read_timeout,
            idle_timeout: c.idle_timeout,
            request_timeout: c.request_timeout,
            connections_per_shard_max: count(c.connections_per_shard_max),
        }
    }
}

/// Where the accept loop takes each new connection's limits from. A connection keeps the
/// limits it was accepted with; a config reload changes those of later connections.
pub trait LimitsSource: 'static {
    /// The limits for a connection accepted now.
    fn current(&self) -> Rc<Limits>;
}

/// Fixed limits.
impl LimitsSource for Rc<Limits> {
    fn current(&self) -> Rc<Limits> {
        self.clone()
    }
}

impl Default for Limits {
    /// The limits of the default `[server]` section.
    fn default() -> Self {
        Self::from(&ServerConfig::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_config_copies_every_limit() {
        let config = ServerConfig {
            connections_per_shard_max: 7,
            header_bytes_max: 1000,
            headers_count_max: 12,
            uri_bytes_max: 300,
            body_bytes_max: 5000,
            header_read_timeout: Duration::from_millis(1),
            idle_timeout: Duration::from_millis(2),
            request_timeout: Duration::from_millis(3),
            ..ServerConfig::default()
        };
        let limits = Limits::from(&config);
        assert_eq!(
            limits,
            Limits {
                header_bytes_max: 1000,
                headers_count_max: 12,
                uri_bytes_max: 300,
                body_bytes_max: 5000,
                header_read_timeout: Duration::from_millis(1),
                idle_timeout: Duration::from_millis(2),
                request_timeout: Duration::from_millis(3),
                connections_per_shard_max: 7,
            }
        );
    }

    #[test]
    fn header_count_is_capped_at_the_parser_ceiling() {
        let config = ServerConfig {
            headers_count_max: 1_000_000,
            ..ServerConfig::default()
        };
        assert_eq!(Limits::from(&config).headers_count_max, HEADERS_COUNT_LIMIT);
    }
}
