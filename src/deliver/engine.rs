//! The delivery loop of one shard: takes leased deliveries from the shard's inbox, keeps a
//! queue per endpoint with its concurrency cap and token bucket, and runs each attempt:
//! read the message, sign it, POST it, record the attempt, and settle the delivery through the
//! retry policy.
//!
//! Everything here lives on one shard thread (`Rc`, `RefCell`): an endpoint's queue, limiter,
//! health and signing keys are owned by the shard `dispatch::owner` assigns it to, so no lock
//! guards them.

use std::{
    cell::{Cell, RefCell},
    collections::{HashMap, VecDeque},
    rc::Rc,
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use arc_swap::Guard;
use rand::{rngs::StdRng, SeedableRng};
use storage::{
    codec::decode_value,
    state::{
        AttemptRecord, DeliveryState, DeliveryStatus, EndpointRecord, MessageRecord, OutcomeRecord,
        Trigger,
    },
};

use super::{
    client::{Client, ClientError},
    dispatch::{Carried, Inbox, Task},
    fifo::{self, Arrival, Lanes},
    policy::{self, Action, Delivery, EndpointHealth, Outcome, Policy},
    recorder::Recorder,
    sign::{self, Signer},
};
use crate::{
    auth::Bucket,
    config::Config,
    ingest::Ingest,
    model::ids::{self, Kind},
    model::message_id,
    model::url::Url,
    panics::{CatchUnwind, Panicked},
    service::Service,
};

/// Outcomes handed to the recorder per batch, at most, and the longest one waits for it.
const OUTCOME_BATCH: usize = 128;
const OUTCOME_DELAY: Duration = Duration::from_millis(2);
/// Outcomes a shard holds (the recorder being behind) before it starts no new attempts.
const OUTCOMES_HELD_MAX: usize = 4096;
/// How often a shard with throttled or capped work looks at its queues again.
const TICK: Duration = Duration::from_millis(5);
/// Debug builds only: an endpoint URL containing this makes its delivery attempt panic, and
/// one containing [`TEST_PANIC_IN_SHARD`] makes its shard's engine panic outside any task
/// that catches it. `tests/panics.rs` uses them to check that a panic is contained, counted
/// and shown, and that a shard that dies anyway is reported; release builds have neither.
pub const TEST_PANIC_IN_ATTEMPT: &str = "/__hookd_test_panic_in_attempt__";
/// See [`TEST_PANIC_IN_ATTEMPT`].
pub const TEST_PANIC_IN_SHARD: &str = "/__hookd_test_panic_in_shard__";

/// Panics when `url` names `point`, in debug builds (see [`TEST_PANIC_IN_ATTEMPT`]).
fn test_panic(url: &str, point: &str) {
    if cfg!(debug_assertions) && url.contains(point) {
        panic!("a test asked for a panic at {point}");
    }
}

/// An endpoint with no delivery waiting or in flight for this long has its cached state
/// evicted from the shard (it is read again on its next delivery).
const IDLE_EVICT_MS: u64 = 60_000;
/// How often idle endpoints are looked for.
const EVICT_EVERY_MS: u64 = 10_000;
/// When a delivery whose attempt could not run is tried again.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);
/// The user agent sent with every delivery.
const USER_AGENT: &str = concat!("hookd/", env!("CARGO_PKG_VERSION"));

#[derive(Default)]
struct EndpointSlot {
    in_flight: u32,
    waiting: VecDeque<Task>,
    bucket: Option<(u32, Bucket)>,
    signer: Option<(u64, Signer)>,
    /// The endpoint as last read, with `Service::endpoints_version` at the time.
    record: Option<(u64, Rc<EndpointRecord>)>,
    /// Whether its key is in `Engine::ready` (it has waiting tasks).
    queued: bool,
    /// When a task of it last started or finished (service clock): idle slots are evicted.
    last_used_ms: u64,
    /// Its lanes, when it is ordered (`deliver::fifo`).
    lanes: Lanes,
}

/// One shard's delivery engine.
pub struct Engine {
    svc: Arc<Service>,
    /// For operational webhooks about attempts and disabled endpoints.
    ingest: Arc<Ingest>,
    /// The retry policy, and the config it was built from (see [`Engine::policy`]).
    policy: RefCell<(Arc<Config>, Arc<Policy>)>,
    inboxes: Arc<Vec<Inbox>>,
    shard: usize,
    client: Client,
    recorder: Arc<Recorder>,
    endpoints: RefCell<HashMap<u64, EndpointSlot>>,
    /// The endpoints with waiting tasks, in the order they are served (round robin): the
    /// work of a pump is proportional to them, not to every endpoint the shard knows.
    ready: RefCell<VecDeque<u64>>,
    /// Endpoints whose slot was just made: their limits are read at the next pump.
    unknown: RefCell<Vec<u64>>,
    /// When idle slots were last evicted (service clock).
    last_eviction_ms: Cell<u64>,
    waiting: Cell<usize>,
    /// Deliveries of ordered endpoints held in memory for their lane's head.
    held: Cell<usize>,
    in_flight: Cell<u32>,
    rng: RefCell<StdRng>,
    /// Finished attempts not yet written, and whether a write is scheduled.
    outcomes: RefCell<Vec<OutcomeRecord>>,
    /// Disabled endpoints whose open deliveries the recorder is yet to fail.
    sweeps: RefCell<Vec<u64>>,
    flush_scheduled: Cell<bool>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("shard", &self.shard)
            .finish()
    }
}

