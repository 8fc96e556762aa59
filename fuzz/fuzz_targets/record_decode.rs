//! libFuzzer entry of the `record_decode` target; the body, shared with the stable replay test, is
//! `src/record_decode.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hookd_fuzz::record_decode::run(data));
