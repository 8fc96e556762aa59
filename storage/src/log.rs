//! The segmented append-only log and its group-commit flusher thread.
//!
//! Appenders (any thread) take one short lock, encode their batch into a reused buffer, write it
//! with one `pwrite` at the end of the open segment, and return the sequence numbers. They never
//! sync. One flusher thread per log syncs every segment written since its last flush with
//! `fdatasync` and then advances the durable [`Watermark`], which wakes the waiters. In `sync`
//! mode it flushes as soon as there is unsynced data and the previous flush has finished (at most
//! one flush per `commit_window`), so one flush covers every append that arrived during the last
//! one; in `interval` mode it flushes every `flush_interval`.
//!
//! Rolling to a new segment takes a spare segment that the flusher created ahead of time, so an
//! appender never creates files or syncs directories on the hot path.
//!
//! Invariants:
//! - `written` (the last sequence number written) only changes under the `inner` lock, together
//!   with the list of files that hold unsynced data; the flusher reads both under the lock, so
//!   when a flush of those files succeeds, everything `<= written` is durable.
//! - A failed write is truncated back before the lock is released: no reader or later append ever
//!   sees half a batch. A failed flush fails the waiters of its range and rolls to a new segment.

use std::{
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crossbeam_utils::sync::{Parker, Unparker};

use crate::{
    clock::Clock,
    codec::{self, LogRecord},
    commit::Watermark,
    error::{Error, Result},
    fs::{Fs, FsFile, RealFs},
    segment::{self, Record, SegFile},
};

/// When an append is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// After the group-commit flush that covers it.
    Sync,
    /// After the write; a flush runs every `flush_interval` (the loss window on power failure).
    Interval,
}

/// Tunables of the log. See the config reference for their meaning.
#[derive(Debug, Clone)]
pub struct LogOptions {
    pub durability: Durability,
    pub flush_interval: Duration,
    pub commit_window: Duration,
    /// When set, `commit_window` spaces flushes only while this count is above zero (hookd
    /// counts the deliveries in flight: spacing fdatasyncs saves CPU for them, and with
    /// nothing else to run the next flush starts at once). `None`: always.
    pub window_while: Option<Arc<AtomicUsize>>,
    pub segment_bytes_max: u64,
    pub segment_events_max: u64,
    pub segment_age_max: Duration,
    /// Ceiling on the log's bytes on disk; appends beyond it get [`Error::OverCapacity`].
    pub max_bytes: u64,
}

impl Default for LogOptions {
    fn default() -> Self {
        Self {
            durability: Durability::Sync,
            flush_interval: Duration::from_millis(1),
            commit_window: Duration::ZERO,
            window_while: None,
            segment_bytes_max: 64 << 20,
            segment_events_max: 1_000_000,
            segment_age_max: Duration::from_secs(3600),
            max_bytes: 10 << 30,
        }
    }
}

/// Every `SPARSE_EVERY`-th record's offset is kept in memory; a read scans at most this many.
pub const SPARSE_EVERY: u64 = 32;

/// What is known of a sealed segment, so that it need not be scanned at open.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct SegmentSummary {
    pub id: u64,
    pub created_ms: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub last_ts_ms: u64,
    pub count: u64,
    pub end: u64,
    pub sparse: Vec<(u64, u64)>,
    pub lost: Vec<(u64, u64)>,
    /// Corrupt byte ranges `(offset, len)` that reads step over.
    pub bad: Vec<(u64, u64)>,
    /// The distinct record keys in the segment, sorted.
    pub keys: Vec<u64>,
}

/// Where the log keeps its segment table and sequence floor (sled, in the [`crate::Store`]).
pub trait Catalog: Send + Sync + 'static {
    /// The stored summary of sealed segment `id`, if any.
    fn load(&self, id: u64) -> Result<Option<SegmentSummary>>;
    /// Stores the summary of a segment that is sealed and synced.
    fn store(&self, summary: &SegmentSummary) -> Result<()>;
    /// Forgets segment `id` and durably records that sequence numbers below `floor` are used.
    fn retire(&self, id: u64, floor: u64) -> Result<()>;
    /// The lowest sequence number that may be handed out (after retired segments).
    fn floor(&self) -> Result<u64>;
}

/// A catalog that remembers nothing: every open scans every segment.
#[derive(Debug, Default)]
pub struct NoCatalog;

impl Catalog for NoCatalog {
    fn load(&self, _: u64) -> Result<Option<SegmentSummary>> {
        Ok(None)
    }
    fn store(&self, _: &SegmentSummary) -> Result<()> {
        Ok(())
    }
    fn retire(&self, _: u64, _: u64) -> Result<()> {
        Ok(())
    }
    fn floor(&self) -> Result<u64> {
        Ok(1)
    }
}

/// What recovery found and did, for the operator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub segments: usize,
    pub records: u64,
    /// Bytes cut from torn tails (never-acknowledged writes), copied to `quarantine/` first.
    pub truncated: Vec<(u64, u64, u64)>,
    /// Corrupt stretches `(segment, offset, len)` copied to `quarantine/` and skipped.
    pub quarantined: Vec<(u64, u64, u64)>,
    /// Sequence ranges that are missing from the log.
    pub lost: Vec<(u64, u64)>,
    /// Corrupt stretches found by this open and not by an earlier one (also queued for
    /// [`Log::take_corruptions`]).
    pub corruptions: Vec<Corruption>,
}

/// A corrupt stretch of a segment: copied to `quarantine/` and stepped over by every reader.
/// Each is reported once ([`Log::take_corruptions`]), whether recovery or a read found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    pub segment: u64,
    /// Byte offset and length in the segment file (0 and 32: its header, rewritten).
    pub offset: u64,
    pub len: u64,
    /// What was wrong with its first bytes.
    pub reason: String,
    /// The sequence numbers of the records lost in it, when known.
    pub lost: Option<(u64, u64)>,
}

impl std::fmt::Display for Corruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "segment {}: {} bad bytes at offset {} ({})",
            self.segment, self.len, self.offset, self.reason
        )?;
        match self.lost {
            Some((a, b)) if a == b => write!(f, "; record {a} lost"),
            Some((a, b)) => write!(f, "; records {a}..={b} lost"),
            None if self.offset == 0 => write!(f, "; header rewritten, no record lost"),
            None => write!(f, "; the records lost in it are not known"),
        }
    }
}

/// The records lost in a bad stretch between the records `between`, in a segment holding
/// `first..=last` (either end may be unknown).
fn lost_in(
    between: (Option<u64>, Option<u64>),
    first: Option<u64>,
    last: Option<u64>,
) -> Option<(u64, u64)> {
    let from = between.0.map(|s| s + 1).or(first)?;
    let to = match between.1 {
        Some(next) => next.checked_sub(1)?,
        None => last?,
    };
    (from <= to).then_some((from, to))
}

