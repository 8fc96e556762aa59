//! hookd's durable store: a segmented append-only log with group commit, and a sled database
//! for everything that needs random access.
//!
//! This crate knows nothing of HTTP, TLS or async runtimes. Its waits are plain
//! `std::future::Future`s woken from its own threads, so any executor can await them.
//!
//! # On-disk format
//!
//! A data directory holds:
//! ```text
//! HOOKD                 marker: "hookd data directory\nformat <version>\n"
//! LOCK                  flock(2)-ed by the process that has the store open
//! log/seg-<id:020>.log  log segments, ids increasing; the highest is open for appends
//! log/quarantine/       bytes that failed to decode, copied aside before anything is cut
//! index/                the sled database (see `state` for its trees and key layouts)
//! ```
//!
//! **Segments** (see `segment`): a 32-byte header (magic `HOOKDSEG`, format version, checksummed
//! id and creation time), then frames. **Frames** (see `codec`): `magic u32 | len u32 |
//! crc32c(len, body) u32 | body`, where body is a format-version byte and bincode 2 (little
//! endian, fixed-width integers, 16 MiB limit) of `{seq u64, ts_ms u64, payload bytes}`. Sequence
//! numbers are dense and increase across segments. Segments roll at a byte, count or age limit.
//! **Index values** are a format-version byte and bincode 2 with the same configuration.
//!
//! # Write and fsync order
//!
//! 1. A new segment is written under a `.tmp` name, fsynced, renamed, and the directory fsynced,
//!    before any record goes into it (the flusher prepares the next one ahead of time).
//! 2. Appenders `pwrite` whole batches at the end of the open segment under one lock.
//! 3. The flusher `fdatasync`s every segment written since the last flush, then publishes the
//!    durable watermark. In `sync` mode an append is acknowledged only once the watermark passes
//!    it, so an acknowledged record is always on disk.
//! 4. The index database is flushed by its own thread: on request (management writes wait for
//!    it) and every `index_flush_interval` otherwise. Delivery state lost in a crash is rebuilt:
//!    deliveries are at least once.
//! 5. Retiring a segment first records the new sequence floor in the index and flushes it, then
//!    deletes the file, then fsyncs the directory.
//!
//! # Recovery
//!
//! Every segment without a stored summary (always the open one) is read whole; a sealed one's
//! summary is then stored, so it is not read again. A frame that does not decode is copied to
//! `log/quarantine/` and stepped over; its sequence numbers read as [`Error::Quarantined`]. A
//! torn tail (a frame cut short, or garbage after the last whole frame: writes that were never
//! acknowledged) is copied aside too, then truncated. A sealed segment known by its summary is
//! not read at open, only its header checked: a corrupt header (with whole frames after it) is
//! copied aside and written again from the file name and the summary or first record. Bytes
//! that go bad in a sealed segment after that are found by the first read that meets them
//! (`Log::read`, `iter_from`, `scan_back`): the segment is scanned as recovery would, each bad
//! stretch (up to the segment's written end) is copied aside and stepped over by every
//! reader, and its summary is stored again. Every stretch is reported once, by whichever
//! found it ([`Log::take_corruptions`], counted by [`Log::corruptions_found`]; a stretch whose
//! copy is already in `quarantine/` was reported before). A record or segment of a newer
//! format version refuses the whole open ([`Error::NewerFormat`]): nothing is guessed. None of
//! this panics, so a bad record cannot cause a crash loop.
//!
//! Recovery then syncs every segment it read and the log directory, before it hands out a
//! sequence number: what it saw may sit only in the page cache (the process died, the machine
//! did not), and a power cut must neither take it back nor bring back what it no longer holds.
//!
//! # The file-system seam, and power loss simulated
//!
//! Every file operation of the log (segment create, open, read, write, truncate, `fdatasync`,
//! `fsync`, directory fsync, rename, remove, listing, quarantine copies) goes through
//! [`fs::Fs`], chosen once when the log opens: [`fs::RealFs`] (`std::fs`) by default, or the
//! simulated disk [`fs::sim::SimFs`], which keeps unsynced writes and directory changes apart
//! from durable ones, cuts the power (dropping, keeping part of, or tearing them) and fails
//! writes and syncs with `EIO` or `ENOSPC`, all from one seed. `tests/powerloss.rs` runs the
//! log on it ([`Log::open_stepped`]: the flusher turned by the test, so a seed replays
//! exactly). Outside the seam: the index (sled does its own I/O), the marker and lock files of
//! the data directory, and `statvfs` in [`space`].

