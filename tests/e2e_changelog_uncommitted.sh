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
tc_two_phase 13
tc_killed_uncommitted 400

# Every fetch fails until the partitions wait (how many fetches each of the restore's tries makes
# depends on timing), then none does.
tc_broker_cmd "fail-requests Fetch:UNKNOWN:100000" "100000 requests will fail"
tc_member "$TMP/run2.log" -X consumer.auto.offset.reset=latest
tc_wait_for 60 grep -q "wait, paused, for their state in changelog" "$TMP/run2.log" ||
  tc_fail "the partitions did not wait: $(grep -v rdkafka "$TMP/run2.log" | tail -n 5)"
tc_broker_cmd "clear-requests Fetch" "queued failures dropped: Fetch"
for p in 0 1; do
  grep -q "ticks/$p: the state file has no checkpoint of it and the group no committed offset, but its changelog partition holds records" "$TMP/run2.log" ||
    tc_fail "ticks/$p: no line on why it waits: $(grep -v rdkafka "$TMP/run2.log" | tail -n 5)"
done
tc_feed_second 600 "$TMP/run2.log"
grep -q "restored ticks partitions \[0@[0-9]*,1@[0-9]*\]" "$TMP/run2.log" ||
  tc_fail "no restore from the changelog: $(grep restored "$TMP/run2.log")"
tc_stop "$RUN_PID" 15
tc_eq "the next member's exit" "$STOP_RC" 0
tc_check_replay 600
echo "PASS e2e_changelog_uncommitted"
