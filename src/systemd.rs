//! systemd integration: the `sd_notify` protocol in a few lines of our own, and a watchdog fed
//! by the liveness of every shard, the dispatcher, the recorder and the storage flushers.
//!
//! **Notifications** ([`Notifier`]). One datagram per notification, sent to the Unix socket
//! named by `$NOTIFY_SOCKET`: an absolute path, or `@name` for a Linux abstract socket (the `@`
//! stands for the leading NUL byte). The datagram is `KEY=VALUE` lines joined by `\n`
//! ([`Message`]). Without `$NOTIFY_SOCKET` every call does nothing, so hookd runs the same
//! outside systemd. hookd sends `READY=1` (with `STATUS=` and `MAINPID=`) once every shard runs
//! its accept loop and recovery is done, `STOPPING=1` when a drain begins, and `WATCHDOG=1`
//! from the watchdog thread.
//!
//! **Watchdog** ([`Liveness`], [`Staleness`], [`Watchdog`]). systemd's `WatchdogSec=` reaches
//! hookd as `$WATCHDOG_USEC` (for this process unless `$WATCHDOG_PID` names another), and
//! systemd kills a service that sends no `WATCHDOG=1` for that long. A ping from a thread that
//! merely exists proves nothing, so the ping is earned:
//! - every shard's runtime runs a small task that bumps the shard's heartbeat counter every
//!   [`beat_every`] (an eighth of the interval, at most a second); a shard thread that blocks
//!   or spins stops bumping. The dispatcher and the recorder bump their own counters from
//!   their loops, and the storage crate's log flusher and index flusher count the turns of
//!   theirs (each turns at least every second while alive): a hung `fdatasync` or sled flush
//!   stops its counter;
//! - a shard, dispatcher or recorder thread that ends while hookd is not stopping (a panic
//!   that escaped) is marked dead by its [`ThreadGuard`]: no ping from then on, and
//!   `/api/v1/health` answers 503;
//! - the watchdog thread wakes every half interval and pings only if every watched counter moved
//!   within the last half interval. Otherwise it logs which part stalled and skips the ping;
//!   after the whole interval without one systemd restarts hookd (`Restart=on-failure`).
//!
//! A counter is watched from its first beat. Shards beat before `READY=1` is sent (`shard::start`
//! waits for it), so all of them are watched from the start; the dispatcher from its first turn.
//! The watchdog stops when a drain begins: systemd only enforces it while the unit is running.

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, Sender};
use crossbeam_utils::CachePadded;

/// The environment variable naming the notification socket.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";
/// The watchdog interval, in microseconds.
pub const WATCHDOG_USEC: &str = "WATCHDOG_USEC";
/// The process the watchdog is meant for; unset means the service's main process.
pub const WATCHDOG_PID: &str = "WATCHDOG_PID";

/// The longest heartbeat period, also used without a watchdog (shards still beat once at
/// start, which `shard::start` waits for).
const BEAT_EVERY_MAX: Duration = Duration::from_secs(1);
/// The shortest time without a beat that counts as a stall (the recorder and the storage
/// flushers beat every 100 ms at most).
const STALL_LIMIT_MIN: Duration = Duration::from_millis(500);
/// The shortest heartbeat period, however short the watchdog interval.
const BEAT_EVERY_MIN: Duration = Duration::from_millis(1);

