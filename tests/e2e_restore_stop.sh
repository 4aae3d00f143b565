#!/usr/bin/env bash
# e2e_restore_stop.sh: SIGTERM while a restore reads a changelog that does not answer. The broker
# answers every Fetch with NOT_LEADER_FOR_PARTITION (`tickcast broker --commands`), which librdkafka
# retries without a word, so the restore's read would run to its 10 s timeout, three times. The
# read gives up as soon as the daemon stops: the member leaves with exit 0 and its shutdown line,
# well inside the 9.5 s watchdog. It once waited for the read, and the watchdog ended it with
# exit 1 ("shutdown did not finish in 9.5 s").
. "$(dirname "$0")/lib.sh"
X="$PY $ROOT/tests/e2e_crash.py"
DB="$TMP/s.db"
$PY "$ROOT/tests/e2e_run.py" model "$TMP/m.safetensors" 1 16 1
$X gen "$TMP/all.csv" 400 40 5
mkfifo "$TMP/ctl"
tc_broker_start --topics ticks:2,predictions:2,tickcast.dlq:1,tickcast.stats:1,g1.state:2 \
  --commands "$TMP/ctl"
tc_changelog_only "$TMP/m.safetensors" "$TMP/all.csv" 400 "$DB"

tc_broker_cmd "fail-requests Fetch:NOT_LEADER_FOR_PARTITION:100000" "100000 requests will fail"
tc_bg "$TC" run --brokers "$BROKERS" --model "$TMP/m.safetensors" --state "$DB" --group g1 \
  --checkpoint-interval 100 --http off 2>"$TMP/run2.log"
RUN_PID=$BG_PID
tc_wait_for 30 grep -q "restoring them" "$TMP/run2.log" ||
  tc_fail "no assignment: $(grep -v rdkafka "$TMP/run2.log" | tail -n 3)"
sleep 2 # the read is under way, and stays so
grep -q "restored ticks partitions" "$TMP/run2.log" &&
  tc_fail "the restore did not hang: $(grep restored "$TMP/run2.log")"
t0=$(date +%s%N)
tc_stop "$RUN_PID" 15
ms=$((($(date +%s%N) - t0) / 1000000))
echo "stopped in $ms ms"
tc_eq "exit after SIGTERM during the restore's read" "$STOP_RC" 0
grep -q "shutdown did not finish" "$TMP/run2.log" && tc_fail "the watchdog ended the shutdown"
grep -q "stopped: " "$TMP/run2.log" || tc_fail "no shutdown line: $(grep -v rdkafka "$TMP/run2.log" | tail -n 3)"
echo "PASS e2e_restore_stop"
