//! The log through the public API: append, read, iterate, roll, retire, recover.

mod common;

use std::{os::unix::fs::FileExt, sync::Arc};

use common::{open, opts, payload, wait_durable};
use storage::{Durability, Error, ManualClock, Store};

fn append_n(store: &Store, n: u64) -> Vec<u64> {
    (0..n)
        .map(|i| store.log().append(&[&payload(i)]).unwrap())
        .collect()
}

#[test]
fn append_returns_dense_sequences_and_reads_back_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000);
    let store = open(dir.path(), &clock);
    let first = store.log().append(&[b"a", b"bb", b"ccc"]).unwrap();
    assert_eq!(first, 1);
    assert_eq!(store.log().append(&[b"d"]).unwrap(), 4);
    wait_durable(&store, 4);
    let rec = store.log().read(2).unwrap().unwrap();
    assert_eq!(
        (rec.seq, rec.ts_ms, rec.payload.as_slice()),
        (2, 1_000, &b"bb"[..])
    );
    assert!(store.log().read(5).unwrap().is_none());
    assert!(store.log().read(0).unwrap().is_none());
}

#[test]
fn segments_roll_by_count_and_everything_reads_back_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1);
    {
        let store = open(dir.path(), &clock);
        let seqs = append_n(&store, 100);
        assert_eq!(seqs, (1..=100).collect::<Vec<_>>());
        wait_durable(&store, 100);
        assert!(store.log().segment_count() >= 100 / 16, "rolled by count");
    }
    let store = open(dir.path(), &clock);
    for seq in 1..=100 {
        assert_eq!(
            store.log().read(seq).unwrap().unwrap().payload,
            payload(seq - 1)
        );
    }
    let all: Vec<u64> = store.log().iter_from(37).map(|r| r.unwrap().seq).collect();
    assert_eq!(all, (37..=100).collect::<Vec<_>>());
    assert_eq!(store.log().append(&[b"next"]).unwrap(), 101);
}

#[test]
fn segments_roll_by_age_using_the_injected_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1);
    let store = open(dir.path(), &clock);
    store.log().append(&[b"x"]).unwrap();
    let before = store.log().segment_count();
    clock.advance(3_600_000);
    store.log().append(&[b"y"]).unwrap();
    assert_eq!(store.log().segment_count(), before + 1);
}

#[test]
fn retention_drops_only_old_segments_that_nothing_pending_needs() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000);
    let mut o = opts(Durability::Sync);
    o.log.segment_bytes_max = 1 << 20;
    let (store, _) = Store::open(dir.path(), o, Arc::new(clock.clone())).unwrap();
    append_n(&store, 64); // 4 segments of 16
    clock.advance(10_000);
    append_n(&store, 16);
    wait_durable(&store, 80);
    let bytes_before = store.log().disk_bytes();
    // Pending delivery at seq 20 pins the segment holding 17..=32 and everything after it.
    let removed = store
        .run_retention(std::time::Duration::from_secs(5), 20)
        .unwrap();
    assert_eq!(removed.len(), 1);
    assert!(store.log().read(1).unwrap().is_none());
    assert_eq!(store.log().read(17).unwrap().unwrap().payload, payload(16));
    assert_eq!(store.log().first_seq(), 17);
    assert!(store.log().disk_bytes() < bytes_before);
    // With the pin gone, the rest of the old data goes; the new data stays.
    let removed = store
        .run_retention(std::time::Duration::from_secs(5), u64::MAX)
        .unwrap();
    assert_eq!(removed.len(), 3);
    assert_eq!(store.log().first_seq(), 65);
}

#[test]
fn sequence_numbers_never_restart_after_everything_is_retired() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000);
    {
        let store = open(dir.path(), &clock);
        append_n(&store, 32);
        store.log().roll_now().unwrap();
        wait_durable(&store, 32);
        clock.advance(100_000);
        store
            .run_retention(std::time::Duration::from_secs(1), u64::MAX)
            .unwrap();
        assert!(store.log().read(32).unwrap().is_none());
    }
    let store = open(dir.path(), &clock);
    assert_eq!(store.log().append(&[b"after"]).unwrap(), 33);
}

