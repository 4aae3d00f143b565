#!/usr/bin/env bash
# e2e_reload_restore.sh: a restore right after a SIGHUP model swap, before the swap's first
# checkpoint is written. With --on-model-change reset (the default) the swap throws every
# instrument's state away; a partition restored from the state file in that window must not get
# the old model's states back under the new model. Here the file is locked by another process
# (SQLite's write lock: checkpoints fail, reads go on) while a's model is swapped and a second
# member joins, so a restores a partition from a file whose rows are still the old model's. No
# tick arrives between the swap and the restore, so the next tick of every instrument must be the
# first its state sees (n = 1). (Before: the reassigned partition's instruments came back with the
# old model's states and counts, and went on from them under the new model.)
. "$(dirname "$0")/lib.sh"
H="$ROOT/tests/e2e_run.py"
$PY "$H" model "$TMP/m1.safetensors" 1 8 1
$PY "$H" model "$TMP/m2.safetensors" 1 8 2
cp "$TMP/m1.safetensors" "$TMP/live.safetensors"
head -n 801 "$ROOT/data/sample/fx_daily_2021_2025.csv" >"$TMP/a.csv"
{ head -n 1 "$TMP/a.csv"; sed -n 802,811p "$ROOT/data/sample/fx_daily_2021_2025.csv"; } >"$TMP/b.csv"
tc_broker_start --topics ticks:2,predictions:2,tickcast.dlq:1,tickcast.stats:1
port_of() { sed -n 's/.*http on .* (port \([0-9]*\)).*/\1/p' "$1" | head -n 1; }
assigned() { curl -s "http://127.0.0.1:$1/metrics" | sed -n 's/^tickcast_partitions_assigned //p'; }
member() { # name
  tc_bg "$TC" run --brokers "$BROKERS" --group g --model "$TMP/live.safetensors" \
    --state "$TMP/$1.db" --checkpoint-interval 200 --http 127.0.0.1:0 --log-level debug \
    -X consumer.session.timeout.ms=6000 -X consumer.partition.assignment.strategy=range \
    2>"$TMP/$1.log"
  tc_wait_for 10 grep -q "http on" "$TMP/$1.log" || tc_fail "$1: no http line"
}
member a
A_PID=$BG_PID
A_PORT=$(port_of "$TMP/a.log")
tc_wait_for 20 sh -c "[ \"\$(curl -s http://127.0.0.1:$A_PORT/metrics | sed -n 's/^tickcast_partitions_assigned //p')\" = 2 ]" ||
  tc_fail "a did not get the 2 partitions"
"$TC" feed --brokers "$BROKERS" --topic ticks --input "$TMP/a.csv" 2>"$TMP/feed.log" ||
  tc_fail "feed: $(tail -n 3 "$TMP/feed.log")"
tc_wait_for 20 sh -c "[ \$(sqlite3 $TMP/a.db 'SELECT coalesce(sum(next_offset), 0) FROM offsets') -eq 800 ]" ||
  tc_fail "a's checkpoint does not cover the 800 ticks"
N0=$(sqlite3 "$TMP/a.db" "SELECT count(*) FROM instruments WHERE n > 0")
[ "$N0" -gt 0 ] || tc_fail "no instrument with ticks in a's state file"
echo "ok: a's state file holds $N0 instruments of model 1"

# The file locked, the model swapped: the swap's checkpoint cannot be written.
tc_sqlite_lock "$TMP/a.db"
cp "$TMP/m2.safetensors" "$TMP/new.safetensors" && mv "$TMP/new.safetensors" "$TMP/live.safetensors"
kill -HUP "$A_PID"
tc_wait_for 10 grep -q "SIGHUP: model .* -> .* (reset instrument states)" "$TMP/a.log" ||
  tc_fail "no model swap: $(grep SIGHUP "$TMP/a.log")"
# b joins: a gives up both partitions (eager) and restores the one it gets back from its file.
member b
B_PORT=$(port_of "$TMP/b.log")
settled() { [ "$(assigned "$A_PORT")" = 1 ] && [ "$(assigned "$B_PORT")" = 1 ]; }
tc_wait_for 40 settled || tc_fail "group did not settle at 1+1 partitions"
tc_wait_for 20 sh -c "[ \$(grep -c 'restored ticks partitions' $TMP/a.log) -ge 2 ]" ||
  tc_fail "a did not restore its partition: $(grep -i restor "$TMP/a.log" | tail -n 5)"
grep -q "the state file's instruments are of model" "$TMP/a.log" ||
  tc_fail "a's restore did not see the old model's rows: $(grep -i restor "$TMP/a.log" | tail -n 5)"
echo "ok: a restored its partition while its file still held model 1's rows"

# The lock gone: the new model's checkpoint is written. Then one more tick of every instrument:
# each is the first its instrument's state sees since the reset, in a's partition as in b's.
tc_sqlite_unlock
M2=$(sha256sum "$TMP/m2.safetensors" | cut -c1-64)
tc_wait_for 20 sh -c "sqlite3 $TMP/a.db 'SELECT model_sha256 FROM meta' | grep -q $M2" ||
  tc_fail "the model swap was not checkpointed"
"$TC" feed --brokers "$BROKERS" --topic ticks --input "$TMP/b.csv" 2>>"$TMP/feed.log" ||
  tc_fail "feed b: $(tail -n 3 "$TMP/feed.log")"
$PY "$H" collect "$BROKERS" predictions 810 30 "$TMP/p.jsonl"
$PY - "$TMP/p.jsonl" <<'PYEOF' || tc_fail "predictions after the reset"
import json, sys
last = {}
for line in open(sys.argv[1]):
    v = json.loads(json.loads(line)["value"])
    if v["ts"] == 1619395200000000000:
        last[v["sym"]] = v["n"]
assert len(last) == 10, f"{len(last)} instruments predicted after the reset, expected 10"
bad = {s: n for s, n in last.items() if n != 1}
assert not bad, f"n after the reset, expected 1 (zero state, then this tick): {bad}"
print("ok: the first tick after the reset has n = 1 for all 10 instruments")
PYEOF
tc_stop "$A_PID" 15
tc_eq "a's exit status" "$STOP_RC" 0
