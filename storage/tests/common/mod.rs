//! Helpers shared by the storage integration tests.
#![allow(dead_code)]

use std::{path::Path, sync::Arc, time::Duration};

use storage::{Durability, LogOptions, ManualClock, Store, StoreOptions};

/// Small segments so that tests roll often.
pub fn opts(durability: Durability) -> StoreOptions {
    StoreOptions {
        log: LogOptions {
            durability,
            flush_interval: Duration::from_millis(2),
            commit_window: Duration::ZERO,
            window_while: None,
            segment_bytes_max: 4096,
            segment_events_max: 16,
            segment_age_max: Duration::from_secs(3600),
            max_bytes: 0,
        },
        cache_bytes: 8 << 20,
        index_flush_interval: Duration::from_millis(50),
    }
}

pub fn open(dir: &Path, clock: &ManualClock) -> Store {
    Store::open(dir, opts(Durability::Sync), Arc::new(clock.clone()))
        .expect("open store")
        .0
}

/// Blocks the test thread until `seq` is durable.
pub fn wait_durable(store: &Store, seq: u64) {
    store.log().durable().wait(seq).blocking().expect("durable");
}

/// Deterministic payload for `n`: its length and bytes both depend on `n`.
pub fn payload(n: u64) -> Vec<u8> {
    let len = 1 + (n.wrapping_mul(2654435761) % 700) as usize;
    let mut v = n.to_le_bytes().to_vec();
    v.extend((0..len).map(|i| (n as usize + i * 31) as u8));
    v
}
