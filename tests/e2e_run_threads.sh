#!/usr/bin/env bash
# e2e_run_threads.sh: `run --threads 2`, two stream threads in one process, each a consumer of the
# group with partitions, a producer and a state file of its own (DB and DB.1), one endpoint and one
# stats message for both. Checked: the 4 input partitions spread over the two threads; every tick
# gets exactly one prediction, equal to `tickcast replay` (per-partition order and state kept);
# /metrics and the stats topic count the ticks of both threads; a restart with --threads 1 takes
# the partitions of the thread that is gone from the changelog and goes on from their states, and
# a restart with --threads 2 again does the same; /healthz and /readyz answer 503 naming thread 1
# while its checkpoints fail; SIGHUP reloads the model in both threads; a stop ends both threads
# with status 0; a thread's state file held by another process refuses the start.
. "$(dirname "$0")/lib.sh"
H="$ROOT/tests/e2e_run.py"
$PY "$H" model "$TMP/m.safetensors" 1 8 6
CSV="$ROOT/data/sample/fx_daily_2021_2025.csv"
head -n 801 "$CSV" >"$TMP/a.csv"
{ head -n 1 "$CSV"; sed -n 802,1041p "$CSV"; } >"$TMP/b.csv"
{ head -n 1 "$CSV"; sed -n 1042,1201p "$CSV"; } >"$TMP/c.csv"
head -n 1041 "$CSV" >"$TMP/ab.csv"
head -n 1201 "$CSV" >"$TMP/abc.csv"
for f in a ab abc; do
  "$TC" replay --model "$TMP/m.safetensors" --input "$TMP/$f.csv" --output "$TMP/r$f.csv" 2>/dev/null
done
NA=$(($(wc -l <"$TMP/ra.csv") - 1))
NAB=$(($(wc -l <"$TMP/rab.csv") - 1))
NABC=$(($(wc -l <"$TMP/rabc.csv") - 1))
tc_broker_start --topics ticks:4,tickcast.dlq:1,tickcast.stats:1

metric() { curl -s "http://127.0.0.1:$PORT/metrics" | sed -n "s/^tickcast_$1 //p"; }
start() { # threads log [more flags]
  tc_bg "$TC" run --brokers "$BROKERS" --group g --model "$TMP/m.safetensors" \
    --state "$TMP/s.db" --http 127.0.0.1:0 --stats-interval 500 --threads "$1" \
    -X consumer.session.timeout.ms=6000 "${@:3}" 2>"$TMP/$2"
  PID=$BG_PID
  tc_wait_for 10 grep -q "http on" "$TMP/$2" || tc_fail "no http line: $(cat "$TMP/$2")"
  PORT=$(sed -n 's/.*http on .* (port \([0-9]*\)).*/\1/p' "$TMP/$2" | head -n 1)
  tc_wait_for 40 sh -c "[ \"\$(curl -s http://127.0.0.1:$PORT/metrics | sed -n 's/^tickcast_partitions_assigned //p')\" = 4 ]" ||
    tc_fail "the $1 threads did not take the 4 partitions: $(metric partitions_assigned)"
  tc_eq "stream threads (/metrics)" "$(metric stream_threads)" "$1"
}
new_preds() { # old new expected: predictions in new but not in old, each src once
  $PY -c "
import json, sys
old = {(m['partition'], m['offset']) for m in map(json.loads, open(sys.argv[1]))}
src = [json.loads(m['value'])['src'] for m in map(json.loads, open(sys.argv[2]))
       if (m['partition'], m['offset']) not in old]
assert len(src) == len(set(src)), 'duplicate src'
print(len(src))" "$1" "$2"
}

echo "--- usage"
set +e
"$TC" run --model "$TMP/m.safetensors" --threads 2 --changelog-topic off 2>"$TMP/usage.log"
RC=$?
set -e
tc_eq "exit status (--threads 2 --changelog-topic off)" "$RC" 2
tc_eq "its error" "$(cat "$TMP/usage.log")" "tickcast run: --threads 2 with --changelog-topic off: stream threads hand partitions over through the changelog; expected --threads 1, or a changelog topic"

