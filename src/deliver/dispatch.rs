//! The dispatcher thread: fan-out from the durable log into the delivery index, and the due
//! scan that hands deliveries to the shards that own their endpoints.
//!
//! Fan-out runs after the fact, off the ingest path: the thread tails the durable log from its
//! position, matches each message against its application's endpoints (event types, channels,
//! enabled), and hands one task per match to the shard that owns the endpoint.
//!
//! A first attempt costs no index write before it is made: the task goes to the shard's
//! bounded queue straight from the log ("fresh"), and the shard writes the delivery's state
//! only with its outcome. What makes that safe is the fan-out cursor saved in the index: it
//! never passes a message with a fresh task not yet settled, so after a crash fan-out runs
//! again from the cursor and rebuilds exactly the tasks that were only in memory (skipping
//! deliveries that have state by then). The log is the queue.
//!
//! When a shard's queue is full, fan-out waits for room (the log holds the backlog) for up to
//! `SPILL_AFTER`; after that it writes the deliveries to the due index as pending, so one stuck
//! shard does not hold everyone back. The due scan takes deliveries whose time has come
//! (retries, spills, resends), leases them (status `sending`, due again when the lease runs
//! out, so an attempt cut short by a crash is retried without counting), and queues them as far
//! as the queues have room: memory stays bounded whatever the backlog.
//!
//! The same thread runs retention now and then: whole old segments go once every delivery of
//! theirs is settled and they are fanned out, and expired idempotency keys are purged.

