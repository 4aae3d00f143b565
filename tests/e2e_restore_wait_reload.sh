#!/usr/bin/env bash
# e2e_restore_wait_reload.sh: a model swapped in (SIGHUP, --on-model-change reset) while partitions
# wait for an unreadable changelog (docs/STATE.md, "Restore at an assignment", step 7). The retry
# then reads the changelog but finds no checkpoint of the new model (records of another model
# count as absent), so the partitions resume where the group committed, with zero state, as every
# instrument restarts under a reset: the ticks fed meanwhile are predicted exactly as a replay of
# them alone with the new model. The broker fails four Fetch requests (the restore's three tries
# and the first retry, which waits on for 10 s). A first version sought to "the committed offset" (a logical offset that
# librdkafka 2.0.2's seek refuses), and the partitions waited for good.
. "$(dirname "$0")/lib.sh"
X="$PY $ROOT/tests/e2e_crash.py"
DB="$TMP/s.db"
$PY "$ROOT/tests/e2e_run.py" model "$TMP/m.safetensors" 1 16 1
$PY "$ROOT/tests/e2e_run.py" model "$TMP/m2.safetensors" 1 16 2
$X gen "$TMP/all.csv" 500 40 3
head -n 401 "$TMP/all.csv" >"$TMP/first.csv"
{ head -n 1 "$TMP/all.csv"; tail -n +402 "$TMP/all.csv"; } >"$TMP/second.csv"
mkfifo "$TMP/ctl"
tc_broker_start --topics ticks:2,predictions:2,preds2:2,tickcast.dlq:1,tickcast.stats:1,g1.state:2 \
  --commands "$TMP/ctl"
tc_changelog_only "$TMP/m.safetensors" "$TMP/first.csv" 400 "$DB"

echo "fail-requests Fetch:UNKNOWN:4" >"$TMP/ctl"
tc_wait_for 10 grep -q "4 requests will fail" "$TMP/broker.log" ||
  tc_fail "the broker did not take the command: $(tail -n 3 "$TMP/broker.log")"
cp "$TMP/m.safetensors" "$TMP/live.safetensors"
tc_bg "$TC" run --brokers "$BROKERS" --model "$TMP/live.safetensors" --state "$DB" --group g1 \
  --output-topic preds2 --checkpoint-interval 100 --http off 2>"$TMP/run2.log"
RUN_PID=$BG_PID
tc_wait_for 60 grep -q "wait, paused" "$TMP/run2.log" ||
  tc_fail "the partitions did not wait: $(grep -v rdkafka "$TMP/run2.log" | tail -n 5)"
cp "$TMP/m2.safetensors" "$TMP/live.safetensors"
kill -HUP "$RUN_PID"
tc_wait_for 10 grep -q "SIGHUP: model .* (reset instrument states)" "$TMP/run2.log" ||
  tc_fail "no reload: $(grep SIGHUP "$TMP/run2.log")"
# The first retry (5 s) gets the fourth failure and the partitions wait on (no other client
# fetches before this line).
tc_wait_for 20 grep -q "wait, paused, for their state in changelog g1.state: restoring them again in 10 s" "$TMP/run2.log" ||
  tc_fail "the first retry did not fail: $(grep -E 'wait|restor' "$TMP/run2.log" | grep -v rdkafka | tail -n 3)"
"$TC" feed --brokers "$BROKERS" --topic ticks --input "$TMP/second.csv" 2>"$TMP/feed2.log" ||
  tc_fail "feed failed: $(tail -n 3 "$TMP/feed2.log")"
tc_wait_for 60 sh -c "[ \"\$($X count "$BROKERS" preds2)\" -ge 100 ]" ||
  tc_fail "the 100 new ticks were not predicted: $(grep -E 'wait|restor|seek' "$TMP/run2.log" | grep -v rdkafka | tail -n 5)"
tc_stop "$RUN_PID" 15
tc_eq "second member's exit" "$STOP_RC" 0
line=$(grep "restored ticks partitions" "$TMP/run2.log")
echo "$line"
echo "$line" | grep -qE "restored ticks partitions \[0@[0-9]+,1@[0-9]+\] .*: 0 instruments" ||
  tc_fail "the retry did not resume both partitions at their offsets with zero state: $line"
"$TC" replay --model "$TMP/m2.safetensors" --input "$TMP/second.csv" --output "$TMP/replay.csv" 2>/dev/null
$X check "$BROKERS" preds2 100 "$TMP/replay.csv" - "$TMP/m2.safetensors" >"$TMP/check.txt" ||
  tc_fail "$(cat "$TMP/check.txt")"
cat "$TMP/check.txt"
echo "PASS e2e_restore_wait_reload"
