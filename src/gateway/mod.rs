//! The gateway: what the operator rules about traffic in and out, apart from the API itself.
//!
//! - `verify.rs`: is an inbound webhook (`POST /ingest/{source}`, `[[sources]]`) really from
//!   the provider it claims? Standard Webhooks, GitHub, Stripe, generic HMAC, basic auth and
//!   static tokens; pure, with the time passed in.
//! - `policy.rs`: may an endpoint have this URL (`[endpoint_policy]`)? Pure; called on endpoint
//!   create and update, and for every stored endpoint at start and on config reload.
//!
//! - `schema.rs`: does a message's payload match its event type's JSON Schema
//!   (`validation.enforce_schemas`)? Schemas compiled once per event type write, cached.
//! - `operational.rs`: operational webhooks (`[operational_webhooks]`): endpoint and delivery
//!   events appended as messages to a config-owned internal app, so that the delivery engine
//!   signs, sends and retries them like any other.
//!
//! The HTTP side of inbound sources (routing, deduplication, storing) is `api/sources.rs`.

pub mod operational;
pub mod policy;
pub mod schema;
pub mod verify;

/// The gateway's state shared by the shards.
#[derive(Debug, Default)]
pub struct Gateway {
    /// Compiled payload schemas.
    pub schemas: schema::Schemas,
    /// Where operational webhooks go, once provisioned at start.
    pub operational: operational::Operational,
}