use std::{
    collections::{BTreeMap, HashMap},
    future::Future,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
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

use crate::{
    model::filter::Filter,
    service::Service,
    systemd::{Component, ThreadGuard},
};

/// The index cursor: every message at or below it has been fanned out.
pub const FANOUT_CURSOR: &str = "fanout";
/// Log records fanned out per transaction.
const FANOUT_BATCH: usize = 128;
/// How long a lease outlives its attempt's timeout.
const LEASE_MARGIN: Duration = Duration::from_secs(5);
/// The least time between two due scans (under load, scans batch what came due meanwhile).
const SCAN_EVERY: Duration = Duration::from_millis(20);
/// The longest the dispatcher sleeps when nothing is due sooner: it wakes earlier for new log
/// records, for the earliest due delivery, and when a due delivery is written elsewhere
/// (`Service::due_written`). Bounds its heartbeat period, and idle wake-ups to 4 a second.
const IDLE_PARK_MAX: Duration = Duration::from_millis(250);
/// How long the dispatcher lets flushes gather after it wakes.
const GATHER: Duration = Duration::from_millis(1);
/// Retention runs every half `storage.retention`, at least every second and at most this.
const RETENTION_EVERY_MAX: Duration = Duration::from_secs(60);
/// How often the fan-out cursor is saved, at most.
const CURSOR_EVERY: Duration = Duration::from_millis(100);
/// Bytes of messages fan-out carries to the shards at most (beyond it they are read back from
/// the log).
const CARRY_BYTES_MAX: usize = 32 << 20;
/// When the first retention pass runs after start.
const FIRST_RETENTION_AFTER: Duration = Duration::from_secs(2);
/// How often the dispatcher logs an error that repeats every round.
const ERROR_LOG_EVERY: Duration = Duration::from_secs(5);
/// How long fan-out waits for room in a full shard queue before it spills to the due index.
const SPILL_AFTER: Duration = Duration::from_millis(200);

/// A message carried from fan-out to the shards with its tasks, so that a first attempt need
/// not read it back from the log. Counted against fan-out's byte budget until the last task
/// holding it is done.
#[derive(Debug)]
pub struct Carried {
    pub msg: MessageRecord,
    budget: Option<(Arc<AtomicUsize>, usize)>,
}

impl Carried {
    /// A message read back from the log, outside any budget.
    pub fn unbudgeted(msg: MessageRecord) -> Self {
        Self { msg, budget: None }
    }
}

impl Drop for Carried {
    fn drop(&mut self) {
        if let Some((budget, bytes)) = &self.budget {
            budget.fetch_sub(*bytes, Ordering::AcqRel);
        }
    }
}

/// One delivery handed to a shard.
#[derive(Debug, Clone)]
pub struct Task {
    pub endpoint: u64,
    pub seq: u64,
    /// Attempts already made.
    pub attempts: u32,
    pub trigger: Trigger,
    /// Handed over straight from fan-out: the delivery has no state on disk yet, and the
    /// shard must report it settled (`Inbox::settled`) once it has.
    pub fresh: bool,
    /// The message, when fan-out had it decoded and budget to spare.
    pub msg: Option<Arc<Carried>>,
    /// The lane of an ordered endpoint it goes in (set by the shard, `deliver::fifo`).
    pub lane: Option<u64>,
}

/// A shard's side of the hand-over: a bounded queue and a doorbell.
pub struct Inbox {
    tx: Sender<Task>,
    pub rx: Receiver<Task>,
    /// Advanced (by one) whenever tasks were queued; the shard subscribes to it.
    pub doorbell: Arc<Watermark>,
    rings: AtomicU64,
    /// The seqs of the fresh tasks given to this shard and not yet settled, with how many of
    /// each: the fan-out cursor stays below the lowest.
    unsettled: Mutex<BTreeMap<u64, u32>>,
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
            unsettled: Mutex::default(),
        }
    }

    /// Reports fresh tasks of these seqs settled: their state (or their attempt's outcome)
    /// is in the index.
    pub fn settled(&self, seqs: impl IntoIterator<Item = u64>) {
        let mut u = self.unsettled.lock().unwrap_or_else(|e| e.into_inner());
        for seq in seqs {
            if let std::collections::btree_map::Entry::Occupied(mut e) = u.entry(seq) {
                *e.get_mut() -= 1;
                if *e.get() == 0 {
                    e.remove();
                }
            }
        }
    }

    /// The lowest seq with a fresh task not yet settled.
    pub fn oldest_unsettled(&self) -> Option<u64> {
        let u = self.unsettled.lock().unwrap_or_else(|e| e.into_inner());
        u.keys().next().copied()
    }

    /// Fresh tasks not yet settled.
    pub fn unsettled_len(&self) -> usize {
        let u = self.unsettled.lock().unwrap_or_else(|e| e.into_inner());
        u.values().map(|&n| n as usize).sum()
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

/// Whether `ep` wants `m`: enabled, and its event types and channels (if any) match; a
/// message for one endpoint (`only_endpoint`, an example) goes to that one alone, whatever
/// its subscriptions.
pub fn subscribed(ep: &EndpointRecord, m: &MessageRecord) -> bool {
    if let Some(only) = m.only_endpoint {
        return only == ep.key && !ep.disabled;
    }
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
        let _ = svc.dispatcher_wake.set(unparker.clone());
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
    let guard = ThreadGuard::new(svc.liveness.clone(), Component::Dispatcher);
    let state = svc.store.state();
    let log = svc.store.log();
    let mut saved = state.cursor(FANOUT_CURSOR).ok().flatten().unwrap_or(0);
    repair_lanes(svc);
    let mut fan = FanOut::new(log, saved);
    let waker = Waker::from(Arc::new(Unpark(parker.unparker().clone())));
    // A lease outlives the attempt: its wait for a turn at the host and its exchange (each
    // bounded by the timeout; see `client`), with a margin for recording it.
    let lease_ms = lease_ms(&svc.config().delivery);
    let mut last_scan = Instant::now();
    let mut last_cursor_write = Instant::now();
    let retention = svc.config().storage.retention;
    let retention_every = (retention / 2).clamp(Duration::from_secs(1), RETENTION_EVERY_MAX);
    // The first pass comes soon after start: a hookd that keeps restarting must still free
    // disk (found by the soak test: with lives shorter than the interval, nothing was retired).
    let mut next_retention = Instant::now() + FIRST_RETENTION_AFTER.min(retention_every);
    // A failing index fails every round (every few ms): say so every few seconds.
    let mut errors = Throttle::new(ERROR_LOG_EVERY);
    while !stop.load(Ordering::Acquire) {
        svc.liveness.beat_dispatcher();
        report_corruption(svc);
        // Retention runs here, off the shards: old segments go once nothing pending and
        // nothing not yet fanned out (or settled) needs them; expired idempotency keys too.
        if Instant::now() >= next_retention {
            next_retention = Instant::now() + retention_every;
            retention_pass(svc, retention, checkpoint(inboxes, fan.position));
        }
        if let Err(e) = fan.run(svc, inboxes) {
            if errors.ready() {
                tracing::error!(error = %e, suppressed = errors.take(), "fan-out failed; retrying");
            }
        }
        // The cursor saves work after a crash and bounds what is rebuilt: it moves to just
        // below the oldest fresh task still in memory.
        let safe = checkpoint(inboxes, fan.position);
        if safe != saved && last_cursor_write.elapsed() >= CURSOR_EVERY {
            match state.set_cursor(FANOUT_CURSOR, safe) {
                Ok(()) => {
                    saved = safe;
                    last_cursor_write = Instant::now();
                }
                Err(e) if errors.ready() => {
                    tracing::error!(error = %e, suppressed = errors.take(), "saving the fan-out cursor")
                }
                Err(_) => {}
            }
        }
        if last_scan.elapsed() >= SCAN_EVERY {
            if let Err(e) = hand_out(svc, inboxes, lease_ms) {
                if errors.ready() {
                    tracing::error!(error = %e, suppressed = errors.take(), "due scan failed; retrying");
                }
            }
            last_scan = Instant::now();
        }
        let park = park_for(svc, last_scan.elapsed());
        if fan.blocked_since.is_some() {
            // Waiting for room in a shard queue: look again shortly.
            std::thread::sleep(GATHER);
            continue;
        }
        // Sleep until the log moves past the position, a nudge, or the next tick; then let
        // a few flushes gather, so the thread wakes per batch of messages, not per flush.
        let mut wait = std::pin::pin!(log.durable().wait(fan.position + 1));
        if wait
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
        {
            parker.park_timeout(park);
        }
        std::thread::sleep(GATHER);
    }
    guard.finish();
}

/// How long a lease lasts: the attempt's wait for a turn at the host and its exchange (each
/// bounded by the timeout; see `client`), with a margin for recording it.
pub fn lease_ms(delivery: &crate::config::DeliveryConfig) -> u64 {
    (2 * delivery.timeout + LEASE_MARGIN).as_millis() as u64
}

/// How long the dispatcher may sleep: until the earliest due delivery (but not before the
/// next scan may run), at most [`IDLE_PARK_MAX`]. An index error: the shortest wait.
fn park_for(svc: &Service, since_scan: Duration) -> Duration {
    let next_scan = SCAN_EVERY.saturating_sub(since_scan);
    match svc.store.state().next_due_ms() {
        Ok(Some(at)) => {
            let until = Duration::from_millis(at.saturating_sub(svc.now_ms()));
            until.max(next_scan).min(IDLE_PARK_MAX)
        }
        Ok(None) => IDLE_PARK_MAX,
        Err(_) => next_scan.max(GATHER),
    }
}

/// Lets a repeating log line through at most once per period, counting what it held back.
struct Throttle {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// Whether to log now; if not, counts one held back.
    fn ready(&mut self) -> bool {
        if self.last.is_some_and(|t| t.elapsed() < self.every) {
            self.suppressed += 1;
            return false;
        }
        self.last = Some(Instant::now());
        true
    }

    /// How many were held back since the last one logged.
    fn take(&mut self) -> u64 {
        std::mem::take(&mut self.suppressed)
    }
}

/// The highest seq at or below which every message is fanned out and every fresh task
/// settled: where fan-out restarts after a crash.
fn checkpoint(inboxes: &[Inbox], position: u64) -> u64 {
    inboxes
        .iter()
        .filter_map(Inbox::oldest_unsettled)
        .map(|seq| seq - 1)
        .fold(position, u64::min)
}

/// An endpoint as fan-out matches it: the record and its payload filter, compiled.
struct Subscriber {
    ep: EndpointRecord,
    filter: Option<Filter>,
}

/// Endpoints per app, reloaded (and their filters compiled) when any endpoint changes.
#[derive(Default)]
struct EndpointCache {
    version: u64,
    by_app: HashMap<u64, Vec<Subscriber>>,
}

impl EndpointCache {
    fn get(&mut self, svc: &Service, app: u64) -> storage::Result<&[Subscriber]> {
        let v = svc.endpoints_version.load(Ordering::Acquire);
        if v != self.version {
            self.by_app.clear();
            self.version = v;
        }
        if let std::collections::hash_map::Entry::Vacant(slot) = self.by_app.entry(app) {
            let subs = svc
                .store
                .state()
                .app_endpoints(app)?
                .into_iter()
                .map(|ep| Subscriber {
                    filter: compile_filter(&ep),
                    ep,
                });
            slot.insert(subs.collect());
        }
        Ok(self.by_app.get(&app).map_or(&[], Vec::as_slice))
    }
}

/// An endpoint's payload filter, compiled (`None`: every payload). A stored filter that no
/// longer compiles (written by another version of hookd) lets everything through, and says
/// so: sending too much is recoverable at the receiver, dropping silently is not.
pub fn compile_filter(ep: &EndpointRecord) -> Option<Filter> {
    let text = ep.filter.as_deref()?;
    let compiled = serde_json::from_str(text)
        .map_err(|e| e.to_string())
        .and_then(|v| Filter::compile(&v).map_err(|e| e.msg));
    match compiled {
        Ok((f, _)) => Some(f),
        Err(why) => {
            tracing::error!(endpoint = %ep.id, error = %why, "stored payload filter does not compile; it lets every message through");
            None
        }
    }
}

/// A message's payload, parsed once for all the filters of its endpoints, and only if one of
/// them has a filter.
pub struct Payload<'a> {
    bytes: &'a [u8],
    parsed: Option<Option<serde_json::Value>>,
}

