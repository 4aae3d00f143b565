#!/usr/bin/env bash
# e2e_run_backpressure.sh: a tiny producer queue (-X producer.queue.buffering.max.messages=300)
# and slow batching force the daemon to pause consumption on its high mark and resume on delivery
# reports; 20,000 ticks over 40 instruments must still come out exactly once each, equal to
# `tickcast replay`, in per-instrument order. Then offsets: after SIGTERM and a restart in the same
# group, only new ticks are processed (committed offsets cover everything acknowledged).
. "$(dirname "$0")/lib.sh"
H="$ROOT/tests/e2e_run.py"

$PY "$H" model "$TMP/m.safetensors" 1 8 4
$PY - "$TMP" <<'PYEOF'
import json, random, sys
d = sys.argv[1]
rnd = random.Random(3)
syms = [f"BP{i:02d}" for i in range(40)]
px = {s: 100.0 for s in syms}
ts = 1700000000000000000
with open(d + "/a.jsonl", "w") as f:
    for i in range(20000):
        s = syms[rnd.randrange(40)]
        px[s] *= 1 + 0.001 * rnd.gauss(0, 1)
        ts += rnd.randrange(1, 10**8)
        f.write(json.dumps({"sym": s, "ts": ts, "px": px[s], "qty": rnd.randrange(5)}) + "\n")
with open(d + "/b.jsonl", "w") as f:
    for i in range(100):
        ts += 10**9
        f.write(json.dumps({"sym": f"NEW{i % 5}", "ts": ts, "px": 10.0 + i}) + "\n")
PYEOF

tc_broker_start --topics ticks:4,predictions:4,tickcast.dlq:1,tickcast.stats:1
# Publish first, so the daemon meets a full backlog.
"$TC" feed --brokers "$BROKERS" --topic ticks --input "$TMP/a.jsonl" 2>"$TMP/feed.log" ||
  tc_fail "feed failed: $(tail -n 3 "$TMP/feed.log")"
start_run() {
  tc_bg "$TC" run --brokers "$BROKERS" --model "$TMP/m.safetensors" --state "$TMP/run.db" \
    --http 127.0.0.1:0 \
    --chunk 64 -X producer.queue.buffering.max.messages=300 -X producer.linger.ms=20 \
    --stats-interval 1000 -X consumer.session.timeout.ms=6000 2>>"$TMP/run.log"
  RUN_PID=$BG_PID
}
start_run
tc_wait_for 10 grep -q "http on" "$TMP/run.log" || tc_fail "no http line in the log"
PORT=$(sed -n 's/.*http on .* (port \([0-9]*\)).*/\1/p' "$TMP/run.log" | tail -n 1)
"$TC" replay --model "$TMP/m.safetensors" --input "$TMP/a.jsonl" --output "$TMP/ra.csv" 2>/dev/null
$PY "$H" collect "$BROKERS" predictions 20000 50 "$TMP/p1.jsonl"
$PY "$H" check-preds "$TMP/p1.jsonl" "$TMP/ra.csv"
curl -s "http://127.0.0.1:$PORT/metrics" >"$TMP/metrics.txt"
PAUSES=$(sed -n 's/^tickcast_backpressure_pauses_total \([0-9]*\)$/\1/p' "$TMP/metrics.txt")
[ "${PAUSES:-0}" -gt 0 ] || tc_fail "backpressure never paused consumption (pauses=${PAUSES:-none})"
grep -qx "tickcast_paused 0" "$TMP/metrics.txt" || tc_fail "still paused after the backlog"
echo "ok: backpressure paused $PAUSES times and resumed; every prediction still exactly once"
grep -qx "tickcast_delivery_errors_total 0" "$TMP/metrics.txt" || tc_fail "delivery errors"

tc_stop "$RUN_PID" 10
tc_eq "exit status after SIGTERM" "$STOP_RC" 0
# Restart in the same group: nothing old is reprocessed, only the 100 new ticks. (librdkafka
# 2.0's mock broker does not return a group to Empty when its last member leaves: the next join
# waits session.timeout.ms - 1 s, hence the short session timeout above.)
start_run
"$TC" feed --brokers "$BROKERS" --topic ticks --input "$TMP/b.jsonl" 2>>"$TMP/feed.log" ||
  tc_fail "second feed failed"
"$TC" replay --model "$TMP/m.safetensors" --input "$TMP/b.jsonl" --output "$TMP/rb.csv" 2>/dev/null
$PY "$H" collect "$BROKERS" predictions 20100 30 "$TMP/p2.jsonl"
tc_eq "predictions after restart" "$(wc -l <"$TMP/p2.jsonl")" 20100
$PY "$H" check-preds "$TMP/p2.jsonl" --exclude "$TMP/p1.jsonl" "$TMP/rb.csv"
tc_stop "$RUN_PID" 10
tc_eq "exit status after SIGTERM" "$STOP_RC" 0
echo "PASS e2e_run_backpressure"
