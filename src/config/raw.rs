//! Stage one of config loading: the file's shape, exactly as serde sees it.
//!
//! Every struct refuses unknown keys. Every field is optional (a missing key
//! takes its default in stage two), and values keep the types TOML gives them:
//! durations are strings, counts are [`RawInt`], sizes are [`RawSize`]. Checking
//! ranges, units and relationships is the job of [`super::validate`], which can
//! then report every problem at once instead of stopping at serde's first one.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of sections")]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub storage: RawStorage,
    #[serde(default)]
    pub ingest: RawIngest,
    #[serde(default)]
    pub delivery: RawDelivery,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub metrics: RawMetrics,
    #[serde(default)]
    pub auth: RawAuth,
    #[serde(default)]
    pub sources: Vec<RawSource>,
    #[serde(default)]
    pub endpoint_policy: RawEndpointPolicy,
    #[serde(default)]
    pub apps: Vec<RawApp>,
    #[serde(default)]
    pub event_types: Vec<RawEventType>,
    #[serde(default)]
    pub validation: RawValidation,
    pub operational_webhooks: Option<RawOperationalWebhooks>,
}

/// `[server]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [server] table")]
pub struct RawServer {
    pub listen: Option<String>,
    pub shards: Option<RawInt>,
    pub connections_per_shard_max: Option<RawInt>,
    pub header_bytes_max: Option<RawSize>,
    pub headers_count_max: Option<RawInt>,
    pub uri_bytes_max: Option<RawSize>,
    pub body_bytes_max: Option<RawSize>,
    pub header_read_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub request_timeout: Option<String>,
    pub tls: Option<RawTls>,
}

/// `[server.tls]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [server.tls] table")]
pub struct RawTls {
    pub cert: Option<String>,
    pub key: Option<String>,
}

/// `[storage]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [storage] table")]
pub struct RawStorage {
    pub path: Option<String>,
    pub durability: Option<String>,
    pub flush_interval: Option<String>,
    pub commit_window: Option<String>,
    pub segment_bytes_max: Option<RawSize>,
    pub segment_events_max: Option<RawInt>,
    pub segment_age_max: Option<String>,
    pub retention: Option<String>,
    pub max_bytes: Option<RawSize>,
    pub reserve_bytes: Option<RawSize>,
    pub cache_bytes: Option<RawSize>,
    pub idempotency_ttl: Option<String>,
}

/// `[ingest]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [ingest] table")]
pub struct RawIngest {
    pub payload_bytes_max: Option<RawSize>,
}

/// `[delivery]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [delivery] table")]
pub struct RawDelivery {
    pub retry_schedule: Option<Vec<String>>,
    pub timeout: Option<String>,
    pub connect_timeout: Option<String>,
    pub allow_private_networks: Option<bool>,
    pub svix_headers: Option<bool>,
    pub disable_after: Option<String>,
    pub in_flight_per_endpoint_max: Option<RawInt>,
    pub pipeline_depth: Option<RawInt>,
    pub in_flight_per_shard_max: Option<RawInt>,
    pub in_flight_per_host_max: Option<RawInt>,
    pub queue_capacity: Option<RawInt>,
    pub response_bytes_max: Option<RawSize>,
    pub secret_rotation_grace: Option<String>,
    pub default_signature: Option<String>,
    pub ca_file: Option<String>,
}

/// `[log]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [log] table")]
pub struct RawLog {
    pub level: Option<String>,
    pub format: Option<String>,
}

/// `[metrics]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [metrics] table")]
pub struct RawMetrics {
    pub public: Option<bool>,
}

/// `[auth]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [auth] table")]
pub struct RawAuth {
    #[serde(default)]
    pub tokens: Vec<RawToken>,
}

/// One `[[auth.tokens]]` entry. Even the required keys are optional here so
/// that a token missing its name still has its other keys checked.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [[auth.tokens]] table")]
pub struct RawToken {
    pub name: Option<String>,
    pub sha256: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub apps: Option<Vec<String>>,
    pub rate_per_second: Option<RawInt>,
    pub burst: Option<RawInt>,
}

/// One `[[sources]]` entry: an inbound webhook source. Every key is optional here; which
/// ones a scheme needs, or refuses, is checked in stage two.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[sources]] table")]
pub struct RawSource {
    pub name: Option<String>,
    pub app: Option<String>,
    pub scheme: Option<String>,
    pub secret: Option<String>,
    pub tolerance: Option<String>,
    pub event_type: Option<String>,
    pub event_type_header: Option<String>,
    pub event_type_pointer: Option<String>,
    pub delivery_id_header: Option<String>,
    pub delivery_id_pointer: Option<String>,
    pub signature_header: Option<String>,
    pub signature_encoding: Option<String>,
    pub signature_prefix: Option<String>,
    pub username: Option<String>,
    pub password_sha256: Option<String>,
    pub token_header: Option<String>,
    pub token_sha256: Option<String>,
}

