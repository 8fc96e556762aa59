//! Work the API starts and does not wait for, run on a thread of its own, never on a shard:
//! scans of the index or the log that can take seconds (recover, replay-missing, failing a
//! disabled endpoint's open deliveries). At most [`TASKS_MAX`] run at once; the caller says
//! what happens to one refused for that (`recover` answers 429, a disable sweep is left to
//! the deliveries coming due, which then fail one by one).
//!
//! Reads whose answer the API waits for but that may scan for long (the endpoint stats count
//! up to a million deliveries) run the same way, awaited: [`read`].

use std::sync::atomic::{AtomicUsize, Ordering};

/// Background tasks running at once, at most.
pub const TASKS_MAX: usize = 2;

/// Tasks running now.
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// Runs `work` on a thread named `hookd-{name}`; false (and `work` dropped) if
/// [`TASKS_MAX`] tasks already run or the thread could not start.
pub fn spawn(name: &'static str, work: impl FnOnce() + Send + 'static) -> bool {
    on_thread((&RUNNING, TASKS_MAX), name, work)
}

/// Runs `work` on a thread named `hookd-{name}` holding one of `max` slots counted by
/// `running` (freed however it ends, a panic included); false (and `work` dropped) if every
/// slot is taken or the thread could not start.
fn on_thread(
    (running, max): (&'static AtomicUsize, usize),
    name: &'static str,
    work: impl FnOnce() + Send + 'static,
) -> bool {
    if running.fetch_add(1, Ordering::AcqRel) >= max {
        running.fetch_sub(1, Ordering::AcqRel);
        return false;
    }
    struct Slot(&'static AtomicUsize);
    impl Drop for Slot {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::AcqRel);
        }
    }
    let slot = Slot(running);
    let started = std::thread::Builder::new()
        .name(format!("hookd-{name}"))
        .spawn(move || {
            let _slot = slot;
            work();
        });
    match started {
        Ok(_) => true,
        Err(e) => {
            // The closure, and the slot in it, was dropped with the error.
            tracing::error!(error = %e, task = name, "cannot start a thread for work off the shards");
            false
        }
    }
}

/// Long reads running at once, at most.
pub const READS_MAX: usize = 4;

/// Long reads running now.
static READING: AtomicUsize = AtomicUsize::new(0);

/// Runs `work` on a thread of its own and waits for its answer without blocking the shard;
/// `None` if [`READS_MAX`] run already, the thread could not start or `work` panicked.
pub async fn read<T: Send + 'static>(
    name: &'static str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = futures_channel::oneshot::channel();
    if !on_thread((&READING, READS_MAX), name, move || {
        let _ = tx.send(work());
    }) {
        return None;
    }
    rx.await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn a_read_is_answered_off_the_thread_and_at_most_reads_max_run() {
        // The driver the shards run on where io_uring is refused; the waits below never block
        // the runtime's thread (the reads' answers wake it from theirs).
        let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime");
        // A read's slot is freed as its thread ends, just after its answer: wait for that.
        async fn until_reading(n: usize) {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while READING.load(Ordering::Acquire) != n {
                assert!(std::time::Instant::now() < deadline, "{n} reads never ran");
                monoio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
        rt.block_on(async {
            let here = std::thread::current().id();
            let there = read("test", || std::thread::current().id()).await;
            assert!(
                there.is_some_and(|t| t != here),
                "ran on a thread of its own"
            );
            until_reading(0).await;
            // READS_MAX reads held open: one more is refused at once, not queued.
            let release = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let mut held = Vec::new();
            for _ in 0..READS_MAX {
                let release = release.clone();
                held.push(monoio::spawn(read("test", move || {
                    while !release.load(Ordering::Acquire) {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                    7
                })));
            }
            until_reading(READS_MAX).await;
            assert_eq!(read("test", || 1).await, None);
            release.store(true, Ordering::Release);
            for h in held {
                assert_eq!(h.await, Some(7));
            }
            until_reading(0).await;
            // A panicking read answers None and frees its slot.
            assert_eq!(
                read("test", || -> u8 { panic!("a test panic") }).await,
                None
            );
            until_reading(0).await;
            assert_eq!(read("test", || 2).await, Some(2));
        });
    }

    #[test]
    fn at_most_tasks_max_run_and_a_slot_frees_when_one_ends() {
        let (release, hold) = mpsc::channel::<()>();
        let hold = std::sync::Arc::new(std::sync::Mutex::new(hold));
        let (started, seen) = mpsc::channel::<()>();
        for _ in 0..TASKS_MAX {
            let (hold, started) = (hold.clone(), started.clone());
            assert!(spawn("test", move || {
                started.send(()).unwrap();
                let _ = hold.lock().unwrap().recv();
            }));
        }
        for _ in 0..TASKS_MAX {
            seen.recv().unwrap();
        }
        assert!(!spawn("test", || {}), "one more than TASKS_MAX ran");
        release.send(()).unwrap();
        // The freed slot takes a new task (the one that ended frees it as its thread ends).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !spawn("test", || {}) {
            assert!(
                std::time::Instant::now() < deadline,
                "the slot was never freed"
            );
            std::thread::yield_now();
        }
        drop(release);
    }
}
