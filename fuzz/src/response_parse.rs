//! `response_parse`: the delivery client's reading of a webhook receiver's answer
//! (`hookd::deliver::response`): the status line and headers by `parse_head`, `1xx` heads,
//! the body by `BodyReader` (length, chunked, until close) fed in pieces cut where the
//! input says, and `Retry-After` by `policy::parse_retry_after`.
//!
//! Input: byte 0 picks how many body bytes are kept (`keep_max`, 0 to 255 or 64 KiB); bytes
//! 1 to 4 are two cut points for the pieces the body arrives in; the rest is the answer.
//!
//! Checked, beyond "no panic":
//! - the answer and its body do not depend on where the pieces were cut (the same bytes
//!   whole, and cut in two places, read the same);
//! - an answer that counts has a final status (not `1xx`), a body kept within `keep_max`,
//!   and a `Retry-After` of at most 128 bytes;
//! - a `Retry-After` value, and the input itself as one, parses to a wait within a day, or
//!   to nothing, whatever the bytes.

use std::time::Duration;

use hookd::deliver::{
    policy::{parse_retry_after, RETRY_AFTER_MAX},
    response::{parse_whole, RETRY_AFTER_BYTES_MAX},
};

/// "Now" for `Retry-After` dates: 2026-12-05.
const NOW_MS: u64 = 1_796_428_800_000;

pub fn run(data: &[u8]) {
    if data.len() < 5 {
        return;
    }
    let keep_max = match data[0] {
        0xff => 64 << 10,
        n => usize::from(n),
    };
    let cuts = [
        usize::from(u16::from_le_bytes([data[1], data[2]])),
        usize::from(u16::from_le_bytes([data[3], data[4]])),
    ];
    let answer = &data[5..];
    let whole = parse_whole(answer, &[], keep_max);
    let pieces = parse_whole(answer, &cuts, keep_max);
    assert_eq!(whole, pieces, "the answer depends on where it was cut");
    if let Ok((status, retry_after, body)) = &whole {
        assert!(
            !(100..200).contains(status),
            "an interim status {status} counted"
        );
        assert!(body.len() <= keep_max, "kept {} > {keep_max}", body.len());
        if let Some(value) = retry_after {
            assert!(value.len() <= RETRY_AFTER_BYTES_MAX);
            check_retry_after(value);
        }
    }
    check_retry_after(&String::from_utf8_lossy(answer));
}

fn check_retry_after(value: &str) {
    if let Some(wait) = parse_retry_after(value, NOW_MS) {
        assert!(wait <= RETRY_AFTER_MAX, "{value:?} waits {wait:?}");
        assert!(wait >= Duration::ZERO);
    }
}
