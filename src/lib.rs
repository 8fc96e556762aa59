//! hookd: a single-binary webhook appliance with durable ingest, signed
//! delivery and retries.
//!
//! - [`config`]: `hookd.toml`, loaded in two stages into a validated [`config::Config`].
//! - [`cli`]: the command line of the `hookd` binary.

pub mod cli;
pub mod config;
