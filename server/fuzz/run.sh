#!/usr/bin/env bash
# Runs each fuzz target in turn, one process on one core, for SECONDS each
# (default 600), then prints the executions per target. Needs nightly and
# cargo-fuzz (`cargo install cargo-fuzz --locked`; not installed by
# ./dev.sh). New inputs go to server/fuzz/work/ (ignored by git).
#
#   server/fuzz/run.sh          # 10 min per target
#   server/fuzz/run.sh 60 token # one target, one minute
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-600}"
shift || true
if [ "$#" -gt 0 ]; then targets=("$@"); else targets=(fragment bearer_header token); fi
mkdir -p work
for t in "${targets[@]}"; do
  mkdir -p "work/$t"
  echo "== $t: ${secs}s"
  cargo +nightly fuzz run -s none -a --target-dir ../../target/fuzz "$t" "work/$t" "corpus/$t" \
    -- -max_total_time="$secs" -print_final_stats=1 2>&1 | tee "work/$t.log" | grep -E "^(Done|stat::number_of_executed_units|stat::average_exec_per_sec|==|SUMMARY)|panicked|Test unit written" || true
done