/// Why a notification could not be sent, or the environment could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// `$NOTIFY_SOCKET` is neither an absolute path nor `@name`.
    #[error("NOTIFY_SOCKET={value:?} is neither an absolute path nor an abstract socket (@name)")]
    Address {
        /// The variable's value, lossily decoded.
        value: String,
    },
    /// `$NOTIFY_SOCKET` has the right shape but is no valid socket address (too long, NUL).
    #[error("NOTIFY_SOCKET={value:?} is not a valid Unix socket address")]
    AddressInvalid {
        /// The variable's value, lossily decoded.
        value: String,
        /// What the address constructor said.
        #[source]
        source: io::Error,
    },
    /// A value would break the line-based message format.
    #[error("notification field {key}: the value contains a newline")]
    Newline {
        /// The field.
        key: &'static str,
    },
    /// The datagram socket could not be created.
    #[error("creating a datagram socket for NOTIFY_SOCKET: {0}")]
    Socket(#[source] io::Error),
    /// The datagram could not be sent.
    #[error("sending to NOTIFY_SOCKET {to}: {source}")]
    Send {
        /// The socket, as given in `$NOTIFY_SOCKET`.
        to: String,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// Only part of the datagram was sent.
    #[error("sending to NOTIFY_SOCKET {to}: {sent} of {len} bytes sent")]
    Short {
        /// The socket, as given in `$NOTIFY_SOCKET`.
        to: String,
        /// Bytes sent.
        sent: usize,
        /// Bytes in the message.
        len: usize,
    },
    /// `$WATCHDOG_USEC` is not a positive whole number.
    #[error("WATCHDOG_USEC={value:?} is not a positive number of microseconds")]
    WatchdogUsec {
        /// The variable's value, lossily decoded.
        value: String,
    },
    /// `$WATCHDOG_PID` is not a process id.
    #[error("WATCHDOG_PID={value:?} is not a process id")]
    WatchdogPid {
        /// The variable's value, lossily decoded.
        value: String,
    },
}

/// One notification: `KEY=VALUE` lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    text: String,
}

impl Message {
    /// An empty message.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `key=value`. A newline in `value` would start a new assignment, so it is refused.
    pub fn field(mut self, key: &'static str, value: &str) -> Result<Self, NotifyError> {
        if value.contains('\n') {
            return Err(NotifyError::Newline { key });
        }
        if !self.text.is_empty() {
            self.text.push('\n');
        }
        self.text.push_str(key);
        self.text.push('=');
        self.text.push_str(value);
        Ok(self)
    }

    /// `READY=1`, `STATUS=status` and `MAINPID=pid`.
    pub fn ready(status: &str, pid: u32) -> Result<Self, NotifyError> {
        Self::new()
            .field("READY", "1")?
            .field("STATUS", status)?
            .field("MAINPID", &pid.to_string())
    }

    /// `STOPPING=1` and `STATUS=status`.
    pub fn stopping(status: &str) -> Result<Self, NotifyError> {
        Self::new().field("STOPPING", "1")?.field("STATUS", status)
    }

    /// `WATCHDOG=1`.
    pub fn watchdog() -> Self {
        Self {
            text: "WATCHDOG=1".to_owned(),
        }
    }

    /// The datagram's text.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// The socket address that a `$NOTIFY_SOCKET` value names.
pub fn notify_address(value: &OsStr) -> Result<SocketAddr, NotifyError> {
    let bytes = value.as_bytes();
    let shown = || value.to_string_lossy().into_owned();
    let invalid = |source| NotifyError::AddressInvalid {
        value: shown(),
        source,
    };
    match bytes.first() {
        Some(b'/') => SocketAddr::from_pathname(Path::new(value)).map_err(invalid),
        Some(b'@') if bytes.len() > 1 => {
            SocketAddr::from_abstract_name(&bytes[1..]).map_err(invalid)
        }
        _ => Err(NotifyError::Address { value: shown() }),
    }
}

/// Sends notifications to `$NOTIFY_SOCKET`, or nothing when it is unset. `Send + Sync`.
#[derive(Debug)]
pub struct Notifier {
    target: Option<Target>,
}

#[derive(Debug)]
struct Target {
    socket: UnixDatagram,
    addr: SocketAddr,
    /// `$NOTIFY_SOCKET` as given, for errors.
    shown: String,
}

impl Notifier {
    /// A notifier that sends nothing.
    pub fn disabled() -> Self {
        Self { target: None }
    }

