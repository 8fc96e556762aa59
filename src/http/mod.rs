//! HTTP/1.1 over monoio: connection handling, request parsing with httparse, TLS in.
//!
//! The data flows through the files in this order:
//! - `claim`: one hookd per listen address (a probe bind, and a name held while it runs);
//! - `server`: [`bind_reuseport`], the accept loop [`run_listener`] (connection cap, one task
//!   per connection) and [`serve_connection`] (buffers, timeouts, keep-alive, pipelining,
//!   `100 Continue`, lingering close);
//! - `tls`: `[server.tls]` PEM files to a rustls acceptor;
//! - `parse`: sans-IO framing, the request head and chunked bodies, with every limit;
//! - `message`: the owned [`Request`]/[`Response`] the API sees, and the [`Handler`] trait;
//! - `encode`: a [`Response`] to bytes, with `date`, `content-length` and `connection`;
//! - `limits`: [`Limits`] from `[server]`;
//! - `page`: a compiled-in web page's CSP hashes and security headers (status page, portal);
//! - `shutdown`: the cross-thread [`Shutdown`] signal and the per-shard connection set.
//!
//! Every answer the HTTP layer gives itself (400, 408, 413, 414, 417, 431, 503) has the
//! JSON error body of [`Response::error`] and closes the connection.

pub mod claim;
pub mod encode;
pub mod limits;
pub mod message;
pub mod page;
pub mod parse;
pub mod server;
pub mod shutdown;
pub mod tls;

pub use limits::{Limits, LimitsSource};
pub use message::{Handler, Method, Request, Response};
pub use server::{bind_reuseport, run_listener, serve_connection};
pub use shutdown::{ConnSlot, Connections, Shutdown};
pub use tls::{TlsAcceptor, TlsError};