pub mod clock;
pub mod codec;
pub mod commit;
pub mod error;
pub mod fs;
pub mod histogram;
pub mod log;
pub mod segment;
pub mod space;
pub mod state;

use std::{
    fs::{File, OpenOptions},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crossbeam_utils::sync::{Parker, Unparker};

pub use crate::{
    clock::{Clock, ManualClock, SystemClock},
    commit::{LocalWaiters, Subscription, Wait, Watermark},
    error::{Error, Result},
    log::{Corruption, Durability, Log, LogOptions, RecoveryReport, ScanEnd},
    segment::Record,
    state::{Page, State},
};

const MARKER: &str = "HOOKD";
/// The longest the index flusher sleeps between turns of its loop.
const INDEX_BEAT_MAX: Duration = Duration::from_millis(100);
/// The longest one retention run spends pruning the index of retired messages.
const PRUNE_SLICE: Duration = Duration::from_millis(200);
const MARKER_PREFIX: &str = "hookd data directory\nformat ";

/// Tunables of the whole store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub log: LogOptions,
    /// sled's page cache.
    pub cache_bytes: u64,
    /// How often the index is flushed when nobody asks for it.
    pub index_flush_interval: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            log: LogOptions::default(),
            cache_bytes: 64 << 20,
            index_flush_interval: Duration::from_millis(500),
        }
    }
}

