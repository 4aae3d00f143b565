#!/usr/bin/env bash
# e2e_crash_threads.sh: exactly-once state across crashes with stream threads. `tickcast run
# --threads 2` works through a backlog of ticks on 4 partitions in one group and is killed with
# SIGKILL at random moments 4 times and stopped with SIGTERM once, restarting each time with 2, 1
# or 3 threads, so that partitions move between threads and their state files (DB, DB.1, DB.2)
# and come back from the changelog. At the end, predictions de-duplicated by src are exactly
# `tickcast replay`'s: none missing, repeats carry equal values, no tick applied twice.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/crash_lib.sh"
crash_setup 5
# One group throughout, with a 6 s session: a member killed with SIGKILL holds its partitions
# until its session times out.
start_run() { crash_run --group g --threads "$1" -X consumer.session.timeout.ms=6000; }

RANDOM=11
for threads in 2 1 3 2 2; do
  start_run "$threads"
  # The run with 3 threads is killed only once its third thread holds a partition (it may wait a
  # session for its assignment: RUN.md, "Known limits").
  [ "$threads" != 3 ] || tc_wait_for 30 grep -q "run\[2\]: assigned ticks partitions \[[0-9]" "$TMP/run.log" ||
    tc_fail "thread 2 was assigned no partition in 30 s: $(grep "assigned ticks" "$TMP/run.log" | tail -n 3)"
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
grep -q "run\[1\]: assigned ticks partitions \[[0-9]" "$TMP/run.log" ||
  tc_fail "thread 1 was never assigned a partition: $(grep "assigned ticks" "$TMP/run.log")"
ls "$DB" "$DB.1" "$DB.2" >/dev/null || tc_fail "state files: $(ls "$TMP")"
$X check "$BROKERS" predictions "$N" "$TMP/replay.csv" - "$TMP/m.safetensors"
echo "PASS e2e_crash_threads"
