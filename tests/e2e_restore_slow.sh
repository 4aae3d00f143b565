#!/usr/bin/env bash
# e2e_restore_slow.sh: a restore on a broker that answers every request 1.5 s late (`tickcast
# broker --commands`, 'rtt 1500'). A member without a state file takes over the partitions of a
# member that checkpointed 400 ticks of 40 instruments; its restore's metadata, watermark and
# committed-offset requests each wait longer than a second. It restores all 40 instruments from
# the changelog (the embedded broker returns one record batch per partition a Fetch, so the read
# takes about 22 round trips: the restore took 45-50 s), and every prediction after it equals a
# replay. The requests were once asked again every second, each dropping the answer of the one
# before, so none was ever answered; and a read was given up after 10 s in all, however it progressed: either way the
# partitions waited for the changelog, tried again and again, for good.
. "$(dirname "$0")/lib.sh"
tc_first_gone 7

tc_broker_cmd "rtt 1500" "responses delayed by 1500 ms"
tc_member "$TMP/run2.log" -X consumer.session.timeout.ms=45000
tc_wait_for 90 grep -q "restored ticks partitions" "$TMP/run2.log" ||
  tc_fail "no restore: $(grep -E 'wait|restor' "$TMP/run2.log" | grep -v rdkafka | tail -n 4)"
grep "restored ticks partitions" "$TMP/run2.log" | head -n 1
grep -q "restored ticks partitions.*: 40 instruments" "$TMP/run2.log" ||
  tc_fail "the restore did not find 40 instruments: $(grep 'restored ticks' "$TMP/run2.log")"
if grep -q "wait, paused" "$TMP/run2.log"; then
  tc_fail "partitions waited: $(grep 'wait, paused' "$TMP/run2.log" | head -n 2)"
fi
echo "rtt 0" >"$TMP/ctl"
tc_feed_second 600 "$TMP/run2.log"
tc_stop "$RUN_PID" 15
tc_eq "second member's exit" "$STOP_RC" 0
tc_check_replay 600
echo "PASS e2e_restore_slow"
