#!/usr/bin/env bash
# e2e_health.sh: nothing can block the daemon's loop thread, and its probes tell the truth.
# - 70 HTTP connections that send one byte a second and never finish a request: /healthz still
#   answers (once, 64 of them made it unreachable).
# - SIGHUP with a FIFO at the model path: the reload is refused ("not a regular file"), /healthz
#   answers meanwhile and SIGTERM still stops the daemon (once, open() blocked the loop for good).
# - /healthz turns 503, with the reason in the body, when checkpoints have failed for longer than
#   --unhealthy-after, when ticks were processed that no checkpoint covers for that long (a
#   prediction that failed for good), and when the output has been paused for that long; it comes
#   back to 200 when the cause goes. /readyz follows it.
# - /readyz is 200 on a member that has joined its group but holds no partition (a group of more
#   members than partitions), and says why it is not ready otherwise.
# - Lag is the distance to the high watermark from what is processed, not from the last
#   checkpoint: a caught-up daemon whose checkpoint lies 500 messages behind reports lag 0 and 500
#   uncheckpointed, the same in the stats topic and /metrics, for every assigned partition
#   (those without data too).
# - The Kafka clients' error events are counted (`kafka_errors`, tickcast_kafka_errors_total):
#   none on a healthy run, each "all brokers down" once the broker is gone.
. "$(dirname "$0")/lib.sh"
H="$ROOT/tests/e2e_hostile.py"
$PY "$ROOT/tests/e2e_run.py" model "$TMP/m.safetensors" 1 8 1
cp "$TMP/m.safetensors" "$TMP/live.safetensors"
tc_broker_start --topics ticks:2,predictions:2,tickcast.dlq:1,tickcast.stats:1,one:1,pone:1,t2:1,dead:1,t3:1,dead3:1,lagt:4,lagp:4,lags:1 \
  --no-leader dead,dead3

code() { curl -s -o "$TMP/body" -w '%{http_code}' --max-time "${2:-2}" "$URL$1" || true; }
body() { cat "$TMP/body" 2>/dev/null; }
tick() { echo "b'{\"sym\":\"$1\",\"ts\":$2,\"px\":$3}'"; }

# 1. Slow clients.
tc_run a
tc_wait_for 20 sh -c "curl -sf $URL/readyz >/dev/null" || tc_fail "a: not ready in 20 s: $(code /readyz)"
$PY - "${URL#http://}" "$TMP/slow.started" <<'PYEOF' &
import socket, sys, time
host, port = sys.argv[1].split(":")
socks = []
for i in range(70):
    s = socket.create_connection((host, int(port)))
    s.sendall(b"GET /healthz HTTP/1.1\r\n")
    socks.append(s)
open(sys.argv[2], "w").close()
for _ in range(20):  # one more header byte a second on each, never the end of the request
    time.sleep(1)
    for s in socks:
        try:
            s.sendall(b"X")
        except OSError:
            pass
PYEOF
TC_PIDS+=("$!")
tc_wait_for 10 test -e "$TMP/slow.started" || tc_fail "the slow clients did not connect"
for i in 1 2 3 4 5 6; do
  t0=$(date +%s%N)
  c=$(code /healthz 2)
  [ "$c" = 200 ] || tc_fail "/healthz with 70 slow connections open: status '$c' (try $i)"
  ms=$((($(date +%s%N) - t0) / 1000000))
  sleep 1
done
echo "ok: /healthz answers 200 while 70 slow connections are open ($ms ms for the last one)"

# 2. SIGHUP with a FIFO at the model path.
rm -f "$TMP/live.safetensors"
mkfifo "$TMP/live.safetensors"
kill -HUP "$RUN_PID"
sleep 0.5
tc_eq "/healthz after SIGHUP on a FIFO" "$(code /healthz 2)" 200
tc_wait_for 5 grep -q "SIGHUP: .*not a regular file" "$TMP/a.log" ||
  tc_fail "the FIFO was not refused: $(grep SIGHUP "$TMP/a.log")"
tc_wait_for 5 sh -c "curl -s $URL/metrics | grep -qx 'tickcast_model_reload_failures_total 1'" ||
  tc_fail "model_reload_failures_total is not 1"
t0=$(date +%s)
tc_stop "$RUN_PID" 10
tc_eq "exit after SIGTERM (FIFO at the model path)" "$STOP_RC" 0
echo "ok: a FIFO at the model path is refused; the daemon answers and stops in $(($(date +%s) - t0)) s"
rm -f "$TMP/live.safetensors"
cp "$TMP/m.safetensors" "$TMP/live.safetensors"