#[test]
fn torn_tail_is_truncated_and_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1);
    let seg;
    {
        let store = open(dir.path(), &clock);
        append_n(&store, 5);
        wait_durable(&store, 5);
        seg = std::fs::read_dir(dir.path().join("log"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .max()
            .unwrap();
    }
    let len = std::fs::metadata(&seg).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.write_all_at(&[0x52, 0x46, 0x48, 0x4B, 200, 0, 0], len)
        .unwrap(); // half a frame
    drop(f);
    let (store, report) =
        Store::open(dir.path(), opts(Durability::Sync), Arc::new(clock.clone())).unwrap();
    assert_eq!(report.truncated.len(), 1);
    assert_eq!(report.truncated[0].2, 7);
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), len);
    assert!(
        std::fs::read_dir(dir.path().join("log/quarantine"))
            .unwrap()
            .count()
            >= 1
    );
    assert_eq!(store.log().read(5).unwrap().unwrap().payload, payload(4));
    assert_eq!(store.log().append(&[b"z"]).unwrap(), 6);
}

#[test]
fn corrupt_record_is_quarantined_and_the_rest_stays_readable() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1);
    {
        let store = open(dir.path(), &clock);
        append_n(&store, 10);
        wait_durable(&store, 10);
    }
    // Flip a byte inside the payload of some record in the first segment.
    let seg = dir.path().join("log").join("seg-00000000000000000001.log");
    let mut bytes = std::fs::read(&seg).unwrap();
    // The first occurrence of 3u64 is the seq field of record 3 (13 bytes into its frame).
    let third = 32
        + bytes[32..]
            .windows(8)
            .position(|w| w == 3u64.to_le_bytes())
            .unwrap();
    bytes[third + 20] ^= 0xFF;
    std::fs::write(&seg, &bytes).unwrap();
    let (store, report) =
        Store::open(dir.path(), opts(Durability::Sync), Arc::new(clock.clone())).unwrap();
    assert_eq!(report.quarantined.len(), 1, "{report:?}");
    assert_eq!(report.lost, vec![(3, 3)]);
    assert!(matches!(
        store.log().read(3),
        Err(Error::Quarantined { seq: 3 })
    ));
    assert_eq!(store.log().read(4).unwrap().unwrap().payload, payload(3));
    let seqs: Vec<u64> = store.log().iter_from(1).map(|r| r.unwrap().seq).collect();
    assert_eq!(seqs, vec![1, 2, 4, 5, 6, 7, 8, 9, 10]);
}

#[test]
fn over_capacity_is_refused_without_writing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1);
    let mut o = opts(Durability::Sync);
    o.log.max_bytes = 2_000;
    o.log.segment_bytes_max = 1 << 20;
    let (store, _) = Store::open(dir.path(), o, Arc::new(clock)).unwrap();
    let mut n = 0;
    let err = loop {
        match store.log().append(&[&[7u8; 100]]) {
            Ok(_) => n += 1,
            Err(e) => break e,
        }
    };
    assert!(err.is_disk_full(), "{err}");
    assert!(n > 5);
    assert!(store.log().disk_bytes() <= 2_000);
    assert_eq!(store.log().next_seq(), n + 1);
}

#[test]
fn interval_mode_flushes_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(
        dir.path(),
        opts(Durability::Interval),
        Arc::new(ManualClock::new(1)),
    )
    .unwrap();
    let seq = store.log().append(&[b"i"]).unwrap();
    wait_durable(&store, seq);
    assert!(store.log().flush_count() >= 1);
}

