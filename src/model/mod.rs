//! The domain model: what every layer of hookd talks about, imported by all and importing
//! nothing of hookd (a test, `tests/tidy.rs`, keeps it so).
//!
//! - [`ids`]: public ids (`app_`, `ep_`, `msg_`, ...) and how they carry keys;
//!   [`message_id`]: a message's id from its log sequence number;
//! - [`url`]: endpoint URLs, parsed and bounded;
//! - [`ssrf`]: which addresses may be dialled (the rules; the client applies them to every
//!   address it resolves);
//! - [`secret`]: the `whsec_` text form of signing secrets;
//! - [`filter`]: payload filters, compiled once and matched against payloads;
//! - [`legacy`]: signature headers in other providers' schemes (GitHub, Stripe, a generic
//!   HMAC), for receivers moving to hookd;
//! - [`schemas`]: an event type's versioned JSON Schemas, checked and compiled;
//! - [`trace`]: the W3C `traceparent` a message carries from its producer to its receivers;
//! - the names hookd reserves: [`RESERVED_HEADERS`] (set on every delivery, never by an
//!   endpoint's custom headers) and [`OPERATIONAL_APP_UID`] (the internal app of operational
//!   webhooks).
//!
//! The stored records themselves (apps, endpoints, messages, attempts) are the storage
//! crate's (`storage::state::records`), which knows nothing of hookd either.

pub mod filter;
pub mod ids;
pub mod legacy;
pub mod schemas;
pub mod secret;
pub mod ssrf;
pub mod trace;
pub mod url;

use storage::state::MessageRecord;

/// Headers hookd sets itself (or that frame the connection), which an endpoint's custom
/// headers may not override: checked on endpoint writes and for the endpoints the config file
/// declares.
pub const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-authorization",
    "proxy-connection",
    "user-agent",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "svix-id",
    "svix-timestamp",
    "svix-signature",
    "traceparent",
];

/// Why `name` cannot be a header an endpoint sets (custom or legacy signature): not an HTTP
/// token of at most 256 bytes, or one of the [`RESERVED_HEADERS`]; `None` if it can.
pub fn header_name_problem(name: &str) -> Option<String> {
    let token = !name.is_empty()
        && name.len() <= 256
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        Some(format!("{name:?} is not a header name"))
    } else if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        Some(format!("{name} is set by hookd and cannot be overridden"))
    } else {
        None
    }
}

/// The uid of the internal app that operational webhooks are appended to.
pub const OPERATIONAL_APP_UID: &str = "hookd-operational";

/// The public id of the message at `seq`.
pub fn message_id(seq: u64, m: &MessageRecord) -> String {
    ids::encode(
        ids::Kind::Message,
        ids::Parts {
            ts_ms: m.created_ms,
            key: seq,
            rand: m.rand,
        },
    )
}
