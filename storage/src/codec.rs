//! Byte layouts: the pinned bincode configuration, versioned values, and log frames.
//!
//! Every value this crate writes starts with a one-byte format version, followed by bincode 2
//! with [`BINCODE`]: little endian, fixed-width integers, and a decode limit so that a corrupt
//! length can never ask for gigabytes. Changing any of this is a format change: bump
//! [`FORMAT_VERSION`] and keep a decoder for the old version.
//!
//! A log frame is
//! ```text
//! magic  u32 LE = FRAME_MAGIC      lets recovery find the next frame after a corrupt one
//! len    u32 LE                    length of `body`
//! crc    u32 LE = crc32c(len || body)
//! body   = version u8 || bincode(LogRecord { seq, ts_ms, key, payload })
//! ```

use bincode::{
    config::{Configuration, Fixint, Limit, LittleEndian},
    BorrowDecode, Encode,
};

use crate::error::{Error, Result};

/// The format version of every record and value this build writes.
pub const FORMAT_VERSION: u8 = 1;

/// Largest encoded record body the log accepts (and so the largest a corrupt length may claim).
pub const RECORD_BYTES_MAX: usize = 16 << 20;

/// Marks the start of a log frame.
pub const FRAME_MAGIC: u32 = 0x4B48_4652; // "RFHK" little endian

/// Bytes in a frame header: magic, len, crc.
pub const FRAME_HEADER_BYTES: usize = 12;

/// The one bincode configuration used on disk. Pinned: changing it changes the format.
pub const BINCODE: Configuration<LittleEndian, Fixint, Limit<RECORD_BYTES_MAX>> =
    bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
        .with_limit::<RECORD_BYTES_MAX>();

/// One event in the log. The payload is opaque to the storage crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, BorrowDecode)]
pub struct LogRecord<'a> {
    /// Sequence number, dense and increasing from 1.
    pub seq: u64,
    /// Wall-clock milliseconds since the Unix epoch when it was appended.
    pub ts_ms: u64,
    /// The caller's partition key (hookd: the application). Each segment remembers the keys
    /// it holds, so a scan for one key skips segments without it.
    pub key: u64,
    /// The caller's bytes.
    pub payload: &'a [u8],
}

/// Appends one frame holding `rec` to `out`. Returns the frame's length.
pub fn encode_frame(rec: &LogRecord<'_>, out: &mut Vec<u8>) -> Result<usize> {
    let start = out.len();
    out.extend_from_slice(&FRAME_MAGIC.to_le_bytes());
    out.extend_from_slice(&[0u8; 8]); // len and crc, filled below
    out.push(FORMAT_VERSION);
    if let Err(e) = bincode::encode_into_std_write(rec, out, BINCODE) {
        out.truncate(start);
        return Err(Error::Corrupt {
            location: format!("record {}", rec.seq),
            reason: format!("encode: {e}"),
        });
    }
    let body_len = out.len() - start - FRAME_HEADER_BYTES;
    if body_len > RECORD_BYTES_MAX {
        out.truncate(start);
        return Err(Error::TooLarge {
            len: body_len,
            max: RECORD_BYTES_MAX,
        });
    }
    let len = (body_len as u32).to_le_bytes();
    out[start + 4..start + 8].copy_from_slice(&len);
    let crc = crc32c::crc32c_append(crc32c::crc32c(&len), &out[start + FRAME_HEADER_BYTES..]);
    out[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
    Ok(out.len() - start)
}

/// What [`decode_frame`] found at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A whole, valid frame of `len` bytes.
    Whole { rec: LogRecord<'a>, len: usize },
    /// The buffer ends inside a frame (a torn tail, or a read that was too short).
    Partial,
    /// The bytes are not a valid frame; `reason` says why.
    Bad { reason: String },
}

/// The length of the frame starting at `buf` as its header claims (header included), if the
/// header is there and plausible.
pub fn frame_len(buf: &[u8]) -> Option<usize> {
    let head = buf.get(..FRAME_HEADER_BYTES)?;
    let magic = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) == FRAME_MAGIC;
    let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
    (magic && len > 0 && len <= RECORD_BYTES_MAX).then_some(FRAME_HEADER_BYTES + len)
}

