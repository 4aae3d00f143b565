#!/usr/bin/env bash
# e2e_changelog_fatal.sh: a changelog writer whose producer failed for good stops the daemon with
# exit 1 (docs/STATE.md, "The changelog"), and a restart resumes from the last checkpoint as after
# a crash. The broker refuses the first idempotent producer's id (`tickcast broker
# --fail-requests InitProducerId:CLUSTER_AUTHORIZATION_FAILED`): the daemon's changelog writer is
# the only idempotent client here (the ticks are fed without idempotence), so its producer hits a
# fatal error at start. The daemon must go on consuming and predicting until its first checkpoint
# fails (some or all of the ticks by then), then stop with exit 1 and say why (it once kept
# predicting with every checkpoint failing for ever: nothing was ever stored, so a later restart
# would replay everything). The second daemon, on the same state file and group with a working
# writer, produces every prediction again, equal to replay, and stores a checkpoint of all 300
# ticks.
. "$(dirname "$0")/lib.sh"
X="$PY $ROOT/tests/e2e_crash.py"
DB="$TMP/s.db"
$PY "$ROOT/tests/e2e_run.py" model "$TMP/m.safetensors" 1 16 1
$X gen "$TMP/all.csv" 300 10 7
tc_broker_start --topics ticks:2,predictions:2,tickcast.dlq:1,tickcast.stats:1,g1.state:2 \
  --fail-requests InitProducerId:CLUSTER_AUTHORIZATION_FAILED
grep -q "1 requests will fail: InitProducerId:CLUSTER_AUTHORIZATION_FAILED" "$TMP/broker.log" ||
  tc_fail "the broker did not queue the failure: $(cat "$TMP/broker.log")"

tc_bg "$TC" run --brokers "$BROKERS" --model "$TMP/m.safetensors" --state "$DB" --group g1 \
  --checkpoint-interval 100 --http off -X consumer.session.timeout.ms=6000 2>"$TMP/run.log"
RUN_PID=$BG_PID
tc_wait_for 20 grep -q "Failed to acquire idempotence PID" "$TMP/run.log" ||
  tc_fail "the changelog writer's producer did not fail: $(tail -n 5 "$TMP/run.log")"
"$TC" feed --brokers "$BROKERS" --topic ticks --input "$TMP/all.csv" -X enable.idempotence=false \
  2>"$TMP/feed.log" || tc_fail "feed failed: $(tail -n 3 "$TMP/feed.log")"
tc_wait_for 30 sh -c "! kill -0 $RUN_PID 2>/dev/null" ||
  tc_fail "the daemon still runs 30 s after its changelog writer failed for good: $(grep -c 'checkpoint failed' "$TMP/run.log") failed checkpoints"
rc=0
wait "$RUN_PID" || rc=$?
tc_eq "exit status after the writer failed for good" "$rc" 1
# A new group's partitions start where Kafka says (no committed offset: auto.offset.reset), and
# the restore line says so rather than printing the sentinel -1 as an offset.
grep -q "restored ticks partitions \[0@committed,1@committed\] in" "$TMP/run.log" ||
  tc_fail "restore line: $(grep 'restored ticks' "$TMP/run.log")"
grep -q "the writer's producer failed for good: .*Cluster authorization failed; the changelog writer cannot write again, stopping (exit 1)" "$TMP/run.log" ||
  tc_fail "no line says why the daemon stopped: $(grep -E 'ERROR|checkpoint' "$TMP/run.log" | tail -n 5)"
n1=$(sed -n 's/.*stopped: \([0-9]*\) ticks in, \1 predictions, 0 dead letters.*/\1/p' "$TMP/run.log")
[ -n "$n1" ] && [ "$n1" -ge 1 ] ||
  tc_fail "the daemon did not predict the ticks it took before it stopped: $(grep 'stopped:' "$TMP/run.log")"
"$TC" inspect --state "$DB" --json >"$TMP/inspect1.json"
$PY -c 'import json,sys; o=json.load(open(sys.argv[1])); assert not o["offsets"], o["offsets"]' \
  "$TMP/inspect1.json" || tc_fail "a checkpoint was stored without the changelog: $(cat "$TMP/inspect1.json")"
echo "ok: the daemon predicted $n1 ticks, then stopped with exit 1 at its first checkpoint, storing nothing"

# The restart: a new writer (the broker's failure is used up), the same file and group. Nothing was
# stored, so it starts over; its predictions repeat the first run's with equal values.
"$TC" replay --model "$TMP/m.safetensors" --input "$TMP/all.csv" --output "$TMP/replay.csv" 2>/dev/null
tc_bg "$TC" run --brokers "$BROKERS" --model "$TMP/m.safetensors" --state "$DB" --group g1 \
  --checkpoint-interval 100 --http off 2>"$TMP/run2.log"
RUN_PID=$BG_PID
# Done once a checkpoint stored all 300 ticks (inspect reads the file while the daemon runs).
tc_wait_for 40 tc_offsets_are "$DB" 300 ||
  tc_fail "the restart stored no checkpoint of the 300 ticks (stored: $(tc_offsets_sum "$DB")): $(
    grep -vE "rdkafka" "$TMP/run2.log" | tail -n 12)"
tc_stop "$RUN_PID" 15
tc_eq "exit after SIGTERM (restart)" "$STOP_RC" 0
"$TC" inspect --state "$DB" --json --top 1000 >"$TMP/inspect2.json"
$X check "$BROKERS" predictions 300 "$TMP/replay.csv" "$TMP/inspect2.json" "$TMP/m.safetensors" \
  >"$TMP/check.txt" || tc_fail "$(cat "$TMP/check.txt")"
cat "$TMP/check.txt"
echo "PASS e2e_changelog_fatal"
