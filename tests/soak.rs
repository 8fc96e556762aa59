//! Soak and chaos: the real binary under a steady load for a set time while its receivers flap
//! and it is SIGKILLed and restarted at random moments; then everything settles and the test
//! checks that nothing acknowledged was lost.
//!
//! Setup ([`ENDPOINTS`]): three apps and six endpoints, two of them filtered by event type, each
//! with its own real receiver (`support/receiver.rs`) on a fixed loopback port, scripted
//! through phases:
//! - *flaky* receivers: up, slow (under `delivery.timeout`), down (connections refused, open
//!   ones hung up), 500;
//! - the *throttled* one: up, slow, 429 with `Retry-After`, and stalls past the timeout; the
//!   last two only for a message's first arrival, so its retry (at least 60 s later, the
//!   throttle floor) gets through and no delivery there ever fails;
//! - the *gone* one: up, slow and short 500s, then `410 Gone` from 40 % of the run on, which
//!   must disable it.
//!
//! Producers post at a steady rate to the three apps; hookd is killed with SIGKILL every 3 to
//! 15 s (in long runs one life in seven lasts 1 to 3 minutes, for RSS to show a leak) and
//! restarted on the same data. After the chaos phase producers stop, receivers come
//! up, kills stop, and the test waits (bounded) for every acknowledged message to settle.
//! Then it asserts:
//! - every message answered 202 reached each endpoint subscribed to it (app, event type) and
//!   enabled at the time, or the API records it `fail` after exactly the attempts its retry
//!   schedule allows, spaced at least as the schedule says (60 s after a 429 or a timeout);
//!   for the gone endpoint, `fail` with at most that many attempts (it was disabled);
//! - a delivery the API calls `success` was answered 2xx by its receiver (which records what it
//!   answers before answering);
//! - every request was signed with its endpoint's secret and no endpoint got an event it was
//!   not subscribed to;
//! - the 410 endpoint is disabled;
//! - hookd never exited on its own, and its RSS (`VmRSS`, sampled every 250 ms) stayed under a
//!   bound;
//! - the log (`data/log/seg-*.log`) shrank back to at most two segments after retention.
//!
//! Only responses actually received count as acknowledged: a 202 lost to a kill is not one. At
//! least once allows duplicates; they are counted per endpoint by `webhook-id`.
//!
//! Failures are checked while the run goes on, because once a delivery has failed retention
//! may drop its message from the log, and the attempts API then answers 404. A checker thread
//! polls each message that an endpoint has not received, from the least time its schedule
//! needs to fail on, and reads the attempts as soon as it has failed. With these receivers a
//! failure comes within ~10 s of its 202, well inside `storage.retention` (30 s).
//!
//! Environment: `HOOKD_SOAK_SECS` (chaos phase, default 45), `HOOKD_SOAK_SEED` (phases,
//! kills, event types; printed at the start), `HOOKD_SOAK_RATE` (messages per second, default
//! 30), `HOOKD_SOAK_RSS_MAX_MIB` (default 256). The long run by hand:
//! `HOOKD_SOAK_SECS=1800 cargo nextest run --release --profile soak --test soak --no-capture`.

#[path = "support/hookd.rs"]
mod hookd;
#[path = "support/receiver.rs"]
mod receiver;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hookd::{try_request, Hookd, ADMIN};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use receiver::{Receiver, Recorded, Reply};
use serde_json::{json, Value};

/// `delivery.retry_schedule`: five attempts, failing within ~8 s.
const SCHEDULE_MS: [u64; 4] = [500, 1000, 2000, 3000];
/// Jitter on each wait, ±20 % (api.md §3).
const JITTER: f64 = 0.2;
/// The least wait after a 429 or a timeout (`deliver/policy.rs`).
const THROTTLE_FLOOR_MS: u64 = 60_000;
/// `delivery.timeout`; slow answers stay well under it.
const TIMEOUT: Duration = Duration::from_secs(3);
/// `storage.retention`.
const RETENTION: Duration = Duration::from_secs(30);
/// `storage.segment_age_max`: segments roll often enough for retention to show.
const SEGMENT_AGE: Duration = Duration::from_secs(5);

/// Longest wait for everything to settle after the chaos phase: a 429 or a stall near its end
/// is retried up to 75 s later.
const SETTLE_MAX: Duration = Duration::from_secs(120);
/// Kills come every 3 to 15 s; in runs of at least `LONG_LIVES_FROM`, one life in
/// `LONG_LIFE_ONE_IN` lasts 1 to 3 minutes instead, long enough for a leak to show in RSS.
const KILL_EVERY_SECS: (f64, f64) = (3.0, 15.0);
const LONG_LIFE_SECS: (f64, f64) = (60.0, 180.0);
const LONG_LIFE_ONE_IN: u32 = 7;
const LONG_LIVES_FROM: Duration = Duration::from_secs(600);
/// The gone endpoint answers 410 from this fraction of the chaos phase on.
const GONE_AT: f64 = 0.4;
/// A message to the gone endpoint acknowledged this long before its first 410 must have been
/// fanned out to it before it was disabled (fan-out runs after the 202).
const FANOUT_GRACE: Duration = Duration::from_secs(5);
/// How often the checker looks at unsettled messages, and a message's status once due.
const CHECK_EVERY: Duration = Duration::from_millis(500);
const POLL_EVERY: Duration = Duration::from_secs(1);
/// How often the main thread samples RSS and the log's size.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// Client timeout for every call to hookd.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Padding in each payload, so that the log grows visibly.
const PAD_BYTES: usize = 400;

const APPS: [&str; 3] = ["soak-a", "soak-b", "soak-c"];
const EVENT_TYPES: [&str; 3] = ["order.paid", "order.shipped", "user.created"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Flaky,
    Throttled,
    Gone,
}

struct EndpointSpec {
    name: &'static str,
    app: usize,
    types: Option<&'static [&'static str]>,
    role: Role,
}

const fn spec(
    name: &'static str,
    app: usize,
    types: Option<&'static [&'static str]>,
    role: Role,
) -> EndpointSpec {
    EndpointSpec {
        name,
        app,
        types,
        role,
    }
}

