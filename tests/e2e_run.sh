#!/usr/bin/env bash
# e2e_run.sh: the daemon end to end. `tickcast run` against a `tickcast broker`; ticks published
# with `tickcast feed` (a real FX sample) and with an outside client (confluent_kafka: synthetic
# ticks with qty/quotes/RFC 3339, malformed messages among them); predictions, dead letters and
# stats read with an outside client. Asserts: one prediction per accepted tick, equal to
# `tickcast replay` of the same ticks; per-instrument order; dead letters with the right reasons;
# the stats fields; /metrics (its process_* figures against /proc), /healthz, /readyz; SIGHUP
# refusing another shape and swapping a same-shape model (predictions then follow the new model
# from fresh state); SIGTERM -> 0 in < 10 s.
. "$(dirname "$0")/lib.sh"
H="$ROOT/tests/e2e_run.py"

$PY "$H" model "$TMP/m1.safetensors" 1 8 1
$PY "$H" model "$TMP/m2.safetensors" 1 8 2
$PY "$H" model "$TMP/m3.safetensors" 2 8 3
cp "$TMP/m1.safetensors" "$TMP/model.safetensors"
head -n 301 "$ROOT/data/sample/fx_daily_2021_2025.csv" >"$TMP/a.csv" # header + 300 ticks

tc_broker_start --topics ticks:4,predictions:4,tickcast.dlq:2,tickcast.stats:1
tc_bg "$TC" run --brokers "$BROKERS" --model "$TMP/model.safetensors" --state "$TMP/run.db" \
  --http 127.0.0.1:0 \
  --stats-interval 500 --log-level debug 2>"$TMP/run.log"
RUN_PID=$BG_PID
tc_wait_for 10 grep -q "http on" "$TMP/run.log" || tc_fail "no http line in the log"
PORT=$(sed -n 's/.*http on .* (port \([0-9]*\)).*/\1/p' "$TMP/run.log" | head -n 1)
URL="http://127.0.0.1:$PORT"
tc_eq "/healthz" "$(curl -s "$URL/healthz")" "ok"
tc_wait_for 20 curl -sf "$URL/readyz" -o /dev/null || tc_fail "/readyz not 200 within 20 s"
tc_eq "/nope status" "$(curl -s -o /dev/null -w '%{http_code}' "$URL/nope")" "404"

# Phase 1: the FX sample through `tickcast feed`, synthetic + malformed through confluent_kafka.
"$TC" feed --brokers "$BROKERS" --topic ticks --input "$TMP/a.csv" 2>"$TMP/feed.log" ||
  tc_fail "tickcast feed failed: $(tail -n 3 "$TMP/feed.log")"
$PY "$H" publish-b "$BROKERS" ticks "$TMP/b.csv" "$TMP/dlq_expected.json"
"$TC" replay --model "$TMP/m1.safetensors" --input "$TMP/a.csv" --output "$TMP/ra.csv" 2>/dev/null
"$TC" replay --model "$TMP/m1.safetensors" --input "$TMP/b.csv" --output "$TMP/rb.csv" 2>/dev/null
NA=$(($(wc -l <"$TMP/ra.csv") - 1)); NB=$(($(wc -l <"$TMP/rb.csv") - 1))
NDLQ=$($PY -c "import json,sys; print(len(json.load(open(sys.argv[1]))))" "$TMP/dlq_expected.json")
N1=$((NA + NB))
$PY "$H" collect "$BROKERS" predictions "$N1" 30 "$TMP/p1.jsonl"
$PY "$H" check-preds "$TMP/p1.jsonl" "$TMP/ra.csv" "$TMP/rb.csv"
$PY "$H" collect "$BROKERS" tickcast.dlq "$NDLQ" 15 "$TMP/dlq.jsonl"
$PY "$H" check-dlq "$TMP/dlq.jsonl" "$TMP/dlq_expected.json"
# Every valid tick and malformed message is in; wait for a stats message that saw them all.
TOTAL=$((N1 + NDLQ))
sleep 1.2
$PY "$H" collect "$BROKERS" tickcast.stats 1000 3 "$TMP/stats.jsonl"
$PY "$H" check-stats "$TMP/stats.jsonl" "$TOTAL" "$N1"

