//! What a reloaded config changes, and which changes apply without a restart. Pure.
//!
//! Every key is in one of two classes:
//!
//! - **live**: read from the running config ([`crate::service::Service::config`]) each time it
//!   is used, or rebuilt from it on install (tokens, retry policy, HTTP limits), so that the
//!   new value takes effect at once: for the next request, connection or attempt;
//! - **restart**: used once at start to build something that lives as long as the process
//!   (the listeners, the shards, the store, the delivery client, the queues, the log format).
//!   A change is reported, and the old value stays in the running config, so that what the
//!   config says and what runs never disagree.
//!
//! Each struct of the config is destructured below without `..`: a new key does not compile
//! until it is put in a class.

use crate::config::{
    AuthConfig, Config, DeliveryConfig, EndpointPolicy, IngestConfig, LogConfig, MetricsConfig,
    PortalConfig, ServerConfig, StorageConfig, ValidationConfig,
};

/// What to do with a reloaded config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadPlan {
    /// Changed keys that take effect now, in file order.
    pub live: Vec<&'static str>,
    /// Changed keys that need a restart; their old values keep running.
    pub restart: Vec<&'static str>,
    /// The config to run from now on: the new one, with the old value of every key in
    /// `restart`.
    pub config: Config,
}

impl ReloadPlan {
    /// Whether anything changed at all.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty() && self.restart.is_empty()
    }
}

