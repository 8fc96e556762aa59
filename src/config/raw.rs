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
    #[serde(default)]
    pub portal: RawPortal,
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
    pub batch_max: Option<RawInt>,
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

/// `[portal]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [portal] table")]
pub struct RawPortal {
    pub enabled: Option<bool>,
    pub public_url: Option<String>,
    pub token_expiry_max: Option<String>,
    pub tokens_per_app_max: Option<RawInt>,
    pub frame_ancestors: Option<Vec<String>>,
    #[serde(default)]
    pub theme: RawPortalTheme,
}

/// `[portal.theme]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [portal.theme] table")]
pub struct RawPortalTheme {
    pub title: Option<String>,
    pub accent: Option<String>,
    pub background: Option<String>,
    pub text: Option<String>,
    pub logo_url: Option<String>,
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
    pub legacy_signatures: Option<Vec<crate::model::legacy::LegacySignatureIn>>,
    pub filter: Option<toml::Table>,
    pub ordering: Option<String>,
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
///
/// serde stops at the first error, in the order it visits the tree, so each
/// problem costs a retry. Retrying the whole tree every time would make a file
/// with many problems cost rounds times its size; so after the second problem
/// the retries try pieces of the tree (its leaves and arrays, each under the
/// tables that lead to it) from where the last problem was, in growing batches
/// (1, 2, 4...) while they pass. That finds the same problems in the same
/// order: the fields of a raw struct are independent (no `flatten`, no
/// untagged enums), so a piece fails alone exactly as it fails in the tree,
/// and what comes before a problem passed. The last round is the whole tree,
/// as before.
pub fn deserialize_collecting(table: toml::Table) -> Shape {
    let mut value = toml::Value::Table(table);
    let mut shape = Shape {
        raw: None,
        errors: Vec::new(),
        removed: Removed::default(),
    };
    let mut failures = 0;
    loop {
        let found = match attempt(value.clone()) {
            Ok(raw) => {
                shape.raw = Some(raw);
                return shape;
            }
            Err(found) => found,
        };
        failures += 1;
        let Some(current) = found.path else {
            shape.errors.push((KeyPath::default(), found.message));
            return shape;
        };
        // Taken before the removal, so that the problem's piece is among them.
        let pieces = (failures == PIECEWISE_AFTER).then(|| pieces(&value));
        if !record_and_remove(&mut shape, &mut value, &current, found.message) {
            return shape;
        }
        if failures == super::SHAPE_ROUNDS_MAX {
            return too_many(shape);
        }
        if let Some(pieces) = pieces {
            let from = related(&pieces, 0, &current).unwrap_or(0);
            if !piecewise(&mut shape, &mut value, &pieces, from, &mut failures) {
                return shape;
            }
            // Then the whole tree again: it passes, unless a piece passed alone but
            // not in the tree, whose problem the rounds then find.
        }
    }
}

/// Problems found by whole-tree rounds before [`deserialize_collecting`]
/// retries piece by piece.
const PIECEWISE_AFTER: usize = 2;

/// The retries of [`deserialize_collecting`] after its first problems: the
/// pieces from `from` on, in batches that double while they pass and go back to
/// one piece at a problem. False if stage one ends here (a problem that names
/// no key or cannot be removed, or too many problems).
fn piecewise(
    shape: &mut Shape,
    value: &mut toml::Value,
    pieces: &[KeyPath],
    from: usize,
    failures: &mut usize,
) -> bool {
    let mut next = from;
    let mut batch = 1;
    while next < pieces.len() {
        let end = (next + batch).min(pieces.len());
        let Some(skeleton) = skeleton(value, &pieces[next..end]) else {
            next = end;
            continue;
        };
        let found = match attempt(skeleton) {
            Ok(_) => {
                next = end;
                batch *= 2;
                continue;
            }
            Err(found) => found,
        };
        *failures += 1;
        let Some(current) = found.path else {
            shape.errors.push((KeyPath::default(), found.message));
            return false;
        };
        // The pieces of the batch before the problem's passed.
        next = related(&pieces[..end], next, &current).unwrap_or(next);
        batch = 1;
        if !record_and_remove(shape, value, &current, found.message) {
            return false;
        }
        if *failures == super::SHAPE_ROUNDS_MAX {
            shape.errors.push(too_many_problems());
            return false;
        }
    }
    true
}

/// A serde error: its message, and its key path (`None` if it has none that
/// can be removed: the root, or a segment that is not a key or an index).
struct Found {
    message: String,
    path: Option<KeyPath>,
}

/// Deserializes `value` as a [`RawConfig`].
fn attempt(value: toml::Value) -> Result<RawConfig, Found> {
    let error = match serde_path_to_error::deserialize::<_, RawConfig>(value) {
        Ok(raw) => return Ok(raw),
        Err(error) => error,
    };
    let message = error.inner().message().trim_end().to_owned();
    let path = error
        .path()
        .iter()
        .try_fold(KeyPath::default(), |mut p, s| {
            match s {
                serde_path_to_error::Segment::Map { key } => p.0.push(Segment::Key(key.clone())),
                serde_path_to_error::Segment::Seq { index } => p.0.push(Segment::Index(*index)),
                _ => return None,
            }
            Some(p)
        })
        .filter(|p| !p.0.is_empty());
    Err(Found { message, path })
}

/// Records the problem at `current` (a path in the pruned tree) under its path
/// in the file, and removes its key; false if there was nothing to remove
/// (then stage one ends).
fn record_and_remove(
    shape: &mut Shape,
    value: &mut toml::Value,
    current: &KeyPath,
    message: String,
) -> bool {
    let original = shape.removed.to_original(current);
    shape.errors.push((original.clone(), message));
    if !remove(value, current) {
        return false;
    }
    shape.removed.record(&original);
    true
}

/// Stage one gives up after [`super::SHAPE_ROUNDS_MAX`] problems.
fn too_many(mut shape: Shape) -> Shape {
    shape.errors.push(too_many_problems());
    shape
}

fn too_many_problems() -> (KeyPath, String) {
    (
        KeyPath::default(),
        format!(
            "too many problems, stopped after {}",
            super::SHAPE_ROUNDS_MAX
        ),
    )
}

/// The pieces of `value`, in the order serde visits them: the path of every
/// node that is not a non-empty table (a value, an array, an empty table).
/// Paths of pieces are keys only: nothing under an array is a piece of its own.
fn pieces(value: &toml::Value) -> Vec<KeyPath> {
    fn walk(value: &toml::Value, at: &mut Vec<Segment>, out: &mut Vec<KeyPath>) {
        match value {
            toml::Value::Table(table) if !table.is_empty() => {
                for (key, child) in table {
                    at.push(Segment::Key(key.clone()));
                    walk(child, at, out);
                    at.pop();
                }
            }
            _ => out.push(KeyPath(at.clone())),
        }
    }
    let mut out = Vec::new();
    walk(value, &mut Vec::new(), &mut out);
    out
}

/// The index of the first piece from `from` that `path` is in or above: the
/// piece where serde met the problem at `path`.
fn related(pieces: &[KeyPath], from: usize, path: &KeyPath) -> Option<usize> {
    (from..pieces.len()).find(|&i| path.starts_with(&pieces[i]) || pieces[i].starts_with(path))
}

/// The tree cut down to `pieces`: each piece still in `value`, under the
/// tables that lead to it. `None` if none of them is left; the whole tree
/// should they not fit together (they always do: pieces only lose keys).
fn skeleton(value: &toml::Value, pieces: &[KeyPath]) -> Option<toml::Value> {
    let mut root = toml::Table::new();
    let mut any = false;
    for piece in pieces {
        let Some((Segment::Key(last), parents)) = piece.0.split_last() else {
            continue;
        };
        let mut node = value;
        let mut found = true;
        for segment in &piece.0 {
            let next = match segment {
                Segment::Key(key) => node.as_table().and_then(|t| t.get(key)),
                Segment::Index(_) => None,
            };
            match next {
                Some(next) => node = next,
                None => {
                    found = false;
                    break;
                }
            }
        }
        if !found {
            continue;
        }
        let mut table = &mut root;
        for segment in parents {
            let Segment::Key(key) = segment else {
                return Some(value.clone());
            };
            let entry = table
                .entry(key.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match entry {
                toml::Value::Table(t) => table = t,
                _ => return Some(value.clone()),
            }
        }
        table.insert(last.clone(), node.clone());
        any = true;
    }
    any.then_some(toml::Value::Table(root))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Stage one as a plain loop: the whole tree, round after round. The piecewise retries of
    /// [`deserialize_collecting`] must find exactly what this finds.
    fn reference(table: toml::Table) -> Shape {
        let mut value = toml::Value::Table(table);
        let mut shape = Shape {
            raw: None,
            errors: Vec::new(),
            removed: Removed::default(),
        };
        for _ in 0..crate::config::SHAPE_ROUNDS_MAX {
            let found = match attempt(value.clone()) {
                Ok(raw) => {
                    shape.raw = Some(raw);
                    return shape;
                }
                Err(found) => found,
            };
            let Some(current) = found.path else {
                shape.errors.push((KeyPath::default(), found.message));
                return shape;
            };
            if !record_and_remove(&mut shape, &mut value, &current, found.message) {
                return shape;
            }
        }
        too_many(shape)
    }

    /// SplitMix64.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) % n as u64) as usize
        }
    }

