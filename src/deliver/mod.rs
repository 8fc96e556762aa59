//! Delivery: from a stored message to signed HTTP requests at the endpoints subscribed to it.
//!
//! - `dispatch`: the thread that fans messages out into deliveries and hands due ones to shards;
//! - `engine`: each shard's delivery loop: per-endpoint queues, caps, rates, attempts;
//! - `recorder`: the thread that writes the shards' finished attempts to the index;
//! - `sign`: Standard Webhooks signatures (HMAC-SHA256), key state prepared once per key;
//! - `policy`: the retry state machine, pure: `(state, outcome, now, rng) -> (state, action)`;
//! - `ssrf`: which resolved addresses an endpoint may be dialled at;
//! - `client`: a small HTTP/1.1 client over monoio TCP and rustls, with a keep-alive pool;
//! - `pipeline`: the client's pipelined connections to plain-HTTP endpoints;
//! - `hosts`: the client's cap on requests in flight to one receiver, with a queue.

pub mod client;
pub mod dispatch;
pub mod engine;
pub mod hosts;
mod pipeline;
pub mod policy;
pub mod recorder;
pub mod response;
pub mod sign;
