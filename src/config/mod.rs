//! `hookd.toml`: the typed, validated configuration and how it is loaded.
//!
//! Loading happens in two stages, so that an operator sees every problem in
//! one go, each with the key path it belongs to:
//!
//! 1. **Shape** (`raw.rs`): the text is parsed as TOML (a syntax error is one
//!    problem with its line and column), then deserialized into raw serde
//!    structs that refuse unknown keys. serde stops at its first error, so the
//!    offending key is removed from the TOML tree, the error recorded under its
//!    key path, and deserialization retried, up to [`SHAPE_ROUNDS_MAX`] times.
//! 2. **Meaning** (`validate.rs`): every raw value is turned into its typed form
//!    (durations, sizes, enums, socket addresses) and checked against its
//!    range and against the keys it depends on. Every problem is collected.
//!
//! The result is a [`Config`] or a [`ConfigErrors`], never a panic. Every key
//! has a default (see [`Config::default`]); `hookd.example.toml` at the
//! repository root documents them all and is tested to match.
//!
//! The key names pinned in `api.md` §5 (`server.listen`, `server.shards`,
//! `server.tls.cert`/`key`, `storage.path`, `storage.durability`,
//! `delivery.retry_schedule`, `delivery.timeout`,
//! `delivery.allow_private_networks`, `auth.tokens[].name`/`sha256`/`scopes`)
//! must not be renamed: deployment scripts depend on them.

pub mod policy;
mod raw;
mod statics;
pub mod tokens;
pub mod units;
mod validate;
mod warnings;
pub use warnings::warnings;

#[cfg(test)]
mod tests;

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

pub(crate) use statics::is_api_name;
pub use statics::{AppDef, EndpointDef, EventTypeDef, APPS_MAX, ENDPOINTS_MAX, EVENT_TYPES_MAX};
pub use validate::{
    BODY_BYTES_MAX, HOST_LIST_LEN_MAX, PAYLOAD_BYTES_MAX, RETRY_SCHEDULE_LEN_MAX, SHARDS_MAX,
    SOURCES_MAX, SOURCE_TOLERANCE_MAX, TOKEN_NAME_BYTES_MAX,
};

/// The config used by `hookd serve` when no `--config` is given.
pub const DEFAULT_TOML: &str = include_str!("default.toml");

/// The largest config file [`load`] reads.
pub const CONFIG_BYTES_MAX: u64 = 1 << 20;

/// How many times stage one removes a bad key and retries before giving up.
pub const SHAPE_ROUNDS_MAX: usize = 100;

/// The validated configuration of a `hookd` process.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    /// `[server]`: the HTTP listener and its limits.
    pub server: ServerConfig,
    /// `[storage]`: the event log on disk.
    pub storage: StorageConfig,
    /// `[ingest]`: limits on accepted events.
    pub ingest: IngestConfig,
    /// `[delivery]`: outgoing webhook requests.
    pub delivery: DeliveryConfig,
    /// `[log]`: diagnostics.
    pub log: LogConfig,
    /// `[metrics]`: the `/metrics` endpoint.
    pub metrics: MetricsConfig,
    /// `[auth]`: API tokens.
    pub auth: AuthConfig,
    /// `[[sources]]`: inbound webhook sources, served at `POST /ingest/{name}`.
    pub sources: Vec<SourceConfig>,
    /// `[endpoint_policy]`: rules every endpoint URL must satisfy.
    pub endpoint_policy: EndpointPolicy,
    /// `[[apps]]`: applications (and their endpoints) declared in the file.
    pub apps: Vec<AppDef>,
    /// `[[event_types]]`: event types declared in the file.
    pub event_types: Vec<EventTypeDef>,
    /// `[validation]`: checks on message payloads.
    pub validation: ValidationConfig,
    /// `[operational_webhooks]`: the operator endpoint told about endpoints and failing
    /// deliveries; `None` when the section is absent.
    pub operational_webhooks: Option<OperationalWebhooks>,
    /// `[portal]`
    pub portal: PortalConfig,
}

