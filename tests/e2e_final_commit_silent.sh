#!/usr/bin/env bash
# e2e_final_commit_silent.sh: SIGTERM while the broker answers nothing in time ('rtt 60000'), on a
# member without a changelog (--changelog-topic off) that takes no checkpoint before it: its final
# checkpoint goes to the state file alone and succeeds, and the final commit of the offsets it
# stored gets no answer. The member says
# so and exits 0 within the shutdown's bound. The next member (the broker answering again)
# resumes from the state file, whose offsets are ahead of the group's committed ones: every
# prediction, those of ticks fed afterwards too, equals replay's (no tick lost, none applied
# twice).
. "$(dirname "$0")/lib.sh"
X="$PY $ROOT/tests/e2e_crash.py"
DB="$TMP/s.db"
tc_two_phase 9
tc_member "$TMP/run1.log" --stats-interval 86400000 --changelog-topic off \
  --checkpoint-interval 3600000
tc_wait_for 60 sh -c "[ \"\$($X count "$BROKERS" predictions)\" -ge 400 ]" ||
  tc_fail "the first member did not predict 400 ticks: $(grep -v rdkafka "$TMP/run1.log" | tail -n 3)"

tc_broker_cmd "rtt 60000" "responses delayed by 60000 ms"
tc_stop_bounded "$TMP/run1.log" "against a silent broker"
grep -q "final commit: no answer in [0-9]* ms; the final checkpoint holds the offsets" \
  "$TMP/run1.log" || tc_fail "no line on the final commit: $(grep -v rdkafka "$TMP/run1.log" | tail -n 4)"
grep -q "shutdown: checkpoint of 40 instruments" "$TMP/run1.log" ||
  tc_fail "no final checkpoint of 40: $(grep -v rdkafka "$TMP/run1.log" | grep checkpoint | tail -n 2)"
stored=$("$TC" inspect --state "$DB" --json |
  $PY -c 'import json,sys; s=json.load(sys.stdin); print(s["instruments"], sum(o["next_offset"] for o in s["offsets"]))')
tc_eq "instruments and offsets in the state file after the first member" "$stored" "40 400"

tc_broker_cmd "rtt 0" "responses delayed by 0 ms"
tc_member "$TMP/run2.log" --stats-interval 86400000 --changelog-topic off
tc_feed_second 600 "$TMP/run2.log"
tc_stop "$RUN_PID" 15
tc_eq "the next member's exit" "$STOP_RC" 0
tc_check_replay 600
echo "PASS e2e_final_commit_silent"
