//! Model-based test of the log: random sequences of append, read, iterate, roll, clock advance,
//! retire, wait-durable and reopen, checked after every step against an in-memory model (a map
//! of live records plus the next sequence number).
//!
//! Retention removes whole segments and the model does not know where segments end, so the model
//! predicts it conservatively: whatever the store drops must be a prefix of the live records, all
//! below the floor and older than the cutoff; whatever it keeps must read back intact. When every
//! sealed segment is removable the store must end up with only its open segment. A reopen (a
//! clean close, no wait for durability first) must bring back exactly the model, and the sequence
//! continues without ever reusing a number, even after everything was retired.
//!
//! `PROPTEST_CASES` sets the number of cases (default 256).

mod common;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use proptest::{collection::vec, prelude::*, sample::Index, test_runner::TestCaseError};
use storage::{segment::HEADER_BYTES, Clock, Durability, ManualClock, Record, Store, StoreOptions};

const START_MS: u64 = 1_000_000;

/// Picks a sequence number relative to the model's state at the time the op runs.
#[derive(Debug, Clone)]
enum Sel {
    /// One of the live records (or `next_seq` if there are none).
    Live(Index),
    /// A retired sequence number (or 0 if none is retired).
    Retired(Index),
    /// `next_seq + n`: never written.
    Beyond(u8),
    Zero,
    Max,
}

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<Payload>),
    Read(Sel),
    Iterate(Sel, usize),
    Roll,
    AdvanceClock(u64),
    Retire { retention_ms: u64, keep_from: Sel },
    WaitDurable,
    Reopen,
}

/// A payload; prints as its length, to keep failure reports readable.
#[derive(Clone)]
struct Payload(Vec<u8>);

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}B", self.0.len())
    }
}

#[derive(Debug, Clone)]
struct Case {
    durability: Durability,
    segment_events_max: u64,
    segment_bytes_max: u64,
    segment_age_max: Duration,
    ops: Vec<Op>,
}

fn sel() -> impl Strategy<Value = Sel> {
    prop_oneof![
        4 => any::<Index>().prop_map(Sel::Live),
        2 => any::<Index>().prop_map(Sel::Retired),
        1 => (0u8..3).prop_map(Sel::Beyond),
        1 => Just(Sel::Zero),
        1 => Just(Sel::Max),
    ]
}

fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![1 => Just(Vec::new()), 7 => vec(any::<u8>(), 0..300)].prop_map(Payload)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => prop_oneof![1 => Just(0usize), 15 => 1usize..=4]
            .prop_flat_map(|n| vec(payload(), n))
            .prop_map(Op::Append),
        4 => sel().prop_map(Op::Read),
        3 => (sel(), 0usize..40).prop_map(|(s, n)| Op::Iterate(s, n)),
        2 => Just(Op::Roll),
        3 => prop_oneof![4 => 0u64..3_000, 1 => Just(60_000u64)].prop_map(Op::AdvanceClock),
        3 => (
            prop_oneof![2 => Just(0u64), 2 => 0u64..10_000, 1 => Just(3_600_000)],
            prop_oneof![3 => sel(), 1 => Just(Sel::Max)],
        )
            .prop_map(|(retention_ms, keep_from)| Op::Retire { retention_ms, keep_from }),
        2 => Just(Op::WaitDurable),
        1 => Just(Op::Reopen),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop_oneof![3 => Just(Durability::Sync), 1 => Just(Durability::Interval)],
        1u64..=20,
        prop_oneof![Just(200u64), 200u64..4096, Just(1u64 << 20)],
        prop_oneof![3 => Just(3_600u64), 1 => Just(5u64)],
        vec(op(), 1..60),
    )
        .prop_map(|(durability, events, bytes, age_s, ops)| Case {
            durability,
            segment_events_max: events,
            segment_bytes_max: bytes,
            segment_age_max: Duration::from_secs(age_s),
            ops,
        })
}

/// The in-memory model: live records `seq -> (ts_ms, payload)`, dense from the first live one.
#[derive(Debug, Default)]
struct Model {
    live: BTreeMap<u64, (u64, Vec<u8>)>,
    next_seq: u64,
    /// Whether the open segment is known to hold records (`None` after a reopen: it depends on
    /// whether the flusher had a spare segment ready).
    open_has_records: Option<bool>,
}