#[test]
fn foreign_newer_and_locked_directories_are_refused() {
    let clock = Arc::new(ManualClock::new(1));
    let foreign = tempfile::tempdir().unwrap();
    std::fs::write(foreign.path().join("notes.txt"), "mine").unwrap();
    let err = Store::open(foreign.path(), opts(Durability::Sync), clock.clone()).unwrap_err();
    assert!(matches!(err, Error::ForeignDirectory { .. }), "{err}");

    let newer = tempfile::tempdir().unwrap();
    std::fs::write(
        newer.path().join("HOOKD"),
        "hookd data directory\nformat 99\n",
    )
    .unwrap();
    let err = Store::open(newer.path(), opts(Durability::Sync), clock.clone()).unwrap_err();
    assert!(matches!(err, Error::NewerFormat { found: 99, .. }), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let _held = Store::open(dir.path(), opts(Durability::Sync), clock.clone()).unwrap();
    let err = Store::open(dir.path(), opts(Durability::Sync), clock).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err}");
}

#[test]
fn newer_record_version_refuses_the_open() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1);
    {
        let store = open(dir.path(), &clock);
        store.log().append(&[b"v"]).unwrap();
        wait_durable(&store, 1);
    }
    let seg = dir.path().join("log").join("seg-00000000000000000001.log");
    let mut bytes = std::fs::read(&seg).unwrap();
    let body = 32 + 12;
    bytes[body] = 9;
    let len = &bytes[36..40].to_vec();
    let crc = crc32c::crc32c_append(crc32c::crc32c(len), &bytes[body..]);
    bytes[40..44].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&seg, &bytes).unwrap();
    let err = Store::open(dir.path(), opts(Durability::Sync), Arc::new(clock)).unwrap_err();
    assert!(matches!(err, Error::NewerFormat { found: 9, .. }), "{err}");
}

#[test]
fn unwritable_directory_is_refused_by_name() {
    if unsafe_is_root() {
        // root ignores permission bits; a read-only bind mount would need privileges we avoid.
        let file = tempfile::NamedTempFile::new().unwrap();
        let err = Store::open(
            &file.path().join("sub"),
            opts(Durability::Sync),
            Arc::new(ManualClock::new(1)),
        )
        .unwrap_err();
        assert!(matches!(err, Error::Unwritable { .. }), "{err}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::os::unix::fs::PermissionsExt::from_mode(0o500)).unwrap();
    let err = Store::open(&ro, opts(Durability::Sync), Arc::new(ManualClock::new(1))).unwrap_err();
    assert!(matches!(err, Error::Unwritable { .. }), "{err}");
}

fn unsafe_is_root() -> bool {
    std::env::var("USER").is_ok_and(|u| u == "root")
        || std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
}

/// Regression: the flusher preparing a spare segment and an append rolling without one used to
/// create the same segment id, and the loser deleted the live segment, losing durable records.
#[test]
fn rolling_on_every_append_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1);
    let mut o = opts(Durability::Sync);
    o.log.segment_events_max = 1;
    {
        let (store, _) = Store::open(dir.path(), o.clone(), Arc::new(clock.clone())).unwrap();
        for i in 0..200 {
            let seq = store.log().append(&[&payload(i)]).unwrap();
            store.log().durable().wait(seq).blocking().unwrap();
        }
    }
    let (store, report) = Store::open(dir.path(), o, Arc::new(clock)).unwrap();
    assert!(report.lost.is_empty(), "{report:?}");
    for seq in 1..=200 {
        assert_eq!(
            store.log().read(seq).unwrap().unwrap().payload,
            payload(seq - 1)
        );
    }
}

