//! Static definitions: `[[apps]]` (with their `[[apps.endpoints]]`) and `[[event_types]]`,
//! declared in the file for boxes provisioned by configuration management.
//!
//! This is stage two for them: each raw entry becomes an [`AppDef`], [`EndpointDef`] or
//! [`EventTypeDef`], and every problem is reported under its key path, as for every other
//! key. An app is found again by its `uid`, an endpoint by its `uid` within its app and an
//! event type by its `name`, so those are required and unique. An endpoint must also pass what
//! the API would check on create: URL, SSRF guard (`delivery.allow_private_networks`), the
//! `[endpoint_policy]` rules of the same file, channels and custom headers.
//!
//! Writing them to the store is the reload module's (`reload/statics.rs`).

use std::collections::{BTreeMap, HashSet};

use super::raw::{RawApp, RawAppEndpoint, RawConfig, RawEventType};
use super::{DeliveryConfig, EndpointPolicy, Secret};

/// Most `[[apps]]` entries.
pub const APPS_MAX: usize = 1000;
/// Most `[[event_types]]` entries.
pub const EVENT_TYPES_MAX: usize = 1000;
/// Most `[[apps.endpoints]]` entries over all apps.
pub const ENDPOINTS_MAX: usize = 10_000;
/// Most metadata entries of an app.
const METADATA_MAX: usize = 64;
/// Longest metadata key or value, app name and endpoint or event type description, in bytes.
const TEXT_BYTES_MAX: usize = 4096;
/// Channels an endpoint may filter on (as the API), and their length.
const CHANNELS_MAX: usize = 10;
const CHANNEL_BYTES_MAX: usize = 128;
/// Custom headers per endpoint (as the API).
const HEADERS_MAX: usize = 20;

/// One `[[apps]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppDef {
    /// Display name.
    pub name: String,
    /// Unique; how the app is found at every start and reload.
    pub uid: String,
    /// Free-form key-value pairs, as the API's `metadata`.
    pub metadata: BTreeMap<String, String>,
    /// Its `[[apps.endpoints]]`.
    pub endpoints: Vec<EndpointDef>,
}

/// One `[[apps.endpoints]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointDef {
    /// Unique within the app; how the endpoint is found again.
    pub uid: String,
    /// Where deliveries go.
    pub url: String,
    /// Free text.
    pub description: String,
    /// Only these event types are delivered; `None` means all.
    pub event_types: Option<Vec<String>>,
    /// Only messages on one of these channels are delivered; `None` means all.
    pub channels: Option<Vec<String>>,
    /// The signing key (decoded from `whsec_...`); `None` keeps the stored one, or makes
    /// one for a new endpoint.
    pub secret: Option<Secret>,
    /// Custom headers sent with every delivery.
    pub headers: BTreeMap<String, String>,
    /// Requests per second at most (`throttleRate`).
    pub throttle_rate: Option<u32>,
    /// Receives nothing while true.
    pub disabled: bool,
    /// Signature headers in other providers' schemes (`model::legacy`).
    pub legacy_signatures: Vec<storage::state::LegacySignature>,
    /// The payload filter, canonical JSON text (`model::filter`); `None`: every payload.
    pub filter: Option<String>,
    /// `ordering = "fifo"`: one delivery at a time per ordering key, in order.
    pub fifo: bool,
}

/// One `[[event_types]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTypeDef {
    /// Unique name, e.g. `order.paid`.
    pub name: String,
    /// Free text.
    pub description: String,
    /// JSON text of the Svix `schemas` object (version to JSON Schema), as given.
    pub schemas: Option<String>,
}

/// Collects problems as `(key path, message)`.
struct Problems<'a>(&'a mut Vec<(String, String)>);

impl Problems<'_> {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push((path.into(), message.into()));
    }
}

