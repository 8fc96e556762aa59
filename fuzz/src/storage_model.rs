//! `storage_model`: `storage::Log` driven through a list of operations derived with
//! `arbitrary` (append, read, iterate, scan back by key, roll, clock advance, retire, a turn of
//! the flusher, wait for durability, reopen, reopen after the catalog lost its summaries,
//! reopen after a torn tail) on the simulated disk `storage::fs::sim::SimFs`, checked after
//! every step against an in-memory model: the live records and the next sequence number.
//!
//! It mirrors the proptest model of `storage/tests/model.rs`, on the log alone: the segment
//! table and the sequence floor live in [`MemCatalog`], which keeps them across reopens as the
//! sled index does (encoded with the same codec) and can forget the summaries, so that
//! recovery scans every segment. Retention removes whole segments and the model does not know
//! where they end, so it is predicted conservatively, as there: what goes must be a prefix of
//! the live records, all below the floor and older than the cutoff; what stays reads back.
//! A reopen must bring back exactly the model, repair nothing after a clean close, cut exactly
//! the torn bytes after a torn one, and never reuse a sequence number.
//!
//! One thread drives everything, as in `storage/tests/powerloss.rs`: the log is opened with
//! [`Log::open_stepped`] and the flusher's loop is turned by hand ([`Log::step_flusher`]) where
//! hookd's flusher thread would run it: after every `sync` append (whose acknowledgement waits
//! for that flush), at `WaitDurable`, before a close (the flusher's last flush), when retention
//! waits for a sealed segment's sync, and when the input says so (`Flush`). So an execution
//! neither sleeps nor waits for another thread, and the same input always runs the same way.
//! The disk is the simulator without faults or power cuts: no file, directory or system call.
//! The flusher thread's own loop (when it wakes, sleeps and stops) is left to the storage
//! crate's tests: here it cost more than the rest of an input, in waits for the scheduler.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use storage::codec::{decode_value, encode_frame, encode_value, LogRecord};
use storage::fs::sim::{Faults, SimFs};
use storage::fs::Fs;
use storage::log::{Catalog, SegmentSummary};
use storage::segment::{self, HEADER_BYTES};
use storage::{Clock, Durability, Log, LogOptions, ManualClock, Record, RecoveryReport, ScanEnd};

const START_MS: u64 = 1_000_000;
/// Operations per input, at most.
const OPS_MAX: usize = 48;
/// Payloads per append, and bytes per payload, at most.
const BATCH_MAX: usize = 4;
const PAYLOAD_BYTES_MAX: usize = 300;
/// Partition keys used (few, so that scans by key find several records).
const KEYS: u64 = 3;
/// The log's directory on the simulated disk.
const DIR: &str = "/sim/log";

/// Picks a sequence number relative to the model at the time the operation runs.
#[derive(Debug, Clone, Copy, Arbitrary)]
enum Sel {
    /// One of the live records (or `next_seq` if there are none).
    Live(u16),
    /// A retired sequence number (or 0 if none is).
    Retired(u16),
    /// `next_seq + n`: never written.
    Beyond(u8),
    Zero,
    Max,
}