/// `[server]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// Shard (thread) count; 0 means one per core, see [`Config::effective_shards`].
    pub shards: u32,
    /// Open connections per shard; more are refused.
    pub connections_per_shard_max: u32,
    /// Bytes of the request line plus all headers.
    pub header_bytes_max: u64,
    /// Number of request headers.
    pub headers_count_max: u32,
    /// Bytes of the request URI.
    pub uri_bytes_max: u64,
    /// Bytes of a whole request body.
    pub body_bytes_max: u64,
    /// Time allowed for a request's headers to arrive.
    pub header_read_timeout: Duration,
    /// A keep-alive connection with no request for this long is closed.
    pub idle_timeout: Duration,
    /// Time allowed for a whole request, body included.
    pub request_timeout: Duration,
    /// HTTPS, when set.
    pub tls: Option<TlsConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8071)),
            shards: 0,
            connections_per_shard_max: 4096,
            header_bytes_max: 16 << 10,
            headers_count_max: 64,
            uri_bytes_max: 8 << 10,
            body_bytes_max: 1 << 20,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            tls: None,
        }
    }
}

/// `[server.tls]`: PEM files for HTTPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// Certificate chain, PEM.
    pub cert: PathBuf,
    /// Private key, PEM.
    pub key: PathBuf,
}

/// How an endpoint's deliveries are signed (Standard Webhooks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureKind {
    /// `v1`: HMAC-SHA256 with a shared `whsec_` secret.
    Hmac,
    /// `v1a`: ed25519 with a `whsk_` key; receivers verify with its `whpk_` public key.
    Ed25519,
}

/// When an accepted event is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// An event is acknowledged only after fsync; every write made while one
    /// fsync runs shares the next one (group commit).
    Sync,
    /// Events are acknowledged once written; fsync runs every `flush_interval`.
    Interval,
}

impl Durability {
    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sync => "sync",
            Self::Interval => "interval",
        }
    }
}

/// `[storage]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// Data directory.
    pub path: PathBuf,
    /// When an event counts as stored.
    pub durability: Durability,
    /// fsync period in interval mode (the loss window on power failure).
    pub flush_interval: Duration,
    /// Sync mode: at most one fsync per window (0 = back to back, as soon as
    /// the previous one finished).
    pub commit_window: Duration,
    /// A log segment is closed at this size...
    pub segment_bytes_max: u64,
    /// ...or this many events...
    pub segment_events_max: u64,
    /// ...or this age, whichever comes first.
    pub segment_age_max: Duration,
    /// Events older than this are deleted.
    pub retention: Duration,
    /// Disk ceiling for the log.
    pub max_bytes: u64,
    /// Kept free on the data directory's filesystem for the index: ingest answers 507 below
    /// it (0: no reserve).
    pub reserve_bytes: u64,
    /// Index cache (sled `cache_capacity`).
    pub cache_bytes: u64,
    /// How long an idempotency key is remembered.
    pub idempotency_ttl: Duration,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("./hookd-data"),
            durability: Durability::Sync,
            flush_interval: Duration::from_millis(1),
            commit_window: Duration::from_millis(1),
            segment_bytes_max: 64 << 20,
            segment_events_max: 1_000_000,
            segment_age_max: Duration::from_secs(3600),
            retention: Duration::from_secs(7 * 86_400),
            max_bytes: 10 << 30,
            reserve_bytes: 64 << 20,
            // sled overshoots its cache about twice; 16 MiB costs no measured delivery rate
            // against 64 MiB and keeps a million pending deliveries under 200 MiB RSS (README).
            cache_bytes: 16 << 20,
            idempotency_ttl: Duration::from_secs(12 * 3600),
        }
    }
}

/// `[ingest]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestConfig {
    /// Bytes of one event payload.
    pub payload_bytes_max: u64,
    /// Messages in one batch ingest request (`POST .../msg/batch`).
    pub batch_max: u32,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            payload_bytes_max: 256 << 10,
            batch_max: 1000,
        }
    }
}