impl Model {
    /// The lowest live sequence number; everything below it is retired or never existed.
    fn first_seq(&self) -> u64 {
        self.live.keys().next().copied().unwrap_or(self.next_seq)
    }

    fn resolve(&self, s: &Sel) -> u64 {
        match s {
            Sel::Live(i) if !self.live.is_empty() => {
                self.first_seq() + i.index(self.live.len()) as u64
            }
            Sel::Live(_) => self.next_seq,
            Sel::Retired(i) if self.first_seq() > 1 => {
                1 + i.index(self.first_seq() as usize - 1) as u64
            }
            Sel::Retired(_) => 0,
            Sel::Beyond(n) => self.next_seq + u64::from(*n),
            Sel::Zero => 0,
            Sel::Max => u64::MAX,
        }
    }
}

macro_rules! ok {
    ($e:expr) => {
        $e.map_err(|e| TestCaseError::fail(format!("{} failed: {e}", stringify!($e))))?
    };
}

struct Harness {
    dir: tempfile::TempDir,
    opts: StoreOptions,
    clock: ManualClock,
    store: Option<Store>,
    model: Model,
}

impl Harness {
    fn new(case: &Case) -> Result<Self, TestCaseError> {
        let dir = ok!(tempfile::tempdir());
        let mut opts = common::opts(case.durability);
        opts.log.segment_events_max = case.segment_events_max;
        opts.log.segment_bytes_max = case.segment_bytes_max;
        opts.log.segment_age_max = case.segment_age_max;
        let clock = ManualClock::new(START_MS);
        let (store, report) = ok!(Store::open(
            dir.path(),
            opts.clone(),
            Arc::new(clock.clone())
        ));
        prop_assert_eq!(report.records, 0);
        Ok(Self {
            dir,
            opts,
            clock,
            store: Some(store),
            model: Model {
                next_seq: 1,
                open_has_records: Some(false),
                ..Model::default()
            },
        })
    }

    fn store(&self) -> &Store {
        self.store.as_ref().expect("store is open")
    }

    fn read(&self, seq: u64) -> Result<(), TestCaseError> {
        let got = ok!(self.store().log().read(seq));
        let want = self.model.live.get(&seq).map(|(ts, p)| Record {
            seq,
            ts_ms: *ts,
            key: 0,
            payload: p.clone(),
        });
        prop_assert_eq!(got, want, "read({})", seq);
        Ok(())
    }

    fn iterate(&self, from: u64, n: usize) -> Result<(), TestCaseError> {
        let got: Vec<Record> = ok!(self
            .store()
            .log()
            .iter_from(from)
            .take(n)
            .collect::<storage::Result<Vec<_>>>());
        let want: Vec<Record> = self
            .model
            .live
            .range(from..)
            .take(n)
            .map(|(&seq, (ts, p))| Record {
                seq,
                ts_ms: *ts,
                key: 0,
                payload: p.clone(),
            })
            .collect();
        prop_assert_eq!(got, want, "iter_from({}).take({})", from, n);
        Ok(())
    }

    /// Cheap checks, after every op.
    fn check_bounds(&self) -> Result<(), TestCaseError> {
        let log = self.store().log();
        prop_assert_eq!(log.next_seq(), self.model.next_seq, "next_seq");
        prop_assert_eq!(log.first_seq(), self.model.first_seq(), "first_seq");
        Ok(())
    }

