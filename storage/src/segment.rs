//! One segment file of the log: durable creation, scanning for recovery, positioned reads.
//!
//! A segment is `log/seg-<id:020>.log`:
//! ```text
//! header (32 bytes): "HOOKDSEG" | version u8 | 3 reserved | crc32c(id, created) u32 LE
//!                    | id u64 LE | created_ms u64 LE
//! frames ...         see `codec`
//! ```
//! A segment is created under a temporary name, its header fsynced, then renamed into place and
//! the directory fsynced, so a segment file that exists always has a whole header. Records carry
//! their own sequence numbers, so a segment can be created before it is known which sequence it
//! will start at (the flusher keeps a spare one ready).

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use crate::{
    codec::{self, Frame, FORMAT_VERSION, FRAME_HEADER_BYTES, FRAME_MAGIC},
    error::{Error, Result},
    fs::{Fs, FsFile, RealFs},
};

/// Bytes in a segment header.
pub const HEADER_BYTES: u64 = 32;
const MAGIC: &[u8; 8] = b"HOOKDSEG";

/// The file name of segment `id`.
pub fn file_name(id: u64) -> String {
    format!("seg-{id:020}.log")
}

/// Parses a segment file name back to its id.
pub fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("seg-")?.strip_suffix(".log")?;
    (digits.len() == 20).then(|| digits.parse().ok())?
}

/// An open segment file.
pub type SegFile = Arc<dyn FsFile>;

/// Creates segment `id` in `dir` durably (file and directory entry fsynced).
pub fn create(dir: &Path, id: u64, created_ms: u64) -> Result<(SegFile, PathBuf)> {
    create_on(&RealFs, dir, id, created_ms)
}

/// [`create`] on the file system `fs`.
pub fn create_on(fs: &dyn Fs, dir: &Path, id: u64, created_ms: u64) -> Result<(SegFile, PathBuf)> {
    let path = dir.join(file_name(id));
    let tmp = dir.join(format!("{}.tmp", file_name(id)));
    let ctx = |what: &str| format!("{what} segment {}", tmp.display());
    let header = header_bytes(id, created_ms);
    let file = fs.create(&tmp).map_err(|e| Error::io(ctx("creating"), e))?;
    let written = file
        .write_all_at(&header, 0)
        .map_err(|e| Error::io(ctx("writing header of"), e))
        .and_then(|_| file.sync_all().map_err(|e| Error::io(ctx("syncing"), e)))
        .and_then(|_| {
            fs.rename(&tmp, &path)
                .map_err(|e| Error::io(ctx("renaming"), e))
        });
    if let Err(e) = written {
        // Disk full, typically: leave no empty temporary file behind for every try.
        let _ = fs.remove_file(&tmp);
        return Err(e);
    }
    sync_dir_on(fs, dir)?;
    Ok((file, path))
}

/// The header of segment `id`.
fn header_bytes(id: u64, created_ms: u64) -> [u8; HEADER_BYTES as usize] {
    let mut header = [0u8; HEADER_BYTES as usize];
    header[..8].copy_from_slice(MAGIC);
    header[8] = FORMAT_VERSION;
    header[16..24].copy_from_slice(&id.to_le_bytes());
    header[24..32].copy_from_slice(&created_ms.to_le_bytes());
    let crc = crc32c::crc32c(&header[16..32]);
    header[12..16].copy_from_slice(&crc.to_le_bytes());
    header
}

/// Reads and checks the header of the segment file at `path`.
pub fn read_header(file: &dyn FsFile, path: &Path) -> Result<Header> {
    let mut buf = [0u8; HEADER_BYTES as usize];
    file.read_exact_at(&mut buf, 0)
        .map_err(|e| Error::io(format!("reading the header of {}", path.display()), e))?;
    parse_header(&buf, path)
}