# 3a. Checkpoints failing (another process holds SQLite's write lock).
tc_run b --unhealthy-after 1500
tc_wait_for 20 sh -c "curl -sf $URL/readyz >/dev/null" || tc_fail "b: not ready: $(code /readyz) $(body)"
tc_wait_for 10 test -s "$TMP/b.db" || tc_fail "b: no state file"
tc_sqlite_lock "$TMP/b.db"
tc_wait_for 10 sh -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' $URL/healthz)\" = 503 ]" ||
  tc_fail "/healthz stayed $(code /healthz) while checkpoints failed"
code /healthz >/dev/null
grep -q "checkpoints failing for" "$TMP/body" || tc_fail "/healthz body: $(body)"
echo "ok: /healthz 503: $(body)"
tc_eq "/readyz while checkpoints fail" "$(code /readyz)" 503
tc_sqlite_unlock
tc_wait_for 10 sh -c "curl -sf $URL/healthz >/dev/null" || tc_fail "/healthz did not recover: $(code /healthz) $(body)"
tc_eq "/readyz after recovery" "$(code /readyz)" 200
echo "ok: /healthz and /readyz back to 200 once a checkpoint succeeds"

# 3b. /readyz on a member without partitions: two members of one group on a one-partition topic.
tc_stop "$RUN_PID" 10
tc_run c --input-topic one --output-topic pone --group spare
C_URL=$URL
C_PID=$RUN_PID
tc_wait_for 20 sh -c "curl -sf $C_URL/readyz >/dev/null" || tc_fail "c: not ready"
tc_run d --input-topic one --output-topic pone --group spare
D_URL=$URL
# The group's assignor gives the partition to either member (by their random member ids): the
# spare one is whichever holds none once the rebalance settles.
parts() { curl -s "$1/metrics" | sed -n 's/^tickcast_partitions_assigned //p'; }
settled() { case "$(parts "$C_URL")$(parts "$D_URL")" in 01 | 10) return 0 ;; *) return 1 ;; esac; }
tc_wait_for 40 sh -c "curl -sf $D_URL/readyz >/dev/null && curl -sf $C_URL/readyz >/dev/null" ||
  tc_fail "/readyz of the two members: $(code /readyz) $(body)"
tc_wait_for 20 settled ||
  tc_fail "the partition is not held by exactly one member: $(parts "$C_URL") and $(parts "$D_URL")"
URL=$D_URL
[ "$(parts "$C_URL")" = 0 ] && URL=$C_URL
tc_eq "/readyz of the spare member" "$(code /readyz)" 200
tc_eq "partitions of the spare member" "$(parts "$URL")" 0
code /readyz >/dev/null
echo "ok: /readyz 200 on a member that joined its group and holds no partition ($(body))"
tc_stop "$RUN_PID" 10
tc_stop "$C_PID" 10

# 3c. A prediction that fails for good: its tick is processed, no checkpoint may cover it.
tc_run e --input-topic t2 --output-topic dead --unhealthy-after 1500 -X producer.message.timeout.ms=300
tc_wait_for 20 grep -q "assigned t2 partitions" "$TMP/e.log" || tc_fail "e: no assignment"
$PY "$H" produce "$BROKERS" t2 "(b'E', $(tick E 1 1.5))"
tc_wait_for 15 sh -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' $URL/healthz)\" = 503 ]" ||
  tc_fail "/healthz stayed $(code /healthz) with a processed tick no checkpoint can cover"
code /healthz >/dev/null
grep -q "not covered by a checkpoint" "$TMP/body" || tc_fail "/healthz body: $(body)"
echo "ok: /healthz 503: $(body)"
tc_stop "$RUN_PID" 10

# 3d. The output paused (a full producer queue to a topic without a leader).
tc_run f --input-topic t3 --output-topic dead3 --unhealthy-after 1500 \
  -X producer.queue.buffering.max.messages=10 -X producer.message.timeout.ms=60000
tc_wait_for 20 grep -q "assigned t3 partitions" "$TMP/f.log" || tc_fail "f: no assignment"
specs=()
for i in $(seq 1 30); do specs+=("(b'P', $(tick P "$i" 1.5))"); done
$PY "$H" produce "$BROKERS" t3 "${specs[@]}"
tc_wait_for 15 sh -c "curl -s $URL/healthz | grep -q 'output paused for'" ||
  tc_fail "/healthz does not report the paused output: $(code /healthz) $(body)"
