#!/usr/bin/env bash
# e2e_state_lost.sh: THE RULE of daemon/loop/ckpt.h when outputs are lost. The daemon takes a
# snapshot at every --checkpoint-interval and commits it only once the broker acknowledged every
# output it covers. Here every prediction fails for good (the output topic has no leader,
# `tickcast broker --no-leader`, so the producer gives up after message.timeout.ms=300, while
# snapshots are taken every 100 ms, so they are pending when the failures arrive), so no snapshot
# may be committed with offsets past a lost prediction: the state file must end with no stored
# offset and no instrument, while the daemon keeps consuming, counts the delivery errors and the
# given-up or skipped checkpoints, and exits 0 on SIGTERM. Then a daemon with a working producer on the same
# file and group resumes from the start and produces every prediction, equal to replay.
. "$(dirname "$0")/lib.sh"
X="$PY $ROOT/tests/e2e_crash.py"
DB="$TMP/s.db"
$PY "$ROOT/tests/e2e_run.py" model "$TMP/m.safetensors" 1 16 1
$X gen "$TMP/all.csv" 300 10 7
tc_broker_start --topics ticks:2,predictions:2,preds2:2,tickcast.dlq:1,tickcast.stats:1 --no-leader predictions
"$TC" feed --brokers "$BROKERS" --topic ticks --input "$TMP/all.csv" 2>"$TMP/feed.log" ||
  tc_fail "feed failed: $(tail -n 3 "$TMP/feed.log")"
metric() { curl -s "http://127.0.0.1:$PORT/metrics" | sed -n "s/^tickcast_$1 //p"; }

tc_bg "$TC" run --brokers "$BROKERS" --model "$TMP/m.safetensors" --state "$DB" --group g1 \
  --checkpoint-interval 100 --http 127.0.0.1:0 -X producer.message.timeout.ms=300 \
  -X consumer.session.timeout.ms=6000 \
  --log-level debug 2>"$TMP/run.log"
RUN_PID=$BG_PID
tc_wait_for 10 grep -q "http on" "$TMP/run.log" || tc_fail "no http line"
PORT=$(sed -n 's/.*http on .* (port \([0-9]*\)).*/\1/p' "$TMP/run.log" | head -n 1)
tc_wait_for 40 sh -c "[ \"\$(curl -s http://127.0.0.1:$PORT/metrics | sed -n 's/^tickcast_delivery_errors_total //p')\" -ge 300 ]" ||
  tc_fail "expected 300 delivery errors: $(curl -s "http://127.0.0.1:$PORT/metrics" | grep -E 'delivery|ticks_in')"
sleep 1 # several more checkpoint intervals after the failures
skipped=$(metric checkpoints_skipped_total)
[ "$skipped" -ge 1 ] || tc_fail "no skipped checkpoint counted ($skipped)"
tc_stop "$RUN_PID" 15
tc_eq "exit after SIGTERM" "$STOP_RC" 0
grep -q "checkpoint given up: a delivery it covers failed" "$TMP/run.log" ||
  tc_fail "no pending snapshot was given up (the path under test did not run)"
# The shutdown wrote no final checkpoint, and its revoke says so (it once said "after a final
# checkpoint" and counted a handoff).
grep -q "revoked ticks partitions \[[0-9,]*\] without a final checkpoint" "$TMP/run.log" ||
  tc_fail "the shutdown's revoke: $(grep revoked "$TMP/run.log")"
! grep -q "after a final checkpoint" "$TMP/run.log" || tc_fail "a revoke claimed a final checkpoint"
"$TC" inspect --state "$DB" --json >"$TMP/inspect.json"
$PY - "$TMP/inspect.json" <<'PYEOF' || tc_fail "state file covers lost predictions: $(cat "$TMP/inspect.json")"
import json, sys
o = json.load(open(sys.argv[1]))
assert not o["offsets"], o["offsets"]
assert o["instruments"] == 0, o["instruments"]
PYEOF
echo "ok: 300 predictions lost, $skipped checkpoints skipped or given up, state file holds no offset and no instrument"

# A working producer on the same file and group: it starts from the beginning (nothing stored)
# and produces all 300 predictions, equal to replay, to a topic that has a leader. (The mock
# assigns the group's partitions to it only once the first member's session timed out, hence the
# short session timeout above; see docs/KAFKA.md.)
"$TC" replay --model "$TMP/m.safetensors" --input "$TMP/all.csv" --output "$TMP/replay.csv" 2>/dev/null
tc_bg "$TC" run --brokers "$BROKERS" --model "$TMP/m.safetensors" --state "$DB" --group g1 \
  --checkpoint-interval 100 --http off --output-topic preds2 2>"$TMP/run2.log"
RUN_PID=$BG_PID
for _ in $(seq 60); do [ "$($X count "$BROKERS" preds2)" -ge 300 ] && break; sleep 0.5; done
tc_stop "$RUN_PID" 15
tc_eq "exit after SIGTERM (second run)" "$STOP_RC" 0
"$TC" inspect --state "$DB" --json --top 1000 >"$TMP/inspect2.json"
$X check "$BROKERS" preds2 300 "$TMP/replay.csv" "$TMP/inspect2.json" "$TMP/m.safetensors" \
  >"$TMP/check.txt" || tc_fail "$(cat "$TMP/check.txt")"
cat "$TMP/check.txt"
echo "PASS e2e_state_lost"