    /// A notifier for this process's `$NOTIFY_SOCKET`.
    pub fn from_env() -> Result<Self, NotifyError> {
        Self::from_value(std::env::var_os(NOTIFY_SOCKET).as_deref())
    }

    /// A notifier for a `$NOTIFY_SOCKET` value; `None` gives [`Notifier::disabled`].
    pub fn from_value(value: Option<&OsStr>) -> Result<Self, NotifyError> {
        let Some(value) = value else {
            return Ok(Self::disabled());
        };
        let addr = notify_address(value)?;
        let socket = UnixDatagram::unbound().map_err(NotifyError::Socket)?;
        Ok(Self {
            target: Some(Target {
                socket,
                addr,
                shown: value.to_string_lossy().into_owned(),
            }),
        })
    }

    /// Whether notifications go anywhere.
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Sends `message` as one datagram.
    pub fn send(&self, message: &Message) -> Result<(), NotifyError> {
        let Some(t) = &self.target else {
            return Ok(());
        };
        let bytes = message.as_str().as_bytes();
        let sent = t
            .socket
            .send_to_addr(bytes, &t.addr)
            .map_err(|source| NotifyError::Send {
                to: t.shown.clone(),
                source,
            })?;
        if sent != bytes.len() {
            return Err(NotifyError::Short {
                to: t.shown.clone(),
                sent,
                len: bytes.len(),
            });
        }
        Ok(())
    }

    /// `READY=1`, with a status line and this process's id.
    pub fn ready(&self, status: &str) -> Result<(), NotifyError> {
        self.send(&Message::ready(status, std::process::id())?)
    }

    /// `STOPPING=1`, with a status line.
    pub fn stopping(&self, status: &str) -> Result<(), NotifyError> {
        self.send(&Message::stopping(status)?)
    }

    /// `WATCHDOG=1`.
    pub fn watchdog(&self) -> Result<(), NotifyError> {
        self.send(&Message::watchdog())
    }
}

/// The watchdog interval systemd expects from this process, from the environment.
pub fn watchdog_from_env() -> Result<Option<Duration>, NotifyError> {
    watchdog_interval(
        std::env::var_os(WATCHDOG_USEC).as_deref(),
        std::env::var_os(WATCHDOG_PID).as_deref(),
        std::process::id(),
    )
}

/// The watchdog interval for process `me` given `$WATCHDOG_USEC` and `$WATCHDOG_PID`: `None`
/// when there is no watchdog or it is meant for another process.
pub fn watchdog_interval(
    usec: Option<&OsStr>,
    pid: Option<&OsStr>,
    me: u32,
) -> Result<Option<Duration>, NotifyError> {
    let Some(usec) = usec else {
        return Ok(None);
    };
    let usec = usec
        .to_str()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|&n| n > 0)
        .ok_or_else(|| NotifyError::WatchdogUsec {
            value: usec.to_string_lossy().into_owned(),
        })?;
    if let Some(pid) = pid {
        let pid = pid
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
            .filter(|&n| n > 0)
            .ok_or_else(|| NotifyError::WatchdogPid {
                value: pid.to_string_lossy().into_owned(),
            })?;
        if pid != me {
            return Ok(None);
        }
    }
    Ok(Some(Duration::from_micros(usec)))
}

/// How often each shard bumps its heartbeat: an eighth of the watchdog interval (four beats
/// per half interval, the window [`Staleness`] looks at) but at most every second, and every
/// second without a watchdog.
pub fn beat_every(watchdog: Option<Duration>) -> Duration {
    match watchdog {
        Some(interval) => (interval / 8).clamp(BEAT_EVERY_MIN, BEAT_EVERY_MAX),
        None => BEAT_EVERY_MAX,
    }
}

