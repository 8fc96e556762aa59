//! libFuzzer entry of the `response_parse` target; the body, shared with the stable replay
//! test, is `src/response_parse.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hookd_fuzz::response_parse::run(data));