/// `[delivery]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// Wait before each retry; its length is the number of retries.
    pub retry_schedule: Vec<Duration>,
    /// Time allowed for one delivery attempt.
    pub timeout: Duration,
    /// Time allowed to connect, within `timeout`.
    pub connect_timeout: Duration,
    /// Let endpoints resolve to loopback and private ranges.
    pub allow_private_networks: bool,
    /// Send `svix-*` headers beside the `webhook-*` ones.
    pub svix_headers: bool,
    /// An endpoint failing without a success for this long is disabled.
    pub disable_after: Duration,
    /// Concurrent attempts to one endpoint.
    pub in_flight_per_endpoint_max: u32,
    /// Concurrent attempts per shard.
    pub in_flight_per_shard_max: u32,
    /// Concurrent requests per shard to one (scheme, host, port), whatever the endpoints.
    pub in_flight_per_host_max: u32,
    /// Requests outstanding at once on one plain-HTTP connection to an endpoint (1: one at
    /// a time; above 1, HTTP/1.1 pipelining).
    pub pipeline_depth: u32,
    /// Deliveries waiting per shard.
    pub queue_capacity: u32,
    /// Bytes of a response body kept for the attempt log.
    pub response_bytes_max: u64,
    /// How long the previous secret still signs after a rotation.
    pub secret_rotation_grace: Duration,
    /// What kind of key an endpoint created without a secret gets.
    pub default_signature: SignatureKind,
    /// Extra CA certificates (PEM) trusted for endpoints.
    pub ca_file: Option<PathBuf>,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        let hours = |h: u64| Duration::from_secs(h * 3600);
        Self {
            retry_schedule: vec![
                Duration::from_secs(5),
                minutes(5),
                minutes(30),
                hours(2),
                hours(5),
                hours(10),
                hours(10),
            ],
            timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(5),
            allow_private_networks: false,
            svix_headers: true,
            disable_after: Duration::from_secs(5 * 86_400),
            in_flight_per_endpoint_max: 8,
            in_flight_per_shard_max: 1024,
            in_flight_per_host_max: 64,
            pipeline_depth: 8,
            queue_capacity: 4096,
            response_bytes_max: 4 << 10,
            secret_rotation_grace: hours(24),
            default_signature: SignatureKind::Hmac,
            ca_file: None,
        }
    }
}

/// Verbosity of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Everything.
    Trace,
    /// Diagnostics for developers.
    Debug,
    /// Normal operation.
    Info,
    /// Something is wrong but hookd carries on.
    Warn,
    /// Something failed.
    Error,
}

impl LogLevel {
    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

/// Shape of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Json => "json",
        }
    }
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Least severe level written.
    pub level: LogLevel,
    /// Line format.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: LogLevel::Info,
            format: LogFormat::Text,
        }
    }
}

/// `[metrics]`
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetricsConfig {
    /// Serve `/metrics` without a token.
    pub public: bool,
}

/// `[auth]`
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthConfig {
    /// Accepted API tokens, by hash. Names and hashes are unique.
    pub tokens: Vec<TokenConfig>,
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Manage apps, endpoints and tokens.
    Admin,
    /// Send events.
    Ingest,
    /// Read events, attempts and state.
    Read,
}

impl Scope {
    /// Every scope, in config-file spelling order.
    pub const ALL: [Scope; 3] = [Scope::Admin, Scope::Ingest, Scope::Read];

    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Ingest => "ingest",
            Self::Read => "read",
        }
    }

    /// The scope spelled `name` in the config file, if any.
    pub fn from_name(name: &str) -> Option<Scope> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A token's ingest rate limit (token bucket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained events per second.
    pub per_second: u32,
    /// Bucket size; `rate_per_second` when not given.
    pub burst: u32,
}

/// One `[[auth.tokens]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenConfig {
    /// Unique name, used in logs and metrics.
    pub name: String,
    /// SHA-256 of the token string, see [`tokens::token_sha256_hex`].
    pub sha256: [u8; 32],
    /// Non-empty, without duplicates.
    pub scopes: Vec<Scope>,
    /// Apps an ingest token may send to; `None` means every app.
    pub apps: Option<Vec<String>>,
    /// Ingest rate limit, if any.
    pub rate_limit: Option<RateLimit>,
}