impl<'a> Payload<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            parsed: None,
        }
    }

    /// Whether `filter` lets the payload through (a payload that does not parse, which
    /// ingest never stores, matches no filter).
    pub fn passes(&mut self, filter: Option<&Filter>) -> bool {
        let Some(filter) = filter else {
            return true;
        };
        let bytes = self.bytes;
        self.parsed
            .get_or_insert_with(|| serde_json::from_slice(bytes).ok())
            .as_ref()
            .is_some_and(|v| filter.matches(v))
    }
}

/// The log read from the fan-out position on, kept open between rounds (its read-ahead
/// buffer and position survive), holding back a record that is written but not yet durable
/// or that waits for room.
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

/// Logs, once each, the corrupt stretches of the log found since the last look (by recovery,
/// or by any thread's read); they are quarantined and every reader steps over them.
fn report_corruption(svc: &Service) {
    for c in svc.store.log().take_corruptions() {
        tracing::error!(
            segment = c.segment,
            offset = c.offset,
            len = c.len,
            "corrupt log stretch quarantined (copied to log/quarantine/, skipped by every reader): {c}"
        );
    }
}

/// Where a record goes, as (shard, endpoint) pairs, and its decoded message if anywhere.
/// (shard, endpoint key, whether the endpoint is ordered) per delivery, and the message.
type Targets = (Vec<(usize, u64, bool)>, Option<MessageRecord>);