    fn any_value(rng: &mut Rng) -> toml::Value {
        let text = [
            "v = 1",
            "v = -7",
            "v = \"x\"",
            "v = \"2s\"",
            "v = true",
            "v = 1.5",
            "v = 1979-05-27T07:32:00Z",
            "v = []",
            "v = [1, \"a\"]",
            "v = [\"1s\", \"oops\"]",
            "v = {}",
            "v = { a = 1 }",
            "v = { name = \"n\", scopes = 3 }",
            "v = [{ name = 5 }, {}, { bogus = 1 }]",
            "v = [{ uid = \"e\", url = 7 }]",
        ][rng.below(15)];
        let mut table: toml::Table = toml::from_str(text).unwrap();
        table.remove("v").unwrap()
    }

    /// Every node of `value` that is a table, or a value, by path.
    fn nodes(value: &toml::Value, at: &mut Vec<Segment>, out: &mut Vec<(KeyPath, bool)>) {
        out.push((KeyPath(at.clone()), value.is_table()));
        match value {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    at.push(Segment::Key(k.clone()));
                    nodes(v, at, out);
                    at.pop();
                }
            }
            toml::Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    at.push(Segment::Index(i));
                    nodes(v, at, out);
                    at.pop();
                }
            }
            _ => {}
        }
    }

    fn node_mut<'a>(value: &'a mut toml::Value, path: &KeyPath) -> &'a mut toml::Value {
        let mut node = value;
        for segment in &path.0 {
            node = match segment {
                Segment::Key(k) => node.as_table_mut().unwrap().get_mut(k).unwrap(),
                Segment::Index(i) => node.as_array_mut().unwrap().get_mut(*i).unwrap(),
            };
        }
        node
    }

    /// A config with `edits` random changes: unknown keys added to tables, values replaced
    /// by values of any type (only the former past 100 edits).
    fn mutated(rng: &mut Rng, base: &toml::Table, edits: usize) -> toml::Table {
        let mut value = toml::Value::Table(base.clone());
        let mut tables = Vec::new();
        nodes(&value, &mut Vec::new(), &mut tables);
        tables.retain(|(_, is_table)| *is_table);
        for n in 0..edits {
            let mut all = Vec::new();
            nodes(&value, &mut Vec::new(), &mut all);
            let (path, is_table) = if edits > 100 {
                // Unknown keys in the file's own tables: a problem each.
                tables[rng.below(tables.len())].clone()
            } else {
                all[rng.below(all.len())].clone()
            };
            let node = node_mut(&mut value, &path);
            if is_table && (edits > 100 || rng.below(2) == 0) {
                let key = ["zz", "a", "server", "tls", "m"][rng.below(5)];
                let new = any_value(rng);
                node.as_table_mut()
                    .unwrap()
                    .insert(format!("{key}{n}"), new);
            } else if !path.0.is_empty() {
                *node = any_value(rng);
            }
        }
        match value {
            toml::Value::Table(t) => t,
            _ => unreachable!(),
        }
    }

    #[test]
    fn piecewise_rounds_find_what_whole_tree_rounds_find() {
        let bases: Vec<toml::Table> = [
            include_str!("../../hookd.example.toml"),
            super::super::DEFAULT_TOML,
            "[server]\n[[auth.tokens]]\nname = \"a\"\n[[apps]]\nname = \"x\"\n[[apps.endpoints]]\nurl = \"https://e\"\n",
        ]
        .iter()
        .map(|text| toml::from_str(text).unwrap())
        .collect();
        let mut rng = Rng(7);
        for case in 0..600 {
            let base = &bases[case % bases.len()];
            let edits = match case % 10 {
                0 => 40 + rng.below(400),
                _ => rng.below(12),
            };
            let table = mutated(&mut rng, base, edits);
            let want = reference(table.clone());
            let got = deserialize_collecting(table.clone());
            assert_eq!(got.errors, want.errors, "case {case}: {table:#?}");
            assert_eq!(
                format!("{:?}", got.raw),
                format!("{:?}", want.raw),
                "case {case}"
            );
        }
    }
}