/// `[endpoint_policy]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [endpoint_policy] table")]
pub struct RawEndpointPolicy {
    pub https_only: Option<bool>,
    pub allowed_host_suffixes: Option<Vec<String>>,
    pub denied_hosts: Option<Vec<String>>,
    pub endpoints_per_app_max: Option<RawInt>,
}

/// One `[[apps]]` entry: an application declared in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [[apps]] table")]
pub struct RawApp {
    pub name: Option<String>,
    pub uid: Option<String>,
    pub metadata: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default)]
    pub endpoints: Vec<RawAppEndpoint>,
}

/// One `[[apps.endpoints]]` entry: an endpoint of the application it is under.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [[apps.endpoints]] table")]
pub struct RawAppEndpoint {
    pub uid: Option<String>,
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub channels: Option<Vec<String>>,
    pub secret: Option<String>,
    pub headers: Option<std::collections::BTreeMap<String, String>>,
    pub throttle_rate: Option<RawInt>,
    pub disabled: Option<bool>,
}

/// One `[[event_types]]` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [[event_types]] table")]
pub struct RawEventType {
    pub name: Option<String>,
    pub description: Option<String>,
    pub schemas: Option<String>,
}

/// `[validation]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [validation] table")]
pub struct RawValidation {
    pub enforce_schemas: Option<bool>,
}

/// `[operational_webhooks]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [operational_webhooks] table")]
pub struct RawOperationalWebhooks {
    pub url: Option<String>,
    pub secret: Option<String>,
    pub event_types: Option<Vec<String>>,
}

/// An integer as written. Its own type only so that a wrong type reads
/// "expected an integer" rather than serde's "expected i64".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawInt(pub i64);

impl<'de> Deserialize<'de> for RawInt {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IntVisitor;

        impl Visitor<'_> for IntVisitor {
            type Value = RawInt;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer")
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawInt, E> {
                Ok(RawInt(v))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawInt, E> {
                i64::try_from(v)
                    .map(RawInt)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }
        }

        deserializer.deserialize_any(IntVisitor)
    }
}

/// A size as written: a TOML integer (bytes) or a string such as `"64KiB"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawSize {
    /// A TOML integer, taken as bytes. May be negative here; validation refuses that.
    Bytes(i64),
    /// A string, parsed by [`super::units::parse_size`] in stage two.
    Text(String),
}