#[test]
fn scan_back_visits_one_key_newest_first_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1);
    let store = open(dir.path(), &clock);
    // Key 7 in every third record; key 9 only in records 1 and 2 (its segments are few).
    for i in 1..=200u64 {
        let key = if i % 3 == 0 {
            7
        } else if i <= 2 {
            9
        } else {
            1
        };
        assert_eq!(store.log().append_keyed(key, &[&payload(i)]).unwrap(), i);
    }
    // Readers see records once the flusher has written them.
    wait_durable(&store, 200);
    let mut seen = Vec::new();
    let end = store.log().scan_back(7, None, usize::MAX, |r| {
        assert_eq!(r.payload, payload(r.seq));
        seen.push(r.seq);
        true
    });
    assert_eq!(end.unwrap(), storage::ScanEnd::Start);
    assert_eq!(seen, (1..=66).rev().map(|i| i * 3).collect::<Vec<_>>());
    // Stop after 5, below 100.
    let mut few = Vec::new();
    let end = store.log().scan_back(7, Some(100), usize::MAX, |r| {
        few.push(r.seq);
        few.len() < 5
    });
    assert_eq!(few, vec![99, 96, 93, 90, 87]);
    assert_eq!(end.unwrap(), storage::ScanEnd::Stopped { at: 87 });
    // A small budget stops early and says where to resume; resuming finds the rest.
    let mut all = Vec::new();
    let mut before = None;
    loop {
        match store
            .log()
            .scan_back(9, before, 40, |r| {
                all.push(r.seq);
                true
            })
            .unwrap()
        {
            storage::ScanEnd::Budget { before: b } => before = Some(b),
            storage::ScanEnd::Start => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(all, vec![2, 1]);
    assert_eq!(
        store
            .log()
            .scan_back(42, None, usize::MAX, |_| true)
            .unwrap(),
        storage::ScanEnd::Start
    );
}

/// `window_while`: the commit window spaces flushes only while the counter is above zero.
/// Each append below waits for its own flush, so with the window in force the second flush
/// comes a whole window after the first; without it, flushes follow each other at once.
#[test]
fn the_commit_window_applies_only_while_its_counter_is_above_zero() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};
    const WINDOW: Duration = Duration::from_secs(2);
    let dir = tempfile::tempdir().unwrap();
    let busy = Arc::new(AtomicUsize::new(0));
    let mut o = opts(Durability::Sync);
    o.log.commit_window = WINDOW;
    o.log.window_while = Some(busy.clone());
    let (store, _) = Store::open(dir.path(), o, Arc::new(ManualClock::new(1))).unwrap();

    let flush_each = |n: u64| {
        for i in 0..n {
            let seq = store.log().append(&[&payload(i)]).unwrap();
            wait_durable(&store, seq);
        }
    };
    let started = Instant::now();
    flush_each(3);
    assert!(
        started.elapsed() < WINDOW,
        "three flushes took {:?} with the counter at zero",
        started.elapsed()
    );

    busy.store(1, Ordering::Relaxed);
    let started = Instant::now();
    flush_each(2);
    assert!(
        started.elapsed() >= WINDOW,
        "two flushes took {:?} with the window in force",
        started.elapsed()
    );
}

/// `(offset, seq)` of every frame of a segment file (none of them corrupt yet).
fn frames(path: &std::path::Path) -> Vec<(usize, u64)> {
    let bytes = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut pos = 32;
    while pos + 12 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
        let seq = u64::from_le_bytes(bytes[pos + 13..pos + 21].try_into().unwrap());
        out.push((pos, seq));
        pos += 12 + len;
    }
    out
}

fn flip(path: &std::path::Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x5A;
    std::fs::write(path, &bytes).unwrap();
}

