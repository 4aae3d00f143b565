#!/usr/bin/env bash
# Builds every tests/fuzz/fuzz_*.c with clang + libFuzzer + ASan/UBSan into build-fuzz/ and runs
# each for $1 seconds (default 60) on a scratch copy of its corpus tests/corpus/<name>/, so the
# committed corpus only changes when someone copies an interesting find back on purpose. Any
# crash, sanitizer report (UBSan does not recover) or timeout fails it. .ci/run: 10 s each.
# Usage: tests/fuzz/run.sh [SECONDS] [NAME...]     (e.g. tests/fuzz/run.sh 300 tick_json)
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
shift || true
OUT=build-fuzz
mkdir -p "$OUT/obj"
PKGS=$(sed -n 's/^PKGS *:= *//p' Makefile) # the libraries the Makefile builds with
[ -n "$PKGS" ] || { echo "tests/fuzz/run.sh: no PKGS line in the Makefile" >&2; exit 1; }
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
FLAGS="-g -O1 $SAN -D_GNU_SOURCE -I. $(pkg-config --cflags $PKGS)"
# Targets link the module objects (not the archives, which are built without coverage): nn,
# ingest and store always; daemon/ (without main.c) only for a target that includes a daemon/
# header. Targets reach the code through its headers, never by including a .c file. Each source is
# compiled once for every target (with coverage, -fsanitize=fuzzer-no-link), two at a time.
shopt -s nullglob
BASE_SRCS=(nn/*.c nn/*/*.c ingest/*.c ingest/*/*.c store/*.c)
DAEMON_SRCS=(daemon/*/*.c)
obj() { local o=${1//\//_}; echo "$OUT/obj/${o%.c}.o"; }
export FLAGS OUT
printf '%s\n' "${BASE_SRCS[@]}" "${DAEMON_SRCS[@]}" |
  xargs -P 2 -I{} sh -c 'o=$(echo {} | tr / _); clang $FLAGS -fsanitize=fuzzer-no-link \
    -c -o "$OUT/obj/${o%.c}.o" {} || { echo "FAIL fuzz: {} does not build"; exit 255; }'
BASE_OBJS=() DAEMON_OBJS=()
for f in "${BASE_SRCS[@]}"; do BASE_OBJS+=("$(obj "$f")"); done
for f in "${DAEMON_SRCS[@]}"; do DAEMON_OBJS+=("$(obj "$f")"); done
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for f in tests/fuzz/fuzz_*.c; do n=${f##*/fuzz_}; names+=("${n%.c}"); done
fi
fail=0
for n in "${names[@]}"; do
  src=tests/fuzz/fuzz_$n.c
  OBJS=("${BASE_OBJS[@]}")
  if grep -q '^#include "daemon/' "$src"; then OBJS+=("${DAEMON_OBJS[@]}"); fi
  echo "== fuzz $n: building"
  # shellcheck disable=SC2086
  if ! clang $FLAGS -fsanitize=fuzzer -o "$OUT/fuzz_$n" "$src" "${OBJS[@]}" \
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
