//! Tests of the whole loading pipeline: text in, `Config` or `ConfigErrors` out.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::*;

const EXAMPLE: &str = include_str!("../../hookd.example.toml");

const HASH_A: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const HASH_B: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

/// Every key of the file, as a path pattern (`[]` stands for any index).
const ALL_KEYS: &[&str] = &[
    "server.listen",
    "server.shards",
    "server.connections_per_shard_max",
    "server.header_bytes_max",
    "server.headers_count_max",
    "server.uri_bytes_max",
    "server.body_bytes_max",
    "server.header_read_timeout",
    "server.idle_timeout",
    "server.request_timeout",
    "server.tls.cert",
    "server.tls.key",
    "storage.path",
    "storage.durability",
    "storage.flush_interval",
    "storage.commit_window",
    "storage.segment_bytes_max",
    "storage.segment_events_max",
    "storage.segment_age_max",
    "storage.retention",
    "storage.max_bytes",
    "storage.reserve_bytes",
    "storage.cache_bytes",
    "storage.idempotency_ttl",
    "ingest.payload_bytes_max",
    "ingest.batch_max",
    "delivery.retry_schedule",
    "delivery.timeout",
    "delivery.connect_timeout",
    "delivery.allow_private_networks",
    "delivery.svix_headers",
    "delivery.disable_after",
    "delivery.in_flight_per_endpoint_max",
    "delivery.in_flight_per_shard_max",
    "delivery.in_flight_per_host_max",
    "delivery.pipeline_depth",
    "delivery.queue_capacity",
    "delivery.response_bytes_max",
    "delivery.secret_rotation_grace",
    "delivery.default_signature",
    "delivery.ca_file",
    "log.level",
    "log.format",
    "metrics.public",
    "portal.enabled",
    "portal.public_url",
    "portal.token_expiry_max",
    "portal.tokens_per_app_max",
    "portal.frame_ancestors",
    "portal.theme.title",
    "portal.theme.accent",
    "portal.theme.background",
    "portal.theme.text",
    "portal.theme.logo_url",
    "auth.tokens[].name",
    "auth.tokens[].sha256",
    "auth.tokens[].scopes",
    "auth.tokens[].apps",
    "auth.tokens[].rate_per_second",
    "auth.tokens[].burst",
    "endpoint_policy.https_only",
    "endpoint_policy.allowed_host_suffixes",
    "endpoint_policy.denied_hosts",
    "endpoint_policy.endpoints_per_app_max",
    "validation.enforce_schemas",
    "operational_webhooks.url",
    "operational_webhooks.secret",
    "operational_webhooks.event_types",
    "sources[].name",
    "sources[].app",
    "sources[].scheme",
    "sources[].secret",
    "sources[].tolerance",
    "sources[].event_type",
    "sources[].event_type_header",
    "sources[].event_type_pointer",
    "sources[].delivery_id_header",
    "sources[].delivery_id_pointer",
    "sources[].signature_header",
    "sources[].signature_encoding",
    "sources[].signature_prefix",
    "sources[].username",
    "sources[].password_sha256",
    "sources[].token_header",
    "sources[].token_sha256",
];

/// The keys of static definitions (`[[apps]]`, `[[event_types]]`; tested in `statics.rs`), as
/// the example shows them.
const STATIC_KEYS: &[&str] = &[
    "event_types[].name",
    "event_types[].description",
    "event_types[].schemas",
    "apps[].name",
    "apps[].uid",
    // Free-form tables: the example's own key shows under them.
    "apps[].metadata.team",
    "apps[].endpoints[].uid",
    "apps[].endpoints[].url",
    "apps[].endpoints[].description",
    "apps[].endpoints[].event_types",
    "apps[].endpoints[].channels",
    "apps[].endpoints[].secret",
    "apps[].endpoints[].headers.X-Team",
    "apps[].endpoints[].throttle_rate",
    "apps[].endpoints[].disabled",
    "apps[].endpoints[].filter.data.amount.$gte",
    "apps[].endpoints[].legacy_signatures[].scheme",
    "apps[].endpoints[].legacy_signatures[].secret",
    "apps[].endpoints[].ordering",
    "apps[].endpoints[].legacy_signatures[].header",
    "apps[].endpoints[].legacy_signatures[].encoding",
    "apps[].endpoints[].legacy_signatures[].prefix",
];

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn parse(text: &str) -> Config {
    match from_toml_str(text) {
        Ok(config) => config,
        Err(errors) => panic!("config refused:\n{errors}\n---\n{text}"),
    }
}

fn refuse(text: &str) -> ConfigErrors {
    match from_toml_str(text) {
        Ok(config) => panic!("config accepted: {config:?}\n---\n{text}"),
        Err(errors) => {
            assert!(!errors.errors.is_empty());
            errors
        }
    }
}

fn paths(errors: &ConfigErrors) -> Vec<&str> {
    errors.errors.iter().map(|e| e.path.as_str()).collect()
}

/// The one message under `path`; fails if there is not exactly one.
fn message<'a>(errors: &'a ConfigErrors, path: &str) -> &'a str {
    let found: Vec<&ConfigError> = errors.errors.iter().filter(|e| e.path == path).collect();
    assert_eq!(found.len(), 1, "problems under {path}:\n{errors}");
    &found[0].message
}

fn token_toml(name: &str, sha256: &str, scopes: &str) -> String {
    format!("[[auth.tokens]]\nname = \"{name}\"\nsha256 = \"{sha256}\"\nscopes = {scopes}\n")
}

/// Leaf key paths of a TOML table, array-of-table indices written as `[]`.
fn leaf_keys(table: &toml::Table, prefix: &str, out: &mut Vec<String>) {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(t) => leaf_keys(t, &path, out),
            toml::Value::Array(a) if a.iter().all(|v| v.is_table()) && !a.is_empty() => {
                for v in a {
                    if let toml::Value::Table(t) = v {
                        leaf_keys(t, &format!("{path}[]"), out);
                    }
                }
            }
            _ => out.push(path),
        }
    }
    out.sort();
    out.dedup();
}

fn sorted(keys: &[&str]) -> Vec<String> {
    let mut keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    keys.sort();
    keys
}