/// A part of hookd that must keep making progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// A shard thread (its monoio runtime), by index.
    Shard(usize),
    /// The dispatcher thread.
    Dispatcher,
    /// The recorder thread (attempts to the index).
    Recorder,
    /// The log's flusher thread (group commit: writes and `fdatasync`).
    Flusher,
    /// The index flusher thread (sled flushes).
    IndexFlusher,
}

impl std::fmt::Display for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Component::Shard(i) => write!(f, "shard {i}"),
            Component::Dispatcher => f.write_str("the dispatcher"),
            Component::Recorder => f.write_str("the recorder"),
            Component::Flusher => f.write_str("the log flusher"),
            Component::IndexFlusher => f.write_str("the index flusher"),
        }
    }
}

/// Heartbeat counters: one per shard, then the dispatcher's and the recorder's, bumped by the
/// parts themselves; then, once [`Liveness::watch_store`] was called, the storage crate's
/// flusher and index flusher turns. Read by the watchdog thread. A counter at 0 has never
/// beaten. A thread that ended when it should not have is also marked dead
/// ([`Liveness::mark_dead`]): the watchdog stops at once and `/api/v1/health` answers 503.
#[derive(Debug)]
pub struct Liveness {
    beats: Box<[CachePadded<AtomicU64>]>,
    dead: Box<[AtomicBool]>,
    store: OnceLock<Arc<storage::Store>>,
}

impl Liveness {
    /// Counters for `shards` shards, the dispatcher and the recorder.
    pub fn new(shards: usize) -> Self {
        Self {
            beats: (0..shards + 2)
                .map(|_| CachePadded::new(AtomicU64::new(0)))
                .collect(),
            dead: (0..shards + 2).map(|_| AtomicBool::new(false)).collect(),
            store: OnceLock::new(),
        }
    }

    /// Also watches the store's flusher threads.
    pub fn watch_store(&self, store: Arc<storage::Store>) {
        let _ = self.store.set(store);
    }

    /// The number of shards.
    pub fn shards(&self) -> usize {
        self.beats.len() - 2
    }

    /// Records progress of shard `shard`.
    pub fn beat_shard(&self, shard: usize) {
        assert!(shard < self.shards(), "shard {shard} out of range");
        self.beats[shard].fetch_add(1, Ordering::Relaxed);
    }

    /// Records progress of the dispatcher. Call it once per turn of its loop.
    pub fn beat_dispatcher(&self) {
        self.beats[self.shards()].fetch_add(1, Ordering::Relaxed);
    }

    /// Records progress of the recorder. Call it once per turn of its loop.
    pub fn beat_recorder(&self) {
        self.beats[self.shards() + 1].fetch_add(1, Ordering::Relaxed);
    }

    /// Whether shard `shard` has beaten at least once.
    pub fn shard_started(&self, shard: usize) -> bool {
        self.beats[shard].load(Ordering::Relaxed) > 0
    }

    /// Every counter now: shards, dispatcher, recorder, then the store's flushers if watched.
    pub fn read(&self) -> Vec<u64> {
        let mut counts: Vec<u64> = self
            .beats
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        if let Some(store) = self.store.get() {
            counts.push(store.log().flusher_beats());
            counts.push(store.index_flusher_beats());
        }
        counts
    }

    /// What counter `index` of [`Liveness::read`] belongs to.
    pub fn component(&self, index: usize) -> Component {
        let shards = self.shards();
        match index.checked_sub(shards) {
            None => Component::Shard(index),
            Some(0) => Component::Dispatcher,
            Some(1) => Component::Recorder,
            Some(2) => Component::Flusher,
            Some(_) => Component::IndexFlusher,
        }
    }

    /// Records that `part`'s thread ended while hookd was not stopping.
    pub fn mark_dead(&self, part: Component) {
        let i = match part {
            Component::Shard(i) => i,
            Component::Dispatcher => self.shards(),
            Component::Recorder => self.shards() + 1,
            // The storage threads are judged by their counters alone.
            Component::Flusher | Component::IndexFlusher => return,
        };
        self.dead[i].store(true, Ordering::Release);
    }

