//! Stage two of config loading: raw values become typed values, and every
//! value is checked against its range and the keys it depends on.
//!
//! Nothing here stops at the first problem: each check records its problem
//! under the key path and falls back to the default, so that all problems of
//! a file are reported together. The limits below are sanity ceilings, far
//! above any sensible setting, that keep a typo (an extra zero, a unit slip)
//! from turning into an allocation or a thread count the machine cannot take.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

mod portal;
mod sources;

use super::raw::{RawConfig, RawInt, RawSize, RawToken};
use super::units::{parse_duration, parse_size, size_from_integer};
use super::{
    AuthConfig, Config, DeliveryConfig, Durability, EndpointPolicy, IngestConfig, LogConfig,
    LogFormat, LogLevel, MetricsConfig, OpEventType, OperationalWebhooks, RateLimit, Scope, Secret,
    ServerConfig, SignatureKind, StorageConfig, TlsConfig, TokenConfig, ValidationConfig,
};

/// Most shards (threads) `server.shards` may ask for.
pub const SHARDS_MAX: u32 = 1024;
/// Ceiling of `server.body_bytes_max`: request bodies are held in memory.
pub const BODY_BYTES_MAX: u64 = 256 << 20;
/// Ceiling of `ingest.batch_max`: a batch is answered whole, one item per message.
const BATCH_MAX: i64 = 10_000;
/// Ceiling of `ingest.payload_bytes_max`: one payload is one log record, and
/// the storage codec refuses records above 16 MiB.
pub const PAYLOAD_BYTES_MAX: u64 = 8 << 20;
/// Most entries in `delivery.retry_schedule`.
pub const RETRY_SCHEDULE_LEN_MAX: usize = 50;
/// Longest token name, in bytes.
pub const TOKEN_NAME_BYTES_MAX: usize = 64;
/// Most `[[sources]]` entries. Each request to `/ingest/{name}` looks its source up by name.
pub const SOURCES_MAX: usize = 64;
/// Longest `sources[].tolerance`: delivery ids are remembered for twice this.
pub const SOURCE_TOLERANCE_MAX: Duration = Duration::from_secs(86_400);
/// Most entries in `endpoint_policy.allowed_host_suffixes` and `denied_hosts` each.
pub const HOST_LIST_LEN_MAX: usize = 1000;
/// Longest source secret, in bytes.
const SOURCE_SECRET_BYTES_MAX: usize = 1024;
/// Longest header name or JSON pointer in a source, in bytes.
const LOCATOR_BYTES_MAX: usize = 256;
/// Longest host name (RFC 1035), in bytes.
const HOST_BYTES_MAX: usize = 253;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// Whether a zero duration is meaningful for a key.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Zero {
    Allowed,
    Refused,
}

/// Collects problems as `(key path, message)`.
#[derive(Default)]
struct Checker {
    errors: Vec<(String, String)>,
}