#[derive(Debug)]
struct Seg {
    id: u64,
    path: PathBuf,
    file: SegFile,
    created_ms: u64,
    first_seq: Option<u64>,
    last_seq: Option<u64>,
    last_ts_ms: u64,
    count: u64,
    end: u64,
    sparse: Vec<(u64, u64)>,
    lost: Vec<(u64, u64)>,
    bad: Vec<(u64, u64)>,
    keys: Vec<u64>,
}

impl Seg {
    /// A segment just created, holding only its header.
    fn empty(id: u64, path: PathBuf, file: SegFile, created_ms: u64) -> Self {
        Self {
            id,
            path,
            file,
            created_ms,
            first_seq: None,
            last_seq: None,
            last_ts_ms: 0,
            count: 0,
            end: segment::HEADER_BYTES,
            sparse: Vec::new(),
            lost: Vec::new(),
            bad: Vec::new(),
            keys: Vec::new(),
        }
    }

    fn summary(&self) -> SegmentSummary {
        SegmentSummary {
            id: self.id,
            created_ms: self.created_ms,
            first_seq: self.first_seq,
            last_seq: self.last_seq,
            last_ts_ms: self.last_ts_ms,
            count: self.count,
            end: self.end,
            sparse: self.sparse.clone(),
            lost: self.lost.clone(),
            bad: self.bad.clone(),
            keys: self.keys.clone(),
        }
    }
}

/// A frame in the pending buffer.
#[derive(Debug, Clone, Copy)]
struct PendingFrame {
    seq: u64,
    /// Offset in the pending buffer.
    offset: u64,
    key: u64,
    ts_ms: u64,
}

struct Inner {
    /// Ordered by id; the last one is open for appends.
    segs: Vec<Seg>,
    next_seq: u64,
    /// The last seq written to a segment file (visible to readers).
    written: u64,
    /// The highest seq whose write failed (its waiters learn it at the next flush).
    failed_upto: u64,
    /// Encoded frames not yet written, for the open segment, and where each one starts.
    pending: Vec<u8>,
    pending_frames: Vec<PendingFrame>,
    /// Sealed segments whose tail has not been synced yet, with their summaries.
    unsynced: Vec<(SegFile, SegmentSummary)>,
    spare: Option<(u64, SegFile, PathBuf)>,
    next_id: u64,
    roll_requested: bool,
    broken: Option<String>,
}

struct Shared {
    dir: PathBuf,
    /// Every file operation of the log goes through this ([`crate::fs`]).
    fs: Arc<dyn Fs>,
    opts: LogOptions,
    clock: Arc<dyn Clock>,
    catalog: Arc<dyn Catalog>,
    inner: Mutex<Inner>,
    durable: Arc<Watermark>,
    bytes: AtomicU64,
    unparker: Unparker,
    stop: AtomicBool,
    /// The flusher found nothing to do and may be in its long idle sleep: an `interval`
    /// append (which does not wake it otherwise) wakes it.
    flusher_idle: AtomicBool,
    /// Turns of the flusher's loop: it turns at least every 100 ms while it lives and is not
    /// stuck in a write or an `fdatasync` (a watchdog reads it, [`Log::flusher_beats`]).
    flusher_beats: AtomicU64,
    /// Rolls that found no spare segment ready and created one under the lock.
    rolls_unprepared: AtomicU64,
    flushes: AtomicU64,
    flush_stats: crate::histogram::FlushStats,
    /// Corrupt stretches found and not yet taken, and how many were ever found.
    corruptions: Mutex<Vec<Corruption>>,
    corruptions_found: AtomicU64,
    /// Held while a segment's corrupt stretches are looked for, so that two readers meeting
    /// the same one report it once.
    quarantining: Mutex<()>,
}

/// The segmented log. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct Log {
    shared: Arc<Shared>,
    flusher: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.shared.dir)
            .finish()
    }
}

impl Log {
    /// Opens (or creates) the log in `dir`, recovers it, and starts its flusher thread.
    pub fn open(
        dir: &Path,
        opts: LogOptions,
        clock: Arc<dyn Clock>,
        catalog: Arc<dyn Catalog>,
    ) -> Result<(Self, RecoveryReport)> {
        Self::open_on(RealFs::shared(), dir, opts, clock, catalog)
    }

    /// [`Log::open`] on the file system `fs` (see [`crate::fs`]).
    pub fn open_on(
        fs: Arc<dyn Fs>,
        dir: &Path,
        opts: LogOptions,
        clock: Arc<dyn Clock>,
        catalog: Arc<dyn Catalog>,
    ) -> Result<(Self, RecoveryReport)> {
        let (shared, parker, report) = Self::recover_on(fs, dir, opts, clock, catalog)?;
        let s2 = shared.clone();
        let flusher = std::thread::Builder::new()
            .name("hookd-flusher".into())
            .spawn(move || flusher_loop(&s2, parker))
            .map_err(|e| Error::io("starting the flusher thread", e))?;
        let log = Self {
            shared,
            flusher: Mutex::new(Some(flusher)),
        };
        Ok((log, report))
    }

    /// [`Log::open_on`] without a flusher thread: the caller turns the flusher's loop with
    /// [`Log::step_flusher`], so that one thread drives everything and a seeded run on a
    /// simulated disk replays exactly. For tests.
    pub fn open_stepped(
        fs: Arc<dyn Fs>,
        dir: &Path,
        opts: LogOptions,
        clock: Arc<dyn Clock>,
        catalog: Arc<dyn Catalog>,
    ) -> Result<(Self, RecoveryReport)> {
        let (shared, _, report) = Self::recover_on(fs, dir, opts, clock, catalog)?;
        let log = Self {
            shared,
            flusher: Mutex::new(None),
        };
        Ok((log, report))
    }

    /// One turn of the flusher's work, on the calling thread (a log from
    /// [`Log::open_stepped`]): writes what is pending, syncs, advances or fails the durable
    /// watermark, and makes the spare segment when there is none. Never sleeps.
    pub fn step_flusher(&self) {
        let sh = &*self.shared;
        flush_once(sh);
        if lock(&sh.inner).spare.is_none() {
            let _ = make_spare(sh);
        }
    }