/// Checks the static definitions of `raw`; `delivery` and `policy` are the file's own,
/// already validated. Problems are appended to `errors`.
pub(super) fn validate(
    raw: &RawConfig,
    delivery: &DeliveryConfig,
    policy: &EndpointPolicy,
    errors: &mut Vec<(String, String)>,
) -> (Vec<AppDef>, Vec<EventTypeDef>) {
    let mut p = Problems(errors);
    if raw.apps.len() > APPS_MAX {
        p.add(
            "apps",
            format!(
                "has {} entries, at most {APPS_MAX} are allowed",
                raw.apps.len()
            ),
        );
    }
    let endpoints: usize = raw.apps.iter().map(|a| a.endpoints.len()).sum();
    if endpoints > ENDPOINTS_MAX {
        p.add(
            "apps",
            format!("declares {endpoints} endpoints, at most {ENDPOINTS_MAX} are allowed"),
        );
    }
    let mut uids = HashSet::new();
    let mut apps = Vec::with_capacity(raw.apps.len());
    for (i, r) in raw.apps.iter().enumerate() {
        let at = format!("apps[{i}]");
        if let Some(uid) = &r.uid {
            if !uids.insert(uid.as_str()) {
                p.add(format!("{at}.uid"), format!("duplicate app uid {uid:?}"));
            }
        }
        apps.push(app(&mut p, &at, r, delivery, policy));
    }
    let mut names = HashSet::new();
    let mut event_types = Vec::with_capacity(raw.event_types.len());
    if raw.event_types.len() > EVENT_TYPES_MAX {
        p.add(
            "event_types",
            format!(
                "has {} entries, at most {EVENT_TYPES_MAX} are allowed",
                raw.event_types.len()
            ),
        );
    }
    for (i, r) in raw.event_types.iter().enumerate() {
        let at = format!("event_types[{i}]");
        if let Some(name) = &r.name {
            if !names.insert(name.as_str()) {
                p.add(
                    format!("{at}.name"),
                    format!("duplicate event type name {name:?}"),
                );
            }
        }
        event_types.push(event_type(&mut p, &at, r));
    }
    (apps, event_types)
}

/// Svix's rule for uids and event type names: `^[a-zA-Z0-9\-_.]+$`, at most 256 bytes.
pub(crate) fn is_api_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A required uid that must not look like one of hookd's ids (`reserved` is their prefix).
fn uid(p: &mut Problems<'_>, path: &str, raw: Option<&str>, reserved: &str, what: &str) -> String {
    match raw {
        None => {
            p.add(
                path,
                format!("required: the {what} is found by it at every start and reload"),
            );
            String::new()
        }
        Some(u) if !is_api_name(u) => {
            p.add(path, "must be 1 to 256 letters, digits, '-', '_' or '.'");
            u.to_owned()
        }
        Some(u) if u.starts_with(reserved) => {
            p.add(
                path,
                format!("must not start with {reserved:?}, which is reserved for ids"),
            );
            u.to_owned()
        }
        Some(u) => u.to_owned(),
    }
}

fn text(p: &mut Problems<'_>, path: &str, raw: Option<&str>) -> String {
    let t = raw.unwrap_or_default();
    if t.len() > TEXT_BYTES_MAX {
        p.add(path, format!("longer than {TEXT_BYTES_MAX} bytes"));
    }
    t.to_owned()
}