    /// The parts whose thread ended while hookd was not stopping.
    pub fn dead(&self) -> Vec<Component> {
        (0..self.dead.len())
            .filter(|&i| self.dead[i].load(Ordering::Acquire))
            .map(|i| self.component(i))
            .collect()
    }
}

/// Marks `part` dead in `liveness` if it is dropped while its thread unwinds from a panic or
/// before [`ThreadGuard::finish`]: put one at the top of a thread that must live as long as
/// hookd serves.
#[derive(Debug)]
pub struct ThreadGuard {
    liveness: Arc<Liveness>,
    part: Component,
    finished: bool,
}

impl ThreadGuard {
    pub fn new(liveness: Arc<Liveness>, part: Component) -> Self {
        Self {
            liveness,
            part,
            finished: false,
        }
    }

    /// The thread ends as it should (hookd is stopping).
    pub fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for ThreadGuard {
    fn drop(&mut self) {
        if !self.finished || std::thread::panicking() {
            tracing::error!(part = %self.part, "{} stopped unexpectedly: hookd is unhealthy (health answers 503, the watchdog stops)", self.part);
            self.liveness.mark_dead(self.part);
        }
    }
}

/// Which counters stopped moving: pure, time passed in. Remembers each counter's last value and
/// when it was first seen; a counter that has beaten at least once and has not moved for more
/// than `limit` is stalled.
#[derive(Debug)]
pub struct Staleness {
    limit: Duration,
    seen: Vec<u64>,
    moved_at: Vec<Instant>,
}

impl Staleness {
    /// Starts from a first reading taken at `now`.
    pub fn new(counts: &[u64], now: Instant, limit: Duration) -> Self {
        Self {
            limit,
            seen: counts.to_vec(),
            moved_at: vec![now; counts.len()],
        }
    }

    /// Takes a reading made at `now`; returns the indexes of the stalled counters.
    pub fn check(&mut self, counts: &[u64], now: Instant) -> Vec<usize> {
        assert_eq!(counts.len(), self.seen.len(), "a reading of other counters");
        let mut stalled = Vec::new();
        for (i, &count) in counts.iter().enumerate() {
            if count != self.seen[i] {
                self.seen[i] = count;
                self.moved_at[i] = now;
            } else if count > 0 && now.saturating_duration_since(self.moved_at[i]) > self.limit {
                stalled.push(i);
            }
        }
        stalled
    }
}

/// One wake of the watchdog thread at `now`: reads the counters and sends `WATCHDOG=1` if none
/// stalled. Returns the stalled parts (nothing was sent then).
pub fn watchdog_tick(
    staleness: &mut Staleness,
    liveness: &Liveness,
    notifier: &Notifier,
    now: Instant,
) -> Vec<Component> {
    let mut stalled: Vec<Component> = staleness
        .check(&liveness.read(), now)
        .into_iter()
        .map(|i| liveness.component(i))
        .collect();
    for part in liveness.dead() {
        if !stalled.contains(&part) {
            stalled.push(part);
        }
    }
    if stalled.is_empty() {
        if let Err(e) = notifier.watchdog() {
            tracing::warn!(error = %e, "watchdog ping not sent");
        }
    }
    stalled
}

/// The watchdog thread: pings systemd every half interval while every part makes progress.
#[derive(Debug)]
pub struct Watchdog {
    stop: Sender<()>,
    handle: JoinHandle<()>,
}

impl Watchdog {
    /// Starts the thread for a watchdog `interval`.
    pub fn start(
        notifier: Arc<Notifier>,
        liveness: Arc<Liveness>,
        interval: Duration,
    ) -> io::Result<Self> {
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let half = interval / 2;
        // The background threads beat every 100 ms at most: a shorter limit would see them
        // stalled between beats.
        let limit = half.max(STALL_LIMIT_MIN);
        let handle = std::thread::Builder::new()
            .name("hookd-watchdog".into())
            .spawn(move || {
                let mut staleness = Staleness::new(&liveness.read(), Instant::now(), limit);
                // Dropping the sender ends the wait with `Disconnected`.
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(half) {
                    let stalled =
                        watchdog_tick(&mut staleness, &liveness, &notifier, Instant::now());
                    for part in stalled {
                        tracing::warn!(
                            %part,
                            no_progress_for_more_than_ms = limit.as_millis() as u64,
                            "{part} stalled: watchdog ping skipped; \
                             systemd restarts hookd if this lasts {} ms",
                            interval.as_millis()
                        );
                    }
                }
            })?;
        Ok(Self { stop, handle })
    }