impl Checker {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push((path.into(), message.into()));
    }

    fn duration(
        &mut self,
        path: &str,
        raw: Option<&str>,
        default: Duration,
        zero: Zero,
    ) -> Duration {
        let Some(text) = raw else {
            return default;
        };
        match parse_duration(text) {
            Ok(d) if d.is_zero() && zero == Zero::Refused => {
                self.error(path, "must be greater than zero");
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.error(path, e.to_string());
                default
            }
        }
    }

    fn size(
        &mut self,
        path: &str,
        raw: Option<&RawSize>,
        default: u64,
        range: RangeInclusive<u64>,
    ) -> u64 {
        let parsed = match raw {
            None => return default,
            Some(RawSize::Bytes(n)) => size_from_integer(*n),
            Some(RawSize::Text(text)) => parse_size(text),
        };
        match parsed {
            Ok(n) if range.contains(&n) => n,
            Ok(n) => {
                self.error(
                    path,
                    format!(
                        "must be between {} and {}, got {}",
                        human_size(*range.start()),
                        human_size(*range.end()),
                        human_size(n)
                    ),
                );
                default
            }
            Err(e) => {
                self.error(path, e.to_string());
                default
            }
        }
    }

    fn count<T: TryFrom<i64> + Copy>(
        &mut self,
        path: &str,
        raw: Option<RawInt>,
        default: T,
        range: RangeInclusive<i64>,
    ) -> T {
        let Some(RawInt(n)) = raw else {
            return default;
        };
        if !range.contains(&n) {
            self.error(
                path,
                format!(
                    "must be between {} and {}, got {n}",
                    range.start(),
                    range.end()
                ),
            );
            return default;
        }
        match T::try_from(n) {
            Ok(v) => v,
            Err(_) => {
                self.error(path, format!("out of range: {n}"));
                default
            }
        }
    }

    fn choice<T: Copy>(
        &mut self,
        path: &str,
        raw: Option<&str>,
        default: T,
        choices: &[(&str, T)],
    ) -> T {
        let Some(text) = raw else {
            return default;
        };
        if let Some((_, value)) = choices.iter().find(|(name, _)| *name == text) {
            return *value;
        }
        let names: Vec<String> = choices.iter().map(|(n, _)| format!("{n:?}")).collect();
        self.error(
            path,
            format!(
                "unknown value {text:?}, expected one of {}",
                names.join(", ")
            ),
        );
        default
    }

    fn file_path(&mut self, path: &str, raw: Option<&str>) -> Option<PathBuf> {
        match raw {
            Some("") => {
                self.error(path, "must not be empty");
                None
            }
            other => other.map(PathBuf::from),
        }
    }
}

/// `1048576` -> `1MiB`, `1500` -> `1500B`: the exact value in the largest unit
/// that divides it.
fn human_size(n: u64) -> String {
    for (unit, size) in [
        ("TiB", 1u64 << 40),
        ("GiB", GIB),
        ("MiB", MIB),
        ("KiB", KIB),
    ] {
        if n >= size && n % size == 0 {
            return format!("{}{unit}", n / size);
        }
    }
    format!("{n}B")
}

/// Turns `raw` into a [`Config`]. The config is only meaningful when the
/// returned problem list is empty.
pub(super) fn validate(raw: &RawConfig) -> (Config, Vec<(String, String)>) {
    let mut c = Checker::default();
    let server = server(&mut c, raw);
    let storage = storage(&mut c, raw);
    let ingest = ingest(&mut c, raw, &server);
    let delivery = delivery(&mut c, raw);
    let log = log(&mut c, raw);
    let metrics = MetricsConfig {
        public: raw
            .metrics
            .public
            .unwrap_or(MetricsConfig::default().public),
    };
    let auth = auth(&mut c, raw);
    let sources = sources::sources(&mut c, raw);
    let endpoint_policy = endpoint_policy(&mut c, raw);
    let (apps, event_types) =
        super::statics::validate(raw, &delivery, &endpoint_policy, &mut c.errors);
    let validation = ValidationConfig {
        enforce_schemas: raw
            .validation
            .enforce_schemas
            .unwrap_or(ValidationConfig::default().enforce_schemas),
    };
    let operational_webhooks = operational_webhooks(&mut c, raw);
    let portal = portal::portal(&mut c, raw);
    let config = Config {
        server,
        storage,
        ingest,
        delivery,
        log,
        metrics,
        auth,
        sources,
        endpoint_policy,
        apps,
        event_types,
        validation,
        operational_webhooks,
        portal,
    };
    (config, c.errors)
}

