//! `hookd inspect --data PATH`: reads a stopped store and says what is in it, and whether
//! every record decodes.
//!
//! The store is locked shared first (`storage::lock_shared`), so a running hookd is refused
//! politely and no hookd can start meanwhile. The log is only read, never repaired: each
//! segment is scanned as recovery would scan it (`storage::segment::scan`: headers, frame
//! checksums, sequence order, torn tails), then every whole frame is decoded again down to
//! its message (`MessageRecord`). The index (sled) is opened as hookd opens it, for the
//! segment table, the pending deliveries and the fan-out cursor; nothing is written to it.
//!
//! What counts as a problem (exit status 3): a stretch of bad bytes in a segment (bad bytes
//! up to the end of what the segment table says was sealed included), a record whose
//! message does not decode, a segment header that does not parse, sequence numbers out of
//! order, and a torn tail: a record cut short at the end of a segment. hookd cuts a torn tail
//! at its next start. In `sync` durability that record was never acknowledged; in
//! `interval` durability it may have been (an append is acknowledged once written, and a
//! power failure can lose it before the next fdatasync), so it is reported with its
//! sequence number: inspect cannot know which durability the store ran with.

use std::{
    collections::HashMap,
    fmt::Write as _,
    path::{Path, PathBuf},
};

use storage::{
    codec::{self, decode_value, Frame},
    log::{Catalog, SPARSE_EVERY},
    segment::{self, BadRange},
    state::{MessageRecord, State},
};

use super::{human_bytes, human_duration_ms};
use crate::time::format_rfc3339;

/// The fan-out cursor's name in the index (see `deliver::dispatch`).
const FANOUT_CURSOR: &str = crate::deliver::dispatch::FANOUT_CURSOR;
/// Undecodable records listed per segment, at most (all are counted).
const UNDECODABLE_LISTED_MAX: usize = 10;
/// Apps listed by record count, at most.
const APPS_LISTED_MAX: usize = 10;
/// sled's cache while inspecting: only a few lookups are made.
const INDEX_CACHE_BYTES: u64 = 8 << 20;

/// Why the store could not be inspected at all.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("{0} does not exist")]
    Missing(PathBuf),
    #[error(
        "{0} is in use by a running hookd (its LOCK is held); stop it first, \
         or ask the running one with `hookd status`"
    )]
    InUse(PathBuf),
    #[error(transparent)]
    Store(#[from] storage::Error),
}

/// Everything found.
#[derive(Debug, Clone)]
pub struct Report {
    pub path: PathBuf,
    pub segments: Vec<SegmentReport>,
    /// Files in `log/quarantine/`: bytes moved aside by earlier starts.
    pub quarantine_files: usize,
    /// Sequence ranges missing between segments (unused after a failed write, or lost).
    pub gaps: Vec<(u64, u64)>,
    /// Records per app key.
    pub by_app: HashMap<u64, u64>,
    /// The index, or why it could not be read.
    pub index: Result<IndexReport, String>,
}

/// One segment file.
#[derive(Debug, Clone, Default)]
pub struct SegmentReport {
    pub id: u64,
    pub file: String,
    pub bytes: u64,
    pub created_ms: u64,
    pub records: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub last_ts_ms: u64,
    /// The segment table has its summary: it was sealed and synced.
    pub sealed: bool,
    /// Corrupt stretches in the middle.
    pub bad: Vec<Bad>,
    /// Bytes after the last whole frame.
    pub tail: Option<Tail>,
    /// Records whose frame is whole but whose message does not decode: count and the first few.
    pub undecodable: u64,
    pub undecodable_listed: Vec<(u64, String)>,
    /// The segment cannot be read at all (bad header, out of order), and why.
    pub unreadable: Option<String>,
}

/// A corrupt stretch.
#[derive(Debug, Clone)]
pub struct Bad {
    pub offset: u64,
    pub len: u64,
    pub reason: String,
    /// An earlier start copied these bytes to `log/quarantine/` (and steps over them).
    pub quarantined: bool,
}

/// A torn tail.
#[derive(Debug, Clone)]
pub struct Tail {
    pub offset: u64,
    pub len: u64,
    pub reason: String,
    /// The sequence number of the record cut short, when its frame header survived.
    pub cut_seq: Option<u64>,
}

/// What the index says.
#[derive(Debug, Clone, Default)]
pub struct IndexReport {
    /// Deliveries pending or in flight.
    pub pending: usize,
    pub oldest_pending_seq: Option<u64>,
    /// When the oldest pending delivery's message was appended, if it is in the log.
    pub oldest_pending_ts_ms: Option<u64>,
    /// Records up to here have been fanned out into deliveries.
    pub fanout_cursor: Option<u64>,
    /// Sequence numbers below this were retired.
    pub floor: u64,
    /// App names by key, for the apps with records.
    pub app_names: HashMap<u64, String>,
}

