//! The recorder thread: writes the shards' finished attempts to the index, so that no shard
//! thread blocks on sled and the index work runs on whichever core is free.
//!
//! A shard hands over a batch of outcomes through a bounded queue (`Recorder::submit`); a
//! full queue hands the batch back and the shard keeps it (and starts no new attempts while
//! it holds too many). The thread writes each batch in one `record_outcomes` call, then
//! reports the fresh tasks in it settled to their shard's inbox, which lets the fan-out
//! cursor move past them. Nothing is acknowledged to anyone before it is written: a batch
//! lost in a crash is sent again (leased ones when the lease runs out, fresh ones by fan-out).
//!
//! A write that fails is tried again a few times; if the index still refuses it, hookd stops
//! (`crate::fatal`) rather than keep those deliveries unsettled, which would pin the fan-out
//! cursor for good: after the restart fan-out sends them again.
//!
//! It also fails the open deliveries of an endpoint a shard disabled (a scan of the endpoint's
//! deliveries, too long for a shard), after the outcomes queued before it.

use std::{
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::Duration,
};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use storage::state::OutcomeRecord;

use super::dispatch::Inbox;
use crate::{
    service::Service,
    systemd::{Component, ThreadGuard},
};

/// Batches waiting to be written, at most.
const QUEUE_BATCHES: usize = 256;

enum Job {
    Batch {
        shard: usize,
        outcomes: Vec<OutcomeRecord>,
    },
    /// An endpoint was disabled: fail its open deliveries.
    FailOpen {
        endpoint: u64,
    },
    Stop,
}

/// The running recorder thread.
pub struct Recorder {
    tx: Sender<Job>,
    handle: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("queued", &self.tx.len())
            .finish()
    }
}

impl Recorder {
    /// Starts the thread.
    pub fn start(svc: Arc<Service>, inboxes: Arc<Vec<Inbox>>) -> std::io::Result<Self> {
        let (tx, rx) = crossbeam_channel::bounded(QUEUE_BATCHES);
        let handle = std::thread::Builder::new()
            .name("hookd-recorder".into())
            .spawn(move || run(&svc, &inboxes, &rx))?;
        Ok(Self {
            tx,
            handle: Mutex::new(Some(handle)),
        })
    }

    /// Queues a shard's outcomes for writing; hands them back when the queue is full.
    pub fn submit(
        &self,
        shard: usize,
        outcomes: Vec<OutcomeRecord>,
    ) -> Result<(), Vec<OutcomeRecord>> {
        match self.tx.try_send(Job::Batch { shard, outcomes }) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => match job {
                Job::Batch { outcomes, .. } => Err(outcomes),
                Job::FailOpen { .. } | Job::Stop => Err(Vec::new()),
            },
        }
    }

    /// Queues the failing of a disabled endpoint's open deliveries (after the outcomes
    /// queued before it); false when the queue is full.
    pub fn fail_open(&self, endpoint: u64) -> bool {
        self.tx.try_send(Job::FailOpen { endpoint }).is_ok()
    }

    /// Writes what is queued, then stops the thread and waits for it.
    pub fn stop(&self) {
        let _ = self.tx.send(Job::Stop);
        if let Some(h) = self.handle.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = h.join();
        }
    }
}

/// A retry scheduled for an endpoint that was disabled meanwhile (its sweep of open
/// deliveries may have run before this outcome was written) fails now instead: it would
/// only fail when it came due, and until then stay pending (and, ordered, hold its lane).
fn fail_if_disabled(svc: &Service, outcomes: &mut [OutcomeRecord]) {
    let state = svc.store.state();
    for o in outcomes.iter_mut().filter(|o| o.next.status.is_open()) {
        if let Ok(Some(ep)) = state.endpoint(o.attempt.endpoint_key) {
            if ep.disabled {
                o.next.status = storage::state::DeliveryStatus::Fail;
            }
        }
    }
}

/// The longest the recorder waits for a job before it beats anyway.
const BEAT_EVERY: Duration = Duration::from_millis(100);