fn server(c: &mut Checker, raw: &RawConfig) -> ServerConfig {
    let r = &raw.server;
    let d = ServerConfig::default();
    let listen = match r.listen.as_deref() {
        None => d.listen,
        Some(text) => text.parse::<SocketAddr>().unwrap_or_else(|_| {
            c.error(
                "server.listen",
                format!(
                    "invalid socket address {text:?}: expected IP:PORT, \
                     e.g. \"127.0.0.1:8071\" or \"[::]:443\" (host names are not resolved)"
                ),
            );
            d.listen
        }),
    };
    let tls = match &r.tls {
        None => None,
        Some(tls) => {
            let cert = c.file_path("server.tls.cert", tls.cert.as_deref());
            let key = c.file_path("server.tls.key", tls.key.as_deref());
            match (tls.cert.is_some(), tls.key.is_some()) {
                (true, false) => c.error("server.tls.key", "required when server.tls.cert is set"),
                (false, true) => c.error("server.tls.cert", "required when server.tls.key is set"),
                (false, false) => c.error(
                    "server.tls",
                    "needs cert and key; remove the section to serve plain HTTP",
                ),
                (true, true) => {}
            }
            cert.zip(key).map(|(cert, key)| TlsConfig { cert, key })
        }
    };
    ServerConfig {
        listen,
        shards: c.count("server.shards", r.shards, d.shards, 0..=SHARDS_MAX.into()),
        connections_per_shard_max: c.count(
            "server.connections_per_shard_max",
            r.connections_per_shard_max,
            d.connections_per_shard_max,
            1..=1_000_000,
        ),
        header_bytes_max: c.size(
            "server.header_bytes_max",
            r.header_bytes_max.as_ref(),
            d.header_bytes_max,
            1..=MIB,
        ),
        headers_count_max: c.count(
            "server.headers_count_max",
            r.headers_count_max,
            d.headers_count_max,
            1..=1024,
        ),
        uri_bytes_max: c.size(
            "server.uri_bytes_max",
            r.uri_bytes_max.as_ref(),
            d.uri_bytes_max,
            1..=MIB,
        ),
        body_bytes_max: c.size(
            "server.body_bytes_max",
            r.body_bytes_max.as_ref(),
            d.body_bytes_max,
            1..=BODY_BYTES_MAX,
        ),
        header_read_timeout: c.duration(
            "server.header_read_timeout",
            r.header_read_timeout.as_deref(),
            d.header_read_timeout,
            Zero::Refused,
        ),
        idle_timeout: c.duration(
            "server.idle_timeout",
            r.idle_timeout.as_deref(),
            d.idle_timeout,
            Zero::Refused,
        ),
        request_timeout: c.duration(
            "server.request_timeout",
            r.request_timeout.as_deref(),
            d.request_timeout,
            Zero::Refused,
        ),
        tls,
    }
}

fn storage(c: &mut Checker, raw: &RawConfig) -> StorageConfig {
    let r = &raw.storage;
    let d = StorageConfig::default();
    let path = c
        .file_path("storage.path", r.path.as_deref())
        .unwrap_or(d.path);
    let durability = c.choice(
        "storage.durability",
        r.durability.as_deref(),
        d.durability,
        &[
            ("sync", Durability::Sync),
            ("interval", Durability::Interval),
        ],
    );
    // Zero would mean fsync in a busy loop.
    let flush_interval = c.duration(
        "storage.flush_interval",
        r.flush_interval.as_deref(),
        d.flush_interval,
        Zero::Refused,
    );
    // Zero means "no extra wait": the next fsync starts as soon as the last ended.
    let commit_window = c.duration(
        "storage.commit_window",
        r.commit_window.as_deref(),
        d.commit_window,
        Zero::Allowed,
    );
    let before = c.errors.len();
    let segment_bytes_max = c.size(
        "storage.segment_bytes_max",
        r.segment_bytes_max.as_ref(),
        d.segment_bytes_max,
        KIB..=4 * GIB,
    );
    // A segment_bytes_max that was refused stands in as its default: not a limit to name.
    let segment_ok = c.errors.len() == before;
    let max_bytes = c.size(
        "storage.max_bytes",
        r.max_bytes.as_ref(),
        d.max_bytes,
        1..=u64::MAX,
    );
    if segment_ok && max_bytes < segment_bytes_max {
        c.error(
            "storage.max_bytes",
            format!(
                "must be at least storage.segment_bytes_max ({})",
                human_size(segment_bytes_max)
            ),
        );
    }
    StorageConfig {
        path,
        durability,
        flush_interval,
        commit_window,
        segment_bytes_max,
        segment_events_max: c.count(
            "storage.segment_events_max",
            r.segment_events_max,
            d.segment_events_max,
            1..=u32::MAX.into(),
        ),
        segment_age_max: c.duration(
            "storage.segment_age_max",
            r.segment_age_max.as_deref(),
            d.segment_age_max,
            Zero::Refused,
        ),
        retention: c.duration(
            "storage.retention",
            r.retention.as_deref(),
            d.retention,
            Zero::Refused,
        ),
        max_bytes,
        reserve_bytes: c.size(
            "storage.reserve_bytes",
            r.reserve_bytes.as_ref(),
            d.reserve_bytes,
            0..=u64::MAX,
        ),
        cache_bytes: c.size(
            "storage.cache_bytes",
            r.cache_bytes.as_ref(),
            d.cache_bytes,
            1..=u64::MAX,
        ),
        idempotency_ttl: c.duration(
            "storage.idempotency_ttl",
            r.idempotency_ttl.as_deref(),
            d.idempotency_ttl,
            Zero::Refused,
        ),
    }
}