#[derive(Debug, Arbitrary)]
enum Op {
    Append {
        key: u8,
        payloads: Vec<Vec<u8>>,
    },
    Read(Sel),
    Iterate(Sel, u8),
    ScanBack {
        key: u8,
        before: Option<Sel>,
        budget: u8,
    },
    Roll,
    AdvanceClock(u16),
    Retire {
        retention_ms: u16,
        keep_from: Sel,
    },
    WaitDurable,
    Reopen,
    /// A turn of the flusher (which hookd's flusher thread takes on its own): writes and syncs
    /// what is pending, seals what was rolled, makes the spare segment.
    Flush,
    /// Reopen after the catalog lost every segment summary: recovery scans all segments.
    ReopenForgetting,
    /// Close, append bytes that cannot be a frame to the newest segment file, reopen.
    ReopenTorn(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
struct Case {
    interval: bool,
    segment_events_max: u8,
    segment_bytes_max: u16,
    short_age: bool,
    /// An optional ceiling on the log's bytes, in units of 64 bytes.
    max_bytes_64: Option<u8>,
    ops: Vec<Op>,
}

/// The segment table and the sequence floor, kept in memory across reopens, encoded with the
/// storage codec as the sled catalog does.
#[derive(Debug, Default)]
struct MemCatalog {
    summaries: Mutex<BTreeMap<u64, Vec<u8>>>,
    floor: Mutex<u64>,
}

impl Catalog for MemCatalog {
    fn load(&self, id: u64) -> storage::Result<Option<SegmentSummary>> {
        let summaries = self.summaries.lock().unwrap();
        summaries
            .get(&id)
            .map(|v| decode_value(v, &|| format!("summary {id}")))
            .transpose()
    }
    fn store(&self, summary: &SegmentSummary) -> storage::Result<()> {
        let bytes = encode_value(summary)?;
        self.summaries.lock().unwrap().insert(summary.id, bytes);
        Ok(())
    }
    fn retire(&self, id: u64, floor: u64) -> storage::Result<()> {
        self.summaries.lock().unwrap().remove(&id);
        let mut f = self.floor.lock().unwrap();
        *f = (*f).max(floor);
        Ok(())
    }
    fn floor(&self) -> storage::Result<u64> {
        Ok((*self.floor.lock().unwrap()).max(1))
    }
}

/// A live record of the model.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Live {
    ts_ms: u64,
    key: u64,
    payload: Vec<u8>,
}

#[derive(Debug, Default)]
struct Model {
    live: BTreeMap<u64, Live>,
    next_seq: u64,
    /// Whether the open segment holds records (`None` after a reopen: it depends on whether
    /// the flusher had a spare segment ready).
    open_has_records: Option<bool>,
}

impl Model {
    fn first_seq(&self) -> u64 {
        self.live.keys().next().copied().unwrap_or(self.next_seq)
    }

    fn resolve(&self, s: Sel) -> u64 {
        match s {
            Sel::Live(i) if !self.live.is_empty() => {
                self.first_seq() + u64::from(i) % self.live.len() as u64
            }
            Sel::Live(_) => self.next_seq,
            Sel::Retired(i) if self.first_seq() > 1 => 1 + u64::from(i) % (self.first_seq() - 1),
            Sel::Retired(_) => 0,
            Sel::Beyond(n) => self.next_seq + u64::from(n),
            Sel::Zero => 0,
            Sel::Max => u64::MAX,
        }
    }

    fn record(&self, seq: u64) -> Option<Record> {
        self.live.get(&seq).map(|l| Record {
            seq,
            ts_ms: l.ts_ms,
            key: l.key,
            payload: l.payload.clone(),
        })
    }
}

struct Harness {
    fs: SimFs,
    dir: PathBuf,
    opts: LogOptions,
    clock: ManualClock,
    catalog: Arc<MemCatalog>,
    log: Option<Log>,
    model: Model,
}

pub fn run(data: &[u8]) {
    let Ok(case) = Case::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let mut h = Harness::new(&case);
    for op in case.ops.iter().take(OPS_MAX) {
        h.apply(op);
    }
    h.check_all();
    // Always end with a reopen and an append: the sequence continues where it was; and a
    // close, which must make that append durable.
    h.reopen(Reopen::Clean);
    h.append(0, &[b"last".to_vec()]);
    h.close();
}

/// What happens to the directory between the close and the open of a reopen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reopen<'a> {
    Clean,
    /// The catalog forgets every segment summary.
    Forgetting,
    /// These bytes are appended to the newest segment file.
    Torn(&'a [u8]),
}

impl Harness {
    fn new(case: &Case) -> Self {
        let opts = LogOptions {
            durability: if case.interval {
                Durability::Interval
            } else {
                Durability::Sync
            },
            flush_interval: Duration::from_millis(1),
            commit_window: Duration::ZERO,
            window_while: None,
            segment_bytes_max: 200 + u64::from(case.segment_bytes_max % 4000),
            segment_events_max: 1 + u64::from(case.segment_events_max % 20),
            segment_age_max: Duration::from_secs(if case.short_age { 5 } else { 3600 }),
            max_bytes: case.max_bytes_64.map_or(0, |n| 64 * (1 + u64::from(n))),
        };
        let mut h = Self {
            fs: SimFs::new(0, Faults::default()),
            dir: PathBuf::from(DIR),
            opts,
            clock: ManualClock::new(START_MS),
            catalog: Arc::new(MemCatalog::default()),
            log: None,
            model: Model {
                next_seq: 1,
                open_has_records: Some(false),
                ..Model::default()
            },
        };
        let report = h.open().expect("open an empty log");
        assert_eq!(report.records, 0);
        h
    }

