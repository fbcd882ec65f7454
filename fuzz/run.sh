#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 30 s each) from the seed corpus in
# fuzz/corpus/ and prints the executions run and crashes found per target.
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`); libFuzzer's instrumentation
# needs nightly flags, allowed on the stable toolchain by RUSTC_BOOTSTRAP=1.
# New inputs found go to a scratch copy of the corpus, so the repo's seeds stay as they are.
set -uo pipefail
cd "$(dirname "$0")"
secs="${1:-30}"
export RUSTC_BOOTSTRAP=1
targets=(validate jwks admin credentials)
work="$(mktemp -d)"
if ! cargo fuzz build >"$work/build.log" 2>&1; then
  tail -40 "$work/build.log"
  echo "fuzz: 0 passed, ${#targets[@]} failed"
  exit 1
fi
status=0
passed=0
failed=0
for t in "${targets[@]}"; do
  mkdir -p "$work/$t"
  cp corpus/"$t"/* "$work/$t/" 2>/dev/null
  log="$work/$t.log"
  cargo fuzz run "$t" "$work/$t" corpus/"$t" -- -max_total_time="$secs" -max_len=16384 \
    -print_final_stats=1 >"$log" 2>&1
  rc=$?
  runs=$(grep -m1 -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$')
  crashes=$(ls artifacts/"$t"/ 2>/dev/null | grep -c -E '^(crash|leak|timeout|oom)-' )
  echo "fuzz $t: ${runs:-?} executions in ${secs}s, exit $rc, crash artifacts: $crashes"
  if [ "$rc" -ne 0 ]; then
    status=1
    failed=$((failed + 1))
    tail -40 "$log"
  else
    passed=$((passed + 1))
  fi
done
rm -rf "$work"
echo "fuzz: $passed passed, $failed failed"
exit $status
