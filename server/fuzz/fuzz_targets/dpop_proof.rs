//! libFuzzer entry point of the `dpop_proof` target; the checks live in
//! `server_fuzz::dpop_proof` (src/lib.rs), shared with the stable corpus
//! replay in `server/tests/fuzz_corpus.rs`.
//!
//! Run: `cd server/fuzz && cargo +nightly fuzz run -s none -a dpop_proof work/dpop_proof corpus/dpop_proof -- -max_total_time=600`

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| server_fuzz::dpop_proof(data));
