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
        pairs
            .insert(pair.clone())
            .then_some(InFlight { set: self, pair })
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
