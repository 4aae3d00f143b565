#!/usr/bin/env bash
# e2e_restore_wait_keep.sh: a model swapped in with --on-model-change keep (SIGHUP) while
# partitions wait for an unreadable changelog (docs/STATE.md, "Restore at an assignment", step 7,
# and "Model binding"). The states in the changelog are the old model's, which the new one carries
# on, so the retry restores them, as an uninterrupted member with the same swap would have them:
# the ticks fed meanwhile are predicted exactly as by a reference member that predicted the first
# ticks with the old model, then swapped to the new one keeping its states. A first version took
# the changelog's records for another model's and resumed both partitions where the group
# committed with zero state. The broker fails four Fetch requests (the restore's three tries and,
# as a rule, the first retry).
. "$(dirname "$0")/lib.sh"
X="$PY $ROOT/tests/e2e_crash.py"
DB="$TMP/s.db"
$PY "$ROOT/tests/e2e_run.py" model "$TMP/m.safetensors" 1 16 1
$PY "$ROOT/tests/e2e_run.py" model "$TMP/m2.safetensors" 1 16 2
$X gen "$TMP/all.csv" 500 40 3
head -n 401 "$TMP/all.csv" >"$TMP/first.csv"
{ head -n 1 "$TMP/all.csv"; tail -n +402 "$TMP/all.csv"; } >"$TMP/second.csv"
mkfifo "$TMP/ctl"
tc_broker_start --topics ticks:2,predictions:2,preds2:2,ref:2,pref:2,tickcast.dlq:1,tickcast.stats:1,g1.state:2,gref.state:2 \
  --commands "$TMP/ctl"
tc_changelog_only "$TMP/m.safetensors" "$TMP/first.csv" 400 "$DB"

echo "fail-requests Fetch:UNKNOWN:4" >"$TMP/ctl"
tc_wait_for 10 grep -q "4 requests will fail" "$TMP/broker.log" ||
  tc_fail "the broker did not take the command: $(tail -n 3 "$TMP/broker.log")"
cp "$TMP/m.safetensors" "$TMP/live.safetensors"
tc_bg "$TC" run --brokers "$BROKERS" --model "$TMP/live.safetensors" --state "$DB" --group g1 \
  --output-topic preds2 --checkpoint-interval 100 --http off --on-model-change keep 2>"$TMP/run2.log"
RUN_PID=$BG_PID
tc_wait_for 60 grep -q "wait, paused" "$TMP/run2.log" ||
  tc_fail "the partitions did not wait: $(grep -v rdkafka "$TMP/run2.log" | tail -n 5)"
cp "$TMP/m2.safetensors" "$TMP/live.safetensors"
kill -HUP "$RUN_PID"
tc_wait_for 10 grep -q "SIGHUP: model .* (kept instrument states)" "$TMP/run2.log" ||
  tc_fail "no reload: $(grep SIGHUP "$TMP/run2.log")"
# The retries (the first 5 s after the wait began, in all likelihood failed by the fourth
# failure) come after the swap.
tc_wait_for 30 grep -q "restored ticks partitions" "$TMP/run2.log" ||
  tc_fail "no retry restored the partitions: $(grep -E 'wait|restor' "$TMP/run2.log" | grep -v rdkafka | tail -n 3)"
hup=$(grep -n "SIGHUP: model" "$TMP/run2.log" | cut -d: -f1)
got=$(grep -n "restored ticks partitions" "$TMP/run2.log" | cut -d: -f1)
[ "$hup" -lt "$got" ] || tc_fail "the partitions were restored before the swap (lines $got, $hup)"
"$TC" feed --brokers "$BROKERS" --topic ticks --input "$TMP/second.csv" 2>"$TMP/feed2.log" ||
  tc_fail "feed failed: $(tail -n 3 "$TMP/feed2.log")"
tc_wait_for 60 sh -c "[ \"\$($X count "$BROKERS" preds2)\" -ge 100 ]" ||
  tc_fail "the 100 new ticks were not predicted: $(grep -E 'wait|restor|seek' "$TMP/run2.log" | grep -v rdkafka | tail -n 5)"
tc_stop "$RUN_PID" 15
tc_eq "second member's exit" "$STOP_RC" 0
line=$(grep "restored ticks partitions" "$TMP/run2.log")
echo "$line"
echo "$line" | grep -qE "restored ticks partitions \[0@[0-9]+,1@[0-9]+\] .*: 40 instruments \(40 from the changelog" ||
  tc_fail "the retry did not restore the 40 instruments from the changelog: $line"
grep -q "changelog g1.state: [0-9]* records and markers of the models swapped out with --on-model-change keep taken" \
  "$TMP/run2.log" || tc_fail "no line on the earlier model's records: $(grep changelog "$TMP/run2.log" | grep -v rdkafka)"

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
