//! libFuzzer entry of the `filter` target; the body, shared with the stable replay test, is
//! `src/filter.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hookd_fuzz::filter::run(data));
