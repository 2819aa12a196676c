//! libFuzzer entry point of the `fragment` target; the checks live in
//! `server_fuzz::fragment` (src/lib.rs), shared with the stable corpus replay in
//! `server/tests/fuzz_corpus.rs`.
//!
//! Run: `cd server/fuzz && cargo +nightly fuzz run -s none -a fragment work/fragment corpus/fragment -- -max_total_time=600`

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| server_fuzz::fragment(data));