curl -s "$URL/metrics" >"$TMP/metrics.txt"
for want in "tickcast_ticks_in_total $TOTAL" "tickcast_predictions_out_total $N1" \
  'tickcast_rejected_total{reason="bad_px"} 1' 'tickcast_rejected_total{reason="bad_json"} 4' \
  'tickcast_rejected_total{reason="out_of_order"} 1' '# TYPE tickcast_latency_seconds histogram' \
  "tickcast_latency_seconds_count $TOTAL" 'tickcast_latency_seconds_bucket{le="+Inf"}' \
  'tickcast_partition_ticks_in_total{partition="0"}' '# TYPE tickcast_ticks_in_total counter'; do
  grep -qF "$want" "$TMP/metrics.txt" || tc_fail "/metrics lacks '$want'"
done
echo "ok: /metrics has the counters, rejects by reason, per-partition counts, latency histogram"
$PY "$H" check-process "$URL" "$RUN_PID"

# SIGHUP with a model of another shape: refused, old model kept and counted.
cp "$TMP/m3.safetensors" "$TMP/new.safetensors" && mv "$TMP/new.safetensors" "$TMP/model.safetensors"
kill -HUP "$RUN_PID"
tc_wait_for 10 grep -q "refused, keeping model" "$TMP/run.log" || tc_fail "other-shape model not refused"
tc_wait_for 5 sh -c "curl -s $URL/metrics | grep -qx 'tickcast_model_reload_failures_total 1'" ||
  tc_fail "model_reload_failures_total is not 1"
echo "ok: SIGHUP with an L=2 model refused and counted"
# SIGHUP with a same-shape model: swapped, states reset; new ticks follow m2 from fresh state.
cp "$TMP/m2.safetensors" "$TMP/new.safetensors" && mv "$TMP/new.safetensors" "$TMP/model.safetensors"
kill -HUP "$RUN_PID"
tc_wait_for 10 grep -q "SIGHUP: model .* -> .* (reset instrument states)" "$TMP/run.log" ||
  tc_fail "same-shape model not swapped"
$PY - "$TMP/c.csv" <<'PYEOF'
import random, sys
rnd = random.Random(5)
rows = ["sym,ts,px"]
for s in ("C.ONE", "C.TWO"):
    px, ts = 20.0, 1750000000000000000
    for i in range(25):
        px *= 1 + 0.003 * rnd.gauss(0, 1); ts += rnd.randrange(1, 10**10)
        rows.append(f"{s},{ts},{px!r}")
rows.append("B.EUR,1760000000000000000,61.5")  # an instrument from before: starts again at n=1
open(sys.argv[1], "w").write("\n".join(rows) + "\n")
PYEOF
$PY "$H" publish-csv "$BROKERS" ticks "$TMP/c.csv"
"$TC" replay --model "$TMP/m2.safetensors" --input "$TMP/c.csv" --output "$TMP/rc.csv" 2>/dev/null
NC=$(($(wc -l <"$TMP/rc.csv") - 1))
$PY "$H" collect "$BROKERS" predictions $((N1 + NC)) 30 "$TMP/p2.jsonl"
$PY "$H" check-preds "$TMP/p2.jsonl" --exclude "$TMP/p1.jsonl" "$TMP/rc.csv"
M2=$(sed -n 's/.*SIGHUP: model .* -> \([0-9a-f]*\) .*/\1/p' "$TMP/run.log")
grep -q "tickcast_build_info{version=\"[^\"]*\",model=\"$M2\"} 1" <(curl -s "$URL/metrics") ||
  tc_fail "/metrics does not show the new model $M2"
echo "ok: SIGHUP swapped to $M2; predictions follow it from fresh state"

# SIGTERM: exit 0 within 10 s, leaving the group.
t0=$(date +%s.%N)
tc_stop "$RUN_PID" 10
t1=$(date +%s.%N)
tc_eq "run exit status after SIGTERM" "$STOP_RC" 0
$PY -c "import sys; d=float(sys.argv[2])-float(sys.argv[1]); print(f'ok: stopped in {d:.2f} s'); sys.exit(d >= 10)" "$t0" "$t1" ||
  tc_fail "SIGTERM took 10 s or more"
grep -q "revoked ticks partitions" "$TMP/run.log" || tc_fail "no revoke at shutdown"
if grep -E " (ERROR|WARN) " "$TMP/run.log" | grep -v "SIGHUP" >"$TMP/bad.log"; then
  cat "$TMP/bad.log"; tc_fail "unexpected warnings or errors in the daemon log"
fi
echo "PASS e2e_run"