    fn recover_on(
        fs: Arc<dyn Fs>,
        dir: &Path,
        opts: LogOptions,
        clock: Arc<dyn Clock>,
        catalog: Arc<dyn Catalog>,
    ) -> Result<(Arc<Shared>, Parker, RecoveryReport)> {
        let quarantine = dir.join("quarantine");
        for d in [dir, &quarantine] {
            fs.create_dir_all(d)
                .map_err(|e| Error::io(format!("creating {}", d.display()), e))?;
        }
        let (segs, report) = recover(&*fs, dir, &quarantine, catalog.as_ref(), clock.now_ms())?;
        let last_seq = segs.iter().filter_map(|s| s.last_seq).max().unwrap_or(0);
        let next_seq = (last_seq + 1).max(catalog.floor()?);
        let next_id = segs.last().map_or(1, |s| s.id + 1);
        let bytes = segs.iter().map(|s| s.end).sum();
        let parker = Parker::new();
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            fs,
            clock,
            catalog,
            inner: Mutex::new(Inner {
                segs,
                next_seq,
                written: next_seq - 1,
                failed_upto: 0,
                pending: Vec::with_capacity(64 << 10),
                pending_frames: Vec::new(),
                unsynced: Vec::new(),
                spare: None,
                next_id,
                roll_requested: false,
                broken: None,
            }),
            durable: Arc::new(Watermark::new(next_seq - 1)),
            bytes: AtomicU64::new(bytes),
            unparker: parker.unparker().clone(),
            stop: AtomicBool::new(false),
            flusher_idle: AtomicBool::new(false),
            flusher_beats: AtomicU64::new(0),
            rolls_unprepared: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            flush_stats: Default::default(),
            corruptions_found: AtomicU64::new(report.corruptions.len() as u64),
            corruptions: Mutex::new(report.corruptions.clone()),
            quarantining: Mutex::new(()),
            opts,
        });
        Ok((shared, parker, report))
    }

    /// Appends a batch of payloads under key 0; see [`Log::append_keyed`].
    pub fn append(&self, payloads: &[&[u8]]) -> Result<u64> {
        self.append_keyed(0, payloads)
    }

    /// Appends a batch of payloads under partition `key`; returns the sequence number of the
    /// first (the rest follow densely). Acknowledge in `sync` mode only after [`Log::durable`]
    /// has passed the last one.
    pub fn append_keyed(&self, key: u64, payloads: &[&[u8]]) -> Result<u64> {
        if payloads.is_empty() {
            return Ok(self.next_seq());
        }
        let sh = &*self.shared;
        let mut guard = self.lock();
        // Read under the lock, so that timestamps never decrease along the sequence.
        let now = sh.clock.now_ms();
        let inner = &mut *guard;
        if let Some(why) = &inner.broken {
            return Err(Error::Io {
                context: "log is unusable after a failed write".into(),
                source: std::io::Error::other(why.clone()),
            });
        }
        if sh.stop.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let first = inner.next_seq;
        // Frames go to the pending buffer; in `sync` mode the flusher writes it (one `pwrite`
        // per flush instead of one per append), in `interval` mode it is written right here.
        let start_len = inner.pending.len();
        for (i, p) in payloads.iter().enumerate() {
            let seq = first + i as u64;
            inner.pending_frames.push(PendingFrame {
                seq,
                offset: inner.pending.len() as u64,
                key,
                ts_ms: now,
            });
            let rec = LogRecord {
                seq,
                ts_ms: now,
                key,
                payload: p,
            };
            if let Err(e) = codec::encode_frame(&rec, &mut inner.pending) {
                inner.pending.truncate(start_len);
                inner.pending_frames.retain(|f| f.seq < first);
                return Err(e);
            }
        }
        let len = (inner.pending.len() - start_len) as u64;
        let used = sh.bytes.load(Ordering::Relaxed);
        if sh.opts.max_bytes > 0 && used + len > sh.opts.max_bytes {
            inner.pending.truncate(start_len);
            inner.pending_frames.retain(|f| f.seq < first);
            return Err(Error::OverCapacity {
                used,
                max: sh.opts.max_bytes,
            });
        }
        let open = inner
            .segs
            .last()
            .expect("the log always has an open segment");
        let age = Duration::from_millis(now.saturating_sub(open.created_ms));
        let queued = inner.pending_frames.len() as u64 - payloads.len() as u64;
        if open.count + queued > 0
            && (inner.roll_requested
                || open.count + queued + payloads.len() as u64 > sh.opts.segment_events_max
                || open.end + inner.pending.len() as u64 > sh.opts.segment_bytes_max
                || age >= sh.opts.segment_age_max)
        {
            // The new frames move to the next segment; what was queued before stays here.
            let mine = inner.pending.split_off(start_len);
            let frames = inner
                .pending_frames
                .split_off(inner.pending_frames.len() - payloads.len());
            self.roll(inner, now)?;
            inner.pending = mine;
            inner.pending_frames = frames;
            for f in &mut inner.pending_frames {
                f.offset -= start_len as u64;
            }
        }
        let last = first + payloads.len() as u64 - 1;
        inner.next_seq = last + 1;
        sh.bytes.fetch_add(len, Ordering::Relaxed);
        if sh.opts.durability == Durability::Interval {
            if let Err((e, _)) = write_pending(sh, inner) {
                return Err(e);
            }
            drop(guard);
            if sh.flusher_idle.swap(false, Ordering::AcqRel) {
                sh.unparker.unpark();
            }
            return Ok(first);
        }
        drop(guard);
        sh.unparker.unpark();
        Ok(first)
    }

    fn roll(&self, inner: &mut Inner, now: u64) -> Result<()> {
        let sh = &*self.shared;
        // What is queued for the old segment goes there first. If that write fails, its
        // waiters learn it as `FlushFailed` at the next flush.
        if let Err((e, (a, b))) = write_pending(sh, inner) {
            sh.durable.record_failure_because(a, b, &e);
        }
        let (id, file, path) = match inner.spare.take() {
            Some(spare) => spare,
            None => {
                sh.rolls_unprepared.fetch_add(1, Ordering::Relaxed);
                let id = inner.next_id;
                let (file, path) = segment::create_on(&*sh.fs, &sh.dir, id, now)?;
                (id, file, path)
            }
        };
        inner.next_id = inner.next_id.max(id + 1);
        let old = inner.segs.last().expect("open segment");
        inner.unsynced.push((old.file.clone(), old.summary()));
        inner.segs.push(Seg::empty(id, path, file, now));
        sh.bytes.fetch_add(segment::HEADER_BYTES, Ordering::Relaxed);
        inner.roll_requested = false;
        sh.unparker.unpark(); // make a new spare
        Ok(())
    }

    /// Seals the open segment now (if it holds anything) and starts a new one.
    pub fn roll_now(&self) -> Result<()> {
        let now = self.shared.clock.now_ms();
        let mut inner = self.lock();
        if inner.segs.last().is_some_and(|s| s.count > 0) || !inner.pending_frames.is_empty() {
            self.roll(&mut inner, now)?;
        }
        Ok(())
    }

    /// The durable watermark: wait on it for "my sequence is on disk".
    pub fn durable(&self) -> &Arc<Watermark> {
        &self.shared.durable
    }

    /// Turns of the flusher thread's loop so far: a counter that stops moving means the
    /// flusher is stuck (a hung write or `fdatasync`) or gone.
    pub fn flusher_beats(&self) -> u64 {
        self.shared.flusher_beats.load(Ordering::Relaxed)
    }

    /// Rolls so far that found no spare segment ready, so that the appending thread created
    /// (and synced) one while holding the log's lock. The flusher keeps one ready; this stays
    /// 0 unless rolls come faster than flushes.
    pub fn rolls_unprepared(&self) -> u64 {
        self.shared.rolls_unprepared.load(Ordering::Relaxed)
    }

    /// How appends are acknowledged.
    pub fn durability(&self) -> Durability {
        self.shared.opts.durability
    }

    /// The sequence number the next append will get.
    pub fn next_seq(&self) -> u64 {
        self.lock().next_seq
    }

    /// The lowest sequence number still in the log (the first of the oldest segment).
    pub fn first_seq(&self) -> u64 {
        let inner = self.lock();
        inner
            .segs
            .iter()
            .find_map(|s| s.first_seq)
            .unwrap_or(inner.next_seq)
    }

    /// Bytes the log's segments take on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.shared.bytes.load(Ordering::Relaxed)
    }

    /// Number of flushes made so far.
    pub fn flush_count(&self) -> u64 {
        self.shared.flushes.load(Ordering::Relaxed)
    }

    /// Latency and batch-size histograms of the flusher's group commits.
    pub fn flush_stats(&self) -> &crate::histogram::FlushStats {
        &self.shared.flush_stats
    }

    /// Number of segments, the open one included.
    pub fn segment_count(&self) -> usize {
        self.lock().segs.len()
    }

    /// Reads the record with sequence `seq`. `Ok(None)` if it was never written or has been
    /// retired; [`Error::Quarantined`] if recovery found it corrupt.
    pub fn read(&self, seq: u64) -> Result<Option<Record>> {
        let mut cur = {
            let inner = self.lock();
            if seq >= inner.next_seq {
                return Ok(None);
            }
            let Some(seg) = inner
                .segs
                .iter()
                .find(|s| s.first_seq.is_some_and(|f| f <= seq) && s.last_seq >= Some(seq))
            else {
                let lost = inner.segs.iter().flat_map(|s| &s.lost);
                return match lost.into_iter().any(|&(a, b)| a <= seq && seq <= b) {
                    true => Err(Error::Quarantined { seq }),
                    false => Ok(None),
                };
            };
            Cursor::at(seg, seq)
        };
        let end = cur.end;
        while let Some(rec) = self.next_in(&mut cur, end)? {
            if rec.seq >= seq {
                return if rec.seq == seq {
                    Ok(Some(rec))
                } else {
                    Err(Error::Quarantined { seq })
                };
            }
        }
        Err(Error::Quarantined { seq })
    }

    /// Iterates records from `seq` on, skipping retired and quarantined ones, up to the last
    /// record written when each segment is reached.
    pub fn iter_from(&self, seq: u64) -> Iter<'_> {
        Iter {
            log: self,
            next: seq,
            cur: None,
            stuck: None,
        }
    }

    /// Visits the records with `key`, newest first, below sequence `before` (all when `None`),
    /// until `visit` returns false or about `budget` records have been read. Segments without
    /// the key are skipped unread. Tells where it stopped, so that a caller can resume.
    pub fn scan_back(
        &self,
        key: u64,
        before: Option<u64>,
        budget: usize,
        visit: impl FnMut(Record) -> bool,
    ) -> Result<ScanEnd> {
        self.scan_back_within(key, before, budget, None, visit)
    }

    /// [`Log::scan_back`], also stopping ([`ScanEnd::Budget`]) once `deadline` has passed and
    /// at least 1,024 records were read, checked between chunks of the segment index (a few
    /// dozen records): a caller on a thread that serves others bounds its time, not only its
    /// reads.
    pub fn scan_back_within(
        &self,
        key: u64,
        before: Option<u64>,
        budget: usize,
        deadline: Option<std::time::Instant>,
        mut visit: impl FnMut(Record) -> bool,
    ) -> Result<ScanEnd> {
        let before = before.unwrap_or(u64::MAX);
        // A cursor and the (seq, offset) chunk starts of each segment with the key, newest
        // first.
        let segs: Vec<(Cursor, Vec<(u64, u64)>)> = {
            let inner = self.lock();
            inner
                .segs
                .iter()
                .rev()
                .filter(|s| s.keys.binary_search(&key).is_ok())
                .filter_map(|s| Some((s, s.first_seq?)))
                .filter(|(_, first)| *first < before)
                .map(|(s, first)| (Cursor::at(s, first).streaming(), s.sparse.clone()))
                .collect()
        };
        let mut read = 0usize;
        for (mut cur, sparse) in segs {
            let end = cur.end;
            // Chunks between sparse points, newest first; each is read forwards, then
            // visited backwards.
            let starts: Vec<(u64, u64)> = sparse.into_iter().filter(|&(s, _)| s < before).collect();
            for (i, &(chunk_seq, off)) in starts.iter().enumerate().rev() {
                let chunk_end = starts.get(i + 1).map_or(end, |n| n.1);
                cur.pos = off;
                let mut chunk = Vec::new();
                while cur.pos < chunk_end {
                    match self.next_in(&mut cur, chunk_end)? {
                        Some(r) => {
                            read += 1;
                            if r.key == key && r.seq < before {
                                chunk.push(r);
                            }
                        }
                        None => break,
                    }
                }
                for r in chunk.into_iter().rev() {
                    let seq = r.seq;
                    if !visit(r) {
                        return Ok(ScanEnd::Stopped { at: seq });
                    }
                }
                let late = read >= SCAN_READS_BEFORE_DEADLINE
                    && deadline.is_some_and(|d| std::time::Instant::now() >= d);
                if read >= budget || late {
                    return Ok(ScanEnd::Budget { before: chunk_seq });
                }
            }
        }
        Ok(ScanEnd::Start)
    }

    /// Removes sealed segments, oldest first, while their newest record is older than
    /// `older_than_ms` and every record in them is below `keep_from_seq`. Returns the ids removed.
    pub fn retire(&self, older_than_ms: u64, keep_from_seq: u64) -> Result<Vec<u64>> {
        let mut removed = Vec::new();
        loop {
            let victim = {
                let inner = self.lock();
                let unsynced: Vec<u64> = inner.unsynced.iter().map(|u| u.1.id).collect();
                match inner.segs.split_last() {
                    Some((_, sealed)) if !sealed.is_empty() => {
                        let s = &sealed[0];
                        let old = s.count == 0 || s.last_ts_ms < older_than_ms;
                        let done = s.last_seq.is_none_or(|l| l < keep_from_seq);
                        (old && done && !unsynced.contains(&s.id))
                            .then(|| (s.id, s.path.clone(), s.last_seq, s.end))
                    }
                    _ => None,
                }
            };
            let Some((id, path, last_seq, end)) = victim else {
                break;
            };
            let floor = last_seq.map_or(0, |l| l + 1);
            self.shared.catalog.retire(id, floor)?;
            {
                let mut inner = self.lock();
                inner.segs.retain(|s| s.id != id);
            }
            self.shared.bytes.fetch_sub(end, Ordering::Relaxed);
            (self.shared.fs)
                .remove_file(&path)
                .map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
            removed.push(id);
        }
        if !removed.is_empty() {
            segment::sync_dir_on(&*self.shared.fs, &self.shared.dir)?;
        }
        Ok(removed)
    }

    /// Stops the flusher after a last flush. Waiters still pending get [`Error::Closed`].
    pub fn close(&self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.unparker.unpark();
        if let Some(h) = self
            .flusher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = h.join();
        }
        self.shared.durable.close();
    }

    /// Reads every segment sealed when called, oldest first, record by record, so that a
    /// corrupt stretch in one is found (quarantined, reported) without waiting for a reader
    /// to meet it: sealed segments are not read at open. Sleeps `pause` after each segment and
    /// stops early once `stop` is set. Returns the segments and records read.
    pub fn check_sealed(&self, pause: Duration, stop: &AtomicBool) -> Result<(usize, u64)> {
        let ids: Vec<u64> = {
            let inner = self.lock();
            let sealed = inner.segs.len().saturating_sub(1);
            inner.segs[..sealed].iter().map(|s| s.id).collect()
        };
        let (mut segments, mut records) = (0, 0);
        for id in ids {
            let cursor = {
                let inner = self.lock();
                let seg = inner.segs.iter().find(|s| s.id == id);
                seg.and_then(|s| Some(Cursor::at(s, s.first_seq?).streaming()))
            };
            // Retired meanwhile, or empty.
            let Some(mut cur) = cursor else { continue };
            let end = cur.end;
            while self.next_in(&mut cur, end)?.is_some() {
                records += 1;
                if stop.load(Ordering::Relaxed) {
                    return Ok((segments, records));
                }
            }
            segments += 1;
            std::thread::sleep(pause);
        }
        Ok((segments, records))
    }

    /// Corrupt stretches found since the last call (by recovery or by a read), each once.
    pub fn take_corruptions(&self) -> Vec<Corruption> {
        std::mem::take(&mut *lock(&self.shared.corruptions))
    }

    /// How many corrupt stretches were found since the log was opened (recovery included).
    pub fn corruptions_found(&self) -> u64 {
        self.shared.corruptions_found.load(Ordering::Relaxed)
    }

    /// The cursor's next record before `end`. A frame that does not decode costs that frame
    /// alone: its segment's corrupt stretches are found and quarantined
    /// ([`Log::quarantine_stretches`]) and the cursor steps over them.
    fn next_in(&self, cur: &mut Cursor, end: u64) -> Result<Option<Record>> {
        loop {
            match cur.next_record(end) {
                Err(e @ Error::Corrupt { .. }) => {
                    let bad = self.quarantine_stretches(cur.seg_id)?;
                    if !bad.iter().any(|&(o, l)| o <= cur.pos && cur.pos < o + l) {
                        // Not where the segment's scan finds a bad stretch: give up here.
                        return Err(e);
                    }
                    cur.bad = bad;
                }
                other => return other,
            }
        }
    }

    /// Scans segment `id` whole, as recovery does, and makes every corrupt stretch in its
    /// written part known: copied to `quarantine/`, stepped over by readers from now on,
    /// kept in its summary (sealed segments), and reported once. Returns its bad ranges.
    fn quarantine_stretches(&self, id: u64) -> Result<Vec<(u64, u64)>> {
        let sh = &*self.shared;
        let _one_at_a_time = lock(&sh.quarantining);
        let (path, file, end, first, last) = {
            let inner = self.lock();
            let Some(seg) = inner.segs.iter().find(|s| s.id == id) else {
                return Ok(Vec::new()); // retired meanwhile
            };
            let file = seg.file.clone();
            (seg.path.clone(), file, seg.end, seg.first_seq, seg.last_seq)
        };
        let scan = segment::scan_on(&*sh.fs, &path, SPARSE_EVERY)?;
        let quarantine = sh.dir.join("quarantine");
        let mut found = Vec::new();
        // What lies past the last whole frame is corrupt too: these bytes were written whole.
        for b in scan.bad.iter().chain(scan.tail.iter()) {
            if b.offset >= end {
                continue;
            }
            let len = b.len.min(end - b.offset);
            let new = copy_aside(&*sh.fs, &*file, &path, id, b.offset, len, &quarantine)?;
            found.push((b.offset, len, new, b));
        }
        let mut inner = self.lock();
        let is_open = inner.segs.last().is_some_and(|s| s.id == id);
        let Some(seg) = inner.segs.iter_mut().find(|s| s.id == id) else {
            return Ok(Vec::new());
        };
        let mut reports = Vec::new();
        for &(offset, len, new, b) in &found {
            if seg.bad.iter().any(|&(o, _)| o == offset) {
                continue;
            }
            seg.bad.push((offset, len));
            let lost = lost_in(b.between, first, last);
            if let Some(l) = lost {
                seg.lost.push(l);
            }
            if new {
                reports.push(Corruption {
                    segment: id,
                    offset,
                    len,
                    reason: b.reason.clone(),
                    lost,
                });
            }
        }
        seg.bad.sort_unstable();
        seg.lost.sort_unstable();
        let bad = seg.bad.clone();
        if !is_open {
            // Only saves a scan at the next open; losing it is harmless.
            let _ = sh.catalog.store(&seg.summary());
        }
        drop(inner);
        sh.corruptions_found
            .fetch_add(reports.len() as u64, Ordering::Relaxed);
        lock(&sh.corruptions).extend(reports);
        Ok(bad)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.shared.inner)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Drop for Log {
    fn drop(&mut self) {
        self.close();
    }
}

