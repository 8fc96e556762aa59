//! The typed values kept in the index database. Each is stored as `version || bincode(value)`.
//!
//! Field names follow the Svix API where there is one; times are Unix milliseconds.

use std::collections::BTreeMap;

use bincode::{Decode, Encode};

/// An application: the owner of endpoints and messages.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct AppRecord {
    /// Internal key, dense and stable; used in every other key that refers to the app.
    pub key: u64,
    /// Public id, `app_...`.
    pub id: String,
    pub uid: Option<String>,
    pub name: String,
    pub rate_limit: Option<u32>,
    pub metadata: BTreeMap<String, String>,
    pub created_ms: u64,
    pub updated_ms: u64,
}

/// One signing key of an endpoint. An old key keeps signing until `expires_ms` after rotation.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct SigningKey {
    pub key: Vec<u8>,
    pub expires_ms: Option<u64>,
}

/// An endpoint: where an app's messages are delivered.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct EndpointRecord {
    pub key: u64,
    pub app_key: u64,
    /// Public id, `ep_...`.
    pub id: String,
    pub uid: Option<String>,
    pub url: String,
    pub description: String,
    pub version: u32,
    pub event_types: Option<Vec<String>>,
    pub channels: Option<Vec<String>>,
    /// Newest first; the first one is current.
    pub secrets: Vec<SigningKey>,
    pub disabled: bool,
    pub disabled_reason: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub headers: BTreeMap<String, String>,
    pub throttle_rate: Option<u32>,
    /// Since when every attempt has failed (cleared by a success); drives auto-disable.
    pub failing_since_ms: Option<u64>,
    /// Declared in the config file: the API may not delete it.
    pub config_owned: bool,
    pub created_ms: u64,
    pub updated_ms: u64,
}

/// An event type.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct EventTypeRecord {
    pub name: String,
    pub description: String,
    pub archived: bool,
    pub deprecated: bool,
    pub feature_flags: Vec<String>,
    /// JSON text of the `schemas` object, as given.
    pub schemas: Option<String>,
    pub config_owned: bool,
    pub created_ms: u64,
    pub updated_ms: u64,
}

/// The state of one message's delivery to one endpoint. Svix's numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub enum DeliveryStatus {
    Success = 0,
    Pending = 1,
    Fail = 2,
    Sending = 3,
}

impl DeliveryStatus {
    /// Pending or sending: still to be settled, so it has a due entry.
    pub fn is_open(self) -> bool {
        matches!(self, DeliveryStatus::Pending | DeliveryStatus::Sending)
    }
}

/// One (endpoint, message) delivery.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct DeliveryState {
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due (meaningful while pending).
    pub next_at_ms: u64,
    pub last_status_code: Option<u16>,
    pub updated_ms: u64,
    /// What queued the next attempt (a manual resend or recovery, or the schedule).
    pub trigger: Trigger,
}

/// A finished attempt and the state of its delivery after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeRecord {
    pub attempt: AttemptRecord,
    pub next: DeliveryState,
    /// No state was written for this delivery before (a first attempt handed over straight
    /// from fan-out).
    pub first_write: bool,
}

/// What started an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub enum Trigger {
    Scheduled = 0,
    Manual = 1,
}

/// One HTTP attempt to deliver a message to an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct AttemptRecord {
    /// Internal key, increasing in time.
    pub key: u64,
    /// Public id, `atmpt_...`.
    pub id: String,
    pub msg_seq: u64,
    pub endpoint_key: u64,
    pub url: String,
    /// HTTP status, or `None` when no response came (connection error, timeout).
    pub status_code: Option<u16>,
    /// The start of the response body, or the error.
    pub response: String,
    pub duration_ms: u64,
    pub trigger: Trigger,
    pub status: DeliveryStatus,
    pub ts_ms: u64,
}

/// A remembered answer for an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct IdempotencyRecord {
    pub expires_ms: u64,
    pub status: u16,
    pub body: Vec<u8>,
}

/// One management write, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct AuditRecord {
    pub ts_ms: u64,
    /// The token name that made the change.
    pub actor: String,
    /// For example `endpoint.create`.
    pub action: String,
    /// The id of what was changed.
    pub target: String,
}

/// Where a message is, found by its `eventId`.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct MessageRef {
    pub seq: u64,
    pub id: String,
}

/// A message as it is stored in the log: everything needed to answer for it and deliver it.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct MessageRecord {
    pub app_key: u64,
    /// The random bits of its public id (which is made of `created_ms`, the seq and these).
    pub rand: u64,
    pub created_ms: u64,
    pub event_type: String,
    pub event_id: Option<String>,
    pub channels: Vec<String>,
    pub tags: Vec<String>,
    /// The payload as received: the text of a JSON object.
    pub payload: Vec<u8>,
}
