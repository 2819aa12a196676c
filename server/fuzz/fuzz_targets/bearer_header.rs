//! libFuzzer entry point of the `bearer_header` target; the checks live in
//! `server_fuzz::bearer_header` (src/lib.rs), shared with the stable corpus replay in
//! `server/tests/fuzz_corpus.rs`.
//!
//! Run: `cd server/fuzz && cargo +nightly fuzz run -s none -a bearer_header work/bearer_header corpus/bearer_header -- -max_total_time=600`

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| server_fuzz::bearer_header(data));