impl Engine {
    /// The engine of shard `shard`.
    pub fn new(
        ingest: Arc<Ingest>,
        inboxes: Arc<Vec<Inbox>>,
        shard: usize,
        client: Client,
        recorder: Arc<Recorder>,
    ) -> Rc<Self> {
        let svc = ingest.svc.clone();
        let config = Guard::into_inner(svc.config());
        let policy = Arc::new(Policy::from_config(&config.delivery));
        Rc::new(Self {
            svc,
            ingest,
            policy: RefCell::new((config, policy)),
            inboxes,
            shard,
            client,
            recorder,
            endpoints: RefCell::default(),
            ready: RefCell::default(),
            unknown: RefCell::default(),
            last_eviction_ms: Cell::new(0),
            waiting: Cell::new(0),
            held: Cell::new(0),
            in_flight: Cell::new(0),
            rng: RefCell::new(StdRng::from_entropy()),
            outcomes: RefCell::default(),
            sweeps: RefCell::default(),
            flush_scheduled: Cell::new(false),
        })
    }

    /// The retry policy of the running config (`[delivery]`), rebuilt when a reload has
    /// installed another config: a reload changes the schedule of later attempts.
    fn policy(&self) -> Arc<Policy> {
        let config = self.svc.config();
        let mut cached = self.policy.borrow_mut();
        if !Arc::ptr_eq(&cached.0, &config) {
            let policy = Arc::new(Policy::from_config(&config.delivery));
            *cached = (Guard::into_inner(config), policy);
        }
        cached.1.clone()
    }

    /// Runs until the inbox's doorbell closes.
    pub async fn run(self: Rc<Self>) {
        let inbox = &self.inboxes[self.shard];
        let doorbell = inbox.doorbell.subscribe();
        let capacity = self.svc.config().delivery.queue_capacity as usize;
        loop {
            // Deliveries held behind an ordered lane's head count against the queue: fan-out
            // waits (the log is the queue) rather than have them parked in the index.
            while self.waiting.get() + self.held.get() < capacity {
                let Ok(task) = inbox.rx.try_recv() else { break };
                self.enqueue(task);
            }
            self.pump();
            if inbox.doorbell.outcome(u64::MAX).is_some() {
                return; // closed
            }
            if self.waiting.get() + self.held.get() > 0 {
                monoio::select! {
                    _ = doorbell.changed() => {}
                    _ = monoio::time::sleep(TICK) => {}
                }
            } else {
                doorbell.changed().await;
            }
        }
    }

    /// Takes a task from the inbox: an ordered endpoint's goes through its lane first.
    fn enqueue(&self, task: Task) {
        let task = self.with_lane(task);
        if task.lane.is_some() {
            self.arrive(task);
        } else {
            self.push_waiting(task);
        }
    }

    /// The task with its lane set if its endpoint is ordered (the message read, and kept with
    /// the task); as it was if not, or if the endpoint or message cannot be read (its attempt
    /// settles it).
    fn with_lane(&self, mut task: Task) -> Task {
        if !matches!(self.endpoint(task.endpoint), Ok(Some(ep)) if ep.fifo) {
            return task;
        }
        if let Ok(Ok(carried)) = self.message(&task) {
            task.lane = Some(fifo::lane(carried.msg.ordering_key.as_deref()));
            task.msg = Some(carried);
        }
        task
    }