    /// Opens the log in `dir` on the simulated disk, with no flusher thread.
    fn open(&mut self) -> storage::Result<RecoveryReport> {
        let (log, report) = Log::open_stepped(
            self.fs.shared(),
            &self.dir,
            self.opts.clone(),
            Arc::new(self.clock.clone()),
            self.catalog.clone(),
        )?;
        self.log = Some(log);
        Ok(report)
    }

    /// A turn of the flusher, where hookd's flusher thread would take one.
    fn step_flusher(&self) {
        self.log().step_flusher();
    }

    fn log(&self) -> &Log {
        self.log.as_ref().expect("the log is open")
    }

    fn read(&self, seq: u64) {
        let got = self.log().read(seq).expect("read");
        assert_eq!(got, self.model.record(seq), "read({seq})");
    }

    fn iterate(&self, from: u64, n: usize) {
        let got: Vec<Record> = self
            .log()
            .iter_from(from)
            .take(n)
            .collect::<storage::Result<_>>()
            .expect("iterate");
        let want: Vec<Record> = self
            .model
            .live
            .range(from..)
            .take(n)
            .filter_map(|(&seq, _)| self.model.record(seq))
            .collect();
        assert_eq!(got, want, "iter_from({from}).take({n})");
    }

    /// Scans `key` backwards from `before` with a small read budget, resuming where each call
    /// stops: the records must come newest first and be exactly the model's.
    fn scan_back(&self, key: u64, before: Option<u64>, budget: usize) {
        let want: Vec<u64> = self
            .model
            .live
            .range(..before.unwrap_or(u64::MAX))
            .rev()
            .filter(|(_, l)| l.key == key)
            .map(|(&seq, _)| seq)
            .collect();
        let mut got = Vec::new();
        let mut from = before;
        for _ in 0..=self.model.live.len() + 1 {
            let end = self
                .log()
                .scan_back(key, from, budget, |r| {
                    assert_eq!(Some(&r), self.model.record(r.seq).as_ref(), "scan_back");
                    got.push(r.seq);
                    true
                })
                .expect("scan_back");
            match end {
                ScanEnd::Start => {
                    assert_eq!(got, want, "scan_back({key}, {before:?}, {budget})");
                    return self.scan_back_stops(key, before);
                }
                ScanEnd::Budget { before: b } => {
                    assert!(from.is_none_or(|f| b < f), "scan_back does not move: {b}");
                    from = Some(b);
                }
                ScanEnd::Stopped { at } => panic!("scan_back stopped at {at} unasked"),
            }
        }
        panic!("scan_back({key}, {before:?}, {budget}) never reached the start");
    }

    /// A visitor that says stop after the first record stops the scan there.
    fn scan_back_stops(&self, key: u64, before: Option<u64>) {
        let mut seen = None;
        let end = self
            .log()
            .scan_back(key, before, usize::MAX, |r| {
                seen = Some(r.seq);
                false
            })
            .expect("scan_back");
        match seen {
            Some(at) => assert_eq!(end, ScanEnd::Stopped { at }),
            None => assert_eq!(end, ScanEnd::Start),
        }
    }

    /// Cheap checks, after every operation.
    fn check_bounds(&self) {
        let log = self.log();
        assert_eq!(log.next_seq(), self.model.next_seq, "next_seq");
        assert_eq!(log.first_seq(), self.model.first_seq(), "first_seq");
    }

