#!/usr/bin/env bash
# e2e_state.sh: `tickcast run --state` against a real (embedded) broker, for what e2e_crash.sh does
# not cover: a second writer on the same file is refused (exit 1); a checkpoint failure at run time
# (another process holds SQLite's write lock) is logged and counted in /metrics while predicting
# goes on, and the next checkpoint after the lock is gone holds everything (n per instrument,
# offsets); a restart with another model file is refused (exit 2, file untouched) unless
# --reset-state; a corrupt state file is refused (exit 2, file untouched); a SIGHUP swap is
# recorded in the file right away.
. "$(dirname "$0")/lib.sh"
X="$PY $ROOT/tests/e2e_crash.py"
DB="$TMP/s.db"
$PY "$ROOT/tests/e2e_run.py" model "$TMP/m1.safetensors" 1 16 1
$PY "$ROOT/tests/e2e_run.py" model "$TMP/m2.safetensors" 1 16 2
sha() { sha256sum "$1" | cut -c1-64; }
$X gen "$TMP/all.csv" 400 20 5
head -n 201 "$TMP/all.csv" >"$TMP/a.csv"
{ head -n 1 "$TMP/all.csv"; tail -n 200 "$TMP/all.csv"; } >"$TMP/b.csv"
tc_broker_start --topics ticks:2,predictions:2,tickcast.dlq:1,tickcast.stats:1
"$TC" feed --brokers "$BROKERS" --topic ticks --input "$TMP/a.csv" 2>"$TMP/feed.log" ||
  tc_fail "feed failed: $(tail -n 3 "$TMP/feed.log")"
distinct() { $X count "$BROKERS" predictions; }
inspect_field() { # db field
  "$TC" inspect --state "$1" --json --top 1000 | $PY -c '
import json, sys
o = json.load(sys.stdin)
f = sys.argv[1]
print(sum(t["n"] for t in o["top"]) if f == "sum_n" else
      sum(x["next_offset"] for x in o["offsets"]) if f == "sum_off" else o[f])' "$2"
}
metric() { # name: the value of tickcast_NAME on /metrics
  curl -s "http://127.0.0.1:$PORT/metrics" | sed -n "s/^tickcast_$1 //p"
}
exit_of() { # log, command...: runs the command, prints its exit status
  local log=$1 rc=0
  shift
  timeout 30 "$@" >/dev/null 2>"$log" || rc=$?
  echo "$rc"
}

tc_bg "$TC" run --brokers "$BROKERS" --model "$TMP/m1.safetensors" --state "$DB" --group g1 \
  --checkpoint-interval 200 --http 127.0.0.1:0 2>"$TMP/run.log"
RUN_PID=$BG_PID
tc_wait_for 10 grep -q "http on" "$TMP/run.log" || tc_fail "no http line"
PORT=$(sed -n 's/.*http on .* (port \([0-9]*\)).*/\1/p' "$TMP/run.log" | head -n 1)
for _ in $(seq 30); do [ "$(distinct)" -ge 200 ] && break; sleep 1; done
tc_eq "predictions for the first 200 ticks" "$(distinct)" 200
tc_wait_for 10 sh -c "[ \"\$(curl -s http://127.0.0.1:$PORT/metrics | sed -n 's/^tickcast_checkpoints_total //p')\" -ge 1 ]" ||
  tc_fail "no checkpoint in /metrics: $(curl -s "http://127.0.0.1:$PORT/metrics" | grep checkpoint)"

# A second daemon on the same file: refused, exit 1, one error line.
rc=$(exit_of "$TMP/second.err" "$TC" run --brokers "$BROKERS" --model "$TMP/m1.safetensors" \
  --state "$DB" --group g9 --http off)
tc_eq "exit of a second writer" "$rc" 1
grep -q "ERROR .*s.db: in use by another process" "$TMP/second.err" ||
  tc_fail "second writer: $(cat "$TMP/second.err")"
echo "ok: second writer refused: $(grep ERROR "$TMP/second.err")"

# Another process holds the write lock: checkpoints fail (SQLITE_BUSY), predicting goes on.
tc_sqlite_lock "$DB"
tc_wait_for 10 sh -c "[ \"\$(curl -s http://127.0.0.1:$PORT/metrics | sed -n 's/^tickcast_checkpoints_failing //p')\" -ge 1 ]" ||
  tc_fail "checkpoints_failing did not rise while the db was locked"
written_locked=$(metric checkpoints_total)
"$TC" feed --brokers "$BROKERS" --topic ticks --input "$TMP/b.csv" 2>>"$TMP/feed.log" ||
  tc_fail "feed failed: $(tail -n 3 "$TMP/feed.log")"
