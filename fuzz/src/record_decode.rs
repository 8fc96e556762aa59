//! `record_decode`: the storage crate's decoders of bytes read back from disk
//! (`storage::codec` and the segment scan of `storage::segment`), which must never panic
//! whatever the bytes ("bad bytes never panic or crash-loop", ARCHITECTURE.md).
//!
//! Input: byte 0 picks a mode (modulo [`MODES`]), the rest is its input.
//! - `frames`: walks `decode_frame` over the bytes as recovery does. A whole frame must be
//!   exactly as long as its header says, re-encode to the same bytes, and read as `Partial`
//!   when cut short; a newer version is the only error.
//! - one mode per value kept in the index (`decode_value::<T>`): a decoded value must
//!   re-encode to bytes that decode to the same value.
//! - `segment`: a segment file built from structured pieces (valid frames with gaps in their
//!   sequence, raw garbage, bit flips, a cut tail) is written to a temporary file and read
//!   with `segment::scan`. The scan must account for every byte (whole frames, bad ranges, a
//!   tail) and keep its counters consistent; for a file of valid frames, possibly cut short,
//!   it must find exactly the frames written.

use std::path::PathBuf;
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use storage::codec::{
    decode_frame, decode_value, encode_frame, encode_value, frame_len, Frame, LogRecord,
    FORMAT_VERSION, FRAME_HEADER_BYTES,
};
use storage::log::SegmentSummary;
use storage::segment::{self, HEADER_BYTES};
use storage::state::{
    AppRecord, AttemptRecord, AuditRecord, DeliveryState, EndpointRecord, EventTypeRecord,
    IdempotencyRecord, MessageRecord, MessageRef,
};

/// A fresh temporary directory, under `$HOOKD_FUZZ_TMPDIR`, else `/dev/shm` where it exists
/// (a tmpfs), else the system's temporary directory.
fn scratch_dir() -> tempfile::TempDir {
    let root = std::env::var_os("HOOKD_FUZZ_TMPDIR")
        .map(PathBuf::from)
        .or_else(|| {
            let shm = PathBuf::from("/dev/shm");
            shm.is_dir().then_some(shm)
        })
        .unwrap_or_else(std::env::temp_dir);
    tempfile::Builder::new()
        .prefix("hookd-fuzz-")
        .tempdir_in(&root)
        .or_else(|_| tempfile::tempdir())
        .expect("a temporary directory")
}

/// The modes, in the order byte 0 picks them.
pub const MODES: &[&str] = &[
    "frames",
    "AppRecord",
    "EndpointRecord",
    "EventTypeRecord",
    "DeliveryState",
    "AttemptRecord",
    "IdempotencyRecord",
    "AuditRecord",
    "MessageRef",
    "MessageRecord",
    "SegmentSummary",
    "segment",
];

/// Frames looked at per input in `frames` mode, at most.
const FRAMES_MAX: usize = 256;

/// Decodes `$bytes` as a `$t` value; what decodes must survive a round trip. (A macro, so
/// that the bincode traits need not be named here.)
macro_rules! value {
    ($t:ty, $bytes:expr) => {{
        let bytes: &[u8] = $bytes;
        let what = || stringify!($t).to_owned();
        match decode_value::<$t>(bytes, &what) {
            Ok(v) => {
                let again = encode_value(&v).expect("a decoded value encodes");
                assert_eq!(again[0], FORMAT_VERSION);
                let back = decode_value::<$t>(&again, &what).expect("a re-encoded value decodes");
                assert_eq!(back, v, "{} changed in a round trip", stringify!($t));
                assert_eq!(encode_value(&back).expect("encodes"), again);
                // Values without maps have one encoding: the bytes themselves, but for a
                // version byte from an older format.
                if again.len() == bytes.len() {
                    assert_eq!(
                        again[1..],
                        bytes[1..],
                        "{} re-encodes differently",
                        stringify!($t)
                    );
                }
            }
            Err(storage::Error::NewerFormat { found, .. }) => {
                assert!(found > FORMAT_VERSION && bytes.first() == Some(&found))
            }
            Err(storage::Error::Corrupt { location, reason }) => {
                assert_eq!(location, stringify!($t));
                assert!(!reason.is_empty());
            }
            Err(e) => panic!("unexpected error decoding {}: {e:?}", stringify!($t)),
        }
    }};
}

