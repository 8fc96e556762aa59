//! Crash-test driver: appends in `sync` mode from several threads and prints every acknowledged
//! record as `seq thread counter` until it is killed. Used by `tests/crash.rs`; not installed.
//!
//! Usage: `storage-crash-child DATA_DIR THREADS`

use std::{
    io::Write,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use storage::{Durability, LogOptions, Store, StoreOptions, SystemClock};

#[path = "../../tests/support/crash_payload.rs"]
mod crash_payload;
use crash_payload::payload;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().expect("DATA_DIR"));
    let threads: u64 = args.next().and_then(|t| t.parse().ok()).unwrap_or(4);
    let opts = StoreOptions {
        log: LogOptions {
            durability: Durability::Sync,
            segment_bytes_max: 256 << 10,
            ..LogOptions::default()
        },
        cache_bytes: 8 << 20,
        index_flush_interval: Duration::from_millis(100),
    };
    let (store, _) = Store::open(&dir, opts, Arc::new(SystemClock)).expect("open store");
    let store = Arc::new(store);
    // Counters continue from what the parent says survived, so payloads stay unique.
    let base: u64 = std::env::var("CRASH_BASE")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(0);
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (store, out) = (store.clone(), out.clone());
            std::thread::spawn(move || {
                let mut counter = base;
                loop {
                    // Batches of 1 to 3 records.
                    let n = 1 + counter % 3;
                    let payloads: Vec<Vec<u8>> =
                        (counter..counter + n).map(|c| payload(t, c)).collect();
                    let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
                    let first = store.log().append(&refs).expect("append");
                    store
                        .log()
                        .durable()
                        .wait(first + n - 1)
                        .blocking()
                        .expect("durable");
                    let mut lines = String::new();
                    for i in 0..n {
                        lines.push_str(&format!("{} {} {}\n", first + i, t, counter + i));
                    }
                    let mut o = out.lock().unwrap_or_else(|e| e.into_inner());
                    let _ = o.write_all(lines.as_bytes());
                    let _ = o.flush();
                    counter += n;
                }
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
}