    /// Everything the model holds reads back, one by one and in one iteration, and the
    /// neighbours of the live range read as absent.
    fn check_all(&self) {
        self.check_bounds();
        for &seq in self.model.live.keys() {
            self.read(seq);
        }
        self.iterate(0, usize::MAX);
        let first = self.model.first_seq();
        for seq in [0, 1, first.saturating_sub(1), self.model.next_seq, u64::MAX] {
            self.read(seq);
        }
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Append { key, payloads } => self.append(u64::from(*key) % KEYS, payloads),
            Op::Read(s) => self.read(self.model.resolve(*s)),
            Op::Iterate(s, n) => self.iterate(self.model.resolve(*s), usize::from(*n)),
            Op::ScanBack {
                key,
                before,
                budget,
            } => {
                let before = before.map(|s| self.model.resolve(s));
                self.scan_back(
                    u64::from(*key) % KEYS,
                    before,
                    1 + usize::from(*budget % 40),
                );
            }
            Op::Roll => self.roll(),
            Op::AdvanceClock(ms) => self.clock.advance(u64::from(*ms)),
            Op::Retire {
                retention_ms,
                keep_from,
            } => self.retire(u64::from(*retention_ms), *keep_from),
            Op::WaitDurable => {
                let last = self.model.next_seq - 1;
                self.step_flusher();
                let durable = self.log().durable();
                durable.wait(last).blocking().expect("durable");
                assert!(durable.get() >= last);
            }
            Op::Flush => self.step_flusher(),
            Op::Reopen => self.reopen(Reopen::Clean),
            Op::ReopenForgetting => self.reopen(Reopen::Forgetting),
            Op::ReopenTorn(bytes) => self.reopen(Reopen::Torn(bytes)),
        }
        self.check_bounds();
    }

    fn append(&mut self, key: u64, payloads: &[Vec<u8>]) {
        let batch: Vec<&[u8]> = payloads
            .iter()
            .take(BATCH_MAX)
            .map(|p| &p[..p.len().min(PAYLOAD_BYTES_MAX)])
            .collect();
        let log = self.log.as_ref().expect("the log is open");
        let ts = self.clock.now_ms();
        // Whether the byte ceiling refuses it, from the frames' encoded size.
        let used = log.disk_bytes();
        let mut frames = Vec::new();
        for (i, p) in batch.iter().enumerate() {
            let rec = LogRecord {
                seq: self.model.next_seq + i as u64,
                ts_ms: ts,
                key,
                payload: p,
            };
            encode_frame(&rec, &mut frames).expect("encode");
        }
        let max = self.opts.max_bytes;
        let refused = !batch.is_empty() && max > 0 && used + frames.len() as u64 > max;
        let segs_before = log.segment_count();
        match log.append_keyed(key, &batch) {
            Err(storage::Error::OverCapacity { used: u, max: m }) => {
                assert!(refused, "refused at {u} of {m} bytes, model expected room");
                assert_eq!(log.next_seq(), self.model.next_seq);
                return;
            }
            Err(e) => panic!("append failed: {e:?}"),
            Ok(first) => {
                assert!(!refused, "{} bytes over the ceiling accepted", frames.len());
                assert_eq!(first, self.model.next_seq, "append returned");
            }
        }
        let segs_after = log.segment_count();
        assert!(
            segs_after == segs_before || (segs_after == segs_before + 1 && !batch.is_empty()),
            "one append went from {segs_before} to {segs_after} segments"
        );
        let first = self.model.next_seq;
        for (i, p) in batch.iter().enumerate() {
            let live = Live {
                ts_ms: ts,
                key,
                payload: p.to_vec(),
            };
            self.model.live.insert(first + i as u64, live);
        }
        self.model.next_seq += batch.len() as u64;
        if let Some(last) = self
            .model
            .next_seq
            .checked_sub(1)
            .filter(|_| !batch.is_empty())
        {
            self.model.open_has_records = Some(true);
            match self.opts.durability {
                // In sync mode a record becomes visible when the flusher writes it, with the
                // flush that makes it durable.
                Durability::Sync => {
                    let early = log.read(last).expect("read");
                    assert!(early.is_none_or(|r| r.seq == last));
                    self.step_flusher();
                    let durable = self.log().durable();
                    durable.wait(last).blocking().expect("durable");
                }
                // In interval mode the append itself writes it, and it is acknowledged before
                // its flush: `Flush`, `WaitDurable` and closes make it durable.
                Durability::Interval => {}
            }
            self.read(last);
        }
    }

    fn roll(&mut self) {
        let log = self.log();
        let before = log.segment_count();
        log.roll_now().expect("roll");
        let after = log.segment_count();
        match self.model.open_has_records {
            Some(true) => assert_eq!(after, before + 1, "roll of a segment with records"),
            Some(false) => assert_eq!(after, before, "roll of an empty segment"),
            None => assert!(after == before || after == before + 1),
        }
        self.model.open_has_records = Some(false);
    }