/// Sealed segments are not read at open (their summary is stored): a corrupt frame in one is
/// found by the first read that meets it, and costs that record alone, for every reader and
/// across reopens; a corrupt header is found at open and rewritten. Each is reported once.
#[test]
fn corruption_in_sealed_segments_costs_only_the_bad_records() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1);
    {
        let store = open(dir.path(), &clock);
        append_n(&store, 64);
        wait_durable(&store, 64);
        assert!(store.log().segment_count() >= 5);
    }
    // Segment ids may skip a number (a spare made while a roll made its own): by name order.
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir.path().join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    let id = |i: usize| -> u64 {
        let name = files[i].file_name().unwrap().to_string_lossy().into_owned();
        name[4..24].parse().unwrap()
    };
    let (s1, s2, s3) = (frames(&files[0]), frames(&files[1]), frames(&files[2]));
    assert!(s2.len() >= 3, "{s2:?}");
    // The first record of the first segment, a middle one of the second, the last one of the
    // third, and the third's header (its id).
    let picks = [(0, s1[0]), (1, s2[s2.len() / 2]), (2, s3[s3.len() - 1])];
    for &(i, (offset, _)) in &picks {
        flip(&files[i], offset + 20);
    }
    flip(&files[2], 18);
    // The fourth's format version byte (outside the header checksum): it reads as newer, but
    // this store sealed and summarized that segment.
    flip(&files[3], 8);
    let picks = picks.map(|(i, frame)| (id(i), frame));
    let lost: Vec<u64> = picks.iter().map(|p| p.1 .1).collect();
    let (store, report) =
        Store::open(dir.path(), opts(Durability::Sync), Arc::new(clock.clone())).unwrap();
    assert_eq!(report.corruptions.len(), 2, "{report:?}");
    assert!(
        report.corruptions.iter().all(|c| c.offset == 0),
        "the headers"
    );
    let log = store.log();
    assert_eq!(log.take_corruptions().len(), 2);
    let listed: Vec<u64> = {
        let mut v = Vec::new();
        log.scan_back(0, None, usize::MAX, |r| {
            v.push(r.seq);
            true
        })
        .unwrap();
        v
    };
    let want: Vec<u64> = (1..=64).rev().filter(|s| !lost.contains(s)).collect();
    assert_eq!(listed, want);
    for seq in 1..=64 {
        match log.read(seq) {
            Ok(Some(r)) => {
                assert!(!lost.contains(&seq), "{seq} read");
                assert_eq!(r.payload, payload(seq - 1));
            }
            Err(Error::Quarantined { seq: s }) => assert!(lost.contains(&s), "{s}"),
            other => panic!("{seq}: {other:?}"),
        }
    }
    let seqs: Vec<u64> = log.iter_from(1).map(|r| r.unwrap().seq).collect();
    assert_eq!(seqs, want.iter().rev().copied().collect::<Vec<_>>());
    let mut found = log.take_corruptions();
    found.sort_by_key(|c| c.segment);
    let where_: Vec<(u64, Option<(u64, u64)>)> =
        found.iter().map(|c| (c.segment, c.lost)).collect();
    let want_found: Vec<_> = picks
        .iter()
        .map(|&(id, (_, q))| (id, Some((q, q))))
        .collect();
    assert_eq!(where_, want_found);
    assert_eq!(log.corruptions_found(), 5);
    drop(store);

    // Reopened: the same records are quarantined, and nothing is reported again.
    let (store, report) =
        Store::open(dir.path(), opts(Durability::Sync), Arc::new(clock.clone())).unwrap();
    assert!(report.corruptions.is_empty(), "{report:?}");
    for &seq in &lost {
        assert!(matches!(
            store.log().read(seq),
            Err(Error::Quarantined { .. })
        ));
    }
    let before = lost[2] - 1;
    assert_eq!(
        store.log().read(before).unwrap().unwrap().payload,
        payload(before - 1)
    );
    assert!(store.log().take_corruptions().is_empty());
    assert_eq!(
        std::fs::read_dir(dir.path().join("log/quarantine"))
            .unwrap()
            .count(),
        5
    );
}