/// An open data directory: the log and the index, each with its flusher thread.
pub struct Store {
    path: PathBuf,
    log: Log,
    state: Arc<State>,
    index: Arc<IndexFlusher>,
    index_thread: Mutex<Option<JoinHandle<()>>>,
    clock: Arc<dyn Clock>,
    space: space::Space,
    _lock: File,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

struct IndexFlusher {
    /// Turns of the thread's loop (see [`Store::index_flusher_beats`]).
    beats: AtomicU64,
    requested: AtomicU64,
    durable: Arc<Watermark>,
    unparker: Unparker,
    stop: AtomicBool,
}

impl Store {
    /// Opens or creates the data directory at `path` and recovers it.
    ///
    /// Refuses a directory that is not empty and not hookd's, one that cannot be written, one
    /// locked by another process, and one written by a newer format.
    pub fn open(
        path: &Path,
        opts: StoreOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<(Self, RecoveryReport)> {
        let lock = prepare_dir(path)?;
        let state = Arc::new(State::open(&path.join("index"), opts.cache_bytes)?);
        let (log, report) = Log::open(&path.join("log"), opts.log, clock.clone(), state.clone())?;
        let parker = Parker::new();
        let index = Arc::new(IndexFlusher {
            beats: AtomicU64::new(0),
            requested: AtomicU64::new(0),
            durable: Arc::new(Watermark::new(0)),
            unparker: parker.unparker().clone(),
            stop: AtomicBool::new(false),
        });
        let (st, ix) = (state.clone(), index.clone());
        let interval = opts.index_flush_interval;
        let index_thread = std::thread::Builder::new()
            .name("hookd-index-flusher".into())
            .spawn(move || index_flusher(&st, &ix, &parker, interval))
            .map_err(|e| Error::io("starting the index flusher thread", e))?;
        Ok((
            Self {
                path: path.to_path_buf(),
                log,
                state,
                index,
                index_thread: Mutex::new(Some(index_thread)),
                clock,
                space: space::Space::new(path),
                _lock: lock,
            },
            report,
        ))
    }

    /// The event log.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// Turns of the index flusher thread's loop so far (ten a second or more while it
    /// lives): a counter that stops moving means it is stuck in a sled flush, or gone.
    pub fn index_flusher_beats(&self) -> u64 {
        self.index.beats.load(Ordering::Relaxed)
    }

    /// The index database.
    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Refuses with [`Error::DiskFull`] while appending `len` bytes would leave less than the
    /// reserve free on the store's filesystem (see [`space`]). The ingest path asks before each
    /// append.
    pub fn check_space(&self, len: u64) -> Result<()> {
        self.space.check(self.log.disk_bytes(), len)
    }

    /// The free-space guard: its reserve and readings.
    pub fn space(&self) -> &space::Space {
        &self.space
    }

    /// Asks for the index writes made so far to be flushed; returns a ticket to wait on with
    /// [`Store::index_durable`]. For management writes, which must survive a crash once answered.
    pub fn commit_index(&self) -> u64 {
        let ticket = self.index.requested.fetch_add(1, Ordering::AcqRel) + 1;
        self.index.unparker.unpark();
        ticket
    }

    /// The index's durable watermark, counted in [`Store::commit_index`] tickets.
    pub fn index_durable(&self) -> &Arc<Watermark> {
        &self.index.durable
    }

    /// The lowest sequence number the log must keep: the lowest pending delivery, and nothing at
    /// or after `fanout_cursor` (deliveries not yet fanned out).
    pub fn retention_floor(&self, fanout_cursor: u64) -> Result<u64> {
        let pending = self.state.min_pending_seq()?.unwrap_or(u64::MAX);
        Ok(pending.min(fanout_cursor))
    }

    /// Drops segments older than `retention` that nothing at or above `floor` needs, expired
    /// idempotency keys and portal tokens, and the attempts and delivery states of messages no longer in the
    /// log. Blocks: run it off the shard threads.
    pub fn run_retention(&self, retention: Duration, floor: u64) -> Result<Vec<u64>> {
        let now = self.clock.now_ms();
        let cutoff = now.saturating_sub(retention.as_millis() as u64);
        // An open segment whose records are all past retention is sealed, so that it can go
        // too: a log at its ceiling takes no appends, so nothing else would ever roll it.
        let newest = self.log.next_seq().saturating_sub(1);
        if newest > 0 && newest < floor {
            if let Some(rec) = self.log.read(newest).ok().flatten() {
                // On a full disk the new segment may not be creatable yet: the sealed
                // segments below still go, and the next run tries again.
                if rec.ts_ms < cutoff {
                    let _ = self.log.roll_now();
                }
            }
        }
        let removed = self.log.retire(cutoff, floor)?;
        self.state.purge_idempotency(now)?;
        self.state.purge_portal_tokens(now)?;
        // What the index knows of messages whose records are gone goes too, a slice at a
        // time (the next run goes on where this one stopped).
        let gone_below = crate::log::Catalog::floor(&*self.state)?;
        self.state
            .prune_below(gone_below, Instant::now() + PRUNE_SLICE)?;
        Ok(removed)
    }

    /// Bytes on disk: log segments plus the index.
    pub fn disk_bytes(&self) -> u64 {
        self.log.disk_bytes() + self.state.disk_bytes()
    }

    /// Flushes everything and stops the flusher threads.
    pub fn close(&self) -> Result<()> {
        self.log.close();
        self.index.stop.store(true, Ordering::Release);
        self.index.unparker.unpark();
        if let Some(h) = self
            .index_thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = h.join();
        }
        // Nothing writes any more: the next open need not count the pending deliveries.
        self.state.save_open_count()?;
        self.state.flush()?;
        self.index.durable.close();
        Ok(())
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

fn index_flusher(state: &State, ix: &IndexFlusher, parker: &Parker, interval: Duration) {
    let mut since_flush = Duration::ZERO;
    // Turn at least this often, so that a live thread beats often enough for a watchdog.
    let nap = interval.min(INDEX_BEAT_MAX);
    loop {
        ix.beats.fetch_add(1, Ordering::Relaxed);
        let requested = ix.requested.load(Ordering::Acquire);
        let stopping = ix.stop.load(Ordering::Acquire);
        if requested > ix.durable.get() || since_flush >= interval || stopping {
            match state.flush() {
                Ok(()) => ix.durable.advance(requested),
                // Its waiters learn why: a full disk (507 to a client) or another failure.
                Err(e) => {
                    ix.durable
                        .record_failure_because(ix.durable.get() + 1, requested, &e);
                    ix.durable.advance(requested);
                }
            }
            since_flush = Duration::ZERO;
            if stopping {
                return;
            }
            continue;
        }
        let t = std::time::Instant::now();
        parker.park_timeout((interval - since_flush).min(nap));
        since_flush += t.elapsed();
    }
}

/// Checks that `path` is an existing hookd data directory of a format this build reads, and
/// takes a shared lock on it, for offline readers (`hookd inspect`): while the returned file is
/// open, no hookd can open the store, and the lock is refused ([`Error::Locked`]) while one has
/// it open. Creates and changes nothing.
pub fn lock_shared(path: &Path) -> Result<File> {
    let marker = path.join(MARKER);
    let text = std::fs::read_to_string(&marker).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::ForeignDirectory {
            path: path.to_path_buf(),
        },
        _ => Error::io(format!("reading {}", marker.display()), e),
    })?;
    check_marker(path, &text)?;
    let lock = File::open(path.join("LOCK"))
        .map_err(|e| Error::io(format!("opening {}", path.join("LOCK").display()), e))?;
    if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockShared).is_err() {
        return Err(Error::Locked {
            path: path.to_path_buf(),
        });
    }
    Ok(lock)
}

