//! libFuzzer entry of the `config` target; the body, shared with the stable replay test, is
//! `src/config.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hookd_fuzz::config::run(data));
