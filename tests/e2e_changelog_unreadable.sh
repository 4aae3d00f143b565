#!/usr/bin/env bash
# e2e_changelog_unreadable.sh: a changelog that cannot be read to its end in any of the restore's
# tries is not used at all (docs/STATE.md, "Restore at an assignment"): a half-read changelog may
# hold a partition's marker whose records retention has dropped in part, and only a complete read
# gives the low watermarks that tell. Nor are the partitions started from zero state when the
# state file lacks them and the group has committed offsets for them: their state is in the
# changelog alone, so they wait, assigned and paused, and are restored again until a read
# succeeds. A first member writes 2000 instruments' states (over 1 MB, several fetches of the
# reader's 256 KiB) to the changelog and stops; its state file is deleted. Then the broker fails
# every second Fetch request (`tickcast broker --commands`, `fail-requests
# Fetch:NO_ERROR,Fetch:UNKNOWN`, three times), so each of a member's three reads gets part of the
# changelog and then an error. The second member's partitions wait, and it is stopped while they
# do (it must store nothing of them); the third member's wait too, and ticks fed meanwhile are not
# predicted until its retry (5 s later, when the broker no longer fails) has restored them from
# the changelog: every prediction equals replay's. It once logged that it restored from the state
# file alone and still used the last try's half-read records (hundreds of instruments "from the
# changelog", whatever their marker said); then it resumed the partitions with zero state at the
# committed offsets, and the new ticks' predictions were out of step.
. "$(dirname "$0")/lib.sh"
X="$PY $ROOT/tests/e2e_crash.py"
DB="$TMP/s.db"
$PY "$ROOT/tests/e2e_run.py" model "$TMP/m.safetensors" 1 64 1
$X gen "$TMP/all.csv" 5000 2000 11
head -n 4001 "$TMP/all.csv" >"$TMP/first.csv"
{ head -n 1 "$TMP/all.csv"; tail -n +4002 "$TMP/all.csv"; } >"$TMP/second.csv"
mkfifo "$TMP/ctl"
tc_broker_start --topics ticks:2,predictions:2,tickcast.dlq:1,tickcast.stats:1,g1.state:1 \
  --commands "$TMP/ctl"
tc_changelog_only "$TMP/m.safetensors" "$TMP/first.csv" 4000 "$DB"

FAILS="fail-requests Fetch:NO_ERROR,Fetch:UNKNOWN,Fetch:NO_ERROR,Fetch:UNKNOWN,Fetch:NO_ERROR,Fetch:UNKNOWN"
tc_broker_cmd "$FAILS" "3 requests will fail"
# A member stopped while its partitions wait checkpoints nothing of them: no offsets in its file,
# and no marker in the changelog (an empty one would tell the next restore that the partition has
# no instruments).
tc_bg "$TC" run --brokers "$BROKERS" --model "$TMP/m.safetensors" --state "$DB" --group g1 \
  --checkpoint-interval 100 --http off 2>"$TMP/run2.log"
RUN_PID=$BG_PID
tc_wait_for 60 grep -qE "restored ticks partitions|wait, paused" "$TMP/run2.log" ||
  tc_fail "the second member neither restored nor waited in 60 s: $(grep -v rdkafka "$TMP/run2.log" | tail -n 5)"
tc_stop "$RUN_PID" 15
tc_eq "second member's exit" "$STOP_RC" 0
stored=$("$TC" inspect --state "$DB" --json |
  $PY -c 'import json,sys; print(len(json.load(sys.stdin)["offsets"]))')
tc_eq "offsets stored by the member stopped while waiting" "$stored" 0

echo "$FAILS" >"$TMP/ctl"
tc_wait_for 10 sh -c "[ \"\$(grep -c '3 requests will fail' "$TMP/broker.log")\" = 2 ]" ||
  tc_fail "the broker did not take the second command: $(tail -n 3 "$TMP/broker.log")"
tc_bg "$TC" run --brokers "$BROKERS" --model "$TMP/m.safetensors" --state "$DB" --group g1 \
  --checkpoint-interval 100 --http 127.0.0.1:0 2>"$TMP/run3.log"
