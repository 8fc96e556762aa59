//! libFuzzer entry of the `api_json` target; the body, shared with the stable replay test, is
//! `src/api_json.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hookd_fuzz::api_json::run(data));
