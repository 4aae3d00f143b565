#!/usr/bin/env bash
# e2e_revoke_async.sh: a revoke never blocks the loop. Member a holds outputs that the broker never
# acknowledges (the output topic has no leader; message.timeout.ms is long), then b joins the group
# and a's partitions are revoked. a waits for a final checkpoint that cannot come, without blocking:
# /healthz answers within a fraction of a second throughout (the producer flush of earlier versions
# held the loop for 5 s here), and the partitions leave after the 5 s bound without a final
# checkpoint, which a logs.
. "$(dirname "$0")/lib.sh"
$PY "$ROOT/tests/e2e_run.py" model "$TMP/m.safetensors" 1 8 3
$PY "$ROOT/tests/e2e_crash.py" gen "$TMP/t.csv" 200 10 4
tc_broker_start --topics ticks:4,predictions:4,tickcast.dlq:1,tickcast.stats:1 --no-leader predictions
"$TC" feed --brokers "$BROKERS" --topic ticks --input "$TMP/t.csv" 2>"$TMP/feed.log" ||
  tc_fail "feed failed: $(tail -n 3 "$TMP/feed.log")"
run_member() { # name
  tc_bg "$TC" run --brokers "$BROKERS" --group g --model "$TMP/m.safetensors" --state "$TMP/$1.db" \
    --http 127.0.0.1:0 -X producer.message.timeout.ms=60000 -X consumer.session.timeout.ms=6000 \
    2>"$TMP/run-$1.log"
  tc_wait_for 10 grep -q "http on" "$TMP/run-$1.log" || tc_fail "$1: no http line"
}
run_member a
PORT=$(sed -n 's/.*http on .* (port \([0-9]*\)).*/\1/p' "$TMP/run-a.log" | head -n 1)
tc_wait_for 20 sh -c "curl -s http://127.0.0.1:$PORT/metrics | grep -q '^tickcast_ticks_in_total 200$'" ||
  tc_fail "a did not consume the 200 ticks"
# Poll a's /healthz every 50 ms while b joins and a's revoke runs its course.
$PY - "$PORT" "$TMP/poll.txt" <<'PYEOF' &
import sys, time, urllib.request
port, out = sys.argv[1], sys.argv[2]
worst, n, t_end = 0.0, 0, time.time() + 25
while time.time() < t_end:
    t0 = time.time()
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10).read()
    except Exception:
        pass
    worst = max(worst, time.time() - t0)
    n += 1
    time.sleep(0.05)
open(out, "w").write(f"{n} {worst:.3f}\n")
PYEOF
POLL=$!
run_member b
tc_wait_for 30 grep -q "revoked ticks partitions" "$TMP/run-a.log" || tc_fail "a was never revoked"
grep -q "without a final checkpoint after" "$TMP/run-a.log" ||
  tc_fail "a's revoke should have ended without a final checkpoint: $(grep revok "$TMP/run-a.log")"
wait "$POLL"
read -r polls worst <"$TMP/poll.txt"
echo "ok: $polls /healthz requests during the revoke, the slowest took $worst s"
[ "$polls" -ge 100 ] || tc_fail "only $polls polls"
$PY -c "import sys; sys.exit(0 if float(sys.argv[1]) < 1.0 else 1)" "$worst" ||
  tc_fail "/healthz took $worst s during a revoke: the loop was blocked"
grep "revok" "$TMP/run-a.log" | sed 's/^/  /'
echo "PASS e2e_revoke_async"
