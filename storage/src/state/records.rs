//! The typed values kept in the index database. Each is stored as `version || bincode(value)`.
//!
//! Field names follow the Svix API where there is one; times are Unix milliseconds.

use std::collections::BTreeMap;

use bincode::{de::Decoder, error::DecodeError, Decode, Encode};

/// An application: the owner of endpoints and messages.
///
/// `config_owned` was added after the first format: it is the last field, and a value written
/// without it decodes with `false` (see the hand-written `Decode` below).
#[derive(Debug, Clone, PartialEq, Eq, Encode)]
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
    /// Declared in the config file: the API may not delete it.
    pub config_owned: bool,
}

impl<Context> Decode<Context> for AppRecord {
    fn decode<D: Decoder<Context = Context>>(d: &mut D) -> Result<Self, DecodeError> {
        Ok(Self {
            key: Decode::decode(d)?,
            id: Decode::decode(d)?,
            uid: Decode::decode(d)?,
            name: Decode::decode(d)?,
            rate_limit: Decode::decode(d)?,
            metadata: Decode::decode(d)?,
            created_ms: Decode::decode(d)?,
            updated_ms: Decode::decode(d)?,
            config_owned: trailing(d)?,
        })
    }
}
bincode::impl_borrow_decode!(AppRecord);

/// A field added at the end of a record after values without it were written: its default
/// when the value ends before it. A value that ends inside it is refused (values are decoded
/// from slices, whose reader can tell whether a byte is left).
fn trailing<T: Decode<C> + Default, C, D: Decoder<Context = C>>(
    d: &mut D,
) -> Result<T, DecodeError> {
    use bincode::de::read::Reader;
    if d.reader().peek_read(1).is_some() {
        return T::decode(d);
    }
    match T::decode(d) {
        Err(DecodeError::UnexpectedEnd { .. }) => Ok(T::default()),
        other => other,
    }
}

/// One signing key of an endpoint. An old key keeps signing until `expires_ms` after rotation.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct SigningKey {
    pub key: Vec<u8>,
    pub expires_ms: Option<u64>,
}

/// A signature header in another provider's scheme, sent beside the Standard Webhooks ones so
/// that a receiver written for that provider keeps verifying while it moves to hookd.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum LegacySignature {
    /// GitHub's `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`.
    GitHub { secret: Vec<u8> },
    /// Stripe's `Stripe-Signature: t=<Unix s>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
    Stripe { secret: Vec<u8> },
    /// An HMAC-SHA256 of the body in `header`: `prefix` then hex (or base64).
    Hmac {
        secret: Vec<u8>,
        header: String,
        base64: bool,
        prefix: String,
    },
}

/// An endpoint: where an app's messages are delivered.
///
/// `legacy_signatures` and then `filter` were added after the first format: they are the last
/// fields, and a value written without them decodes with none.
#[derive(Debug, Clone, PartialEq, Eq, Encode)]
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
    /// Extra signature headers for receivers written for another provider.
    pub legacy_signatures: Vec<LegacySignature>,
    /// The payload filter, as canonical JSON text (hookd's `model::filter`); `None`: every
    /// payload. Added after `legacy_signatures`.
    pub filter: Option<String>,
    /// Ordered delivery (`"ordering": "fifo"`): one delivery at a time per ordering key, in
    /// the order the messages were stored. Added after `filter`.
    pub fifo: bool,
}

impl<Context> Decode<Context> for EndpointRecord {
    fn decode<D: Decoder<Context = Context>>(d: &mut D) -> Result<Self, DecodeError> {
        Ok(Self {
            key: Decode::decode(d)?,
            app_key: Decode::decode(d)?,
            id: Decode::decode(d)?,
            uid: Decode::decode(d)?,
            url: Decode::decode(d)?,
            description: Decode::decode(d)?,
            version: Decode::decode(d)?,
            event_types: Decode::decode(d)?,
            channels: Decode::decode(d)?,
            secrets: Decode::decode(d)?,
            disabled: Decode::decode(d)?,
            disabled_reason: Decode::decode(d)?,
            metadata: Decode::decode(d)?,
            headers: Decode::decode(d)?,
            throttle_rate: Decode::decode(d)?,
            failing_since_ms: Decode::decode(d)?,
            config_owned: Decode::decode(d)?,
            created_ms: Decode::decode(d)?,
            updated_ms: Decode::decode(d)?,
            legacy_signatures: trailing(d)?,
            filter: trailing(d)?,
            fifo: trailing(d)?,
        })
    }
}
bincode::impl_borrow_decode!(EndpointRecord);