/// Where [`Log::scan_back`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanEnd {
    /// The visitor said stop, at this record.
    Stopped { at: u64 },
    /// The read budget ran out; resume below `before`.
    Budget { before: u64 },
    /// Nothing older is left.
    Start,
}

/// A read position inside one segment.
struct Cursor {
    seg_id: u64,
    file: SegFile,
    path: PathBuf,
    pos: u64,
    end: u64,
    bad: Vec<(u64, u64)>,
    /// Bytes read ahead, starting at file offset `buf_at`.
    buf: Vec<u8>,
    buf_at: u64,
    read_ahead: usize,
}

impl Cursor {
    /// Positioned at the nearest sparse entry at or before `seq` in `seg`.
    fn at(seg: &Seg, seq: u64) -> Self {
        let at = seg.sparse.partition_point(|&(s, _)| s <= seq);
        let pos = match at {
            0 => segment::HEADER_BYTES,
            n => seg.sparse[n - 1].1,
        };
        Self {
            seg_id: seg.id,
            file: seg.file.clone(),
            path: seg.path.clone(),
            pos,
            end: seg.end,
            bad: seg.bad.clone(),
            buf: Vec::new(),
            buf_at: 0,
            read_ahead: READ_AHEAD_ONE,
        }
    }

    /// Reads ahead in large blocks: for scans, not for one record.
    fn streaming(mut self) -> Self {
        self.read_ahead = READ_AHEAD_SCAN;
        self
    }

