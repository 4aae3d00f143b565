#!/usr/bin/env bash
# cpu_tick.sh: CPU time per tick of `tickcast run` (H=64) and of bench/passthrough over the same
# catch-up, by thread, on one embedded broker: the broker on core 0, the client on core 1 (as
# bench/run_kafka.sh pins them). CPU time, unlike a rate, hardly depends on what else runs on the
# machine, so builds can be compared on a shared one: CPU_BINS="a:PATH b:PATH" runs each tickcast
# binary in turn, interleaved, CPU_ROUNDS times (default 3); a PATH may be a script that execs
# tickcast (to try an environment variable, say).
# Environment: CPU_TICKS (default 1000000), CPU_INSTRUMENTS (1000), CPU_PARTITIONS (N/20000, >= 8),
# CPU_PERF=1: also `perf record` each client (CPU_PERF_OPTS, default -g: frame-pointer call graphs) into $CPU_PERF_DIR (default /tmp).
# Prints per run: the client's total CPU us per tick (perf stat task-clock, start to exit) and, from
# /proc/PID/task/*/stat when the last tick was processed, us per tick per thread, and the daemon's
# peak and current RSS then (VmHWM, VmRSS).
# Not a test: it prints numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${TICKCAST_BUILD:-build}
. tests/lib.sh
N=${CPU_TICKS:-1000000}
K=${CPU_INSTRUMENTS:-1000}
P=${CPU_PARTITIONS:-$(((N + 19999) / 20000))}
[ "$P" -ge 8 ] || P=8
ROUNDS=${CPU_ROUNDS:-3}
BINS=${CPU_BINS:-cur:$TC}
PERF_DIR=${CPU_PERF_DIR:-/tmp}
read -ra POPTS <<<"${CPU_PERF_OPTS:--g}"
make -s "$B/bench/passthrough" "$B/bench/bench_replay" tickcast >/dev/null
"$B/bench/bench_replay" --write "$TMP/model.csv" --hidden 64 --instruments 4 --ticks 10
MODEL=$TMP/model.csv.safetensors
NB=$(wc -w <<<"$BINS")
topics="ticks:$P,dlq:1"
for i in $(seq $((ROUNDS * (NB + 1)))); do topics+=",out$i:$P,stats$i:1"; done
tc_broker_start --topics "$topics"
taskset -a -c -p 0 "$BROKER_PID" >/dev/null
echo "# $N ticks, $K instruments, $P partitions; broker on core 0, client on core 1; load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$TC" feed --brokers "$BROKERS" --topic ticks --synthetic "$N" --instruments "$K" 2>"$TMP/feed.log"

# Per-thread CPU of pid, us per tick: "name=us ..." in thread creation order (threads of the same
# name numbered), the live threads' sum and the process's (which counts exited threads too).
threads() {
  local pid=$1 hz
  hz=$(getconf CLK_TCK)
  for f in $(printf '%s\n' /proc/"$pid"/task/* | sort -t/ -k5 -n); do
    sed 's/^[0-9]* (\(.*\)) \S* \(.*\)/\1 \2/' "$f/stat" 2>/dev/null | awk '{ print $1, $12 + $13 }'
  done | awk -v hz="$hz" -v n="$N" '{ k = $1 "#" ++seen[$1]; s += $2; if ($2 > 0) printf "%s=%.2f ", k, $2 / hz * 1e6 / n }
    END { printf "(live threads %.2f)", s / hz * 1e6 / n }'
  awk -v hz="$hz" -v n="$N" '{ sub(/^.*\) /, ""); printf "; process %.2f", ($12 + $13) / hz * 1e6 / n }' /proc/"$pid"/stat
}
taskclock() {
  awk -F, -v n="$N" '$3 == "task-clock" { printf "%.3f", $1 * 1e3 / n }
    $3 == "page-faults" { f = $1 } $3 == "context-switches" { c = $1 }
    END { printf " (page faults %.3f, context switches %.3f per tick)", f / n, c / n }' "$1"
}

run_i=0
for round in $(seq "$ROUNDS"); do
  run_i=$((run_i + 1))
  prec=()
  [ "${CPU_PERF:-}" == 1 ] && prec=(perf record -q "${POPTS[@]}" -o "$PERF_DIR/cpu_pt_$round.data" --)
  "${prec[@]}" perf stat -x, -e task-clock,page-faults,context-switches -o "$TMP/pt.stat" -- taskset -c 1 "$B/bench/passthrough" \
    --brokers "$BROKERS" --input-topic ticks --output-topic "out$run_i" --count "$N" \
    --group "pt-$round" --timeout 300 >"$TMP/pt.json" &
  WPID=$!
  ptth=
  while kill -0 "$WPID" 2>/dev/null; do # the last sample, up to 50 ms before it exits
    q=$WPID
    for _ in 1 2 3; do
      case $(cat /proc/"$q"/comm 2>/dev/null) in perf | taskset) q=$(pgrep -P "$q" | head -1 || true) ;; esac
    done
    [ -z "$q" ] || ptth=$(threads "$q" 2>/dev/null || true)
    sleep 0.05
  done
  wait "$WPID"
  echo "round $round passthrough: total $(taskclock "$TMP/pt.stat") us/tick; last sample: $ptth; $(cut -c1-60 "$TMP/pt.json")"
  for nb in $BINS; do
    name=${nb%%:*} bin=${nb#*:}
    run_i=$((run_i + 1))
    port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    prec=()
    [ "${CPU_PERF:-}" == 1 ] && prec=(perf record -q "${POPTS[@]}" -o "$PERF_DIR/cpu_${name}_$round.data" --)
    "${prec[@]}" perf stat -x, -e task-clock,page-faults,context-switches -o "$TMP/run.stat" -- taskset -c 1 "$bin" run \
      --brokers "$BROKERS" --group "run-$name-$round" --input-topic ticks --output-topic "out$run_i" \
      --stats-topic "stats$run_i" --dlq-topic dlq --stats-interval 100 --http "127.0.0.1:$port" \
      --model "$MODEL" --state "$TMP/run$run_i.db" >"$TMP/run.log" 2>&1 &
    WPID=$!
    tc_wait_for 30 curl -sf "http://127.0.0.1:$port/readyz" -o /dev/null || tc_fail "$name not ready"
    pid=$WPID # perf (record, then stat): the client is the first descendant that is not perf
    for _ in 1 2 3; do
      case $(cat /proc/"$pid"/comm 2>/dev/null) in perf) pid=$(pgrep -P "$pid" | head -1) ;; esac
    done
    t0=$SECONDS
    until curl -sf "http://127.0.0.1:$port/metrics" | awk -v n="$N" '$1 == "tickcast_ticks_in_total" { i = $2 }
        $1 == "tickcast_delivered_total" { d = $2 } END { exit !(i >= n && d >= n) }'; do
      [ $((SECONDS - t0)) -lt 300 ] || tc_fail "$name: not done in 300 s"
      sleep 0.2
    done
    th=$(threads "$pid")
    mem=$(awk '$1 == "VmHWM:" { h = $2 } $1 == "VmRSS:" { r = $2 } END { printf "VmHWM %.0f MB, VmRSS %.0f MB", h / 1024, r / 1024 }' /proc/"$pid"/status)
    kill -TERM "$pid"
    wait "$WPID" || true
    echo "round $round $name: total $(taskclock "$TMP/run.stat") us/tick (start to exit); at done: $th; $mem"
  done
done