    /// Lets an ordered endpoint's lane decide on `task`.
    fn arrive(&self, task: Task) {
        let capacity = self.svc.config().delivery.queue_capacity as usize;
        let state = self.svc.store.state();
        let now = self.svc.now_ms();
        let fresh = task.fresh.then_some(task.seq);
        let arrival = {
            let mut eps = self.endpoints.borrow_mut();
            let slot = self.slot(&mut eps, task.endpoint);
            let before = slot.lanes.held();
            let arrival = slot
                .lanes
                .arrive(state, task, (self.held.get(), capacity), now);
            self.held.set(self.held.get() + slot.lanes.held() - before);
            slot.last_used_ms = now;
            arrival
        };
        match arrival {
            Ok(Arrival::Go(task)) => self.push_waiting(task),
            Ok(Arrival::Held | Arrival::Dropped) => {}
            Ok(Arrival::Parked(fresh)) => self.inboxes[self.shard].settled(fresh),
            Err(e) => {
                // A fresh one stays unsettled (fan-out sends it again after a restart); a
                // leased one comes back when its lease runs out.
                tracing::error!(error = %e, seq = ?fresh, "an ordered delivery could not be queued");
            }
        }
    }

    /// The lane work after an ordered delivery's attempt (or its settling without one): what
    /// its lane lets start next is queued, what it parked is reported settled. Returns the
    /// lane the outcome's record must keep or free in the index.
    fn lane_done(&self, task: &Task, retry: bool) -> Option<u64> {
        task.lane?;
        let ordered = matches!(self.endpoint(task.endpoint), Ok(Some(ep)) if ep.fifo);
        let now = self.svc.now_ms();
        let done = {
            let mut eps = self.endpoints.borrow_mut();
            let slot = self.slot(&mut eps, task.endpoint);
            let before = slot.lanes.held();
            let lease_until = now + super::dispatch::lease_ms(&self.svc.config().delivery);
            let done = slot.lanes.done(
                self.svc.store.state(),
                task,
                (retry, ordered),
                (now, lease_until),
            );
            self.held.set(self.held.get() + slot.lanes.held() - before);
            done
        };
        if !done.parked.is_empty() {
            self.inboxes[self.shard].settled(done.parked);
        }
        for next in done.next {
            self.push_waiting(next);
        }
        done.outcome_lane
    }

