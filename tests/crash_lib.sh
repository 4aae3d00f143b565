# crash_lib.sh: what tests/e2e_crash.sh and tests/e2e_crash_threads.sh share (sourced after
# lib.sh). crash_setup SEED: a model, N ticks over K instruments, their replay, a broker with
# the ticks in 4 partitions. crash_run ARGS...: `tickcast run` on them with small chunks and a
# small, slow producer queue (a few hundred predictions/s), so that the backlog takes several runs
# to work through and every kill lands with outputs unacknowledged; ARGS name the group and
# more; it returns once the run was assigned partitions. kill9: SIGKILL to that run. distinct:
# the distinct src among the predictions so far.
X="$PY $ROOT/tests/e2e_crash.py"
N=3000
K=60
DB="$TMP/state.db"
RUNS=0

crash_setup() {
  $PY "$ROOT/tests/e2e_run.py" model "$TMP/m.safetensors" 1 16 7
  $X gen "$TMP/ticks.csv" $N $K "$1"
  "$TC" replay --model "$TMP/m.safetensors" --input "$TMP/ticks.csv" --output "$TMP/replay.csv" \
    2>/dev/null || tc_fail "replay failed"
  tc_broker_start --topics ticks:4,predictions:4,tickcast.dlq:1,tickcast.stats:1
  "$TC" feed --brokers "$BROKERS" --topic ticks --input "$TMP/ticks.csv" 2>"$TMP/feed.log" ||
    tc_fail "feed failed: $(tail -n 3 "$TMP/feed.log")"
}

crash_run() {
  echo "--- run $*" >>"$TMP/run.log"
  local before
  before=$(grep -c 'assigned ticks partitions' "$TMP/run.log" || true)
  tc_bg "$TC" run --brokers "$BROKERS" --model "$TMP/m.safetensors" --state "$DB" \
    --checkpoint-interval 200 --stats-interval 1000 --http off --chunk 32 \
    -X producer.linger.ms=100 -X producer.queue.buffering.max.messages=64 "$@" \
    >/dev/null 2>>"$TMP/run.log"
  RUN_PID=$BG_PID
  RUNS=$((RUNS + 1))
  # Joining a group takes the broker's initial rebalance delay (~3 s); wait for the partitions.
  tc_wait_for 30 sh -c "[ \$(grep -c 'assigned ticks partitions' '$TMP/run.log') -gt $before ]" ||
    tc_fail "run $RUNS ($*) got no partitions in 30 s"
}

kill9() {
  kill -KILL "$RUN_PID"
  wait "$RUN_PID" 2>/dev/null || true
  local keep=() q
  for q in "${TC_PIDS[@]}"; do [ "$q" == "$RUN_PID" ] || keep+=("$q"); done
  TC_PIDS=("${keep[@]}")
}

distinct() { $X count "$BROKERS" predictions; }
