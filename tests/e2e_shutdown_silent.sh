#!/usr/bin/env bash
# e2e_shutdown_silent.sh: SIGTERM while the broker answers nothing in time (`tickcast broker
# --commands`, 'rtt 60000': every answer comes a minute late). The shutdown's steps (flush, final
# checkpoint, commit, leaving the group) share one bound and each gives up at its share, so the
# member says what it could not do and exits 0 within 8.5 s, before the 9.5 s watchdog. Then the
# broker answers again and the next member resumes from what the last one managed to store:
# every prediction, those of ticks fed afterwards too, equals replay's (no tick lost, none applied
# twice). The shutdown once waited for the consumer's close (and, with nothing to flush, for a
# changelog write's acknowledgements, 5 s for its records and 5 more for its markers) until the
# watchdog ended it with exit 1.
. "$(dirname "$0")/lib.sh"
X="$PY $ROOT/tests/e2e_crash.py"
DB="$TMP/s.db"
tc_two_phase 7
tc_member "$TMP/run1.log" --stats-interval 86400000
tc_wait_for 60 sh -c "[ \"\$($X count "$BROKERS" predictions)\" -ge 400 ]" ||
  tc_fail "the first member did not predict 400 ticks: $(grep -v rdkafka "$TMP/run1.log" | tail -n 3)"
sleep 1 # checkpoints go on

tc_broker_cmd "rtt 60000" "responses delayed by 60000 ms"
sleep 1.5 # a checkpoint's changelog records wait for their answers
tc_stop_bounded "$TMP/run1.log" "against a silent broker"
grep -q "leaving the group: no answer in [0-9]* ms" "$TMP/run1.log" ||
  tc_fail "no line on leaving the group: $(grep -v rdkafka "$TMP/run1.log" | tail -n 4)"
# Every output was acknowledged before the broker went silent (no stats message is due), so the
# flush passes and the final checkpoint's changelog write gives up at its share.
grep -q "shutdown: checkpoint failed: changelog g1.state: not acknowledged in time" "$TMP/run1.log" ||
  tc_fail "no line on the final checkpoint: $(grep -v rdkafka "$TMP/run1.log" | tail -n 4)"
! grep -q "still in queue or transit" "$TMP/run1.log" ||
  tc_fail "a producer was destroyed with messages unpurged: $(grep "still in queue" "$TMP/run1.log")"

tc_broker_cmd "rtt 0" "responses delayed by 0 ms"
tc_member "$TMP/run2.log" --stats-interval 86400000
tc_feed_second 600 "$TMP/run2.log"
tc_stop "$RUN_PID" 15
tc_eq "the next member's exit" "$STOP_RC" 0
tc_check_replay 600
stored=$("$TC" inspect --state "$DB" --json |
  $PY -c 'import json,sys; s=json.load(sys.stdin); print(s["instruments"], sum(o["next_offset"] for o in s["offsets"]))')
tc_eq "instruments and offsets in the state file" "$stored" "40 600"
echo "PASS e2e_shutdown_silent"
