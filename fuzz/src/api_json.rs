//! `api_json`: every JSON request body of the API through `hookd::api::input::json`, the
//! parser the routes use, and then through the field checks that need no store.
//!
//! Input: byte 0 picks the body type (its value modulo [`KINDS`]), the rest is the body.
//!
//! Checked, beyond "no panic":
//! - a body is accepted only if it is non-empty UTF-8 holding exactly one JSON value (what
//!   `serde_json::from_slice` accepts), so nothing is silently dropped after the value;
//! - a refusal is a 400 or a 422 whose body is JSON, and a 422 locates its problem under
//!   `body`;
//! - borrowed parts of a parsed message (`payload`) are valid JSON on their own;
//! - the field checks (names, uids, URLs, secrets) answer without panicking, and what they
//!   accept has the shape they promise.

use hookd::api::error::ApiError;
use hookd::api::input::{check_name, check_uid, json};
use hookd::api::models::{
    ApplicationIn, ApplicationPatch, EndpointIn, EndpointPatch, EventTypeIn, EventTypePatch,
    HeadersIn, MessageIn, SecretRotateIn,
};
use hookd::deliver::sign::parse_secret;
use hookd::model::url::Url;
use serde_json::Value;

/// The body types, in the order byte 0 picks them.
pub const KINDS: &[&str] = &[
    "ApplicationIn",
    "ApplicationPatch",
    "EndpointIn",
    "EndpointPatch",
    "SecretRotateIn",
    "HeadersIn",
    "EventTypeIn",
    "EventTypePatch",
    "MessageIn",
    "Value (event type import)",
];

pub fn run(data: &[u8]) {
    let [kind, body @ ..] = data else {
        return;
    };
    let accepted = match usize::from(*kind) % KINDS.len() {
        0 => parsed(json::<ApplicationIn>(body), |a| {
            check_text_fields(a.uid.as_deref(), "app_");
            let _ = a.name.trim().is_empty();
        }),
        1 => parsed(json::<ApplicationPatch>(body), |a| {
            check_text_fields(a.uid.clone().flatten().as_deref(), "app_");
        }),
        2 => parsed(json::<EndpointIn>(body), |e| {
            check_url(&e.url);
            check_text_fields(e.uid.as_deref(), "ep_");
            check_names(e.event_types.as_deref().unwrap_or_default());
            if let Some(secret) = &e.secret {
                check_secret(secret);
            }
        }),
        3 => parsed(json::<EndpointPatch>(body), |e| {
            if let Some(url) = &e.url {
                check_url(url);
            }
            check_text_fields(e.uid.clone().flatten().as_deref(), "ep_");
            check_names(
                e.event_types
                    .clone()
                    .flatten()
                    .as_deref()
                    .unwrap_or_default(),
            );
        }),
        4 => parsed(json::<SecretRotateIn>(body), |s| {
            if let Some(key) = &s.key {
                check_secret(key);
            }
        }),
        5 => parsed(json::<HeadersIn>(body), |_| {}),
        6 => parsed(json::<EventTypeIn>(body), |et| {
            check_names(std::slice::from_ref(&et.name));
            if let Some(schemas) = &et.schemas {
                assert_json(schemas.get().as_bytes(), "schemas");
            }
        }),
        7 => parsed(json::<EventTypePatch>(body), |et| {
            if let Some(Some(schemas)) = &et.schemas {
                assert_json(schemas.get().as_bytes(), "schemas");
            }
        }),
        8 => parsed(json::<MessageIn<'_>>(body), |m| {
            assert_json(m.payload.get().as_bytes(), "payload");
            check_names(std::slice::from_ref(&m.event_type.to_string()));
            if let Some(id) = &m.event_id {
                check_names(std::slice::from_ref(id));
            }
            if let Some(app) = &m.application {
                check_text_fields(app.uid.as_deref(), "app_");
            }
        }),
        // The event type import parses a generic value, then its re-serialization as a type.
        _ => parsed(json::<Value>(body), |v| {
            let text = v.to_string();
            let _ = parsed(json::<EventTypeIn>(text.as_bytes()), |_| {});
        }),
    };
    if accepted {
        assert!(!body.is_empty(), "an empty body was accepted");
        assert_json(body, "an accepted body");
    }
}

/// Runs `check` on a parsed body, or checks the refusal. True if the body was accepted.
fn parsed<T>(result: Result<T, ApiError>, check: impl FnOnce(&T)) -> bool {
    match result {
        Ok(v) => {
            check(&v);
            true
        }
        Err(e) => {
            if let ApiError::Validation(problems) = &e {
                assert!(!problems.is_empty(), "a 422 without problems");
                for p in problems {
                    assert_eq!(p.loc.first().map(String::as_str), Some("body"), "{p:?}");
                }
            }
            let resp = e.into_response();
            assert!(
                matches!(resp.status, 400 | 422),
                "bad JSON answered {}",
                resp.status
            );
            assert_json(&resp.body, "an error response");
            false
        }
    }
}

/// `bytes` are exactly one JSON value (whitespace around it allowed).
fn assert_json(bytes: &[u8], what: &str) {
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
        panic!(
            "{what} is not one JSON value ({e}): {:?}",
            String::from_utf8_lossy(bytes)
        );
    }
}

/// A uid passes or fails the uid rule; one that passes has the documented shape.
fn check_text_fields(uid: Option<&str>, prefix: &str) {
    let Some(uid) = uid else { return };
    let mut problems = Vec::new();
    check_uid("uid", uid, prefix, &mut problems);
    if problems.is_empty() {
        assert!(!uid.is_empty() && uid.len() <= 256 && !uid.starts_with(prefix));
        assert!(uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')));
    }
}

fn check_names(names: &[String]) {
    for name in names {
        let mut problems = Vec::new();
        check_name("name", name, &mut problems);
        if problems.is_empty() {
            assert!(!name.is_empty() && name.len() <= 256);
        } else {
            assert!(problems.iter().all(|p| p.loc == ["body", "name"]));
        }
    }
}

fn check_url(text: &str) {
    if let Ok(url) = Url::parse(text) {
        assert!(url.path.starts_with('/'), "{url:?}");
        assert!(!url.host.is_empty(), "{url:?}");
        assert_eq!(url.host, url.host.to_ascii_lowercase(), "{url:?}");
        let _ = url.ip();
    }
}

fn check_secret(text: &str) {
    if let Ok(key) = parse_secret(text) {
        let bounds =
            hookd::deliver::sign::SECRET_BYTES_MIN..=hookd::deliver::sign::SECRET_BYTES_MAX;
        assert!(bounds.contains(&key.len()));
    }
}