/// Writes a fresh header over a corrupt one (the records carry their own sequence numbers,
/// so only the id and creation time are at stake) and syncs the file.
pub fn rewrite_header(file: &dyn FsFile, path: &Path, id: u64, created_ms: u64) -> Result<()> {
    file.write_all_at(&header_bytes(id, created_ms), 0)
        .and_then(|_| file.sync_all())
        .map_err(|e| Error::io(format!("rewriting the header of {}", path.display()), e))
}

/// fsyncs a directory so that entries created or removed in it survive a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    sync_dir_on(&RealFs, dir)
}

/// [`sync_dir`] on the file system `fs`.
pub fn sync_dir_on(fs: &dyn Fs, dir: &Path) -> Result<()> {
    fs.sync_dir(dir)
        .map_err(|e| Error::io(format!("syncing directory {}", dir.display()), e))
}

/// A header read back from disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub id: u64,
    pub created_ms: u64,
}

fn parse_header(buf: &[u8], path: &Path) -> Result<Header> {
    let corrupt = |reason: &str| Error::Corrupt {
        location: format!("header of {}", path.display()),
        reason: reason.into(),
    };
    if buf.len() < HEADER_BYTES as usize {
        return Err(corrupt("shorter than a header"));
    }
    if &buf[..8] != MAGIC {
        return Err(corrupt("not a hookd segment (bad magic)"));
    }
    if buf[8] > FORMAT_VERSION {
        return Err(Error::NewerFormat {
            what: format!("segment {}", path.display()),
            found: buf[8],
            supported: FORMAT_VERSION,
        });
    }
    let crc = u32::from_le_bytes(buf[12..16].try_into().expect("4 bytes"));
    if crc != crc32c::crc32c(&buf[16..32]) {
        return Err(corrupt("header checksum mismatch"));
    }
    Ok(Header {
        id: u64::from_le_bytes(buf[16..24].try_into().expect("8 bytes")),
        created_ms: u64::from_le_bytes(buf[24..32].try_into().expect("8 bytes")),
    })
}

/// A stretch of a segment that did not decode, found by [`scan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRange {
    /// Byte offset in the file.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// What was wrong with the first frame of it.
    pub reason: String,
    /// The sequence number of the last whole record before it, and of the first after it
    /// (`None`: none in this segment): the records lost in it lie between.
    pub between: (Option<u64>, Option<u64>),
}

/// What recovery learns from reading a whole segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    pub header: Header,
    /// `(seq, offset)` of every `sparse_every`-th record, starting with the first.
    pub sparse: Vec<(u64, u64)>,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub last_ts_ms: u64,
    pub count: u64,
    /// The distinct record keys, sorted.
    pub keys: Vec<u64>,
    /// End of the last whole frame: where appends continue.
    pub valid_end: u64,
    /// Corrupt stretches followed by valid frames (to quarantine).
    pub bad: Vec<BadRange>,
    /// A torn or garbage tail after the last valid frame (to quarantine and truncate).
    pub tail: Option<BadRange>,
    /// Sequence numbers lost inside `bad` ranges (a gap in the sequence).
    pub lost: Vec<(u64, u64)>,
    /// The header did not check out (its bytes, `0..HEADER_BYTES`), though records follow:
    /// `header` then holds the id of the file's name and the first record's time.
    pub header_bad: Option<BadRange>,
}

/// Reads a whole segment and classifies every byte of it. Never modifies the file.
pub fn scan(path: &Path, sparse_every: u64) -> Result<Scan> {
    scan_on(&RealFs, path, sparse_every)
}