/// Compares the running config `old` with the reloaded `new`.
pub fn plan_reload(old: &Config, new: &Config) -> ReloadPlan {
    let mut p = ReloadPlan {
        live: Vec::new(),
        restart: Vec::new(),
        config: new.clone(),
    };
    // A live key: the new value is taken.
    macro_rules! live {
        ($key:literal, $($field:ident).+) => {
            if old.$($field).+ != p.config.$($field).+ {
                p.live.push($key);
            }
        };
    }
    // A restart key: the old value is kept.
    macro_rules! restart {
        ($key:literal, $($field:ident).+) => {
            if old.$($field).+ != p.config.$($field).+ {
                p.config.$($field).+ = old.$($field).+.clone();
                p.restart.push($key);
            }
        };
    }
    let Config {
        server: _,
        storage: _,
        ingest: _,
        delivery: _,
        log: _,
        metrics: _,
        auth: _,
        sources: _,
        endpoint_policy: _,
        apps: _,
        event_types: _,
        validation: _,
        operational_webhooks: _,
        portal: _,
    } = new;

    let ServerConfig {
        listen: _,
        shards: _,
        connections_per_shard_max: _,
        header_bytes_max: _,
        headers_count_max: _,
        uri_bytes_max: _,
        body_bytes_max: _,
        header_read_timeout: _,
        idle_timeout: _,
        request_timeout: _,
        tls: _,
    } = &new.server;
    restart!("server.listen", server.listen);
    restart!("server.shards", server.shards);
    // New connections take the limits of the running config.
    live!(
        "server.connections_per_shard_max",
        server.connections_per_shard_max
    );
    live!("server.header_bytes_max", server.header_bytes_max);
    live!("server.headers_count_max", server.headers_count_max);
    live!("server.uri_bytes_max", server.uri_bytes_max);
    live!("server.body_bytes_max", server.body_bytes_max);
    live!("server.header_read_timeout", server.header_read_timeout);
    live!("server.idle_timeout", server.idle_timeout);
    live!("server.request_timeout", server.request_timeout);
    // The acceptor is built once, from the files, before the shards start.
    restart!("server.tls", server.tls);

    let StorageConfig {
        path: _,
        durability: _,
        flush_interval: _,
        commit_window: _,
        segment_bytes_max: _,
        segment_events_max: _,
        segment_age_max: _,
        retention: _,
        max_bytes: _,
        reserve_bytes: _,
        cache_bytes: _,
        idempotency_ttl: _,
    } = &new.storage;
    // The store is opened once with these.
    restart!("storage.path", storage.path);
    restart!("storage.durability", storage.durability);
    restart!("storage.flush_interval", storage.flush_interval);
    restart!("storage.commit_window", storage.commit_window);
    restart!("storage.segment_bytes_max", storage.segment_bytes_max);
    restart!("storage.segment_events_max", storage.segment_events_max);
    restart!("storage.segment_age_max", storage.segment_age_max);
    // The dispatcher thread reads it when it starts.
    restart!("storage.retention", storage.retention);
    restart!("storage.max_bytes", storage.max_bytes);
    restart!("storage.reserve_bytes", storage.reserve_bytes);
    restart!("storage.cache_bytes", storage.cache_bytes);
    live!("storage.idempotency_ttl", storage.idempotency_ttl);

    let IngestConfig {
        payload_bytes_max: _,
        batch_max: _,
    } = &new.ingest;
    live!("ingest.payload_bytes_max", ingest.payload_bytes_max);
    live!("ingest.batch_max", ingest.batch_max);

    let DeliveryConfig {
        retry_schedule: _,
        timeout: _,
        connect_timeout: _,
        allow_private_networks: _,
        svix_headers: _,
        disable_after: _,
        in_flight_per_endpoint_max: _,
        in_flight_per_shard_max: _,
        in_flight_per_host_max: _,
        pipeline_depth: _,
        queue_capacity: _,
        response_bytes_max: _,
        secret_rotation_grace: _,
        default_signature: _,
        ca_file: _,
    } = &new.delivery;
    // The retry policy is rebuilt on install; each attempt reads the current one.
    live!("delivery.retry_schedule", delivery.retry_schedule);
    // Each shard's client is built once with these; the dispatcher's leases follow `timeout`,
    // and the API's SSRF check must agree with the client's.
    restart!("delivery.timeout", delivery.timeout);
    restart!("delivery.connect_timeout", delivery.connect_timeout);
    restart!(
        "delivery.allow_private_networks",
        delivery.allow_private_networks
    );
    live!("delivery.svix_headers", delivery.svix_headers);
    live!("delivery.disable_after", delivery.disable_after);
    live!(
        "delivery.in_flight_per_endpoint_max",
        delivery.in_flight_per_endpoint_max
    );
    live!(
        "delivery.in_flight_per_shard_max",
        delivery.in_flight_per_shard_max
    );
    // The shards' inboxes are sized once.
    restart!("delivery.queue_capacity", delivery.queue_capacity);
    restart!("delivery.response_bytes_max", delivery.response_bytes_max);
    restart!("delivery.pipeline_depth", delivery.pipeline_depth);
    restart!(
        "delivery.in_flight_per_host_max",
        delivery.in_flight_per_host_max
    );
    live!(
        "delivery.secret_rotation_grace",
        delivery.secret_rotation_grace
    );
    // Read on each endpoint create.
    live!("delivery.default_signature", delivery.default_signature);
    restart!("delivery.ca_file", delivery.ca_file);

    let LogConfig {
        level: _,
        format: _,
    } = &new.log;
    // The level sits behind a reload handle; the format is the subscriber's type.
    live!("log.level", log.level);
    restart!("log.format", log.format);

    let MetricsConfig { public: _ } = &new.metrics;
    live!("metrics.public", metrics.public);

    let AuthConfig { tokens: _ } = &new.auth;
    live!("auth.tokens", auth.tokens);

    live!("sources", sources);

    let EndpointPolicy {
        https_only: _,
        allowed_host_suffixes: _,
        denied_hosts: _,
        endpoints_per_app_max: _,
    } = &new.endpoint_policy;
    live!("endpoint_policy.https_only", endpoint_policy.https_only);
    live!(
        "endpoint_policy.allowed_host_suffixes",
        endpoint_policy.allowed_host_suffixes
    );
    live!("endpoint_policy.denied_hosts", endpoint_policy.denied_hosts);
    live!(
        "endpoint_policy.endpoints_per_app_max",
        endpoint_policy.endpoints_per_app_max
    );

    // Written to the store on every reload (`reload::statics`).
    live!("apps", apps);
    live!("event_types", event_types);

    let ValidationConfig { enforce_schemas: _ } = &new.validation;
    // Read on every message create.
    live!("validation.enforce_schemas", validation.enforce_schemas);

    let PortalConfig {
        enabled: _,
        public_url: _,
        token_expiry_max: _,
        tokens_per_app_max: _,
        frame_ancestors: _,
        theme: _,
    } = &new.portal;
    // Each request reads the running config: the page, its headers and new tokens follow.
    live!("portal.enabled", portal.enabled);
    live!("portal.public_url", portal.public_url);
    live!("portal.token_expiry_max", portal.token_expiry_max);
    live!("portal.tokens_per_app_max", portal.tokens_per_app_max);
    live!("portal.frame_ancestors", portal.frame_ancestors);
    live!("portal.theme", portal.theme);
    // The operator endpoint is provisioned once, at start (`ingest::operational`).
    restart!("operational_webhooks", operational_webhooks);
    p
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{from_toml_str, LogLevel};

    fn config(text: &str) -> Config {
        from_toml_str(text).unwrap_or_else(|e| panic!("{e}\n---\n{text}"))
    }

    #[test]
    fn nothing_changed_is_an_empty_plan() {
        let c = config("[delivery]\nretry_schedule = [\"1s\"]\n");
        let p = plan_reload(&c, &c.clone());
        assert!(p.is_empty());
        assert_eq!(p.config, c);
    }

    #[test]
    fn live_keys_take_the_new_value() {
        let old = config("");
        let new = config(
            r#"
[server]
body_bytes_max = "2MiB"
request_timeout = "5s"
[storage]
idempotency_ttl = "1h"
[delivery]
retry_schedule = ["1s", "2s"]
in_flight_per_endpoint_max = 2
[log]
level = "debug"
[metrics]
public = true
[endpoint_policy]
https_only = true
[[auth.tokens]]
name = "ops"
sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
scopes = ["admin"]
[[event_types]]
name = "order.paid"
[[apps]]
name = "Shop"
uid = "shop"
"#,
        );
        let p = plan_reload(&old, &new);
        assert_eq!(
            p.live,
            [
                "server.body_bytes_max",
                "server.request_timeout",
                "storage.idempotency_ttl",
                "delivery.retry_schedule",
                "delivery.in_flight_per_endpoint_max",
                "log.level",
                "metrics.public",
                "auth.tokens",
                "endpoint_policy.https_only",
                "apps",
                "event_types",
            ]
        );
        assert!(p.restart.is_empty(), "{:?}", p.restart);
        assert_eq!(p.config, new, "every value is the new one");
        assert_eq!(p.config.log.level, LogLevel::Debug);
    }

    #[test]
    fn restart_keys_keep_the_old_value_and_live_ones_still_apply() {
        let old = config("[server]\nlisten = \"127.0.0.1:8071\"\n[storage]\npath = \"/a\"\n");
        let new = config(
            r#"
[server]
listen = "0.0.0.0:9000"
shards = 3
[server.tls]
cert = "/c.pem"
key = "/k.pem"
[storage]
path = "/b"
retention = "1d"
[delivery]
timeout = "5s"
queue_capacity = 16
allow_private_networks = true
retry_schedule = ["3s"]
[log]
format = "json"
"#,
        );
        let p = plan_reload(&old, &new);
        assert_eq!(
            p.restart,
            [
                "server.listen",
                "server.shards",
                "server.tls",
                "storage.path",
                "storage.retention",
                "delivery.timeout",
                "delivery.allow_private_networks",
                "delivery.queue_capacity",
                "log.format",
            ]
        );
        assert_eq!(p.live, ["delivery.retry_schedule"]);
        let mut want = old.clone();
        want.delivery.retry_schedule = vec![Duration::from_secs(3)];
        assert_eq!(p.config, want, "only the live change runs");
        // Reloading the same file again still reports what waits for a restart.
        let again = plan_reload(&p.config, &new);
        assert_eq!(again.restart, p.restart);
        assert!(again.live.is_empty());
    }

    #[test]
    fn every_storage_and_client_key_needs_a_restart() {
        let old = config("");
        let new = config(
            r#"
[storage]
durability = "interval"
flush_interval = "5ms"
commit_window = "2ms"
segment_bytes_max = "1MiB"
segment_events_max = 10
segment_age_max = "1m"
max_bytes = "1GiB"
cache_bytes = "1MiB"
[delivery]
connect_timeout = "1s"
response_bytes_max = "1KiB"
pipeline_depth = 2
ca_file = "/ca.pem"
"#,
        );
        let p = plan_reload(&old, &new);
        assert_eq!(
            p.restart,
            [
                "storage.durability",
                "storage.flush_interval",
                "storage.commit_window",
                "storage.segment_bytes_max",
                "storage.segment_events_max",
                "storage.segment_age_max",
                "storage.max_bytes",
                "storage.cache_bytes",
                "delivery.connect_timeout",
                "delivery.response_bytes_max",
                "delivery.pipeline_depth",
                "delivery.ca_file",
            ]
        );
        assert!(p.live.is_empty());
        assert_eq!(p.config, old);
    }
}
