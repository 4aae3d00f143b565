#!/usr/bin/env bash
# e2e_partition_move.sh: an instrument's tick in another input partition than its earlier ticks
# (a producer that does not key by sym: CONTRACT §1 allows a missing key; or partitions added to
# the topic, which moves keys) is taken, and the daemon says so: one instrument in one partition
# is what keeps its ticks in order and its state in one member, and the operator must know when
# that no longer holds (it once went unnoticed). 20 ticks of A keyed "A" in partition 0, then one
# later tick of A without a key in partition 1: it is predicted with n = 21, and the log warns
# once, naming A and both partitions. Then 300 instruments move at once (chunks bring several moves:
# the log once keyed on the total after each chunk, so a chunk that jumped past ten or a multiple of
# 1000 logged nothing): every move is counted in tickcast_partition_moves_total, and the first
# chunks of them are logged.
. "$(dirname "$0")/lib.sh"
$PY "$ROOT/tests/e2e_run.py" model "$TMP/live.safetensors" 1 8 1
tc_broker_start --topics ticks:2,predictions:2,tickcast.dlq:1,tickcast.stats:1
produce() { # partition key-or-none first count ts0
  $PY - "$BROKERS" "$@" <<'PYEOF'
import sys
from confluent_kafka import Producer
brokers, part, key, first, count, ts0 = sys.argv[1:]
p = Producer({"bootstrap.servers": brokers})
for k in range(int(first), int(first) + int(count)):
    v = '{"sym":"A","ts":%d,"px":%.2f}' % (int(ts0) + k, 100 + k / 10)
    p.produce("ticks", v.encode(), key=None if key == "none" else key.encode(), partition=int(part))
assert p.flush(10) == 0
PYEOF
}
predicted() { # n: wait until the daemon counted n predictions
  tc_wait_for 20 sh -c "[ \"\$(curl -s $URL/metrics | sed -n 's/^tickcast_predictions_out_total //p')\" = $1 ]" ||
    tc_fail "expected $1 predictions: $(curl -s "$URL/metrics" | grep -E '^tickcast_(ticks_in|predictions_out|rejected)'; grep -v rdkafka "$TMP/m.log" | tail)"
}
produce 0 A 0 20 1000
tc_run m
predicted 20
# Only now the keyless one: before, the daemon could fetch it first, and then the 20 earlier
# ticks were rejected as out of order (fetch order across partitions is not the ticks' order,
# which is what the warning says).
produce 1 none 20 1 1980
predicted 21
grep -q "WARN  run: instrument A: a tick in ticks partition 1 after ticks in partition 0 (a producer that does not key ticks by sym, or partitions added to the topic): .* (1 such ticks in this chunk, 1 so far)" "$TMP/m.log" ||
  tc_fail "no warning of the move: $(grep -v rdkafka "$TMP/m.log" | tail -n 5)"
[ "$(grep -c 'instrument A: a tick in' "$TMP/m.log")" = 1 ] || tc_fail "warned more than once"
moves() { curl -s "$URL/metrics" | sed -n 's/^tickcast_partition_moves_total //p'; }
tc_eq "partition moves" "$(moves)" 1

produce_b() { # partition keyed(1/0) ts: one tick of each of B000..B299
  $PY - "$BROKERS" "$@" <<'PYEOF'
import sys
from confluent_kafka import Producer
brokers, part, keyed, ts = sys.argv[1:]
p = Producer({"bootstrap.servers": brokers})
for k in range(300):
    sym = "B%03d" % k
    v = '{"sym":"%s","ts":%s,"px":50.0}' % (sym, ts)
    p.produce("ticks", v.encode(), key=sym.encode() if keyed == "1" else None, partition=int(part))
assert p.flush(10) == 0
PYEOF
}
produce_b 0 1 5000
predicted 321
produce_b 1 0 6000
predicted 621
tc_eq "partition moves after 300 more" "$(moves)" 301
n=$(grep -c "WARN  run: instrument B[0-9]*: a tick in ticks partition 1 after ticks in partition 0" "$TMP/m.log" || true)
[ "$n" -ge 1 ] || tc_fail "300 moves logged no warning"
echo "ok: 300 more moves counted, $n warning lines for them"
tc_stop "$RUN_PID" 15
tc_eq "exit after SIGTERM" "$STOP_RC" 0
$PY - "$BROKERS" <<'PYEOF' || tc_fail "the keyless tick's prediction"
import json, sys
from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": "check", "enable.partition.eof": True})
c.assign([TopicPartition("predictions", q, OFFSET_BEGINNING) for q in (0, 1)])
got, eof = [], set()
while len(eof) < 2:
    m = c.poll(10)
    assert m is not None, "no predictions in 10 s"
    if m.error():
        eof.add(m.partition())
        continue
    got.append(json.loads(m.value()))
last = [v for v in got if v["ts"] == 2000]  # 1980 + 20
assert len(got) == 621 and len(last) == 1 and last[0]["n"] == 21, (len(got), last)
print("ok: the keyless tick of A in partition 1 was predicted with n = 21")
PYEOF
echo "PASS e2e_partition_move"
