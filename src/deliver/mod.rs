//! Delivery: from a stored message to signed HTTP requests at the endpoints subscribed to it.
//!
//! - `dispatch`: the thread that fans messages out into deliveries and hands due ones to shards;
//! - `engine`: each shard's delivery loop: per-endpoint queues, caps, rates, attempts;
//! - `recorder`: the thread that writes the shards' finished attempts to the index;
//! - `sign`: Standard Webhooks signatures (HMAC-SHA256), key state prepared once per key;
//! - `policy`: the retry state machine, pure: `(state, outcome, now, rng) -> (state, action)`;
//! - `ssrf`: which resolved addresses an endpoint may be dialled at;
//! - `client`: a small HTTP/1.1 client over monoio TCP and rustls, with a keep-alive pool and
//!   pipelined connections to plain-HTTP endpoints (one file per concern under `client/`);
//! - `hosts`: the client's cap on requests in flight to one receiver, with a queue.

pub mod client;
pub mod dispatch;
pub mod engine;
pub mod fifo;
pub mod hosts;
pub mod policy;
pub mod recorder;
pub mod response;
pub mod sign;

use std::sync::Arc;

use crate::{metrics::Gauges, service::Service};

/// The shards' delivery inboxes and the I/O driver they run on, once the shards run: what the
/// metrics and the status page read of delivery.
#[derive(Debug, Clone)]
pub struct Queues {
    pub inboxes: Arc<Vec<dispatch::Inbox>>,
    pub driver: &'static str,
}

impl Queues {
    /// The gauges of `/metrics`, read now. Blocks on index reads: cheap, but not free.
    pub fn gauges(&self, svc: &Service) -> Gauges {
        let store = &svc.store;
        let state = store.state();
        let now = svc.now_ms();
        let inboxes = self.inboxes.as_slice();
        // Pending: in the index, and first attempts handed to shards straight from the log.
        let oldest = inboxes
            .iter()
            .filter_map(|i| i.oldest_unsettled())
            .chain(state.min_pending_seq().ok().flatten())
            .min()
            .and_then(|seq| store.log().read(seq).ok().flatten())
            .map_or(0, |r| now.saturating_sub(r.ts_ms));
        let unsettled: usize = inboxes.iter().map(|i| i.unsettled_len()).sum();
        Gauges {
            dead_parts: svc.liveness.dead().len(),
            pending: state.pending_count() + unsettled,
            oldest_pending_age_ms: oldest,
            queue_depths: inboxes.iter().map(|i| i.rx.len()).collect(),
            disk_bytes: store.disk_bytes(),
            flushes: store.log().flush_count(),
            corrupt_stretches: store.log().corruptions_found(),
            driver: self.driver,
            log_flush: store.log().flush_stats().sync_ns.snapshot(),
            log_batch: store.log().flush_stats().batch_records.snapshot(),
        }
    }
}
