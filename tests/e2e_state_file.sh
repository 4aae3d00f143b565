#!/usr/bin/env bash
# e2e_state_file.sh: the state file deleted under a running daemon (an operator's `rm`, a cleanup
# job). The next checkpoint notices it, writes a complete copy of the last checkpoint back to the
# path and goes on there, so a later kill -9 and restart resume from the state (every prediction
# equal to replay, none repeated with other values: once 4,866 were, after the restart found an
# empty file). Also: the file and its -wal and -shm are created 0600; a state file with a damaged
# blob, a symbol of escape bytes or a negative n is refused at start with exit 2 and left
# untouched (once: exit 1, after a checkpoint wrote to it), and inspect refuses it without
# printing the escape bytes.
. "$(dirname "$0")/lib.sh"
X="$PY $ROOT/tests/e2e_crash.py"
DB="$TMP/s.db"
$PY "$ROOT/tests/e2e_run.py" model "$TMP/m.safetensors" 1 16 3
$X gen "$TMP/all.csv" 600 20 9
"$TC" replay --model "$TMP/m.safetensors" --input "$TMP/all.csv" --output "$TMP/replay.csv" \
  2>/dev/null || tc_fail "replay failed"
head -n 201 "$TMP/all.csv" >"$TMP/a.csv"
{ head -n 1 "$TMP/all.csv"; sed -n 202,401p "$TMP/all.csv"; } >"$TMP/b.csv"
{ head -n 1 "$TMP/all.csv"; sed -n 402,601p "$TMP/all.csv"; } >"$TMP/c.csv"
tc_broker_start --topics ticks:2,predictions:2,tickcast.dlq:1,tickcast.stats:1
feed() { "$TC" feed --brokers "$BROKERS" --topic ticks --input "$1" 2>>"$TMP/feed.log" ||
  tc_fail "feed failed: $(tail -n 3 "$TMP/feed.log")"; }
distinct() { $X count "$BROKERS" predictions; }
stored() { sqlite3 "$DB" "SELECT coalesce(sum(next_offset), 0) FROM offsets" 2>/dev/null || echo 0; }
start_run() { # group
  tc_bg "$TC" run --brokers "$BROKERS" --model "$TMP/m.safetensors" --state "$DB" --group "$1" \
    --checkpoint-interval 200 --http 127.0.0.1:0 2>>"$TMP/run.log"
  RUN_PID=$BG_PID
}

umask 022
start_run g1
feed "$TMP/a.csv"
for _ in $(seq 30); do [ "$(distinct)" -ge 200 ] && break; sleep 1; done
tc_wait_for 10 sh -c "[ \$(sqlite3 $DB 'SELECT coalesce(sum(next_offset), 0) FROM offsets') -eq 200 ]" ||
  tc_fail "no checkpoint of the first 200 ticks: $(stored)"
for f in "$DB" "$DB-wal" "$DB-shm"; do
  tc_eq "mode of ${f##*/}" "$(stat -c %a "$f")" 600
done

rm -f "$DB" "$DB-wal" "$DB-shm"
tc_wait_for 10 grep -q "deleted under the running daemon" "$TMP/run.log" ||
  tc_fail "the deleted state file went unnoticed: $(grep -v rdkafka "$TMP/run.log" | tail -n 5)"
tc_wait_for 10 test -f "$DB" || tc_fail "no state file at the path after the heal"
echo "ok: $(grep -o 'state db .*deleted under the running daemon[^;]*' "$TMP/run.log" | head -n 1)"
feed "$TMP/b.csv"
for _ in $(seq 30); do [ "$(distinct)" -ge 400 ] && break; sleep 1; done
tc_wait_for 10 sh -c "[ \$(sqlite3 $DB 'SELECT coalesce(sum(next_offset), 0) FROM offsets') -eq 400 ]" ||
  tc_fail "checkpoints after the heal do not reach the file at the path: $(stored)"
PORT=$(sed -n 's/.*http on .* (port \([0-9]*\)).*/\1/p' "$TMP/run.log" | head -n 1)
tc_eq "state_file_heals_total" "$(curl -s "http://127.0.0.1:$PORT/metrics" | sed -n 's/^tickcast_state_file_heals_total //p')" 1
tc_eq "mode of the healed file" "$(stat -c %a "$DB")" 600

