//! Requests and responses as the rest of hookd sees them: parsed, bounded, owned.
//!
//! The HTTP layer (`server.rs`, `parse.rs`) turns bytes into a [`Request`] and a [`Response`]
//! back into bytes; a [`Handler`] (the API router) sits in between and never sees framing.

use std::{future::Future, net::SocketAddr};

/// Request methods hookd distinguishes. Anything else is `Other` (the router answers 405).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
    Other,
}

impl Method {
    /// Parses a method token as it appears on the request line (case-sensitive, per RFC 9110).
    pub fn from_token(token: &str) -> Self {
        match token {
            "GET" => Self::Get,
            "HEAD" => Self::Head,
            "POST" => Self::Post,
            "PUT" => Self::Put,
            "PATCH" => Self::Patch,
            "DELETE" => Self::Delete,
            "OPTIONS" => Self::Options,
            _ => Self::Other,
        }
    }

    /// The token, for `Allow` headers and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
            Self::Options => "OPTIONS",
            Self::Other => "OTHER",
        }
    }
}

/// One parsed request with its whole body.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// The request target as sent: path and optional `?query`, not percent-decoded.
    pub target: String,
    /// Header names lowercased; values as sent (not necessarily UTF-8).
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body, de-chunked. Never longer than `server.body_bytes_max`.
    pub body: Vec<u8>,
    pub peer: Option<SocketAddr>,
}

impl Request {
    /// The path part of the target.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(p, _)| p)
    }

    /// The query part of the target, without the `?`.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// The first header called `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The first header called `name` (lowercase), if it is UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }
}

/// A response to write. `content-length`, `date` and `connection` are added by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A response with a JSON body.
    pub fn json(status: u16, body: Vec<u8>) -> Self {
        Self {
            status,
            headers: vec![("content-type", "application/json".into())],
            body,
        }
    }

    /// A response with no body.
    pub fn empty(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// The Svix error shape: `{"code": ..., "detail": ...}`.
    pub fn error(status: u16, code: &str, detail: &str) -> Self {
        let body = serde_json::json!({ "code": code, "detail": detail });
        Self::json(status, body.to_string().into_bytes())
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// What the server calls for each request. One handler per shard, used from that shard's
/// thread only, so it need not be `Send`.
pub trait Handler: 'static {
    /// Answers one request.
    fn handle(&self, req: Request) -> impl Future<Output = Response>;
}
