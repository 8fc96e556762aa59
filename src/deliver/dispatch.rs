//! The dispatcher thread: fan-out from the durable log into the delivery index, and the due
//! scan that hands deliveries to the shards that own their endpoints.
//!
//! Fan-out runs after the fact, off the ingest path: the thread tails the durable log from its
//! cursor, matches each message against its application's endpoints (event types, channels,
//! enabled), and writes one pending delivery per match together with... no: the deliveries go
//! in one transaction, then the cursor moves. A crash in between fans the same messages out
//! again, which writes the same `(endpoint, seq)` keys: at least once, never lost.
//!
//! The due scan takes deliveries whose time has come, leases them (status `sending`, due again
//! when the lease runs out, so an attempt cut short by a crash is retried without counting),
//! and sends them to the owner shard's bounded queue, ringing its doorbell. A shard whose queue
//! is full gets nothing more until it has room: the deliveries stay due in the index, so memory
//! stays bounded whatever the backlog.
//!
//! The same thread runs retention now and then: whole old segments go once every delivery of
//! theirs is settled and they are fanned out, and expired idempotency keys are purged.

use std::{
    collections::HashMap,
    future::Future,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    task::{Context, Wake, Waker},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use crossbeam_utils::sync::{Parker, Unparker};
use storage::{
    codec::decode_value,
    state::{DeliveryState, DeliveryStatus, EndpointRecord, MessageRecord, Trigger},
    Watermark,
};

use crate::service::Service;

/// The index cursor: every message at or below it has been fanned out.
pub const FANOUT_CURSOR: &str = "fanout";
/// Log records fanned out per transaction.
const FANOUT_BATCH: usize = 128;
/// How long a lease outlives its attempt's timeout.
const LEASE_MARGIN: Duration = Duration::from_secs(5);
/// How often due deliveries (retries) are looked for when nothing new came in; also the
/// longest the dispatcher sleeps.
const SCAN_EVERY: Duration = Duration::from_millis(20);
/// How long the dispatcher lets flushes gather after it wakes.
const GATHER: Duration = Duration::from_millis(1);
/// Retention runs every half `storage.retention`, at least every second and at most this.
const RETENTION_EVERY_MAX: Duration = Duration::from_secs(60);
/// How often the fan-out cursor is saved when no delivery was created.
const CURSOR_EVERY: Duration = Duration::from_secs(1);

/// One delivery handed to a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Task {
    pub endpoint: u64,
    pub seq: u64,
    /// Attempts already made.
    pub attempts: u32,
    pub trigger: Trigger,
}

/// A shard's side of the hand-over: a bounded queue and a doorbell.
pub struct Inbox {
    tx: Sender<Task>,
    pub rx: Receiver<Task>,
    /// Advanced (by one) whenever tasks were queued; the shard subscribes to it.
    pub doorbell: Arc<Watermark>,
    rings: AtomicU64,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox")
            .field("queued", &self.rx.len())
            .finish()
    }
}

impl Inbox {
    /// An inbox holding at most `capacity` tasks.
    pub fn new(capacity: usize) -> Self {
        let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
        Self {
            tx,
            rx,
            doorbell: Arc::new(Watermark::new(0)),
            rings: AtomicU64::new(0),
        }
    }

    /// Room left.
    pub fn room(&self) -> usize {
        self.tx
            .capacity()
            .unwrap_or(0)
            .saturating_sub(self.tx.len())
    }

    fn ring(&self) {
        let n = self.rings.fetch_add(1, Ordering::AcqRel) + 1;
        self.doorbell.advance(n);
    }
}

/// Which shard owns an endpoint.
pub fn owner(endpoint: u64, shards: usize) -> usize {
    // Keys are dense; mix them so that neighbours spread.
    (endpoint.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize % shards.max(1)
}

/// Whether `ep` wants `m`: enabled, and its event types and channels (if any) match.
pub fn subscribed(ep: &EndpointRecord, m: &MessageRecord) -> bool {
    !ep.disabled
        && ep
            .event_types
            .as_ref()
            .is_none_or(|t| t.contains(&m.event_type))
        && ep
            .channels
            .as_ref()
            .is_none_or(|c| m.channels.iter().any(|mc| c.contains(mc)))
}

/// The running dispatcher thread.
pub struct Dispatcher {
    stop: Arc<AtomicBool>,
    unparker: Unparker,
    handle: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher").finish_non_exhaustive()
    }
}

