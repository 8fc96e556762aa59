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
//! It also fails the open deliveries of an endpoint a shard disabled (a scan of the endpoint's
//! deliveries, too long for a shard), after the outcomes queued before it.

use std::{
    sync::{Arc, Mutex},
    thread::JoinHandle,
};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use storage::state::OutcomeRecord;

use super::dispatch::Inbox;
use crate::service::Service;

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

fn run(svc: &Service, inboxes: &[Inbox], rx: &Receiver<Job>) {
    while let Ok(job) = rx.recv() {
        let (shard, outcomes) = match job {
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
            Job::Stop => return,
        };
        match svc.store.state().record_outcomes(&outcomes) {
            Ok(()) => inboxes[shard].settled(
                outcomes
                    .iter()
                    .filter(|o| o.first_write)
                    .map(|o| o.attempt.msg_seq),
            ),
            Err(e) => {
                tracing::error!(error = %e, n = outcomes.len(), "recording attempts failed; their deliveries will be sent again (leased ones when the lease runs out, fresh ones after a restart)")
            }
        }
    }
}