impl<'de> Deserialize<'de> for RawSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;

        impl Visitor<'_> for SizeVisitor {
            type Value = RawSize;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size: an integer number of bytes or a string such as \"64KiB\"")
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawSize, E> {
                Ok(RawSize::Bytes(v))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawSize, E> {
                i64::try_from(v)
                    .map(RawSize::Bytes)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawSize, E> {
                Ok(RawSize::Text(v.to_owned()))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<RawSize, E> {
                Ok(RawSize::Text(v))
            }
        }

        deserializer.deserialize_any(SizeVisitor)
    }
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Segment {
    /// A table key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// A key path such as `auth.tokens[0].scopes[1]`, ordered segment by segment
/// (so `[2]` sorts before `[10]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyPath(pub Vec<Segment>);

impl KeyPath {
    /// Parses a path written by stage two. Its keys are field names, so they
    /// never contain `.`, `[` or `]`.
    pub fn parse(path: &str) -> KeyPath {
        let mut segments = Vec::new();
        for part in path.split('.').filter(|p| !p.is_empty()) {
            let mut pieces = part.split('[');
            if let Some(key) = pieces.next().filter(|k| !k.is_empty()) {
                segments.push(Segment::Key(key.to_owned()));
            }
            for piece in pieces {
                let index = piece.trim_end_matches(']');
                match index.parse() {
                    Ok(i) => segments.push(Segment::Index(i)),
                    Err(_) => segments.push(Segment::Key(piece.to_owned())),
                }
            }
        }
        KeyPath(segments)
    }

    /// Whether `prefix` is this path or one of its ancestors.
    pub fn starts_with(&self, prefix: &KeyPath) -> bool {
        self.0.starts_with(&prefix.0)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Index(index) => write!(f, "[{index}]")?,
                Segment::Key(key) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    let bare = !key.is_empty()
                        && key
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                    if bare {
                        f.write_str(key)?;
                    } else {
                        // Quoted the way TOML quotes keys, so that a key with a
                        // dot or a space cannot be misread as two keys.
                        write!(f, "{}", toml::Value::String(key.clone()))?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Array elements that stage one removed, so that later indices can be
/// reported as they are in the file rather than as they are after removal.
#[derive(Debug, Default)]
pub struct Removed {
    /// Original path of the array -> removed original indices, ascending.
    arrays: Vec<(KeyPath, Vec<usize>)>,
}

impl Removed {
    /// Maps a path in the current (pruned) tree to the path in the file.
    pub fn to_original(&self, current: &KeyPath) -> KeyPath {
        let mut original = KeyPath::default();
        for segment in &current.0 {
            let segment = match segment {
                Segment::Index(index) => {
                    let mut index = *index;
                    if let Some((_, removed)) = self.arrays.iter().find(|(p, _)| *p == original) {
                        for &r in removed {
                            if r <= index {
                                index += 1;
                            }
                        }
                    }
                    Segment::Index(index)
                }
                key => key.clone(),
            };
            original.0.push(segment);
        }
        original
    }

    /// Records that the element at `original` (which ends in an index) was removed.
    fn record(&mut self, original: &KeyPath) {
        let Some((Segment::Index(index), array)) = original.0.split_last() else {
            return;
        };
        let array = KeyPath(array.to_vec());
        match self.arrays.iter_mut().find(|(p, _)| *p == array) {
            Some((_, removed)) => {
                let at = removed.partition_point(|&r| r < *index);
                removed.insert(at, *index);
            }
            None => self.arrays.push((array, vec![*index])),
        }
    }
}

/// What stage one produced.
#[derive(Debug)]
pub struct Shape {
    /// The raw config once every bad key was removed; `None` when that was
    /// impossible (then `errors` says why).
    pub raw: Option<RawConfig>,
    /// Problems, under their paths in the file.
    pub errors: Vec<(KeyPath, String)>,
    /// Array elements removed on the way.
    pub removed: Removed,
}

/// Deserializes `table` into a [`RawConfig`], collecting every shape error:
/// on each serde error the offending key is recorded, removed, and the
/// deserialization retried.
pub fn deserialize_collecting(table: toml::Table) -> Shape {
    let mut value = toml::Value::Table(table);
    let mut shape = Shape {
        raw: None,
        errors: Vec::new(),
        removed: Removed::default(),
    };
    for _ in 0..super::SHAPE_ROUNDS_MAX {
        let error = match serde_path_to_error::deserialize::<_, RawConfig>(value.clone()) {
            Ok(raw) => {
                shape.raw = Some(raw);
                return shape;
            }
            Err(error) => error,
        };
        let message = error.inner().message().trim_end().to_owned();
        let current = error
            .path()
            .iter()
            .try_fold(KeyPath::default(), |mut p, s| {
                match s {
                    serde_path_to_error::Segment::Map { key } => {
                        p.0.push(Segment::Key(key.clone()))
                    }
                    serde_path_to_error::Segment::Seq { index } => p.0.push(Segment::Index(*index)),
                    _ => return None,
                }
                Some(p)
            });
        let Some(current) = current.filter(|p| !p.0.is_empty()) else {
            shape.errors.push((KeyPath::default(), message));
            return shape;
        };
        let original = shape.removed.to_original(&current);
        shape.errors.push((original.clone(), message));
        if !remove(&mut value, &current) {
            return shape;
        }
        shape.removed.record(&original);
    }
    shape.errors.push((
        KeyPath::default(),
        format!(
            "too many problems, stopped after {}",
            super::SHAPE_ROUNDS_MAX
        ),
    ));
    shape
}

/// Removes the key or array element at `path`; false if there is none.
fn remove(value: &mut toml::Value, path: &KeyPath) -> bool {
    let Some((last, parents)) = path.0.split_last() else {
        return false;
    };
    let mut node = value;
    for segment in parents {
        let next = match segment {
            Segment::Key(key) => node.as_table_mut().and_then(|t| t.get_mut(key)),
            Segment::Index(index) => node.as_array_mut().and_then(|a| a.get_mut(*index)),
        };
        match next {
            Some(next) => node = next,
            None => return false,
        }
    }
    match last {
        Segment::Key(key) => node.as_table_mut().is_some_and(|t| t.remove(key).is_some()),
        Segment::Index(index) => match node.as_array_mut() {
            Some(array) if *index < array.len() => {
                array.remove(*index);
                true
            }
            _ => false,
        },
    }
}
