#!/usr/bin/env bash
# e2e_model_id.sh: which model made a prediction, across a SIGHUP reload. `tickcast run` against
# a `tickcast broker`; ticks fed with `tickcast feed --ts-unit s` from a file whose timestamps are
# seconds. Asserts: every prediction carries the Kafka header tickcast.model = the running model's
# id (the sha256 prefix `inspect --model` shows), before and after a same-shape model is swapped in
# on SIGHUP; the stats topic names the current model; fed timestamps arrive as nanoseconds; a
# producer that would report only errors is refused.
. "$(dirname "$0")/lib.sh"
H="$ROOT/tests/e2e_run.py"

$PY "$H" model "$TMP/m1.safetensors" 1 8 1
$PY "$H" model "$TMP/m2.safetensors" 1 8 2
cp "$TMP/m1.safetensors" "$TMP/model.safetensors"
id() { $PY -c 'import json,sys; print(json.load(sys.stdin)["id"])' < <("$TC" inspect --model "$1" --json); }
ID1=$(id "$TMP/m1.safetensors")
ID2=$(id "$TMP/m2.safetensors")
tc_eq "id length" "${#ID1}" 16
[ "$ID1" != "$ID2" ] || tc_fail "two models, one id"

# Seconds since the epoch: two instruments, 20 ticks each, one hour apart.
$PY - "$TMP/a.csv" "$TMP/b.csv" <<'PYEOF'
import sys
for k, path in enumerate(sys.argv[1:]):
    with open(path, "w") as f:
        f.write("sym,ts,px\n")
        for i in range(20):
            for s, px in (("AAA", 10.0), ("BBB", 20.0)):
                f.write(f"{s},{1704067200 + (k * 20 + i) * 3600},{px * (1 + 0.001 * ((i * 7) % 5 - 2))}\n")
PYEOF

collect_h() { # topic n secs out: values with the tickcast.model header
  $PY - "$BROKERS" "$@" <<'PYEOF'
import json, sys, time
from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
brokers, topic, n, secs, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
c = Consumer({"bootstrap.servers": brokers, "group.id": "e2e-model-id", "enable.auto.commit": False})
md = c.list_topics(topic, timeout=10).topics[topic]
c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in md.partitions])
got, deadline = [], time.time() + secs
while time.time() < deadline and len(got) < n:
    m = c.poll(0.2)
    if m is None or m.error():
        continue
    h = dict(m.headers() or [])
    got.append({"value": json.loads(m.value()), "model": h.get("tickcast.model", b"").decode()})
c.close()
json.dump(got, open(out, "w"))
print(f"collect {topic}: {len(got)} messages (wanted {n})")
PYEOF
}

# The header list is shared by every message and taken back in its delivery report: a producer
# that reports only errors is refused before anything starts (exit 2, one line naming it).
for x in producer.delivery.report.only.error=true delivery.report.only.error=true; do
  rc=0
  "$TC" run --model "$TMP/model.safetensors" -X "$x" >/dev/null 2>"$TMP/dr.err" || rc=$?
  tc_eq "exit of run -X $x" "$rc" 2
  grep -q -- "-X delivery.report.only.error: found true, expected false" "$TMP/dr.err" ||
    tc_fail "-X $x: $(cat "$TMP/dr.err")"
done

tc_broker_start --topics ticks:2,predictions:2,tickcast.dlq:1,tickcast.stats:1
tc_bg "$TC" run --brokers "$BROKERS" --model "$TMP/model.safetensors" --state "$TMP/run.db" \
  --stats-interval 300 --http off --log-level debug 2>"$TMP/run.log"
RUN_PID=$BG_PID
"$TC" feed --brokers "$BROKERS" --topic ticks --input "$TMP/a.csv" --ts-unit s 2>"$TMP/feed.log" ||
  tc_fail "feed: $(tail -n 3 "$TMP/feed.log")"
collect_h predictions 40 30 "$TMP/p1.json"
$PY - "$TMP/p1.json" "$ID1" <<'PYEOF' || tc_fail "predictions of the first model"
import json, sys
p = json.load(open(sys.argv[1]))
assert len(p) == 40, len(p)
assert all(x["model"] == sys.argv[2] for x in p), {x["model"] for x in p}
assert min(x["value"]["ts"] for x in p) == 1704067200 * 10**9, "ts not converted to ns"
print(f"ok: 40 predictions with tickcast.model {sys.argv[2]}, ts in ns")
PYEOF

cp "$TMP/m2.safetensors" "$TMP/new.safetensors" && mv "$TMP/new.safetensors" "$TMP/model.safetensors"
kill -HUP "$RUN_PID"
tc_wait_for 10 grep -q "SIGHUP: model .* -> $ID2" "$TMP/run.log" || tc_fail "model not swapped"
"$TC" feed --brokers "$BROKERS" --topic ticks --input "$TMP/b.csv" --ts-unit s 2>>"$TMP/feed.log" ||
  tc_fail "feed b"
collect_h predictions 80 30 "$TMP/p2.json"
$PY - "$TMP/p2.json" "$ID1" "$ID2" <<'PYEOF' || tc_fail "predictions after SIGHUP"
import json, sys
p = json.load(open(sys.argv[1]))
assert len(p) == 80, len(p)
first = [x for x in p if x["value"]["ts"] < (1704067200 + 20 * 3600) * 10**9]
later = [x for x in p if x["value"]["ts"] >= (1704067200 + 20 * 3600) * 10**9]
assert len(first) == 40 and all(x["model"] == sys.argv[2] for x in first)
assert len(later) == 40 and all(x["model"] == sys.argv[3] for x in later), {x["model"] for x in later}
print(f"ok: after SIGHUP the 40 new predictions carry {sys.argv[3]}")
PYEOF
sleep 0.7
collect_h tickcast.stats 1000 3 "$TMP/stats.json"
$PY - "$TMP/stats.json" "$ID2" <<'PYEOF' || tc_fail "stats do not name the current model"
import json, sys
s = json.load(open(sys.argv[1]))
assert s and s[-1]["value"]["model"] == sys.argv[2] and s[-1]["model"] == sys.argv[2], s[-1]
print(f"ok: the last stats message names {sys.argv[2]} (body and header)")
PYEOF
tc_stop "$RUN_PID" 10
tc_eq "run exit status" "$STOP_RC" 0
echo "PASS e2e_model_id"