    /// Everything the model holds reads back, by `read` and by one full iteration, and the
    /// neighbours of the live range read as absent.
    fn check_all(&self) -> Result<(), TestCaseError> {
        self.check_bounds()?;
        for &seq in self.model.live.keys() {
            self.read(seq)?;
        }
        self.iterate(0, usize::MAX)?;
        let first = self.model.first_seq();
        for seq in [0, 1, first.saturating_sub(1), self.model.next_seq, u64::MAX] {
            self.read(seq)?;
        }
        Ok(())
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::Append(batch) => {
                let log = self.store().log();
                let segs_before = log.segment_count();
                let refs: Vec<&[u8]> = batch.iter().map(|p| p.0.as_slice()).collect();
                let first = ok!(log.append(&refs));
                prop_assert_eq!(first, self.model.next_seq, "append returned");
                let segs_after = log.segment_count();
                prop_assert!(
                    segs_after == segs_before
                        || (segs_after == segs_before + 1 && !batch.is_empty()),
                    "one append rolled {} -> {} segments",
                    segs_before,
                    segs_after
                );
                let ts = self.clock.now_ms();
                for (i, p) in batch.iter().enumerate() {
                    self.model.live.insert(first + i as u64, (ts, p.0.clone()));
                }
                self.model.next_seq += batch.len() as u64;
                if !batch.is_empty() {
                    self.model.open_has_records = Some(true);
                    let last = first + batch.len() as u64 - 1;
                    // In sync mode a record becomes visible when the flusher writes it (with
                    // the flush that makes it durable): until then it reads as absent.
                    let log = self.store().log();
                    let early = ok!(log.read(last));
                    prop_assert!(early.is_none() || early.as_ref().map(|r| r.seq) == Some(last));
                    ok!(log.durable().wait(last).blocking());
                    self.read(last)?;
                }
            }
            Op::Read(s) => self.read(self.model.resolve(s))?,
            Op::Iterate(s, n) => self.iterate(self.model.resolve(s), *n)?,
            Op::Roll => {
                let log = self.store().log();
                let before = log.segment_count();
                ok!(log.roll_now());
                let after = log.segment_count();
                match self.model.open_has_records {
                    Some(true) => prop_assert_eq!(after, before + 1, "roll of a non-empty segment"),
                    Some(false) => prop_assert_eq!(after, before, "roll of an empty segment"),
                    None => prop_assert!(after == before || after == before + 1),
                }
                self.model.open_has_records = Some(false);
            }
            Op::AdvanceClock(ms) => self.clock.advance(*ms),
            Op::Retire {
                retention_ms,
                keep_from,
            } => self.retire(*retention_ms, keep_from)?,
            Op::WaitDurable => {
                let last = self.model.next_seq - 1;
                let durable = self.store().log().durable();
                ok!(durable.wait(last).blocking());
                prop_assert!(durable.get() >= last);
                ok!(durable.wait(last).blocking());
            }
            Op::Reopen => self.reopen()?,
        }
        self.check_bounds()
    }

    fn retire(&mut self, retention_ms: u64, keep_from: &Sel) -> Result<(), TestCaseError> {
        let floor = self.model.resolve(keep_from);
        let now = self.clock.now_ms();
        let cutoff = now.saturating_sub(retention_ms);
        let retention = Duration::from_millis(retention_ms);
        let old_first = self.model.first_seq();
        let store = self.store.as_ref().expect("store is open");
        let mut removed = ok!(store.run_retention(retention, floor));
        // Retention seals an open segment whose newest record is past it and below the floor
        // (so that it can go too); whether that record was visible yet is not modelled.
        let newest = self.model.next_seq - 1;
        let past = |(ts, _): &(u64, Vec<u8>)| *ts < cutoff;
        if newest < floor && self.model.live.get(&newest).is_some_and(past) {
            self.model.open_has_records = None;
        }
        // Every sealed segment is removable: the store must get down to its open segment. A
        // segment sealed moments ago waits for its flush first, so give the flusher time.
        let all_removable =
            floor >= self.model.next_seq && self.model.live.values().all(|(ts, _)| *ts < cutoff);
        if all_removable {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while store.log().segment_count() > 1 {
                prop_assert!(
                    std::time::Instant::now() < deadline,
                    "retire(cutoff {}, floor {}) keeps {} segments that are all removable",
                    cutoff,
                    floor,
                    store.log().segment_count()
                );
                std::thread::sleep(Duration::from_millis(1));
                removed.extend(ok!(store.run_retention(retention, floor)));
            }
        }
        let first = store.log().first_seq();
        prop_assert!(
            first >= old_first,
            "first_seq went back {} -> {}",
            old_first,
            first
        );
        prop_assert!(
            first == self.model.next_seq || self.model.live.contains_key(&first),
            "first_seq {} is neither live nor next_seq {}",
            first,
            self.model.next_seq
        );
        if first > old_first {
            prop_assert!(
                !removed.is_empty(),
                "records went, no segment reported removed"
            );
        }
        for (&seq, (ts, _)) in self.model.live.range(..first) {
            prop_assert!(
                seq < floor && *ts < cutoff,
                "retire(cutoff {}, floor {}) dropped seq {} (ts {})",
                cutoff,
                floor,
                seq,
                ts
            );
        }
        let gone: Vec<u64> = self.model.live.range(..first).map(|(&s, _)| s).collect();
        for seq in gone {
            self.model.live.remove(&seq);
            self.read(seq)?;
        }
        self.check_all()
    }

    fn reopen(&mut self) -> Result<(), TestCaseError> {
        let bytes_before = self.store().log().disk_bytes();
        let durable = self.store().log().durable().clone();
        // A clean close, with no wait for durability first; it flushes everything before it
        // stops the flusher.
        drop(self.store.take());
        let last = self.model.next_seq - 1;
        prop_assert!(
            matches!(durable.outcome(last), Some(Ok(()))),
            "closed with seq {} not durable (watermark {})",
            last,
            durable.get()
        );
        let (store, report) = ok!(open_after_close(self.dir.path(), &self.opts, &self.clock));
        self.store = Some(store);
        prop_assert_eq!(report.records, self.model.live.len() as u64, "{:?}", report);
        prop_assert!(
            report.truncated.is_empty() && report.quarantined.is_empty() && report.lost.is_empty(),
            "recovery after a clean close repaired something: {:?}",
            report
        );
        let bytes = self.store().log().disk_bytes();
        prop_assert!(
            bytes == bytes_before || bytes == bytes_before + HEADER_BYTES,
            "disk bytes {} before close, {} after reopen",
            bytes_before,
            bytes
        );
        self.model.open_has_records = None;
        self.check_all()
    }
}