impl TokenConfig {
    /// Whether the token has `scope`.
    pub fn has_scope(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

/// Secret bytes from the config file (an HMAC key). Its `Debug` never shows them, so a config
/// printed in a log or a panic message leaks nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

/// How a source's requests prove where they come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceScheme {
    /// Standard Webhooks (and Svix): `webhook-id`, `webhook-timestamp`, `webhook-signature`
    /// (or the `svix-*` ones); the key is the decoded `whsec_` secret.
    StandardWebhooks {
        /// Decoded key bytes.
        key: Secret,
    },
    /// Standard Webhooks with ed25519 signatures (`v1a`): the sender's `whpk_` public key.
    StandardWebhooksEd25519 {
        /// The 32-byte public key.
        public_key: Secret,
    },
    /// GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`.
    GitHub {
        /// The webhook secret as typed into GitHub (its UTF-8 bytes are the key).
        secret: Secret,
    },
    /// Stripe: `Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`.
    Stripe {
        /// The endpoint's signing secret (`whsec_...`), whole, as the key.
        secret: Secret,
    },
    /// Any provider that sends an HMAC-SHA256 of the body in one header.
    HmacSha256 {
        /// The key.
        secret: Secret,
        /// Lowercase header name carrying the signature.
        header: String,
        /// How the MAC is written.
        encoding: SignatureEncoding,
        /// Text before the MAC in the header value (`sha256=`), possibly empty.
        prefix: String,
    },
    /// HTTP basic auth (`Authorization: Basic ...`).
    Basic {
        /// The expected user name.
        username: String,
        /// SHA-256 of the expected password.
        password_sha256: [u8; 32],
    },
    /// A static token in a header (`Authorization: Bearer <token>` by default).
    Token {
        /// Lowercase header name; for `authorization` the value is `Bearer <token>`.
        header: String,
        /// SHA-256 of the token.
        sha256: [u8; 32],
    },
}

impl SourceScheme {
    /// Every scheme's name in the config file, in documentation order.
    pub const NAMES: [&'static str; 6] = [
        "standard-webhooks",
        "github",
        "stripe",
        "hmac-sha256",
        "basic",
        "token",
    ];

    /// The name used in the config file.
    pub fn name(&self) -> &'static str {
        match self {
            Self::StandardWebhooks { .. } | Self::StandardWebhooksEd25519 { .. } => {
                "standard-webhooks"
            }
            Self::GitHub { .. } => "github",
            Self::Stripe { .. } => "stripe",
            Self::HmacSha256 { .. } => "hmac-sha256",
            Self::Basic { .. } => "basic",
            Self::Token { .. } => "token",
        }
    }
}

/// How a MAC is written in a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureEncoding {
    /// Hex digits, either case.
    Hex,
    /// Standard base64, padded.
    Base64,
}

impl SignatureEncoding {
    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hex => "hex",
            Self::Base64 => "base64",
        }
    }
}

/// Where a value of an inbound request is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locator {
    /// In this (lowercase) header.
    Header(String),
    /// At this JSON pointer (RFC 6901) in the body, which must be a string there.
    Pointer(String),
    /// Always this value (event types only).
    Fixed(String),
}

/// One `[[sources]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceConfig {
    /// Unique; the path is `/ingest/{name}`.
    pub name: String,
    /// The application (id or uid) its messages are stored in.
    pub app: String,
    /// How requests are verified.
    pub scheme: SourceScheme,
    /// Largest distance between a signed timestamp and now; also how long a delivery id is
    /// remembered (twice this), so that a replay within the window is answered, not stored.
    pub tolerance: Duration,
    /// Where the event type is.
    pub event_type: Locator,
    /// Where the delivery id is, for deduplication; for Standard Webhooks the signed
    /// `webhook-id` is used and this is `None`.
    pub delivery_id: Option<Locator>,
}

