#!/usr/bin/env bash
# e2e_crash.sh: exactly-once state across crashes. While `tickcast run --state DB` works
# through a backlog of ticks, it is killed with SIGKILL at random moments 5 times and stopped with
# SIGTERM twice, restarting each time (under a new consumer group each time, so only the
# offsets stored in DB can say where to resume). At the end: predictions de-duplicated by src
# are exactly `tickcast replay`'s (none missing, repeats carry equal values, no tick applied twice)
# and `tickcast inspect` shows every instrument with the right n and offsets adding up to N.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/crash_lib.sh"
crash_setup 3
start_run() { crash_run --group "$1"; } # a new group each time (see below)

# Run 1, stopped cleanly after a second of work.
start_run g1
sleep 1
tc_stop "$RUN_PID"
tc_eq "run 1 exit after SIGTERM" "$STOP_RC" 0
"$TC" inspect --state "$DB" --json >"$TMP/i1.json" || tc_fail "inspect after run 1 failed"
I1=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["instruments"])' "$TMP/i1.json")
[ "$I1" -gt 0 ] || tc_fail "run 1 wrote no instrument to $DB"
echo "ok: run 1 checkpointed $I1 instruments"

# Five kill -9 at random moments and a SIGTERM restart, each restart resuming from DB. (Every
# run joins a new group: the development broker takes 20+ s to let a member rejoin a group it
# left, and a new group proves the stored offsets, not Kafka's committed ones, decide.)
RANDOM=7
for g in g2 g3 g4 g5 g6 g7; do
  start_run $g
  if [ $g = g4 ]; then
    sleep 1
    tc_stop "$RUN_PID"
    tc_eq "run under $g exit after SIGTERM" "$STOP_RC" 0
    continue
  fi
  sleep "$((1 + RANDOM % 12))e-1"
  kill9
  echo "killed the run under $g"
done

# The last run processes the rest; then SIGTERM.
start_run g8
for _ in $(seq 40); do [ "$(distinct)" -ge "$N" ] && break; sleep 1; done
tc_stop "$RUN_PID"
tc_eq "last run exit after SIGTERM" "$STOP_RC" 0
"$TC" inspect --state "$DB" --json --top "$K" >"$TMP/final.json" || tc_fail "inspect failed"
$X check "$BROKERS" predictions "$N" "$TMP/replay.csv" "$TMP/final.json" "$TMP/m.safetensors"
echo "e2e_crash: all passed"