/// Opens the store just closed (`State::open` waits out sled's lock release).
fn open_after_close(
    path: &std::path::Path,
    opts: &StoreOptions,
    clock: &ManualClock,
) -> storage::Result<(Store, storage::RecoveryReport)> {
    Store::open(path, opts.clone(), Arc::new(clock.clone()))
}

fn run(case: &Case) -> Result<(), TestCaseError> {
    let mut h = Harness::new(case)?;
    for (i, op) in case.ops.iter().enumerate() {
        h.apply(op)
            .map_err(|e| TestCaseError::fail(format!("op #{i} {op:?}: {e}")))?;
    }
    h.check_all()?;
    tail(&mut h).map_err(|e| TestCaseError::fail(format!("after the ops: {e}")))
}

/// Every case ends the same way, so that each configuration covers the sequence continuing
/// across reopens, also once everything was retired.
fn tail(h: &mut Harness) -> Result<(), TestCaseError> {
    // Reopen and append: the sequence continues where it was.
    h.apply(&Op::Reopen)?;
    h.apply(&Op::Append(vec![Payload(b"last".to_vec())]))?;
    // Retire everything (the open segment is empty after the roll), reopen, append: the
    // sequence still continues, it does not restart from the empty log.
    let next = h.model.next_seq;
    for op in [
        Op::AdvanceClock(1),
        Op::Roll,
        Op::Retire {
            retention_ms: 0,
            keep_from: Sel::Max,
        },
    ] {
        h.apply(&op)?;
    }
    prop_assert!(
        h.model.live.is_empty(),
        "left after retiring everything: {:?}",
        h.model.live.keys()
    );
    h.apply(&Op::Reopen)?;
    h.apply(&Op::Append(vec![
        Payload(Vec::new()),
        Payload(b"after".to_vec()),
    ]))?;
    prop_assert_eq!(h.model.live.keys().next(), Some(&next));
    h.check_all()
}

/// 256 cases unless `PROPTEST_CASES` says otherwise (proptest's default reads it).
fn config() -> ProptestConfig {
    ProptestConfig {
        // Keep the tree clean; a failure prints its minimal case to reproduce by hand.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn log_matches_model(case in case()) {
        run(&case)?;
    }
}
