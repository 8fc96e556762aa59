//! The gateway: what the operator rules about traffic in and out, apart from the API itself.
//!
//! - `verify.rs`: is an inbound webhook (`POST /ingest/{source}`, `[[sources]]`) really from
//!   the provider it claims? Standard Webhooks, GitHub, Stripe, generic HMAC, basic auth and
//!   static tokens; pure, with the time passed in.
//! - `policy.rs`: may an endpoint have this URL (`[endpoint_policy]`)? Pure; called on endpoint
//!   create and update, and meant to be called again when the config is reloaded.
//!
//! The HTTP side of inbound sources (routing, deduplication, storing) is `api/sources.rs`.

pub mod policy;
pub mod verify;
