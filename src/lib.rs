//! hookd: a single-binary webhook appliance with durable ingest, signed
//! delivery and retries.
//!
//! - [`config`]: `hookd.toml`, loaded in two stages into a validated [`config::Config`].
//! - [`cli`]: the command line of the `hookd` binary.

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod ctl;
pub mod deliver;
pub mod fatal;
pub mod http;
pub mod inbound;
pub mod ingest;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod panics;
pub mod policy;
pub mod portal;
pub mod preflight;
pub mod reload;
pub mod service;
pub mod shard;
pub mod signals;
pub mod status;
pub mod systemd;
pub mod time;
