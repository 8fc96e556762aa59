//! Ingest: the one write path of a message into the log. The API's message create
//! (`api::messages`), inbound sources (`api::sources`, verified by `inbound`) and operational
//! webhooks (`operational`) all store through [`Ingest`].
//!
//! - `schema`: does a payload match its event type's JSON Schema (`validation.enforce_schemas`)?
//!   Schemas compiled once per event type write, cached;
//! - `operational`: operational webhooks, hookd's own events appended as messages of a
//!   config-owned internal app.
//!
//! A message goes: (with `enforce_schemas`) [`Ingest::check_schema`] -> [`Ingest::store`]:
//! claim the `eventId` (durably, before the answer) -> append to the log under the app's key
//! -> in `sync` mode wait for the durable watermark. Nothing here blocks a shard: the append
//! takes one short lock and the waits are futures woken by the flusher threads.

pub mod operational;
pub mod schema;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use storage::{
    codec::encode_value,
    state::{MessageRecord, MessageRef},
    Durability, LocalWaiters,
};

use crate::{model::message_id, service::Service};

/// Why a message was not stored.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Another message of the application has this `eventId` (409).
    #[error("a message with eventId {0} already exists in this application")]
    EventIdTaken(String),
    /// The record is larger than the log takes (413).
    #[error("{0}")]
    TooLarge(String),
    /// The payload does not match its event type's schema, or could not be checked (422).
    #[error(transparent)]
    Schema(schema::Refusal),
    /// The store failed or refused (full disk: 507).
    #[error(transparent)]
    Storage(#[from] storage::Error),
}

/// The ingest side's state, shared by the shards: the schema cache, where operational webhooks
/// go, and the `eventId`s being stored now.
#[derive(Debug)]
pub struct Ingest {
    pub svc: Arc<Service>,
    /// Compiled payload schemas.
    pub schemas: schema::Schemas,
    /// Where operational webhooks go, once provisioned.
    pub operational: operational::Operational,
    event_ids: EventIdsInFlight,
}

impl Ingest {
    /// The ingest side over `svc`, with the operational webhooks' app and endpoint made or
    /// updated from the config.
    pub fn open(svc: Arc<Service>) -> storage::Result<Arc<Self>> {
        let ingest = Arc::new(Self {
            svc,
            schemas: Default::default(),
            operational: Default::default(),
            event_ids: Default::default(),
        });
        operational::provision(&ingest)?;
        Ok(ingest)
    }

    /// Checks `payload` against version "1" of `event_type`'s schema.
    pub fn check_schema(&self, event_type: &str, payload: &str) -> Result<(), IngestError> {
        self.schemas
            .check(self.svc.store.state(), event_type, payload)
            .map_err(IngestError::Schema)
    }

    /// Stores a new message: claims its `eventId`, appends it to the log under its app's key
    /// and, in `sync` mode, waits until it is durable. Returns its public id.
    ///
    /// An `eventId` is durable no later than the message: the claim waits for the index's
    /// group commit before the answer. If the append or its flush fails, the claim is dropped,
    /// so that the producer's retry is stored. A claim left behind by a crash (its message
    /// never became durable) is taken over by the next message with that `eventId`; one whose
    /// message is still in the log is refused until retention retires the message (then it is
    /// pruned).
    pub async fn store(
        &self,
        durable: &LocalWaiters,
        record: &MessageRecord,
    ) -> Result<String, IngestError> {
        let Some(eid) = &record.event_id else {
            return Ok(self.append_durably(durable, record).await?.1);
        };
        let svc = &self.svc;
        let app_key = record.app_key;
        // One request per (app, eventId) in this process at a time; a claim found in the index
        // that no request here is storing is stale unless its message is in the log.
        let Some(_storing) = self.event_ids.enter(app_key, eid) else {
            return Err(IngestError::EventIdTaken(eid.clone()));
        };
        let state = svc.store.state();
        let placeholder = MessageRef {
            seq: 0,
            id: String::new(),
        };
        state
            .claim_event_id(app_key, eid, &placeholder, |found| {
                !self.message_in_log(found.seq)
            })
            .map_err(|e| match e {
                storage::Error::Conflict { .. } => IngestError::EventIdTaken(eid.clone()),
                e => e.into(),
            })?;
        let (seq, id) = match self.append_durably(durable, record).await {
            Ok(done) => done,
            Err(e) => {
                // Not stored (or not known to be durable): free the eventId for the retry.
                if let Err(free) = state.set_event_id(app_key, eid, None) {
                    tracing::error!(error = %free, "freeing the eventId of a message not stored; the next message with it takes the stale claim over");
                }
                return Err(e);
            }
        };
        state.set_event_id(
            app_key,
            eid,
            Some(&MessageRef {
                seq,
                id: id.clone(),
            }),
        )?;
        let ticket = svc.store.commit_index();
        svc.store.index_durable().wait(ticket).await?;
        Ok(id)
    }

