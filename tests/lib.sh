# lib.sh: shell helpers for the end-to-end tests (tests/e2e_*.sh): a scratch directory, background
# processes that are always cleaned up, an embedded `tickcast broker` on a free port, waiting with
# a deadline, and assertions. Source it: `. "$(dirname "$0")/lib.sh"`. Not a test by itself.
#
#   tc_broker_start [--topics ticks:8,...]  sets BROKERS (bootstrap list) and BROKER_PID
#   tc_bg CMD...                            runs CMD in the background, sets BG_PID, killed at exit
#   tc_wait_for SECONDS CMD...              retries CMD every 0.1 s until it succeeds or time is up
#   tc_fail MESSAGE                         prints "FAIL: MESSAGE" and exits 1
#   tc_eq WHAT FOUND EXPECTED               fails unless FOUND == EXPECTED (strings)
#   tc_one_error WHAT RC FILE REGEX         fails unless RC is 1 and FILE holds one line, matching REGEX
#   tc_stop PID [SECONDS]                   SIGTERM, wait up to SECONDS (default 10), sets STOP_RC
#   tc_sqlite_lock DB, tc_sqlite_unlock     another process holds SQLite's write lock on DB
#   tc_run NAME ARGS...                     `tickcast run` on $BROKERS in group NAME with model
#                                           $TMP/live.safetensors, state $TMP/NAME.db, log $TMP/NAME.log,
#                                           checkpoints every 200 ms, HTTP on a free port, ARGS last;
#                                           sets RUN_PID, PORT and URL once HTTP is up
#   tc_changelog_only MODEL CSV N DB        feeds CSV to topic ticks; a member of group g1 (state
#                                           DB, log $TMP/run1.log) predicts its N ticks and stops
#                                           after a final checkpoint; DB is deleted, so that only
#                                           the changelog g1.state holds the states
# Also: ROOT (repo), TC (the tickcast binary; $TICKCAST overrides; $TICKCAST_BROKER runs
# tc_broker_start's broker from another, so that an old build's daemon meets today's broker),
# TMP (scratch dir, removed at exit), PY (/usr/bin/python3, Debian's, which has confluent_kafka
# and numpy).

set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TC=${TICKCAST:-$ROOT/tickcast}
PY=/usr/bin/python3
export OPENBLAS_NUM_THREADS=1
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tickcast-e2e.XXXXXX")
TC_PIDS=()

tc_cleanup() {
  local rc=$? pid
  set +e
  for pid in "${TC_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${TC_PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  if [ "$rc" -ne 0 ] && [ -z "${TC_KEEP_TMP:-}" ]; then
    # Show the logs of the background processes to explain the failure.
    for f in "$TMP"/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 20 "$f"; }; done
  fi
  [ -n "${TC_KEEP_TMP:-}" ] && echo "kept $TMP" || rm -rf "$TMP"
  exit "$rc"
}
trap tc_cleanup EXIT
trap 'exit 130' INT TERM

tc_fail() { echo "FAIL: $*" >&2; exit 1; }

tc_eq() { # what found expected
  [ "$2" == "$3" ] || tc_fail "$1: found '$2', expected '$3'"
  echo "ok: $1 = $3"
}

tc_one_error() { # what rc file regex: a command that failed with one error line
  tc_eq "$1: exit status" "$2" 1
  [ "$(wc -l <"$3")" -eq 1 ] || tc_fail "$1: not one error line: $(cat "$3")"
  grep -qE "$4" "$3" || tc_fail "$1: message: $(cat "$3")"
  echo "ok: $1: $(cat "$3")"
}

tc_bg() { # CMD... ; stdout/stderr are the caller's business (redirect the call)
  "$@" &
  BG_PID=$!
  TC_PIDS+=("$BG_PID")
}