impl Report {
    /// Records in the log.
    pub fn records(&self) -> u64 {
        self.segments.iter().map(|s| s.records).sum()
    }

    /// Corruption found, one line each (empty when the store is sound).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in &self.segments {
            if let Some(why) = &s.unreadable {
                out.push(format!("segment {}: unreadable: {why}", s.id));
            }
            for b in &s.bad {
                let seen = if b.quarantined {
                    " (quarantined at an earlier start)"
                } else {
                    ""
                };
                out.push(format!(
                    "segment {}: {} bad bytes at offset {}: {}{seen}",
                    s.id, b.len, b.offset, b.reason
                ));
            }
            if let Some(t) = &s.tail {
                let cut = match t.cut_seq {
                    Some(seq) => format!("record {seq} (and any after it)"),
                    None => "a record whose number did not survive".to_owned(),
                };
                out.push(format!(
                    "segment {}: torn tail, {} bytes at offset {} ({}): {cut} was cut short \
                     and is cut at the next start; never acknowledged under sync durability, \
                     but under interval durability it may have been, and is lost",
                    s.id, t.len, t.offset, t.reason
                ));
            }
            if s.undecodable > 0 {
                let seqs: Vec<String> = s
                    .undecodable_listed
                    .iter()
                    .map(|(seq, why)| format!("{seq} ({why})"))
                    .collect();
                out.push(format!(
                    "segment {}: {} records do not decode: {}",
                    s.id,
                    s.undecodable,
                    seqs.join(", ")
                ));
            }
        }
        out
    }
}