    /// The endpoint's slot, made if it is new to this shard (or was evicted): its limits are
    /// then read at the next pump, before it sends.
    fn slot<'a>(&self, eps: &'a mut HashMap<u64, EndpointSlot>, key: u64) -> &'a mut EndpointSlot {
        eps.entry(key).or_insert_with(|| {
            self.unknown.borrow_mut().push(key);
            EndpointSlot::default()
        })
    }

    /// Queues a task behind its endpoint's others.
    fn push_waiting(&self, task: Task) {
        let key = task.endpoint;
        let mut eps = self.endpoints.borrow_mut();
        let slot = self.slot(&mut eps, key);
        slot.waiting.push_back(task);
        if !slot.queued {
            slot.queued = true;
            self.ready.borrow_mut().push_back(key);
        }
        self.waiting.set(self.waiting.get() + 1);
    }

    /// Starts every waiting delivery that its endpoint's cap, rate and the shard's cap allow.
    /// Visits only the endpoints with waiting tasks, round robin, and stops at the shard's cap.
    fn pump(self: &Rc<Self>) {
        // An endpoint seen for the first time gets its rate limit before its first request.
        let unknown = std::mem::take(&mut *self.unknown.borrow_mut());
        for key in unknown {
            // Deleted or unreadable: the attempt settles it.
            if let Ok(Some(ep)) = self.endpoint(key) {
                test_panic(&ep.url, TEST_PANIC_IN_SHARD);
                self.update_limits(&ep);
            }
        }
        let now = self.svc.now_ms();
        self.evict_idle(now);
        if self.outcomes.borrow().len() >= OUTCOMES_HELD_MAX {
            return; // the recorder is behind; the next flush pumps again
        }
        let (per_endpoint, per_shard) = {
            let delivery = &self.svc.config().delivery;
            (
                delivery.in_flight_per_endpoint_max,
                delivery.in_flight_per_shard_max,
            )
        };
        let mut start = Vec::new();
        {
            let mut eps = self.endpoints.borrow_mut();
            let mut ready = self.ready.borrow_mut();
            for _ in 0..ready.len() {
                if self.in_flight.get() >= per_shard {
                    break;
                }
                let Some(key) = ready.pop_front() else { break };
                let Some(slot) = eps.get_mut(&key) else {
                    continue;
                };
                while slot.in_flight < per_endpoint && self.in_flight.get() < per_shard {
                    if slot.waiting.is_empty() {
                        break;
                    }
                    if let Some((_, bucket)) = &mut slot.bucket {
                        if bucket.take(now).is_err() {
                            break;
                        }
                    }
                    let Some(task) = slot.waiting.pop_front() else {
                        break;
                    };
                    slot.in_flight += 1;
                    slot.last_used_ms = now;
                    self.in_flight.set(self.in_flight.get() + 1);
                    self.svc
                        .deliveries_in_flight
                        .fetch_add(1, Ordering::Relaxed);
                    self.waiting.set(self.waiting.get() - 1);
                    start.push((key, task));
                }
                if slot.waiting.is_empty() {
                    slot.queued = false;
                } else {
                    ready.push_back(key);
                }
            }
        }
        for (_, task) in start {
            let me = self.clone();
            monoio::spawn(async move {
                let mut held = Held {
                    engine: &me,
                    endpoint: task.endpoint,
                    released: false,
                };
                match CatchUnwind::new(me.attempt(&task, &mut held)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => me.attempt_failed(&task, &e.to_string()),
                    Err(Panicked) => me.attempt_failed(&task, "it panicked (a bug in hookd)"),
                }
                drop(held);
                me.in_flight.set(me.in_flight.get() - 1);
                me.svc.deliveries_in_flight.fetch_sub(1, Ordering::Relaxed);
                me.pump();
            });
        }
    }

    /// An attempt that could not run or be recorded: a leased delivery comes round again
    /// when its lease runs out; a fresh one is made due in the index (or, if even that
    /// fails, stays unsettled, so fan-out rebuilds it after a restart).
    fn attempt_failed(&self, task: &Task, e: &str) {
        tracing::error!(
            error = e,
            endpoint = task.endpoint,
            seq = task.seq,
            "a delivery attempt failed to run or to be recorded; it will be retried"
        );
        // An ordered delivery keeps its place at the head of its lane.
        self.lane_done(task, true);
        if !task.fresh {
            return;
        }
        let now = self.svc.now_ms();
        let retry = DeliveryState {
            status: DeliveryStatus::Pending,
            attempts: task.attempts,
            next_at_ms: now + RETRY_AFTER_ERROR.as_millis() as u64,
            last_status_code: None,
            updated_ms: now,
            trigger: task.trigger,
        };
        if self
            .svc
            .store
            .state()
            .set_delivery(task.endpoint, task.seq, &retry)
            .is_ok()
        {
            self.svc.due_written();
            self.inboxes[self.shard].settled([task.seq]);
        }
    }

    /// Frees one of the endpoint's in-flight slots and starts what waits for it.
    fn release(self: &Rc<Self>, endpoint: u64) {
        if let Some(slot) = self.endpoints.borrow_mut().get_mut(&endpoint) {
            slot.in_flight -= 1;
            slot.last_used_ms = self.svc.now_ms();
        }
        self.pump();
    }

    /// Forgets the cached state (record, signer, rate bucket) of endpoints with nothing
    /// waiting or in flight for [`IDLE_EVICT_MS`], at most once per [`EVICT_EVERY_MS`]: the
    /// shard's memory follows the endpoints with recent work, not every endpoint it has seen.
    fn evict_idle(&self, now: u64) {
        if now.saturating_sub(self.last_eviction_ms.get()) < EVICT_EVERY_MS {
            return;
        }
        self.last_eviction_ms.set(now);
        self.endpoints.borrow_mut().retain(|_, s| {
            s.in_flight > 0
                || !s.waiting.is_empty()
                || !s.lanes.is_idle()
                || now.saturating_sub(s.last_used_ms) < IDLE_EVICT_MS
        });
    }

    /// One attempt, start to finish. The endpoint's slot is given back (`held`) as soon as the
    /// response is in, before the attempt is recorded: the cap is on requests to the endpoint.
    /// The shard's slot is held until the attempt is recorded, which bounds that backlog.
    async fn attempt(self: &Rc<Self>, task: &Task, held: &mut Held<'_>) -> storage::Result<()> {
        let state = self.svc.store.state();
        let started = self.svc.now_ms();
        let Some(ep) = self.endpoint(task.endpoint)? else {
            return self.settle_without_attempt(task, "endpoint deleted");
        };
        if ep.disabled {
            return self.settle_without_attempt(task, "endpoint disabled");
        }
        let carried = match self.message(task)? {
            Ok(carried) => carried,
            Err(why) => return self.settle_without_attempt(task, why),
        };
        let msg = &carried.msg;
        self.update_limits(&ep);
        let id = message_id(task.seq, msg);
        // The latency metric's clock: monotonic and fine-grained (`started` is the service's
        // millisecond wall clock, for the attempt's record).
        let timer = std::time::Instant::now();
        let (outcome, response) = self.exchange(&ep, &id, msg, started).await;
        held.release();
        self.svc.metrics.delivery(outcome.class());
        self.svc.metrics.delivery_latency(timer.elapsed());
        let finished = self.svc.now_ms();
        // The policy of the running config: a reload changes the schedule of later attempts.
        let policy = self.policy();
        let (delivery, action) = {
            let mut rng = self.rng.borrow_mut();
            let before = Delivery {
                attempts: task.attempts,
            };
            policy.next(before, &outcome, finished, &mut *rng)
        };
        let key = state.next_key()?;
        let attempt = attempt_record(key, task, &ep, (started, finished), &outcome, response);
        tracing::debug!(
            msg = %id,
            endpoint = %ep.id,
            attempt = %attempt.id,
            outcome = %outcome,
            traceparent = msg.traceparent.as_deref().unwrap_or("-"),
            "delivery attempt"
        );
        crate::ingest::operational::on_attempt(
            &self.ingest,
            &ep,
            &id,
            msg,
            &attempt,
            delivery.attempts,
            matches!(action, Action::Fail { .. }),
        );
        let (next, disable) = next_state(action, delivery.attempts, attempt.status_code, finished);
        let success = outcome.is_success();
        let fifo_lane = self.lane_done(task, next.status.is_open());
        self.record(OutcomeRecord {
            attempt,
            next,
            first_write: task.fresh,
            fifo_lane,
        });
        self.follow_health(task.endpoint, &ep, &policy, success, finished, disable)
    }

    /// The message a task delivers: carried from fan-out, or read from the log; `Err` says why
    /// there is none to send (the task is then settled without an attempt).
    fn message(&self, task: &Task) -> storage::Result<Result<Arc<Carried>, &'static str>> {
        if self.svc.store.state().is_expunged(task.seq)? {
            return Ok(Err("message content expunged"));
        }
        if let Some(carried) = &task.msg {
            return Ok(Ok(carried.clone()));
        }
        match self.svc.store.log().read(task.seq) {
            Ok(Some(r)) => {
                Ok(
                    decode_value::<MessageRecord>(&r.payload, &|| format!("message {}", task.seq))
                        .map(|m| Arc::new(Carried::unbudgeted(m)))
                        .map_err(|_| "message no longer in the log"),
                )
            }
            Ok(None) => Ok(Err("message no longer in the log")),
            Err(storage::Error::Quarantined { .. }) => Ok(Err("message corrupt in the log")),
            Err(e) => Err(e),
        }
    }

    /// Sends the message to the endpoint: its outcome, and the response body if there was one.
    async fn exchange(
        self: &Rc<Self>,
        ep: &EndpointRecord,
        id: &str,
        msg: &MessageRecord,
        started: u64,
    ) -> (Outcome, Option<Vec<u8>>) {
        match Url::parse(&ep.url) {
            Err(why) => (
                Outcome::Refused(format!("invalid endpoint URL: {why}")),
                None,
            ),
            // The receiver's bytes are parsed in here: should a bug still panic on them, the
            // attempt fails ("internal error") and is retried; the shard goes on.
            Ok(url) => CatchUnwind::new(self.send(ep, &url, id, msg, started))
                .await
                .unwrap_or_else(|Panicked| {
                    let why = "the attempt panicked (a bug in hookd; see the log)";
                    (Outcome::Internal(why.into()), None)
                }),
        }
    }

    /// Keeps the endpoint's failing-since time up to date after an attempt, and disables it
    /// when the policy says so (`disable`, or failing for `delivery.disable_after`).
    fn follow_health(
        self: &Rc<Self>,
        endpoint: u64,
        ep: &EndpointRecord,
        policy: &Policy,
        success: bool,
        now_ms: u64,
        mut disable: Option<String>,
    ) -> storage::Result<()> {
        let health = EndpointHealth {
            failing_since_ms: ep.failing_since_ms,
        };
        let (health, too_long) = policy.record(health, success, now_ms);
        if too_long && disable.is_none() {
            disable = Some(format!(
                "every attempt failed for {} (delivery.disable_after)",
                humantime(policy.disable_after)
            ));
        }
        match disable {
            Some(reason) => {
                self.flush_outcomes();
                self.disable(endpoint, &reason)
            }
            None if health.failing_since_ms != ep.failing_since_ms => {
                let state = self.svc.store.state();
                if let Some(mut latest) = state.endpoint(endpoint)? {
                    latest.failing_since_ms = health.failing_since_ms;
                    state.put_endpoint(&latest)?;
                    self.remember_endpoint(latest);
                }
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Queues an outcome for the shard's next batch to the recorder: up to `OUTCOME_BATCH`
    /// attempts, at most `OUTCOME_DELAY` after the first. An outcome lost in a crash is sent
    /// again: at least once.
    fn record(self: &Rc<Self>, outcome: OutcomeRecord) {
        let len = {
            let mut q = self.outcomes.borrow_mut();
            q.push(outcome);
            q.len()
        };
        if len >= OUTCOME_BATCH {
            self.flush_outcomes();
        } else {
            self.schedule_flush();
        }
    }

    fn schedule_flush(self: &Rc<Self>) {
        if !self.flush_scheduled.replace(true) {
            let me = self.clone();
            monoio::spawn(async move {
                monoio::time::sleep(OUTCOME_DELAY).await;
                me.flush_outcomes();
            });
        }
    }

    /// Hands the queued outcomes to the recorder, keeping what its full queue refuses.
    fn flush_outcomes(self: &Rc<Self>) {
        self.flush_scheduled.set(false);
        if !self.sweeps.borrow().is_empty() {
            self.submit_sweeps();
        }
        let mut held = std::mem::take(&mut *self.outcomes.borrow_mut());
        while !held.is_empty() {
            let rest = if held.len() > OUTCOME_BATCH {
                held.split_off(OUTCOME_BATCH)
            } else {
                Vec::new()
            };
            match self.recorder.submit(self.shard, held) {
                Ok(()) => held = rest,
                Err(mut back) => {
                    back.extend(rest);
                    held = back;
                    break;
                }
            }
        }
        if held.is_empty() {
            self.pump();
        } else {
            held.append(&mut self.outcomes.borrow_mut());
            *self.outcomes.borrow_mut() = held;
            self.schedule_flush();
        }
    }

    /// Signs and sends; returns the outcome and the response body kept.
    async fn send(
        &self,
        ep: &EndpointRecord,
        url: &Url,
        id: &str,
        msg: &MessageRecord,
        now_ms: u64,
    ) -> (Outcome, Option<Vec<u8>>) {
        test_panic(&ep.url, TEST_PANIC_IN_ATTEMPT);
        let signature = match self.signer(ep, now_ms) {
            Some(s) => s.sign(id, now_ms / 1000, &msg.payload),
            None => return (Outcome::Refused("endpoint has no signing key".into()), None),
        };
        let ts = (now_ms / 1000).to_string();
        let mut headers: Vec<(&str, &str)> = vec![
            ("content-type", "application/json"),
            ("user-agent", USER_AGENT),
            ("webhook-id", id),
            ("webhook-timestamp", &ts),
            ("webhook-signature", &signature),
        ];
        if self.svc.config().delivery.svix_headers {
            headers.extend([
                ("svix-id", id),
                ("svix-timestamp", ts.as_str()),
                ("svix-signature", signature.as_str()),
            ]);
        }
        if let Some(parent) = &msg.traceparent {
            headers.push(("traceparent", parent));
        }
        headers.extend(ep.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let legacy: Vec<(&str, String)> = ep
            .legacy_signatures
            .iter()
            .map(|sig| sign::legacy_header(sig, now_ms / 1000, &msg.payload))
            .collect();
        headers.extend(legacy.iter().map(|(k, v)| (*k, v.as_str())));
        match self.client.post(url, &headers, &msg.payload).await {
            Ok(resp) => {
                let retry_after = resp
                    .retry_after
                    .as_deref()
                    .and_then(|v| policy::parse_retry_after(v, self.svc.now_ms()));
                (
                    Outcome::Status {
                        code: resp.status,
                        retry_after,
                    },
                    Some(resp.body),
                )
            }
            Err(ClientError::Timeout) => (Outcome::Timeout, None),
            Err(ClientError::Refused(why)) => (Outcome::Refused(why), None),
            Err(e) => (Outcome::Connect(e.to_string()), None),
        }
    }

    /// The endpoint, read from the index only when endpoints changed since it last was.
    fn endpoint(&self, key: u64) -> storage::Result<Option<Rc<EndpointRecord>>> {
        let version = self.svc.endpoints_version.load(Ordering::Acquire);
        if let Some((v, ep)) = self
            .endpoints
            .borrow()
            .get(&key)
            .and_then(|s| s.record.as_ref())
        {
            if *v == version {
                return Ok(Some(ep.clone()));
            }
        }
        let Some(ep) = self.svc.store.state().endpoint(key)? else {
            return Ok(None);
        };
        let ep = Rc::new(ep);
        self.slot(&mut self.endpoints.borrow_mut(), key).record = Some((version, ep.clone()));
        Ok(Some(ep))
    }

    /// Keeps the cached endpoint in step with a write of this shard's own.
    fn remember_endpoint(&self, ep: EndpointRecord) {
        let mut eps = self.endpoints.borrow_mut();
        if let Some(slot) = eps.get_mut(&ep.key) {
            if let Some((_, cached)) = &mut slot.record {
                *cached = Rc::new(ep);
            }
        }
    }

    /// The endpoint's signer, prepared once per version of its keys.
    fn signer(&self, ep: &EndpointRecord, now_ms: u64) -> Option<Signer> {
        let mut eps = self.endpoints.borrow_mut();
        let slot = self.slot(&mut eps, ep.key);
        let version = ep.updated_ms ^ (ep.secrets.len() as u64) << 56;
        let expired = ep
            .secrets
            .iter()
            .any(|k| k.expires_ms.is_some_and(|t| t <= now_ms));
        match &slot.signer {
            Some((v, s)) if *v == version && !expired => Some(s.clone()),
            _ => {
                let s = Signer::from_endpoint(&ep.secrets, now_ms).ok()?;
                slot.signer = Some((version, s.clone()));
                Some(s)
            }
        }
    }

    /// Keeps the endpoint's token bucket in step with its `throttleRate`.
    fn update_limits(&self, ep: &EndpointRecord) {
        let mut eps = self.endpoints.borrow_mut();
        let slot = self.slot(&mut eps, ep.key);
        match (ep.throttle_rate.filter(|&r| r > 0), &slot.bucket) {
            (Some(rate), Some((r, _))) if *r == rate => {}
            (Some(rate), _) => {
                slot.bucket = Some((
                    rate,
                    Bucket::new(f64::from(rate), throttle_burst(rate), self.svc.now_ms()),
                ))
            }
            (None, _) => slot.bucket = None,
        }
    }

    /// Settles a delivery that could not even be attempted.
    fn settle_without_attempt(&self, task: &Task, why: &str) -> storage::Result<()> {
        self.write_unattempted(task, why)?;
        if task.fresh {
            self.inboxes[self.shard].settled([task.seq]);
        }
        if let Some(lane) = self.lane_done(task, false) {
            let now = self.svc.now_ms();
            if self
                .svc
                .store
                .state()
                .fifo_settled(task.endpoint, lane, task.seq, now)?
            {
                self.svc.due_written();
            }
        }
        Ok(())
    }

    fn write_unattempted(&self, task: &Task, why: &str) -> storage::Result<()> {
        tracing::info!(
            endpoint = task.endpoint,
            seq = task.seq,
            why,
            "delivery failed without an attempt"
        );
        let now = self.svc.now_ms();
        self.svc.store.state().set_delivery(
            task.endpoint,
            task.seq,
            &DeliveryState {
                status: DeliveryStatus::Fail,
                attempts: task.attempts,
                next_at_ms: now,
                last_status_code: None,
                updated_ms: now,
                trigger: Trigger::Scheduled,
            },
        )
    }

    /// Disables an endpoint and has its open deliveries failed (they can be recovered later).
    fn disable(self: &Rc<Self>, endpoint: u64, reason: &str) -> storage::Result<()> {
        let state = self.svc.store.state();
        let Some(mut ep) = state.endpoint(endpoint)? else {
            return Ok(());
        };
        tracing::warn!(endpoint = %ep.id, reason, "endpoint disabled");
        self.svc
            .metrics
            .endpoints_disabled
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ep.disabled = true;
        ep.disabled_reason = Some(reason.to_owned());
        let fail_since = ep.failing_since_ms;
        ep.failing_since_ms = None;
        ep.updated_ms = self.svc.now_ms();
        state.put_endpoint(&ep)?;
        self.svc.endpoints_changed();
        crate::ingest::operational::on_disabled(
            &self.ingest,
            &ep,
            fail_since,
            crate::ingest::operational::DisableTrigger::Automatic,
        );
        // Its open deliveries fail on the recorder thread (a scan); until then, any that
        // comes due fails here for the endpoint being disabled.
        self.sweeps.borrow_mut().push(endpoint);
        self.submit_sweeps();
        if !self.sweeps.borrow().is_empty() {
            self.schedule_flush(); // the recorder's queue is full: try again shortly
        }
        Ok(())
    }

    /// Hands queued sweeps of disabled endpoints to the recorder, as far as it takes them.
    fn submit_sweeps(&self) {
        self.sweeps
            .borrow_mut()
            .retain(|&endpoint| !self.recorder.fail_open(endpoint));
    }
}

/// An endpoint in-flight slot, given back once (at the latest when dropped).
struct Held<'a> {
    engine: &'a Rc<Engine>,
    endpoint: u64,
    released: bool,
}

impl Held<'_> {
    fn release(&mut self) {
        if !self.released {
            self.released = true;
            self.engine.release(self.endpoint);
        }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.release();
    }
}

/// Requests an endpoint may get at once above its `throttleRate`: a tenth of a second's worth,
/// at least 2, so that a shard that looks a little late does not lose rate for good.
fn throttle_burst(rate: u32) -> f64 {
    (f64::from(rate) / 10.0).max(2.0)
}

fn humantime(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s % 86_400 == 0 && s > 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 && s > 0 => format!("{}h", s / 3600),
        s => format!("{s}s"),
    }
}

