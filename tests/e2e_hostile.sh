#!/usr/bin/env bash
# e2e_hostile.sh: messages an attacker (or an unlucky producer) can send must never stop the
# daemon's checkpoints or freeze its instruments. Dead letters: a tick whose key is 500 KB (or
# 170 KB of control bytes, six times that once JSON-escaped) and differs from its sym gets a
# bounded dead letter that reaches the dead-letter topic, and the checkpoints go on past it; a
# dead letter that cannot be delivered at all (a dead-letter topic without a leader, a tiny
# message.max.bytes) is counted in dead_letters_failed_total and never wedges its partition; a
# stats message that fails is not said to stop offset commits. A tick dated 2262 is rejected
# (future_ts) instead of freezing its instrument, and an instrument a state file holds frozen (from
# a daemon without the bound) restarts afresh at its next tick; a new instrument beyond
# --max-instruments is rejected (instrument_limit) while the known ones go on.
. "$(dirname "$0")/lib.sh"
H="$ROOT/tests/e2e_hostile.py"
$PY "$ROOT/tests/e2e_run.py" model "$TMP/m.safetensors" 1 8 1
$PY "$ROOT/tests/e2e_run.py" model "$TMP/m2.safetensors" 1 8 2
cp "$TMP/m.safetensors" "$TMP/live.safetensors"
tc_broker_start --topics ticks:2,predictions:2,tickcast.dlq:1,tickcast.stats:1,t2:2,p2:2,d2:1,s2:1,t3:1,p3:1,t4:1,p4:1,t5:1,p5:1 \
  --no-leader d2,s2

start_run() { # name args...: tc_run, then the assignment
  tc_run "$@"
  tc_wait_for 20 grep -q "assigned .* partitions" "$TMP/$1.log" || tc_fail "$1: no assignment"
}
metric() { curl -s "http://127.0.0.1:$PORT/metrics" | sed -n "s/^tickcast_$1 //p"; }
stored() { $PY "$H" offsets "$1"; } # the sum of the next offsets in a state file
tick() { echo "b'{\"sym\":\"$1\",\"ts\":$2,\"px\":$3}'"; }

# 1. Oversized keys: bounded dead letters that arrive, and checkpoints that go on.
start_run a
$PY "$H" produce "$BROKERS" ticks "(b'A', $(tick A 1 1.5))" \
  "(b'K' * 500000, $(tick A 2 1.5))" "(b'\x01' * 170000, $(tick A 3 1.5))" "(b'A', $(tick A 4 1.6))"
$PY "$H" dlq "$BROKERS" tickcast.dlq 2 20 "$TMP/dlq_a.jsonl"
$PY - "$TMP/dlq_a.jsonl" <<'PYEOF' || tc_fail "oversized-key dead letters: $(cut -c1-300 "$TMP/dlq_a.jsonl")"
import json, sys
d = [json.loads(l) for l in open(sys.argv[1])]
assert len(d) == 2, f"{len(d)} dead letters arrived, expected 2"
for x in d:
    r = x["record"]
    assert r["reason"] == "key_mismatch", r["reason"]
    assert x["value_len"] <= 32768 and x["key_len"] <= 256, (x["value_len"], x["key_len"])
    assert r["key_truncated"] is True and r["key_len"] in (500000, 170000), r
print("ok: two oversized-key dead letters arrived, records of", [x["value_len"] for x in d], "bytes")
PYEOF
tc_wait_for 15 sh -c "[ \$($PY $H offsets $TMP/a.db) -eq 4 ]" ||
  tc_fail "the checkpoint does not cover the 4 messages: stored offsets sum to $(stored "$TMP/a.db")"