fn app(
    p: &mut Problems<'_>,
    at: &str,
    r: &RawApp,
    delivery: &DeliveryConfig,
    policy: &EndpointPolicy,
) -> AppDef {
    let name = match r.name.as_deref() {
        None => {
            p.add(format!("{at}.name"), "required");
            String::new()
        }
        Some(n) if n.trim().is_empty() => {
            p.add(format!("{at}.name"), "must not be empty");
            n.to_owned()
        }
        Some(n) => text(p, &format!("{at}.name"), Some(n)),
    };
    let uid = uid(p, &format!("{at}.uid"), r.uid.as_deref(), "app_", "app");
    if uid == crate::model::OPERATIONAL_APP_UID {
        p.add(
            format!("{at}.uid"),
            format!("{uid:?} is hookd's own application for [operational_webhooks]"),
        );
    }
    let metadata = r.metadata.clone().unwrap_or_default();
    if metadata.len() > METADATA_MAX {
        p.add(
            format!("{at}.metadata"),
            format!(
                "has {} entries, at most {METADATA_MAX} are allowed",
                metadata.len()
            ),
        );
    }
    for (k, v) in &metadata {
        if k.is_empty() || k.len() > TEXT_BYTES_MAX || v.len() > TEXT_BYTES_MAX {
            p.add(
                format!("{at}.metadata"),
                format!("entry {k:?}: keys are 1 to {TEXT_BYTES_MAX} bytes, values at most {TEXT_BYTES_MAX}"),
            );
        }
    }
    let max = policy.endpoints_per_app_max as usize;
    if r.endpoints.len() > max {
        p.add(
            format!("{at}.endpoints"),
            format!(
                "has {} entries; endpoint_policy.endpoints_per_app_max allows {max}",
                r.endpoints.len()
            ),
        );
    }
    let mut uids = HashSet::new();
    let mut endpoints = Vec::with_capacity(r.endpoints.len());
    for (j, e) in r.endpoints.iter().enumerate() {
        let at = format!("{at}.endpoints[{j}]");
        if let Some(u) = &e.uid {
            if !uids.insert(u.as_str()) {
                p.add(
                    format!("{at}.uid"),
                    format!("duplicate endpoint uid {u:?} in this app"),
                );
            }
        }
        endpoints.push(endpoint(p, &at, e, delivery, policy));
    }
    AppDef {
        name,
        uid,
        metadata,
        endpoints,
    }
}

fn endpoint(
    p: &mut Problems<'_>,
    at: &str,
    r: &RawAppEndpoint,
    delivery: &DeliveryConfig,
    policy: &EndpointPolicy,
) -> EndpointDef {
    let key = |k: &str| format!("{at}.{k}");
    let uid = uid(p, &key("uid"), r.uid.as_deref(), "ep_", "endpoint");
    let url = r.url.clone().unwrap_or_default();
    check_url(p, &key("url"), r.url.as_deref(), delivery, policy);
    let description = text(p, &key("description"), r.description.as_deref());
    let event_types = r.event_types.as_ref().map(|types| {
        for (k, t) in types.iter().enumerate() {
            if !is_api_name(t) {
                p.add(
                    format!("{at}.event_types[{k}]"),
                    "must be an event type name: 1 to 256 letters, digits, '-', '_' or '.'",
                );
            }
        }
        types.clone()
    });
    let channels = r.channels.as_ref().map(|channels| {
        if channels.len() > CHANNELS_MAX {
            p.add(key("channels"), format!("at most {CHANNELS_MAX} channels"));
        }
        for (k, c) in channels.iter().enumerate() {
            if c.is_empty() || c.len() > CHANNEL_BYTES_MAX {
                p.add(
                    format!("{at}.channels[{k}]"),
                    format!("a channel is 1 to {CHANNEL_BYTES_MAX} bytes"),
                );
            }
        }
        channels.clone()
    });
    let secret =
        r.secret
            .as_deref()
            .and_then(|s| match crate::model::secret::parse_endpoint_secret(s) {
                Ok(k) => Some(Secret(k)),
                Err(e) => {
                    p.add(
                        key("secret"),
                        format!("{e} (expected \"whsec_\" or \"whsk_\" + base64)"),
                    );
                    None
                }
            });
    let headers = r.headers.clone().unwrap_or_default();
    if headers.len() > HEADERS_MAX {
        p.add(key("headers"), format!("at most {HEADERS_MAX} headers"));
    }
    check_headers(p, &key("headers"), &headers);
    let throttle_rate = r.throttle_rate.and_then(|n| {
        if (1..=i64::from(u16::MAX)).contains(&n.0) {
            u32::try_from(n.0).ok()
        } else {
            p.add(
                key("throttle_rate"),
                format!("must be between 1 and {}, got {}", u16::MAX, n.0),
            );
            None
        }
    });
    let (legacy_signatures, filter) = migration_and_filter(p, at, r, &headers);
    let fifo = match r.ordering.as_deref() {
        None | Some("none") => false,
        Some("fifo") => true,
        Some(other) => {
            p.add(
                key("ordering"),
                format!("must be \"none\" or \"fifo\", got {other:?}"),
            );
            false
        }
    };
    EndpointDef {
        uid,
        url,
        description,
        event_types: event_types.filter(|t| !t.is_empty()),
        channels: channels.filter(|c| !c.is_empty()),
        secret,
        headers,
        throttle_rate,
        disabled: r.disabled.unwrap_or(false),
        legacy_signatures,
        filter,
        fifo,
    }
}

