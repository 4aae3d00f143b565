#!/usr/bin/env bash
# e2e_changelog_unreadable.sh: a changelog that cannot be read to its end in any of the restore's
# tries is not used at all (docs/STATE.md, "Restore at an assignment"): a half-read changelog may
# hold a partition's marker whose records retention has dropped in part, and only a complete read
# gives the low watermarks that tell. A first member writes 2000 instruments' states (over 1 MB,
# several fetches of the reader's 256 KiB) to the changelog and stops; its state file is deleted.
# Then the broker fails every second Fetch request (`tickcast broker --commands`, `fail-requests
# Fetch:NO_ERROR,Fetch:UNKNOWN`, three times), so each of the second member's three reads gets
# part of the changelog and then an error. It must restore from the state file alone (here none:
# zero instruments, resuming at the group's committed offsets), as its log says; it once logged
# that and still used the last try's half-read records (hundreds of instruments "from the
# changelog", whatever their marker said).
. "$(dirname "$0")/lib.sh"
X="$PY $ROOT/tests/e2e_crash.py"
DB="$TMP/s.db"
$PY "$ROOT/tests/e2e_run.py" model "$TMP/m.safetensors" 1 64 1
$X gen "$TMP/all.csv" 4000 2000 11
mkfifo "$TMP/ctl"
tc_broker_start --topics ticks:2,predictions:2,tickcast.dlq:1,tickcast.stats:1,g1.state:1 \
  --commands "$TMP/ctl"
"$TC" feed --brokers "$BROKERS" --topic ticks --input "$TMP/all.csv" 2>"$TMP/feed.log" ||
  tc_fail "feed failed: $(tail -n 3 "$TMP/feed.log")"

tc_bg "$TC" run --brokers "$BROKERS" --model "$TMP/m.safetensors" --state "$DB" --group g1 \
  --checkpoint-interval 100 --http off -X consumer.session.timeout.ms=6000 2>"$TMP/run1.log"
RUN_PID=$BG_PID
tc_wait_for 60 sh -c "[ \"\$($X count "$BROKERS" predictions)\" -ge 4000 ]" ||
  tc_fail "the first member did not predict 4000 ticks"
tc_stop "$RUN_PID" 15
tc_eq "first member's exit" "$STOP_RC" 0
grep -q "revoked ticks partitions \[0,1\] after a final checkpoint" "$TMP/run1.log" ||
  tc_fail "no final checkpoint: $(grep revoked "$TMP/run1.log")"
rm -f "$DB" "$DB-wal" "$DB-shm"

echo "fail-requests Fetch:NO_ERROR,Fetch:UNKNOWN,Fetch:NO_ERROR,Fetch:UNKNOWN,Fetch:NO_ERROR,Fetch:UNKNOWN" >"$TMP/ctl"
tc_wait_for 10 grep -q "3 requests will fail" "$TMP/broker.log" ||
  tc_fail "the broker did not take the command: $(tail -n 3 "$TMP/broker.log")"
tc_bg "$TC" run --brokers "$BROKERS" --model "$TMP/m.safetensors" --state "$DB" --group g1 \
  --checkpoint-interval 100 --http off 2>"$TMP/run2.log"
RUN_PID=$BG_PID
tc_wait_for 60 grep -q "restored ticks partitions" "$TMP/run2.log" ||
  tc_fail "the second member restored nothing in 60 s: $(grep -v rdkafka "$TMP/run2.log" | tail -n 5)"
tc_stop "$RUN_PID" 15
tc_eq "second member's exit" "$STOP_RC" 0
tries=$(grep -c "Fetch from broker 1 failed: Unknown broker error; trying again" "$TMP/run2.log" || true)
tc_eq "failed reads tried again" "$tries" 2
grep -q "Fetch from broker 1 failed: Unknown broker error; restoring from the state file alone" "$TMP/run2.log" ||
  tc_fail "the third read did not fail part-way: $(grep -E 'changelog|restor' "$TMP/run2.log" | grep -v rdkafka)"
line=$(grep "restored ticks partitions" "$TMP/run2.log")
echo "$line"
echo "$line" | grep -q ": 0 instruments (0 from the changelog, 0 from the state file)" ||
  tc_fail "a changelog read that failed was used: $line"
echo "PASS e2e_changelog_unreadable"