echo "--- run --threads 2"
start 2 run1.log
# Both threads hold partitions: each logs its own assignment ("run[K]").
for k in 0 1; do
  grep -q "run\[$k\]: assigned ticks partitions \[[0-9]" "$TMP/run1.log" ||
    tc_fail "thread $k was assigned no partition: $(grep assigned "$TMP/run1.log")"
done
[ -f "$TMP/s.db" ] && [ -f "$TMP/s.db.1" ] || tc_fail "state files: $(ls "$TMP")"
echo "ok: two stream threads hold the 4 partitions; state files s.db and s.db.1"
"$TC" feed --brokers "$BROKERS" --topic ticks --input "$TMP/a.csv" 2>>"$TMP/feed.log" || tc_fail "feed a"
$PY "$H" collect "$BROKERS" predictions "$NA" 30 "$TMP/p1.jsonl"
$PY "$H" check-preds "$TMP/p1.jsonl" "$TMP/ra.csv"
# Thread 1's figures reach /metrics at its next publication (every 500 ms here).
tc_wait_for 10 sh -c "[ \"\$(curl -s http://127.0.0.1:$PORT/metrics | sed -n 's/^tickcast_ticks_in_total //p')\" = $NA ]" ||
  tc_fail "ticks in (/metrics): $(metric ticks_in_total), expected $NA"
tc_eq "ticks in, both threads (/metrics)" "$(metric ticks_in_total)" "$NA"
tc_eq "predictions out, both threads (/metrics)" "$(metric predictions_out_total)" "$NA"
# The stats topic: one message per interval with both threads' figures.
$PY - "$BROKERS" "$NA" <<'EOF' || tc_fail "no stats message with both threads' figures"
import json, sys, time
from confluent_kafka import Consumer, TopicPartition
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": "stats-check", "enable.auto.commit": False})
c.assign([TopicPartition("tickcast.stats", 0, 0)])
want, deadline = int(sys.argv[2]), time.time() + 20
while time.time() < deadline:
    m = c.poll(0.5)
    if m is None or m.error():
        continue
    s = json.loads(m.value())
    if s["threads"] == 2 and s["ticks_in"] == want and s["predictions_out"] == want \
            and s["partitions_assigned"] == 4 and set(s["lag"]) == {"0", "1", "2", "3"} \
            and all(v == 0 for v in s["lag"].values()):
        print(f"ok: stats message: threads 2, ticks_in {want}, 4 partitions, lag {s['lag']}")
        sys.exit(0)
sys.exit(1)
EOF
tc_eq "/readyz" "$(curl -s "http://127.0.0.1:$PORT/readyz")" "ready (4 partitions assigned)"
tc_stop "$PID" 15
tc_eq "exit status (--threads 2)" "$STOP_RC" 0
for k in 0 1; do # each thread's own shutdown: its final checkpoint, its partitions handed back
  grep -q "run\[$k\]: revoked ticks partitions \[[0-9,]*\] after a final checkpoint" "$TMP/run1.log" ||
    tc_fail "thread $k did not stop cleanly: $(grep "run\[$k\]" "$TMP/run1.log" | tail -n 3)"
done

# A restart with $1 threads, then the ticks of $2.csv: one new prediction per new tick, every
# prediction so far (p$3.jsonl) equal to the replay of all ticks (r$4.csv, $5 rows); the
# predictions before are p$(($3 - 1)).jsonl, $6 of them.
restart_feed() {
  start "$1" "run$3.log" --unhealthy-after 1500
  "$TC" feed --brokers "$BROKERS" --topic ticks --input "$TMP/$2.csv" 2>>"$TMP/feed.log" || tc_fail "feed $2"
  $PY "$H" collect "$BROKERS" predictions "$5" 30 "$TMP/p$3.jsonl"
  tc_eq "new predictions, one per new tick" "$(new_preds "$TMP/p$(($3 - 1)).jsonl" "$TMP/p$3.jsonl")" $(($5 - $6))
  $PY "$H" check-preds "$TMP/p$3.jsonl" "$TMP/r$4.csv"
}