/// An endpoint's `legacy_signatures` (none may set a header its custom `headers` set) and
/// `filter` (compiled to its canonical text), problems under their keys.
fn migration_and_filter(
    p: &mut Problems<'_>,
    at: &str,
    r: &RawAppEndpoint,
    headers: &BTreeMap<String, String>,
) -> (Vec<storage::state::LegacySignature>, Option<String>) {
    let key = |k: &str| format!("{at}.{k}");
    let legacy_signatures =
        match crate::model::legacy::parse_all(r.legacy_signatures.as_deref().unwrap_or_default()) {
            Ok(sigs) => sigs,
            Err(problems) => {
                for (at_entry, msg) in problems {
                    let path = match at_entry.split_once('.') {
                        Some((i, field)) => format!("{at}.legacy_signatures[{i}].{field}"),
                        None => key("legacy_signatures"),
                    };
                    p.add(path, msg);
                }
                Vec::new()
            }
        };
    if let Some(why) = crate::model::legacy::clash(&legacy_signatures, headers.keys()) {
        p.add(key("legacy_signatures"), why);
    }
    let filter = r.filter.as_ref().and_then(|table| {
        let json = serde_json::to_value(table).unwrap_or_default();
        match crate::model::filter::Filter::compile(&json) {
            Ok((_, canonical)) => Some(canonical.to_string()),
            Err(e) => {
                let mut path = key("filter");
                for part in &e.at {
                    path.push_str(&format!("[{part:?}]"));
                }
                p.add(path, e.msg);
                None
            }
        }
    });
    (legacy_signatures, filter)
}

/// An endpoint's `url`: required, valid, allowed by the SSRF guard where its address is known
/// now (as the API checks on create), and by the endpoint policy.
fn check_url(
    p: &mut Problems<'_>,
    path: &str,
    url: Option<&str>,
    delivery: &DeliveryConfig,
    policy: &EndpointPolicy,
) {
    match url.map(crate::model::url::Url::parse) {
        None => p.add(path, "required: where deliveries go"),
        Some(Err(why)) => p.add(path, format!("invalid URL: {why}")),
        Some(Ok(parsed)) => {
            // The SSRF guard, where the address is known now (as the API on create).
            if !delivery.allow_private_networks {
                let refused = match parsed.ip() {
                    Some(ip) => crate::model::ssrf::check(ip).err(),
                    None if parsed.host == "localhost" || parsed.host.ends_with(".localhost") => {
                        Some("loopback address")
                    }
                    None => None,
                };
                if let Some(why) = refused {
                    p.add(
                        path,
                        format!(
                            "{} is a {why}; delivery.allow_private_networks is false",
                            parsed.host
                        ),
                    );
                }
            }
            for v in super::policy::url_violations_of(policy, url.unwrap_or_default()) {
                p.add(path, v.to_string());
            }
        }
    }
}

/// An endpoint's custom `headers`: at most [`HEADERS_MAX`] (checked by the caller), each a
/// token name that hookd does not set itself, with no line break or NUL in its value.
fn check_headers(p: &mut Problems<'_>, path: &str, headers: &BTreeMap<String, String>) {
    for (name, value) in headers {
        if let Some(why) = crate::model::header_name_problem(name) {
            p.add(path, why);
        }
        if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
            p.add(
                path,
                format!("the value of {name} contains a line break or NUL"),
            );
        }
    }
}