/// Inspects the store at `path`.
pub fn inspect(path: &Path) -> Result<Report, InspectError> {
    if !path.is_dir() {
        return Err(InspectError::Missing(path.to_path_buf()));
    }
    let _lock = storage::lock_shared(path).map_err(|e| match e {
        storage::Error::Locked { path } => InspectError::InUse(path),
        e => InspectError::Store(e),
    })?;
    let index_dir = path.join("index");
    let state = match index_dir.is_dir() {
        true => State::open(&index_dir, INDEX_CACHE_BYTES).map_err(|e| e.to_string()),
        false => Err(format!("{} is missing", index_dir.display())),
    };
    let log_dir = path.join("log");
    let quarantine = log_dir.join("quarantine");
    let mut report = Report {
        path: path.to_path_buf(),
        segments: Vec::new(),
        quarantine_files: std::fs::read_dir(&quarantine).map_or(0, |d| d.count()),
        gaps: Vec::new(),
        by_app: HashMap::new(),
        index: Err("not read yet".into()),
    };
    let mut ids = Vec::new();
    let entries = std::fs::read_dir(&log_dir)
        .map_err(|e| storage::Error::io(format!("listing {}", log_dir.display()), e))?;
    for entry in entries {
        let entry =
            entry.map_err(|e| storage::Error::io(format!("listing {}", log_dir.display()), e))?;
        if let Some(id) = segment::parse_file_name(&entry.file_name().to_string_lossy()) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    let pending_min = state
        .as_ref()
        .ok()
        .and_then(|s| s.min_pending_seq().ok().flatten());
    let mut pending_ts = None;
    let mut prev_last: Option<u64> = None;
    for id in ids {
        let file = log_dir.join(segment::file_name(id));
        let sealed_end = match &state {
            Ok(st) => st.load(id)?.map(|s| s.end),
            Err(_) => None,
        };
        let mut seg = check_segment(&file, id, &quarantine, sealed_end, |rec| {
            *report.by_app.entry(rec.key).or_default() += 1;
            if Some(rec.seq) == pending_min {
                pending_ts = Some(rec.ts_ms);
            }
        })?;
        if let (Some(prev), Some(first)) = (prev_last, seg.first_seq) {
            if first <= prev {
                seg.unreadable = Some(format!("starts at sequence {first}, not after {prev}"));
            } else if first > prev + 1 {
                report.gaps.push((prev + 1, first - 1));
            }
        }
        prev_last = seg.last_seq.or(prev_last);
        report.segments.push(seg);
    }
    report.index = state.map(|st| {
        let app_names = report
            .by_app
            .keys()
            .filter_map(|&k| {
                let app = st.app(k).ok().flatten()?;
                Some((k, app.uid.unwrap_or(app.id)))
            })
            .collect();
        IndexReport {
            pending: st.pending_count(),
            oldest_pending_seq: pending_min,
            oldest_pending_ts_ms: pending_ts,
            fanout_cursor: st.cursor(FANOUT_CURSOR).ok().flatten(),
            floor: st.floor().unwrap_or(1),
            app_names,
        }
    });
    Ok(report)
}

/// Scans one segment, then decodes each whole frame's message; `each` sees every record.
fn check_segment(
    file: &Path,
    id: u64,
    quarantine: &Path,
    sealed_end: Option<u64>,
    mut each: impl FnMut(&codec::LogRecord<'_>),
) -> Result<SegmentReport, storage::Error> {
    let mut seg = SegmentReport {
        id,
        file: file.display().to_string(),
        bytes: std::fs::metadata(file)
            .map_err(|e| storage::Error::io(format!("reading {}", file.display()), e))?
            .len(),
        sealed: sealed_end.is_some(),
        ..SegmentReport::default()
    };
    let scan = match segment::scan(file, SPARSE_EVERY) {
        Ok(scan) => scan,
        Err(e @ storage::Error::Corrupt { .. }) => {
            seg.unreadable = Some(e.to_string());
            return Ok(seg);
        }
        Err(e) => return Err(e),
    };
    let quarantined = |b: &BadRange| {
        quarantine
            .join(format!("seg-{id:020}-at-{}.bin", b.offset))
            .exists()
    };
    seg.created_ms = scan.header.created_ms;
    seg.records = scan.count;
    seg.first_seq = scan.first_seq;
    seg.last_seq = scan.last_seq;
    seg.last_ts_ms = scan.last_ts_ms;
    // Bad bytes up to the end of what was sealed are corruption, not an unfinished write.
    let (sealed_tail, tail) = match &scan.tail {
        Some(t) if sealed_end.is_some_and(|end| t.offset < end) => (Some(t), None),
        t => (None, t.as_ref()),
    };
    seg.bad = scan
        .header_bad
        .iter()
        .chain(&scan.bad)
        .chain(sealed_tail)
        .map(|b| Bad {
            offset: b.offset,
            len: b.len,
            reason: b.reason.clone(),
            quarantined: quarantined(b),
        })
        .collect();
    let bytes = std::fs::read(file)
        .map_err(|e| storage::Error::io(format!("reading {}", file.display()), e))?;
    seg.tail = tail.map(|t| Tail {
        offset: t.offset,
        len: t.len,
        reason: t.reason.clone(),
        cut_seq: cut_seq(&bytes[t.offset as usize..]),
    });
    let mut pos = segment::HEADER_BYTES as usize;
    let end = (scan.valid_end as usize).min(bytes.len());
    while pos < end {
        if let Some(b) = scan.bad.iter().find(|b| b.offset as usize == pos) {
            pos += b.len as usize;
            continue;
        }
        let (rec, len) = match codec::decode_frame(&bytes[pos..end])? {
            Frame::Whole { rec, len } => (rec, len),
            // The scan found a whole frame here; anything else means the file changed under us.
            Frame::Partial | Frame::Bad { .. } => {
                return Err(storage::Error::Corrupt {
                    location: format!("{} at offset {pos}", file.display()),
                    reason: "changed while being inspected".into(),
                })
            }
        };
        let what = || format!("message {} in {} at offset {pos}", rec.seq, file.display());
        if let Err(e) = decode_value::<MessageRecord>(rec.payload, &what) {
            seg.undecodable += 1;
            if seg.undecodable_listed.len() < UNDECODABLE_LISTED_MAX {
                seg.undecodable_listed.push((rec.seq, e.to_string()));
            }
        }
        each(&rec);
        pos += len;
    }
    Ok(seg)
}

/// The sequence number in the frame header at the start of `tail`, if that much of it is
/// there and it looks like one (magic, then the record's version byte and its seq).
fn cut_seq(tail: &[u8]) -> Option<u64> {
    let seq_at = codec::FRAME_HEADER_BYTES + 1;
    let head = tail.get(..seq_at + 8)?;
    let magic = u32::from_le_bytes(head[..4].try_into().ok()?) == codec::FRAME_MAGIC;
    magic.then(|| u64::from_le_bytes(head[seq_at..].try_into().unwrap_or_default()))
}

/// The report as text, for people; `now_ms` for ages.
pub fn render(r: &Report, now_ms: u64) -> String {
    let mut out = String::new();
    let records = r.records();
    let bytes: u64 = r.segments.iter().map(|s| s.bytes).sum();
    let _ = writeln!(out, "store {} (not in use)", r.path.display());
    let _ = writeln!(
        out,
        "segments: {} ({}), {records} records",
        r.segments.len(),
        human_bytes(bytes)
    );
    render_segments(&mut out, r);
    render_apps(&mut out, r);
    render_decode_check(&mut out, r, records);
    render_index(&mut out, r, now_ms);
    render_result(&mut out, r);
    out
}

/// One line per segment: id, records, bytes, sequence range, creation, state.
fn render_segments(out: &mut String, r: &Report) {
    let _ = writeln!(
        out,
        "  {:>6}  {:>9}  {:>10}  {:<23}  {:<24}  state",
        "id", "records", "bytes", "sequence", "created"
    );
    for s in &r.segments {
        let range = match (s.first_seq, s.last_seq) {
            (Some(a), Some(b)) => format!("{a}..={b}"),
            _ => "-".into(),
        };
        // Unsealed: the open segment, or one whose seal a crash cut short; an empty one
        // after it is the spare made ahead of time.
        let mut state = vec![match (s.sealed, s.records) {
            (true, _) => "sealed",
            (false, 0) => "empty",
            (false, _) => "unsealed",
        }];
        if s.unreadable.is_some() {
            state.push("UNREADABLE");
        }
        if !s.bad.is_empty() {
            state.push("CORRUPT");
        }
        if s.undecodable > 0 {
            state.push("UNDECODABLE RECORDS");
        }
        if s.tail.is_some() {
            state.push("torn tail");
        }
        let _ = writeln!(
            out,
            "  {:>6}  {:>9}  {:>10}  {range:<23}  {:<24}  {}",
            s.id,
            s.records,
            human_bytes(s.bytes),
            format_rfc3339(s.created_ms),
            state.join(", ")
        );
    }
}

/// The apps with the most records (at most [`APPS_LISTED_MAX`]).
fn render_apps(out: &mut String, r: &Report) {
    if !r.by_app.is_empty() {
        let mut apps: Vec<(u64, u64)> = r.by_app.iter().map(|(&k, &n)| (k, n)).collect();
        apps.sort_by_key(|&(k, n)| (std::cmp::Reverse(n), k));
        let names = r.index.as_ref().ok().map(|i| &i.app_names);
        let listed: Vec<String> = apps
            .iter()
            .take(APPS_LISTED_MAX)
            .map(|(k, n)| {
                let name = names
                    .and_then(|m| m.get(k))
                    .cloned()
                    .unwrap_or_else(|| format!("app key {k} (deleted)"));
                format!("{name} {n}")
            })
            .collect();
        let more = match apps.len().saturating_sub(APPS_LISTED_MAX) {
            0 => String::new(),
            n => format!(", and {n} more apps"),
        };
        let _ = writeln!(out, "records by app: {}{more}", listed.join(", "));
    }
}

/// What the decode pass found.
fn render_decode_check(out: &mut String, r: &Report, records: u64) {
    let bad: usize = r.segments.iter().map(|s| s.bad.len()).sum();
    let seen = r
        .segments
        .iter()
        .flat_map(|s| &s.bad)
        .filter(|b| b.quarantined)
        .count();
    let undecodable: u64 = r.segments.iter().map(|s| s.undecodable).sum();
    let _ = writeln!(
        out,
        "decode check: {records} records read, {undecodable} undecodable; \
         {bad} corrupt stretches ({seen} quarantined at an earlier start); \
         {} files in log/quarantine",
        r.quarantine_files
    );
}

/// What the index says: pending deliveries, the fan-out cursor, retention's floor.
fn render_index(out: &mut String, r: &Report, now_ms: u64) {
    match &r.index {
        Ok(ix) => {
            let oldest = match (ix.oldest_pending_seq, ix.oldest_pending_ts_ms) {
                (Some(seq), Some(ts)) => format!(
                    "; the oldest is for record {seq}, appended {} ({} ago)",
                    format_rfc3339(ts),
                    human_duration_ms(now_ms.saturating_sub(ts))
                ),
                (Some(seq), None) => {
                    format!("; the oldest is for record {seq}, which is not in the log")
                }
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "pending deliveries: {} in the index{oldest}",
                ix.pending
            );
            let last = r.segments.iter().filter_map(|s| s.last_seq).max();
            let cursor = ix.fanout_cursor.unwrap_or(0);
            let unfanned = r
                .segments
                .iter()
                .filter_map(|s| Some((s.first_seq?, s.last_seq?)))
                .map(|(a, b)| (b + 1).saturating_sub(a.max(cursor + 1)))
                .sum::<u64>();
            match (last, unfanned) {
                (Some(_), n) if n > 0 => {
                    let _ = writeln!(
                        out,
                        "not yet fanned out: {n} records after record {cursor}; their \
                         deliveries are made at the next start"
                    );
                }
                _ => {
                    let _ = writeln!(out, "not yet fanned out: none");
                }
            }
            if ix.floor > 1 {
                let _ = writeln!(out, "retired by retention: records below {}", ix.floor);
            }
        }
        Err(why) => {
            let _ = writeln!(out, "index: cannot be read: {why}");
        }
    }
}

/// Sequence gaps and the verdict.
fn render_result(out: &mut String, r: &Report) {
    match r.gaps.as_slice() {
        [] => {}
        gaps => {
            let list: Vec<String> = gaps.iter().map(|(a, b)| format!("{a}..={b}")).collect();
            let _ = writeln!(
                out,
                "sequence gaps between segments (numbers left unused after a failed \
                 write, or lost): {}",
                list.join(", ")
            );
        }
    }
    let problems = r.problems();
    if problems.is_empty() {
        let _ = writeln!(out, "result: ok, every record decodes");
    } else {
        let s = if problems.len() == 1 { "" } else { "s" };
        let _ = writeln!(out, "result: CORRUPT, {} problem{s}:", problems.len());
        for p in problems {
            let _ = writeln!(out, "  {p}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use storage::{ManualClock, Store, StoreOptions};

    use super::*;

    fn message(app_key: u64, i: u64) -> Vec<u8> {
        codec::encode_value(&MessageRecord {
            app_key,
            rand: i,
            created_ms: 1_000,
            event_type: "t".into(),
            event_id: None,
            channels: vec![],
            tags: vec![],
            payload: format!("{{\"i\":{i}}}").into_bytes(),
            traceparent: None,
            only_endpoint: None,
            ordering_key: None,
        })
        .unwrap()
    }

    /// A store with `n` messages of app key 7 in two segments, then closed.
    fn store_with(n: u64) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_000_000));
        let (store, _) = Store::open(dir.path(), StoreOptions::default(), clock).unwrap();
        for i in 0..n {
            if i == n / 2 {
                store.log().roll_now().unwrap();
            }
            let seq = store.log().append_keyed(7, &[&message(7, i)]).unwrap();
            store.log().durable().wait(seq).blocking().unwrap();
        }
        store.close().unwrap();
        drop(store);
        dir
    }

    #[test]
    fn a_sound_store_reads_ok() {
        let dir = store_with(10);
        let r = inspect(dir.path()).unwrap();
        assert_eq!(r.records(), 10);
        assert!(r.problems().is_empty(), "{:?}", r.problems());
        assert_eq!(r.by_app.get(&7), Some(&10));
        let text = render(&r, 2_000_000);
        assert!(text.contains("10 records"), "{text}");
        assert!(text.contains("result: ok"), "{text}");
    }

    #[test]
    fn a_flipped_byte_is_corruption() {
        let dir = store_with(10);
        let seg = dir.path().join("log").join(segment::file_name(1));
        let mut bytes = std::fs::read(&seg).unwrap();
        let at = segment::HEADER_BYTES as usize + 20;
        bytes[at] ^= 0xff;
        std::fs::write(&seg, &bytes).unwrap();
        let r = inspect(dir.path()).unwrap();
        assert_eq!(r.problems().len(), 1, "{:?}", r.problems());
        assert!(r.records() < 10);
        assert!(render(&r, 0).contains("result: CORRUPT"));
    }

    #[test]
    fn a_record_that_is_not_a_message_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_000_000));
        let (store, _) = Store::open(dir.path(), StoreOptions::default(), clock).unwrap();
        let seq = store.log().append_keyed(1, &[b"\x01not bincode"]).unwrap();
        store.log().durable().wait(seq).blocking().unwrap();
        drop(store);
        let r = inspect(dir.path()).unwrap();
        assert_eq!(r.segments[0].undecodable, 1);
        assert_eq!(r.problems().len(), 1);
    }

    #[test]
    fn an_open_store_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_000_000));
        let (_store, _) = Store::open(dir.path(), StoreOptions::default(), clock).unwrap();
        assert!(matches!(inspect(dir.path()), Err(InspectError::InUse(_))));
    }

    #[test]
    fn a_foreign_or_missing_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x"), "y").unwrap();
        assert!(matches!(
            inspect(dir.path()),
            Err(InspectError::Store(storage::Error::ForeignDirectory { .. }))
        ));
        assert!(matches!(
            inspect(&dir.path().join("nope")),
            Err(InspectError::Missing(_))
        ));
    }
}
