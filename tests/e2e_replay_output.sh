#!/usr/bin/env bash
# e2e_replay_output.sh: `tickcast replay` never writes its predictions over its own input. The
# output is refused (exit 2, the input unchanged) when it is the input file by any name: the same
# path, a symlink, a hard link, /dev/stdout or '-' with stdout opened on the input, and the input
# given as '-' (stdin) with --output naming that file. Once, --output equal to --input truncated
# the input (456,522 bytes became 111,504) and exited 0.
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
M=tests/fixtures/nn_l1_h8.safetensors
IN="$TMP/ticks.csv"
head -n 2001 data/sample/fx_daily_2021_2025.csv >"$IN"
SUM=$(sha256sum "$IN" | cut -c1-64)
ln -s "$IN" "$TMP/link.csv"
ln "$IN" "$TMP/hard.csv"

refused() { # what, then the replay's arguments (a shell snippet: redirections allowed)
  local what=$1 rc=0
  shift
  eval "\"$TC\" replay --model $M $*" 2>"$TMP/err.txt" || rc=$?
  tc_eq "exit of replay with $what" "$rc" 2
  grep -q "is the input" "$TMP/err.txt" || tc_fail "$what: $(cat "$TMP/err.txt")"
  tc_eq "input checksum after $what" "$(sha256sum "$IN" | cut -c1-64)" "$SUM"
}
refused "--output = --input" --input "$IN" --output "$IN"
refused "a symlink to the input" --input "$IN" --output "$TMP/link.csv"
refused "the input as a symlink" --input "$TMP/link.csv" --output "$IN"
refused "a hard link" --input "$IN" --output "$TMP/hard.csv"
refused "/dev/stdout on the input" --input "$IN" --output /dev/stdout "1<>'$IN'"
refused "- with stdout on the input" --input "$IN" --output - "1<>'$IN'"
refused "stdout on the input (no --output)" --input "$IN" "1<>'$IN'"
refused "stdin as the input and --output naming it" --input - --output "$IN" "<'$IN'"
cat "$TMP/err.txt"

# Other outputs are fine.
"$TC" replay --model $M --input "$IN" --output "$TMP/out.csv" 2>/dev/null || tc_fail "a plain replay failed"
tc_eq "predictions" "$(($(wc -l <"$TMP/out.csv") - 1))" 2000
"$TC" replay --model $M --input - --output "$TMP/out2.csv" <"$IN" 2>/dev/null || tc_fail "stdin replay failed"
cmp -s "$TMP/out.csv" "$TMP/out2.csv" || tc_fail "stdin replay differs"
"$TC" replay --model $M --input "$IN" >"$TMP/out3.csv" 2>/dev/null || tc_fail "stdout replay failed"
cmp -s "$TMP/out.csv" "$TMP/out3.csv" || tc_fail "stdout replay differs"
# A full disk: exit 1 and one line naming the output and the reason, on every thread count and
# with stdout or --output (once a blank line came first, left from a progress bar never drawn).
for th in 1 2; do
  for out in "--output /dev/full" ""; do
    set +e
    "$TC" replay --quiet --model $M --input "$IN" --threads $th $out >/dev/full 2>"$TMP/full.err"
    rc=$?
    set -e
    tc_one_error "replay --threads $th ${out:-to stdout} on a full disk" $rc "$TMP/full.err" \
      "^tickcast replay: (/dev/full|stdout): write failed: No space left on device$"
  done
done
echo "PASS e2e_replay_output"