impl EndpointRecord {
    /// An endpoint made at `now_ms`: enabled, version 1, without uid, description, filters,
    /// metadata, headers or rate limit, not config-owned.
    pub fn new(
        key: u64,
        app_key: u64,
        id: String,
        url: String,
        secrets: Vec<SigningKey>,
        now_ms: u64,
    ) -> Self {
        Self {
            key,
            app_key,
            id,
            uid: None,
            url,
            description: String::new(),
            version: 1,
            event_types: None,
            channels: None,
            secrets,
            disabled: false,
            disabled_reason: None,
            metadata: BTreeMap::new(),
            headers: BTreeMap::new(),
            throttle_rate: None,
            failing_since_ms: None,
            config_owned: false,
            created_ms: now_ms,
            updated_ms: now_ms,
            legacy_signatures: Vec::new(),
            filter: None,
            fifo: false,
        }
    }
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
    /// The lane of an ordered endpoint that waits in the index, which this delivery is the
    /// head of: its entry is kept while it is open, and when it settles the next delivery of
    /// the lane is made due (`State::fifo_settled`).
    pub fifo_lane: Option<u64>,
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

/// An app portal token (`POST /api/v1/auth/app-portal-access/{app}`), kept under the SHA-256
/// of the token: the token itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct PortalTokenRecord {
    /// The key of the one app the token may see.
    pub app_key: u64,
    /// That app's public id, for the audit trail and the session route.
    pub app_id: String,
    pub created_ms: u64,
    /// Refused from this time on.
    pub expires_ms: u64,
    /// What it may do: a bit set of hookd's portal capabilities.
    pub capabilities: u8,
    /// The producer's session id, for expiring a session's tokens together.
    pub session_id: Option<String>,
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
#[derive(Debug, Clone, PartialEq, Eq, Encode)]
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
    /// The W3C Trace Context `traceparent` the producer sent with it, sent on with every
    /// attempt. Added after messages without it were written: those read as `None`.
    pub traceparent: Option<String>,
    /// The one endpoint (by key) this message goes to, whatever the others' subscriptions
    /// (an example sent to one endpoint); `None`: every subscribed endpoint. Added after
    /// `traceparent`, read as `None` from messages without it.
    pub only_endpoint: Option<u64>,
    /// The ordering key (hookd's `orderingKey`): an ordered endpoint delivers the messages of
    /// one key one at a time, in order. Added after `only_endpoint`.
    pub ordering_key: Option<String>,
}