echo "--- the restart with --threads 1 goes on from both threads' states"
restart_feed 1 b 2 ab "$NAB" "$NA"
grep -q "from the changelog g.state" "$TMP/run2.log" ||
  tc_fail "nothing resumed from the changelog: $(grep -i changelog "$TMP/run2.log")"
tc_stop "$PID" 15
tc_eq "exit status (--threads 1)" "$STOP_RC" 0

echo "--- and a restart with --threads 2 again"
restart_feed 2 c 3 abc "$NABC" "$NAB"

echo "--- thread 1's checkpoints fail (its state file locked): /healthz and /readyz say so"
tc_sqlite_lock "$TMP/s.db.1"
# SIGHUP: each thread records the new model in a checkpoint at once; thread 1's cannot be written.
$PY "$H" model "$TMP/m.safetensors" 1 8 7
kill -HUP "$PID"
health() { curl -s -o "$TMP/body" -w '%{http_code}' "http://127.0.0.1:$PORT$1"; }
tc_wait_for 15 sh -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$PORT/healthz)\" = 503 ]" ||
  tc_fail "/healthz stayed $(health /healthz) while thread 1's checkpoints failed"
health /healthz >/dev/null
grep -q "^unhealthy: stream thread 1: checkpoints failing for" "$TMP/body" ||
  tc_fail "/healthz body: $(cat "$TMP/body")"
echo "ok: /healthz 503: $(cat "$TMP/body")"
tc_eq "/readyz while thread 1's checkpoints fail" "$(health /readyz)" 503
tc_sqlite_unlock
tc_wait_for 15 sh -c "curl -sf http://127.0.0.1:$PORT/healthz >/dev/null" ||
  tc_fail "/healthz did not recover: $(health /healthz) $(cat "$TMP/body")"
echo "ok: /healthz 200 again once the lock is released"

echo "--- SIGHUP reloaded the model in both threads"
NEW_ID=$("$TC" inspect --model "$TMP/m.safetensors" | sed -n 's/^sha256 .*(id \([0-9a-f]*\)).*/\1/p')
[ -n "$NEW_ID" ] || tc_fail "no id from inspect --model"
swapped() { for k in 0 1; do grep -q "run\[$k\]: SIGHUP: model .* -> $NEW_ID " "$TMP/run3.log" || return 1; done; }
tc_wait_for 10 swapped || tc_fail "a thread kept the old model: $(grep SIGHUP "$TMP/run3.log")"
# One load, one model for the process: one reload counted, every message names the new model.
tc_eq "model reloads (/metrics)" "$(metric model_reloads_total)" 1
tc_eq "the model /metrics names" "$(curl -s "http://127.0.0.1:$PORT/metrics" | sed -n 's/^tickcast_build_info{.*model="\([0-9a-f]*\)"} 1$/\1/p')" "$NEW_ID"
echo "ok: both threads swapped model $NEW_ID in"
tc_stop "$PID" 15
tc_eq "exit status (--threads 2, after SIGHUP)" "$STOP_RC" 0

echo "--- a thread's state file held by another process: the start is refused, nothing runs"
flock "$TMP/s.db.1" sleep 30 &
HOLD=$!
TC_PIDS+=("$HOLD")
tc_wait_for 5 sh -c "! flock -n '$TMP/s.db.1' true" || tc_fail "flock did not take the file"
set +e
"$TC" run --brokers "$BROKERS" --group g --model "$TMP/m.safetensors" --state "$TMP/s.db" \
  --http off --threads 2 2>"$TMP/run4.log"
RC=$?
set -e
tc_eq "exit status (state file s.db.1 locked)" "$RC" 1
grep -q "run\[1\]: state db .*/s\.db\.1: in use by another process" "$TMP/run4.log" ||
  tc_fail "no line naming s.db.1: $(cat "$TMP/run4.log")"
! grep -q "assigned ticks partitions" "$TMP/run4.log" || tc_fail "a thread joined the group anyway"
kill "$HOLD"
echo "PASS e2e_run_threads"