/// A delivery for the due index: (endpoint, seq, state).
type Spilled = (u64, u64, DeliveryState);

/// Fan-out's state between rounds.
struct FanOut<'a> {
    log: &'a storage::log::Log,
    endpoints: EndpointCache,
    tail: Tail<'a>,
    /// Every message at or below this has been fanned out.
    position: u64,
    recheck_upto: u64,
    /// Since when the next message has been waiting for room in a shard queue.
    blocked_since: Option<Instant>,
    /// Bytes of carried messages still held by tasks.
    carried: Arc<AtomicUsize>,
    /// Deliveries for the due index whose write failed, and the position they take fan-out
    /// to: written before anything else; the position passes them only once they are.
    unwritten: Option<(u64, Vec<Spilled>)>,
}

impl<'a> FanOut<'a> {
    /// Fan-out from just after `position` (the saved cursor).
    fn new(log: &'a storage::log::Log, position: u64) -> Self {
        Self {
            log,
            endpoints: EndpointCache::default(),
            tail: Tail {
                iter: log.iter_from(position + 1),
                held: None,
            },
            position,
            // Messages up to here may have been fanned out before a restart: their
            // deliveries are looked up before being sent again.
            recheck_upto: log.durable().get(),
            blocked_since: None,
            carried: Arc::default(),
            unwritten: None,
        }
    }

    /// Reads the log again from just after the position: the records taken off the tail
    /// since then were not handed out (an index error stopped the batch).
    fn rewind(&mut self) {
        self.tail = Tail {
            iter: self.log.iter_from(self.position + 1),
            held: None,
        };
        self.blocked_since = None;
    }

    /// Writes spilled deliveries to the due index; on failure keeps them for the next round
    /// with the position they lead to.
    fn write_spill(
        &mut self,
        svc: &Service,
        last: u64,
        spill: Vec<Spilled>,
    ) -> storage::Result<()> {
        #[cfg(test)]
        let written = tests::fault(tests::Fault::Spill)
            .map_or_else(|| svc.store.state().set_deliveries(&spill), Err);
        #[cfg(not(test))]
        let written = svc.store.state().set_deliveries(&spill);
        match written {
            Ok(()) => {
                self.position = self.position.max(last);
                Ok(())
            }
            Err(e) => {
                self.unwritten = Some((last, spill));
                Err(e)
            }
        }
    }

