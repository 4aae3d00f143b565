#!/usr/bin/env bash
# e2e_state_bind.sh: a state file is bound to the Kafka cluster and input topic it describes. The
# RUN.md example run twice in one directory, each time against a fresh embedded broker: the second
# run's file holds offsets of the first broker's topic. They must not be used (earlier versions
# resumed at the stale offset and skipped the new topic's first message: its prediction was
# missing and the next one had n = 2): the daemon logs the mismatch, counts a state reset, and the
# new first tick gets its prediction with n = 1.
. "$(dirname "$0")/lib.sh"
$PY "$ROOT/tests/e2e_run.py" model "$TMP/m.safetensors" 1 8 2
cd "$TMP"
one_run() { # run number: start, publish one tick once assigned, read its prediction, stop
  tc_bg "$TC" run --model m.safetensors --http 127.0.0.1:0 -X consumer.session.timeout.ms=6000 \
    2>"run$1.log"
  local pid=$BG_PID
  tc_wait_for 15 grep -q "embedded development broker at" "run$1.log" || tc_fail "run $1: no broker"
  B=$(sed -n 's/.*broker at \([0-9.:]*\) .*/\1/p' "run$1.log" | head -n 1)
  tc_wait_for 30 grep -q "restored ticks partitions" "run$1.log" || tc_fail "run $1: no assignment"
  $PY - "$B" "$1" >"preds$1.txt" <<'PYEOF' || tc_fail "run $1: $(cat "preds$1.txt")"
import json, sys, time
from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
b, run = sys.argv[1], sys.argv[2]
p = Producer({"bootstrap.servers": b, "partitioner": "murmur2_random"})
p.produce("ticks", json.dumps({"sym": "EURUSD", "ts": 1700000000000000000 + int(run),
                               "px": 1.07}).encode(), key=b"EURUSD")
p.flush(10)
c = Consumer({"bootstrap.servers": b, "group.id": "reader", "enable.auto.commit": False})
c.assign([TopicPartition("predictions", q, OFFSET_BEGINNING) for q in range(4)])
t_end = time.time() + 20
while time.time() < t_end:
    m = c.poll(0.2)
    if m is not None and not m.error():
        print(json.loads(m.value())["n"])
        sys.exit(0)
print("no prediction in 20 s")
sys.exit(1)
PYEOF
  local port
  port=$(sed -n 's/.*http on .* (port \([0-9]*\)).*/\1/p' "run$1.log" | head -n 1)
  curl -s "http://127.0.0.1:$port/metrics" | sed -n 's/^tickcast_state_resets_total //p' >"resets$1.txt"
  tc_stop "$pid" 10
  tc_eq "run $1 exit status" "$STOP_RC" 0
}
one_run 1
tc_eq "first run: n of the first prediction" "$(cat preds1.txt)" 1
tc_eq "first run: state resets" "$(cat resets1.txt)" 0
one_run 2
tc_eq "second run, same directory, fresh broker: n of the first prediction" "$(cat preds2.txt)" 1
grep -E "not of cluster|outside the partition" run2.log | sed 's/^/  /'
grep -qE "not of cluster .* topic ticks|is outside the partition's offsets" run2.log ||
  tc_fail "the second run did not report the stale state file"
tc_eq "second run: state resets (/metrics)" "$(cat resets2.txt)" 1
echo "PASS e2e_state_bind"