tc_wait_for() { # seconds cmd...
  local deadline=$((SECONDS + $1)); shift
  until "$@" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

# Without OPENBLAS_NUM_THREADS (set above), OpenBLAS starts a worker per core when it is loaded,
# and each spins for about 0.1 s; tickcast stops them when it loads OpenBLAS (nn/blas.c), and no
# command may start them again. Runs `tickcast CMD ARGS...` with --input a FIFO nobody has opened
# yet and without the variable, counts its threads 0.3 s in (past main's start) and its mappings
# of libopenblas, then writes FEED into the FIFO and waits for it (it must exit 0). NTHREADS = the
# count, NBLAS = the mappings (0: OpenBLAS not loaded).
tc_threads_waiting() { # feed cmd args...
  local feed=$1 fifo="$TMP/threads.fifo" pid
  shift
  rm -f "$fifo"
  mkfifo "$fifo"
  env -u OPENBLAS_NUM_THREADS "$TC" "$@" --input "$fifo" 2>"$TMP/threads.err" &
  pid=$!
  tc_wait_for 5 test -e "/proc/$pid/task"
  sleep 0.3
  NTHREADS=$(find "/proc/$pid/task" -mindepth 1 -maxdepth 1 | wc -l)
  NBLAS=$(grep -c 'libopenblas' "/proc/$pid/maps" || true)
  cat "$feed" >"$fifo"
  wait "$pid" || tc_fail "$1 from a FIFO: $(cat "$TMP/threads.err")"
}

# Starts `tickcast broker` with the given arguments; its first stdout line is the bootstrap list.
tc_broker_start() {
  local out="$TMP/broker.out"
  : >"$out"
  tc_bg "${TICKCAST_BROKER:-$TC}" broker "$@" >"$out" 2>"$TMP/broker.log"
  BROKER_PID=$BG_PID
  tc_wait_for 10 grep -q . "$out" || tc_fail "tickcast broker printed no bootstrap list in 10 s"
  BROKERS=$(head -n 1 "$out")
  echo "broker at $BROKERS (pid $BROKER_PID)"
}

# Another process takes SQLite's write lock on DB (BEGIN IMMEDIATE), so that its writers fail
# with SQLITE_BUSY, and holds it until tc_sqlite_unlock (at most 40 s). Returns once it holds it;
# LOCKER_PID is that process.
tc_sqlite_lock() { # db
  rm -f "$TMP/sqlite.locked" "$TMP/sqlite.release"
  $PY - "$1" "$TMP/sqlite.locked" "$TMP/sqlite.release" <<'EOF' &
import os, sqlite3, sys, time
db, locked, release = sys.argv[1:]
c = sqlite3.connect(db, isolation_level=None, timeout=10)
c.execute("BEGIN IMMEDIATE")
open(locked, "w").close()
t = time.time()
while not os.path.exists(release) and time.time() - t < 40:
    time.sleep(0.05)
c.execute("ROLLBACK")
EOF
  LOCKER_PID=$!
  TC_PIDS+=("$LOCKER_PID")
  tc_wait_for 15 test -e "$TMP/sqlite.locked" || tc_fail "the locker did not get the lock of $1"
}
tc_sqlite_unlock() { touch "$TMP/sqlite.release"; }

tc_stop() { # pid [seconds]: SIGTERM and wait; STOP_RC = exit status (124 if it did not exit)
  local pid=$1 t=${2:-10} i
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < t * 10; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then STOP_RC=124; kill -KILL "$pid"; wait "$pid" 2>/dev/null || true
  else STOP_RC=0; wait "$pid" || STOP_RC=$?; fi
  tc_forget "$pid"
}

tc_forget() { # pid: no longer stopped at exit (the caller ended it)
  local keep=() q
  for q in "${TC_PIDS[@]}"; do [ "$q" == "$1" ] || keep+=("$q"); done
  TC_PIDS=("${keep[@]}")
}

tc_run() { # name args...
  local name=$1
  shift
  tc_bg "$TC" run --brokers "$BROKERS" --model "$TMP/live.safetensors" --state "$TMP/$name.db" \
    --group "$name" --checkpoint-interval 200 --http 127.0.0.1:0 \
    -X consumer.session.timeout.ms=6000 "$@" 2>"$TMP/$name.log"
  RUN_PID=$BG_PID
  tc_wait_for 10 grep -q "http on" "$TMP/$name.log" || tc_fail "$name: no http line"
  PORT=$(sed -n 's/.*http on .* (port \([0-9]*\)).*/\1/p' "$TMP/$name.log" | head -n 1)
  URL="http://127.0.0.1:$PORT"
}

tc_changelog_only() { # model csv n db
  "$TC" feed --brokers "$BROKERS" --topic ticks --input "$2" 2>"$TMP/feed.log" ||
    tc_fail "feed failed: $(tail -n 3 "$TMP/feed.log")"
  tc_bg "$TC" run --brokers "$BROKERS" --model "$1" --state "$4" --group g1 \
    --checkpoint-interval 100 --http off -X consumer.session.timeout.ms=6000 2>"$TMP/run1.log"
  local pid=$BG_PID
  tc_wait_for 60 sh -c "[ \"\$($PY "$ROOT/tests/e2e_crash.py" count "$BROKERS" predictions)\" -ge $3 ]" ||
    tc_fail "the first member did not predict $3 ticks"
  tc_stop "$pid" 15
  tc_eq "first member's exit" "$STOP_RC" 0
  grep -q "revoked ticks partitions \[0,1\] after a final checkpoint" "$TMP/run1.log" ||
    tc_fail "no final checkpoint: $(grep revoked "$TMP/run1.log")"
  rm -f "$4" "$4-wal" "$4-shm"
}

# The set-up of the tests whose ticks come in two phases: model $TMP/m.safetensors (L=1, H=16),
# $TMP/all.csv (600 ticks of 40 instruments, seed SEED) split into $TMP/first.csv (400) and
# $TMP/second.csv (200), a broker with group g1's topics taking commands from the FIFO $TMP/ctl
# (`tickcast broker --commands`), and first.csv fed to ticks.
tc_two_phase() { # seed
  $PY "$ROOT/tests/e2e_run.py" model "$TMP/m.safetensors" 1 16 1
  $PY "$ROOT/tests/e2e_crash.py" gen "$TMP/all.csv" 600 40 "$1"
  head -n 401 "$TMP/all.csv" >"$TMP/first.csv"
  { head -n 1 "$TMP/all.csv"; tail -n +402 "$TMP/all.csv"; } >"$TMP/second.csv"
  mkfifo "$TMP/ctl"
  tc_broker_start --topics ticks:2,predictions:2,tickcast.dlq:1,tickcast.stats:1,g1.state:2 \
    --commands "$TMP/ctl"
  "$TC" feed --brokers "$BROKERS" --topic ticks --input "$TMP/first.csv" 2>"$TMP/feed.log" ||
    tc_fail "feed failed: $(tail -n 3 "$TMP/feed.log")"
}

# A member of group g1 on the model and state file $TMP/s.db of tc_two_phase, stderr to LOG,
# with more flags; RUN_PID is its pid.
tc_member() { # log [flags...]
  local log=$1
  shift
  tc_bg "$TC" run --brokers "$BROKERS" --model "$TMP/m.safetensors" --state "$TMP/s.db" --group g1 \
    --checkpoint-interval 100 --http off -X consumer.session.timeout.ms=6000 "$@" 2>"$log"
  RUN_PID=$BG_PID
}

# tc_two_phase SEED, then a first member (stderr $TMP/run1.log) predicts first.csv's 400 ticks,
# checkpoints them and stops (exit 0), and its state file is removed: the next member runs
# elsewhere and finds their states in the changelog alone.
tc_first_gone() { # seed
  tc_two_phase "$1"
  tc_member "$TMP/run1.log"
  tc_wait_for 60 sh -c "[ \"\$($PY "$ROOT/tests/e2e_crash.py" count "$BROKERS" predictions)\" -ge 400 ]" ||
    tc_fail "the first member did not predict 400 ticks: $(grep -v rdkafka "$TMP/run1.log" | tail -n 3)"
  sleep 1 # checkpoints go on
  tc_stop "$RUN_PID" 15
  tc_eq "first member's exit" "$STOP_RC" 0
  rm -f "$TMP/s.db" "$TMP/s.db-wal" "$TMP/s.db-shm"
}

# The sum of the next offsets that state file DB stores (inspect reads it while a daemon runs), and
# whether it is N.
tc_offsets_sum() { # db
  "$TC" inspect --state "$1" --json 2>/dev/null |
    $PY -c 'import json,sys; print(sum(o["next_offset"] for o in json.load(sys.stdin)["offsets"]))'
}
tc_offsets_are() { # db n
  [ "$(tc_offsets_sum "$1")" = "$2" ]
}

# A member of group g1 (tc_member, stderr $TMP/run1.log) that commits no offset to the group
# predicts N ticks, checkpoints them all and is killed (SIGKILL); its state file $TMP/s.db is
# removed: the next member runs on another machine, and only the changelog has the states.
tc_killed_uncommitted() { # n
  tc_member "$TMP/run1.log" -X consumer.auto.commit.interval.ms=600000
  tc_wait_for 60 sh -c "[ \"\$($PY "$ROOT/tests/e2e_crash.py" count "$BROKERS" predictions)\" -ge $1 ]" ||
    tc_fail "the first member did not predict $1 ticks"
  # The state file is written after the changelog: once it holds all N offsets, so does the
  # changelog.
  tc_wait_for 20 tc_offsets_are "$TMP/s.db" "$1" || tc_fail "no checkpoint of all $1 ticks"
  kill -KILL "$RUN_PID"
  wait "$RUN_PID" 2>/dev/null || true
  tc_forget "$RUN_PID"
  rm -f "$TMP/s.db" "$TMP/s.db-wal" "$TMP/s.db-shm"
}

# Sends LINE to the broker's --commands FIFO $TMP/ctl and waits until its log says WHAT.
tc_broker_cmd() { # line what
  echo "$1" >"$TMP/ctl"
  tc_wait_for 10 grep -q "$2" "$TMP/broker.log" ||
    tc_fail "the broker did not take '$1': $(tail -n 3 "$TMP/broker.log")"
}

# Feeds $TMP/second.csv to ticks and waits until N distinct ticks have predictions (the member's
# log LOG says why not).
tc_feed_second() { # n log
  "$TC" feed --brokers "$BROKERS" --topic ticks --input "$TMP/second.csv" 2>"$TMP/feed2.log" ||
    tc_fail "the second feed failed: $(tail -n 3 "$TMP/feed2.log")"
  tc_wait_for 60 sh -c "[ \"\$($PY "$ROOT/tests/e2e_crash.py" count "$BROKERS" predictions)\" -ge $1 ]" ||
    tc_fail "the ticks of second.csv were not predicted: $(grep -v rdkafka "$2" | tail -n 5)"
}

# Every prediction (N distinct ticks, none missing, repeats equal) equals a replay of $TMP/all.csv
# with $TMP/m.safetensors (tests/e2e_crash.py check).
tc_check_replay() { # n
  "$TC" replay --model "$TMP/m.safetensors" --input "$TMP/all.csv" --output "$TMP/replay.csv" \
    2>/dev/null
  $PY "$ROOT/tests/e2e_crash.py" check "$BROKERS" predictions "$1" "$TMP/replay.csv" - \
    "$TMP/m.safetensors" >"$TMP/check.txt" || tc_fail "$(cat "$TMP/check.txt")"
  cat "$TMP/check.txt"
}

# The set-up of the tests of a SIGHUP while partitions wait for an unreadable changelog: models
# $TMP/m.safetensors and m2 (L=1, H=16), $TMP/all.csv (500 ticks of 40 instruments) split into
# first.csv (400) and second.csv (100); the first member checkpoints first.csv to the changelog
# alone (tc_changelog_only, group g1); the broker fails every Fetch request; a second member
# (--on-model-change MODE, output preds2, stderr $TMP/run2.log, RUN_PID) waits for the changelog
# and is sent SIGHUP with m2 at the path of its model; once it has swapped, fetches are let through
# again (`clear-requests Fetch`); once the swap came before the retry that restored the
# partitions, second.csv is fed,
# its 100 predictions are awaited in preds2, and the member is stopped (exit 0). TOPICS: more
# topics for the broker.
tc_wait_reload() { # mode [topics]
  $PY "$ROOT/tests/e2e_run.py" model "$TMP/m.safetensors" 1 16 1
  $PY "$ROOT/tests/e2e_run.py" model "$TMP/m2.safetensors" 1 16 2
  $PY "$ROOT/tests/e2e_crash.py" gen "$TMP/all.csv" 500 40 3
  head -n 401 "$TMP/all.csv" >"$TMP/first.csv"
  { head -n 1 "$TMP/all.csv"; tail -n +402 "$TMP/all.csv"; } >"$TMP/second.csv"
  mkfifo "$TMP/ctl"
  tc_broker_start --topics "ticks:2,predictions:2,preds2:2,tickcast.dlq:1,tickcast.stats:1,g1.state:2${2:+,$2}" \
    --commands "$TMP/ctl"
  tc_changelog_only "$TMP/m.safetensors" "$TMP/first.csv" 400 "$TMP/s.db"
  tc_broker_cmd "fail-requests Fetch:UNKNOWN:100000" "100000 requests will fail"
  cp "$TMP/m.safetensors" "$TMP/live.safetensors"
  tc_bg "$TC" run --brokers "$BROKERS" --model "$TMP/live.safetensors" --state "$TMP/s.db" --group g1 \
    --output-topic preds2 --checkpoint-interval 100 --http off --on-model-change "$1" 2>"$TMP/run2.log"
  RUN_PID=$BG_PID
  tc_wait_for 60 grep -q "wait, paused" "$TMP/run2.log" ||
    tc_fail "the partitions did not wait: $(grep -v rdkafka "$TMP/run2.log" | tail -n 5)"
  cp "$TMP/m2.safetensors" "$TMP/live.safetensors"
  kill -HUP "$RUN_PID"
  local how=reset
  [ "$1" = keep ] && how=kept
  tc_wait_for 10 grep -q "SIGHUP: model .* ($how instrument states)" "$TMP/run2.log" ||
    tc_fail "no reload: $(grep SIGHUP "$TMP/run2.log")"
  tc_broker_cmd "clear-requests Fetch" "queued failures dropped: Fetch"
  tc_wait_for 30 grep -q "restored ticks partitions" "$TMP/run2.log" ||
    tc_fail "no retry restored the partitions: $(grep -E 'wait|restor' "$TMP/run2.log" | grep -v rdkafka | tail -n 3)"
  local hup got
  hup=$(grep -n "SIGHUP: model" "$TMP/run2.log" | head -n 1 | cut -d: -f1)
  got=$(grep -n "restored ticks partitions" "$TMP/run2.log" | head -n 1 | cut -d: -f1)
  [ "$hup" -lt "$got" ] || tc_fail "the partitions were restored before the swap (lines $got, $hup)"
  "$TC" feed --brokers "$BROKERS" --topic ticks --input "$TMP/second.csv" 2>"$TMP/feed2.log" ||
    tc_fail "feed failed: $(tail -n 3 "$TMP/feed2.log")"
  tc_wait_for 60 sh -c "[ \"\$($PY "$ROOT/tests/e2e_crash.py" count "$BROKERS" preds2)\" -ge 100 ]" ||
    tc_fail "the 100 new ticks were not predicted: $(grep -E 'wait|restor|seek' "$TMP/run2.log" | grep -v rdkafka | tail -n 5)"
  tc_stop "$RUN_PID" 15
  tc_eq "second member's exit" "$STOP_RC" 0
}

# SIGTERM to RUN_PID, whose stderr is LOG: it must exit 0 with its shutdown line within the
# shutdown's bound, not by the 9.5 s watchdog; WHEN names the moment in the messages.
tc_stop_bounded() { # log when
  local t0 ms
  t0=$(date +%s%N)
  tc_stop "$RUN_PID" 15
  ms=$((($(date +%s%N) - t0) / 1000000))
  echo "stopped in $ms ms $2"
  ! grep -q "shutdown did not finish" "$1" || tc_fail "the watchdog ended the shutdown $2 ($ms ms)"
  tc_eq "exit after SIGTERM $2" "$STOP_RC" 0
  [ "$ms" -lt 9500 ] || tc_fail "the shutdown $2 took $ms ms"
  grep -q "stopped: " "$1" || tc_fail "no shutdown line: $(grep -v rdkafka "$1" | tail -n 3)"
}