    /// Fans out the durable messages after `position`, as far as the shard queues take them.
    /// On an index error nothing is skipped: what was read but not handed out is read again
    /// next round, and spilled deliveries not written are written first.
    fn run(&mut self, svc: &Service, inboxes: &[Inbox]) -> storage::Result<()> {
        if let Some((last, spill)) = self.unwritten.take() {
            self.write_spill(svc, last, spill)?;
        }
        let upto = svc.store.log().durable().get();
        while self.position < upto {
            // A long backlog is worked through in this loop: the watchdog must see it move.
            svc.liveness.beat_dispatcher();
            let now = svc.now_ms();
            let mut room: Vec<usize> = inboxes.iter().map(Inbox::room).collect();
            let mut direct = Vec::new();
            let mut spill = Vec::new();
            let mut last = self.position;
            let mut stalled = false;
            for _ in 0..FANOUT_BATCH {
                let Some(rec) = self.tail.next_upto(upto) else {
                    break;
                };
                let rec = match rec {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(error = %e, "fan-out skipped an unreadable record");
                        continue;
                    }
                };
                let (targets, msg) = match self.targets(svc, &rec, inboxes.len()) {
                    Ok(t) => t,
                    Err(e) => {
                        // Nothing of this batch was handed out yet: read it again.
                        self.rewind();
                        return Err(e);
                    }
                };
                let (fits, ordered_waits) = fits(&targets, &room);
                let waited_enough = self
                    .blocked_since
                    .is_some_and(|t| t.elapsed() >= SPILL_AFTER);
                // Spilling is for a shard that holds the others back: while another shard has
                // room. When every shard is full, hookd is simply behind, and the log is the
                // better queue (a spilled delivery costs index writes, a fresh one none).
                let may_spill = waited_enough && !ordered_waits && room.iter().any(|&r| r > 0);
                if !fits && !may_spill {
                    // The log keeps it: wait for the shard to make room.
                    self.blocked_since.get_or_insert_with(Instant::now);
                    self.tail.held = Some(rec);
                    stalled = true;
                    break;
                }
                // Once the wait ran out, what does not fit spills until a record fits again
                // (spilling one record per wait would crawl through a backlog).
                if fits {
                    self.blocked_since = None;
                }
                last = rec.seq;
                let msg = msg.and_then(|m| carry(&self.carried, m, CARRY_BYTES_MAX));
                for (shard, endpoint, _) in targets {
                    if room[shard] > 0 {
                        room[shard] -= 1;
                        direct.push((
                            shard,
                            Task {
                                endpoint,
                                seq: rec.seq,
                                attempts: 0,
                                trigger: Trigger::Scheduled,
                                fresh: true,
                                msg: msg.clone(),
                                lane: None,
                            },
                        ));
                    } else {
                        spill.push((endpoint, rec.seq, pending_now(now)));
                    }
                }
            }
            if last == self.position && !stalled {
                // Nothing readable up to `upto` (retired or quarantined): skip ahead.
                last = upto;
            }
            // Spilled deliveries are on disk before the position passes them; fresh ones are
            // registered as unsettled before they are queued.
            let spill = queue_fresh(inboxes, direct, spill, now);
            if spill.is_empty() {
                self.position = last;
            } else {
                self.write_spill(svc, last, spill)?;
            }
            if stalled {
                break;
            }
        }
        Ok(())
    }

    /// The (shard, endpoint) pairs a record is to be delivered to, and the decoded message
    /// when there are any.
    fn targets(
        &mut self,
        svc: &Service,
        rec: &storage::Record,
        shards: usize,
    ) -> storage::Result<Targets> {
        #[cfg(test)]
        if let Some(e) = tests::fault(tests::Fault::Targets(rec.seq)) {
            return Err(e);
        }
        // The record's key is its app: apps without endpoints are skipped undecoded.
        let eps = self.endpoints.get(svc, rec.key)?;
        if eps.is_empty() {
            return Ok((Vec::new(), None));
        }
        let Ok(m) = decode_value::<MessageRecord>(&rec.payload, &|| format!("message {}", rec.seq))
        else {
            tracing::warn!(seq = rec.seq, "fan-out skipped an undecodable message");
            return Ok((Vec::new(), None));
        };
        let mut out = Vec::new();
        let mut payload = Payload::new(&m.payload);
        let wanted = eps
            .iter()
            .filter(|s| subscribed(&s.ep, &m) && payload.passes(s.filter.as_ref()))
            .map(|s| &s.ep);
        for ep in wanted {
            // Before a restart this may have been sent (and settled, or left due): do not
            // send it again.
            if rec.seq <= self.recheck_upto
                && svc.store.state().delivery(ep.key, rec.seq)?.is_some()
            {
                continue;
            }
            out.push((owner(ep.key, shards), ep.key, ep.fifo));
        }
        let msg = (!out.is_empty()).then_some(m);
        Ok((out, msg))
    }
}

/// Whether a record's deliveries all fit in the shards' `room`, and whether one that does
/// not is an ordered endpoint's: that one is never spilled (spilled, it could be sent after
/// a later message of its lane that found room).
fn fits(targets: &[(usize, u64, bool)], room: &[usize]) -> (bool, bool) {
    let mut need = vec![0usize; room.len()];
    for &(shard, _, _) in targets {
        need[shard] += 1;
    }
    let fits = need.iter().zip(room).all(|(n, r)| n <= r);
    let ordered_waits = targets
        .iter()
        .any(|&(shard, _, fifo)| fifo && need[shard] > room[shard]);
    (fits, ordered_waits)
}

