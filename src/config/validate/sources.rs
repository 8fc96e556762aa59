//! `[[sources]]`: inbound webhook sources, each checked whole: its name and app, its scheme
//! and the keys that scheme takes (and only those), and where its event type and delivery id
//! are found.

use std::collections::HashSet;
use std::time::Duration;

use super::super::raw::{RawConfig, RawSource};
use super::super::{Locator, Secret, SignatureEncoding, SourceConfig, SourceScheme};
use super::{
    check_token_name, header_name, is_api_name, parse_sha256, pointer, quoted, Checker, Zero,
    LOCATOR_BYTES_MAX, SOURCES_MAX, SOURCE_SECRET_BYTES_MAX, SOURCE_TOLERANCE_MAX,
};

/// The schemes that take a shared `secret`.
const HMAC_SCHEMES: &[&str] = &["standard-webhooks", "github", "stripe", "hmac-sha256"];

pub(super) fn sources(c: &mut Checker, raw: &RawConfig) -> Vec<SourceConfig> {
    if raw.sources.len() > SOURCES_MAX {
        c.error(
            "sources",
            format!(
                "has {} entries, at most {SOURCES_MAX} are allowed",
                raw.sources.len()
            ),
        );
    }
    let mut out = Vec::with_capacity(raw.sources.len());
    let mut names = HashSet::new();
    for (i, r) in raw.sources.iter().enumerate() {
        let at = format!("sources[{i}]");
        if let Some(name) = &r.name {
            if !names.insert(name.as_str()) {
                c.error(
                    format!("{at}.name"),
                    format!("duplicate source name {name:?}"),
                );
            }
        }
        if let Some(source) = source(c, &at, r) {
            out.push(source);
        }
    }
    out
}

/// One source's keys, as `sources[i].key`.
struct Keys<'a> {
    at: &'a str,
    raw: &'a RawSource,
}

impl Keys<'_> {
    fn key(&self, k: &str) -> String {
        format!("{}.{k}", self.at)
    }
}

/// Checks one source; `None` if something in it is wrong (already reported).
fn source(c: &mut Checker, at: &str, r: &RawSource) -> Option<SourceConfig> {
    let errors_before = c.errors.len();
    let k = Keys { at, raw: r };
    let name = match &r.name {
        None => {
            c.error(
                k.key("name"),
                "required: the source's path is /ingest/{name}",
            );
            String::new()
        }
        Some(name) => {
            check_token_name(c, &k.key("name"), name, "source");
            name.clone()
        }
    };
    let app = match &r.app {
        None => {
            c.error(
                k.key("app"),
                "required: the id or uid of the application its messages go to",
            );
            String::new()
        }
        Some(app) => {
            if !is_api_name(app) {
                c.error(
                    k.key("app"),
                    "must be an application id or uid: 1 to 256 letters, digits, '-', '_' or '.'",
                );
            }
            app.clone()
        }
    };
    let scheme_name = scheme_name(c, &k);
    let tolerance = c.duration(
        &k.key("tolerance"),
        r.tolerance.as_deref(),
        Duration::from_secs(300),
        Zero::Refused,
    );
    if tolerance > SOURCE_TOLERANCE_MAX {
        c.error(k.key("tolerance"), "must be at most 1d");
    }
    if let Some(s) = scheme_name {
        keys_only_for_their_schemes(c, &k, s);
    }
    let scheme = scheme_name.and_then(|s| scheme(c, &k, s));
    let event_type = event_type(c, &k, scheme_name);
    let delivery_id = delivery_id(c, &k, scheme_name);
    if c.errors.len() > errors_before {
        return None;
    }
    Some(SourceConfig {
        name,
        app,
        scheme: scheme?,
        tolerance,
        event_type: event_type?,
        delivery_id,
    })
}

