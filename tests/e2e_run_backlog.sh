#!/usr/bin/env bash
# e2e_run_backlog.sh: a daemon started on a backlog (30,000 ticks published 2 s before, so older
# than the 1 s that marks one) steps it in chunks of --backlog-chunk (default 64), not --chunk (8):
# tickcast_chunks_total must come out under a sixteenth of the ticks, and the predictions equal
# `tickcast replay`'s (the same printed values), exactly once each. With --backlog-chunk 8
# (= --chunk: off) on another group, no chunk holds more than 8, so the count is at least an
# eighth. With --backlog-chunk 256 waves hold up to 100 instruments (past the 64 of the AVX2
# kernel), and the predictions must still print as replay's.
. "$(dirname "$0")/lib.sh"
H="$ROOT/tests/e2e_run.py"
N=30000

$PY "$H" model "$TMP/m.safetensors" 1 8 4
tc_broker_start --topics ticks:4,predictions:4,preds2:4,preds3:4,tickcast.dlq:1,tickcast.stats:1
"$TC" feed --brokers "$BROKERS" --topic ticks --synthetic $N --instruments 100 2>"$TMP/feed.log" ||
  tc_fail "feed failed: $(tail -n 3 "$TMP/feed.log")"
# The same ticks as a file, for the replay to compare with.
$PY "$H" collect "$BROKERS" ticks $N 30 "$TMP/ticks.jsonl"
$PY - "$TMP/ticks.jsonl" "$TMP/ticks_in.jsonl" <<'PYEOF'
import json, sys
with open(sys.argv[2], "w") as f:
    for l in open(sys.argv[1]):
        f.write(json.loads(l)["value"] + "\n")
PYEOF

sleep 2 # every message of the backlog is now more than 1 s old
# Runs the daemon on the whole topic with a fresh group and the given flags until it has taken
# every tick in; sets RUN_PID and CHUNKS (its tickcast_chunks_total).
chunks_for() {
  local group=$1 out=$2
  shift 2
  tc_bg "$TC" run --brokers "$BROKERS" --model "$TMP/m.safetensors" --state "$TMP/$group.db" \
    --group "$group" --output-topic "$out" --http 127.0.0.1:0 --stats-interval 1000 "$@" \
    2>"$TMP/$group.log"
  RUN_PID=$BG_PID
  tc_wait_for 10 grep -q "http on" "$TMP/$group.log" || tc_fail "no http line in the log"
  local port
  port=$(sed -n 's/.*http on .* (port \([0-9]*\)).*/\1/p' "$TMP/$group.log" | tail -n 1)
  tc_wait_for 60 sh -c "curl -s http://127.0.0.1:$port/metrics | grep -qx 'tickcast_ticks_in_total $N'" ||
    tc_fail "$group: not every tick taken in: $(tail -n 3 "$TMP/$group.log")"
  CHUNKS=$(curl -s "http://127.0.0.1:$port/metrics" | sed -n 's/^tickcast_chunks_total //p')
}

# expect_chunks -le|-ge BOUND WHAT: CHUNKS is at most / at least BOUND.
expect_chunks() {
  local how="at most"
  [ "$1" == -le ] || how="at least"
  [ -n "$CHUNKS" ] && [ "$CHUNKS" "$1" "$2" ] ||
    tc_fail "$3: $CHUNKS chunks for $N ticks of backlog, expected $how $2"
  echo "ok: $3: $N ticks of backlog took $CHUNKS chunks"
}
stop_ok() {
  tc_stop "$RUN_PID" 10
  tc_eq "exit status after SIGTERM" "$STOP_RC" 0
}

chunks_for g1 predictions
expect_chunks -le $((N / 16)) "default flags (--chunk 8, --backlog-chunk 64)"
"$TC" replay --model "$TMP/m.safetensors" --input "$TMP/ticks_in.jsonl" --output "$TMP/r.csv" 2>/dev/null
$PY "$H" collect "$BROKERS" predictions $N 30 "$TMP/p1.jsonl"
$PY "$H" check-preds "$TMP/p1.jsonl" --exact "$TMP/r.csv"
stop_ok

chunks_for g2 preds2 --backlog-chunk 8
expect_chunks -ge $((N / 8)) "--backlog-chunk 8"
stop_ok

chunks_for g3 preds3 --backlog-chunk 256
expect_chunks -le $((N / 64)) "--backlog-chunk 256"
$PY "$H" collect "$BROKERS" preds3 $N 30 "$TMP/p3.jsonl"
$PY "$H" check-preds "$TMP/p3.jsonl" --exact "$TMP/r.csv"
stop_ok
echo "PASS e2e_run_backlog"