/// One pass of retention: segments wholly below the oldest pending delivery and fan-out's
/// safe position `fanned` (and the index entries of their messages) go.
fn retention_pass(svc: &Service, retention: Duration, fanned: u64) {
    let floor = svc.store.retention_floor(fanned + 1);
    match floor.and_then(|f| svc.store.run_retention(retention, f)) {
        Ok(removed) if !removed.is_empty() => {
            tracing::info!(segments = removed.len(), "retention removed old segments")
        }
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "retention failed; retrying later"),
    }
}

/// A crash between an ordered lane's head settling and the next being made due leaves the
/// lane blocked: frees such lanes before the first due scan.
fn repair_lanes(svc: &Service) {
    match svc.store.state().fifo_repair(svc.now_ms()) {
        Ok(0) => {}
        Ok(n) => tracing::info!(lanes = n, "ordered lanes blocked by a crash made due again"),
        Err(e) => tracing::error!(error = %e, "checking ordered lanes after start"),
    }
}

/// Wraps a message for the shards, if `budget` (bytes carried now) stays within `max`.
fn carry(budget: &Arc<AtomicUsize>, msg: MessageRecord, max: usize) -> Option<Arc<Carried>> {
    let bytes = msg.payload.len() + std::mem::size_of::<Carried>();
    if budget.load(Ordering::Acquire) + bytes > max {
        return None;
    }
    budget.fetch_add(bytes, Ordering::AcqRel);
    Some(Arc::new(Carried {
        msg,
        budget: Some((budget.clone(), bytes)),
    }))
}

/// A delivery waiting in the due index for its first attempt.
fn pending_now(now: u64) -> DeliveryState {
    DeliveryState {
        status: DeliveryStatus::Pending,
        attempts: 0,
        next_at_ms: now,
        last_status_code: None,
        updated_ms: now,
        trigger: Trigger::Scheduled,
    }
}

/// Queues fresh tasks at their shards, registering each as unsettled first. Returns the
/// deliveries to write to the due index instead: `spill`, and any task that did not fit.
fn queue_fresh(
    inboxes: &[Inbox],
    tasks: Vec<(usize, Task)>,
    mut spill: Vec<(u64, u64, DeliveryState)>,
    now: u64,
) -> Vec<(u64, u64, DeliveryState)> {
    let mut rung = vec![false; inboxes.len()];
    for (shard, task) in tasks {
        let inbox = &inboxes[shard];
        {
            let mut u = inbox.unsettled.lock().unwrap_or_else(|e| e.into_inner());
            *u.entry(task.seq).or_default() += 1;
        }
        match inbox.tx.try_send(task) {
            Ok(()) => rung[shard] = true,
            Err(TrySendError::Full(task) | TrySendError::Disconnected(task)) => {
                inbox.settled([task.seq]);
                spill.push((task.endpoint, task.seq, pending_now(now)));
            }
        }
    }
    ring(inboxes, &rung);
    spill
}

