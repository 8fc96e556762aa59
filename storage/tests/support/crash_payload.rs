//! The crash test's payloads, shared by the child process and the checking parent.
#![allow(dead_code)]

/// The payload for `(thread, counter)`: self-describing, so any record can be checked alone.
pub fn payload(thread: u64, counter: u64) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&thread.to_le_bytes());
    v.extend_from_slice(&counter.to_le_bytes());
    let len = 16 + ((thread * 7919 + counter * 104_729) % 2000) as usize;
    v.extend((0..len).map(|i| (thread as usize * 13 + counter as usize * 7 + i) as u8));
    v
}

/// Reads `(thread, counter)` back from a payload made by [`payload`].
pub fn describe(p: &[u8]) -> Option<(u64, u64)> {
    let t = u64::from_le_bytes(p.get(..8)?.try_into().ok()?);
    let c = u64::from_le_bytes(p.get(8..16)?.try_into().ok()?);
    Some((t, c))
}
