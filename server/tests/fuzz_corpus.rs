//! Replays the fuzz seed corpus (`server/fuzz/corpus/<target>/`) and every
//! saved crash (`server/fuzz/regressions/<target>/`) through the same
//! functions the fuzz targets call, on stable, so `cargo test` guards
//! against regressions without running a fuzzer.
//!
//! Run: `cargo test -p server --test fuzz_corpus`. The fuzzer itself: see
//! `server/fuzz/src/lib.rs`.

#[path = "../fuzz/src/lib.rs"]
mod targets;

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Every file under `corpus/<target>` and `regressions/<target>`.
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    for dir in ["corpus", "regressions"] {
        let dir = fuzz_dir().join(dir).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_file() {
                let data = std::fs::read(&path).expect("readable corpus file");
                found.push((path, data));
            }
        }
    }
    found.sort();
    found
}

fn replay(target: &str, run: fn(&[u8])) {
    let inputs = inputs(target);
    // The seeds are committed; an empty list means the path is wrong.
    assert!(
        inputs.len() >= 5,
        "only {} inputs for {target} under {}",
        inputs.len(),
        fuzz_dir().display()
    );
    for (path, data) in &inputs {
        // A panic names the file, so the failing input is easy to find.
        let outcome = std::panic::catch_unwind(|| run(data));
        assert!(outcome.is_ok(), "{target} panicked on {}", path.display());
    }
}

#[test]
fn fragment_corpus_replays_without_panic() {
    replay("fragment", targets::fragment);
}

#[test]
fn bearer_header_corpus_replays_without_panic() {
    replay("bearer_header", targets::bearer_header);
}

#[test]
fn token_corpus_replays_without_panic() {
    replay("token", targets::token);
}

#[test]
fn dpop_proof_corpus_replays_without_panic() {
    replay("dpop_proof", targets::dpop_proof);
}

/// Every input also goes through the other targets: each is cheap, and a
/// token seed is a fine header or fragment input too.
#[test]
fn every_input_through_every_target() {
    let all: Vec<_> = ["fragment", "bearer_header", "token", "dpop_proof"]
        .into_iter()
        .flat_map(inputs)
        .collect();
    for (path, data) in &all {
        for run in [
            targets::fragment,
            targets::bearer_header,
            targets::token,
            targets::dpop_proof,
        ] {
            let outcome = std::panic::catch_unwind(|| run(data));
            assert!(outcome.is_ok(), "panicked on {}", path.display());
        }
    }
}