/// The example with its optional settings (`#key = ...`, `#[section]`) enabled.
fn example_uncommented() -> String {
    EXAMPLE
        .lines()
        .map(|line| match line.strip_prefix('#') {
            Some(rest)
                if rest.starts_with('[') || rest.starts_with(|c: char| c.is_ascii_lowercase()) =>
            {
                rest
            }
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

// --- Pinned keys, defaults, example -------------------------------------------

#[test]
fn pinned_keys_of_api_md_section_5() {
    let text = format!(
        r#"
[server]
listen = "0.0.0.0:443"
shards = 3
[server.tls]
cert = "/etc/hookd/cert.pem"
key = "/etc/hookd/key.pem"

[storage]
path = "/var/lib/hookd"
durability = "interval"

[delivery]
retry_schedule = ["5s", "5m", "30m", "2h", "5h", "10h", "10h"]
timeout = "15s"
allow_private_networks = true

[[auth.tokens]]
name = "ops"
sha256 = "{HASH_A}"
scopes = ["admin"]
"#
    );
    let c = parse(&text);
    assert_eq!(
        c.server.listen,
        "0.0.0.0:443".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(c.server.shards, 3);
    assert_eq!(c.effective_shards(), 3);
    assert_eq!(
        c.server.tls,
        Some(TlsConfig {
            cert: PathBuf::from("/etc/hookd/cert.pem"),
            key: PathBuf::from("/etc/hookd/key.pem"),
        })
    );
    assert_eq!(c.storage.path, PathBuf::from("/var/lib/hookd"));
    assert_eq!(c.storage.durability, Durability::Interval);
    assert_eq!(
        c.delivery.retry_schedule,
        [5, 300, 1800, 7200, 18_000, 36_000, 36_000].map(secs)
    );
    assert_eq!(c.delivery.timeout, secs(15));
    assert!(c.delivery.allow_private_networks);
    assert_eq!(c.auth.tokens.len(), 1);
    let token = &c.auth.tokens[0];
    assert_eq!(token.name, "ops");
    assert_eq!(hex::encode(token.sha256), HASH_A);
    assert_eq!(token.scopes, [Scope::Admin]);
    assert!(token.has_scope(Scope::Admin) && !token.has_scope(Scope::Ingest));
    assert_eq!(token.apps, None);
    assert_eq!(token.rate_limit, None);
}

/// Every key set to something other than its default lands in its typed field.
#[test]
fn every_key_with_a_non_default_value() {
    let text = format!(
        r#"
[server]
listen = "[::1]:9000"
shards = 4
connections_per_shard_max = 100
header_bytes_max = "32KiB"
headers_count_max = 10
uri_bytes_max = 2048
body_bytes_max = "2MB"
header_read_timeout = "1500ms"
idle_timeout = "2m"
request_timeout = "1h"
[server.tls]
cert = "c.pem"
key = "k.pem"

[storage]
path = "data"
durability = "interval"
flush_interval = "50ms"
commit_window = "2ms"
segment_bytes_max = "1GiB"
segment_events_max = 10
segment_age_max = "2d"
retention = "30d"
max_bytes = "1TB"
reserve_bytes = "1MiB"
cache_bytes = "1KiB"
idempotency_ttl = "1d"

[ingest]
payload_bytes_max = 1000
batch_max = 50

[delivery]
retry_schedule = ["1s", "2s"]
timeout = "20s"
connect_timeout = "20s"
allow_private_networks = true
svix_headers = false
disable_after = "12h"
in_flight_per_endpoint_max = 2
in_flight_per_shard_max = 2
in_flight_per_host_max = 5
pipeline_depth = 3
queue_capacity = 7
response_bytes_max = "1KB"
secret_rotation_grace = "0s"
default_signature = "ed25519"
ca_file = "ca.pem"

[log]
level = "debug"
format = "json"

[metrics]
public = true

[[auth.tokens]]
name = "ops"
sha256 = "{HASH_A}"
scopes = ["admin", "read"]

[[auth.tokens]]
name = "shop.backend-1"
sha256 = "{}"
scopes = ["ingest"]
apps = ["app_a", "app_b"]
rate_per_second = 10
burst = 30

[[auth.tokens]]
name = "unlimited_burst"
sha256 = "{HASH_B}"
scopes = ["ingest"]
rate_per_second = 5

[endpoint_policy]
https_only = true
allowed_host_suffixes = ["Example.com.", ".hooks.test"]
denied_hosts = ["bad.example.com"]
endpoints_per_app_max = 5

[validation]
enforce_schemas = true

[portal]
enabled = false
public_url = "https://hooks.example.com/base/"
token_expiry_max = "1d"
tokens_per_app_max = 20
frame_ancestors = ["'self'", "https://*.example.com"]

[portal.theme]
title = "Acme hooks"
accent = '#0AF'
background = '#ffffff'
text = '#111827'
logo_url = "https://static.example.com/logo.svg"

[operational_webhooks]
url = "https://ops.example.com/hookd"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
event_types = ["endpoint.disabled", "message.attempt.failing"]

[[sources]]
name = "gh"
app = "shop"
scheme = "github"
secret = "gh-secret"
tolerance = "10m"
delivery_id_header = "X-Request-Id"

[[sources]]
name = "st"
app = "app_1"
scheme = "stripe"
secret = "whsec_st"
event_type_pointer = "/data/type"
delivery_id_pointer = "/data/id"

[[sources]]
name = "sw"
app = "shop"
scheme = "standard-webhooks"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
event_type_header = "X-Event"

[[sources]]
name = "mac"
app = "shop"
scheme = "hmac-sha256"
secret = "k"
signature_header = "X-Sig"
signature_encoding = "base64"
signature_prefix = "v1="
event_type = "mac.event"

[[sources]]
name = "basic"
app = "shop"
scheme = "basic"
username = "u"
password_sha256 = "{HASH_A}"
event_type = "b.e"

[[sources]]
name = "tok"
app = "shop"
scheme = "token"
token_header = "X-Token"
token_sha256 = "{HASH_B}"
event_type = "t.e"
"#,
        HASH_A.to_uppercase().replace('0', "F"),
    );
    let want = Config {
        server: ServerConfig {
            listen: "[::1]:9000".parse().unwrap(),
            shards: 4,
            connections_per_shard_max: 100,
            header_bytes_max: 32 * 1024,
            headers_count_max: 10,
            uri_bytes_max: 2048,
            body_bytes_max: 2_000_000,
            header_read_timeout: Duration::from_millis(1500),
            idle_timeout: secs(120),
            request_timeout: secs(3600),
            tls: Some(TlsConfig {
                cert: "c.pem".into(),
                key: "k.pem".into(),
            }),
        },
        storage: StorageConfig {
            path: "data".into(),
            durability: Durability::Interval,
            flush_interval: Duration::from_millis(50),
            commit_window: Duration::from_millis(2),
            segment_bytes_max: 1 << 30,
            segment_events_max: 10,
            segment_age_max: secs(2 * 86_400),
            retention: secs(30 * 86_400),
            max_bytes: 1_000_000_000_000,
            reserve_bytes: 1 << 20,
            cache_bytes: 1024,
            idempotency_ttl: secs(86_400),
        },
        ingest: IngestConfig {
            payload_bytes_max: 1000,
            batch_max: 50,
        },
        delivery: DeliveryConfig {
            retry_schedule: vec![secs(1), secs(2)],
            timeout: secs(20),
            connect_timeout: secs(20),
            allow_private_networks: true,
            svix_headers: false,
            disable_after: secs(12 * 3600),
            in_flight_per_endpoint_max: 2,
            in_flight_per_shard_max: 2,
            in_flight_per_host_max: 5,
            pipeline_depth: 3,
            queue_capacity: 7,
            response_bytes_max: 1000,
            secret_rotation_grace: Duration::ZERO,
            default_signature: SignatureKind::Ed25519,
            ca_file: Some("ca.pem".into()),
        },
        log: LogConfig {
            level: LogLevel::Debug,
            format: LogFormat::Json,
        },
        metrics: MetricsConfig { public: true },
        auth: AuthConfig {
            tokens: vec![
                TokenConfig {
                    name: "ops".into(),
                    sha256: hex_32(HASH_A),
                    scopes: vec![Scope::Admin, Scope::Read],
                    apps: None,
                    rate_limit: None,
                },
                TokenConfig {
                    name: "shop.backend-1".into(),
                    sha256: hex_32(&HASH_A.replace('0', "f")),
                    scopes: vec![Scope::Ingest],
                    apps: Some(vec!["app_a".into(), "app_b".into()]),
                    rate_limit: Some(RateLimit {
                        per_second: 10,
                        burst: 30,
                    }),
                },
                TokenConfig {
                    name: "unlimited_burst".into(),
                    sha256: hex_32(HASH_B),
                    scopes: vec![Scope::Ingest],
                    apps: None,
                    rate_limit: Some(RateLimit {
                        per_second: 5,
                        burst: 5,
                    }),
                },
            ],
        },
        sources: vec![
            SourceConfig {
                name: "gh".into(),
                app: "shop".into(),
                scheme: SourceScheme::GitHub {
                    secret: Secret(b"gh-secret".to_vec()),
                },
                tolerance: secs(600),
                event_type: Locator::Header("x-github-event".into()),
                delivery_id: Some(Locator::Header("x-request-id".into())),
            },
            SourceConfig {
                name: "st".into(),
                app: "app_1".into(),
                scheme: SourceScheme::Stripe {
                    secret: Secret(b"whsec_st".to_vec()),
                },
                tolerance: secs(300),
                event_type: Locator::Pointer("/data/type".into()),
                delivery_id: Some(Locator::Pointer("/data/id".into())),
            },
            SourceConfig {
                name: "sw".into(),
                app: "shop".into(),
                scheme: SourceScheme::StandardWebhooks {
                    key: Secret(
                        crate::model::secret::parse_secret(
                            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                        )
                        .unwrap(),
                    ),
                },
                tolerance: secs(300),
                event_type: Locator::Header("x-event".into()),
                delivery_id: None,
            },
            SourceConfig {
                name: "mac".into(),
                app: "shop".into(),
                scheme: SourceScheme::HmacSha256 {
                    secret: Secret(b"k".to_vec()),
                    header: "x-sig".into(),
                    encoding: SignatureEncoding::Base64,
                    prefix: "v1=".into(),
                },
                tolerance: secs(300),
                event_type: Locator::Fixed("mac.event".into()),
                delivery_id: None,
            },
            SourceConfig {
                name: "basic".into(),
                app: "shop".into(),
                scheme: SourceScheme::Basic {
                    username: "u".into(),
                    password_sha256: hex_32(HASH_A),
                },
                tolerance: secs(300),
                event_type: Locator::Fixed("b.e".into()),
                delivery_id: None,
            },
            SourceConfig {
                name: "tok".into(),
                app: "shop".into(),
                scheme: SourceScheme::Token {
                    header: "x-token".into(),
                    sha256: hex_32(HASH_B),
                },
                tolerance: secs(300),
                event_type: Locator::Fixed("t.e".into()),
                delivery_id: None,
            },
        ],
        endpoint_policy: EndpointPolicy {
            https_only: true,
            allowed_host_suffixes: vec!["example.com".into(), ".hooks.test".into()],
            denied_hosts: vec!["bad.example.com".into()],
            endpoints_per_app_max: 5,
        },
        validation: ValidationConfig {
            enforce_schemas: true,
        },
        operational_webhooks: Some(OperationalWebhooks {
            url: "https://ops.example.com/hookd".into(),
            secret: Secret(
                crate::model::secret::parse_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
                    .unwrap(),
            ),
            event_types: Some(vec![
                OpEventType::EndpointDisabled,
                OpEventType::MessageAttemptFailing,
            ]),
        }),
        portal: PortalConfig {
            enabled: false,
            public_url: Some("https://hooks.example.com/base".into()),
            token_expiry_max: secs(86_400),
            tokens_per_app_max: 20,
            frame_ancestors: vec!["'self'".into(), "https://*.example.com".into()],
            theme: PortalTheme {
                title: "Acme hooks".into(),
                accent: Some("#0af".into()),
                background: Some("#ffffff".into()),
                text: Some("#111827".into()),
                logo_url: Some("https://static.example.com/logo.svg".into()),
            },
        },
        // Static definitions have their own tests (`statics.rs`).
        apps: Vec::new(),
        event_types: Vec::new(),
    };
    let got = parse(&text);
    assert_eq!(got, want);
    // Nothing in `want` is a default, so every key above really was read.
    let d = Config::default();
    assert_ne!(got.server.listen, d.server.listen);
    assert_ne!(got.storage.flush_interval, d.storage.flush_interval);
    // And this test covers every key there is.
    let table: toml::Table = toml::from_str(&text).unwrap();
    let mut keys = Vec::new();
    leaf_keys(&table, "", &mut keys);
    assert_eq!(keys, sorted(ALL_KEYS));
}

fn hex_32(text: &str) -> [u8; 32] {
    let mut out = [0; 32];
    hex::decode_to_slice(text, &mut out).unwrap();
    out
}

#[test]
fn every_key_exists_under_its_name() {
    // A wrong type under a known key is reported as a wrong type; under an
    // unknown key it would be "unknown field".
    for key in ALL_KEYS {
        let text = match key.split_once("[].") {
            Some((array, field)) => format!("[[{array}]]\n{field} = {{ wrong = 1 }}\n"),
            None => {
                let (section, field) = key.rsplit_once('.').unwrap();
                format!("[{section}]\n{field} = {{ wrong = 1 }}\n")
            }
        };
        let errors = refuse(&text);
        let path = key.replace("[]", "[0]");
        let msg = message(&errors, &path);
        assert!(msg.starts_with("invalid type: map"), "{key}: {msg}");
    }
}

#[test]
fn embedded_default_config() {
    let c = parse(DEFAULT_TOML);
    assert_eq!(c, Config::default());
    assert_eq!(
        c.server.listen,
        "127.0.0.1:8071".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(c.storage.path, PathBuf::from("./hookd-data"));
    assert!(c.auth.tokens.is_empty());
}

#[test]
fn empty_file_gives_the_defaults() {
    assert_eq!(parse(""), Config::default());
    let d = Config::default();
    assert_eq!(d.server.shards, 0);
    assert_eq!(d.server.body_bytes_max, 1 << 20);
    assert_eq!(d.storage.max_bytes, 10 << 30);
    assert_eq!(d.delivery.retry_schedule.len(), 7);
    assert_eq!(d.delivery.retry_schedule[6], secs(36_000));
    assert!(d.delivery.svix_headers && !d.delivery.allow_private_networks);
}

#[test]
fn example_config_parses_and_shows_the_defaults() {
    // Every value the example shows is the default.
    assert_eq!(parse(EXAMPLE), Config::default());
}

#[test]
fn example_config_optional_settings_parse_and_cover_every_key() {
    let text = example_uncommented();
    assert_ne!(text, EXAMPLE);
    let c = parse(&text);
    assert_eq!(
        c.server.tls,
        Some(TlsConfig {
            cert: "/etc/hookd/cert.pem".into(),
            key: "/etc/hookd/key.pem".into(),
        })
    );
    assert_eq!(c.delivery.ca_file, Some("/etc/hookd/extra-ca.pem".into()));
    assert_eq!(c.auth.tokens.len(), 2);
    assert_eq!(c.auth.tokens[1].name, "shop-backend");
    // Its token's apps name an app (by uid): nothing to warn about.
    assert_eq!(super::warnings(&c), vec![]);
    // One example source per scheme.
    let mut schemes: Vec<&str> = c.sources.iter().map(|s| s.scheme.name()).collect();
    let mut all = SourceScheme::NAMES;
    schemes.sort_unstable();
    all.sort_unstable();
    assert_eq!(schemes, all);
    assert_eq!(
        c.auth.tokens[1].rate_limit,
        Some(RateLimit {
            per_second: 1000,
            burst: 2000
        })
    );
    let table: toml::Table = toml::from_str(&text).unwrap();
    let mut keys = Vec::new();
    leaf_keys(&table, "", &mut keys);
    assert_eq!(keys, sorted(&[ALL_KEYS, STATIC_KEYS].concat()));
    assert_eq!(c.apps[0].endpoints[0].uid, "billing");
    assert_eq!(c.apps[0].endpoints[0].legacy_signatures.len(), 2);
    assert_eq!(
        c.apps[0].endpoints[0].filter.as_deref(),
        Some(r#"{"data.amount":{"$gte":100}}"#)
    );
    assert_eq!(c.event_types[0].name, "order.paid");
}

#[test]
fn effective_shards() {
    let auto = std::thread::available_parallelism().unwrap().get();
    assert_eq!(parse("").effective_shards(), auto.min(1024));
    assert_eq!(parse("[server]\nshards = 1024").effective_shards(), 1024);
    assert_eq!(parse("[server]\nshards = 1").effective_shards(), 1);
}

// --- Shape errors ---------------------------------------------------------------

#[test]
fn unknown_keys_are_refused_with_their_path() {
    let text = format!(
        "srever = 1\n[server]\nlistn = \"x\"\n[server.tls]\ncert = \"c\"\nkey = \"k\"\ncertificate = \"c\"\n{}scope = [\"admin\"]\n",
        token_toml("a", HASH_A, "[\"admin\"]") + &token_toml("b", HASH_B, "[\"read\"]"),
    );
    let errors = refuse(&text);
    assert_eq!(
        paths(&errors),
        [
            "auth.tokens[1].scope",
            "server.listn",
            "server.tls.certificate",
            "srever",
        ]
    );
    assert!(message(&errors, "server.listn").starts_with("unknown field `listn`, expected one of"));
    assert!(message(&errors, "srever").starts_with("unknown field `srever`"));
    assert!(message(&errors, "auth.tokens[1].scope").contains("`scopes`"));
}

#[test]
fn unknown_section_is_refused() {
    let errors = refuse("[delivery]\ntimeout = \"1s\"\n[deliveries]\ntimeout = \"1s\"\n");
    assert_eq!(paths(&errors), ["deliveries"]);
}

#[test]
fn odd_keys_are_quoted_in_paths() {
    let errors = refuse("[server]\n\"listen.addr\" = 1\n");
    assert_eq!(paths(&errors), ["server.\"listen.addr\""]);
}

#[test]
fn wrong_types_are_refused_with_their_path() {
    let errors = refuse(
        "[server]\nshards = \"4\"\nbody_bytes_max = 1.5\n[delivery]\ntimeout = 15\nsvix_headers = \"yes\"\n",
    );
    assert_eq!(
        errors.to_string(),
        "delivery.svix_headers: invalid type: string \"yes\", expected a boolean\n\
         delivery.timeout: invalid type: integer `15`, expected a string\n\
         server.body_bytes_max: invalid type: floating point `1.5`, expected a size: an integer number of bytes or a string such as \"64KiB\"\n\
         server.shards: invalid type: string \"4\", expected an integer"
    );
}

#[test]
fn a_section_of_the_wrong_type_is_refused() {
    let errors = refuse("server = \"127.0.0.1:80\"\n");
    assert_eq!(
        errors.to_string(),
        "server: invalid type: string \"127.0.0.1:80\", expected a [server] table"
    );
}

#[test]
fn syntax_error_names_line_and_column() {
    let errors = refuse("[server]\nlisten = \"127.0.0.1:8071\"\nshards = = 4\n");
    assert_eq!(errors.errors.len(), 1);
    assert_eq!(errors.errors[0].path, "");
    assert!(
        errors.errors[0]
            .message
            .starts_with("TOML syntax error at line 3, column 10:"),
        "{errors}"
    );
    assert!(!errors.to_string().contains('\n'), "{errors}");
    let errors = refuse("[server\n");
    assert_eq!(errors.to_string().lines().count(), 1, "{errors}");
    let errors = refuse("[server]\nlisten = 1\nlisten = 2\n");
    assert!(errors.errors[0].message.contains("line 3"), "{errors}");
}

#[test]
fn indices_are_reported_as_in_the_file_after_removals() {
    let text = "[delivery]\nretry_schedule = [5, \"0s\", 7, \"5x\", \"1s\"]\n[auth]\ntokens = [\"oops\", { name = \"b\", sha256 = \"zz\", scopes = [1, \"admin\", \"root\"] }]\n";
    let errors = refuse(text);
    assert_eq!(
        paths(&errors),
        [
            "auth.tokens[0]",
            "auth.tokens[1].scopes[0]",
            "auth.tokens[1].scopes[2]",
            "auth.tokens[1].sha256",
            "delivery.retry_schedule[0]",
            "delivery.retry_schedule[1]",
            "delivery.retry_schedule[2]",
            "delivery.retry_schedule[3]",
        ],
        "{errors}"
    );
    assert!(message(&errors, "auth.tokens[0]").starts_with("invalid type: string \"oops\""));
    assert_eq!(
        message(&errors, "delivery.retry_schedule[1]"),
        "must be greater than zero"
    );
    assert!(message(&errors, "delivery.retry_schedule[3]").contains("unknown unit \"x\""));
    assert!(message(&errors, "auth.tokens[1].scopes[2]").contains("unknown scope \"root\""));
}

#[test]
fn knock_on_problems_of_a_removed_key_are_not_reported() {
    let errors = refuse("[server.tls]\ncert = 5\nkey = \"k.pem\"\n");
    assert_eq!(paths(&errors), ["server.tls.cert"]);
}

#[test]
fn shape_errors_stop_after_a_bounded_number_of_rounds() {
    let mut text = String::from("[server]\n");
    for i in 0..150 {
        text.push_str(&format!("unknown_{i} = 1\n"));
    }
    let errors = refuse(&text);
    assert_eq!(errors.errors.len(), SHAPE_ROUNDS_MAX + 1);
    assert!(errors.has_path(""));
    assert!(errors.to_string().contains("too many problems"));
}

// --- Meaning errors -------------------------------------------------------------

#[test]
fn bad_durations_are_refused_with_the_key_named() {
    let errors = refuse(
        "[server]\nidle_timeout = \"60\"\nrequest_timeout = \"0s\"\n[storage]\nretention = \"-1d\"\nidempotency_ttl = \"1.5h\"\n[delivery]\ntimeout = \"15 s\"\ndisable_after = \"99999d\"\n",
    );
    assert_eq!(
        paths(&errors),
        [
            "delivery.disable_after",
            "delivery.timeout",
            "server.idle_timeout",
            "server.request_timeout",
            "storage.idempotency_ttl",
            "storage.retention",
        ]
    );
    assert_eq!(
        message(&errors, "server.idle_timeout"),
        "invalid duration \"60\": missing unit; use us, ms, s, m, h or d, e.g. \"5s\""
    );
    assert_eq!(
        message(&errors, "server.request_timeout"),
        "must be greater than zero"
    );
    assert!(message(&errors, "storage.retention").contains("negative"));
    assert!(message(&errors, "delivery.disable_after").contains("too large"));
}

#[test]
fn bad_sizes_are_refused_with_the_key_named() {
    let errors = refuse(
        "[server]\nbody_bytes_max = \"1 MiB\"\nheader_bytes_max = \"2MiB\"\nuri_bytes_max = 0\n[storage]\ncache_bytes = -5\nsegment_bytes_max = \"1mb\"\n[ingest]\npayload_bytes_max = \"1.5MiB\"\n[delivery]\nresponse_bytes_max = \"\"\n",
    );
    assert_eq!(
        paths(&errors),
        [
            "delivery.response_bytes_max",
            "ingest.payload_bytes_max",
            "server.body_bytes_max",
            "server.header_bytes_max",
            "server.uri_bytes_max",
            "storage.cache_bytes",
            "storage.segment_bytes_max",
        ]
    );
    assert_eq!(
        message(&errors, "server.header_bytes_max"),
        "must be between 1B and 1MiB, got 2MiB"
    );
    assert!(message(&errors, "storage.cache_bytes").contains("negative"));
    assert!(message(&errors, "storage.segment_bytes_max").contains("unknown unit \"mb\""));
}

#[test]
fn several_problems_in_different_sections_are_reported_together() {
    let text = format!(
        r#"
[server]
listen = "localhost:8071"
shards = 5000
bodysize = "1MiB"

[storage]
durability = "fsync"
retention = "7 days"

[delivery]
timeout = 15
retry_schedule = []

[log]
level = "verbose"

{}"#,
        token_toml("ops", "abc", "[\"admin\"]")
    );
    let errors = refuse(&text);
    assert_eq!(
        paths(&errors),
        [
            "auth.tokens[0].sha256",
            "delivery.retry_schedule",
            "delivery.timeout",
            "log.level",
            "server.bodysize",
            "server.listen",
            "server.shards",
            "storage.durability",
            "storage.retention",
        ]
    );
    assert!(
        message(&errors, "server.listen").starts_with("invalid socket address \"localhost:8071\"")
    );
    assert_eq!(
        message(&errors, "server.shards"),
        "must be between 0 and 1024, got 5000"
    );
    assert_eq!(
        message(&errors, "storage.durability"),
        "unknown value \"fsync\", expected one of \"sync\", \"interval\""
    );
    assert_eq!(
        message(&errors, "auth.tokens[0].sha256"),
        "must be 64 hex digits (a SHA-256), got 3 characters"
    );
    // Display: one problem per line, `path: message`.
    let shown = errors.to_string();
    assert_eq!(shown.lines().count(), 9);
    assert!(shown
        .lines()
        .any(|l| l == "delivery.timeout: invalid type: integer `15`, expected a string"));
}

#[test]
fn ranges_and_relationships() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "[server]\nshards = -1",
            "server.shards",
            "must be between 0 and 1024, got -1",
        ),
        (
            "[server]\nheaders_count_max = 0",
            "server.headers_count_max",
            "must be between 1 and 1024, got 0",
        ),
        (
            "[storage]\ndurability = \"interval\"\nflush_interval = \"0ms\"",
            "storage.flush_interval",
            "must be greater than zero",
        ),
        (
            "[storage]\nsegment_bytes_max = \"1GiB\"\nmax_bytes = \"512MiB\"",
            "storage.max_bytes",
            "must be at least storage.segment_bytes_max (1GiB)",
        ),
        (
            "[storage]\nsegment_events_max = 0",
            "storage.segment_events_max",
            "must be between 1 and 4294967295, got 0",
        ),
        (
            "[storage]\npath = \"\"",
            "storage.path",
            "must not be empty",
        ),
        (
            "[ingest]\npayload_bytes_max = \"2MiB\"",
            "ingest.payload_bytes_max",
            "must not exceed server.body_bytes_max (1MiB): the payload travels in the request body",
        ),
        (
            "[ingest]\npayload_bytes_max = \"9MiB\"\n[server]\nbody_bytes_max = \"10MiB\"",
            "ingest.payload_bytes_max",
            "must be between 1B and 8MiB, got 9MiB",
        ),
        (
            "[delivery]\nretry_schedule = []",
            "delivery.retry_schedule",
            "must have at least one entry, e.g. [\"5s\"]",
        ),
        (
            "[delivery]\nconnect_timeout = \"20s\"",
            "delivery.connect_timeout",
            "must not exceed delivery.timeout, which covers the whole attempt",
        ),
        (
            "[delivery]\npipeline_depth = 65",
            "delivery.pipeline_depth",
            "must be between 1 and 64, got 65",
        ),
        (
            "[delivery]\nin_flight_per_host_max = 0",
            "delivery.in_flight_per_host_max",
            "must be between 1 and 65536, got 0",
        ),
        (
            "[delivery]\nin_flight_per_endpoint_max = 2000",
            "delivery.in_flight_per_endpoint_max",
            "must not exceed delivery.in_flight_per_shard_max",
        ),
        (
            "[delivery]\nca_file = \"\"",
            "delivery.ca_file",
            "must not be empty",
        ),
        (
            "[log]\nformat = \"xml\"",
            "log.format",
            "unknown value \"xml\", expected one of \"text\", \"json\"",
        ),
        (
            "[server.tls]\ncert = \"c.pem\"",
            "server.tls.key",
            "required when server.tls.cert is set",
        ),
        (
            "[server.tls]\nkey = \"k.pem\"",
            "server.tls.cert",
            "required when server.tls.key is set",
        ),
        (
            "[server.tls]",
            "server.tls",
            "needs cert and key; remove the section to serve plain HTTP",
        ),
    ];
    for (text, path, want) in cases {
        let errors = refuse(text);
        assert_eq!(paths(&errors), [*path], "{text}");
        assert_eq!(message(&errors, path), *want, "{text}");
    }
    let long: Vec<String> = (0..51).map(|_| "\"1s\"".to_owned()).collect();
    let errors = refuse(&format!(
        "[delivery]\nretry_schedule = [{}]",
        long.join(", ")
    ));
    assert_eq!(
        message(&errors, "delivery.retry_schedule"),
        "has 51 entries, at most 50 are allowed"
    );
    // A default that depends on another key follows it rather than contradict it.
    let c = parse("[delivery]\ntimeout = \"2s\"\nin_flight_per_shard_max = 4\n[server]\nbody_bytes_max = \"100KiB\"");
    assert_eq!(c.delivery.connect_timeout, secs(2));
    assert_eq!(c.delivery.in_flight_per_endpoint_max, 4);
    assert_eq!(c.ingest.payload_bytes_max, 100 * 1024);
    // Zero is meaningful where it is allowed.
    let c = parse("[storage]\ncommit_window = \"0ms\"\n[delivery]\nsecret_rotation_grace = \"0s\"\n[server]\nshards = 0");
    assert_eq!(c.storage.commit_window, Duration::ZERO);
    assert_eq!(c.delivery.secret_rotation_grace, Duration::ZERO);
    let fifty: Vec<String> = (0..50).map(|_| "\"1s\"".to_owned()).collect();
    let c = parse(&format!(
        "[delivery]\nretry_schedule = [{}]",
        fifty.join(", ")
    ));
    assert_eq!(c.delivery.retry_schedule.len(), 50);
}

// --- Tokens ---------------------------------------------------------------------

#[test]
fn token_problems() {
    let cases: &[(String, &str, &str)] = &[
        (token_toml("a", &HASH_A[..63], "[\"admin\"]"), "auth.tokens[0].sha256", "must be 64 hex digits (a SHA-256), got 63 characters"),
        (token_toml("a", &HASH_A.replace('a', "g"), "[\"admin\"]"), "auth.tokens[0].sha256", "must contain only hex digits 0-9 and a-f"),
        (token_toml("a", &format!("hkd_{}", &HASH_A[4..]), "[\"admin\"]"), "auth.tokens[0].sha256", "this is a token, not its hash: put the token's SHA-256 here (`hookd token new` prints both) and keep the token itself secret"),
        (token_toml("a", HASH_A, "[\"root\"]"), "auth.tokens[0].scopes[0]", "unknown scope \"root\", expected one of \"admin\", \"ingest\", \"read\""),
        (token_toml("a", HASH_A, "[\"read\", \"read\"]"), "auth.tokens[0].scopes[1]", "duplicate scope \"read\""),
        (token_toml("a", HASH_A, "[]"), "auth.tokens[0].scopes", "must not be empty: one or more of \"admin\", \"ingest\", \"read\""),
        (token_toml("", HASH_A, "[\"admin\"]"), "auth.tokens[0].name", "must not be empty"),
        (token_toml("my token", HASH_A, "[\"admin\"]"), "auth.tokens[0].name", "invalid token name \"my token\": use letters, digits, '-', '_' and '.'"),
        (token_toml(&"n".repeat(65), HASH_A, "[\"admin\"]"), "auth.tokens[0].name", "longer than 64 bytes"),
        (token_toml("a", HASH_A, "[\"admin\"]") + "apps = [\"app_1\"]\n", "auth.tokens[0].apps", "only allowed on tokens with the \"ingest\" scope"),
        (token_toml("a", HASH_A, "[\"read\"]") + "rate_per_second = 5\n", "auth.tokens[0].rate_per_second", "only allowed on tokens with the \"ingest\" scope"),
        (token_toml("a", HASH_A, "[\"ingest\"]") + "apps = []\n", "auth.tokens[0].apps", "must not be empty; leave the key out to allow every app"),
        (token_toml("a", HASH_A, "[\"ingest\"]") + "apps = [\"\"]\n", "auth.tokens[0].apps[0]", "must not be empty"),
        (token_toml("a", HASH_A, "[\"ingest\"]") + "burst = 5\n", "auth.tokens[0].burst", "needs rate_per_second"),
        (token_toml("a", HASH_A, "[\"ingest\"]") + "rate_per_second = 0\n", "auth.tokens[0].rate_per_second", "must be between 1 and 1000000, got 0"),
        ("[[auth.tokens]]\nname = \"a\"\nscopes = [\"admin\"]\n".to_owned(), "auth.tokens[0].sha256", "required: the SHA-256 of the token, as printed by `hookd token new`"),
        ("[[auth.tokens]]\nname = \"a\"\nsha256 = \"".to_owned() + HASH_A + "\"\n", "auth.tokens[0].scopes", "required: one or more of \"admin\", \"ingest\", \"read\""),
        (token_toml("a", HASH_A, "[\"admin\"]") + &token_toml("a", HASH_B, "[\"read\"]"), "auth.tokens[1].name", "duplicate token name \"a\""),
        (token_toml("a", HASH_A, "[\"admin\"]") + &token_toml("b", &HASH_A.to_uppercase(), "[\"read\"]"), "auth.tokens[1].sha256", "same hash as an earlier token: each token needs its own"),
    ];
    for (text, path, want) in cases {
        let errors = refuse(text);
        assert_eq!(paths(&errors), [*path], "{text}");
        assert_eq!(message(&errors, path), *want, "{text}");
    }
}

// --- Sources and endpoint policy ---------------------------------------------------

fn source_toml(name: &str, scheme: &str, rest: &str) -> String {
    format!("[[sources]]\nname = \"{name}\"\napp = \"shop\"\nscheme = \"{scheme}\"\n{rest}")
}

#[test]
fn source_problems() {
    let gh = |rest: &str| source_toml("gh", "github", &format!("secret = \"s\"\n{rest}"));
    let cases: &[(String, &str, &str)] = &[
        (source_toml("gh", "github", ""), "sources[0].secret", "required by this scheme"),
        (source_toml("gh", "gitlab", ""), "sources[0].scheme", "unknown value \"gitlab\", expected one of \"standard-webhooks\", \"github\", \"stripe\", \"hmac-sha256\", \"basic\", \"token\""),
        (source_toml("g h", "github", "secret = \"s\"\n"), "sources[0].name", "invalid source name \"g h\": use letters, digits, '-', '_' and '.'"),
        (gh("") + &gh(""), "sources[1].name", "duplicate source name \"gh\""),
        (gh("tolerance = \"2d\"\n"), "sources[0].tolerance", "must be at most 1d"),
        (gh("tolerance = \"0s\"\n"), "sources[0].tolerance", "must be greater than zero"),
        (gh("username = \"u\"\n"), "sources[0].username", "not used by scheme \"github\" (only by \"basic\")"),
        (gh("signature_header = \"x\"\n"), "sources[0].signature_header", "not used by scheme \"github\" (only by \"hmac-sha256\")"),
        (gh("event_type = \"a\"\nevent_type_header = \"x-a\"\n"), "sources[0].event_type", "give only one of event_type, event_type_header and event_type_pointer"),
        (gh("event_type = \"a b\"\n"), "sources[0].event_type", "must be 1 to 256 letters, digits, '-', '_' or '.' (an event type name)"),
        (gh("event_type_header = \"x a\"\n"), "sources[0].event_type_header", "\"x a\" is not a header name (1 to 256 token characters)"),
        (gh("event_type_pointer = \"type\"\n"), "sources[0].event_type_pointer", "\"type\" is not a JSON pointer to a member: it starts with '/', e.g. \"/type\", at most 256 bytes"),
        (gh("delivery_id_header = \"a\"\ndelivery_id_pointer = \"/a\"\n"), "sources[0].delivery_id_header", "give only one of delivery_id_header and delivery_id_pointer"),
        (source_toml("sw", "standard-webhooks", "secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\ndelivery_id_header = \"x\"\n"), "sources[0].delivery_id_header", "not used by scheme \"standard-webhooks\": its signed webhook-id is the delivery id"),
        (source_toml("sw", "standard-webhooks", "secret = \"whsec_!!\"\n"), "sources[0].secret", "bad secret: not base64 after whsec_: Invalid symbol 33, offset 0. (expected \"whsec_\" or \"whpk_\" + base64)"),
        (source_toml("m", "hmac-sha256", "secret = \"s\"\nevent_type = \"e\"\n"), "sources[0].signature_header", "required by scheme \"hmac-sha256\""),
        (source_toml("m", "hmac-sha256", "secret = \"s\"\nsignature_header = \"x\"\nsignature_encoding = \"b32\"\nevent_type = \"e\"\n"), "sources[0].signature_encoding", "unknown value \"b32\", expected one of \"hex\", \"base64\""),
        (source_toml("m", "hmac-sha256", "secret = \"s\"\nsignature_header = \"x\"\n"), "sources[0].event_type", "scheme \"hmac-sha256\" has no usual place for the event type: set event_type, event_type_header or event_type_pointer"),
        (source_toml("b", "basic", &format!("username = \"a:b\"\npassword_sha256 = \"{HASH_A}\"\nevent_type = \"e\"\n")), "sources[0].username", "must be 1 to 256 bytes without ':' (RFC 7617)"),
        (source_toml("b", "basic", "username = \"a\"\nevent_type = \"e\"\n"), "sources[0].password_sha256", "required by scheme \"basic\": the SHA-256 of the password, in hex"),
        (source_toml("t", "token", "token_sha256 = \"abc\"\nevent_type = \"e\"\n"), "sources[0].token_sha256", "must be 64 hex digits (a SHA-256), got 3 characters"),
        ("[[sources]]\nname = \"x\"\nscheme = \"github\"\nsecret = \"s\"\n".to_owned(), "sources[0].app", "required: the id or uid of the application its messages go to"),
    ];
    for (text, path, want) in cases {
        let errors = refuse(text);
        assert_eq!(paths(&errors), [*path], "{text}");
        assert_eq!(message(&errors, path), *want, "{text}");
    }
    let many: String = (0..=SOURCES_MAX)
        .map(|i| source_toml(&format!("s{i}"), "github", "secret = \"s\"\n"))
        .collect();
    assert_eq!(
        message(&refuse(&many), "sources"),
        "has 65 entries, at most 64 are allowed"
    );
    // The providers' usual places are the defaults.
    let c = parse(&(gh("") + &source_toml("st", "stripe", "secret = \"whsec_x\"\n")));
    assert_eq!(
        c.sources[0].event_type,
        Locator::Header("x-github-event".into())
    );
    assert_eq!(
        c.sources[0].delivery_id,
        Some(Locator::Header("x-github-delivery".into()))
    );
    assert_eq!(c.sources[0].tolerance, secs(300));
    assert_eq!(c.sources[1].event_type, Locator::Pointer("/type".into()));
    assert_eq!(
        c.sources[1].delivery_id,
        Some(Locator::Pointer("/id".into()))
    );
    // Secrets never show in a printed config.
    assert!(!format!("{c:?}").contains("whsec_x"));
}

#[test]
fn endpoint_policy_problems() {
    let cases: &[(&str, &str, &str)] = &[
        ("[endpoint_policy]\nendpoints_per_app_max = 0", "endpoint_policy.endpoints_per_app_max", "must be between 1 and 1000000, got 0"),
        ("[endpoint_policy]\nallowed_host_suffixes = [\"ok.com\", \"\"]", "endpoint_policy.allowed_host_suffixes[1]", "\"\" is not a host name or address (e.g. \"example.com\", \".example.com\" or \"10.0.0.1\")"),
        ("[endpoint_policy]\ndenied_hosts = [\"a/b\"]", "endpoint_policy.denied_hosts[0]", "\"a/b\" is not a host name or address (e.g. \"example.com\", \".example.com\" or \"10.0.0.1\")"),
    ];
    for (text, path, want) in cases {
        let errors = refuse(text);
        assert_eq!(paths(&errors), [*path], "{text}");
        assert_eq!(message(&errors, path), *want, "{text}");
    }
    let long: Vec<String> = (0..=HOST_LIST_LEN_MAX)
        .map(|i| format!("\"h{i}.test\""))
        .collect();
    let errors = refuse(&format!(
        "[endpoint_policy]\ndenied_hosts = [{}]",
        long.join(", ")
    ));
    assert_eq!(
        message(&errors, "endpoint_policy.denied_hosts"),
        "has 1001 entries, at most 1000 are allowed"
    );
}

#[test]
fn operational_webhooks_problems() {
    // Absent: off. Present: url and secret required, event types known and listed once.
    assert_eq!(parse("").operational_webhooks, None);
    let errors = refuse("[operational_webhooks]\n");
    assert_eq!(
        paths(&errors),
        ["operational_webhooks.secret", "operational_webhooks.url"]
    );
    let errors = refuse(
        "[operational_webhooks]\nurl = \"ftp://x\"\nsecret = \"nope\"\n\
         event_types = [\"endpoint.disabled\", \"endpoint.exploded\", \"endpoint.disabled\"]",
    );
    assert_eq!(
        paths(&errors),
        [
            "operational_webhooks.event_types[1]",
            "operational_webhooks.event_types[2]",
            "operational_webhooks.secret",
            "operational_webhooks.url",
        ]
    );
    assert!(
        message(&errors, "operational_webhooks.event_types[1]").starts_with(
            "unknown event type \"endpoint.exploded\"; expected one of \"endpoint.created\""
        )
    );
    assert_eq!(
        message(&errors, "operational_webhooks.event_types[2]"),
        "\"endpoint.disabled\" is listed twice"
    );
    let c = parse(
        "[operational_webhooks]\nurl = \"http://127.0.0.1:9/ops\"\n\
         secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"",
    );
    let ops = c.operational_webhooks.unwrap();
    assert_eq!(ops.event_types, None, "all event types by default");
    assert_eq!(ops.secret.0.len(), 24);
    assert!(
        !format!("{ops:?}").contains("MfKQ9r8"),
        "the secret never shows"
    );
    assert!(!parse("").validation.enforce_schemas);
}

#[test]
fn a_token_missing_everything_reports_each_key() {
    let errors = refuse("[[auth.tokens]]\n");
    assert_eq!(
        paths(&errors),
        [
            "auth.tokens[0].name",
            "auth.tokens[0].scopes",
            "auth.tokens[0].sha256"
        ]
    );
}

#[test]
fn tokens_made_by_token_new_are_accepted() {
    let token = tokens::token_from_bytes(&[7; 32]);
    let hash = tokens::token_sha256_hex(&token);
    let c = parse(&token_toml("ci", &hash, "[\"ingest\", \"read\"]"));
    assert_eq!(hex::encode(c.auth.tokens[0].sha256), hash);
    assert_eq!(c.auth.tokens[0].scopes, [Scope::Ingest, Scope::Read]);
}

// --- Files ------------------------------------------------------------------------

#[test]
fn load_reads_a_file() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(b"[server]\nlisten = \"127.0.0.1:1\"\n")
        .unwrap();
    let c = load(file.path()).unwrap();
    assert_eq!(
        c.server.listen,
        "127.0.0.1:1".parse::<SocketAddr>().unwrap()
    );
}

#[test]
fn load_reports_every_kind_of_failure() {
    let dir = tempfile::tempdir().unwrap();

    let missing = dir.path().join("missing.toml");
    match load(&missing) {
        Err(LoadError::Read { path, source }) => {
            assert_eq!(path, missing);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }

    let binary = dir.path().join("binary.toml");
    std::fs::write(&binary, b"[server]\nlisten = \"\xff\"\n").unwrap();
    match load(&binary) {
        Err(LoadError::Invalid { errors, .. }) => assert_eq!(
            errors.to_string(),
            "not UTF-8 text: invalid byte at offset 19"
        ),
        other => panic!("{other:?}"),
    }

    let big = dir.path().join("big.toml");
    std::fs::write(&big, vec![b'#'; CONFIG_BYTES_MAX as usize + 1]).unwrap();
    assert!(matches!(load(&big), Err(LoadError::TooLarge { .. })));

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[server]\nshards = 2000\n").unwrap();
    match load(&bad) {
        Err(LoadError::Invalid { path, errors }) => {
            assert_eq!(path, bad);
            assert_eq!(paths(&errors), ["server.shards"]);
        }
        other => panic!("{other:?}"),
    }

    // A directory is not a config file, and saying so is not a panic.
    assert!(matches!(load(dir.path()), Err(LoadError::Read { .. })));
}

/// A refused segment_bytes_max is the one problem: its default, which stands in for it, is
/// not named as a limit of max_bytes (it used to be: "at least ... (64MiB)").
#[test]
fn a_refused_segment_size_is_not_named_by_its_default() {
    let errors = refuse("[storage]\nsegment_bytes_max = \"8GiB\"\nmax_bytes = \"32MiB\"");
    assert_eq!(paths(&errors), ["storage.segment_bytes_max"], "{errors}");
    assert_eq!(
        message(&errors, "storage.segment_bytes_max"),
        "must be between 1KiB and 4GiB, got 8GiB"
    );
}

#[test]
fn a_standard_webhooks_source_may_verify_v1a_with_a_public_key() {
    let source = |secret: &str| {
        format!(
            "[[sources]]\nname = \"s\"\napp = \"a\"\nscheme = \"standard-webhooks\"\nsecret = \"{secret}\"\n"
        )
    };
    let c = parse(&source("whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4="));
    assert!(matches!(
        &c.sources[0].scheme,
        SourceScheme::StandardWebhooksEd25519 { public_key } if public_key.0.len() == 32
    ));
    assert_eq!(c.sources[0].scheme.name(), "standard-webhooks");
    let errors = from_toml_str(&source("whpk_AAAA")).unwrap_err();
    assert!(errors.to_string().contains("sources[0].secret"), "{errors}");
}

#[test]
fn portal_tokens_per_app_are_bounded() {
    for n in ["0", "2001", "-1"] {
        let errors = refuse(&format!("[portal]\ntokens_per_app_max = {n}\n"));
        assert_eq!(paths(&errors), ["portal.tokens_per_app_max"], "{n}");
        assert_eq!(
            message(&errors, "portal.tokens_per_app_max"),
            format!("must be between 1 and 2000, got {n}")
        );
    }
    assert_eq!(parse("").portal.tokens_per_app_max, 1000);
    let c = parse("[portal]\ntokens_per_app_max = 2000\n");
    assert_eq!(c.portal.tokens_per_app_max, 2_000);
}