/// Checks the marker file's `text` of data directory `path`: ours, and a format this build
/// reads.
fn check_marker(path: &Path, text: &str) -> Result<()> {
    let version = text
        .strip_prefix(MARKER_PREFIX)
        .and_then(|v| v.trim().parse::<u8>().ok())
        .ok_or_else(|| Error::ForeignDirectory {
            path: path.to_path_buf(),
        })?;
    if version > codec::FORMAT_VERSION {
        return Err(Error::NewerFormat {
            what: format!("data directory {}", path.display()),
            found: version,
            supported: codec::FORMAT_VERSION,
        });
    }
    Ok(())
}

/// Checks that `path` is (or can become) hookd's data directory and locks it.
fn prepare_dir(path: &Path) -> Result<File> {
    let unwritable = |source| Error::Unwritable {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(path).map_err(unwritable)?;
    let marker = path.join(MARKER);
    match std::fs::read_to_string(&marker) {
        Ok(text) => check_marker(path, &text)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut entries = std::fs::read_dir(path).map_err(unwritable)?;
            if entries.next().is_some() {
                return Err(Error::ForeignDirectory {
                    path: path.to_path_buf(),
                });
            }
            let text = format!("{MARKER_PREFIX}{}\n", codec::FORMAT_VERSION);
            let tmp = path.join("HOOKD.tmp");
            std::fs::write(&tmp, text)
                .and_then(|_| File::open(&tmp)?.sync_all())
                .and_then(|_| std::fs::rename(&tmp, &marker))
                .map_err(unwritable)?;
            segment::sync_dir(path)?;
        }
        Err(e) => return Err(unwritable(e)),
    }
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path.join("LOCK"))
        .map_err(unwritable)?;
    if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
        return Err(Error::Locked {
            path: path.to_path_buf(),
        });
    }
    Ok(lock)
}