for _ in $(seq 30); do [ "$(distinct)" -ge 400 ] && break; sleep 1; done
tc_eq "predictions while checkpoints fail" "$(distinct)" 400
tc_eq "checkpoints written while locked" "$(metric checkpoints_total)" "$written_locked"
fails=$(metric checkpoint_failures_total)
[ "$fails" -ge 2 ] || tc_fail "checkpoint_failures_total $fails, expected >= 2"
grep -q "WARN  run: checkpoint failed (1 in a row): .*database is locked" "$TMP/run.log" ||
  tc_fail "no checkpoint failure in the log: $(grep -i checkpoint "$TMP/run.log" | tail -3)"
echo "ok: locked db: $fails checkpoint failures, predictions went on"
tc_sqlite_unlock
wait "$LOCKER_PID"
tc_wait_for 10 sh -c "[ \"\$(curl -s http://127.0.0.1:$PORT/metrics | sed -n 's/^tickcast_checkpoints_failing //p')\" = 0 ]" ||
  tc_fail "checkpoints still failing after the lock was released"
grep -q "checkpoint written again after" "$TMP/run.log" || tc_fail "no recovery line in the log"
# The first good checkpoint after the failures is complete: n of every instrument, all offsets.
tc_eq "sum of n in the file after recovery (daemon running)" "$(inspect_field "$DB" sum_n)" 400
tc_eq "sum of offsets in the file after recovery" "$(inspect_field "$DB" sum_off)" 400
tc_stop "$RUN_PID"
tc_eq "exit after SIGTERM" "$STOP_RC" 0
tc_eq "model of the file" "$(inspect_field "$DB" model_sha256)" "$(sha "$TMP/m1.safetensors")"

# Another model file: refused with both hashes named, exit 2, the file untouched.
before=$(sha "$DB")
rc=$(exit_of "$TMP/other.err" "$TC" run --brokers "$BROKERS" --model "$TMP/m2.safetensors" \
  --state "$DB" --group g2 --http off)
tc_eq "exit with another model" "$rc" 2
[ "$(grep -c ERROR "$TMP/other.err")" = 1 ] || tc_fail "not one error line: $(cat "$TMP/other.err")"
grep -q "$(sha "$TMP/m1.safetensors" | cut -c1-8).*$(sha "$TMP/m2.safetensors" | cut -c1-8).*--reset-state" \
  "$TMP/other.err" || tc_fail "model binding message: $(cat "$TMP/other.err")"
tc_eq "state file untouched by the refused start" "$(sha "$DB")" "$before"
echo "ok: another model refused: $(grep ERROR "$TMP/other.err")"

# A corrupt file: exit 2, the file untouched.
head -c 65536 /dev/urandom >"$TMP/bad.db"
before=$(sha "$TMP/bad.db")
rc=$(exit_of "$TMP/bad.err" "$TC" run --brokers "$BROKERS" --model "$TMP/m1.safetensors" \
  --state "$TMP/bad.db" --group g3 --http off)
tc_eq "exit with a corrupt state file" "$rc" 2
grep -q "ERROR .*bad.db" "$TMP/bad.err" || tc_fail "corrupt file message: $(cat "$TMP/bad.err")"
tc_eq "corrupt file untouched" "$(sha "$TMP/bad.db")" "$before"
echo "ok: corrupt file refused: $(grep ERROR "$TMP/bad.err")"

# --reset-state with the other model: fresh states (the ticks, re-read by a new group, give n
# summing to 400 again, not 800); then a SIGHUP swap back to m1 is recorded right away.
cp "$TMP/m2.safetensors" "$TMP/live.safetensors"
tc_bg "$TC" run --brokers "$BROKERS" --model "$TMP/live.safetensors" --state "$DB" --group g4 \
  --reset-state --checkpoint-interval 200 --http off 2>"$TMP/run2.log"
RUN_PID=$BG_PID
tc_wait_for 30 grep -q "assigned ticks" "$TMP/run2.log" ||
  tc_fail "reset run got no partitions"
for _ in $(seq 30); do [ "$(inspect_field "$DB" sum_off 2>/dev/null)" = 400 ] && break; sleep 0.5; done
tc_eq "model after --reset-state" "$(inspect_field "$DB" model_sha256)" "$(sha "$TMP/m2.safetensors")"
tc_eq "sum of n after --reset-state and 400 ticks" "$(inspect_field "$DB" sum_n)" 400
cp "$TMP/m1.safetensors" "$TMP/new.safetensors" && mv "$TMP/new.safetensors" "$TMP/live.safetensors"
kill -HUP "$RUN_PID"
tc_wait_for 5 sh -c "[ \"\$('$TC' inspect --state '$DB' --json | $PY -c 'import json,sys; print(json.load(sys.stdin)[\"model_sha256\"])')\" = $(sha "$TMP/m1.safetensors") ]" ||
  tc_fail "the SIGHUP swap was not recorded in the file within 5 s"
tc_eq "sum of n after the swap (states reset)" "$(inspect_field "$DB" sum_n)" 0
echo "ok: SIGHUP swap recorded with reset states"
tc_stop "$RUN_PID"
tc_eq "exit after SIGTERM" "$STOP_RC" 0
echo "e2e_state: all passed"