fn event_type(p: &mut Problems<'_>, at: &str, r: &RawEventType) -> EventTypeDef {
    let name = match r.name.as_deref() {
        None => {
            p.add(format!("{at}.name"), "required");
            String::new()
        }
        Some(n) if !is_api_name(n) => {
            p.add(
                format!("{at}.name"),
                "must be 1 to 256 letters, digits, '-', '_' or '.'",
            );
            n.to_owned()
        }
        Some(n) => n.to_owned(),
    };
    let description = text(p, &format!("{at}.description"), r.description.as_deref());
    let schemas = r.schemas.as_ref().map(|s| {
        // As the API on an event type write: a JSON object whose every version compiles.
        if let Err(e) = crate::model::schemas::check_text(s) {
            p.add(format!("{at}.schemas"), e.to_string());
        }
        s.clone()
    });
    EventTypeDef {
        name,
        description,
        schemas,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{from_toml_str, ConfigErrors};

    fn refuse(text: &str) -> ConfigErrors {
        match from_toml_str(text) {
            Ok(c) => panic!("accepted: {c:?}\n---\n{text}"),
            Err(e) => e,
        }
    }

    fn message<'a>(errors: &'a ConfigErrors, path: &str) -> &'a str {
        let found: Vec<_> = errors.errors.iter().filter(|e| e.path == path).collect();
        assert_eq!(found.len(), 1, "problems under {path}:\n{errors}");
        &found[0].message
    }

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn definitions_parse_into_typed_values() {
        let c = from_toml_str(&format!(
            r#"
[[event_types]]
name = "order.paid"
description = "An order was paid"
schemas = '{{"1": {{"type": "object"}}}}'

[[event_types]]
name = "order.shipped"

[[apps]]
name = "Shop"
uid = "shop"
metadata = {{ team = "payments" }}

[[apps.endpoints]]
uid = "billing"
url = "https://billing.example.com/hook"
description = "Billing"
event_types = ["order.paid"]
channels = ["eu"]
secret = "{SECRET}"
headers = {{ X-Team = "billing" }}
throttle_rate = 50

[[apps.endpoints]]
uid = "audit"
url = "https://audit.example.com/hook"
disabled = true

[[apps]]
name = "Empty"
uid = "empty"
"#
        ))
        .unwrap();
        assert_eq!(c.event_types.len(), 2);
        assert_eq!(
            c.event_types[0].schemas.as_deref(),
            Some(r#"{"1": {"type": "object"}}"#)
        );
        assert_eq!(c.event_types[1].description, "");
        assert_eq!(c.apps.len(), 2);
        let shop = &c.apps[0];
        assert_eq!((shop.name.as_str(), shop.uid.as_str()), ("Shop", "shop"));
        assert_eq!(shop.metadata["team"], "payments");
        let billing = &shop.endpoints[0];
        assert_eq!(billing.event_types, Some(vec!["order.paid".to_owned()]));
        assert_eq!(billing.channels, Some(vec!["eu".to_owned()]));
        assert_eq!(
            billing.secret.as_ref().map(|s| s.0.clone()),
            Some(crate::model::secret::parse_secret(SECRET).unwrap())
        );
        assert_eq!(billing.headers["X-Team"], "billing");
        assert_eq!((billing.throttle_rate, billing.disabled), (Some(50), false));
        let audit = &shop.endpoints[1];
        assert!(audit.disabled && audit.secret.is_none() && audit.event_types.is_none());
        assert!(c.apps[1].endpoints.is_empty());
        // The secret never shows in a printed config.
        assert!(!format!("{c:?}").contains("MfKQ9r8"));
    }

    #[test]
    fn every_problem_names_its_key() {
        let errors = refuse(
            r#"
[delivery]
allow_private_networks = false

[endpoint_policy]
https_only = true
endpoints_per_app_max = 2

[[event_types]]
name = "a b"
schemas = '{"1": 5}'

[[event_types]]
description = "no name"

[[event_types]]
name = "dup"

[[event_types]]
name = "dup"

[[apps]]
uid = "app_x"

[[apps.endpoints]]
url = "ftp://x"

[[apps.endpoints]]
uid = "ep_1"
url = "http://127.0.0.1/hook"
secret = "whsec_c2hvcnQ="
headers = { "webhook-id" = "x", "bad name" = "y", ok = "a\nb" }
throttle_rate = 0
channels = [""]
event_types = ["no spaces"]

[[apps.endpoints]]
uid = "c"
url = "https://c.example.com/"

[[apps]]
name = "Two"
uid = "two"
[[apps.endpoints]]
uid = "same"
url = "https://a.example.com/"
[[apps.endpoints]]
uid = "same"
url = "https://a.example.com/"

[[apps]]
name = "Dup"
uid = "two"
endpoints = []
"#,
        );
        let want = [
            ("apps[0].name", "required"),
            (
                "apps[0].uid",
                "must not start with \"app_\", which is reserved for ids",
            ),
            (
                "apps[0].endpoints",
                "has 3 entries; endpoint_policy.endpoints_per_app_max allows 2",
            ),
            (
                "apps[0].endpoints[0].uid",
                "required: the endpoint is found by it at every start and reload",
            ),
            (
                "apps[0].endpoints[0].url",
                "invalid URL: must start with http:// or https://",
            ),
            (
                "apps[0].endpoints[1].uid",
                "must not start with \"ep_\", which is reserved for ids",
            ),
            (
                "apps[0].endpoints[1].throttle_rate",
                "must be between 1 and 65535, got 0",
            ),
            (
                "apps[0].endpoints[1].channels[0]",
                "a channel is 1 to 128 bytes",
            ),
            (
                "apps[0].endpoints[1].event_types[0]",
                "must be an event type name: 1 to 256 letters, digits, '-', '_' or '.'",
            ),
            (
                "apps[1].endpoints[1].uid",
                "duplicate endpoint uid \"same\" in this app",
            ),
            ("apps[2].uid", "duplicate app uid \"two\""),
            (
                "event_types[0].name",
                "must be 1 to 256 letters, digits, '-', '_' or '.'",
            ),
            ("event_types[1].name", "required"),
            ("event_types[3].name", "duplicate event type name \"dup\""),
        ];
        for (path, msg) in want {
            assert_eq!(message(&errors, path), msg, "{path}");
        }
        assert!(
            message(&errors, "event_types[0].schemas").contains("JSON schema"),
            "{errors}"
        );
        let secret = message(&errors, "apps[0].endpoints[1].secret");
        assert!(
            secret.starts_with("bad secret: must decode to 24 to ")
                && secret.ends_with(" bytes, got 5 (expected \"whsec_\" or \"whsk_\" + base64)"),
            "{secret}"
        );
        let mut headers: Vec<&str> = errors
            .errors
            .iter()
            .filter(|e| e.path == "apps[0].endpoints[1].headers")
            .map(|e| e.message.as_str())
            .collect();
        headers.sort_unstable();
        assert_eq!(
            headers,
            [
                "\"bad name\" is not a header name",
                "the value of ok contains a line break or NUL",
                "webhook-id is set by hookd and cannot be overridden",
            ]
        );
        // The URL of endpoint 1 breaks the SSRF guard and https_only: both are reported.
        let url: Vec<&str> = errors
            .errors
            .iter()
            .filter(|e| e.path == "apps[0].endpoints[1].url")
            .map(|e| e.message.as_str())
            .collect();
        assert_eq!(
            url,
            [
                "127.0.0.1 is a loopback address; delivery.allow_private_networks is false",
                "endpoint_policy.https_only: the URL must start with https://",
            ],
            "{errors}"
        );
        let n = want.len() + 2 + headers.len() + url.len();
        assert_eq!(errors.errors.len(), n, "{errors}");
    }

    #[test]
    fn unknown_keys_in_definitions_are_refused_with_their_path() {
        let errors = refuse(
            "[[apps]]\nname = \"a\"\nuid = \"a\"\nowner = \"x\"\n[[apps.endpoints]]\nuid = \"e\"\nurl = \"https://e.example.com/\"\nrateLimit = 5\n[[event_types]]\nname = \"t\"\narchived = true\n",
        );
        let paths: Vec<&str> = errors.errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "apps[0].endpoints[0].rateLimit",
                "apps[0].owner",
                "event_types[0].archived",
            ]
        );
    }
}
