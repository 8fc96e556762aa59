//! The JSON shapes of the API, named as in Svix's OpenAPI document. Inputs ignore unknown
//! fields (newer SDKs send more); outputs carry the older aliases too (`rateLimit`,
//! `filterTypes`, `version`) so that older SDKs parse them.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use storage::state::{AppRecord, EndpointRecord, EventTypeRecord};

use crate::model::legacy::{LegacySignatureIn, LegacySignatureOut};
use crate::time::format_rfc3339;

/// A field of a PATCH body: absent (keep), `null` (clear) or a value.
pub type Patch<T> = Option<Option<T>>;

/// Deserializes a present field, `null` included, as `Some(..)`; with `#[serde(default)]` an
/// absent one stays `None`.
pub fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Patch<T>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationIn {
    pub name: String,
    pub uid: Option<String>,
    #[serde(alias = "rateLimit")]
    pub throttle_rate: Option<u16>,
    pub metadata: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationPatch {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub uid: Patch<String>,
    #[serde(default, deserialize_with = "present", alias = "rateLimit")]
    pub throttle_rate: Patch<u16>,
    pub metadata: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationOut<'a> {
    pub id: &'a str,
    pub uid: Option<&'a str>,
    pub name: &'a str,
    pub throttle_rate: Option<u32>,
    pub rate_limit: Option<u32>,
    pub metadata: &'a BTreeMap<String, String>,
    pub created_at: String,
    pub updated_at: String,
}

impl<'a> From<&'a AppRecord> for ApplicationOut<'a> {
    fn from(a: &'a AppRecord) -> Self {
        Self {
            id: &a.id,
            uid: a.uid.as_deref(),
            name: &a.name,
            throttle_rate: a.rate_limit,
            rate_limit: a.rate_limit,
            metadata: &a.metadata,
            created_at: format_rfc3339(a.created_ms),
            updated_at: format_rfc3339(a.updated_ms),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointIn {
    pub url: String,
    #[serde(default)]
    pub description: String,
    #[serde(alias = "rateLimit")]
    pub throttle_rate: Option<u16>,
    pub uid: Option<String>,
    #[serde(default)]
    pub disabled: bool,
    #[serde(alias = "filterTypes")]
    pub event_types: Option<Vec<String>>,
    pub channels: Option<Vec<String>>,
    pub secret: Option<String>,
    pub metadata: Option<BTreeMap<String, String>>,
    pub headers: Option<BTreeMap<String, String>>,
    /// hookd extension: signature headers in other providers' schemes (`model::legacy`).
    #[serde(default, deserialize_with = "present")]
    pub legacy_signatures: Patch<Vec<LegacySignatureIn>>,
    /// hookd extension: the payload filter (`model::filter`).
    #[serde(default, deserialize_with = "present")]
    pub filter: Patch<serde_json::Value>,
    /// hookd extension: `"none"` (default) or `"fifo"`.
    pub ordering: Option<Ordering>,
}

/// An endpoint's delivery order (hookd extension): `fifo` delivers the messages of one
/// ordering key one at a time, in the order they were stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Ordering {
    None,
    Fifo,
}

impl Ordering {
    pub fn of(e: &EndpointRecord) -> Self {
        if e.fifo {
            Self::Fifo
        } else {
            Self::None
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointPatch {
    pub url: Option<String>,
    pub description: Option<String>,
    #[serde(default, deserialize_with = "present", alias = "rateLimit")]
    pub throttle_rate: Patch<u16>,
    #[serde(default, deserialize_with = "present")]
    pub uid: Patch<String>,
    pub disabled: Option<bool>,
    #[serde(default, deserialize_with = "present", alias = "filterTypes")]
    pub event_types: Patch<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    pub channels: Patch<Vec<String>>,
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "present")]
    pub legacy_signatures: Patch<Vec<LegacySignatureIn>>,
    #[serde(default, deserialize_with = "present")]
    pub filter: Patch<serde_json::Value>,
    pub ordering: Option<Ordering>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointOut<'a> {
    pub id: &'a str,
    pub uid: Option<&'a str>,
    pub url: &'a str,
    pub description: &'a str,
    pub version: u32,
    pub throttle_rate: Option<u32>,
    pub rate_limit: Option<u32>,
    pub disabled: bool,
    pub event_types: Option<&'a [String]>,
    pub filter_types: Option<&'a [String]>,
    pub channels: Option<&'a [String]>,
    pub metadata: &'a BTreeMap<String, String>,
    pub created_at: String,
    pub updated_at: String,
    /// hookd extension, left out when there are none; never with their secrets.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub legacy_signatures: Vec<LegacySignatureOut<'a>>,
    /// hookd extension: the payload filter, left out when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<&'a RawValue>,
    /// hookd extension: `"none"` or `"fifo"`.
    pub ordering: Ordering,
}

impl<'a> From<&'a EndpointRecord> for EndpointOut<'a> {
    fn from(e: &'a EndpointRecord) -> Self {
        Self {
            id: &e.id,
            uid: e.uid.as_deref(),
            url: &e.url,
            description: &e.description,
            version: e.version,
            throttle_rate: e.throttle_rate,
            rate_limit: e.throttle_rate,
            disabled: e.disabled,
            event_types: e.event_types.as_deref(),
            filter_types: e.event_types.as_deref(),
            channels: e.channels.as_deref(),
            metadata: &e.metadata,
            created_at: format_rfc3339(e.created_ms),
            updated_at: format_rfc3339(e.updated_ms),
            legacy_signatures: e
                .legacy_signatures
                .iter()
                .map(crate::model::legacy::describe)
                .collect(),
            filter: e
                .filter
                .as_deref()
                .and_then(|f| serde_json::from_str::<&RawValue>(f).ok()),
            ordering: Ordering::of(e),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretRotateIn {
    pub key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeadersIn {
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub delete_headers: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventTypeIn {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub archived: bool,
    #[serde(default)]
    pub deprecated: bool,
    pub schemas: Option<Box<RawValue>>,
    #[serde(default)]
    pub feature_flags: Vec<String>,
    pub feature_flag: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventTypePatch {
    pub description: Option<String>,
    pub archived: Option<bool>,
    pub deprecated: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    pub schemas: Patch<Box<RawValue>>,
    pub feature_flags: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventTypeOut<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub archived: bool,
    pub deprecated: bool,
    pub schemas: Option<&'a RawValue>,
    pub feature_flags: &'a [String],
    pub feature_flag: Option<&'a str>,
    pub created_at: String,
    pub updated_at: String,
}

impl<'a> EventTypeOut<'a> {
    /// The answer for `et`, with its schemas unless `with_content` is false.
    pub fn new(et: &'a EventTypeRecord, with_content: bool) -> Self {
        let schemas = et
            .schemas
            .as_deref()
            .filter(|_| with_content)
            .and_then(|s| serde_json::from_str::<&RawValue>(s).ok());
        Self {
            name: &et.name,
            description: &et.description,
            archived: et.archived,
            deprecated: et.deprecated,
            schemas,
            feature_flags: &et.feature_flags,
            feature_flag: et.feature_flags.first().map(String::as_str),
            created_at: format_rfc3339(et.created_ms),
            updated_at: format_rfc3339(et.updated_ms),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageIn<'a> {
    #[serde(borrow)]
    pub event_type: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    pub payload: &'a RawValue,
    pub event_id: Option<String>,
    pub channels: Option<Vec<String>>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub application: Option<ApplicationIn>,
    /// hookd extension: an ordered (FIFO) endpoint delivers the messages of one key one at a
    /// time, in the order they were stored.
    pub ordering_key: Option<String>,
}

/// `POST /api/v1/filter/test`: a filter and a payload to try it on.
#[derive(Debug, Deserialize)]
pub struct FilterTestIn {
    pub filter: serde_json::Value,
    pub payload: serde_json::Value,
}

/// `POST .../endpoint/{ep}/filter/test`: a payload to try the endpoint's filter on.
#[derive(Debug, Deserialize)]
pub struct EndpointFilterTestIn {
    pub payload: serde_json::Value,
}

/// `POST .../endpoint/{ep}/send-example`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventExampleIn {
    pub event_type: String,
}