/// The record of an attempt made at `started` and finished at `finished` (service clock):
/// the response body as text, or the outcome's description when there was none.
fn attempt_record(
    key: u64,
    task: &Task,
    ep: &EndpointRecord,
    (started, finished): (u64, u64),
    outcome: &Outcome,
    response: Option<Vec<u8>>,
) -> AttemptRecord {
    let status_code = match outcome {
        Outcome::Status { code, .. } => Some(*code),
        _ => None,
    };
    let response = match response {
        Some(body) => String::from_utf8_lossy(&body).into_owned(),
        None => outcome.to_string(),
    };
    AttemptRecord {
        key,
        id: ids::fresh(Kind::Attempt, key, started),
        msg_seq: task.seq,
        endpoint_key: task.endpoint,
        url: ep.url.clone(),
        status_code,
        response,
        duration_ms: finished.saturating_sub(started),
        trigger: task.trigger,
        status: if outcome.is_success() {
            DeliveryStatus::Success
        } else {
            DeliveryStatus::Fail
        },
        ts_ms: started,
    }
}

/// The delivery's state after an attempt the policy answered with `action`, and the reason
/// to disable the endpoint if the policy says so.
fn next_state(
    action: Action,
    attempts: u32,
    last_status_code: Option<u16>,
    now_ms: u64,
) -> (DeliveryState, Option<String>) {
    let mut next = DeliveryState {
        status: DeliveryStatus::Fail,
        attempts,
        next_at_ms: now_ms,
        last_status_code,
        updated_ms: now_ms,
        trigger: Trigger::Scheduled,
    };
    let mut disable = None;
    match action {
        Action::Done => next.status = DeliveryStatus::Success,
        Action::RetryAt { at_ms } => {
            next.status = DeliveryStatus::Pending;
            next.next_at_ms = at_ms;
        }
        Action::Fail { .. } => {}
        Action::DisableEndpoint { reason } => disable = Some(reason),
    }
    (next, disable)
}
