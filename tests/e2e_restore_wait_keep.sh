#!/usr/bin/env bash
# e2e_restore_wait_keep.sh: a model swapped in with --on-model-change keep (SIGHUP) while
# partitions wait for an unreadable changelog (docs/STATE.md, "Restore at an assignment", step 7,
# and "Model binding"). The states in the changelog are the old model's, which the new one carries
# on, so the retry restores them, as an uninterrupted member with the same swap would have them:
# the ticks fed meanwhile are predicted exactly as by a reference member that predicted the first
# ticks with the old model, then swapped to the new one keeping its states. A first version took
# the changelog's records for another model's and resumed both partitions where the group
# committed with zero state. Each restored instrument is written again under the new model, so a
# member started with it alone finds them all. The set-up is tc_wait_reload's (tests/lib.sh).
. "$(dirname "$0")/lib.sh"
X="$PY $ROOT/tests/e2e_crash.py"
tc_wait_reload keep ref:2,pref:2,gref.state:2
line=$(grep "restored ticks partitions" "$TMP/run2.log")
echo "$line"
echo "$line" | grep -qE "restored ticks partitions \[0@[0-9]+,1@[0-9]+\] .*: 40 instruments \(40 from the changelog" ||
  tc_fail "the retry did not restore the 40 instruments from the changelog: $line"
grep -q "changelog g1.state: [0-9]* records and markers of the models swapped out with --on-model-change keep taken" \
  "$TMP/run2.log" || tc_fail "no line on the earlier model's records: $(grep changelog "$TMP/run2.log" | grep -v rdkafka)"

# The restored instruments were written again under the new model: a member started with it and
# no state file (so it knows no other model; in a group of its own on g1's changelog, so that it
# need not wait for the mock's group coordinator) restores all 40 from the changelog, those the
# 100 new ticks did not touch included.
rm -f "$TMP/s.db" "$TMP/s.db-wal" "$TMP/s.db-shm"
tc_bg "$TC" run --brokers "$BROKERS" --model "$TMP/m2.safetensors" --state "$TMP/s.db" --group g3 \
  --changelog-topic g1.state --output-topic preds2 --http off 2>"$TMP/run3.log"
tc_wait_for 30 grep -q "restored ticks partitions" "$TMP/run3.log" ||
  tc_fail "the third member did not restore: $(grep -v rdkafka "$TMP/run3.log" | tail -n 3)"
tc_stop "$BG_PID" 15
line=$(grep "restored ticks partitions" "$TMP/run3.log")
echo "$line"
echo "$line" | grep -qE "restored ticks partitions \[0@[0-9]+,1@[0-9]+\] .*: 40 instruments \(40 from the changelog" ||
  tc_fail "a member of the new model alone did not find the 40 instruments: $line"

# The reference: one member that predicts the first ticks with the old model, swaps to the new one
# keeping its states, then predicts the rest.
cp "$TMP/m.safetensors" "$TMP/ref.safetensors"
"$TC" feed --brokers "$BROKERS" --topic ref --input "$TMP/first.csv" 2>"$TMP/feedr.log" ||
  tc_fail "feed failed: $(tail -n 3 "$TMP/feedr.log")"
tc_bg "$TC" run --brokers "$BROKERS" --model "$TMP/ref.safetensors" --state "$TMP/ref.db" \
  --group gref --input-topic ref --output-topic pref --http off --on-model-change keep 2>"$TMP/ref.log"
REF_PID=$BG_PID
tc_wait_for 60 sh -c "[ \"\$($X count "$BROKERS" pref)\" -ge 400 ]" ||
  tc_fail "the reference did not predict the first 400 ticks"
cp "$TMP/m2.safetensors" "$TMP/ref.safetensors"
kill -HUP "$REF_PID"
tc_wait_for 10 grep -q "SIGHUP: model .* (kept instrument states)" "$TMP/ref.log" ||
  tc_fail "no reload of the reference: $(grep SIGHUP "$TMP/ref.log")"
"$TC" feed --brokers "$BROKERS" --topic ref --input "$TMP/second.csv" 2>"$TMP/feedr2.log" ||
  tc_fail "feed failed: $(tail -n 3 "$TMP/feedr2.log")"
tc_wait_for 60 sh -c "[ \"\$($X count "$BROKERS" pref)\" -ge 500 ]" ||
  tc_fail "the reference did not predict the last 100 ticks"
tc_stop "$REF_PID" 15
$X dump "$BROKERS" pref "$TMP/ref.csv"
$X check "$BROKERS" preds2 100 "$TMP/ref.csv" - "$TMP/m2.safetensors" >"$TMP/check.txt" ||
  tc_fail "$(cat "$TMP/check.txt")"
cat "$TMP/check.txt"
echo "PASS e2e_restore_wait_keep"
