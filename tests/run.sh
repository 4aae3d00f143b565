#!/usr/bin/env bash
# Runs the tests of the current sources, each under a timeout: a unit-test binary per
# tests/test_*.c ($B/tests/test_*), a fuzz-corpus replay per tests/fuzz/fuzz_*.c ($B/tests/replay_*
# over tests/corpus/<name>/) and the end-to-end scripts tests/e2e_*.sh. A binary left in $B whose
# source is gone is not run; one whose source has no binary fails. A test fails on a non-zero exit
# or a sanitizer report, in its output or in a report file of any process it started. Prints one
# line per test and closes with "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
B=${TICKCAST_BUILD:-build}
export TICKCAST_BUILD=$B OPENBLAS_NUM_THREADS=1
T=${TEST_TIMEOUT:-300}
W=$(mktemp -d "${TMPDIR:-/tmp}/tickcast-run.XXXXXX")
trap 'rm -rf "$W"' EXIT
# Sanitizer reports of every process (an e2e script's tickcast writes its stderr to a file of its
# own) also go to $W/san.PID; a normal build never writes there.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$W/san"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}log_path=$W/san"
SAN_REPORT='ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|WARNING: ThreadSanitizer'
pass=0; fail=0; failed=()
failed() { # name, why, log
  fail=$((fail + 1)); failed+=("$1"); echo "FAIL $1 ($2)"
  [ -n "${3:-}" ] && tail -n 30 "$3" | sed 's/^/    /'
}
run() { # name, command...
  local name=$1; shift
  local log=$W/log t0=$SECONDS rc=0
  rm -f "$W"/san.*
  timeout -k 5 "$T" "$@" >"$log" 2>&1 || rc=$?
  cat "$W"/san.* >>"$log" 2>/dev/null
  if [ $rc -ne 0 ]; then
    failed "$name" "exit $rc, $((SECONDS - t0)) s" "$log"
  elif grep -qE "$SAN_REPORT" "$log"; then
    failed "$name" "sanitizer report, $((SECONDS - t0)) s"
    grep -m1 -A25 -E "$SAN_REPORT" "$log" | sed 's/^/    /'
  else
    pass=$((pass + 1)); echo "PASS $name ($((SECONDS - t0)) s)"
  fi
}
for src in tests/test_*.c; do
  t=$B/tests/$(basename "$src" .c)
  if [ -x "$t" ]; then run "${t##*/}" "$t"; else failed "${t##*/}" "$t not built: make tests"; fi
done
for src in tests/fuzz/fuzz_*.c; do
  name=$(basename "$src" .c); name=${name#fuzz_}
  r=$B/tests/replay_$name
  if [ -x "$r" ]; then run "fuzz-corpus $name" "$r" "tests/corpus/$name"
  else failed "fuzz-corpus $name" "$r not built: make tests"; fi
done
for e in tests/e2e_*.sh; do
  [ -f "$e" ] || continue
  run "$(basename "$e" .sh)" bash "$e"
done
[ ${#failed[@]} -eq 0 ] || echo "failed: ${failed[*]}"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
