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
    futures_lite_block_on(store.log().durable().wait(seq)).expect("durable");
}

/// A minimal executor for one future (the storage crate is runtime-agnostic).
pub fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// Deterministic payload for `n`: its length and bytes both depend on `n`.
pub fn payload(n: u64) -> Vec<u8> {
    let len = 1 + (n.wrapping_mul(2654435761) % 700) as usize;
    let mut v = n.to_le_bytes().to_vec();
    v.extend((0..len).map(|i| (n as usize + i * 31) as u8));
    v
}