fn run(svc: &Service, inboxes: &[Inbox], rx: &Receiver<Job>) {
    let guard = ThreadGuard::new(svc.liveness.clone(), Component::Recorder);
    loop {
        svc.liveness.beat_recorder();
        let job = match rx.recv_timeout(BEAT_EVERY) {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let (shard, mut outcomes) = match job {
            Job::Batch { shard, outcomes } => (shard, outcomes),
            Job::FailOpen { endpoint } => {
                match svc
                    .store
                    .state()
                    .fail_open_deliveries(endpoint, svc.now_ms())
                {
                    Ok(n) => tracing::info!(
                        endpoint,
                        failed = n,
                        "open deliveries of a disabled endpoint failed"
                    ),
                    Err(e) => {
                        tracing::error!(error = %e, endpoint, "failing the open deliveries of a disabled endpoint; they fail when they come due")
                    }
                }
                continue;
            }
            Job::Stop => break,
        };
        fail_if_disabled(svc, &mut outcomes);
        let written = write_with_retries(
            || svc.store.state().record_outcomes(&outcomes),
            |wait| {
                svc.liveness.beat_recorder();
                std::thread::sleep(wait);
            },
        );
        if written.is_ok()
            && outcomes
                .iter()
                .any(|o| o.next.status.is_open() || o.fifo_lane.is_some())
        {
            // A retry was scheduled, or an ordered lane's next delivery made due: the
            // dispatcher plans its next wake from it.
            svc.due_written();
        }
        match written {
            Ok(()) => inboxes[shard].settled(
                outcomes
                    .iter()
                    .filter(|o| o.first_write)
                    .map(|o| o.attempt.msg_seq),
            ),
            // Their fresh tasks would stay unsettled and pin the fan-out cursor for good; a
            // restart sends them again (at least once) and starts with a fresh index.
            Err(e) => crate::fatal::stop(&format!(
                "the index refuses the attempts of {} deliveries after {RECORD_TRIES} tries: {e}",
                outcomes.len()
            )),
        }
    }
    guard.finish();
}

/// Tries to write a batch of outcomes this many times before hookd stops.
const RECORD_TRIES: u32 = 5;
/// The pause after the first failed write; it doubles after each.
const RECORD_RETRY_FIRST: Duration = Duration::from_millis(100);

/// Calls `write` until it succeeds, at most [`RECORD_TRIES`] times, calling `pause` with a
/// doubling wait between tries; the last error if none succeeded. Each failure is logged.
fn write_with_retries(
    mut write: impl FnMut() -> storage::Result<()>,
    mut pause: impl FnMut(Duration),
) -> storage::Result<()> {
    let mut wait = RECORD_RETRY_FIRST;
    let mut tried = 1;
    loop {
        match write() {
            Ok(()) => return Ok(()),
            Err(e) if tried >= RECORD_TRIES => return Err(e),
            Err(e) => {
                tracing::error!(error = %e, tried, "recording attempts failed; trying again");
                pause(wait);
                wait *= 2;
                tried += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure() -> storage::Error {
        storage::Error::Io {
            context: "writing attempts".into(),
            source: std::io::Error::other("injected"),
        }
    }

    #[test]
    fn a_write_that_fails_a_few_times_is_retried_until_it_lands() {
        let (mut calls, mut paused) = (0, Vec::new());
        let r = write_with_retries(
            || {
                calls += 1;
                if calls < 3 {
                    Err(failure())
                } else {
                    Ok(())
                }
            },
            |d| paused.push(d),
        );
        assert!(r.is_ok());
        assert_eq!(calls, 3);
        assert_eq!(
            paused,
            [Duration::from_millis(100), Duration::from_millis(200)]
        );
    }

    #[test]
    fn a_write_that_keeps_failing_gives_up_after_the_last_try() {
        let (mut calls, mut paused) = (0, Duration::ZERO);
        let r = write_with_retries(
            || {
                calls += 1;
                Err(failure())
            },
            |d| paused += d,
        );
        assert!(r.is_err());
        assert_eq!(calls, RECORD_TRIES);
        assert_eq!(paused, Duration::from_millis(100 + 200 + 400 + 800));
    }
}