    /// The next record before `end`, stepping over quarantined ranges. Frames are decoded
    /// from a read-ahead buffer, so a scan makes one `pread` per block, not two per record.
    fn next_record(&mut self, end: u64) -> Result<Option<Record>> {
        while let Some(&(off, len)) = self
            .bad
            .iter()
            .find(|&&(off, len)| off <= self.pos && self.pos < off + len)
        {
            self.pos = off + len;
        }
        if self.pos >= end {
            return Ok(None);
        }
        let mut want = FRAME_HEADER_MIN;
        loop {
            let stale = self.pos < self.buf_at
                || self.pos - self.buf_at + want as u64 > self.buf.len() as u64;
            if stale {
                let len = (end - self.pos).min(self.read_ahead.max(want) as u64) as usize;
                self.buf.resize(len, 0);
                self.file
                    .read_exact_at(&mut self.buf, self.pos)
                    .map_err(|e| {
                        Error::io(
                            format!("reading {} at offset {}", self.path.display(), self.pos),
                            e,
                        )
                    })?;
                self.buf_at = self.pos;
            }
            let start = (self.pos - self.buf_at) as usize;
            let location = || format!("{} at offset {}", self.path.display(), self.pos);
            match codec::decode_frame(&self.buf[start..])? {
                codec::Frame::Whole { rec, len } => {
                    let rec = Record {
                        seq: rec.seq,
                        ts_ms: rec.ts_ms,
                        key: rec.key,
                        payload: rec.payload.to_vec(),
                    };
                    self.pos += len as u64;
                    return Ok(Some(rec));
                }
                codec::Frame::Partial => {
                    let buffered = self.buf.len() - start;
                    let need = codec::frame_len(&self.buf[start..])
                        .unwrap_or(want * 2)
                        .max(buffered + 1);
                    if self.pos + need as u64 > end {
                        return Err(Error::Corrupt {
                            location: location(),
                            reason: "frame runs past the end of the written data".into(),
                        });
                    }
                    want = need;
                    self.buf_at = u64::MAX; // force a fresh read of at least `want`
                }
                codec::Frame::Bad { reason } => {
                    return Err(Error::Corrupt {
                        location: location(),
                        reason,
                    })
                }
            }
        }
    }
}