    /// Stores several messages under one group commit (batch ingest): each as
    /// [`Ingest::store`] would (its `eventId` claimed, then appended), but all appended before
    /// one wait for the durable watermark and one index commit. The results are in the order
    /// of `records`; a message refused (a repeated `eventId`, too large) does not stop the
    /// others, and if the flush fails every message of the batch fails and frees its `eventId`.
    pub async fn store_batch(
        &self,
        durable: &LocalWaiters,
        records: &[MessageRecord],
    ) -> Vec<Result<String, IngestError>> {
        let state = self.svc.store.state();
        let mut guards = Vec::new();
        let mut appended: Vec<Result<u64, IngestError>> = Vec::with_capacity(records.len());
        for record in records {
            let claimed = match &record.event_id {
                None => Ok(()),
                Some(eid) => match self.event_ids.enter(record.app_key, eid) {
                    None => Err(IngestError::EventIdTaken(eid.clone())),
                    Some(guard) => {
                        guards.push(guard);
                        let placeholder = MessageRef {
                            seq: 0,
                            id: String::new(),
                        };
                        state
                            .claim_event_id(record.app_key, eid, &placeholder, |found| {
                                !self.message_in_log(found.seq)
                            })
                            .map_err(|e| match e {
                                storage::Error::Conflict { .. } => {
                                    IngestError::EventIdTaken(eid.clone())
                                }
                                e => e.into(),
                            })
                    }
                },
            };
            let result = claimed.and_then(|()| self.append(record));
            if let (Err(_), Some(eid)) = (&result, &record.event_id) {
                self.free_event_id(record.app_key, eid, &result);
            }
            appended.push(result);
        }
        let last = appended
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .max()
            .copied();
        let appending = std::time::Instant::now();
        let flushed = match last {
            Some(seq) if self.svc.store.log().durability() == Durability::Sync => {
                durable.wait(seq).await
            }
            _ => Ok(()),
        };
        if last.is_some() {
            self.svc.metrics.append_latency(appending.elapsed());
        }
        let mut out = Vec::with_capacity(records.len());
        for (record, result) in records.iter().zip(appended) {
            let result = match (result, &flushed) {
                (Ok(seq), Ok(())) => Ok((seq, message_id(seq, record))),
                (Ok(_), Err(e)) => Err(IngestError::Storage(for_each(e))),
                (Err(e), _) => Err(e),
            };
            if let Some(eid) = &record.event_id {
                match &result {
                    Ok((seq, id)) => {
                        let r = MessageRef {
                            seq: *seq,
                            id: id.clone(),
                        };
                        if let Err(e) = state.set_event_id(record.app_key, eid, Some(&r)) {
                            out.push(Err(e.into()));
                            continue;
                        }
                    }
                    Err(IngestError::Storage(_)) => {
                        self.free_event_id(record.app_key, eid, &result)
                    }
                    Err(_) => {}
                }
            }
            out.push(result.map(|(_, id)| id));
        }
        if records.iter().any(|r| r.event_id.is_some()) {
            let ticket = self.svc.store.commit_index();
            if let Err(e) = self.svc.store.index_durable().wait(ticket).await {
                // The eventIds are not known to be durable: neither are their messages' 202s.
                for r in out.iter_mut() {
                    if r.is_ok() {
                        *r = Err(IngestError::Storage(for_each(&e)));
                    }
                }
            }
        }
        drop(guards);
        out
    }

    /// Frees the `eventId` of a message that was not stored (`result` says why): the claim
    /// made for it, unless the refusal was that another message holds it.
    fn free_event_id<T>(&self, app_key: u64, eid: &str, result: &Result<T, IngestError>) {
        if matches!(result, Err(IngestError::EventIdTaken(_))) {
            return;
        }
        if let Err(free) = self.svc.store.state().set_event_id(app_key, eid, None) {
            tracing::error!(error = %free, "freeing the eventId of a message not stored; the next message with it takes the stale claim over");
        }
    }