/// `scheme`: required, one of [`SourceScheme::NAMES`].
fn scheme_name(c: &mut Checker, k: &Keys<'_>) -> Option<&'static str> {
    match k.raw.scheme.as_deref() {
        None => {
            c.error(
                k.key("scheme"),
                format!("required: one of {}", quoted(&SourceScheme::NAMES)),
            );
            None
        }
        Some(s) => match SourceScheme::NAMES.iter().find(|n| **n == s) {
            Some(name) => Some(name),
            None => {
                c.error(
                    k.key("scheme"),
                    format!(
                        "unknown value {s:?}, expected one of {}",
                        quoted(&SourceScheme::NAMES)
                    ),
                );
                None
            }
        },
    }
}

/// Refuses keys that only other schemes take, so that a typo'd scheme or a key meant for
/// another source does not pass silently.
fn keys_only_for_their_schemes(c: &mut Checker, k: &Keys<'_>, scheme: &str) {
    let r = k.raw;
    let mut only = |field: &str, present: bool, schemes: &[&str]| {
        if present && !schemes.contains(&scheme) {
            c.error(
                k.key(field),
                format!(
                    "not used by scheme {scheme:?} (only by {})",
                    quoted(schemes)
                ),
            );
        }
    };
    only("secret", r.secret.is_some(), HMAC_SCHEMES);
    for (field, value) in [
        ("signature_header", &r.signature_header),
        ("signature_encoding", &r.signature_encoding),
        ("signature_prefix", &r.signature_prefix),
    ] {
        only(field, value.is_some(), &["hmac-sha256"]);
    }
    only("username", r.username.is_some(), &["basic"]);
    only("password_sha256", r.password_sha256.is_some(), &["basic"]);
    only("token_header", r.token_header.is_some(), &["token"]);
    only("token_sha256", r.token_sha256.is_some(), &["token"]);
    let ids = r.delivery_id_header.is_some() || r.delivery_id_pointer.is_some();
    if ids && scheme == "standard-webhooks" {
        c.error(
            k.key(if r.delivery_id_header.is_some() {
                "delivery_id_header"
            } else {
                "delivery_id_pointer"
            }),
            "not used by scheme \"standard-webhooks\": its signed webhook-id is the delivery id",
        );
    }
}

/// The scheme named `name` with its keys.
fn scheme(c: &mut Checker, k: &Keys<'_>, name: &str) -> Option<SourceScheme> {
    match name {
        "standard-webhooks" => {
            let text = secret(c, k);
            if let Some(public) = std::str::from_utf8(&text.0)
                .ok()
                .filter(|t| t.starts_with(crate::model::secret::PUBLIC_KEY_PREFIX))
            {
                return match crate::model::secret::parse_public_key(public) {
                    Ok(pk) => Some(SourceScheme::StandardWebhooksEd25519 {
                        public_key: Secret(pk.to_vec()),
                    }),
                    Err(e) => {
                        c.error(k.key("secret"), e.to_string());
                        None
                    }
                };
            }
            let key_bytes = std::str::from_utf8(&text.0)
                .ok()
                .filter(|t| !t.is_empty())
                .map(crate::model::secret::parse_secret);
            match key_bytes {
                Some(Ok(key)) => Some(SourceScheme::StandardWebhooks { key: Secret(key) }),
                Some(Err(e)) => {
                    c.error(
                        k.key("secret"),
                        format!("{e} (expected \"whsec_\" or \"whpk_\" + base64)"),
                    );
                    None
                }
                None => None,
            }
        }
        "github" => Some(SourceScheme::GitHub {
            secret: secret(c, k),
        }),
        "stripe" => Some(SourceScheme::Stripe {
            secret: secret(c, k),
        }),
        "hmac-sha256" => Some(hmac_sha256(c, k)),
        "basic" => Some(basic(c, k)),
        _ => Some(token(c, k)),
    }
}

/// `secret`: required by the HMAC schemes, 1 to [`SOURCE_SECRET_BYTES_MAX`] bytes.
fn secret(c: &mut Checker, k: &Keys<'_>) -> Secret {
    match &k.raw.secret {
        None => {
            c.error(k.key("secret"), "required by this scheme");
            Secret(Vec::new())
        }
        Some(s) if s.is_empty() || s.len() > SOURCE_SECRET_BYTES_MAX => {
            c.error(
                k.key("secret"),
                format!("must be 1 to {SOURCE_SECRET_BYTES_MAX} bytes"),
            );
            Secret(Vec::new())
        }
        Some(s) => Secret(s.as_bytes().to_vec()),
    }
}

fn hmac_sha256(c: &mut Checker, k: &Keys<'_>) -> SourceScheme {
    let r = k.raw;
    let secret = secret(c, k);
    let header = match &r.signature_header {
        None => {
            c.error(
                k.key("signature_header"),
                "required by scheme \"hmac-sha256\"",
            );
            String::new()
        }
        Some(h) => header_name(c, &k.key("signature_header"), h),
    };
    let encoding = c.choice(
        &k.key("signature_encoding"),
        r.signature_encoding.as_deref(),
        SignatureEncoding::Hex,
        &[
            ("hex", SignatureEncoding::Hex),
            ("base64", SignatureEncoding::Base64),
        ],
    );
    let prefix = r.signature_prefix.clone().unwrap_or_default();
    if prefix.len() > LOCATOR_BYTES_MAX {
        c.error(
            k.key("signature_prefix"),
            format!("longer than {LOCATOR_BYTES_MAX} bytes"),
        );
    }
    SourceScheme::HmacSha256 {
        secret,
        header,
        encoding,
        prefix,
    }
}

fn basic(c: &mut Checker, k: &Keys<'_>) -> SourceScheme {
    let username = match &k.raw.username {
        None => {
            c.error(k.key("username"), "required by scheme \"basic\"");
            String::new()
        }
        Some(u) if u.is_empty() || u.contains(':') || u.len() > 256 => {
            c.error(
                k.key("username"),
                "must be 1 to 256 bytes without ':' (RFC 7617)",
            );
            String::new()
        }
        Some(u) => u.clone(),
    };
    let password_sha256 = match &k.raw.password_sha256 {
        None => {
            c.error(
                k.key("password_sha256"),
                "required by scheme \"basic\": the SHA-256 of the password, in hex",
            );
            [0; 32]
        }
        Some(h) => parse_sha256(c, &k.key("password_sha256"), h),
    };
    SourceScheme::Basic {
        username,
        password_sha256,
    }
}

fn token(c: &mut Checker, k: &Keys<'_>) -> SourceScheme {
    let header = match &k.raw.token_header {
        None => "authorization".to_owned(),
        Some(h) => header_name(c, &k.key("token_header"), h),
    };
    let sha256 = match &k.raw.token_sha256 {
        None => {
            c.error(
                k.key("token_sha256"),
                "required by scheme \"token\": the SHA-256 of the token, in hex",
            );
            [0; 32]
        }
        Some(h) => parse_sha256(c, &k.key("token_sha256"), h),
    };
    SourceScheme::Token { header, sha256 }
}

/// Where the event type is: given (one of three ways), or the provider's usual place.
fn event_type(c: &mut Checker, k: &Keys<'_>, scheme: Option<&str>) -> Option<Locator> {
    let r = k.raw;
    let given = [
        r.event_type.is_some(),
        r.event_type_header.is_some(),
        r.event_type_pointer.is_some(),
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        c.error(
            k.key("event_type"),
            "give only one of event_type, event_type_header and event_type_pointer",
        );
        return None;
    }
    if let Some(t) = &r.event_type {
        if !is_api_name(t) {
            c.error(
                k.key("event_type"),
                "must be 1 to 256 letters, digits, '-', '_' or '.' (an event type name)",
            );
        }
        return Some(Locator::Fixed(t.clone()));
    }
    if let Some(h) = &r.event_type_header {
        return Some(Locator::Header(header_name(
            c,
            &k.key("event_type_header"),
            h,
        )));
    }
    if let Some(p) = &r.event_type_pointer {
        return Some(Locator::Pointer(pointer(
            c,
            &k.key("event_type_pointer"),
            p,
        )));
    }
    match scheme {
        Some("github") => Some(Locator::Header("x-github-event".into())),
        Some("stripe" | "standard-webhooks") => Some(Locator::Pointer("/type".into())),
        Some(s) => {
            c.error(
                k.key("event_type"),
                format!(
                    "scheme {s:?} has no usual place for the event type: \
                     set event_type, event_type_header or event_type_pointer"
                ),
            );
            None
        }
        None => None,
    }
}

/// Where the provider's delivery id is (for deduplication): given, or its usual place.
fn delivery_id(c: &mut Checker, k: &Keys<'_>, scheme: Option<&str>) -> Option<Locator> {
    let r = k.raw;
    match (&r.delivery_id_header, &r.delivery_id_pointer) {
        (Some(_), Some(_)) => {
            c.error(
                k.key("delivery_id_header"),
                "give only one of delivery_id_header and delivery_id_pointer",
            );
            None
        }
        (Some(h), None) => Some(Locator::Header(header_name(
            c,
            &k.key("delivery_id_header"),
            h,
        ))),
        (None, Some(p)) => Some(Locator::Pointer(pointer(
            c,
            &k.key("delivery_id_pointer"),
            p,
        ))),
        (None, None) => match scheme {
            Some("github") => Some(Locator::Header("x-github-delivery".into())),
            Some("stripe") => Some(Locator::Pointer("/id".into())),
            _ => None,
        },
    }
}