/// The longest the idle flusher sleeps between turns of its loop (it counts them for a
/// watchdog, [`Log::flusher_beats`]).
const FLUSHER_NAP_MAX: Duration = Duration::from_millis(100);
/// How long the flusher waits before trying again to make a spare segment that it could not.
const SPARE_RETRY: Duration = Duration::from_millis(100);
/// Records a scan reads before its deadline can stop it ([`Log::scan_back_within`]): a
/// small scan always finishes, however slow the machine is at that moment.
const SCAN_READS_BEFORE_DEADLINE: usize = 1024;
/// Read-ahead for a single record, and for scans.
const READ_AHEAD_ONE: usize = 4 << 10;
const READ_AHEAD_SCAN: usize = 64 << 10;
/// The smallest read that can hold a frame header.
const FRAME_HEADER_MIN: usize = codec::FRAME_HEADER_BYTES;

/// Iterator returned by [`Log::iter_from`].
pub struct Iter<'a> {
    log: &'a Log,
    next: u64,
    cur: Option<Cursor>,
    /// The segment a cursor was last opened in without yielding a record since.
    stuck: Option<u64>,
}

impl Iterator for Iter<'_> {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        loop {
            if let Some(cur) = &mut self.cur {
                let (end, last) = {
                    let inner = self.log.lock();
                    let seg = inner.segs.iter().find(|s| s.id == cur.seg_id);
                    (seg.map(|s| s.end), seg.and_then(|s| s.last_seq))
                };
                match end.map(|end| self.log.next_in(cur, end)) {
                    Some(Ok(Some(rec))) if rec.seq < self.next => continue,
                    Some(Ok(Some(rec))) => {
                        self.stuck = None;
                        self.next = rec.seq + 1;
                        return Some(Ok(rec));
                    }
                    Some(Err(e)) => {
                        self.cur = None;
                        return Some(Err(e));
                    }
                    // The segment is exhausted (what it holds up to `last` was read or
                    // stepped over as corrupt) or was retired: move on.
                    Some(Ok(None)) | None => {
                        self.cur = None;
                        if let Some(last) = last {
                            self.stuck = None;
                            self.next = self.next.max(last + 1);
                        }
                    }
                }
            }
            let inner = self.log.lock();
            let seg = inner
                .segs
                .iter()
                .find(|s| s.last_seq.is_some_and(|l| l >= self.next))?;
            if self.stuck == Some(seg.id) {
                // A fresh cursor found nothing where the index says records are.
                let last = seg.last_seq.unwrap_or(self.next);
                let err = Error::Corrupt {
                    location: seg.path.display().to_string(),
                    reason: format!("records {}..={last} not found", self.next),
                };
                self.next = last + 1;
                return Some(Err(err));
            }
            self.stuck = Some(seg.id);
            self.cur = Some(Cursor::at(seg, self.next).streaming());
        }
    }
}