echo "ok: the checkpoint covers all 4 messages"
tc_eq "dead_letters_out_total" "$(metric dead_letters_out_total)" 2
tc_eq "dead_letters_failed_total" "$(metric dead_letters_failed_total)" 0
tc_eq "delivery_errors_total" "$(metric delivery_errors_total)" 0
# A model swap after the poison message is recorded by the next checkpoint, so a restart with
# the new model file is accepted (it was refused with exit 2 while the partition was wedged).
cp "$TMP/m2.safetensors" "$TMP/new.safetensors" && mv "$TMP/new.safetensors" "$TMP/live.safetensors"
kill -HUP "$RUN_PID"
tc_wait_for 10 grep -q "SIGHUP: model .* -> " "$TMP/a.log" || tc_fail "no model swap"
M2=$(sha256sum "$TMP/m2.safetensors" | cut -c1-64)
tc_wait_for 10 sh -c "sqlite3 $TMP/a.db 'SELECT model_sha256 FROM meta' | grep -q $M2" ||
  tc_fail "the model swap was not checkpointed"
tc_stop "$RUN_PID" 15
tc_eq "exit after SIGTERM" "$STOP_RC" 0
start_run a
tc_stop "$RUN_PID" 15
tc_eq "exit after a restart with the swapped model" "$STOP_RC" 0

# 2. Dead letters that can never be delivered: the dead-letter topic has no leader (delivery
# fails after message.timeout.ms) and, for the second daemon, message.max.bytes is too small for
# any dead letter of a 256-byte control-character key. Counted, and the partition goes on.
cp "$TMP/m.safetensors" "$TMP/live.safetensors"
start_run b --input-topic t2 --output-topic p2 --dlq-topic d2 --stats-topic s2 \
  --stats-interval 200 -X producer.message.timeout.ms=300
$PY "$H" produce "$BROKERS" t2 "(b'B', $(tick B 1 1.5))" "(b'B', b'{\"sym\":\"B\",\"ts\":2,\"px\":-3}')" \
  "(b'B', $(tick B 3 1.6))"
tc_wait_for 15 sh -c "[ \"\$(curl -s http://127.0.0.1:$PORT/metrics | sed -n 's/^tickcast_dead_letters_failed_total //p')\" = 1 ]" ||
  tc_fail "dead_letters_failed_total: $(metric dead_letters_failed_total)"
tc_wait_for 15 sh -c "[ \$($PY $H offsets $TMP/b.db) -eq 3 ]" ||
  tc_fail "a failed dead letter wedged the partition: stored offsets sum to $(stored "$TMP/b.db")"
echo "ok: an undeliverable dead letter is counted and the checkpoint covers all 3 messages"
tc_eq "dead_letters_out_total" "$(metric dead_letters_out_total)" 0
tc_eq "predictions_out_total" "$(metric predictions_out_total)" 2
tc_stop "$RUN_PID" 15
grep -q "stats message to s2" "$TMP/b.log" || tc_fail "no failed stats delivery logged: $(grep -c . "$TMP/b.log")"
if grep -q "no longer committed" "$TMP/b.log"; then
  tc_fail "a stats or dead-letter failure claims offsets are no longer committed: $(grep -m1 'no longer committed' "$TMP/b.log")"
fi
echo "ok: failed stats deliveries are logged as such"

start_run c --input-topic t3 --output-topic p3 --stats-interval 86400000 \
  -X producer.message.max.bytes=1000
$PY "$H" produce "$BROKERS" t3 "(b'C', $(tick C 1 1.5))" "(b'\x01' * 170000, $(tick C 2 1.5))" \
  "(b'C', $(tick C 3 1.6))"
tc_wait_for 15 sh -c "[ \$($PY $H offsets $TMP/c.db) -eq 3 ]" ||
  tc_fail "a dead letter too large for message.max.bytes wedged the partition: $(stored "$TMP/c.db")"
tc_eq "dead_letters_failed_total" "$(metric dead_letters_failed_total)" 1
tc_eq "dead_letters_out_total" "$(metric dead_letters_out_total)" 0
tc_eq "predictions_out_total" "$(metric predictions_out_total)" 2
tc_stop "$RUN_PID" 15
tc_eq "exit after SIGTERM" "$STOP_RC" 0
echo "ok: a dead letter the producer refuses is counted, the partition goes on"