# kill -9, restart under a new group (only the file says where to resume), the rest of the ticks.
kill -KILL "$RUN_PID"
wait "$RUN_PID" 2>/dev/null || true
tc_forget "$RUN_PID"
start_run g2
feed "$TMP/c.csv"
for _ in $(seq 40); do [ "$(distinct)" -ge 600 ] && break; sleep 1; done
tc_stop "$RUN_PID" 15
tc_eq "exit after SIGTERM" "$STOP_RC" 0
"$TC" inspect --state "$DB" --json --top 1000 >"$TMP/inspect.json" || tc_fail "inspect failed"
$X check "$BROKERS" predictions 600 "$TMP/replay.csv" "$TMP/inspect.json" "$TMP/m.safetensors" \
  >"$TMP/check.txt" || tc_fail "$(cat "$TMP/check.txt")"
cat "$TMP/check.txt"

# Damaged files: refused at start (exit 2) before anything is written to them.
damaged() { # what, SQL that damages a copy of the state file, what the error must say
  cp "$DB" "$TMP/bad.db"
  sqlite3 "$TMP/bad.db" "$2" >/dev/null
  local sum rc=0
  sum=$(sha256sum "$TMP/bad.db" | cut -c1-64)
  timeout 30 "$TC" run --brokers "$BROKERS" --model "$TMP/m.safetensors" --state "$TMP/bad.db" \
    --group bad --http off >/dev/null 2>"$TMP/bad.err" || rc=$?
  tc_eq "exit with $1" "$rc" 2
  grep -q "$3" "$TMP/bad.err" || tc_fail "$1: $(cat "$TMP/bad.err")"
  tc_eq "checksum of the refused file ($1)" "$(sha256sum "$TMP/bad.db" | cut -c1-64)" "$sum"
  rc=0
  "$TC" inspect --state "$TMP/bad.db" >"$TMP/inspect.out" 2>&1 || rc=$?
  tc_eq "inspect exit with $1" "$rc" 2
  if grep -q $'\x1b' "$TMP/inspect.out"; then tc_fail "inspect printed an escape byte"; fi
  echo "ok: $1 refused: $(grep -o 'state db .*' "$TMP/bad.err" | head -n 1)"
}
damaged "a damaged blob" "UPDATE instruments SET state = substr(state, 1, 20) || X'00' || substr(state, 22) WHERE rowid = (SELECT min(rowid) FROM instruments)" "checksum"
damaged "a short blob" "UPDATE instruments SET state = substr(state, 1, 40) WHERE rowid = (SELECT min(rowid) FROM instruments)" "state blob is 40 bytes"
damaged "an escape-byte symbol" "UPDATE instruments SET sym = X'1B5D303B6F776E65641B5C' WHERE rowid = (SELECT min(rowid) FROM instruments)" "is not 1..32 bytes"
damaged "a negative n" "UPDATE instruments SET n = -4 WHERE rowid = (SELECT min(rowid) FROM instruments)" "n is -4"
damaged "a meta row's sha256 not hex" "UPDATE meta SET model_sha256 = 'zz'" \
  "meta model_sha256: found 'zz', expected 64 lowercase hex digits (a damaged file); --reset-state drops"
# --reset-state repairs such a file: the daemon binds the model to it at start and runs.
tc_bg "$TC" run --brokers "$BROKERS" --model "$TMP/m.safetensors" --state "$TMP/bad.db" \
  --group bad --http off --reset-state --checkpoint-interval 200 2>"$TMP/reset.err"
RUN_PID=$BG_PID
M=$(sha256sum "$TMP/m.safetensors" | cut -c1-64)
tc_wait_for 20 grep -q "restored ticks partitions" "$TMP/reset.err" ||
  tc_fail "--reset-state on a damaged meta row: $(tail -n 3 "$TMP/reset.err")"
tc_eq "the model bound by --reset-state" "$(sqlite3 "$TMP/bad.db" 'SELECT model_sha256 FROM meta')" "$M"
tc_stop "$RUN_PID" 15
tc_eq "exit after --reset-state on a damaged meta row" "$STOP_RC" 0
echo "ok: --reset-state rewrites a damaged meta row"
echo "PASS e2e_state_file"