    /// Whether the message at `seq` is in the log (durable and not retired). An error reading
    /// it counts as present: a refusal is safer than a duplicate.
    fn message_in_log(&self, seq: u64) -> bool {
        let log = self.svc.store.log();
        if seq == 0 || seq > log.durable().get() {
            return false;
        }
        match log.read(seq) {
            Ok(Some(_)) => true,
            Ok(None) | Err(storage::Error::Quarantined { .. }) => false,
            Err(_) => true,
        }
    }

    /// Appends `record` and, in `sync` mode, waits until it is durable: its seq and public id.
    async fn append_durably(
        &self,
        durable: &LocalWaiters,
        record: &MessageRecord,
    ) -> Result<(u64, String), IngestError> {
        let appending = std::time::Instant::now();
        let seq = self.append(record)?;
        if self.svc.store.log().durability() == Durability::Sync {
            durable.wait(seq).await?;
        }
        self.svc.metrics.append_latency(appending.elapsed());
        Ok((seq, message_id(seq, record)))
    }

    /// Appends `record` to the log under its app's key and returns its sequence number,
    /// without claiming its `eventId` or waiting for it to be durable: the part of
    /// [`Ingest::store`] that never waits, for writers that cannot (operational webhooks,
    /// appended from shard threads; fan-out picks the message up once the flusher has made it
    /// durable).
    pub fn append(&self, record: &MessageRecord) -> Result<u64, IngestError> {
        let store = &self.svc.store;
        let appended = encode_value(record).and_then(|bytes| {
            store.check_space(bytes.len() as u64)?;
            store.log().append_keyed(record.app_key, &[&bytes])
        });
        let seq = appended.map_err(|e| match e {
            storage::Error::TooLarge { .. } => IngestError::TooLarge(e.to_string()),
            e => e.into(),
        })?;
        self.svc.metrics.appended(record.payload.len());
        Ok(seq)
    }
}

/// The failure of a batch's one flush, as each of its messages reports it: a full disk or
/// the log's ceiling as such (507), anything else as an I/O error that names it (500).
fn for_each(e: &storage::Error) -> storage::Error {
    match e {
        storage::Error::DiskFull { context } => storage::Error::DiskFull {
            context: context.clone(),
        },
        storage::Error::OverCapacity { used, max } => storage::Error::OverCapacity {
            used: *used,
            max: *max,
        },
        other => storage::Error::Io {
            context: "making a batch durable".into(),
            source: std::io::Error::other(other.to_string()),
        },
    }
}

/// The `(app, eventId)` pairs whose message is being stored by a request of this process.
#[derive(Debug, Default)]
struct EventIdsInFlight {
    pairs: Mutex<HashSet<(u64, String)>>,
}

impl EventIdsInFlight {
    /// Marks the pair as being stored until the guard drops; `None` if it already is.
    fn enter<'a>(&'a self, app: u64, event_id: &str) -> Option<InFlight<'a>> {
        let pair = (app, event_id.to_owned());
        let mut pairs = self.pairs.lock().unwrap_or_else(|e| e.into_inner());
        // `then`, not `then_some`: a guard made for a pair already in flight would be dropped
        // at once, locking the set it is locked in (a deadlock of the shard), and would free
        // the other request's pair.
        pairs
            .insert(pair.clone())
            .then(|| InFlight { set: self, pair })
    }
}

/// See [`EventIdsInFlight::enter`].
struct InFlight<'a> {
    set: &'a EventIdsInFlight,
    pair: (u64, String),
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut pairs = self.set.pairs.lock().unwrap_or_else(|e| e.into_inner());
        pairs.remove(&self.pair);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pair in flight is refused to a second request without disturbing the first, and
    /// freed when the first is done (this deadlocked once: see `EventIdsInFlight::enter`).
    #[test]
    fn an_event_id_in_flight_is_refused_and_then_freed() {
        let set = EventIdsInFlight::default();
        let first = set.enter(1, "e").expect("free");
        assert!(set.enter(1, "e").is_none());
        assert!(set.enter(1, "e").is_none(), "still held by the first");
        let other = set.enter(2, "e").expect("another app");
        drop(first);
        assert!(set.enter(1, "e").is_some());
        drop(other);
    }
}
