#!/usr/bin/env bash
# e2e_crash_threads.sh: exactly-once state across crashes with stream threads. `tickcast run
# --threads 2` works through a backlog of ticks on 4 partitions in one group and is killed with
# SIGKILL at random moments 4 times and stopped with SIGTERM once, restarting each time with 2, 1
# or 3 threads, so that partitions move between threads and their state files (DB, DB.1, DB.2)
# and come back from the changelog. At the end, predictions de-duplicated by src are exactly
# `tickcast replay`'s: none missing, repeats carry equal values, no tick applied twice.
. "$(dirname "$0")/lib.sh"
X="$PY $ROOT/tests/e2e_crash.py"
N=3000
K=60
DB="$TMP/state.db"
$PY "$ROOT/tests/e2e_run.py" model "$TMP/m.safetensors" 1 16 7
$X gen "$TMP/ticks.csv" $N $K 5
"$TC" replay --model "$TMP/m.safetensors" --input "$TMP/ticks.csv" --output "$TMP/replay.csv" \
  2>/dev/null || tc_fail "replay failed"
tc_broker_start --topics ticks:4,predictions:4,tickcast.dlq:1,tickcast.stats:1
"$TC" feed --brokers "$BROKERS" --topic ticks --input "$TMP/ticks.csv" 2>"$TMP/feed.log" ||
  tc_fail "feed failed: $(tail -n 3 "$TMP/feed.log")"

# As e2e_crash.sh: small chunks and a small, slow producer queue, so that the backlog takes several
# runs and every kill lands with outputs unacknowledged. One group throughout, with a 6 s session:
# a member killed with SIGKILL holds its partitions until its session times out.
RUNS=0
start_run() { # threads
  echo "--- run with --threads $1" >>"$TMP/run.log"
  local before
  before=$(grep -c 'assigned ticks partitions' "$TMP/run.log" || true)
  tc_bg "$TC" run --brokers "$BROKERS" --model "$TMP/m.safetensors" --state "$DB" --group g \
    --threads "$1" --checkpoint-interval 200 --stats-interval 1000 --http off --chunk 32 \
    -X producer.linger.ms=100 -X producer.queue.buffering.max.messages=64 \
    -X consumer.session.timeout.ms=6000 >/dev/null 2>>"$TMP/run.log"
  RUN_PID=$BG_PID
  RUNS=$((RUNS + 1))
  tc_wait_for 30 sh -c "[ \$(grep -c 'assigned ticks partitions' '$TMP/run.log') -gt $before ]" ||
    tc_fail "run $RUNS got no partitions in 30 s"
}
kill9() {
  kill -KILL "$RUN_PID"
  wait "$RUN_PID" 2>/dev/null || true
  local keep=() q
  for q in "${TC_PIDS[@]}"; do [ "$q" == "$RUN_PID" ] || keep+=("$q"); done
  TC_PIDS=("${keep[@]}")
}
distinct() { $X count "$BROKERS" predictions; }

RANDOM=11
for threads in 2 1 3 2 2; do
  start_run "$threads"
  if [ "$RUNS" = 4 ]; then
    sleep 1
    tc_stop "$RUN_PID" 15
    tc_eq "run $RUNS (--threads $threads) exit after SIGTERM" "$STOP_RC" 0
    continue
  fi
  sleep "$((5 + RANDOM % 10))e-1"
  kill9
  echo "killed run $RUNS (--threads $threads) after $(distinct) distinct predictions"
done
# The last run processes the rest; then SIGTERM.
start_run 2
for _ in $(seq 60); do [ "$(distinct)" -ge "$N" ] && break; sleep 1; done
tc_stop "$RUN_PID" 15
tc_eq "last run exit after SIGTERM" "$STOP_RC" 0
grep -q "from the changelog g.state" "$TMP/run.log" ||
  tc_fail "no partition resumed from the changelog: $(grep -i changelog "$TMP/run.log" | head -5)"
ls "$DB" "$DB.1" "$DB.2" >/dev/null || tc_fail "state files: $(ls "$TMP")"
$X check "$BROKERS" predictions "$N" "$TMP/replay.csv" - "$TMP/m.safetensors"
echo "PASS e2e_crash_threads"
