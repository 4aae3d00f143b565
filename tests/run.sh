#!/usr/bin/env bash
# Runs every test: unit-test binaries (build/tests/test_*), fuzz-corpus replays
# (build/tests/replay_* over tests/corpus/<name>/) and end-to-end scripts (tests/e2e_*.sh), each
# under a timeout. Prints one line per test and closes with "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
B=${TICKCAST_BUILD:-build}
export TICKCAST_BUILD=$B OPENBLAS_NUM_THREADS=1
T=${TEST_TIMEOUT:-300}
pass=0; fail=0; failed=()
run() { # name, command...
  local name=$1; shift
  local log; log=$(mktemp)
  local t0=$SECONDS
  if timeout -k 5 "$T" "$@" >"$log" 2>&1; then
    pass=$((pass + 1)); echo "PASS $name ($((SECONDS - t0)) s)"
  else
    local rc=$?
    fail=$((fail + 1)); failed+=("$name"); echo "FAIL $name (exit $rc, $((SECONDS - t0)) s)"
    tail -n 30 "$log" | sed 's/^/    /'
  fi
  rm -f "$log"
}
for t in "$B"/tests/test_*; do
  [ -x "$t" ] || continue
  run "$(basename "$t")" "$t"
done
for r in "$B"/tests/replay_*; do
  [ -x "$r" ] || continue
  name=${r##*/replay_}
  run "fuzz-corpus $name" "$r" "tests/corpus/$name"
done
for e in tests/e2e_*.sh; do
  [ -f "$e" ] || continue
  run "$(basename "$e" .sh)" bash "$e"
done
[ ${#failed[@]} -eq 0 ] || echo "failed: ${failed[*]}"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