    /// Stops pinging and joins the thread.
    pub fn stop(self) {
        drop(self.stop);
        let _ = self.handle.join();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    fn os(s: &str) -> Option<&OsStr> {
        Some(OsStr::new(s))
    }

    #[test]
    fn messages_are_key_value_lines() {
        assert_eq!(
            Message::ready("listening on 127.0.0.1:8071", 4242)
                .unwrap()
                .as_str(),
            "READY=1\nSTATUS=listening on 127.0.0.1:8071\nMAINPID=4242"
        );
        assert_eq!(
            Message::stopping("draining").unwrap().as_str(),
            "STOPPING=1\nSTATUS=draining"
        );
        assert_eq!(Message::watchdog().as_str(), "WATCHDOG=1");
        assert!(matches!(
            Message::ready("two\nlines", 1),
            Err(NotifyError::Newline { key: "STATUS" })
        ));
    }

    #[test]
    fn addresses_are_paths_or_abstract_names() {
        let path = notify_address(OsStr::new("/run/systemd/notify")).unwrap();
        assert_eq!(path.as_pathname(), Some(Path::new("/run/systemd/notify")));
        assert_eq!(path.as_abstract_name(), None);

        let abs = notify_address(OsStr::new("@/org/freedesktop/systemd1/notify")).unwrap();
        assert_eq!(
            abs.as_abstract_name(),
            Some(&b"/org/freedesktop/systemd1/notify"[..])
        );
        assert_eq!(abs.as_pathname(), None);

        for bad in ["", "@", "relative/notify", "vsock:2:1234"] {
            assert!(
                matches!(
                    notify_address(OsStr::new(bad)),
                    Err(NotifyError::Address { .. })
                ),
                "{bad:?}"
            );
        }
        let long = format!("/{}", "x".repeat(200));
        assert!(matches!(
            notify_address(OsStr::new(&long)),
            Err(NotifyError::AddressInvalid { .. })
        ));
    }

    #[test]
    fn without_notify_socket_nothing_is_sent() {
        let n = Notifier::from_value(None).unwrap();
        assert!(!n.is_enabled());
        n.ready("ready").unwrap();
        n.watchdog().unwrap();
        n.stopping("stopping").unwrap();
    }

    fn recv(socket: &UnixDatagram) -> String {
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).expect("a datagram");
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn sends_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::from_value(Some(path.as_os_str())).unwrap();
        assert!(n.is_enabled());
        n.ready("up").unwrap();
        assert_eq!(
            recv(&server),
            format!("READY=1\nSTATUS=up\nMAINPID={}", std::process::id())
        );
        n.watchdog().unwrap();
        assert_eq!(recv(&server), "WATCHDOG=1");
    }

    #[test]
    fn sends_to_an_abstract_socket() {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "hookd-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        let n = Notifier::from_value(os(&format!("@{name}"))).unwrap();
        n.stopping("bye").unwrap();
        assert_eq!(recv(&server), "STOPPING=1\nSTATUS=bye");
    }