struct Unpark(Unparker);
impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

impl Dispatcher {
    /// Starts the thread.
    pub fn start(svc: Arc<Service>, inboxes: Arc<Vec<Inbox>>) -> std::io::Result<Self> {
        let parker = Parker::new();
        let unparker = parker.unparker().clone();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::Builder::new()
            .name("hookd-dispatch".into())
            .spawn(move || run(&svc, &inboxes, &parker, &s))?;
        Ok(Self {
            stop,
            unparker,
            handle: Mutex::new(Some(handle)),
        })
    }

    /// Wakes the thread early (for example after a manual resend).
    pub fn nudge(&self) {
        self.unparker.unpark();
    }

    /// Stops the thread and waits for it.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.unparker.unpark();
        if let Some(h) = self.handle.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = h.join();
        }
    }
}

fn run(svc: &Service, inboxes: &[Inbox], parker: &Parker, stop: &AtomicBool) {
    let state = svc.store.state();
    let log = svc.store.log();
    let mut cursor = state.cursor(FANOUT_CURSOR).ok().flatten().unwrap_or(0);
    let waker = Waker::from(Arc::new(Unpark(parker.unparker().clone())));
    let mut endpoints = EndpointCache::default();
    // A lease outlives the attempt (its timeout) with a margin for recording it.
    let lease_ms = (svc.config.delivery.timeout + LEASE_MARGIN).as_millis() as u64;
    let mut last_scan = Instant::now();
    let mut last_cursor_write = Instant::now();
    let mut tail = Tail {
        iter: log.iter_from(cursor + 1),
        held: None,
    };
    let retention = svc.config.storage.retention;
    let retention_every = (retention / 2).clamp(Duration::from_secs(1), RETENTION_EVERY_MAX);
    let mut last_retention = Instant::now();
    while !stop.load(Ordering::Acquire) {
        // Retention runs here, off the shards: old segments go once nothing pending and
        // nothing not yet fanned out needs them; expired idempotency keys too.
        if last_retention.elapsed() >= retention_every {
            last_retention = Instant::now();
            let floor = svc.store.retention_floor(cursor + 1);
            match floor.and_then(|f| svc.store.run_retention(retention, f)) {
                Ok(removed) if !removed.is_empty() => {
                    tracing::info!(segments = removed.len(), "retention removed old segments")
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "retention failed; retrying later"),
            }
        }
        match fan_out(svc, &mut endpoints, inboxes, &mut tail, lease_ms, cursor) {
            Ok((c, n)) => {
                // The cursor only saves work after a crash (fan-out is idempotent): write it
                // with new deliveries, or now and then.
                if c != cursor && (n > 0 || last_cursor_write.elapsed() >= CURSOR_EVERY) {
                    match state.set_cursor(FANOUT_CURSOR, c) {
                        Ok(()) => last_cursor_write = Instant::now(),
                        Err(e) => tracing::error!(error = %e, "saving the fan-out cursor"),
                    }
                }
                cursor = c;
            }
            Err(e) => tracing::error!(error = %e, "fan-out failed; retrying"),
        }
        if last_scan.elapsed() >= SCAN_EVERY {
            if let Err(e) = hand_out(svc, inboxes, lease_ms) {
                tracing::error!(error = %e, "due scan failed; retrying");
            }
            last_scan = Instant::now();
        }
        // Sleep until the log moves past the cursor, a nudge, or the next tick; then let a
        // few flushes gather, so the thread wakes per batch of messages, not per flush.
        let mut wait = std::pin::pin!(log.durable().wait(cursor + 1));
        if wait
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
        {
            parker.park_timeout(SCAN_EVERY);
        }
        std::thread::sleep(GATHER);
    }
}

