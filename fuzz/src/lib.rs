//! The bodies of hookd's fuzz targets, one module per target.
//!
//! Two drivers share them: the cargo-fuzz binaries in `fuzz/fuzz_targets/` (nightly,
//! libFuzzer, run by hand), and the stable test `tests/fuzz_replay.rs` of the root crate, which
//! includes this file with `#[path]` and runs every file of `fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/` through its body (CI).
//!
//! Each body takes any bytes and checks its target's invariants with `assert!`: a panic is a
//! crash to libFuzzer and a failed test to the replay. Nothing here depends on libFuzzer, so
//! the code compiles on stable inside the test as well as here.

pub mod api_json;
pub mod config;
pub mod filter;
pub mod http_request;
pub mod record_decode;
pub mod response_parse;
pub mod signature;
pub mod storage_model;

/// A fuzz target's body.
pub type Body = fn(&[u8]);

/// Every target: its name (the binary in `fuzz_targets/`, the directory under `corpus/` and
/// `regressions/`) and its body.
pub const TARGETS: &[(&str, Body)] = &[
    ("http_request", http_request::run),
    ("config", config::run),
    ("api_json", api_json::run),
    ("record_decode", record_decode::run),
    ("response_parse", response_parse::run),
    ("signature", signature::run),
    ("storage_model", storage_model::run),
    ("filter", filter::run),
];