fn ring(inboxes: &[Inbox], rung: &[bool]) {
    for (inbox, &r) in inboxes.iter().zip(rung) {
        if r {
            inbox.ring();
        }
    }
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
    ring(inboxes, &rung);
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
        let mut st = match state.delivery(due.endpoint, due.seq)? {
            Some(st) if st.status.is_open() => st,
            // Settled by a write that raced the one that made it due.
            _ => {
                state.remove_stale_due(due)?;
                continue;
            }
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
                fresh: false,
                msg: None,
                lane: None,
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
    use std::cell::RefCell;

    use super::*;

    /// An index failure a test injects, once, on this thread.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) enum Fault {
        /// Looking up the endpoints of the message at this seq.
        Targets(u64),
        /// Writing spilled deliveries to the due index.
        Spill,
    }

    thread_local! {
        static FAULTS: RefCell<Vec<Fault>> = const { RefCell::new(Vec::new()) };
    }

    /// The injected error, if `at` was armed (it is disarmed by firing).
    pub(super) fn fault(at: Fault) -> Option<storage::Error> {
        FAULTS.with(|f| {
            let mut f = f.borrow_mut();
            let i = f.iter().position(|x| *x == at)?;
            f.remove(i);
            Some(storage::Error::Io {
                context: format!("injected fault at {at:?}"),
                source: std::io::Error::other("injected"),
            })
        })
    }

    fn arm(at: Fault) {
        FAULTS.with(|f| f.borrow_mut().push(at));
    }

    /// A real service on a temporary directory (one shard), an endpoint subscribed to
    /// everything in app 1, and `n` durable messages of that app; returns their seqs.
    fn service_with_messages(dir: &std::path::Path, n: usize) -> (Arc<Service>, Vec<u64>) {
        let text = format!(
            "[server]\nshards = 1\n[storage]\npath = \"{}\"\n",
            dir.join("data").display()
        );
        let config = crate::config::from_toml_str(&text).expect("config");
        let clock: Arc<dyn crate::time::Clock> = Arc::new(crate::time::SystemClock);
        let (svc, _) = Service::open(config, clock).expect("open");
        let ep = EndpointRecord::new(7, 1, "ep_x".into(), "http://127.0.0.1:9/".into(), vec![], 0);
        svc.store.state().put_endpoint(&ep).unwrap();
        svc.endpoints_version.fetch_add(1, Ordering::AcqRel);
        let mut seqs = Vec::new();
        for i in 0..n {
            let mut m = msg("a", &[]);
            m.rand = i as u64;
            let bytes = storage::codec::encode_value(&m).unwrap();
            let seq = svc.store.log().append_keyed(1, &[&bytes]).unwrap();
            svc.store.log().durable().wait(seq).blocking().unwrap();
            seqs.push(seq);
        }
        (svc, seqs)
    }

    fn queued(inbox: &Inbox) -> Vec<u64> {
        inbox.rx.try_iter().map(|t| t.seq).collect()
    }

    #[test]
    fn an_index_error_in_fan_out_hands_out_the_same_records_again() {
        let dir = tempfile::tempdir().unwrap();
        let (svc, seqs) = service_with_messages(dir.path(), 5);
        let inboxes = vec![Inbox::new(64)];
        let mut fan = FanOut::new(svc.store.log(), 0);
        // The third message's endpoint look-up fails: the two before it were read off the
        // log but not handed out.
        arm(Fault::Targets(seqs[2]));
        assert!(fan.run(&svc, &inboxes).is_err());
        assert!(queued(&inboxes[0]).is_empty());
        assert_eq!(fan.position, 0);
        fan.run(&svc, &inboxes).unwrap();
        assert_eq!(
            queued(&inboxes[0]),
            seqs,
            "every message once, none skipped"
        );
        assert_eq!(fan.position, seqs[4]);
    }

    /// Two inboxes of one task each, endpoint 7's full (with a task of another endpoint), and
    /// fan-out from the start of the log, having waited for room long enough to spill
    /// (`SPILL_AFTER`, set by hand rather than waited for).
    fn one_shard_full(svc: &Service) -> (Vec<Inbox>, usize, FanOut<'_>) {
        let inboxes = vec![Inbox::new(1), Inbox::new(1)];
        let full = owner(7, inboxes.len());
        let filler = Task {
            endpoint: 9,
            seq: 0,
            attempts: 0,
            trigger: Trigger::Scheduled,
            fresh: false,
            msg: None,
            lane: None,
        };
        assert!(inboxes[full].tx.try_send(filler).is_ok());
        let mut fan = FanOut::new(svc.store.log(), 0);
        fan.blocked_since = Some(Instant::now() - SPILL_AFTER);
        (inboxes, full, fan)
    }

    #[test]
    fn a_failed_spill_write_is_written_before_the_position_passes_it() {
        let dir = tempfile::tempdir().unwrap();
        let (svc, seqs) = service_with_messages(dir.path(), 2);
        // The endpoint's shard has a full inbox while the other has room, and fan-out has
        // waited long enough (SPILL_AFTER, set by hand rather than waited for): the first
        // message's delivery spills to the index.
        let (inboxes, _, mut fan) = one_shard_full(&svc);
        arm(Fault::Spill);
        assert!(fan.run(&svc, &inboxes).is_err());
        assert_eq!(
            fan.position, 0,
            "the position waits for the spill to be on disk"
        );
        let state = svc.store.state();
        assert!(state.delivery(7, seqs[0]).unwrap().is_none());
        // The next round writes it first, then moves on: the second message spills too, at
        // once (the wait for room has run out and nothing fits yet).
        fan.run(&svc, &inboxes).unwrap();
        assert_eq!(fan.position, seqs[1]);
        for &seq in &seqs {
            let d = state
                .delivery(7, seq)
                .unwrap()
                .expect("spilled to the due index");
            assert_eq!(d.status, DeliveryStatus::Pending);
        }
    }

    #[test]
    fn an_ordered_endpoints_delivery_waits_for_room_and_is_never_spilled() {
        let dir = tempfile::tempdir().unwrap();
        let (svc, seqs) = service_with_messages(dir.path(), 2);
        let state = svc.store.state();
        let mut ep = state.endpoint(7).unwrap().unwrap();
        ep.fifo = true;
        state.put_endpoint(&ep).unwrap();
        svc.endpoints_version.fetch_add(1, Ordering::AcqRel);
        // As above: the endpoint's shard is full, the other has room, the wait ran out.
        let (inboxes, full, mut fan) = one_shard_full(&svc);
        fan.run(&svc, &inboxes).unwrap();
        assert_eq!(fan.position, 0, "the log keeps it");
        assert!(state.delivery(7, seqs[0]).unwrap().is_none(), "not spilled");
        // Room again: both go to the shard, fresh and in order.
        assert_eq!(queued(&inboxes[full]), vec![0]);
        fan.run(&svc, &inboxes).unwrap();
        assert_eq!(queued(&inboxes[full]), vec![seqs[0]]);
        fan.run(&svc, &inboxes).unwrap();
        assert_eq!(queued(&inboxes[full]), vec![seqs[1]]);
        assert_eq!(fan.position, seqs[1]);
    }

    fn ep(types: Option<&[&str]>, channels: Option<&[&str]>, disabled: bool) -> EndpointRecord {
        EndpointRecord {
            event_types: types.map(|t| t.iter().map(|s| s.to_string()).collect()),
            channels: channels.map(|c| c.iter().map(|s| s.to_string()).collect()),
            disabled,
            ..EndpointRecord::new(1, 1, "ep_x".into(), "https://example.com".into(), vec![], 0)
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
            traceparent: None,
            only_endpoint: None,
            ordering_key: None,
        }
    }

    #[test]
    fn when_every_shard_is_full_the_log_holds_the_backlog() {
        let dir = tempfile::tempdir().unwrap();
        let (svc, seqs) = service_with_messages(dir.path(), 3);
        let inboxes = vec![Inbox::new(1), Inbox::new(1)];
        for (i, inbox) in inboxes.iter().enumerate() {
            let filler = Task {
                endpoint: 9,
                seq: i as u64,
                attempts: 0,
                trigger: Trigger::Scheduled,
                fresh: false,
                msg: None,
                lane: None,
            };
            assert!(inbox.tx.try_send(filler).is_ok());
        }
        let mut fan = FanOut::new(svc.store.log(), 0);
        fan.blocked_since = Some(Instant::now() - SPILL_AFTER);
        fan.run(&svc, &inboxes).unwrap();
        // Behind, not stuck: nothing is written to the index, fan-out waits for room.
        assert_eq!(fan.position, 0);
        for &seq in &seqs {
            assert!(svc.store.state().delivery(7, seq).unwrap().is_none());
        }
        // Room again: the messages go out fresh, in order.
        let owner_inbox = &inboxes[owner(7, inboxes.len())];
        owner_inbox.rx.try_recv().unwrap();
        fan.run(&svc, &inboxes).unwrap();
        assert_eq!(queued(owner_inbox), vec![seqs[0]]);
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
        // A message for one endpoint: that one (key 1) whatever its filters, no other.
        let only = |key| MessageRecord {
            only_endpoint: Some(key),
            ordering_key: None,
            ..msg("zzz", &[])
        };
        assert!(subscribed(
            &ep(Some(&["a"]), Some(&["eu"]), false),
            &only(1)
        ));
        assert!(!subscribed(&ep(None, None, false), &only(2)));
        assert!(!subscribed(&ep(None, None, true), &only(1)));
    }

    #[test]
    fn carried_messages_stay_within_their_budget_until_dropped() {
        let budget = Arc::new(AtomicUsize::new(0));
        let overhead = std::mem::size_of::<Carried>();
        let max = 2 * (1000 + overhead);
        let big = |n| MessageRecord {
            payload: vec![b'x'; n],
            ..msg("a", &[])
        };
        let a = carry(&budget, big(1000), max).expect("within budget");
        let b = carry(&budget, big(1000), max).expect("within budget");
        assert!(carry(&budget, big(1), max).is_none(), "over budget");
        let a2 = a.clone();
        drop(a);
        assert_eq!(budget.load(Ordering::Acquire), max, "a task still holds it");
        drop(a2);
        assert_eq!(budget.load(Ordering::Acquire), 1000 + overhead);
        assert!(carry(&budget, big(1000), max).is_some(), "room again");
        drop(b);
    }

    #[test]
    fn a_throttled_log_line_counts_what_it_held_back() {
        let mut t = Throttle::new(Duration::from_secs(3600));
        assert!(t.ready());
        assert_eq!(t.take(), 0);
        assert!(!t.ready());
        assert!(!t.ready());
        assert_eq!(t.take(), 2);
        let mut every_time = Throttle::new(Duration::ZERO);
        assert!(every_time.ready() && every_time.ready());
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
