#!/usr/bin/env bash
# Load and fault harness of issue 6: builds the release server and the
# harness, then runs every case (loadtest/src/cases.rs) N times against
# the real binary over loopback and prints the table of medians.
#
#   loadtest/run.sh            # 3 passes of cases 1-10 (~6 min a pass)
#   loadtest/run.sh 1 --short  # one quick pass, durations / 10
#   loadtest/run.sh 3 --cases 1,2,3
#
# The server's logs of each case go to target/load/<case>-run<N>.log.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-3}"
shift || true
# cargo-leptos builds the server with LEPTOS_OUTPUT_NAME set (leptos reads
# it at compile time); building with the same value keeps this binary the
# one ./dev.sh serves, and avoids rebuilding leptos between the two.
LEPTOS_OUTPUT_NAME=okta-implicit cargo build --release -p server --bin server
# On its own, so its dependencies' features never change the server's
# build.
cargo build --release -p loadtest
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p')"
exec target/release/load --server target/release/server --runs "$runs" "$@"
