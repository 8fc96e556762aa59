//! libFuzzer entry of the `http_request` target; the body, shared with the stable replay test, is
//! `src/http_request.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hookd_fuzz::http_request::run(data));