pub fn run(data: &[u8]) {
    let [mode, rest @ ..] = data else {
        return;
    };
    match usize::from(*mode) % MODES.len() {
        0 => frames(rest),
        1 => value!(AppRecord, rest),
        2 => value!(EndpointRecord, rest),
        3 => value!(EventTypeRecord, rest),
        4 => value!(DeliveryState, rest),
        5 => value!(AttemptRecord, rest),
        6 => value!(IdempotencyRecord, rest),
        7 => value!(AuditRecord, rest),
        8 => value!(MessageRef, rest),
        9 => value!(MessageRecord, rest),
        10 => value!(SegmentSummary, rest),
        _ => segment_scan(rest),
    }
}

/// Walks frames as recovery does: step over whole frames, one byte past bad ones, stop at a
/// partial one.
fn frames(buf: &[u8]) {
    let mut pos = 0;
    for _ in 0..FRAMES_MAX {
        if pos >= buf.len() {
            return;
        }
        let at = &buf[pos..];
        match decode_frame(at) {
            Ok(Frame::Whole { rec, len }) => {
                check_whole(at, &rec, len);
                pos += len;
            }
            Ok(Frame::Partial) => {
                let claimed = frame_len(at);
                assert!(
                    at.len() < FRAME_HEADER_BYTES || claimed.is_some_and(|n| n > at.len()),
                    "partial frame of {} bytes, header claims {claimed:?}",
                    at.len()
                );
                return;
            }
            Ok(Frame::Bad { reason }) => {
                assert!(!reason.is_empty());
                pos += 1;
            }
            Err(storage::Error::NewerFormat { found, .. }) => {
                assert!(found > FORMAT_VERSION);
                assert_eq!(at.get(FRAME_HEADER_BYTES), Some(&found));
                pos += 1;
            }
            Err(e) => panic!("decode_frame failed instead of answering Bad: {e:?}"),
        }
    }
}

/// A whole frame: its length, its re-encoding and its prefixes.
fn check_whole(at: &[u8], rec: &LogRecord<'_>, len: usize) {
    assert!(len > FRAME_HEADER_BYTES && len <= at.len());
    assert_eq!(
        frame_len(at),
        Some(len),
        "header and frame disagree on the length"
    );
    let mut again = Vec::new();
    let n = encode_frame(rec, &mut again).expect("a decoded record encodes");
    assert_eq!(n, len, "re-encoded frame has another length");
    if at[FRAME_HEADER_BYTES] == FORMAT_VERSION {
        assert_eq!(again, at[..len], "re-encoded frame differs");
    }
    for cut in [0, 1, FRAME_HEADER_BYTES - 1, FRAME_HEADER_BYTES, len - 1] {
        assert_eq!(
            decode_frame(&at[..cut]).ok(),
            Some(Frame::Partial),
            "a frame cut at {cut} of {len}"
        );
    }
}

/// One piece of a segment file in `segment` mode.
#[derive(Debug, Arbitrary)]
enum Piece {
    /// A valid frame, its sequence number 1 to 3 past the previous one.
    Frame {
        seq_step: u8,
        key: u8,
        ts_ms: u16,
        payload: Vec<u8>,
    },
    /// Bytes as they come.
    Raw(Vec<u8>),
    /// Flips one bit of the file built so far (header included).
    Flip { at: u16, bit: u8 },
}

#[derive(Debug, Arbitrary)]
struct SegmentInput {
    sparse_every: u8,
    pieces: Vec<Piece>,
    /// Bytes cut off the end of the file at last.
    cut: u8,
}

/// The header of a segment as `segment::create` writes it, made once.
fn segment_header() -> &'static [u8] {
    static HEADER: OnceLock<Vec<u8>> = OnceLock::new();
    HEADER.get_or_init(|| {
        let dir = scratch_dir();
        let (_, path) = segment::create(dir.path(), 7, 1_000).expect("create a segment");
        std::fs::read(path).expect("read the segment header")
    })
}

