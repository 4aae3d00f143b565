#!/usr/bin/env bash
# Builds every tests/fuzz/fuzz_*.c with clang + libFuzzer + ASan/UBSan into build-fuzz/ and runs
# each for $1 seconds (default 60) on a scratch copy of its corpus tests/corpus/<name>/, so the
# committed corpus only changes when someone copies an interesting find back on purpose.
# Usage: tests/fuzz/run.sh [SECONDS] [NAME...]     (e.g. tests/fuzz/run.sh 300 tick_json)
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
shift || true
OUT=build-fuzz
mkdir -p "$OUT"
PKGS="rdkafka libuv openblas sqlite3 libmicrohttpd jansson libxxhash libcrypto"
FLAGS="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -D_GNU_SOURCE"
# Targets link the module sources (not the archives, which are built without coverage): nn,
# ingest and store always; daemon (without main.c) only for a target that includes daemon/.
BASE_SRCS="$(ls nn/*.c nn/*/*.c ingest/*.c ingest/*/*.c store/*.c 2>/dev/null || true)"
DAEMON_SRCS="$(ls daemon/*/*.c 2>/dev/null || true)"
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for f in tests/fuzz/fuzz_*.c; do n=${f##*/fuzz_}; names+=("${n%.c}"); done
fi
fail=0
for n in "${names[@]}"; do
  src=tests/fuzz/fuzz_$n.c
  SRCS=$BASE_SRCS
  grep -q '^#include "daemon/' "$src" && SRCS="$SRCS $DAEMON_SRCS"
  # A target that #includes a module's .c file (to reach its statics) must not link it again.
  for inc in $(sed -n 's|^#include "\(.*\.c\)"|\1|p' "$src"); do
    SRCS=$(echo "$SRCS" | tr ' ' '\n' | grep -vx "$inc" | tr '\n' ' ')
  done
  echo "== fuzz $n: building"
  # shellcheck disable=SC2086
  if ! clang $FLAGS -I. $(pkg-config --cflags $PKGS) -o "$OUT/fuzz_$n" "$src" $SRCS \
      $(pkg-config --libs $PKGS) -lm -lpthread; then
    echo "FAIL fuzz $n: does not build"; fail=1; continue
  fi
  work=$OUT/corpus_$n
  rm -rf "$work" && mkdir -p "$work"
  [ -d "tests/corpus/$n" ] && cp -r "tests/corpus/$n/." "$work/"
  echo "== fuzz $n: running ${secs}s (crashes go to $OUT/crash-$n-*)"
  if ! "$OUT/fuzz_$n" -max_total_time="$secs" -max_len=4096 -timeout=10 \
      -artifact_prefix="$OUT/crash-$n-" -print_final_stats=1 "$work" >"$OUT/fuzz_$n.log" 2>&1; then
    echo "FAIL fuzz $n: see $OUT/fuzz_$n.log"; tail -n 20 "$OUT/fuzz_$n.log"; fail=1
  else
    grep -E "^stat::number_of_executed_units|^stat::new_units_added" "$OUT/fuzz_$n.log" | tr '\n' ' '
    echo; echo "PASS fuzz $n ($(ls "$work" | wc -l) inputs in the work corpus)"
  fi
done
exit $fail