const ENDPOINTS: [EndpointSpec; 6] = [
    spec("a-all", 0, None, Role::Flaky),
    spec("a-paid", 0, Some(&["order.paid"]), Role::Flaky),
    spec("b-all", 1, None, Role::Throttled),
    spec(
        "b-shipped",
        1,
        Some(&["order.shipped", "user.created"]),
        Role::Flaky,
    ),
    spec("c-all", 2, None, Role::Flaky),
    spec("c-gone", 2, None, Role::Gone),
];

impl EndpointSpec {
    fn subscribed(&self, app: usize, ty: &str) -> bool {
        self.app == app && self.types.is_none_or(|t| t.contains(&ty))
    }
}

/// What the run is told by the environment.
struct Settings {
    chaos: Duration,
    seed: u64,
    rate: f64,
    rss_max_mib: u64,
}

impl Settings {
    fn from_env() -> Self {
        fn var<T: std::str::FromStr>(name: &str) -> Option<T> {
            let v = std::env::var(name).ok()?;
            Some(
                v.parse()
                    .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
            )
        }
        let seed = var("HOOKD_SOAK_SEED").unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
        Self {
            chaos: Duration::from_secs(var("HOOKD_SOAK_SECS").unwrap_or(45)),
            seed,
            rate: var("HOOKD_SOAK_RATE").unwrap_or(30.0),
            rss_max_mib: var("HOOKD_SOAK_RSS_MAX_MIB").unwrap_or(256),
        }
    }
}

fn config() -> String {
    let schedule: Vec<String> = SCHEDULE_MS.iter().map(|ms| format!("\"{ms}ms\"")).collect();
    format!(
        r#"
[storage]
retention = "{retention}s"
segment_age_max = "{age}s"
cache_bytes = "32MiB"

[delivery]
retry_schedule = [{schedule}]
timeout = "{timeout}s"
connect_timeout = "1s"
allow_private_networks = true
"#,
        retention = RETENTION.as_secs(),
        age = SEGMENT_AGE.as_secs(),
        schedule = schedule.join(", "),
        timeout = TIMEOUT.as_secs(),
    )
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------------
// Receivers

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Up,
    /// 2xx after 100-600 ms.
    Slow,
    /// Listener closed (connections refused); requests on open connections are hung up on.
    Down,
    Error500,
    /// 429 with `Retry-After` to a message's first arrival, 200 after.
    Throttle,
    /// No answer within the timeout to a message's first arrival, 200 after.
    Stall,
    Gone,
}

const PHASES: [Phase; 7] = [
    Phase::Up,
    Phase::Slow,
    Phase::Down,
    Phase::Error500,
    Phase::Throttle,
    Phase::Stall,
    Phase::Gone,
];

/// What one endpoint's receiver saw of one message.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    arrivals: u32,
    /// Answered 2xx.
    ok: u32,
}

/// One endpoint: its receiver's state, shared by every incarnation of the receiver.
struct Ep {
    spec: &'static EndpointSpec,
    id: String,
    key: Vec<u8>,
    addr: SocketAddr,
    phase: AtomicU8,
    seen: Mutex<HashMap<String, Seen>>,
    requests: AtomicU64,
    /// Wrong signatures, wrong apps, events not subscribed to.
    problems: Mutex<Vec<String>>,
    /// When the first 410 was answered.
    first_gone: Mutex<Option<Instant>>,
    rng: Mutex<StdRng>,
}

impl Ep {
    fn phase(&self) -> Phase {
        PHASES[self.phase.load(Ordering::SeqCst) as usize]
    }

    fn delivered(&self, id: &str) -> bool {
        lock(&self.seen).get(id).is_some_and(|s| s.ok > 0)
    }

    fn first_gone(&self) -> Option<Instant> {
        *lock(&self.first_gone)
    }

    /// The receiver's answer to one request, by phase; records what it saw.
    fn answer(&self, r: &Recorded) -> Reply {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let id = r.header("webhook-id").unwrap_or_default().to_owned();
        if let Err(why) = self.check(r) {
            let mut problems = lock(&self.problems);
            if problems.len() < 20 {
                problems.push(format!("{} {id}: {why}", self.spec.name));
            }
        }
        let phase = self.phase();
        let mut seen = lock(&self.seen);
        let s = seen.entry(id).or_default();
        s.arrivals += 1;
        let first = s.arrivals == 1;
        let reply = match phase {
            Phase::Up => Reply::ok(),
            Phase::Slow => {
                let ms = lock(&self.rng).gen_range(100..600);
                Reply::ok().delay(Duration::from_millis(ms))
            }
            Phase::Down => Reply::hang_up(),
            Phase::Error500 => Reply::status(500),
            Phase::Throttle if first => {
                // Below the floor (so 60 s), or inside [floor, 2 x floor] (so 75 s).
                let wait = ["1", "75"][lock(&self.rng).gen_range(0..2)];
                Reply::status(429).header("Retry-After", wait)
            }
            Phase::Stall if first => Reply::status(503).delay(TIMEOUT + Duration::from_secs(2)),
            Phase::Throttle | Phase::Stall => Reply::ok(),
            Phase::Gone => {
                lock(&self.first_gone).get_or_insert_with(Instant::now);
                Reply::status(410)
            }
        };
        if matches!(
            (phase, first),
            (Phase::Up | Phase::Slow, _) | (Phase::Throttle | Phase::Stall, false)
        ) {
            s.ok += 1;
        }
        reply
    }

    /// Signature, app and event type of a delivery.
    fn check(&self, r: &Recorded) -> Result<(), String> {
        let id = r.header("webhook-id").ok_or("no webhook-id")?;
        let ts: u64 = r
            .header("webhook-timestamp")
            .and_then(|t| t.parse().ok())
            .ok_or("no webhook-timestamp")?;
        let sig = r
            .header("webhook-signature")
            .ok_or("no webhook-signature")?;
        if !hookd::verify(&self.key, id, ts, &r.body, sig) {
            return Err(format!("bad signature {sig:?}"));
        }
        let body: Value = serde_json::from_slice(&r.body).map_err(|e| format!("body: {e}"))?;
        let app = APPS.iter().position(|a| body["app"] == *a);
        let ty = body["type"].as_str().unwrap_or_default();
        match app {
            Some(app) if self.spec.subscribed(app, ty) => Ok(()),
            _ => Err(format!("not subscribed to {} {ty}", body["app"])),
        }
    }
}