/// [`scan`] on the file system `fs`.
pub fn scan_on(fs: &dyn Fs, path: &Path, sparse_every: u64) -> Result<Scan> {
    let buf = fs
        .read(path)
        .map_err(|e| Error::io(format!("reading segment {}", path.display()), e))?;
    let (header, header_bad) = match parse_header(&buf, path) {
        Ok(header) => (header, None),
        Err(e @ Error::Corrupt { .. }) => {
            // Keep the records of a segment whose header alone is damaged (a foreign file
            // has none, and is refused below).
            let id = path
                .file_name()
                .and_then(|n| parse_file_name(&n.to_string_lossy()));
            match (id, buf.len() > HEADER_BYTES as usize) {
                (Some(id), true) => {
                    let bad = BadRange {
                        offset: 0,
                        len: HEADER_BYTES,
                        reason: e.to_string(),
                        between: (None, None),
                    };
                    (Header { id, created_ms: 0 }, Some((bad, e)))
                }
                _ => return Err(e),
            }
        }
        Err(e) => return Err(e),
    };
    let mut s = Scan {
        header,
        sparse: Vec::new(),
        first_seq: None,
        last_seq: None,
        last_ts_ms: 0,
        count: 0,
        keys: Vec::new(),
        valid_end: HEADER_BYTES,
        bad: Vec::new(),
        tail: None,
        lost: Vec::new(),
        header_bad: None,
    };
    let mut pos = HEADER_BYTES as usize;
    while pos < buf.len() {
        match codec::decode_frame(&buf[pos..])? {
            Frame::Whole { rec, len } => {
                if let Some(b) = s.bad.last_mut().filter(|b| b.between.1.is_none()) {
                    b.between.1 = Some(rec.seq);
                }
                if s.first_seq.is_none() && header_bad.is_some() {
                    s.header.created_ms = rec.ts_ms;
                }
                if let Some(last) = s.last_seq {
                    if rec.seq <= last {
                        // Out of order: treat like any other corruption.
                        let reason = format!("sequence {} after {}", rec.seq, last);
                        pos = resync(&buf, pos, &mut s, reason);
                        continue;
                    }
                    if rec.seq > last + 1 {
                        s.lost.push((last + 1, rec.seq - 1));
                    }
                }
                if s.count % sparse_every == 0 {
                    s.sparse.push((rec.seq, pos as u64));
                }
                s.first_seq.get_or_insert(rec.seq);
                s.last_seq = Some(rec.seq);
                s.last_ts_ms = rec.ts_ms;
                if let Err(at) = s.keys.binary_search(&rec.key) {
                    s.keys.insert(at, rec.key);
                }
                s.count += 1;
                pos += len;
                s.valid_end = pos as u64;
            }
            Frame::Partial => {
                s.tail = Some(BadRange {
                    offset: pos as u64,
                    len: (buf.len() - pos) as u64,
                    reason: "torn frame at end of segment".into(),
                    between: (s.last_seq, None),
                });
                break;
            }
            Frame::Bad { reason } => pos = resync(&buf, pos, &mut s, reason),
        }
    }
    match header_bad {
        Some((_, e)) if s.count == 0 => Err(e),
        Some((bad, _)) => {
            s.header_bad = Some(bad);
            Ok(s)
        }
        None => Ok(s),
    }
}

/// After a bad frame at `pos`, finds the next whole frame. Records the skipped bytes as a bad
/// range (or as the tail when nothing valid follows) and returns where to continue.
fn resync(buf: &[u8], pos: usize, s: &mut Scan, reason: String) -> usize {
    let magic = FRAME_MAGIC.to_le_bytes();
    let mut next = pos + 1;
    while next + FRAME_HEADER_BYTES <= buf.len() {
        if buf[next..next + 4] == magic
            && matches!(codec::decode_frame(&buf[next..]), Ok(Frame::Whole { rec, .. })
                if s.last_seq.is_none_or(|l| rec.seq > l))
        {
            s.bad.push(BadRange {
                offset: pos as u64,
                len: (next - pos) as u64,
                reason,
                between: (s.last_seq, None),
            });
            return next;
        }
        next += 1;
    }
    s.tail = Some(BadRange {
        offset: pos as u64,
        len: (buf.len() - pos) as u64,
        reason,
        between: (s.last_seq, None),
    });
    buf.len()
}