fn ingest(c: &mut Checker, raw: &RawConfig, server: &ServerConfig) -> IngestConfig {
    let r = &raw.ingest;
    let d = IngestConfig::default();
    let payload_bytes_max = c.size(
        "ingest.payload_bytes_max",
        r.payload_bytes_max.as_ref(),
        d.payload_bytes_max.min(server.body_bytes_max),
        1..=PAYLOAD_BYTES_MAX,
    );
    if payload_bytes_max > server.body_bytes_max {
        c.error(
            "ingest.payload_bytes_max",
            format!(
                "must not exceed server.body_bytes_max ({}): the payload travels in the request body",
                human_size(server.body_bytes_max)
            ),
        );
    }
    let batch_max = c.count("ingest.batch_max", r.batch_max, d.batch_max, 1..=BATCH_MAX);
    IngestConfig {
        payload_bytes_max,
        batch_max,
    }
}

fn delivery(c: &mut Checker, raw: &RawConfig) -> DeliveryConfig {
    let r = &raw.delivery;
    let d = DeliveryConfig::default();
    let retry_schedule = match &r.retry_schedule {
        None => d.retry_schedule.clone(),
        Some(entries) => {
            if entries.is_empty() {
                c.error(
                    "delivery.retry_schedule",
                    "must have at least one entry, e.g. [\"5s\"]",
                );
            } else if entries.len() > RETRY_SCHEDULE_LEN_MAX {
                c.error(
                    "delivery.retry_schedule",
                    format!(
                        "has {} entries, at most {RETRY_SCHEDULE_LEN_MAX} are allowed",
                        entries.len()
                    ),
                );
            }
            entries
                .iter()
                .enumerate()
                .map(|(i, text)| {
                    c.duration(
                        &format!("delivery.retry_schedule[{i}]"),
                        Some(text),
                        Duration::from_secs(1),
                        Zero::Refused,
                    )
                })
                .collect()
        }
    };
    let timeout = c.duration(
        "delivery.timeout",
        r.timeout.as_deref(),
        d.timeout,
        Zero::Refused,
    );
    // Defaults that depend on another key never contradict it: a short
    // `timeout` alone shortens the default connect timeout too.
    let connect_timeout = c.duration(
        "delivery.connect_timeout",
        r.connect_timeout.as_deref(),
        d.connect_timeout.min(timeout),
        Zero::Refused,
    );
    if connect_timeout > timeout {
        c.error(
            "delivery.connect_timeout",
            "must not exceed delivery.timeout, which covers the whole attempt",
        );
    }
    let in_flight_per_shard_max = c.count(
        "delivery.in_flight_per_shard_max",
        r.in_flight_per_shard_max,
        d.in_flight_per_shard_max,
        1..=1_000_000,
    );
    let in_flight_per_endpoint_max = c.count(
        "delivery.in_flight_per_endpoint_max",
        r.in_flight_per_endpoint_max,
        d.in_flight_per_endpoint_max.min(in_flight_per_shard_max),
        1..=65_536,
    );
    if in_flight_per_endpoint_max > in_flight_per_shard_max {
        c.error(
            "delivery.in_flight_per_endpoint_max",
            "must not exceed delivery.in_flight_per_shard_max",
        );
    }
    DeliveryConfig {
        retry_schedule,
        timeout,
        connect_timeout,
        allow_private_networks: r.allow_private_networks.unwrap_or(d.allow_private_networks),
        svix_headers: r.svix_headers.unwrap_or(d.svix_headers),
        disable_after: c.duration(
            "delivery.disable_after",
            r.disable_after.as_deref(),
            d.disable_after,
            Zero::Refused,
        ),
        in_flight_per_endpoint_max,
        in_flight_per_shard_max,
        in_flight_per_host_max: c.count(
            "delivery.in_flight_per_host_max",
            r.in_flight_per_host_max,
            d.in_flight_per_host_max,
            1..=65_536,
        ),
        pipeline_depth: c.count(
            "delivery.pipeline_depth",
            r.pipeline_depth,
            d.pipeline_depth,
            1..=64,
        ),
        queue_capacity: c.count(
            "delivery.queue_capacity",
            r.queue_capacity,
            d.queue_capacity,
            1..=1 << 24,
        ),
        response_bytes_max: c.size(
            "delivery.response_bytes_max",
            r.response_bytes_max.as_ref(),
            d.response_bytes_max,
            1..=MIB,
        ),
        secret_rotation_grace: c.duration(
            "delivery.secret_rotation_grace",
            r.secret_rotation_grace.as_deref(),
            d.secret_rotation_grace,
            Zero::Allowed,
        ),
        default_signature: c.choice(
            "delivery.default_signature",
            r.default_signature.as_deref(),
            d.default_signature,
            &[
                ("hmac", SignatureKind::Hmac),
                ("ed25519", SignatureKind::Ed25519),
            ],
        ),
        ca_file: c.file_path("delivery.ca_file", r.ca_file.as_deref()),
    }
}