/// Decodes the frame at the start of `buf`. Never panics, whatever the bytes.
pub fn decode_frame(buf: &[u8]) -> Result<Frame<'_>> {
    if buf.len() < FRAME_HEADER_BYTES {
        return Ok(Frame::Partial);
    }
    let word = |i: usize| u32::from_le_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
    if word(0) != FRAME_MAGIC {
        return Ok(Frame::Bad {
            reason: "bad frame magic".into(),
        });
    }
    let len = word(4) as usize;
    if len == 0 || len > RECORD_BYTES_MAX {
        return Ok(Frame::Bad {
            reason: format!("frame length {len} out of range"),
        });
    }
    let Some(body) = buf.get(FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + len) else {
        return Ok(Frame::Partial);
    };
    let crc = crc32c::crc32c_append(crc32c::crc32c(&buf[4..8]), body);
    if crc != word(8) {
        return Ok(Frame::Bad {
            reason: "checksum mismatch".into(),
        });
    }
    let version = body[0];
    if version > FORMAT_VERSION {
        return Err(Error::NewerFormat {
            what: "log record".into(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    match bincode::borrow_decode_from_slice::<LogRecord<'_>, _>(&body[1..], BINCODE) {
        Ok((rec, used)) if used == len - 1 => Ok(Frame::Whole {
            rec,
            len: FRAME_HEADER_BYTES + len,
        }),
        Ok(_) => Ok(Frame::Bad {
            reason: "trailing bytes in record".into(),
        }),
        Err(e) => Ok(Frame::Bad {
            reason: format!("decode: {e}"),
        }),
    }
}

/// Encodes a value as `version || bincode(value)`.
pub fn encode_value<T: Encode>(value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(64);
    out.push(FORMAT_VERSION);
    bincode::encode_into_std_write(value, &mut out, BINCODE).map_err(|e| Error::Corrupt {
        location: "value being written".into(),
        reason: format!("encode: {e}"),
    })?;
    Ok(out)
}

/// Decodes a value written by [`encode_value`]; `what` names it in errors.
pub fn decode_value<T: bincode::Decode<()>>(bytes: &[u8], what: &dyn Fn() -> String) -> Result<T> {
    let Some((&version, rest)) = bytes.split_first() else {
        return Err(Error::Corrupt {
            location: what(),
            reason: "empty value".into(),
        });
    };
    if version > FORMAT_VERSION {
        return Err(Error::NewerFormat {
            what: what(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    match bincode::decode_from_slice::<T, _>(rest, BINCODE) {
        Ok((v, used)) if used == rest.len() => Ok(v),
        Ok(_) => Err(Error::Corrupt {
            location: what(),
            reason: "trailing bytes".into(),
        }),
        Err(e) => Err(Error::Corrupt {
            location: what(),
            reason: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(
            &LogRecord {
                seq,
                ts_ms: 7,
                key: 3,
                payload,
            },
            &mut out,
        )
        .unwrap();
        out
    }

    #[test]
    fn frame_round_trips() {
        let buf = frame(42, b"hello");
        match decode_frame(&buf).unwrap() {
            Frame::Whole { rec, len } => {
                assert_eq!(len, buf.len());
                assert_eq!(
                    rec,
                    LogRecord {
                        seq: 42,
                        ts_ms: 7,
                        key: 3,
                        payload: b"hello"
                    }
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn every_truncation_is_partial_and_every_bit_flip_is_caught() {
        let buf = frame(1, b"some payload bytes");
        for cut in 0..buf.len() {
            assert_eq!(
                decode_frame(&buf[..cut]).unwrap(),
                Frame::Partial,
                "cut at {cut}"
            );
        }
        for byte in 0..buf.len() {
            for bit in 0..8 {
                let mut b = buf.clone();
                b[byte] ^= 1 << bit;
                match decode_frame(&b) {
                    Ok(Frame::Whole { .. }) => panic!("flip at {byte}:{bit} went unnoticed"),
                    Ok(_) | Err(Error::NewerFormat { .. }) => {}
                    Err(e) => panic!("unexpected error {e}"),
                }
            }
        }
    }

    #[test]
    fn newer_version_is_refused_by_name() {
        let mut buf = frame(1, b"x");
        buf[FRAME_HEADER_BYTES] = FORMAT_VERSION + 1;
        let len = &buf[4..8].to_vec();
        let crc = crc32c::crc32c_append(crc32c::crc32c(len), &buf[FRAME_HEADER_BYTES..]);
        buf[8..12].copy_from_slice(&crc.to_le_bytes());
        let err = decode_frame(&buf).unwrap_err();
        assert!(matches!(err, Error::NewerFormat { found, .. } if found == FORMAT_VERSION + 1));
    }

    #[test]
    fn values_carry_a_version() {
        let bytes = encode_value(&(5u64, String::from("a"))).unwrap();
        assert_eq!(bytes[0], FORMAT_VERSION);
        let back: (u64, String) = decode_value(&bytes, &|| "t".into()).unwrap();
        assert_eq!(back, (5, "a".into()));
        let err = decode_value::<(u64, String)>(&bytes[..bytes.len() - 1], &|| "t".into());
        assert!(matches!(err, Err(Error::Corrupt { .. })));
    }
}