fn flusher_loop(sh: &Shared, parker: Parker) {
    let mut last_start = Instant::now() - sh.opts.commit_window;
    loop {
        sh.flusher_beats.fetch_add(1, Ordering::Relaxed);
        let stopping = sh.stop.load(Ordering::Acquire);
        // Idle until shown otherwise: set before looking, so that an append after the look
        // finds it set and wakes this thread.
        sh.flusher_idle.store(true, Ordering::Release);
        let (pending, need_spare, age_roll) = {
            let inner = sh.inner.lock().unwrap_or_else(|e| e.into_inner());
            let open = inner.segs.last().expect("open segment");
            let age = sh.clock.now_ms().saturating_sub(open.created_ms);
            (
                inner.written.max(inner.failed_upto) > sh.durable.get()
                    || !inner.pending.is_empty()
                    || !inner.unsynced.is_empty(),
                inner.spare.is_none(),
                open.count > 0 && age >= sh.opts.segment_age_max.as_millis() as u64,
            )
        };
        if pending {
            sh.flusher_idle.store(false, Ordering::Release);
            match sh.opts.durability {
                Durability::Sync => {
                    let since = last_start.elapsed();
                    let paced = sh
                        .opts
                        .window_while
                        .as_ref()
                        .is_none_or(|n| n.load(Ordering::Relaxed) > 0);
                    if paced && since < sh.opts.commit_window && !stopping {
                        std::thread::sleep(sh.opts.commit_window - since);
                    }
                }
                Durability::Interval => {
                    if !stopping {
                        parker.park_timeout(sh.opts.flush_interval);
                    }
                }
            }
            last_start = Instant::now();
            flush_once(sh);
            // Under steady ingest there is always something to flush: the next segment is
            // made here too, so that the roll that needs it finds it ready and no appender
            // creates and syncs a file under the lock.
            if need_spare && !stopping && !make_spare(sh) {
                std::thread::sleep(SPARE_RETRY);
            }
            continue;
        }
        if stopping {
            return;
        }
        if need_spare {
            if !make_spare(sh) {
                std::thread::sleep(SPARE_RETRY);
            }
            continue;
        }
        if age_roll {
            let mut inner = sh.inner.lock().unwrap_or_else(|e| e.into_inner());
            inner.roll_requested = true;
        }
        parker.park_timeout(FLUSHER_NAP_MAX);
    }
}

/// Writes the pending frames at the end of the open segment and makes them visible. On
/// failure the file is cut back, the frames are dropped (their sequence numbers stay unused,
/// and the log rolls so the gap falls between segments), and the failed range is returned.
fn write_pending(sh: &Shared, inner: &mut Inner) -> std::result::Result<(), (Error, (u64, u64))> {
    let (Some(first), Some(last)) = (inner.pending_frames.first(), inner.pending_frames.last())
    else {
        return Ok(());
    };
    let range = (first.seq, last.seq);
    let open = inner.segs.last_mut().expect("open segment");
    if let Err(e) = open.file.write_all_at(&inner.pending, open.end) {
        if let Err(t) = open.file.set_len(open.end) {
            inner.broken = Some(format!("truncate after failed write: {t}"));
        }
        let err = Error::io(format!("appending to {}", open.path.display()), e);
        sh.bytes
            .fetch_sub(inner.pending.len() as u64, Ordering::Relaxed);
        inner.pending.clear();
        inner.pending_frames.clear();
        inner.roll_requested = true;
        inner.failed_upto = inner.failed_upto.max(range.1);
        return Err((err, range));
    }
    for f in &inner.pending_frames {
        if open.count % SPARSE_EVERY == 0 {
            open.sparse.push((f.seq, open.end + f.offset));
        }
        open.count += 1;
        open.first_seq.get_or_insert(f.seq);
        if let Err(at) = open.keys.binary_search(&f.key) {
            open.keys.insert(at, f.key);
        }
        open.last_ts_ms = f.ts_ms;
    }
    open.last_seq = Some(range.1);
    open.end += inner.pending.len() as u64;
    inner.written = range.1;
    inner.pending.clear();
    inner.pending_frames.clear();
    Ok(())
}

fn flush_once(sh: &Shared) {
    let (target, files, sealed) = {
        let mut inner = sh.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Err((e, (a, b))) = write_pending(sh, &mut inner) {
            sh.durable.record_failure_because(a, b, &e);
        }
        let sealed = std::mem::take(&mut inner.unsynced);
        let mut files: Vec<SegFile> = sealed.iter().map(|(f, _)| f.clone()).collect();
        files.push(inner.segs.last().expect("open segment").file.clone());
        (inner.written.max(inner.failed_upto), files, sealed)
    };
    let from = sh.durable.get() + 1;
    let synced_at = Instant::now();
    let ok = files.iter().all(|f| f.sync_data().is_ok());
    sh.flushes.fetch_add(1, Ordering::Relaxed);
    sh.flush_stats
        .flushed(synced_at.elapsed(), (target + 1).saturating_sub(from));
    if ok {
        sh.durable.advance(target);
        for (_, summary) in &sealed {
            // The summary only saves a scan at the next open; losing it is harmless.
            let _ = sh.catalog.store(summary);
        }
    } else {
        sh.durable.fail(from, target);
        let mut inner = sh.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.roll_requested = true;
    }
}

/// Creates the spare segment; false if that failed (the flusher tries again later).
fn make_spare(sh: &Shared) -> bool {
    // Reserve the id under the lock, so that a roll that cannot wait for the spare creates a
    // different one; a spare that lost the race is deleted, and nobody else uses its id.
    let id = {
        let mut inner = sh.inner.lock().unwrap_or_else(|e| e.into_inner());
        let id = inner.next_id;
        inner.next_id += 1;
        id
    };
    match segment::create_on(&*sh.fs, &sh.dir, id, sh.clock.now_ms()) {
        Ok((file, path)) => {
            let mut inner = sh.inner.lock().unwrap_or_else(|e| e.into_inner());
            if inner.spare.is_none() && inner.next_id == id + 1 {
                inner.spare = Some((id, file, path));
            } else {
                drop(inner);
                let _ = sh.fs.remove_file(&path);
            }
            true
        }
        // Disk full or similar: try again later; a roll meanwhile creates its own segment.
        Err(_) => false,
    }
}