    fn retire(&mut self, retention_ms: u64, keep_from: Sel) {
        let floor = self.model.resolve(keep_from);
        let cutoff = self.clock.now_ms().saturating_sub(retention_ms);
        let old_first = self.model.first_seq();
        let log = self.log.as_ref().expect("the log is open");
        let mut removed = log.retire(cutoff, floor).expect("retire");
        // Every sealed segment is removable: the log must get down to its open segment. A
        // segment sealed since the last flush waits for that flush's sync first: one turn of
        // the flusher must be enough.
        let all_removable =
            floor >= self.model.next_seq && self.model.live.values().all(|l| l.ts_ms < cutoff);
        if all_removable && log.segment_count() > 1 {
            self.step_flusher();
            removed.extend(log.retire(cutoff, floor).expect("retire"));
            assert_eq!(
                log.segment_count(),
                1,
                "retire(cutoff {cutoff}, floor {floor}) keeps removable segments after a flush"
            );
        }
        let first = log.first_seq();
        assert!(
            first >= old_first,
            "first_seq went back {old_first} -> {first}"
        );
        assert!(
            first == self.model.next_seq || self.model.live.contains_key(&first),
            "first_seq {first} is neither live nor next_seq {}",
            self.model.next_seq
        );
        if first > old_first {
            assert!(
                !removed.is_empty(),
                "records went, no segment reported removed"
            );
        }
        let gone: Vec<u64> = self.model.live.range(..first).map(|(&s, _)| s).collect();
        for seq in gone {
            let l = self.model.live.remove(&seq).expect("live");
            assert!(
                seq < floor && l.ts_ms < cutoff,
                "retire(cutoff {cutoff}, floor {floor}) dropped seq {seq} (ts {})",
                l.ts_ms
            );
            self.read(seq);
        }
        self.check_all();
    }

    /// Appends bytes to the newest segment file of the closed log, which recovery must cut:
    /// none of them is the first byte of the frame magic, so no frame can start among them.
    fn tear(&self, bytes: &[u8]) -> u64 {
        let magic_first = storage::codec::FRAME_MAGIC.to_le_bytes()[0];
        let torn: Vec<u8> = bytes
            .iter()
            .take(200)
            .map(|&b| if b == magic_first { 0 } else { b })
            .collect();
        let newest = self
            .fs
            .list(&self.dir)
            .expect("list the log")
            .iter()
            .filter_map(|name| segment::parse_file_name(name))
            .max()
            .expect("a segment");
        let file = (self.fs)
            .open(&self.dir.join(segment::file_name(newest)))
            .expect("open the newest segment");
        let end = file.size().expect("the newest segment's size");
        file.write_all_at(&torn, end).expect("tear the segment");
        torn.len() as u64
    }

    /// A clean close, with no wait for durability first: the flusher's last turn (the one the
    /// thread takes when told to stop) flushes everything the log holds.
    fn close(&mut self) {
        if self.log.is_none() {
            return;
        }
        self.step_flusher();
        let log = self.log.take().expect("the log is open");
        let durable = log.durable().clone();
        drop(log);
        let last = self.model.next_seq - 1;
        assert!(
            matches!(durable.outcome(last), Some(Ok(()))),
            "closed with seq {last} not durable (watermark {})",
            durable.get()
        );
    }

    /// Closes the log, changes the directory as `how` says, and opens it again.
    fn reopen(&mut self, how: Reopen) {
        let bytes_before = self.log().disk_bytes();
        self.close();
        let torn = match how {
            Reopen::Clean => 0,
            Reopen::Forgetting => {
                self.catalog.summaries.lock().unwrap().clear();
                0
            }
            Reopen::Torn(bytes) => self.tear(bytes),
        };
        let report = self.open().expect("reopen");
        assert_eq!(report.records, self.model.live.len() as u64, "{report:?}");
        assert!(
            report.quarantined.is_empty() && report.lost.is_empty(),
            "recovery after a close repaired something: {report:?}"
        );
        let cut: Vec<u64> = report.truncated.iter().map(|t| t.2).collect();
        let want: Vec<u64> = (torn > 0).then_some(torn).into_iter().collect();
        assert_eq!(cut, want, "torn bytes cut at reopen: {report:?}");
        let bytes = self.log().disk_bytes();
        assert!(
            bytes == bytes_before || bytes == bytes_before + HEADER_BYTES,
            "disk bytes {bytes_before} before close, {bytes} after reopen"
        );
        self.model.open_has_records = None;
        self.check_all();
    }
}
