#!/usr/bin/env bash
# run_kafka.sh: the daemon benchmark, in one run on one embedded broker:
#  1. `tickcast feed --synthetic` N ticks over K instruments into a topic of P partitions;
#  2. bench/passthrough (plain consume -> produce, no model): the I/O ceiling, msgs/s;
#  3. `tickcast run` with an H=64 model on the same ticks, fresh group: steady-state ticks/s from
#     its stats topic (ticks_in over time), and the ratio to the passthrough (goal >= 0.80); both
#     rates are taken between the 10% and 90% points of the tick count;
#     2 and 3 alternate BENCH_ROUNDS times (default 5) and the median ratio is reported; so is
#     the ratio of their CPU time per message over the same window (all threads; the daemon's
#     from the cpu_s of its stats, the passthrough's its own), which the other load on the
#     core changes much less than the rates;
#  4. `tickcast run` on a fresh topic fed at half the passthrough rate (`feed --rate`): consume ->
#     produce-enqueue latency per stats interval (goal: p99 < 200 us), once per --chunk size in
#     BENCH_LAT_CHUNKS (default "8 64": the default and, for comparison, the old default).
# With 2 or more cores (and taskset), the broker is pinned to core 0 and the passthrough or the
# daemon to core 1 (BENCH_PIN=0: no pinning), so that the ratio does not depend on where the
# scheduler puts them or on what else runs.
# BENCH_RUN_THREADS (default "1"): the daemon's --threads, each in every round after the
# passthrough (e.g. "1 2": stream threads; the ratio to the passthrough is the first's, and the
# median rate of each is printed); with more than one thread, run it with BENCH_PIN=0. The daemon
# runs with a 6 s session timeout: two consumers joining a group of the embedded broker at once
# sometimes wait for one's session to time out (docs/RUN.md, "Known limits").
# BENCH_PT_HEAP=1 runs the passthrough with the daemon's heap policy (daemon/cmd/heap.c: malloc on
# transparent huge pages, freed memory kept; the same glibc settings given through
# GLIBC_TUNABLES), to show what that policy is worth to a plain client.
# Environment: BENCH_KAFKA_TICKS (N, default 1000000; 200000 with BENCH_QUICK), BENCH_INSTRUMENTS
# (K, default 1000), BENCH_PARTITIONS (default: N/20000, at least 8: the embedded broker keeps
# about 5 MiB, ~40k synthetic ticks, per partition and drops older batches).
# Not a test: it prints numbers; the exit status is 0 unless something failed to run.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${TICKCAST_BUILD:-build}
. tests/lib.sh
N=${BENCH_KAFKA_TICKS:-1000000}
[ -n "${BENCH_QUICK:-}" ] && N=${BENCH_KAFKA_TICKS:-200000}
K=${BENCH_INSTRUMENTS:-1000}
P=${BENCH_PARTITIONS:-$(((N + 19999) / 20000))}
LAT_CHUNKS=${BENCH_LAT_CHUNKS:-8 64}
RUN_THREADS=${BENCH_RUN_THREADS:-1}
[ "$P" -ge 8 ] || P=8
H=64
make -s "$B/bench/passthrough" "$B/bench/bench_replay" tickcast >/dev/null
PIN=()
PINNED="not pinned"
if [ "${BENCH_PIN:-1}" != 0 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  PIN=(taskset -c 1)
  PINNED="broker on core 0, passthrough and daemon on core 1"
fi

"$B/bench/bench_replay" --write "$TMP/model.csv" --hidden $H --instruments 4 --ticks 10
MODEL=$TMP/model.csv.safetensors

tc_broker_start --topics "ticks:$P,$(for i in $(seq "${BENCH_ROUNDS:-5}"); do printf "passr%d:%d," "$i" "$P"; for t in $RUN_THREADS; do printf "predsr%dt%d:%d,statsr%dt%d:1," "$i" "$t" "$P" "$i" "$t"; done; done)dlq:1,$(for c in $LAT_CHUNKS; do printf "lat%d:%d,stats2c%d:1," "$c" "$P" "$c"; done)preds2:$P,dlq2:1"
[ ${#PIN[@]} -eq 0 ] || taskset -a -c -p 0 "$BROKER_PID" >/dev/null # its threads, and the ones it makes

# Messages in a topic now (high - low watermarks): what survived the broker's retention.
retained() {
  $PY - "$BROKERS" "$1" <<'PYEOF'
import sys, confluent_kafka as ck
c = ck.Consumer({"bootstrap.servers": sys.argv[1], "group.id": "wm"})
md = c.list_topics(sys.argv[2], timeout=10).topics[sys.argv[2]]
w = [c.get_watermark_offsets(ck.TopicPartition(sys.argv[2], p), timeout=10) for p in md.partitions]
print(sum(h - l for l, h in w))
PYEOF
}

# Reads a stats topic from the start until ticks_in >= $2 or $3 seconds pass; prints one JSON
# object: the series [(time_ms, ticks_in, latency_us)], the steady-state rate (first to last
# message strictly between 0 and the target) and the latency of the intervals with traffic.
stats_watch() {
  $PY - "$BROKERS" "$1" "$2" "$3" <<'PYEOF'
import json, statistics, sys, time, confluent_kafka as ck
brokers, topic, target, tmo = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
c = ck.Consumer({"bootstrap.servers": brokers, "group.id": "stats-watch", "enable.auto.commit": False})
c.assign([ck.TopicPartition(topic, 0, ck.OFFSET_BEGINNING)])
series, t0 = [], time.time()
while time.time() - t0 < tmo and (not series or series[-1][1] < target):
    m = c.poll(0.5)
    if m is None or m.error(): continue
    s = json.loads(m.value())
    series.append((s["time"], s["ticks_in"], s["latency_us"], s.get("cpu_s")))
c.close()
mid = [x for x in series if 0 < x[1] < target]
# Steady rate: ticks between the 10% and 90% points of the target over the time between, each
# point interpolated linearly between the two stats messages around it (as bench/passthrough's
# steady_rate, which takes the same window).
def cross(x):
    for (t0, n0, *_), (t1, n1, *_) in zip(series, series[1:]):
        if n0 < x <= n1:
            return t0 + (t1 - t0) * (x - n0) / (n1 - n0)
    return None
# The process's CPU seconds at time t, interpolated between the stats messages around it.
def cpu_at(t):
    for (t0, _, _, c0), (t1, _, _, c1) in zip(series, series[1:]):
        if t0 <= t <= t1 and c0 is not None and c1 is not None:
            return c0 + (c1 - c0) * (t - t0) / (t1 - t0) if t1 > t0 else c0
    return None
a, b = cross(target // 10), cross(target - target // 10)
rate = (target - 2 * (target // 10)) / ((b - a) / 1e3) if a is not None and b is not None and b > a else None
ca, cb = (cpu_at(a), cpu_at(b)) if rate else (None, None)
cpu = cb - ca if ca is not None and cb is not None else None
p99 = [x[2]["p99"] for x in series if x[2]["count"] >= 100 and x[2]["p99"] is not None]
p50 = [x[2]["p50"] for x in series if x[2]["count"] >= 100 and x[2]["p50"] is not None]
done = bool(series) and series[-1][1] >= target
print(json.dumps({"done": done, "ticks_in": series[-1][1] if series else 0, "rate": rate,
                  "steady_cpu_s": cpu, "steady_s": (b - a) / 1e3 if rate else None,
                  "intervals": len(mid), "p99_max": max(p99) if p99 else None,
                  "p99_median": statistics.median(p99) if p99 else None,
                  "p50_median": statistics.median(p50) if p50 else None,
                  "p99_all": " ".join("%.0f" % v for v in p99),
                  "p999_max": max((x[2]["p999"] for x in series if x[2]["count"] >= 100
                                   and x[2]["p999"] is not None), default=None)}))
PYEOF
}
jget() { $PY -c 'import json,sys; v=json.loads(sys.argv[1])[sys.argv[2]]; print("n/a" if v is None else (f"{v:.6g}" if isinstance(v,float) else v))' "$1" "$2"; }

echo "# $N synthetic ticks, $K instruments, $P partitions, H=$H; $PINNED${BENCH_PT_HEAP:+; passthrough with the heap policy of the daemon}; load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$TC" feed --brokers "$BROKERS" --topic ticks --synthetic "$N" --instruments "$K" 2>"$TMP/feed.log" ||
  tc_fail "feed: $(cat "$TMP/feed.log")"
grep "^feed:" "$TMP/feed.log"
R=$(retained ticks)
[ "$R" -eq "$N" ] || echo "warning: the broker kept $R of $N ticks (raise BENCH_PARTITIONS)"

# 2-3. The passthrough and the daemon, alternately, $ROUNDS times (the machine is shared and
# noisy: a ratio is taken within each round, and the median is the figure). Each run uses a fresh
# group, reads every retained tick from the start and writes to an empty topic of its own (a
# topic the embedded broker holds full, dropping its oldest batches, slowed later rounds).
ROUNDS=${BENCH_ROUNDS:-5}
RATIOS=()
CRATIOS=()
PT_RATES=()
PT_ENV=()
[ "${BENCH_PT_HEAP:-}" == 1 ] && PT_ENV=(env GLIBC_TUNABLES=glibc.malloc.hugetlb=1:glibc.malloc.trim_threshold=1073741824:glibc.malloc.mmap_threshold=33554432:glibc.malloc.top_pad=67108864)
for round in $(seq "$ROUNDS"); do
  PT=$("${PIN[@]}" "${PT_ENV[@]}" "$B/bench/passthrough" --brokers "$BROKERS" --input-topic ticks --output-topic "passr$round" \
    --count "$R" --group "pass-$$-$round" --timeout 300)
  PT_RATE=$(jget "$PT" steady_rate)
  PT_RATES+=("$PT_RATE")
  WIN=$((R - 2 * (R / 10))) # messages between the 10% and 90% points
  PT_CPU=$(awk -v c="$(jget "$PT" steady_cpu_s)" -v n="$WIN" 'BEGIN { if (c == "n/a") print c; else printf "%.3f", c * 1e6 / n }')
  echo "round $round: passthrough: $(jget "$PT" msgs) msgs in $(jget "$PT" seconds) s (first consume to last delivery), steady $PT_RATE msgs/s (10% to 90%);" \
    "consume -> produce enqueue $($PY -c 'import json,sys; l=json.loads(sys.argv[1])["latency_us"]; print("p50 %g us, p99 %g us" % (l["p50"], l["p99"]))' "$PT")"
  for T in $RUN_THREADS; do
    tc_bg "${PIN[@]}" "$TC" run --brokers "$BROKERS" --group "bench-$$-$round-$T" --input-topic ticks --output-topic "predsr${round}t$T" \
      --stats-topic "statsr${round}t$T" --dlq-topic dlq --stats-interval 100 --http off --model "$MODEL" \
      --state "$TMP/run$round-$T.db" --threads "$T" -X consumer.session.timeout.ms=6000 >"$TMP/run.log" 2>&1
    RUN_PID=$BG_PID
    ST=$(stats_watch "statsr${round}t$T" "$R" 300)
    tc_stop "$RUN_PID" 15
    [ "$(jget "$ST" done)" == "True" ] || tc_fail "daemon processed $(jget "$ST" ticks_in) of $R: $(tail -5 "$TMP/run.log")"
    RUN_RATE=$(jget "$ST" rate)
    eval "RATES_T$T+=(\"\$RUN_RATE\")"
    RATIO=$(awk -v a="$RUN_RATE" -v b="$PT_RATE" 'BEGIN { if (a == "n/a") print "n/a"; else printf "%.2f", a / b }')
    [ "$T" != "${RUN_THREADS%% *}" ] || RATIOS+=("$RATIO")
    echo "round $round: tickcast run (H=$H, --threads $T): $R ticks, steady $RUN_RATE ticks/s (10% to 90%, from its stats every 100 ms; exit $STOP_RC); ratio $RATIO"
    # CPU per message over the same window, all threads of each process (the daemon's from the
    # cpu_s of its stats): what the ratio would be if each had core 1 to itself, whatever else ran.
    read -r RUN_CPU RUN_UTIL PT_UTIL CRATIO < <(awk -v c="$(jget "$ST" steady_cpu_s)" -v s="$(jget "$ST" steady_s)" \
      -v n="$WIN" -v p="$PT_CPU" -v pr="$PT_RATE" 'BEGIN {
        pu = p == "n/a" ? "n/a" : sprintf("%.0f", p * pr / 1e4)
        if (c == "n/a") { print "n/a n/a", pu, "n/a"; exit }
        u = c * 1e6 / n; printf "%.3f %.0f %s %s\n", u, 100 * c / s, pu, p == "n/a" ? "n/a" : sprintf("%.2f", p / u) }')
    [ "$T" != "${RUN_THREADS%% *}" ] || CRATIOS+=("$CRATIO")
    echo "round $round: CPU per message over that window: passthrough $PT_CPU us ($PT_UTIL% of a core), daemon --threads $T $RUN_CPU us ($RUN_UTIL% of a core); passthrough/daemon $CRATIO"
  done
done
# The median and the range of the rounds that gave a number ("n/a": a figure the round lacked).
median() { printf '%s\n' "$@" | grep -E '^[0-9.]+$' | sort -g | awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] : "n/a" }'; }
spread() { printf '%s\n' "$@" | grep -E '^[0-9.]+$' | sort -g | awk 'NR == 1 { a = $1 } { b = $1 } END { print NR ? a " to " b : "n/a" }'; }
echo "throughput ratio run/passthrough: median $(median "${RATIOS[@]}"), spread $(spread "${RATIOS[@]}"), of ${RATIOS[*]} ($PINNED; goal >= 0.80)"
echo "CPU per message, passthrough/daemon: median $(median "${CRATIOS[@]}"), spread $(spread "${CRATIOS[@]}"), of ${CRATIOS[*]}"
if [ "$RUN_THREADS" != 1 ]; then
  for T in $RUN_THREADS; do
    eval "RT=(\"\${RATES_T$T[@]}\")"
    echo "tickcast run --threads $T: median $(median "${RT[@]}") ticks/s, spread $(spread "${RT[@]}"), of ${RT[*]} ($PINNED)"
  done
fi
PT_RATE=$(median "${PT_RATES[@]}")

# 4. Latency at half the passthrough rate, on a fresh topic per chunk size (BENCH_LAT_CHUNKS,
# default "8 64": the daemon's default and the old one, for comparison): start the daemon, wait
# until it has its partitions (/readyz), then feed at the rate. The daemon records for each
# message its chunk's span, from before the chunk's first poll to after its last produce.
HALF=$(awk -v r="$PT_RATE" 'BEGIN { printf "%d", r / 2 }')
M=$(awk -v h="$HALF" -v p="$P" 'BEGIN { m = h * 10; c = p * 25000; printf "%d", m < c ? m : c }')
for chunk in $LAT_CHUNKS; do
  port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  tc_bg "${PIN[@]}" "$TC" run --brokers "$BROKERS" --group "bench2-$$-$chunk" --input-topic "lat$chunk" \
    --output-topic preds2 --stats-topic "stats2c$chunk" --dlq-topic dlq2 --stats-interval 1000 \
    --http "127.0.0.1:$port" --chunk "$chunk" --model "$MODEL" --state "$TMP/run2c$chunk.db" \
    >"$TMP/run2.log" 2>&1
  RUN2_PID=$BG_PID
  tc_wait_for 60 curl -sf "http://127.0.0.1:$port/readyz" -o /dev/null || tc_fail "daemon 2 not ready"
  "$TC" feed --brokers "$BROKERS" --topic "lat$chunk" --synthetic "$M" --instruments "$K" \
    --rate "$HALF" 2>"$TMP/feed2.log" || tc_fail "feed at rate: $(cat "$TMP/feed2.log")"
  grep "^feed:" "$TMP/feed2.log"
  ST2=$(stats_watch "stats2c$chunk" "$M" 120)
  tc_stop "$RUN2_PID" 15
  echo "latency at $HALF ticks/s (half the passthrough), --chunk $chunk, consume -> produce enqueue," \
    "per 1 s interval ($(jget "$ST2" intervals) intervals): p50 median $(jget "$ST2" p50_median) us," \
    "p99 median $(jget "$ST2" p99_median) us, p99 worst $(jget "$ST2" p99_max) us," \
    "p999 worst $(jget "$ST2" p999_max) us (goal p99 < 200 us); p99 by interval: $(jget "$ST2" p99_all)"
done