code /healthz >/dev/null
echo "ok: /healthz $(code /healthz): $(body)"
tc_stop "$RUN_PID" 10
# The shutdown's flush gives up once and says so once (its second flush, after leaving the group,
# does not wait and once said it again, "after 0 ms").
tc_eq "flush warnings at shutdown" "$(grep -c 'flush: [0-9]* messages still unacknowledged' "$TMP/f.log")" 1

# 4. Honest lag: 500 ticks of one instrument (one partition of four), no checkpoint for a minute.
tc_run g --input-topic lagt --output-topic lagp --stats-topic lags --stats-interval 500 \
  --checkpoint-interval 60000
tc_wait_for 20 grep -q "assigned lagt partitions" "$TMP/g.log" || tc_fail "g: no assignment"
specs=()
for i in $(seq 1 500); do specs+=("(b'L', $(tick L "$i" 1.5))"); done
$PY "$H" produce "$BROKERS" lagt "${specs[@]}"
tc_wait_for 15 sh -c "curl -s $URL/metrics | grep -q '^tickcast_ticks_in_total 500'" ||
  tc_fail "g: not all 500 ticks in"
sleep 2.5 # librdkafka's statistics (each second) and two stats messages
curl -s "$URL/metrics" >"$TMP/g.metrics"
LP=$(sed -n 's/^tickcast_partition_ticks_in_total{partition="\([0-9]\)"} 500$/\1/p' "$TMP/g.metrics")
[ -n "$LP" ] || tc_fail "no partition with the 500 ticks: $(grep ticks_in "$TMP/g.metrics")"
for p in 0 1 2 3; do
  tc_eq "/metrics lag of partition $p" \
    "$(sed -n "s/^tickcast_partition_lag_messages{partition=\"$p\"} //p" "$TMP/g.metrics")" 0
  want=0; [ "$p" = "$LP" ] && want=500
  tc_eq "/metrics uncheckpointed of partition $p" \
    "$(sed -n "s/^tickcast_partition_uncheckpointed_messages{partition=\"$p\"} //p" "$TMP/g.metrics")" "$want"
done
$PY "$ROOT/tests/e2e_run.py" collect "$BROKERS" lags 1000 3 "$TMP/g.stats" >/dev/null
$PY - "$TMP/g.stats" "$LP" <<'PYEOF' || tc_fail "stats lag: $(tail -n 1 "$TMP/g.stats" | cut -c1-400)"
import json, sys
last = json.loads(json.loads(open(sys.argv[1]).readlines()[-1])["value"])
lp = sys.argv[2]
assert last["lag"] == {"0": 0, "1": 0, "2": 0, "3": 0}, last["lag"]
assert last["uncheckpointed"] == {p: (500 if p == lp else 0) for p in "0123"}, last["uncheckpointed"]
assert last["kafka_errors"] == 0, last["kafka_errors"]
print("ok: stats lag", last["lag"], "uncheckpointed", last["uncheckpointed"], "kafka_errors 0")
PYEOF
# The Kafka clients' error events are counted: none so far; the broker gone, each client's
# "all brokers down" (and the transport errors before it) in tickcast_kafka_errors_total.
tc_eq "/metrics Kafka errors" "$(sed -n 's/^tickcast_kafka_errors_total //p' "$TMP/g.metrics")" 0
kill -9 "$BROKER_PID"
tc_forget "$BROKER_PID"
tc_wait_for 15 grep -q "tickcast-run#consumer-1: _ALL_BROKERS_DOWN" "$TMP/g.log" ||
  tc_fail "g: no error event of the consumer: $(grep -v rdkafka "$TMP/g.log" | tail -n 3)"
n=$(grep -c "WARN  run: .*: _\|ERROR run: .*: fatal" "$TMP/g.log")
errs=$(curl -s "$URL/metrics" | sed -n 's/^tickcast_kafka_errors_total //p')
[ "$errs" -ge "$n" ] && [ "$n" -ge 1 ] ||
  tc_fail "tickcast_kafka_errors_total $errs after $n error events logged as warnings"
echo "ok: tickcast_kafka_errors_total $errs with the broker gone ($n error events logged as warnings)"
kill -9 "$RUN_PID"
tc_forget "$RUN_PID"
echo "PASS e2e_health"