/// `[endpoint_policy]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointPolicy {
    /// Endpoint URLs must be `https`.
    pub https_only: bool,
    /// When not empty, an endpoint's host must be one of these or under one (lowercase; an
    /// entry starting with `.` allows only hosts under it).
    pub allowed_host_suffixes: Vec<String>,
    /// Hosts refused, with every host under them (same matching as above).
    pub denied_hosts: Vec<String>,
    /// Endpoints one application may have.
    pub endpoints_per_app_max: u32,
}

impl Default for EndpointPolicy {
    fn default() -> Self {
        Self {
            https_only: false,
            allowed_host_suffixes: Vec::new(),
            denied_hosts: Vec::new(),
            endpoints_per_app_max: 1000,
        }
    }
}

/// `[portal]`: the app portal (`/portal`) that a producer embeds for its own customers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalConfig {
    /// Serve the page and issue portal tokens.
    pub enabled: bool,
    /// The origin the access route builds the portal's URL on (`https://hooks.example.com`);
    /// `None`: the request's own `Host`, with `https` when hookd serves TLS.
    pub public_url: Option<String>,
    /// The longest a portal token may live (and the default when the request names none).
    pub token_expiry_max: Duration,
    /// Live portal tokens one app may have; the access route answers 409 beyond.
    pub tokens_per_app_max: u64,
    /// Who may frame the page (CSP `frame-ancestors` sources); empty: nobody.
    pub frame_ancestors: Vec<String>,
    /// How the page looks.
    pub theme: PortalTheme,
}

/// `[portal.theme]`: colours are `#rgb` or `#rrggbb`; `None` keeps the page's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalTheme {
    /// The page's heading and title.
    pub title: String,
    pub accent: Option<String>,
    pub background: Option<String>,
    pub text: Option<String>,
    /// An `https://` (or `http://`) image shown beside the title.
    pub logo_url: Option<String>,
}

impl Default for PortalConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            public_url: None,
            token_expiry_max: Duration::from_secs(7 * 24 * 3600),
            tokens_per_app_max: 1_000,
            frame_ancestors: Vec::new(),
            theme: PortalTheme {
                title: "Webhooks".into(),
                accent: None,
                background: None,
                text: None,
                logo_url: None,
            },
        }
    }
}

/// `[validation]`
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValidationConfig {
    /// Refuse (422) a message whose payload does not match version "1" of its event type's
    /// JSON Schema.
    pub enforce_schemas: bool,
}

/// An operational webhook's event type (Svix's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpEventType {
    EndpointCreated,
    EndpointUpdated,
    EndpointDeleted,
    EndpointDisabled,
    MessageAttemptExhausted,
    MessageAttemptFailing,
    MessageAttemptRecovered,
}

impl OpEventType {
    /// Every one, in documentation order.
    pub const ALL: [Self; 7] = [
        Self::EndpointCreated,
        Self::EndpointUpdated,
        Self::EndpointDeleted,
        Self::EndpointDisabled,
        Self::MessageAttemptExhausted,
        Self::MessageAttemptFailing,
        Self::MessageAttemptRecovered,
    ];

    /// The event type's name, as sent and as written in the config.
    pub fn name(self) -> &'static str {
        match self {
            Self::EndpointCreated => "endpoint.created",
            Self::EndpointUpdated => "endpoint.updated",
            Self::EndpointDeleted => "endpoint.deleted",
            Self::EndpointDisabled => "endpoint.disabled",
            Self::MessageAttemptExhausted => "message.attempt.exhausted",
            Self::MessageAttemptFailing => "message.attempt.failing",
            Self::MessageAttemptRecovered => "message.attempt.recovered",
        }
    }

    /// The event type named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// `[operational_webhooks]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationalWebhooks {
    /// The operator endpoint's URL.
    pub url: String,
    /// Its signing key (the decoded `whsec_` secret).
    pub secret: Secret,
    /// The event types sent; `None`: all of them.
    pub event_types: Option<Vec<OpEventType>>,
}

