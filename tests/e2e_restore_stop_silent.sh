#!/usr/bin/env bash
# e2e_restore_stop_silent.sh: SIGTERM while a restore's retry waits on a broker that answers
# nothing in time. The partitions of a member without a state file wait for an unreadable
# changelog (`tickcast broker --commands`: every Fetch fails); then every answer is delayed a
# minute ('rtt 60000') and the member (with a 45 s session, so that the group does not drop it
# meanwhile, which would end its close early) is stopped just after its retry began on the pool.
# The retry's metadata, watermark and committed-offset requests are asked in slices (a second,
# then two) and end at the stop, so the member exits 0 within the shutdown's bound. The retry
# once sat in one 10 s metadata request, which the end of the loop waits for, and the watchdog
# ended the member with exit 1 ("shutdown did not finish in 9.5 s", 9583 ms).
. "$(dirname "$0")/lib.sh"
tc_first_gone 5

tc_broker_cmd "fail-requests Fetch:UNKNOWN:1000" "1000 requests will fail"
tc_member "$TMP/run2.log" -X consumer.session.timeout.ms=45000
tc_wait_for 60 grep -q "wait, paused, for their state in changelog g1.state: restoring them again in 5 s" \
  "$TMP/run2.log" || tc_fail "the partitions did not wait: $(grep -v rdkafka "$TMP/run2.log" | tail -n 5)"
echo "rtt 60000" >"$TMP/ctl"
sleep 5.3 # the retry is on the pool, asking the broker
tc_stop_bounded "$TMP/run2.log" "during the retry"
echo "PASS e2e_restore_stop_silent"