impl<Context> Decode<Context> for MessageRecord {
    fn decode<D: Decoder<Context = Context>>(d: &mut D) -> Result<Self, DecodeError> {
        Ok(Self {
            app_key: Decode::decode(d)?,
            rand: Decode::decode(d)?,
            created_ms: Decode::decode(d)?,
            event_type: Decode::decode(d)?,
            event_id: Decode::decode(d)?,
            channels: Decode::decode(d)?,
            tags: Decode::decode(d)?,
            payload: Decode::decode(d)?,
            traceparent: trailing(d)?,
            only_endpoint: trailing(d)?,
            ordering_key: trailing(d)?,
        })
    }
}
bincode::impl_borrow_decode!(MessageRecord);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode_value, encode_value};

    /// `AppRecord` as it was before `config_owned`.
    #[derive(Encode)]
    struct AppRecordV1 {
        key: u64,
        id: String,
        uid: Option<String>,
        name: String,
        rate_limit: Option<u32>,
        metadata: BTreeMap<String, String>,
        created_ms: u64,
        updated_ms: u64,
    }

    /// `MessageRecord` as it was before `traceparent` (every message in older logs).
    #[derive(Encode)]
    struct MessageRecordV1 {
        app_key: u64,
        rand: u64,
        created_ms: u64,
        event_type: String,
        event_id: Option<String>,
        channels: Vec<String>,
        tags: Vec<String>,
        payload: Vec<u8>,
    }

    #[test]
    fn messages_written_before_traceparent_still_decode() {
        let old = MessageRecordV1 {
            app_key: 3,
            rand: 9,
            created_ms: 5,
            event_type: "a.b".into(),
            event_id: Some("e".into()),
            channels: vec!["c".into()],
            tags: Vec::new(),
            payload: b"{}".to_vec(),
        };
        let bytes = encode_value(&old).unwrap();
        let m: MessageRecord = decode_value(&bytes, &|| "message".into()).unwrap();
        assert_eq!(
            (m.app_key, m.event_id.as_deref(), m.payload.as_slice()),
            (3, Some("e"), &b"{}"[..])
        );
        assert_eq!(
            (
                m.traceparent.as_deref(),
                m.only_endpoint,
                m.ordering_key.as_deref()
            ),
            (None, None, None)
        );
        let new = MessageRecord {
            traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
            only_endpoint: Some(12),
            ordering_key: None,
            ..m
        };
        let bytes = encode_value(&new).unwrap();
        assert_eq!(
            decode_value::<MessageRecord>(&bytes, &|| "m".into()).unwrap(),
            new
        );
        // Cut into the fields before it: refused (a frame's CRC catches any cut before this).
        let cut = &bytes[..bytes.len() - 60];
        assert!(decode_value::<MessageRecord>(cut, &|| "m".into()).is_err());
        // Written before `ordering_key` (its `None` is one byte): none; with one, kept.
        let before_key = &bytes[..bytes.len() - 1];
        assert_eq!(
            decode_value::<MessageRecord>(before_key, &|| "m".into()).unwrap(),
            new
        );
        let keyed = MessageRecord {
            ordering_key: Some("customer-7".into()),
            ..new
        };
        let bytes = encode_value(&keyed).unwrap();
        assert_eq!(
            decode_value::<MessageRecord>(&bytes, &|| "m".into()).unwrap(),
            keyed
        );
    }

    #[test]
    fn endpoint_records_written_before_legacy_signatures_still_decode() {
        let mut ep = EndpointRecord::new(
            3,
            7,
            "ep_x".into(),
            "https://example.com/h".into(),
            vec![SigningKey {
                key: vec![1; 24],
                expires_ms: None,
            }],
            5,
        );
        let bytes = encode_value(&ep).unwrap();
        // Without the fields (an empty list is its length, 8 bytes; `None` one byte; `false`
        // one byte): what older stores hold.
        let old = &bytes[..bytes.len() - 10];
        // Cut inside the list's length: refused, not read as an empty list.
        assert!(decode_value::<EndpointRecord>(&bytes[..bytes.len() - 3], &|| "e".into()).is_err());
        let read: EndpointRecord = decode_value(old, &|| "endpoint".into()).unwrap();
        assert_eq!(read, ep);
        // Written before `fifo`: unordered.
        let read: EndpointRecord =
            decode_value(&bytes[..bytes.len() - 1], &|| "endpoint".into()).unwrap();
        assert_eq!(read, ep);
        let ordered = EndpointRecord {
            fifo: true,
            ..ep.clone()
        };
        let bytes = encode_value(&ordered).unwrap();
        assert_eq!(
            decode_value::<EndpointRecord>(&bytes, &|| "e".into()).unwrap(),
            ordered
        );
        ep.legacy_signatures = vec![
            LegacySignature::GitHub {
                secret: b"gh".to_vec(),
            },
            LegacySignature::Hmac {
                secret: b"k".to_vec(),
                header: "X-Sig".into(),
                base64: true,
                prefix: "sha256=".into(),
            },
        ];
        ep.filter = Some(r#"{"a":1}"#.into());
        let bytes = encode_value(&ep).unwrap();
        assert_eq!(
            decode_value::<EndpointRecord>(&bytes, &|| "endpoint".into()).unwrap(),
            ep
        );
        let cut = &bytes[..bytes.len() - 3];
        assert!(decode_value::<EndpointRecord>(cut, &|| "endpoint".into()).is_err());
    }

    #[test]
    fn app_records_written_before_config_owned_still_decode() {
        let old = AppRecordV1 {
            key: 7,
            id: "app_x".into(),
            uid: Some("shop".into()),
            name: "Shop".into(),
            rate_limit: Some(3),
            metadata: BTreeMap::from([("team".into(), "a".into())]),
            created_ms: 1,
            updated_ms: 2,
        };
        let bytes = encode_value(&old).unwrap();
        let app: AppRecord = decode_value(&bytes, &|| "app".into()).unwrap();
        assert_eq!(
            (app.key, app.uid.as_deref(), app.updated_ms),
            (7, Some("shop"), 2)
        );
        assert!(!app.config_owned);
        // A new value round-trips with the flag, and a truncated one is still refused.
        let new = AppRecord {
            config_owned: true,
            ..app
        };
        let bytes = encode_value(&new).unwrap();
        assert_eq!(
            decode_value::<AppRecord>(&bytes, &|| "app".into()).unwrap(),
            new
        );
        let cut = &bytes[..bytes.len() - 3];
        assert!(decode_value::<AppRecord>(cut, &|| "app".into()).is_err());
    }
}