fn log(c: &mut Checker, raw: &RawConfig) -> LogConfig {
    let d = LogConfig::default();
    LogConfig {
        level: c.choice(
            "log.level",
            raw.log.level.as_deref(),
            d.level,
            &[
                ("trace", LogLevel::Trace),
                ("debug", LogLevel::Debug),
                ("info", LogLevel::Info),
                ("warn", LogLevel::Warn),
                ("error", LogLevel::Error),
            ],
        ),
        format: c.choice(
            "log.format",
            raw.log.format.as_deref(),
            d.format,
            &[("text", LogFormat::Text), ("json", LogFormat::Json)],
        ),
    }
}

fn auth(c: &mut Checker, raw: &RawConfig) -> AuthConfig {
    let mut tokens = Vec::with_capacity(raw.auth.tokens.len());
    let mut names = HashSet::new();
    let mut hashes = HashSet::new();
    for (i, r) in raw.auth.tokens.iter().enumerate() {
        let at = format!("auth.tokens[{i}]");
        let token = token(c, &at, r);
        if let Some(name) = &r.name {
            if !names.insert(name.as_str()) {
                c.error(
                    format!("{at}.name"),
                    format!("duplicate token name {name:?}"),
                );
            }
        }
        if let Some(token) = token {
            if !hashes.insert(token.sha256) {
                c.error(
                    format!("{at}.sha256"),
                    "same hash as an earlier token: each token needs its own",
                );
            }
            tokens.push(token);
        }
    }
    AuthConfig { tokens }
}

