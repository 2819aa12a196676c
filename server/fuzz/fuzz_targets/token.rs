//! libFuzzer entry point of the `token` target; the checks live in
//! `server_fuzz::token` (src/lib.rs), shared with the stable corpus replay in
//! `server/tests/fuzz_corpus.rs`.
//!
//! Run: `cd server/fuzz && cargo +nightly fuzz run -s none -a token work/token corpus/token -- -max_total_time=600`

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| server_fuzz::token(data));