RUN_PID=$BG_PID
tc_wait_for 10 grep -q "http on" "$TMP/run3.log" || tc_fail "no http line: $(tail -n 3 "$TMP/run3.log")"
URL="http://127.0.0.1:$(sed -n 's/.*http on .* (port \([0-9]*\)).*/\1/p' "$TMP/run3.log" | head -n 1)"
awaiting() { curl -s "$URL/metrics" | sed -n 's/^tickcast_partitions_awaiting_state //p'; }
tc_wait_for 60 grep -qE "restored ticks partitions|wait, paused" "$TMP/run3.log" ||
  tc_fail "the third member neither restored nor waited in 60 s: $(grep -v rdkafka "$TMP/run3.log" | tail -n 5)"
tc_eq "tickcast_partitions_awaiting_state while they wait" "$(awaiting)" 2
tc_feed_second 5000 "$TMP/run3.log"
tc_eq "tickcast_partitions_awaiting_state once restored" "$(awaiting)" 0
# tickcast_restore_seconds_total: the restore that left the partitions waiting (its three reads)
# and the retry that restored them.
waited=$(sed -n 's/.*restoring them again in [0-9]* s (this restore took \([0-9.]*\) s).*/\1/p' "$TMP/run3.log" | head -n 1)
took=$(sed -n 's/.*restored ticks partitions .* in \([0-9.]*\) s: .*/\1/p' "$TMP/run3.log" | head -n 1)
total=$(curl -s "$URL/metrics" | sed -n 's/^tickcast_restore_seconds_total //p')
awk -v w="$waited" -v t="$took" -v s="$total" 'BEGIN { d = s - w - t; exit !(w > 0 && t > 0 && d > -0.002 && d < 0.002) }' ||
  tc_fail "tickcast_restore_seconds_total $total, expected the waiting restore's $waited s and the retry's $took s"
echo "ok: tickcast_restore_seconds_total $total = $waited s (the restore that waited) + $took s (the retry)"
tc_stop "$RUN_PID" 15
tc_eq "third member's exit" "$STOP_RC" 0
# Every prediction, the 1000 after the wait too, equals replay's (the state file alone is not
# compared instrument by instrument: inspect lists at most 1000).
tc_check_replay 5000
tc_eq "offsets stored after the restart" "$(tc_offsets_sum "$DB")" 5000
tries=$(grep -c "Fetch from broker 1 failed: Unknown broker error; trying again" "$TMP/run3.log" || true)
tc_eq "failed reads tried again" "$tries" 2
grep -q "Fetch from broker 1 failed: Unknown broker error; restoring from the state file alone" "$TMP/run3.log" ||
  tc_fail "the third read did not fail part-way: $(grep -E 'changelog|restor' "$TMP/run3.log" | grep -v rdkafka)"
for p in 0 1; do
  grep -q "ticks/$p: the state file has no checkpoint of it and the group committed offset [0-9]*: its state is in the changelog alone" "$TMP/run3.log" ||
    tc_fail "partition $p did not wait for the changelog: $(grep -E 'restor|wait' "$TMP/run3.log" | grep -v rdkafka)"
done
grep -q "ticks partitions \[0,1\] wait, paused, for their state in changelog g1.state: restoring them again in 5 s" "$TMP/run3.log" ||
  tc_fail "no line says the partitions wait: $(grep -E 'restor|wait' "$TMP/run3.log" | grep -v rdkafka)"
line=$(grep "restored ticks partitions" "$TMP/run3.log")
echo "$line"
[ "$(echo "$line" | wc -l)" = 1 ] || tc_fail "more than one restore line: $line"
echo "$line" | grep -qE "restored ticks partitions \[0@[0-9]+,1@[0-9]+\] .*: ([0-9]+) instruments \(\1 from the changelog, 0 from the state file\)" ||
  tc_fail "the retry did not restore both partitions from the changelog: $line"
n=$(echo "$line" | sed -n 's/.*: \([0-9]*\) instruments.*/\1/p')
[ "$n" -gt 1000 ] || tc_fail "the retry restored only $n instruments: $line"

echo "PASS e2e_changelog_unreadable"