/// Endpoints per app, reloaded when any endpoint changes.
#[derive(Default)]
struct EndpointCache {
    version: u64,
    by_app: HashMap<u64, Vec<EndpointRecord>>,
}

impl EndpointCache {
    fn get(&mut self, svc: &Service, app: u64) -> storage::Result<&[EndpointRecord]> {
        let v = svc.endpoints_version.load(Ordering::Acquire);
        if v != self.version {
            self.by_app.clear();
            self.version = v;
        }
        if let std::collections::hash_map::Entry::Vacant(slot) = self.by_app.entry(app) {
            slot.insert(svc.store.state().app_endpoints(app)?);
        }
        Ok(self.by_app.get(&app).map_or(&[], Vec::as_slice))
    }
}

/// Fans out every durable message after `cursor`; returns the new cursor and how many
/// deliveries were created.
/// The log read from the fan-out cursor on, kept open between rounds (its read-ahead buffer
/// and position survive), holding back a record that is written but not yet durable.
struct Tail<'a> {
    iter: storage::log::Iter<'a>,
    held: Option<storage::Record>,
}

impl Tail<'_> {
    /// The next record at or below `upto`, or `None` until there is one.
    fn next_upto(&mut self, upto: u64) -> Option<storage::Result<storage::Record>> {
        let next = match self.held.take() {
            Some(r) => Some(Ok(r)),
            None => self.iter.next(),
        };
        match next {
            Some(Ok(r)) if r.seq > upto => {
                self.held = Some(r);
                None
            }
            other => other,
        }
    }
}

fn fan_out(
    svc: &Service,
    endpoints: &mut EndpointCache,
    inboxes: &[Inbox],
    tail: &mut Tail<'_>,
    lease_ms: u64,
    mut cursor: u64,
) -> storage::Result<(u64, usize)> {
    let mut created = 0;
    let log = svc.store.log();
    let upto = log.durable().get();
    while cursor < upto {
        let now = svc.now_ms();
        let mut batch = Vec::new();
        // New deliveries whose shard has room go straight there, leased in the same write
        // that creates them; the rest wait in the due index for the scan.
        let mut room: Vec<usize> = inboxes.iter().map(Inbox::room).collect();
        let mut direct = Vec::new();
        let mut last = cursor;
        for _ in 0..FANOUT_BATCH {
            let Some(rec) = tail.next_upto(upto) else {
                break;
            };
            let rec = match rec {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "fan-out skipped an unreadable record");
                    continue;
                }
            };
            last = rec.seq;
            // The record's key is its app: apps without endpoints are skipped undecoded.
            let eps = endpoints.get(svc, rec.key)?;
            if eps.is_empty() {
                continue;
            }
            let Ok(m) =
                decode_value::<MessageRecord>(&rec.payload, &|| format!("message {}", rec.seq))
            else {
                tracing::warn!(seq = rec.seq, "fan-out skipped an undecodable message");
                continue;
            };
            for ep in eps.iter().filter(|ep| subscribed(ep, &m)) {
                let shard = owner(ep.key, inboxes.len());
                let leased = room[shard] > 0;
                let mut st = DeliveryState {
                    status: DeliveryStatus::Pending,
                    attempts: 0,
                    next_at_ms: now,
                    last_status_code: None,
                    updated_ms: now,
                    trigger: Trigger::Scheduled,
                };
                if leased {
                    room[shard] -= 1;
                    st.status = DeliveryStatus::Sending;
                    st.next_at_ms = now + lease_ms;
                    direct.push((
                        shard,
                        Task {
                            endpoint: ep.key,
                            seq: rec.seq,
                            attempts: 0,
                            trigger: Trigger::Scheduled,
                        },
                    ));
                }
                batch.push((ep.key, rec.seq, st));
            }
        }
        if last == cursor {
            // Nothing readable up to `upto` (retired or quarantined): skip ahead.
            last = upto;
        }
        if !batch.is_empty() {
            svc.store.state().set_deliveries(&batch)?;
            created += batch.len();
        }
        queue(inboxes, direct);
        cursor = last;
    }
    Ok((cursor, created))
}