/// Reads every segment in `dir`, repairs torn tails, quarantines what does not decode.
fn recover(
    fs: &dyn Fs,
    dir: &Path,
    quarantine: &Path,
    catalog: &dyn Catalog,
    now_ms: u64,
) -> Result<(Vec<Seg>, RecoveryReport)> {
    let mut ids = Vec::new();
    let names = fs
        .list(dir)
        .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    for name in names {
        if let Some(id) = segment::parse_file_name(&name) {
            ids.push(id);
        } else if name.ends_with(".log.tmp") {
            let _ = fs.remove_file(&dir.join(name)); // a spare that never finished
        }
    }
    ids.sort_unstable();
    let mut report = RecoveryReport::default();
    let mut segs: Vec<Seg> = Vec::new();
    for (i, &id) in ids.iter().enumerate() {
        let path = dir.join(segment::file_name(id));
        let ctx = || format!("opening {}", path.display());
        let file = fs.open(&path).map_err(|e| Error::io(ctx(), e))?;
        let len = file.size().map_err(|e| Error::io(ctx(), e))?;
        let is_last = i + 1 == ids.len();
        let known = if is_last { None } else { catalog.load(id)? };
        let prev_last = segs.iter().rev().find_map(|s| s.last_seq);
        let summary = match known {
            Some(s) if s.end == len => {
                check_header(fs, &*file, &path, &s, quarantine, &mut report)?;
                s
            }
            _ => match segment::scan_on(fs, &path, SPARSE_EVERY) {
                Ok(scan) => {
                    let summary =
                        summarize(fs, &*file, &path, scan, prev_last, quarantine, &mut report)?;
                    // What was read may sit only in the page cache (the process died, the
                    // machine did not), and sequence numbers are handed out after it: make it
                    // durable, so that a power cut cannot take it back, nor bring back what
                    // it no longer holds (a write cut back after it failed).
                    file.sync_data()
                        .map_err(|e| Error::io(format!("syncing {}", path.display()), e))?;
                    if !is_last {
                        // Sealed: the next open need not read it again (nor report its
                        // stretches again). Only saves work; losing it is harmless.
                        let _ = catalog.store(&summary);
                    }
                    summary
                }
                Err(Error::Corrupt { .. }) => {
                    // A segment whose header is unreadable: move the whole file aside.
                    let to = quarantine.join(segment::file_name(id));
                    fs.rename(&path, &to).map_err(|e| Error::io(ctx(), e))?;
                    report.quarantined.push((id, 0, len));
                    continue;
                }
                Err(e) => return Err(e),
            },
        };
        if let (Some(prev), Some(first)) = (prev_last, summary.first_seq) {
            if first <= prev {
                return Err(Error::Corrupt {
                    location: path.display().to_string(),
                    reason: format!("starts at sequence {first}, not after {prev}"),
                });
            }
            if first > prev + 1 {
                report.lost.push((prev + 1, first - 1));
            }
        }
        report.lost.extend(summary.lost.iter().copied());
        report.records += summary.count;
        segs.push(Seg {
            id,
            path,
            file,
            created_ms: summary.created_ms,
            first_seq: summary.first_seq,
            last_seq: summary.last_seq,
            last_ts_ms: summary.last_ts_ms,
            count: summary.count,
            end: summary.end,
            sparse: summary.sparse,
            lost: summary.lost,
            bad: summary.bad,
            keys: summary.keys,
        });
    }
    if segs.is_empty() {
        let id = ids.last().map_or(1, |l| l + 1);
        let (file, path) = segment::create_on(fs, dir, id, now_ms)?;
        segs.push(Seg::empty(id, path, file, now_ms));
    }
    // Likewise the directory: a segment whose entry was never synced (its creation failed at
    // the directory fsync) must not take records and then vanish in a power cut.
    segment::sync_dir_on(fs, dir)?;
    report.segments = segs.len();
    Ok((segs, report))
}

/// Turns a scan into a summary, copying bad bytes to `quarantine/` and cutting a torn tail.
/// `prev_last` is the last sequence number of the segments before it.
fn summarize(
    fs: &dyn Fs,
    file: &dyn FsFile,
    path: &Path,
    scan: segment::Scan,
    prev_last: Option<u64>,
    quarantine: &Path,
    report: &mut RecoveryReport,
) -> Result<SegmentSummary> {
    let id = scan.header.id;
    if let Some(bad) = &scan.header_bad {
        repair_header(fs, file, path, scan.header, bad, quarantine, report)?;
    }
    if let Some(tail) = &scan.tail {
        copy_aside(fs, file, path, id, tail.offset, tail.len, quarantine)?;
    }
    for bad in &scan.bad {
        report.quarantined.push((id, bad.offset, bad.len));
        if copy_aside(fs, file, path, id, bad.offset, bad.len, quarantine)? {
            report.corruptions.push(Corruption {
                segment: id,
                offset: bad.offset,
                len: bad.len,
                reason: bad.reason.clone(),
                lost: lost_in(bad.between, prev_last.map(|p| p + 1), None),
            });
        }
    }
    if let Some(tail) = &scan.tail {
        file.set_len(scan.valid_end)
            .and_then(|_| file.sync_all())
            .map_err(|e| Error::io(format!("truncating torn tail of {}", path.display()), e))?;
        report.truncated.push((id, tail.offset, tail.len));
    }
    Ok(SegmentSummary {
        id,
        created_ms: scan.header.created_ms,
        first_seq: scan.first_seq,
        last_seq: scan.last_seq,
        last_ts_ms: scan.last_ts_ms,
        count: scan.count,
        end: scan.valid_end,
        sparse: scan.sparse,
        lost: scan.lost,
        bad: scan.bad.iter().map(|b| (b.offset, b.len)).collect(),
        keys: scan.keys,
    })
}

/// Copies `len` bytes at `offset` of segment `id` to `to/seg-<id>-at-<offset>.bin`; false when
/// an earlier copy is there (the stretch was found and reported before).
fn copy_aside(
    fs: &dyn Fs,
    file: &dyn FsFile,
    path: &Path,
    id: u64,
    offset: u64,
    len: u64,
    to: &Path,
) -> Result<bool> {
    let target = to.join(format!("seg-{id:020}-at-{offset}.bin"));
    if fs.exists(&target) {
        return Ok(false);
    }
    let mut bytes = vec![0u8; len.min(codec::RECORD_BYTES_MAX as u64 * 2) as usize];
    file.read_exact_at(&mut bytes, offset)
        .and_then(|_| fs.write(&target, &bytes))
        .map_err(|e| Error::io(format!("quarantining bytes of {}", path.display()), e))?;
    Ok(true)
}

/// Checks the header of a segment known from its summary (its frames are not read at open);
/// a corrupt one is copied aside and written again from the summary. A header claiming a newer
/// format is corrupt too here: this store sealed the segment and summarized it.
fn check_header(
    fs: &dyn Fs,
    file: &dyn FsFile,
    path: &Path,
    summary: &SegmentSummary,
    quarantine: &Path,
    report: &mut RecoveryReport,
) -> Result<()> {
    match segment::read_header(file, path) {
        Ok(_) => Ok(()),
        Err(e @ (Error::Corrupt { .. } | Error::NewerFormat { .. })) => {
            let bad = segment::BadRange {
                offset: 0,
                len: segment::HEADER_BYTES,
                reason: e.to_string(),
                between: (None, None),
            };
            let header = segment::Header {
                id: summary.id,
                created_ms: summary.created_ms,
            };
            repair_header(fs, file, path, header, &bad, quarantine, report)
        }
        Err(e) => Err(e),
    }
}

/// Quarantines a corrupt segment header and writes a good one in its place.
fn repair_header(
    fs: &dyn Fs,
    file: &dyn FsFile,
    path: &Path,
    header: segment::Header,
    bad: &segment::BadRange,
    quarantine: &Path,
    report: &mut RecoveryReport,
) -> Result<()> {
    let segment::Header { id, created_ms } = header;
    let new = copy_aside(fs, file, path, id, 0, bad.len, quarantine)?;
    segment::rewrite_header(file, path, id, created_ms)?;
    report.quarantined.push((id, 0, bad.len));
    if new {
        report.corruptions.push(Corruption {
            segment: id,
            offset: 0,
            len: bad.len,
            reason: bad.reason.clone(),
            lost: None,
        });
    }
    Ok(())
}
