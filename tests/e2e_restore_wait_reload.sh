#!/usr/bin/env bash
# e2e_restore_wait_reload.sh: a model swapped in (SIGHUP, --on-model-change reset) while partitions
# wait for an unreadable changelog (docs/STATE.md, "Restore at an assignment", step 7). The retry
# then reads the changelog but finds no checkpoint of the new model (records of another model
# count as absent), so the partitions resume where the group committed, with zero state, as every
# instrument restarts under a reset: the ticks fed meanwhile are predicted exactly as a replay of
# them alone with the new model. The set-up is tc_wait_reload's (tests/lib.sh). A first version
# sought to "the committed offset" (a logical offset that librdkafka 2.0.2's seek refuses), and
# the partitions waited for good.
. "$(dirname "$0")/lib.sh"
X="$PY $ROOT/tests/e2e_crash.py"
tc_wait_reload reset
line=$(grep "restored ticks partitions" "$TMP/run2.log")
echo "$line"
echo "$line" | grep -qE "restored ticks partitions \[0@[0-9]+,1@[0-9]+\] .*: 0 instruments" ||
  tc_fail "the retry did not resume both partitions at their offsets with zero state: $line"
"$TC" replay --model "$TMP/m2.safetensors" --input "$TMP/second.csv" --output "$TMP/replay.csv" 2>/dev/null
$X check "$BROKERS" preds2 100 "$TMP/replay.csv" - "$TMP/m2.safetensors" >"$TMP/check.txt" ||
  tc_fail "$(cat "$TMP/check.txt")"
cat "$TMP/check.txt"
echo "PASS e2e_restore_wait_reload"