fn segment_scan(data: &[u8]) {
    let Ok(input) = SegmentInput::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let sparse_every = 1 + u64::from(input.sparse_every % 8);
    let header = segment_header();
    let mut file = header.to_vec();
    // What a clean file holds: `(seq, key, offset, end)` of each frame written.
    let mut written: Vec<(u64, u64, usize, usize)> = Vec::new();
    let mut clean = true;
    let mut seq = 0u64;
    for piece in input.pieces.iter().take(64) {
        match piece {
            Piece::Frame {
                seq_step,
                key,
                ts_ms,
                payload,
            } => {
                seq += 1 + u64::from(seq_step % 3);
                let rec = LogRecord {
                    seq,
                    ts_ms: u64::from(*ts_ms),
                    key: u64::from(*key % 4),
                    payload: &payload[..payload.len().min(512)],
                };
                let start = file.len();
                encode_frame(&rec, &mut file).expect("encode a frame");
                written.push((seq, rec.key, start, file.len()));
            }
            Piece::Raw(bytes) => {
                clean &= bytes.is_empty();
                file.extend_from_slice(&bytes[..bytes.len().min(512)]);
            }
            Piece::Flip { at, bit } => {
                let i = usize::from(*at) % file.len();
                file[i] ^= 1 << (bit % 8);
                clean = false;
            }
        }
    }
    let cut = usize::from(input.cut).min(file.len());
    file.truncate(file.len() - cut);

    let dir = scratch_dir();
    let path = dir.path().join(segment::file_name(7));
    std::fs::write(&path, &file).expect("write the segment");
    let scan = match segment::scan(&path, sparse_every) {
        Ok(scan) => scan,
        Err(storage::Error::Corrupt { .. } | storage::Error::NewerFormat { .. }) => {
            let header_len = HEADER_BYTES as usize;
            assert!(
                file.len() < header_len || file[..header_len] != header[..],
                "a segment with an intact header was refused"
            );
            return;
        }
        Err(e) => panic!("scan failed: {e:?}"),
    };
    let len = file.len() as u64;

    // Every byte is accounted for: whole frames up to `valid_end` (with bad ranges among
    // them), then the tail.
    assert!(scan.valid_end >= HEADER_BYTES && scan.valid_end <= len);
    match &scan.tail {
        Some(tail) => {
            assert_eq!(tail.offset, scan.valid_end, "{scan:?}");
            assert_eq!(tail.offset + tail.len, len, "{scan:?}");
            assert!(tail.len > 0);
        }
        None => assert_eq!(scan.valid_end, len, "{scan:?}"),
    }
    let mut after = HEADER_BYTES;
    for bad in &scan.bad {
        assert!(bad.offset >= after && bad.len > 0, "{scan:?}");
        after = bad.offset + bad.len;
        assert!(
            after < scan.valid_end,
            "a bad range is not followed by a frame: {scan:?}"
        );
        assert!(matches!(
            decode_frame(&file[after as usize..]),
            Ok(Frame::Whole { .. })
        ));
    }
    // Counters.
    match (scan.first_seq, scan.last_seq) {
        (Some(first), Some(last)) => {
            assert!(first <= last && scan.count > 0);
            let lost: u64 = scan.lost.iter().map(|&(a, b)| b - a + 1).sum();
            assert_eq!(scan.count + lost, last - first + 1, "{scan:?}");
            for &(a, b) in &scan.lost {
                assert!(first < a && a <= b && b < last, "{scan:?}");
            }
        }
        (None, None) => assert!(scan.count == 0 && scan.lost.is_empty() && scan.keys.is_empty()),
        _ => panic!("first and last sequence disagree: {scan:?}"),
    }
    assert!(
        scan.keys.windows(2).all(|w| w[0] < w[1]),
        "keys not sorted: {scan:?}"
    );
    assert_eq!(scan.sparse.len() as u64, scan.count.div_ceil(sparse_every));
    for (i, &(seq, off)) in scan.sparse.iter().enumerate() {
        assert!(i == 0 || scan.sparse[i - 1] < (seq, off));
        match decode_frame(&file[off as usize..]) {
            Ok(Frame::Whole { rec, .. }) => assert_eq!(rec.seq, seq),
            other => panic!("sparse entry ({seq}, {off}) is not a frame: {other:?}"),
        }
    }

    if clean {
        // Exactly the frames that survived the cut.
        let whole: Vec<_> = written.iter().filter(|w| w.3 <= file.len()).collect();
        assert_eq!(scan.count, whole.len() as u64, "{scan:?}");
        assert_eq!(scan.first_seq, whole.first().map(|w| w.0));
        assert_eq!(scan.last_seq, whole.last().map(|w| w.0));
        let end = whole.last().map_or(HEADER_BYTES, |w| w.3 as u64);
        assert_eq!(scan.valid_end, end);
        assert!(scan.bad.is_empty(), "{scan:?}");
        assert_eq!(scan.tail.is_some(), end < len, "{scan:?}");
        let mut keys: Vec<u64> = whole.iter().map(|w| w.1).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(scan.keys, keys);
        let gaps: Vec<(u64, u64)> = whole
            .windows(2)
            .filter(|w| w[1].0 > w[0].0 + 1)
            .map(|w| (w[0].0 + 1, w[1].0 - 1))
            .collect();
        assert_eq!(scan.lost, gaps);
    }
}
