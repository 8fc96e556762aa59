//! libFuzzer entry of the `signature` target; the body, shared with the stable replay test, is
//! `src/signature.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hookd_fuzz::signature::run(data));