/// Checks one token; `None` if something in it is wrong (already reported).
fn token(c: &mut Checker, at: &str, r: &RawToken) -> Option<TokenConfig> {
    let errors_before = c.errors.len();
    let name = match &r.name {
        None => {
            c.error(format!("{at}.name"), "required");
            String::new()
        }
        Some(name) => {
            check_token_name(c, &format!("{at}.name"), name, "token");
            name.clone()
        }
    };
    let sha256 = match &r.sha256 {
        None => {
            c.error(
                format!("{at}.sha256"),
                "required: the SHA-256 of the token, as printed by `hookd token new`",
            );
            [0; 32]
        }
        Some(text) => parse_sha256(c, &format!("{at}.sha256"), text),
    };
    let mut scopes = Vec::new();
    match &r.scopes {
        None => c.error(
            format!("{at}.scopes"),
            "required: one or more of \"admin\", \"ingest\", \"read\"",
        ),
        Some(names) if names.is_empty() => c.error(
            format!("{at}.scopes"),
            "must not be empty: one or more of \"admin\", \"ingest\", \"read\"",
        ),
        Some(names) => {
            for (j, name) in names.iter().enumerate() {
                let path = format!("{at}.scopes[{j}]");
                match Scope::from_name(name) {
                    None => c.error(
                        path,
                        format!(
                            "unknown scope {name:?}, expected one of \"admin\", \"ingest\", \"read\""
                        ),
                    ),
                    Some(scope) if scopes.contains(&scope) => {
                        c.error(path, format!("duplicate scope {name:?}"))
                    }
                    Some(scope) => scopes.push(scope),
                }
            }
        }
    }
    let ingest = scopes.contains(&Scope::Ingest);
    let ingest_only = |c: &mut Checker, key: &str| {
        if !ingest && r.scopes.as_ref().is_some_and(|s| !s.is_empty()) {
            c.error(
                format!("{at}.{key}"),
                "only allowed on tokens with the \"ingest\" scope",
            );
        }
    };
    if let Some(apps) = &r.apps {
        ingest_only(c, "apps");
        if apps.is_empty() {
            c.error(
                format!("{at}.apps"),
                "must not be empty; leave the key out to allow every app",
            );
        }
        for (j, app) in apps.iter().enumerate() {
            if app.is_empty() {
                c.error(format!("{at}.apps[{j}]"), "must not be empty");
            }
        }
    }
    let mut rate_limit = None;
    if let Some(rate) = r.rate_per_second {
        ingest_only(c, "rate_per_second");
        let per_second: u32 = c.count(
            &format!("{at}.rate_per_second"),
            Some(rate),
            1,
            1..=1_000_000,
        );
        let burst: u32 = c.count(&format!("{at}.burst"), r.burst, per_second, 1..=10_000_000);
        rate_limit = Some(RateLimit { per_second, burst });
    } else if r.burst.is_some() {
        c.error(format!("{at}.burst"), "needs rate_per_second");
    }
    if c.errors.len() > errors_before {
        return None;
    }
    Some(TokenConfig {
        name,
        sha256,
        scopes,
        apps: r.apps.clone(),
        rate_limit,
    })
}

fn check_token_name(c: &mut Checker, path: &str, name: &str, what: &str) {
    if name.is_empty() {
        c.error(path, "must not be empty");
    } else if name.len() > TOKEN_NAME_BYTES_MAX {
        c.error(path, format!("longer than {TOKEN_NAME_BYTES_MAX} bytes"));
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        c.error(
            path,
            format!("invalid {what} name {name:?}: use letters, digits, '-', '_' and '.'"),
        );
    }
}

fn parse_sha256(c: &mut Checker, path: &str, text: &str) -> [u8; 32] {
    let mut hash = [0u8; 32];
    if text.starts_with(super::tokens::TOKEN_PREFIX) {
        c.error(
            path,
            "this is a token, not its hash: put the token's SHA-256 here \
             (`hookd token new` prints both) and keep the token itself secret",
        );
    } else if text.len() != 64 {
        c.error(
            path,
            format!(
                "must be 64 hex digits (a SHA-256), got {} characters",
                text.chars().count()
            ),
        );
    } else if hex::decode_to_slice(text, &mut hash).is_err() {
        c.error(path, "must contain only hex digits 0-9 and a-f");
    }
    hash
}

/// Svix's rule for ids, uids and event type names: `^[a-zA-Z0-9\-_.]+$`, at most 256 bytes.
fn is_api_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// `"a", "b"`: names for a message.
fn quoted(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    quoted.join(", ")
}

/// An HTTP header name (RFC 9110 token), lowercased.
fn header_name(c: &mut Checker, path: &str, name: &str) -> String {
    let ok = !name.is_empty()
        && name.len() <= LOCATOR_BYTES_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !ok {
        c.error(
            path,
            format!("{name:?} is not a header name (1 to {LOCATOR_BYTES_MAX} token characters)"),
        );
    }
    name.to_ascii_lowercase()
}

/// A JSON pointer (RFC 6901) to a member: `/type`, `/data/object/id`.
fn pointer(c: &mut Checker, path: &str, p: &str) -> String {
    if !p.starts_with('/') || p.len() > LOCATOR_BYTES_MAX {
        c.error(
            path,
            format!(
                "{p:?} is not a JSON pointer to a member: it starts with '/', e.g. \"/type\", \
                 at most {LOCATOR_BYTES_MAX} bytes"
            ),
        );
    }
    p.to_owned()
}