    #[test]
    fn a_missing_socket_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nobody-listens");
        let n = Notifier::from_value(Some(path.as_os_str())).unwrap();
        assert!(matches!(n.watchdog(), Err(NotifyError::Send { .. })));
    }

    #[test]
    fn watchdog_interval_follows_usec_and_pid() {
        let ms200 = Some(Duration::from_millis(200));
        assert_eq!(watchdog_interval(None, None, 7).unwrap(), None);
        assert_eq!(watchdog_interval(None, os("7"), 7).unwrap(), None);
        assert_eq!(watchdog_interval(os("200000"), None, 7).unwrap(), ms200);
        assert_eq!(watchdog_interval(os("200000"), os("7"), 7).unwrap(), ms200);
        assert_eq!(watchdog_interval(os("200000"), os("8"), 7).unwrap(), None);
        for bad in ["", "0", "-5", "1.5", "30s"] {
            assert!(matches!(
                watchdog_interval(os(bad), None, 7),
                Err(NotifyError::WatchdogUsec { .. })
            ));
        }
        for bad in ["", "0", "me"] {
            assert!(matches!(
                watchdog_interval(os("1000"), os(bad), 7),
                Err(NotifyError::WatchdogPid { .. })
            ));
        }
    }

    #[test]
    fn beats_are_an_eighth_of_the_interval_at_most_a_second() {
        assert_eq!(
            beat_every(Some(Duration::from_millis(200))),
            Duration::from_millis(25)
        );
        assert_eq!(beat_every(Some(Duration::from_secs(30))), BEAT_EVERY_MAX);
        assert_eq!(beat_every(Some(Duration::MAX)), BEAT_EVERY_MAX);
        assert_eq!(beat_every(Some(Duration::from_micros(80))), BEAT_EVERY_MIN);
        assert_eq!(beat_every(None), BEAT_EVERY_MAX);
    }

    #[test]
    fn liveness_counts_per_part() {
        let l = Liveness::new(2);
        assert_eq!(l.shards(), 2);
        assert_eq!(l.read(), vec![0, 0, 0, 0]);
        l.beat_shard(1);
        l.beat_shard(1);
        l.beat_dispatcher();
        l.beat_recorder();
        assert_eq!(l.read(), vec![0, 2, 1, 1]);
        assert!(!l.shard_started(0));
        assert!(l.shard_started(1));
        assert_eq!(l.component(0), Component::Shard(0));
        assert_eq!(l.component(2), Component::Dispatcher);
        assert_eq!(l.component(3), Component::Recorder);
        assert_eq!(l.component(4), Component::Flusher);
        assert_eq!(l.component(5), Component::IndexFlusher);
        assert_eq!(Component::Shard(3).to_string(), "shard 3");
        assert!(l.dead().is_empty());
        l.mark_dead(Component::Shard(1));
        l.mark_dead(Component::Recorder);
        assert_eq!(l.dead(), vec![Component::Shard(1), Component::Recorder]);
    }

    #[test]
    fn a_thread_guard_marks_a_thread_that_panics_or_just_ends() {
        let l = Arc::new(Liveness::new(2));
        let guarded = l.clone();
        let joined = std::thread::spawn(move || {
            let _guard = ThreadGuard::new(guarded, Component::Shard(0));
            panic!("a bug");
        })
        .join();
        assert!(joined.is_err());
        assert_eq!(l.dead(), vec![Component::Shard(0)]);
        drop(ThreadGuard::new(l.clone(), Component::Dispatcher));
        ThreadGuard::new(l.clone(), Component::Recorder).finish();
        assert_eq!(l.dead(), vec![Component::Shard(0), Component::Dispatcher]);
    }