/// `check_sealed` reads the sealed segments that open does not: a corrupt record in one is
/// found (and reported once) before any reader meets it.
#[test]
fn check_sealed_finds_corruption_before_any_read() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1);
    {
        let store = open(dir.path(), &clock);
        append_n(&store, 40);
        wait_durable(&store, 40);
        assert!(store.log().segment_count() >= 3);
    }
    let first = dir.path().join("log/seg-00000000000000000001.log");
    let f = frames(&first);
    let (offset, seq) = f[f.len() / 2];
    flip(&first, offset + 20);
    let (store, report) =
        Store::open(dir.path(), opts(Durability::Sync), Arc::new(clock.clone())).unwrap();
    assert!(
        report.corruptions.is_empty(),
        "sealed segments are not read at open"
    );
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (segments, records) = store
        .log()
        .check_sealed(std::time::Duration::ZERO, &stop)
        .unwrap();
    assert!(segments >= 2, "{segments}");
    let sealed_records = store
        .log()
        .iter_from(1)
        .map(|r| r.unwrap().seq)
        .filter(|&s| s != seq)
        .count();
    assert!(
        records as usize <= sealed_records && records > 0,
        "{records}"
    );
    let found = store.log().take_corruptions();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].lost, Some((seq, seq)));
    assert!(matches!(
        store.log().read(seq),
        Err(Error::Quarantined { .. })
    ));
    // Once: a second pass finds nothing new.
    store
        .log()
        .check_sealed(std::time::Duration::ZERO, &stop)
        .unwrap();
    assert!(store.log().take_corruptions().is_empty());
}

/// Under steady ingest (appenders that never let the flusher go idle) every roll finds the
/// next segment ready: the flusher makes it between flushes, so no appender creates and syncs
/// a file while holding the log's lock.
#[test]
fn under_steady_ingest_rolls_find_the_next_segment_ready() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(Durability::Sync);
    // About 30 records of 1 KiB a segment: a roll every few group commits.
    o.log.segment_bytes_max = 32 << 10;
    o.log.segment_events_max = 1 << 20;
    let store = Arc::new(
        Store::open(dir.path(), o, Arc::new(ManualClock::new(1)))
            .unwrap()
            .0,
    );
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                let data = vec![7u8; 1000];
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    // Two in flight per thread: the flusher always has the next batch waiting.
                    let a = store.log().append(&[&data]).unwrap();
                    let b = store.log().append(&[&data]).unwrap();
                    wait_durable(&store, a.max(b));
                }
            })
        })
        .collect();
    while store.log().segment_count() < 40 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(
        store.log().rolls_unprepared(),
        0,
        "rolls that created their segment under the lock, of {} segments",
        store.log().segment_count()
    );
}

/// A scan with a deadline already past still reads its first 1,024 records (a small scan
/// always finishes), then stops at the next chunk and says where to resume; resuming finds
/// the rest, every record once, newest first.
#[test]
fn scan_back_within_a_deadline_stops_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &ManualClock::new(1));
    for i in 1..=4000u64 {
        let key = if i % 3 == 0 { 7 } else { 1 };
        store.log().append_keyed(key, &[&payload(i)]).unwrap();
    }
    wait_durable(&store, 4000);
    let mut timed = Vec::new();
    let mut before = None;
    let mut stops = 0;
    loop {
        let past = Some(std::time::Instant::now());
        match store
            .log()
            .scan_back_within(7, before, usize::MAX, past, |r| {
                timed.push(r.seq);
                true
            })
            .unwrap()
        {
            storage::ScanEnd::Budget { before: b } => {
                stops += 1;
                before = Some(b);
            }
            storage::ScanEnd::Start => break,
            other => panic!("{other:?}"),
        }
    }
    assert!(stops >= 2, "the deadline stopped the scan {stops} times");
    assert_eq!(timed, (1..=1333).rev().map(|i| i * 3).collect::<Vec<u64>>());
    // A small scan is never cut by its deadline.
    let small = store
        .log()
        .scan_back_within(
            7,
            Some(300),
            usize::MAX,
            Some(std::time::Instant::now()),
            |_| true,
        )
        .unwrap();
    assert_eq!(small, storage::ScanEnd::Start);
}