# 3. The future bound (default --max-future, 5 minutes) and the instrument bound.
rejected() { curl -s "http://127.0.0.1:$PORT/metrics" | sed -n "s/^tickcast_rejected_total{reason=\"$1\"} //p"; }
NOW=$(date +%s%N)
start_run d --input-topic t4 --output-topic p4 --max-instruments 3
$PY "$H" produce "$BROKERS" t4 "(b'F', $(tick F "$NOW" 1.5))" "(b'F', $(tick F 9200000000000000000 1.5))" \
  "(b'F', $(tick F $((NOW + 1000000000)) 1.6))" "(b'G', $(tick G "$NOW" 2))" "(b'H', $(tick H "$NOW" 3))" \
  "(b'I', $(tick I "$NOW" 4))" "(b'F', $(tick F $((NOW + 2000000000)) 1.7))"
tc_wait_for 15 sh -c "[ \$($PY $H offsets $TMP/d.db) -eq 7 ]" || tc_fail "d: not all 7 ticks checkpointed"
tc_eq "rejected future_ts" "$(rejected future_ts)" 1
tc_eq "rejected instrument_limit" "$(rejected instrument_limit)" 1
tc_eq "rejected out_of_order" "$(rejected out_of_order)" 0
tc_eq "predictions_out_total" "$(metric predictions_out_total)" 5
tc_eq "instruments" "$(metric instruments)" 3
tc_stop "$RUN_PID" 15
tc_eq "F's n after the 2262 tick and two real ones" "$(sqlite3 "$TMP/d.db" "SELECT n FROM instruments WHERE sym = 'F'")" 3
$PY "$H" dlq "$BROKERS" tickcast.dlq 4 10 "$TMP/dlq_d.jsonl" >/dev/null
grep -q '"reason": "future_ts".*more than 300000 ms ahead' "$TMP/dlq_d.jsonl" ||
  tc_fail "no future_ts dead letter: $(cut -c1-200 "$TMP/dlq_d.jsonl")"
grep -q '"reason": "instrument_limit"' "$TMP/dlq_d.jsonl" || tc_fail "no instrument_limit dead letter"
echo "ok: the 2262 tick and the fourth instrument are rejected; F goes on to n = 3"

# A state file that holds a frozen instrument (a daemon without the bound accepted 2262): with the
# bound, the next real tick restarts it (n = 1) instead of being out of order for ever.
start_run e --input-topic t5 --output-topic p5 --max-future 0
$PY "$H" produce "$BROKERS" t5 "(b'Z', $(tick Z "$NOW" 1.5))" "(b'Z', $(tick Z 9200000000000000000 1.5))"
tc_wait_for 15 sh -c "[ \$($PY $H offsets $TMP/e.db) -eq 2 ]" || tc_fail "e: not checkpointed"
tc_stop "$RUN_PID" 15
tc_eq "Z's last ts in the state file" "$(sqlite3 "$TMP/e.db" "SELECT last_ts FROM instruments WHERE sym = 'Z'")" 9200000000000000000
start_run e --input-topic t5 --output-topic p5
$PY "$H" produce "$BROKERS" t5 "(b'Z', $(tick Z $((NOW + 1000000000)) 1.6))"
tc_wait_for 15 sh -c "[ \$($PY $H offsets $TMP/e.db) -eq 3 ]" || tc_fail "e: the third tick not checkpointed"
tc_eq "rejected out_of_order" "$(rejected out_of_order)" 0
tc_stop "$RUN_PID" 15
tc_eq "Z's n after the restart" "$(sqlite3 "$TMP/e.db" "SELECT n FROM instruments WHERE sym = 'Z'")" 1
grep -q "instrument Z: its last ts lay more than 300000 ms ahead" "$TMP/e.log" || tc_fail "no log line for Z"
echo "ok: a frozen instrument restarts afresh at its next tick"
echo "PASS e2e_hostile"