    #[test]
    fn a_counter_that_stops_moving_is_stalled_after_the_limit() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let limit = Duration::from_millis(100);
        // Shard 0, shard 1, dispatcher.
        let mut s = Staleness::new(&[1, 1, 1], t0, limit);
        assert!(s.check(&[2, 2, 2], ms(100)).is_empty());
        // Shard 1 stops; at exactly the limit it is not stalled yet.
        assert!(s.check(&[3, 2, 3], ms(200)).is_empty());
        assert_eq!(s.check(&[4, 2, 4], ms(201)), vec![1]);
        assert_eq!(s.check(&[5, 2, 5], ms(300)), vec![1]);
        // It recovers.
        assert!(s.check(&[6, 3, 6], ms(400)).is_empty());
        // Everything stalls.
        assert_eq!(s.check(&[6, 3, 6], ms(501)), vec![0, 1, 2]);
    }

    #[test]
    fn a_counter_is_watched_from_its_first_beat() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut s = Staleness::new(&[1, 0], t0, Duration::from_millis(100));
        // The dispatcher has never beaten: not watched, however long.
        assert!(s.check(&[2, 0], ms(1_000)).is_empty());
        assert!(s.check(&[3, 0], ms(60_000)).is_empty());
        // Its first beat arms it.
        assert!(s.check(&[4, 1], ms(60_050)).is_empty());
        assert!(s.check(&[5, 1], ms(60_150)).is_empty());
        assert_eq!(s.check(&[6, 1], ms(60_151)), vec![1]);
    }

    #[test]
    fn a_tick_pings_only_while_every_part_beats() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        server.set_nonblocking(true).unwrap();
        // A datagram sent to a local socket is queued before `send` returns.
        let pending = || {
            let mut buf = [0u8; 64];
            match server.recv(&mut buf) {
                Ok(n) => Some(String::from_utf8(buf[..n].to_vec()).unwrap()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
                Err(e) => panic!("{e}"),
            }
        };
        let notifier = Notifier::from_value(Some(path.as_os_str())).unwrap();
        let live = Liveness::new(2);
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        live.beat_shard(0);
        live.beat_shard(1);
        let mut s = Staleness::new(&live.read(), t0, Duration::from_millis(100));

        live.beat_shard(0);
        live.beat_shard(1);
        live.beat_dispatcher();
        assert!(watchdog_tick(&mut s, &live, &notifier, ms(100)).is_empty());
        assert_eq!(pending().as_deref(), Some("WATCHDOG=1"));

        // Shard 1 stops beating: the next tick pings, the one after does not.
        live.beat_shard(0);
        live.beat_dispatcher();
        assert!(watchdog_tick(&mut s, &live, &notifier, ms(200)).is_empty());
        assert_eq!(pending().as_deref(), Some("WATCHDOG=1"));
        live.beat_shard(0);
        live.beat_dispatcher();
        assert_eq!(
            watchdog_tick(&mut s, &live, &notifier, ms(300)),
            vec![Component::Shard(1)]
        );
        assert_eq!(pending(), None);

        // The dispatcher stops too; then both recover.
        live.beat_shard(0);
        assert_eq!(
            watchdog_tick(&mut s, &live, &notifier, ms(401)),
            vec![Component::Shard(1), Component::Dispatcher]
        );
        assert_eq!(pending(), None);
        live.beat_shard(0);
        live.beat_shard(1);
        live.beat_dispatcher();
        assert!(watchdog_tick(&mut s, &live, &notifier, ms(500)).is_empty());
        assert_eq!(pending().as_deref(), Some("WATCHDOG=1"));

        // A thread marked dead stops the pings at once, before its counter goes stale.
        live.mark_dead(Component::Shard(0));
        live.beat_shard(1);
        live.beat_dispatcher();
        assert_eq!(
            watchdog_tick(&mut s, &live, &notifier, ms(510)),
            vec![Component::Shard(0)]
        );
        assert_eq!(pending(), None);
    }

    #[test]
    fn time_going_backwards_is_not_a_stall() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut s = Staleness::new(&[1], t0, Duration::from_millis(100));
        assert!(s.check(&[1], t0 - Duration::from_secs(5)).is_empty());
    }
}
