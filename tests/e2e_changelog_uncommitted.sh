#!/usr/bin/env bash
# e2e_changelog_uncommitted.sh: a member checkpoints its partitions to the changelog and dies
# before the group commits their offsets (here its auto-commit is made rare, and it is killed);
# the next member runs elsewhere (no state file) and cannot read the changelog (the broker fails
# its fetches, `tickcast broker --commands`). Its partitions have no committed offset, but their
# changelog partitions hold records, so their state exists and only the changelog has it: they
# wait, paused, instead of starting where auto.offset.reset says with zero state, and once the
# changelog can be read they resume from its checkpoint. Ticks fed meanwhile are predicted as
# replay does. They once started at the end of the partitions (auto.offset.reset=latest here)
# with zero state, and the new ticks' predictions were out of step.
. "$(dirname "$0")/lib.sh"
X="$PY $ROOT/tests/e2e_crash.py"
DB="$TMP/s.db"
$PY "$ROOT/tests/e2e_run.py" model "$TMP/m.safetensors" 1 16 1
$X gen "$TMP/all.csv" 600 40 13
head -n 401 "$TMP/all.csv" >"$TMP/first.csv"
{ head -n 1 "$TMP/all.csv"; tail -n +402 "$TMP/all.csv"; } >"$TMP/second.csv"
mkfifo "$TMP/ctl"
tc_broker_start --topics ticks:2,predictions:2,tickcast.dlq:1,tickcast.stats:1,g1.state:2 \
  --commands "$TMP/ctl"
"$TC" feed --brokers "$BROKERS" --topic ticks --input "$TMP/first.csv" 2>"$TMP/feed.log" ||
  tc_fail "feed failed: $(tail -n 3 "$TMP/feed.log")"
member() { # log, more flags
  local log=$1
  shift
  tc_bg "$TC" run --brokers "$BROKERS" --model "$TMP/m.safetensors" --state "$DB" --group g1 \
    --checkpoint-interval 100 --http off -X consumer.session.timeout.ms=6000 "$@" 2>"$log"
  RUN_PID=$BG_PID
}
cat >"$TMP/offsets.sh" <<EOF
"$TC" inspect --state "$DB" --json 2>/dev/null |
  $PY -c 'import json,sys; print(sum(o["next_offset"] for o in json.load(sys.stdin)["offsets"]))'
EOF

member "$TMP/run1.log" -X consumer.auto.commit.interval.ms=600000
tc_wait_for 60 sh -c "[ \"\$($X count "$BROKERS" predictions)\" -ge 400 ]" ||
  tc_fail "the first member did not predict 400 ticks"
# The state file is written after the changelog: once it holds all 400 offsets, so does the
# changelog.
tc_wait_for 20 sh -c "[ \"\$(sh $TMP/offsets.sh)\" = 400 ]" || tc_fail "no checkpoint of all 400 ticks"
kill -KILL "$RUN_PID"
wait "$RUN_PID" 2>/dev/null || true
tc_forget "$RUN_PID"
rm -f "$DB" "$DB-wal" "$DB-shm" # the next member runs on another machine

echo "fail-requests Fetch:UNKNOWN:3" >"$TMP/ctl"
tc_wait_for 10 grep -q "3 requests will fail" "$TMP/broker.log" ||
  tc_fail "the broker did not take the command: $(tail -n 3 "$TMP/broker.log")"
member "$TMP/run2.log" -X consumer.auto.offset.reset=latest
tc_wait_for 60 grep -q "wait, paused, for their state in changelog" "$TMP/run2.log" ||
  tc_fail "the partitions did not wait: $(grep -v rdkafka "$TMP/run2.log" | tail -n 5)"
for p in 0 1; do
  grep -q "ticks/$p: the state file has no checkpoint of it and the group no committed offset, but its changelog partition holds records" "$TMP/run2.log" ||
    tc_fail "ticks/$p: no line on why it waits: $(grep -v rdkafka "$TMP/run2.log" | tail -n 5)"
done
"$TC" feed --brokers "$BROKERS" --topic ticks --input "$TMP/second.csv" 2>"$TMP/feed2.log" ||
  tc_fail "the second feed failed: $(tail -n 3 "$TMP/feed2.log")"
tc_wait_for 60 sh -c "[ \"\$($X count "$BROKERS" predictions)\" -ge 600 ]" ||
  tc_fail "the new ticks were not predicted: $(grep -v rdkafka "$TMP/run2.log" | tail -n 5)"
grep -q "restored ticks partitions \[0@[0-9]*,1@[0-9]*\]" "$TMP/run2.log" ||
  tc_fail "no restore from the changelog: $(grep restored "$TMP/run2.log")"
tc_stop "$RUN_PID" 15
tc_eq "the next member's exit" "$STOP_RC" 0
"$TC" replay --model "$TMP/m.safetensors" --input "$TMP/all.csv" --output "$TMP/replay.csv" 2>/dev/null
$X check "$BROKERS" predictions 600 "$TMP/replay.csv" - "$TMP/m.safetensors" \
  >"$TMP/check.txt" || tc_fail "$(cat "$TMP/check.txt")"
cat "$TMP/check.txt"
echo "PASS e2e_changelog_uncommitted"