/// Sends leased tasks to their shards and rings the doorbells of those that got some. A task
/// that does not fit is left to its lease, which runs out and brings it round again.
fn queue(inboxes: &[Inbox], tasks: Vec<(usize, Task)>) {
    let mut rung = vec![false; inboxes.len()];
    for (shard, task) in tasks {
        match inboxes[shard].tx.try_send(task) {
            Ok(()) => rung[shard] = true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {}
        }
    }
    for (i, r) in rung.into_iter().enumerate() {
        if r {
            inboxes[i].ring();
        }
    }
}

/// Leases due deliveries and queues them at their shards, as far as the queues have room.
fn hand_out(svc: &Service, inboxes: &[Inbox], lease_ms: u64) -> storage::Result<()> {
    let state = svc.store.state();
    let room: usize = inboxes.iter().map(Inbox::room).sum();
    if room == 0 {
        return Ok(());
    }
    let now = svc.now_ms();
    let mut room_left: Vec<usize> = inboxes.iter().map(Inbox::room).collect();
    let mut leased = Vec::new();
    let mut tasks = Vec::new();
    for due in state.due_before(now, room.min(4096))? {
        let shard = owner(due.endpoint, inboxes.len());
        if room_left[shard] == 0 {
            continue;
        }
        let Some(mut st) = state.delivery(due.endpoint, due.seq)? else {
            continue;
        };
        room_left[shard] -= 1;
        let trigger = st.trigger;
        st.status = DeliveryStatus::Sending;
        st.next_at_ms = now + lease_ms;
        st.updated_ms = now;
        tasks.push((
            shard,
            Task {
                endpoint: due.endpoint,
                seq: due.seq,
                attempts: st.attempts,
                trigger,
            },
        ));
        leased.push((due.endpoint, due.seq, st));
    }
    if tasks.is_empty() {
        return Ok(());
    }
    state.set_deliveries(&leased)?;
    queue(inboxes, tasks);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn ep(types: Option<&[&str]>, channels: Option<&[&str]>, disabled: bool) -> EndpointRecord {
        EndpointRecord {
            key: 1,
            app_key: 1,
            id: "ep_x".into(),
            uid: None,
            url: "https://example.com".into(),
            description: String::new(),
            version: 1,
            event_types: types.map(|t| t.iter().map(|s| s.to_string()).collect()),
            channels: channels.map(|c| c.iter().map(|s| s.to_string()).collect()),
            secrets: vec![],
            disabled,
            disabled_reason: None,
            metadata: BTreeMap::new(),
            headers: BTreeMap::new(),
            throttle_rate: None,
            failing_since_ms: None,
            config_owned: false,
            created_ms: 0,
            updated_ms: 0,
        }
    }

    fn msg(event_type: &str, channels: &[&str]) -> MessageRecord {
        MessageRecord {
            app_key: 1,
            rand: 0,
            created_ms: 0,
            event_type: event_type.into(),
            event_id: None,
            channels: channels.iter().map(|s| s.to_string()).collect(),
            tags: vec![],
            payload: b"{}".to_vec(),
        }
    }

    #[test]
    fn subscriptions_follow_event_types_channels_and_disabled() {
        assert!(subscribed(&ep(None, None, false), &msg("a", &[])));
        assert!(!subscribed(&ep(None, None, true), &msg("a", &[])));
        assert!(subscribed(
            &ep(Some(&["a", "b"]), None, false),
            &msg("b", &[])
        ));
        assert!(!subscribed(&ep(Some(&["a"]), None, false), &msg("b", &[])));
        assert!(subscribed(
            &ep(None, Some(&["eu"]), false),
            &msg("a", &["us", "eu"])
        ));
        assert!(!subscribed(
            &ep(None, Some(&["eu"]), false),
            &msg("a", &["us"])
        ));
        assert!(!subscribed(&ep(None, Some(&["eu"]), false), &msg("a", &[])));
    }

    #[test]
    fn owners_spread_over_shards() {
        let mut counts = [0usize; 4];
        for k in 1..=4000 {
            counts[owner(k, 4)] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
        assert!((1..100).all(|k| owner(k, 1) == 0));
    }
}