fn endpoint_policy(c: &mut Checker, raw: &RawConfig) -> EndpointPolicy {
    let r = &raw.endpoint_policy;
    let d = EndpointPolicy::default();
    let mut hosts = |key: &str, list: &Option<Vec<String>>| -> Vec<String> {
        let Some(list) = list else {
            return Vec::new();
        };
        let path = format!("endpoint_policy.{key}");
        if list.len() > HOST_LIST_LEN_MAX {
            c.error(
                &path,
                format!(
                    "has {} entries, at most {HOST_LIST_LEN_MAX} are allowed",
                    list.len()
                ),
            );
        }
        list.iter()
            .enumerate()
            .map(|(j, host)| {
                let bare = host.strip_prefix('.').unwrap_or(host);
                let bare = bare.strip_suffix('.').unwrap_or(bare);
                let ok = !bare.is_empty()
                    && bare.len() <= HOST_BYTES_MAX
                    && bare.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':')
                    });
                if !ok {
                    c.error(
                        format!("{path}[{j}]"),
                        format!(
                            "{host:?} is not a host name or address \
                             (e.g. \"example.com\", \".example.com\" or \"10.0.0.1\")"
                        ),
                    );
                }
                host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
            })
            .collect()
    };
    let allowed_host_suffixes = hosts("allowed_host_suffixes", &r.allowed_host_suffixes);
    let denied_hosts = hosts("denied_hosts", &r.denied_hosts);
    EndpointPolicy {
        https_only: r.https_only.unwrap_or(d.https_only),
        allowed_host_suffixes,
        denied_hosts,
        endpoints_per_app_max: c.count(
            "endpoint_policy.endpoints_per_app_max",
            r.endpoints_per_app_max,
            d.endpoints_per_app_max,
            1..=1_000_000,
        ),
    }
}

/// `[operational_webhooks]`: `url` and `secret` required once the section is there.
fn operational_webhooks(c: &mut Checker, raw: &RawConfig) -> Option<OperationalWebhooks> {
    let r = raw.operational_webhooks.as_ref()?;
    let errors_before = c.errors.len();
    let url = match &r.url {
        None => {
            c.error(
                "operational_webhooks.url",
                "required: where operational webhooks are sent",
            );
            String::new()
        }
        Some(url) => {
            if let Err(why) = crate::model::url::Url::parse(url) {
                c.error("operational_webhooks.url", format!("invalid URL: {why}"));
            }
            url.clone()
        }
    };
    let secret = match &r.secret {
        None => {
            c.error(
                "operational_webhooks.secret",
                "required: the endpoint's signing secret, \"whsec_\" + base64 \
                 (`openssl rand -base64 24`)",
            );
            Secret(Vec::new())
        }
        Some(s) => match crate::model::secret::parse_secret(s) {
            Ok(key) => Secret(key),
            Err(e) => {
                c.error(
                    "operational_webhooks.secret",
                    format!("{e} (expected \"whsec_\" + base64)"),
                );
                Secret(Vec::new())
            }
        },
    };
    let event_types = r.event_types.as_ref().map(|names| {
        let mut out = Vec::new();
        for (i, name) in names.iter().enumerate() {
            match OpEventType::from_name(name) {
                Some(t) if !out.contains(&t) => out.push(t),
                Some(_) => c.error(
                    format!("operational_webhooks.event_types[{i}]"),
                    format!("{name:?} is listed twice"),
                ),
                None => c.error(
                    format!("operational_webhooks.event_types[{i}]"),
                    format!(
                        "unknown event type {name:?}; expected one of {}",
                        quoted(&OpEventType::ALL.map(OpEventType::name))
                    ),
                ),
            }
        }
        out
    });
    (c.errors.len() == errors_before).then_some(OperationalWebhooks {
        url,
        secret,
        event_types,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(1500), "1500B");
        assert_eq!(human_size(1024), "1KiB");
        assert_eq!(human_size(256 << 20), "256MiB");
        assert_eq!(human_size(3 << 30), "3GiB");
        assert_eq!(human_size(1 << 40), "1TiB");
    }
}