impl Config {
    /// The number of shards to run: `server.shards`, or one per available core
    /// when it is 0 (at most [`SHARDS_MAX`]).
    pub fn effective_shards(&self) -> usize {
        match self.server.shards {
            0 => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .min(SHARDS_MAX as usize),
            n => n as usize,
        }
    }
}

/// One problem in a config, under the key it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Key path such as `server.listen` or `auth.tokens[0].sha256`; empty for a
    /// problem with the file as a whole, such as a TOML syntax error.
    pub path: String,
    /// What is wrong, in words.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found in a config, sorted by key path. Never empty.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct ConfigErrors {
    /// The problems, at least one.
    pub errors: Vec<ConfigError>,
}

impl ConfigErrors {
    /// Whether some problem is reported under exactly `path`.
    pub fn has_path(&self, path: &str) -> bool {
        self.errors.iter().any(|e| e.path == path)
    }
}

impl fmt::Display for ConfigErrors {
    /// One problem per line, `key.path: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// Why [`load`] failed.
#[derive(Debug, Error)]
pub enum LoadError {
    /// The file could not be opened or read.
    #[error("cannot read config file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The file is larger than [`CONFIG_BYTES_MAX`].
    #[error("config file {} is larger than {CONFIG_BYTES_MAX} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The file was read but its content is wrong.
    #[error("config file {} is invalid", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        #[source]
        errors: ConfigErrors,
    },
}

/// Reads and validates the config file at `path`.
pub fn load(path: &Path) -> Result<Config, LoadError> {
    let read_error = |source| LoadError::Read {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(CONFIG_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > CONFIG_BYTES_MAX {
        return Err(LoadError::TooLarge {
            path: path.to_owned(),
        });
    }
    let invalid = |errors| LoadError::Invalid {
        path: path.to_owned(),
        errors,
    };
    let text = String::from_utf8(bytes).map_err(|e| {
        invalid(ConfigErrors {
            errors: vec![ConfigError {
                path: String::new(),
                message: format!(
                    "not UTF-8 text: invalid byte at offset {}",
                    e.utf8_error().valid_up_to()
                ),
            }],
        })
    })?;
    from_toml_str(&text).map_err(invalid)
}

/// Parses and validates config text.
pub fn from_toml_str(text: &str) -> Result<Config, ConfigErrors> {
    let table: toml::Table = match toml::from_str(text) {
        Ok(table) => table,
        Err(e) => {
            let message = match e.span() {
                Some(span) => {
                    let (line, column) = line_column(text, span.start);
                    format!(
                        "TOML syntax error at line {line}, column {column}: {}",
                        one_line(e.message())
                    )
                }
                None => format!("TOML syntax error: {}", one_line(e.message())),
            };
            return Err(ConfigErrors {
                errors: vec![ConfigError {
                    path: String::new(),
                    message,
                }],
            });
        }
    };
    let shape = raw::deserialize_collecting(table);
    let mut problems = shape.errors;
    let shape_problems = problems.len();
    let config = shape.raw.map(|raw| {
        let (config, meaning) = validate::validate(&raw);
        for (path, message) in meaning {
            let path = shape.removed.to_original(&raw::KeyPath::parse(&path));
            // A key that already failed stage one was replaced by its default;
            // whatever stage two says about it, or about what contains it, is
            // a knock-on effect and would only add noise. (Only stage one's
            // problems: two of stage two's, such as a list's length and one of
            // its entries, are both reported.)
            let knock_on = problems[..shape_problems]
                .iter()
                .any(|(p, _)| p.starts_with(&path) || path.starts_with(p));
            if !knock_on {
                problems.push((path, message));
            }
        }
        config
    });
    match config {
        Some(config) if problems.is_empty() => Ok(config),
        _ => {
            problems.sort_by(|a, b| a.0.cmp(&b.0));
            Err(ConfigErrors {
                errors: problems
                    .into_iter()
                    .map(|(path, message)| ConfigError {
                        path: path.to_string(),
                        message,
                    })
                    .collect(),
            })
        }
    }
}

/// `message` with its lines joined by "; ", so that a problem is one line.
fn one_line(message: &str) -> String {
    let lines: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines.join("; ")
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}