/// An owned record read back from a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub ts_ms: u64,
    pub key: u64,
    pub payload: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::LogRecord;

    fn write_frames(file: &dyn FsFile, start: u64, seqs: std::ops::RangeInclusive<u64>) -> u64 {
        let mut buf = Vec::new();
        for seq in seqs {
            let payload = vec![seq as u8; (seq % 50) as usize + 1];
            codec::encode_frame(
                &LogRecord {
                    seq,
                    ts_ms: seq * 10,
                    key: seq % 3,
                    payload: &payload,
                },
                &mut buf,
            )
            .unwrap();
        }
        file.write_all_at(&buf, start).unwrap();
        start + buf.len() as u64
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(parse_file_name(&file_name(17)), Some(17));
        assert_eq!(parse_file_name("seg-1.log"), None);
        assert_eq!(parse_file_name("seg-00000000000000000017.log.tmp"), None);
    }

    #[test]
    fn scan_finds_records_and_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (file, path) = create(dir.path(), 3, 99).unwrap();
        let end = write_frames(&*file, HEADER_BYTES, 1..=10);
        file.write_all_at(&[0x52, 0x46, 0x48], end).unwrap(); // half a frame header
        let s = scan(&path, 4).unwrap();
        assert_eq!(
            s.header,
            Header {
                id: 3,
                created_ms: 99
            }
        );
        assert_eq!((s.first_seq, s.last_seq, s.count), (Some(1), Some(10), 10));
        assert_eq!(s.keys, vec![0, 1, 2]);
        assert_eq!(s.valid_end, end);
        assert_eq!(
            s.sparse.iter().map(|p| p.0).collect::<Vec<_>>(),
            vec![1, 5, 9]
        );
        assert_eq!(s.tail.as_ref().map(|t| (t.offset, t.len)), Some((end, 3)));
        assert!(s.bad.is_empty());
        let bytes = std::fs::read(&path).unwrap();
        match codec::decode_frame(&bytes[s.sparse[1].1 as usize..]).unwrap() {
            Frame::Whole { rec, .. } => {
                assert_eq!(rec.seq, 5);
                assert_eq!(rec.payload, vec![5u8; 6]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn scan_skips_a_corrupt_middle_and_reports_the_lost_sequence() {
        let dir = tempfile::tempdir().unwrap();
        let (file, path) = create(dir.path(), 1, 0).unwrap();
        let end = write_frames(&*file, HEADER_BYTES, 1..=6);
        let whole = scan(&path, 1).unwrap();
        let (_, third) = whole.sparse[2];
        file.write_all_at(&[0xFF; 3], third + 13).unwrap();
        let s = scan(&path, 1).unwrap();
        assert_eq!(s.count, 5);
        assert_eq!(s.lost, vec![(3, 3)]);
        assert_eq!(s.bad.len(), 1);
        assert_eq!(s.bad[0].offset, third);
        assert_eq!(s.valid_end, end);
        assert!(s.tail.is_none());
    }

    #[test]
    fn a_damaged_header_keeps_its_records() {
        let dir = tempfile::tempdir().unwrap();
        let (file, path) = create(dir.path(), 7, 0).unwrap();
        let end = write_frames(&*file, HEADER_BYTES, 1..=4);
        file.write_all_at(b"XX", 0).unwrap(); // the magic
        let s = scan(&path, 1).unwrap();
        let bad = s.header_bad.as_ref().expect("header reported");
        assert_eq!((bad.offset, bad.len), (0, HEADER_BYTES));
        assert_eq!(
            s.header,
            Header {
                id: 7,
                created_ms: 10
            },
            "id from the name, time from record 1"
        );
        assert_eq!((s.count, s.valid_end), (4, end));
        assert!(matches!(
            read_header(&*file, &path),
            Err(Error::Corrupt { .. })
        ));
        rewrite_header(&*file, &path, 7, 10).unwrap();
        assert_eq!(
            read_header(&*file, &path).unwrap(),
            Header {
                id: 7,
                created_ms: 10
            }
        );
        assert!(scan(&path, 1).unwrap().header_bad.is_none());
    }

    #[test]
    fn foreign_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file_name(1));
        std::fs::write(&path, vec![b'x'; 64]).unwrap();
        assert!(matches!(scan(&path, 1), Err(Error::Corrupt { .. })));
    }
}