/// An endpoint's receiver, started and stopped by phase, always on the same port.
struct Flapper {
    ep: Arc<Ep>,
    rx: Option<Receiver>,
    rng: StdRng,
    next_change: Instant,
}

impl Flapper {
    fn set(&mut self, phase: Phase) {
        self.ep.phase.store(phase as u8, Ordering::SeqCst);
        if phase == Phase::Down {
            // Open connections are hung up on (the phase is read per request); new ones are
            // refused once the listener is gone.
            self.rx = None;
        } else if self.rx.is_none() {
            self.rx = Some(start_receiver(&self.ep));
        }
    }

    /// Moves to the next phase of its script; `elapsed` is time into the chaos phase.
    fn advance(&mut self, now: Instant, elapsed: Duration, gone_at: Duration) {
        let (phase, lasts) = next_phase(self.ep.spec.role, &mut self.rng, elapsed, gone_at);
        self.set(phase);
        self.next_change = now + lasts;
    }
}

fn next_phase(
    role: Role,
    rng: &mut StdRng,
    elapsed: Duration,
    gone_at: Duration,
) -> (Phase, Duration) {
    let roll = rng.gen_range(0..100);
    let mut secs = |lo: f64, hi: f64| Duration::from_secs_f64(rng.gen_range(lo..hi));
    match role {
        Role::Flaky => match roll {
            0..=39 => (Phase::Up, secs(2.0, 10.0)),
            40..=54 => (Phase::Slow, secs(2.0, 8.0)),
            55..=77 => (Phase::Down, secs(1.0, 12.0)),
            _ => (Phase::Error500, secs(1.0, 12.0)),
        },
        Role::Throttled => match roll {
            0..=44 => (Phase::Up, secs(2.0, 8.0)),
            45..=64 => (Phase::Slow, secs(2.0, 8.0)),
            65..=84 => (Phase::Throttle, secs(2.0, 6.0)),
            _ => (Phase::Stall, secs(1.0, 4.0)),
        },
        Role::Gone if elapsed >= gone_at => (Phase::Gone, Duration::from_secs(86_400)),
        Role::Gone => {
            let (phase, lasts) = match roll {
                0..=59 => (Phase::Up, secs(2.0, 8.0)),
                60..=84 => (Phase::Slow, secs(2.0, 6.0)),
                // Shorter than the schedule: nothing fails here before the 410s.
                _ => (Phase::Error500, secs(0.5, 3.0)),
            };
            (phase, lasts.min(gone_at - elapsed))
        }
    }
}

fn start_receiver(ep: &Arc<Ep>) -> Receiver {
    // The port was free a moment ago; a TIME_WAIT left by the last incarnation is no obstacle
    // (std sets SO_REUSEADDR), but retry briefly in case the kernel is slow to let go.
    let mut last = None;
    for _ in 0..50 {
        let ep2 = ep.clone();
        match Receiver::builder()
            .bind(ep.addr)
            .unrecorded()
            .handler(move |r| ep2.answer(r))
            .try_start()
        {
            Ok(rx) => return rx,
            Err(e) => last = Some(e),
        }
        thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "receiver {} cannot listen on {} again: {last:?}",
        ep.spec.name, ep.addr
    )
}

