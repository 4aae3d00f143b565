#!/usr/bin/env bash
# e2e_run_group.sh: two daemons in one consumer group share the input partitions, with the eager
# protocol (range) and the cooperative one (cooperative-sticky). With the group settled, every tick
# gets exactly one prediction, equal to `tickcast replay` (per-partition order and state kept).
# When one daemon stops, the other takes its partitions: later ticks are predicted exactly once
# (the leaver flushed and committed), none lost, and the instruments of the partitions that moved
# go on from the states the leaver handed off through the changelog topic (g-*.state): every
# prediction, before and after the takeover, equals a replay of all the ticks in one go (n
# continues, values equal).
. "$(dirname "$0")/lib.sh"
H="$ROOT/tests/e2e_run.py"
$PY "$H" model "$TMP/m.safetensors" 1 8 6
head -n 801 "$ROOT/data/sample/fx_daily_2021_2025.csv" >"$TMP/a.csv"
{ head -n 1 "$TMP/a.csv"; sed -n 802,1041p "$ROOT/data/sample/fx_daily_2021_2025.csv"; } >"$TMP/b.csv"
head -n 1041 "$ROOT/data/sample/fx_daily_2021_2025.csv" >"$TMP/ab.csv"
"$TC" replay --model "$TMP/m.safetensors" --input "$TMP/a.csv" --output "$TMP/ra.csv" 2>/dev/null
"$TC" replay --model "$TMP/m.safetensors" --input "$TMP/ab.csv" --output "$TMP/rab.csv" 2>/dev/null
NA=$(($(wc -l <"$TMP/ra.csv") - 1))
tc_broker_start --topics ticks-range:4,ticks-cooperative-sticky:4,tickcast.dlq:1,tickcast.stats:1

port_of() { sed -n 's/.*http on .* (port \([0-9]*\)).*/\1/p' "$1" | head -n 1; }
assigned() { curl -s "http://127.0.0.1:$1/metrics" | sed -n 's/^tickcast_partitions_assigned //p'; }

for strategy in range cooperative-sticky; do
  echo "--- partition.assignment.strategy=$strategy"
  G="g-$strategy"
  IN="ticks-$strategy"
  OUT="preds-$strategy"
  PIDS=()
  PORTS=()
  for who in a b; do
    tc_bg "$TC" run --brokers "$BROKERS" --group "$G" --input-topic "$IN" --output-topic "$OUT" \
      --model "$TMP/m.safetensors" --state "$TMP/state-$strategy-$who.db" --http 127.0.0.1:0 \
      -X consumer.session.timeout.ms=6000 \
      -X "consumer.partition.assignment.strategy=$strategy" 2>"$TMP/run-$strategy-$who.log"
    PIDS+=("$BG_PID")
    tc_wait_for 10 grep -q "http on" "$TMP/run-$strategy-$who.log" || tc_fail "$who: no http line"
    PORTS+=("$(port_of "$TMP/run-$strategy-$who.log")")
  done
  settled() { [ "$(assigned "${PORTS[0]}")" = 2 ] && [ "$(assigned "${PORTS[1]}")" = 2 ]; }
  tc_wait_for 40 settled || tc_fail "group did not settle at 2+2 partitions: $(assigned "${PORTS[0]}") $(assigned "${PORTS[1]}")"
  grep -q "($( [ $strategy = range ] && echo eager || echo cooperative))" "$TMP/run-$strategy-a.log" ||
    tc_fail "the rebalance protocol was not the $strategy one"
  echo "ok: two daemons hold 2 partitions each"
  "$TC" feed --brokers "$BROKERS" --topic "$IN" --input "$TMP/a.csv" 2>>"$TMP/feed.log" || tc_fail "feed a: $(tail -n 3 "$TMP/feed.log")"
  $PY "$H" collect "$BROKERS" "$OUT" "$NA" 30 "$TMP/p1-$strategy.jsonl"
  $PY "$H" check-preds "$TMP/p1-$strategy.jsonl" "$TMP/ra.csv"
  # Offsets are committed (every second) once the predictions are acknowledged.
  tc_wait_for 15 sh -c "[ \"\$($PY $H committed $BROKERS $G $IN)\" = $NA ]" ||
    tc_fail "committed offsets of $G: $($PY "$H" committed "$BROKERS" "$G" "$IN"), expected $NA"
  echo "ok: group $G committed $NA offsets"
  # b leaves: a takes over all four partitions.
  tc_stop "${PIDS[1]}" 10
  tc_eq "b exit status" "$STOP_RC" 0
  tc_wait_for 40 sh -c "[ \"\$(curl -s http://127.0.0.1:${PORTS[0]}/metrics | sed -n 's/^tickcast_partitions_assigned //p')\" = 4 ]" ||
    tc_fail "a did not take over the 4 partitions"
  "$TC" feed --brokers "$BROKERS" --topic "$IN" --input "$TMP/b.csv" 2>>"$TMP/feed.log" || tc_fail "feed b: $(tail -n 3 "$TMP/feed.log")"
  $PY "$H" collect "$BROKERS" "$OUT" $((NA + 240)) 30 "$TMP/p2-$strategy.jsonl"
  tc_eq "predictions after the takeover" "$(wc -l <"$TMP/p2-$strategy.jsonl")" $((NA + 240))
  NEW=$($PY -c "
import json, sys
old = {(m['partition'], m['offset']) for m in map(json.loads, open(sys.argv[1]))}
src = [json.loads(m['value'])['src'] for m in map(json.loads, open(sys.argv[2]))
       if (m['partition'], m['offset']) not in old]
assert len(src) == len(set(src)), 'duplicate src'
print(len(src))" "$TMP/p1-$strategy.jsonl" "$TMP/p2-$strategy.jsonl")
  tc_eq "new predictions, one per new tick" "$NEW" 240
  grep -q "from the changelog $G.state" "$TMP/run-$strategy-a.log" ||
    tc_fail "a resumed nothing from the changelog: $(grep -i "changelog" "$TMP"/run-$strategy-*.log)"
  $PY "$H" check-preds "$TMP/p2-$strategy.jsonl" "$TMP/rab.csv"
  tc_eq "partitions a took over from b's hand-offs (/metrics)" \
    "$(curl -s "http://127.0.0.1:${PORTS[0]}/metrics" | sed -n 's/^tickcast_handoffs_in_total //p')" 2
  echo "ok: the moved instruments went on from their handed-off states"
  tc_stop "${PIDS[0]}" 10
  tc_eq "a exit status" "$STOP_RC" 0
done
echo "PASS e2e_run_group"
