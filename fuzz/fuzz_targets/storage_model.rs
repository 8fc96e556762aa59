//! libFuzzer entry of the `storage_model` target; the body, shared with the stable replay test, is
//! `src/storage_model.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hookd_fuzz::storage_model::run(data));