/// A free loopback port below the kernel's ephemeral range, so that no outgoing connection
/// takes it while its receiver is down.
fn pick_port(rng: &mut StdRng, taken: &HashSet<u16>) -> SocketAddr {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .unwrap_or_else(|_| "32768 60999".into());
    let low: u16 = range
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(32768);
    assert!(
        low > 12_000,
        "ephemeral ports start at {low}: no room below"
    );
    loop {
        let port = rng.gen_range(10_000..low);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        if !taken.contains(&port) && std::net::TcpListener::bind(addr).is_ok() {
            return addr;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Producers

/// A message hookd answered 202.
#[derive(Debug)]
struct Acked {
    id: String,
    app: usize,
    ty: &'static str,
    at: Instant,
}

/// What every thread shares.
struct Shared {
    /// hookd's address: it changes on every restart.
    addr: RwLock<SocketAddr>,
    eps: Vec<Arc<Ep>>,
    stop_producers: AtomicBool,
    stop_checker: AtomicBool,
    posted: AtomicU64,
    acked: AtomicU64,
    /// Requests with no response (refused, reset, timed out): hookd was down or killed.
    no_response: AtomicU64,
    /// Responses other than 202, by status.
    other: Mutex<BTreeMap<u16, u64>>,
    /// Answers of the API to the checker other than 200 and 404 (tried again later).
    api_other: AtomicU64,
    /// Set by the checker: pairs not settled yet, and whether every producer has finished.
    open_pairs: AtomicUsize,
    producers_done: AtomicBool,
}

impl Shared {
    fn addr(&self) -> SocketAddr {
        *self.addr.read().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, path: &str) -> std::io::Result<hookd::Reply> {
        try_request(self.addr(), "GET", path, Some(ADMIN), None, CALL_TIMEOUT)
    }
}

fn produce(shared: &Shared, app: usize, rate: f64, seed: u64, acks: mpsc::Sender<Arc<Acked>>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let every = Duration::from_secs_f64(1.0 / rate);
    let pad = "x".repeat(PAD_BYTES);
    let mut next = Instant::now();
    let mut n = 0u64;
    while !shared.stop_producers.load(Ordering::SeqCst) {
        let now = Instant::now();
        if next > now {
            thread::sleep(next - now);
        } else if now - next > Duration::from_secs(1) {
            next = now; // a steady rate, not a burst to catch up after hookd was down
        }
        next += every;
        n += 1;
        let ty = EVENT_TYPES[rng.gen_range(0..EVENT_TYPES.len())];
        let body = json!({
            "eventType": ty,
            "payload": {"app": APPS[app], "type": ty, "n": n, "pad": pad},
        });
        shared.posted.fetch_add(1, Ordering::Relaxed);
        let path = format!("/api/v1/app/{}/msg", APPS[app]);
        let reply = try_request(
            shared.addr(),
            "POST",
            &path,
            Some(ADMIN),
            Some(&body.to_string()),
            CALL_TIMEOUT,
        );
        match reply {
            Ok(r) if r.status == 202 => {
                let id = r.json()["id"].as_str().expect("a message id").to_owned();
                shared.acked.fetch_add(1, Ordering::Relaxed);
                let acked = Acked {
                    id,
                    app,
                    ty,
                    at: Instant::now(),
                };
                let _ = acks.send(Arc::new(acked));
            }
            Ok(r) => *lock(&shared.other).entry(r.status).or_default() += 1,
            Err(_) => {
                shared.no_response.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The checker

/// How one (message, endpoint) pair ended.
#[derive(Debug)]
enum Settled {
    /// The receiver answered it 2xx at least once.
    Delivered,
    /// The API says `fail`; the attempts checked against the schedule (`Err`: how not).
    Failed(Result<(), String>),
    /// The gone endpoint, disabled, never got a delivery record for it (fan-out after the
    /// disable); allowed only for messages acknowledged shortly before the first 410.
    NotFannedOut,
    /// The gone endpoint was disabled before the message was acknowledged.
    NotSubscribed,
    /// The message left the log (retention) while this pair was neither delivered nor seen
    /// failed.
    Retired,
    /// The API says `success` but the receiver never answered it 2xx (it records before it
    /// answers).
    PhantomSuccess,
}

struct OpenMsg {
    msg: Arc<Acked>,
    /// Endpoints (indexes) still to settle.
    pending: Vec<usize>,
    next_poll: Instant,
    /// The last answer of `/msg/{id}/endpoint`, for the report.
    last_status: Option<Value>,
}

#[derive(Default)]
struct CheckerReport {
    settled: Vec<(Arc<Acked>, usize, Settled)>,
    open: Vec<OpenMsg>,
    acked: Vec<Arc<Acked>>,
    polls: u64,
}

/// The least time from a 202 to `fail`: every wait at its shortest.
fn least_time_to_fail() -> Duration {
    let ms: f64 = SCHEDULE_MS.iter().map(|&m| m as f64 * (1.0 - JITTER)).sum();
    Duration::from_millis(ms as u64)
}

fn check(shared: &Shared, acks: mpsc::Receiver<Arc<Acked>>) -> CheckerReport {
    let mut report = CheckerReport::default();
    let mut open: Vec<OpenMsg> = Vec::new();
    let first_poll = least_time_to_fail();
    loop {
        loop {
            match acks.try_recv() {
                Ok(msg) => {
                    let pending = (0..shared.eps.len())
                        .filter(|&e| shared.eps[e].spec.subscribed(msg.app, msg.ty))
                        .collect();
                    report.acked.push(msg.clone());
                    open.push(OpenMsg {
                        next_poll: msg.at + first_poll,
                        msg,
                        pending,
                        last_status: None,
                    });
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    shared.producers_done.store(true, Ordering::SeqCst);
                    break;
                }
            }
        }
        let now = Instant::now();
        for m in &mut open {
            settle_delivered(shared, m, &mut report.settled);
            if !m.pending.is_empty() && now >= m.next_poll {
                report.polls += 1;
                m.next_poll = poll(shared, m, &mut report.settled);
            }
        }
        open.retain(|m| !m.pending.is_empty());
        let pairs = open.iter().map(|m| m.pending.len()).sum();
        shared.open_pairs.store(pairs, Ordering::SeqCst);
        if shared.stop_checker.load(Ordering::SeqCst) {
            report.open = open;
            return report;
        }
        thread::sleep(CHECK_EVERY);
    }
}

/// Settles the pairs whose receiver got the message, and the gone endpoint's for messages
/// acknowledged after it started answering 410.
fn settle_delivered(shared: &Shared, m: &mut OpenMsg, out: &mut Vec<(Arc<Acked>, usize, Settled)>) {
    m.pending.retain(|&e| {
        let ep = &shared.eps[e];
        let settled = if ep.delivered(&m.msg.id) {
            Settled::Delivered
        } else if ep.spec.role == Role::Gone && ep.first_gone().is_some_and(|t| t < m.msg.at) {
            Settled::NotSubscribed
        } else {
            return true;
        };
        out.push((m.msg.clone(), e, settled));
        false
    });
}

/// Asks the API about a message with unsettled endpoints; settles the failed ones. Returns
/// when to ask next: once a second, or just after the next attempt if all are waiting for one.
fn poll(shared: &Shared, m: &mut OpenMsg, out: &mut Vec<(Arc<Acked>, usize, Settled)>) -> Instant {
    let soon = Instant::now() + POLL_EVERY;
    let app = APPS[m.msg.app];
    let Ok(r) = shared.get(&format!("/api/v1/app/{app}/msg/{}/endpoint", m.msg.id)) else {
        return soon; // hookd is down: next time
    };
    if r.status == 404 {
        for e in m.pending.drain(..) {
            out.push((m.msg.clone(), e, Settled::Retired));
        }
        return soon;
    }
    if r.status != 200 {
        shared.api_other.fetch_add(1, Ordering::Relaxed);
        return soon;
    }
    let status = r.json();
    let mut still = Vec::new();
    // The earliest next attempt of the endpoints still open, if every one is waiting for one.
    let mut next_attempt_ms = Some(u64::MAX);
    for &e in &m.pending {
        let ep = &shared.eps[e];
        let entry = status["data"]
            .as_array()
            .and_then(|d| d.iter().find(|x| x["id"] == ep.id.as_str()));
        let settled = match entry {
            Some(x) if x["statusText"] == "success" => Some(match ep.delivered(&m.msg.id) {
                true => Settled::Delivered,
                false => Settled::PhantomSuccess,
            }),
            Some(x) if x["statusText"] == "fail" => {
                let path = format!(
                    "/api/v1/app/{app}/attempt/msg/{}?endpoint_id={}&limit=50",
                    m.msg.id, ep.id
                );
                match shared.get(&path) {
                    Ok(a) if a.status == 200 => {
                        let attempts = a.json()["data"].as_array().cloned().unwrap_or_default();
                        let gone = ep.spec.role == Role::Gone;
                        Some(Settled::Failed(check_failed_attempts(&attempts, gone)))
                    }
                    Ok(a) if a.status == 404 => Some(Settled::Failed(Err(
                        "seen failed, then retired before its attempts were read".into(),
                    ))),
                    Ok(_) => {
                        shared.api_other.fetch_add(1, Ordering::Relaxed);
                        None
                    }
                    Err(_) => None,
                }
            }
            None if ep.spec.role == Role::Gone
                && ep.first_gone().is_some()
                && gone_disabled(shared, e) =>
            {
                Some(Settled::NotFannedOut)
            }
            _ => None,
        };
        match settled {
            Some(s) => out.push((m.msg.clone(), e, s)),
            None => {
                still.push(e);
                let next = entry
                    .filter(|x| x["statusText"] == "pending")
                    .and_then(|x| ::hookd::time::parse_rfc3339(x["nextAttempt"].as_str()?));
                next_attempt_ms = next_attempt_ms.zip(next).map(|(a, b)| a.min(b));
            }
        }
    }
    m.pending = still;
    m.last_status = Some(status);
    match next_attempt_ms {
        Some(at) if at != u64::MAX => {
            let wait = Duration::from_millis(at.saturating_sub(unix_ms()));
            soon.max(Instant::now() + wait + Duration::from_millis(300))
        }
        _ => soon,
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn gone_disabled(shared: &Shared, e: usize) -> bool {
    let ep = &shared.eps[e];
    let path = format!("/api/v1/app/{}/endpoint/{}", APPS[ep.spec.app], ep.id);
    shared
        .get(&path)
        .is_ok_and(|r| r.status == 200 && r.json()["disabled"] == true)
}

/// Unix milliseconds of an attempt's `timestamp`.
fn attempt_ms(a: &Value) -> u64 {
    let ts = a["timestamp"].as_str().unwrap_or_default();
    ::hookd::time::parse_rfc3339(ts).unwrap_or_else(|| panic!("attempt timestamp {ts:?}"))
}

/// Whether the attempts of a failed delivery are what its schedule says: one more than the
/// schedule has entries, none a success or a 410, each at least the shortest jittered wait
/// after the one before (the throttle floor after a 429 or a timeout). Crashes only ever make
/// waits longer. A delivery to the gone endpoint failed when it was disabled: any number up
/// to that, none a success.
fn check_failed_attempts(attempts: &[Value], gone: bool) -> Result<(), String> {
    let mut sorted: Vec<&Value> = attempts.iter().collect();
    sorted.sort_by_key(|a| attempt_ms(a));
    let brief = || {
        sorted
            .iter()
            .map(|a| {
                format!(
                    "{} {} {:?}",
                    a["timestamp"].as_str().unwrap_or_default(),
                    a["responseStatusCode"],
                    a["response"].as_str().unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let allowed = SCHEDULE_MS.len() + 1;
    if sorted.iter().any(|a| a["statusText"] == "success") {
        return Err(format!("`fail` with a successful attempt: {}", brief()));
    }
    if gone {
        return match sorted.len() <= allowed {
            true => Ok(()),
            false => Err(format!(
                "{} attempts, at most {allowed}: {}",
                sorted.len(),
                brief()
            )),
        };
    }
    if sorted.len() != allowed {
        return Err(format!(
            "{} attempts recorded, the schedule makes {allowed}: {}",
            sorted.len(),
            brief()
        ));
    }
    for (i, pair) in sorted.windows(2).enumerate() {
        let (a, b) = (pair[0], pair[1]);
        let code = a["responseStatusCode"].as_u64().unwrap_or(0);
        if code == 410 {
            return Err(format!("a 410 did not disable the endpoint: {}", brief()));
        }
        let entry = SCHEDULE_MS[i];
        let mut least = entry - (entry as f64 * JITTER) as u64;
        let timed_out = code == 0
            && a["response"]
                .as_str()
                .is_some_and(|r| r.contains("timeout"));
        if code == 429 || timed_out {
            least = least.max(THROTTLE_FLOOR_MS);
        }
        let gap = attempt_ms(b).saturating_sub(attempt_ms(a));
        if gap < least {
            return Err(format!(
                "attempt {} came {gap} ms after attempt {}, the schedule says at least {least} ms: {}",
                i + 2,
                i + 1,
                brief()
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Measurements

/// hookd's resident set, from `/proc`.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Log segments: bytes and count, and bytes set aside in `quarantine/`.
#[derive(Debug, Default, Clone, Copy)]
struct LogUse {
    bytes: u64,
    segments: usize,
    quarantine_bytes: u64,
}

fn log_use(data: &Path) -> LogUse {
    let mut u = LogUse::default();
    let Ok(dir) = std::fs::read_dir(data.join("log")) else {
        return u;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let len = entry.metadata().map_or(0, |m| m.len());
        if name.starts_with("seg-") && name.ends_with(".log") {
            u.bytes += len;
            u.segments += 1;
        }
    }
    if let Ok(q) = std::fs::read_dir(data.join("log/quarantine")) {
        u.quarantine_bytes = q
            .flatten()
            .map(|e| e.metadata().map_or(0, |m| m.len()))
            .sum();
    }
    u
}

fn dir_bytes(path: &Path) -> u64 {
    let Ok(dir) = std::fs::read_dir(path) else {
        return 0;
    };
    dir.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Samples taken by the main loop.
#[derive(Default)]
struct Samples {
    rss_max_kib: u64,
    /// The longest time hookd ran between two kills.
    longest_life: Duration,
    log_peak: LogUse,
    kills: u32,
}

impl Samples {
    fn take(&mut self, h: &mut Hookd, data: &Path) {
        if let Some(status) = h.try_wait() {
            panic!("hookd exited on its own: {status}");
        }
        if let Some(kib) = rss_kib(h.pid()) {
            self.rss_max_kib = self.rss_max_kib.max(kib);
        }
        let u = log_use(data);
        if u.bytes > self.log_peak.bytes {
            self.log_peak = u;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The run

fn setup(h: &Hookd) {
    for ty in EVENT_TYPES {
        let body = json!({"name": ty, "description": "soak"}).to_string();
        let r = h.admin("POST", "/api/v1/event-type", Some(&body));
        assert_eq!(r.status, 201, "{}", r.body);
    }
    for app in APPS {
        let body = json!({"name": app, "uid": app}).to_string();
        let r = h.admin("POST", "/api/v1/app", Some(&body));
        assert_eq!(r.status, 201, "{}", r.body);
    }
}

fn create_endpoint(h: &Hookd, spec: &'static EndpointSpec, addr: SocketAddr, seed: u64) -> Ep {
    let app = APPS[spec.app];
    let mut body = json!({"url": format!("http://{addr}/{}", spec.name), "uid": spec.name});
    if let Some(types) = spec.types {
        body["eventTypes"] = json!(types);
    }
    let path = format!("/api/v1/app/{app}/endpoint");
    let r = h.admin("POST", &path, Some(&body.to_string()));
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let secret = h.admin("GET", &format!("{path}/{id}/secret"), None);
    let key = hookd::parse_secret(secret.json()["key"].as_str().unwrap());
    Ep {
        spec,
        id,
        key,
        addr,
        phase: AtomicU8::new(Phase::Up as u8),
        seen: Mutex::new(HashMap::new()),
        requests: AtomicU64::new(0),
        problems: Mutex::new(Vec::new()),
        first_gone: Mutex::new(None),
        rng: Mutex::new(StdRng::seed_from_u64(seed)),
    }
}

/// hookd, its receivers, and what the main thread measures of them.
struct Run {
    s: Settings,
    h: Hookd,
    data: PathBuf,
    shared: Arc<Shared>,
    flappers: Vec<Flapper>,
    samples: Samples,
    seeds: StdRng,
    start: Instant,
}

impl Run {
    /// hookd with its event types, apps and endpoints, every receiver up.
    fn start(s: Settings) -> Self {
        println!(
            "soak: chaos {} s at {} messages/s, seed {} (HOOKD_SOAK_SEED={} to rerun)",
            s.chaos.as_secs(),
            s.rate,
            s.seed,
            s.seed
        );
        let mut seeds = StdRng::seed_from_u64(s.seed);
        let h = Hookd::start(&config());
        let data = h.dir.path().join("data");
        setup(&h);
        let mut ports = HashSet::new();
        let flappers: Vec<Flapper> = ENDPOINTS
            .iter()
            .map(|spec| {
                let addr = pick_port(&mut seeds, &ports);
                ports.insert(addr.port());
                let ep = Arc::new(create_endpoint(&h, spec, addr, seeds.gen()));
                Flapper {
                    rx: Some(start_receiver(&ep)),
                    ep,
                    rng: StdRng::seed_from_u64(seeds.gen()),
                    next_change: Instant::now(),
                }
            })
            .collect();
        let shared = Arc::new(Shared {
            addr: RwLock::new(h.addr),
            eps: flappers.iter().map(|f| f.ep.clone()).collect(),
            stop_producers: AtomicBool::new(false),
            stop_checker: AtomicBool::new(false),
            posted: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            no_response: AtomicU64::new(0),
            other: Mutex::new(BTreeMap::new()),
            api_other: AtomicU64::new(0),
            open_pairs: AtomicUsize::new(0),
            producers_done: AtomicBool::new(false),
        });
        Self {
            s,
            h,
            data,
            shared,
            flappers,
            samples: Samples::default(),
            seeds,
            start: Instant::now(),
        }
    }

    /// The chaos phase: producers post, receivers flap, hookd is killed and restarted. Ends
    /// with the producers stopped.
    fn chaos(&mut self, acks: mpsc::Sender<Arc<Acked>>) {
        let producers: Vec<_> = (0..APPS.len())
            .map(|app| {
                let (shared, acks, seed) = (self.shared.clone(), acks.clone(), self.seeds.gen());
                let rate = self.s.rate / APPS.len() as f64;
                thread::spawn(move || produce(&shared, app, rate, seed, acks))
            })
            .collect();
        drop(acks);
        let mut kill_rng = StdRng::seed_from_u64(self.seeds.gen());
        let long_lives = self.s.chaos >= LONG_LIVES_FROM;
        let kill_in = |rng: &mut StdRng| {
            let (lo, hi) = match long_lives && rng.gen_ratio(1, LONG_LIFE_ONE_IN) {
                true => LONG_LIFE_SECS,
                false => KILL_EVERY_SECS,
            };
            Duration::from_secs_f64(rng.gen_range(lo..hi))
        };
        self.start = Instant::now();
        let end = self.start + self.s.chaos;
        let gone_at = self.s.chaos.mul_f64(GONE_AT);
        let mut next_kill = self.start + kill_in(&mut kill_rng);
        let mut next_sample = self.start;
        let mut born = self.start;
        while Instant::now() < end {
            let now = Instant::now();
            for f in &mut self.flappers {
                if now >= f.next_change {
                    f.advance(now, now - self.start, gone_at);
                }
            }
            if now >= next_kill {
                self.samples.longest_life = self.samples.longest_life.max(now - born);
                self.h.crash_and_restart();
                born = Instant::now();
                *self.shared.addr.write().unwrap() = self.h.addr;
                self.samples.kills += 1;
                next_kill = Instant::now() + kill_in(&mut kill_rng);
            }
            if now >= next_sample {
                self.sample();
                next_sample = now + SAMPLE_EVERY;
            }
            let wake = self
                .flappers
                .iter()
                .map(|f| f.next_change)
                .chain([next_kill, next_sample, end])
                .min()
                .unwrap();
            thread::sleep(wake.saturating_duration_since(Instant::now()));
        }
        self.samples.longest_life = self.samples.longest_life.max(born.elapsed());
        self.shared.stop_producers.store(true, Ordering::SeqCst);
        for p in producers {
            p.join().expect("producer");
        }
    }

    /// No more messages or kills, receivers up (the gone one stays gone); waits, bounded, for
    /// every acknowledged message to settle. Returns how long that took.
    fn settle(&mut self) -> Duration {
        let from = Instant::now();
        for f in &mut self.flappers {
            if f.ep.spec.role != Role::Gone {
                f.set(Phase::Up);
            }
        }
        loop {
            self.sample();
            let done = self.shared.producers_done.load(Ordering::SeqCst)
                && self.shared.open_pairs.load(Ordering::SeqCst) == 0;
            if done || from.elapsed() >= SETTLE_MAX {
                return from.elapsed();
            }
            thread::sleep(SAMPLE_EVERY);
        }
    }

    /// Waits, bounded, for retention to leave at most two segments: every sealed one is past
    /// retention and needed by nothing once the newest message is older than retention and
    /// nothing is pending; retention runs every half `storage.retention`.
    fn wait_for_retention(&mut self, produced: Instant) -> LogUse {
        let deadline = (produced + RETENTION + SEGMENT_AGE).max(Instant::now())
            + RETENTION / 2
            + Duration::from_secs(10);
        loop {
            self.sample();
            let u = log_use(&self.data);
            if u.segments <= 2 || Instant::now() >= deadline {
                return u;
            }
            thread::sleep(SAMPLE_EVERY);
        }
    }

    fn sample(&mut self) {
        self.samples.take(&mut self.h, &self.data);
    }

    fn gone_is_disabled(&self) -> bool {
        let eps = &self.shared.eps;
        let gone = eps.iter().position(|e| e.spec.role == Role::Gone).unwrap();
        gone_disabled(&self.shared, gone)
    }
}

/// What the run came to.
struct Tally {
    violations: Vec<String>,
    /// Per endpoint: settled pairs by how, requests, duplicates.
    per_ep: Vec<BTreeMap<&'static str, u64>>,
    duplicates: u64,
    /// Messages delivered whose 202 the producer never got (lost to a kill).
    unacked_delivered: usize,
}

impl Tally {
    fn new(run: &Run, report: &CheckerReport, settled_in: Duration) -> Self {
        let eps = &run.shared.eps;
        let mut t = Tally {
            violations: Vec::new(),
            per_ep: vec![BTreeMap::new(); eps.len()],
            duplicates: 0,
            unacked_delivered: 0,
        };
        for (msg, e, how) in &report.settled {
            let ep = &eps[*e];
            let to = format!(
                "{} ({} {}) to {}",
                msg.id, APPS[msg.app], msg.ty, ep.spec.name
            );
            let name = match how {
                Settled::Delivered => "delivered",
                Settled::Failed(Ok(())) => "failed",
                Settled::Failed(Err(why)) => {
                    t.violations
                        .push(format!("{to}: `fail` not as scheduled: {why}"));
                    "failed"
                }
                Settled::NotSubscribed => "after disable",
                Settled::NotFannedOut => {
                    let before = ep.first_gone().unwrap().saturating_duration_since(msg.at);
                    if before > FANOUT_GRACE {
                        t.violations.push(format!(
                            "{to}: acknowledged {before:?} before the first 410 but never fanned out to it"
                        ));
                    }
                    "not fanned out"
                }
                Settled::PhantomSuccess => {
                    t.violations.push(format!(
                        "{to}: `success` in the API, but the receiver never answered it 2xx"
                    ));
                    "phantom success"
                }
                Settled::Retired if ep.delivered(&msg.id) => "delivered",
                Settled::Retired => {
                    t.violations.push(format!(
                        "{to}: left the log, neither delivered nor seen failed (acknowledged {:?} into the run)",
                        msg.at - run.start
                    ));
                    "lost"
                }
            };
            *t.per_ep[*e].entry(name).or_default() += 1;
        }
        for m in &report.open {
            for &e in &m.pending {
                let ep = &eps[e];
                *t.per_ep[e].entry("unsettled").or_default() += 1;
                let seen = lock(&ep.seen).get(&m.msg.id).copied().unwrap_or_default();
                t.violations.push(format!(
                    "{} ({} {}) to {}: neither delivered nor failed {settled_in:?} after the chaos phase (acknowledged {:?} into the run); its receiver saw it {} times; the API said: {}",
                    m.msg.id,
                    APPS[m.msg.app],
                    m.msg.ty,
                    ep.spec.name,
                    m.msg.at - run.start,
                    seen.arrivals,
                    m.last_status.as_ref().map_or("nothing yet".into(), |v| v.to_string()),
                ));
            }
        }
        let acked: HashSet<&str> = report.acked.iter().map(|m| m.id.as_str()).collect();
        let mut unacked = HashSet::new();
        for (e, ep) in eps.iter().enumerate() {
            let seen = lock(&ep.seen);
            let dups: u64 = seen
                .values()
                .map(|s| u64::from(s.ok.saturating_sub(1)))
                .sum();
            t.duplicates += dups;
            t.per_ep[e].insert("duplicates", dups);
            t.per_ep[e].insert("requests", ep.requests.load(Ordering::Relaxed));
            unacked.extend(
                seen.iter()
                    .filter(|(id, s)| s.ok > 0 && !acked.contains(id.as_str()))
                    .map(|(id, _)| id.clone()),
            );
            t.violations.extend(lock(&ep.problems).iter().cloned());
        }
        t.unacked_delivered = unacked.len();
        t
    }

    fn total(&self, what: &str) -> u64 {
        self.per_ep.iter().filter_map(|m| m.get(what)).sum()
    }

    /// The summary tables, Markdown.
    fn print(&self, run: &Run, report: &CheckerReport, settled_in: Duration, log_end: LogUse) {
        let sh = &run.shared;
        let mib = |b: u64| format!("{:.2} MiB", b as f64 / 1048576.0);
        let rows: Vec<(&str, String)> = vec![
            ("seed", run.s.seed.to_string()),
            (
                "chaos phase",
                format!("{} s at {} messages/s", run.s.chaos.as_secs(), run.s.rate),
            ),
            ("settled in", format!("{:.1} s", settled_in.as_secs_f64())),
            ("posted", sh.posted.load(Ordering::Relaxed).to_string()),
            (
                "acked (202 received)",
                sh.acked.load(Ordering::Relaxed).to_string(),
            ),
            (
                "no response (hookd down or killed)",
                sh.no_response.load(Ordering::Relaxed).to_string(),
            ),
            ("other answers", format!("{:?}", lock(&sh.other))),
            (
                "deliveries due (acked message x subscribed endpoint)",
                report.settled.len().to_string(),
            ),
            ("delivered", self.total("delivered").to_string()),
            ("duplicates", self.duplicates.to_string()),
            ("failed, as scheduled", self.total("failed").to_string()),
            (
                "gone endpoint: acked after its 410 / not fanned out before it",
                format!(
                    "{} / {}",
                    self.total("after disable"),
                    self.total("not fanned out")
                ),
            ),
            (
                "unsettled, lost or phantom success",
                ["unsettled", "lost", "phantom success"]
                    .map(|k| self.total(k))
                    .iter()
                    .sum::<u64>()
                    .to_string(),
            ),
            (
                "delivered, 202 never received",
                self.unacked_delivered.to_string(),
            ),
            ("requests to receivers", self.total("requests").to_string()),
            (
                "kills (longest life between two)",
                format!(
                    "{} ({:.0} s)",
                    run.samples.kills,
                    run.samples.longest_life.as_secs_f64()
                ),
            ),
            ("max RSS", mib(run.samples.rss_max_kib * 1024)),
            (
                "RSS at the end",
                mib(rss_kib(run.h.pid()).unwrap_or(0) * 1024),
            ),
            (
                "log: peak / after retention",
                format!(
                    "{} in {} segments / {} in {}",
                    mib(run.samples.log_peak.bytes),
                    run.samples.log_peak.segments,
                    mib(log_end.bytes),
                    log_end.segments
                ),
            ),
            (
                "log bytes quarantined",
                log_end.quarantine_bytes.to_string(),
            ),
            (
                "index (sled) at the end",
                mib(dir_bytes(&run.data.join("index"))),
            ),
            (
                "checker: polls / other answers",
                format!(
                    "{} / {}",
                    report.polls,
                    sh.api_other.load(Ordering::Relaxed)
                ),
            ),
        ];
        let mut out = String::from("\n| measure | value |\n|---|---|\n");
        for (k, v) in rows {
            let _ = writeln!(out, "| {k} | {v} |");
        }
        out.push_str(
            "\n| endpoint | role | requests | delivered | duplicates | failed | other |\n",
        );
        out.push_str("|---|---|---|---|---|---|---|\n");
        for (e, ep) in sh.eps.iter().enumerate() {
            let m = &self.per_ep[e];
            let get = |k: &str| m.get(k).copied().unwrap_or(0);
            let main = ["requests", "delivered", "duplicates", "failed"];
            let other: Vec<String> = m
                .iter()
                .filter(|(k, _)| !main.contains(k))
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            let _ = writeln!(
                out,
                "| {} | {:?} | {} | {} | {} | {} | {} |",
                ep.spec.name,
                ep.spec.role,
                get("requests"),
                get("delivered"),
                get("duplicates"),
                get("failed"),
                other.join(", ")
            );
        }
        println!("{out}");
    }
}

#[test]
fn soak_with_flapping_receivers_and_kills() {
    let mut run = Run::start(Settings::from_env());
    let (acks, ack_rx) = mpsc::channel();
    let checker = {
        let shared = run.shared.clone();
        thread::spawn(move || check(&shared, ack_rx))
    };
    run.chaos(acks);
    let produced = Instant::now();
    let settled_in = run.settle();
    run.shared.stop_checker.store(true, Ordering::SeqCst);
    let report = checker.join().expect("checker");
    let log_end = run.wait_for_retention(produced);
    let gone_disabled = run.gone_is_disabled();

    let tally = Tally::new(&run, &report, settled_in);
    tally.print(&run, &report, settled_in, log_end);
    let seed = run.s.seed;
    if !tally.violations.is_empty() {
        run.h.dir.disable_cleanup(true);
        println!(
            "soak: hookd's data directory is kept: {}",
            run.data.display()
        );
    }
    assert!(
        tally.violations.is_empty(),
        "seed {seed}: {} violations:\n{}",
        tally.violations.len(),
        tally.violations.join("\n")
    );
    assert!(
        tally.total("delivered") > 0,
        "seed {seed}: nothing was delivered"
    );
    assert!(
        gone_disabled,
        "seed {seed}: the endpoint answering 410 is not disabled"
    );
    let rss_max_mib = run.samples.rss_max_kib / 1024;
    assert!(
        rss_max_mib <= run.s.rss_max_mib,
        "seed {seed}: RSS reached {rss_max_mib} MiB, over the {} MiB bound",
        run.s.rss_max_mib
    );
    assert!(
        log_end.segments <= 2 && log_end.bytes < run.samples.log_peak.bytes,
        "seed {seed}: retention did not shrink the log: peak {:?}, at the end {log_end:?}",
        run.samples.log_peak
    );
}

/// The schedule check itself, on hand-made attempt lists.
#[test]
fn failed_attempts_are_checked_against_the_schedule() {
    let t0 = 1_700_000_000_000u64;
    let attempt = |at: u64, code: u64, response: &str| {
        json!({
            "timestamp": ::hookd::time::format_rfc3339(t0 + at),
            "responseStatusCode": code,
            "response": response,
            "statusText": "fail",
        })
    };
    let on_time = [0, 500, 1500, 3500, 6500];
    let list = |gaps: &[u64], codes: &[u64]| -> Vec<Value> {
        gaps.iter()
            .zip(codes)
            .map(|(&at, &code)| attempt(at, code, if code == 0 { "timeout" } else { "" }))
            .collect()
    };
    let cases: [(&str, Vec<Value>, bool, bool); 8] = [
        ("on schedule", list(&on_time, &[500; 5]), false, true),
        (
            "waits at their shortest",
            list(&[0, 400, 1200, 2800, 5200], &[500; 5]),
            false,
            true,
        ),
        (
            "one wait too short",
            list(&[0, 399, 1200, 2800, 5200], &[500; 5]),
            false,
            false,
        ),
        (
            "one attempt missing",
            list(&on_time[..4], &[500; 4]),
            false,
            false,
        ),
        (
            "one attempt too many",
            list(&[0, 500, 1500, 3500, 6500, 9500], &[500; 6]),
            false,
            false,
        ),
        (
            "a timeout not floored",
            list(&on_time, &[500, 0, 500, 500, 500]),
            false,
            false,
        ),
        (
            "a 429 floored",
            list(
                &[0, 60_000, 61_000, 63_000, 66_000],
                &[429, 500, 500, 500, 500],
            ),
            false,
            true,
        ),
        (
            "gone: disabled after two",
            list(&[0, 500], &[500, 410]),
            true,
            true,
        ),
    ];
    for (name, attempts, gone, ok) in cases {
        let got = check_failed_attempts(&attempts, gone);
        assert_eq!(got.is_ok(), ok, "{name}: {got:?}");
    }
}
