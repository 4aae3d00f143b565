#!/usr/bin/env bash
# demo.sh (make demo): the streaming job on bundled data with nothing else installed: an embedded
# Kafka broker (`tickcast broker`), the daemon (`tickcast run`) with a state database, a feed of
# the bundled real FX sample (`tickcast feed`), and a live view of predictions and stats read back
# from the broker with kcat. Ends by itself once every tick has its prediction, unless KEEP=1.
#   make demo [KEEP=1] [RATE=ticks_per_s] [MODEL=file] [INPUT=file] [HTTP=127.0.0.1:9464]
set -euo pipefail
cd "$(dirname "$0")/.."
TC=$PWD/tickcast
MODEL=${MODEL:-data/model/fx.safetensors}
INPUT=${INPUT:-data/sample/fx_daily_2021_2025.csv}
RATE=${RATE:-1000}
HTTP=${HTTP:-127.0.0.1:9464}
KEEP=${KEEP:-}
export OPENBLAS_NUM_THREADS=1
D=$(mktemp -d "${TMPDIR:-/tmp}/tickcast-demo.XXXXXX")
PIDS=()
cleanup() {
  set +e
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$D"
}
trap cleanup EXIT
trap 'exit 0' INT TERM
bg() { "$@" & PIDS+=($!); }
fail() { echo "demo: $*" >&2; for f in "$D"/*.log; do echo "--- $f" >&2; tail -5 "$f" >&2; done; exit 1; }

echo "demo: starting the embedded broker"
bg "$TC" broker --topics ticks:4,predictions:4,tickcast.stats:1,tickcast.dlq:1 >"$D/broker.out" 2>"$D/broker.log"
for _ in $(seq 100); do [ -s "$D/broker.out" ] && break; sleep 0.1; done
BROKERS=$(head -1 "$D/broker.out")
[ -n "$BROKERS" ] || fail "the broker did not start"
echo "demo: broker at $BROKERS; starting tickcast run with $MODEL"
bg "$TC" run --brokers "$BROKERS" --model "$MODEL" --state "$D/state.db" --stats-interval 1000 \
  --http "$HTTP" 2>"$D/run.log"
RUN_PID=${PIDS[-1]}
bg kcat -C -b "$BROKERS" -t predictions -o beginning -u -q >"$D/predictions.jsonl" 2>/dev/null
bg kcat -C -b "$BROKERS" -t tickcast.stats -o beginning -u -q >"$D/stats.jsonl" 2>/dev/null
echo "demo: feeding $INPUT at $RATE ticks/s"
bg "$TC" feed --brokers "$BROKERS" --topic ticks --input "$INPUT" --rate "$RATE" 2>"$D/feed.log"
FEED_PID=${PIDS[-1]}

field() { # json-line key -> value (the flat objects tickcast writes)
  sed -n "s/.*\"$2\":\\(\"[^\"]*\"\\|[^,}]*\\).*/\\1/p" <<<"$1" | tr -d '"'
}
view() {
  local n stats lat
  n=$(wc -l <"$D/predictions.jsonl")
  stats=$(tail -n 1 "$D/stats.jsonl")
  # Latency from the last interval that had ticks (an idle interval's quantiles are null).
  lat=$(grep -v '"p50":null' "$D/stats.jsonl" | tail -n 1 || true)
  [ -t 1 ] && printf '\033[H\033[J'
  echo "tickcast demo: broker $BROKERS, model $(basename "$MODEL"), input $(basename "$INPUT")"
  printf 'predictions %s | daemon: ticks_in %s, rate_1s %s/s, latency p50 %s us p99 %s us, instruments %s, checkpoint age %s ms\n' \
    "$n" "$(field "$stats" ticks_in)" "$(field "$stats" rate_1s)" "$(field "$lat" p50)" \
    "$(field "$lat" p99)" "$(field "$stats" instruments)" "$(field "$stats" checkpoint_age_ms)"
  printf '%-8s %-10s %12s %14s %12s %6s\n' sym date px pred_ret pred_px n
  # The newest prediction of each instrument.
  awk -F'"sym":"' 'NF > 1 { split($2, a, "\""); last[a[1]] = $0 }
    END { for (s in last) print last[s] }' "$D/predictions.jsonl" | sort | while read -r l; do
    ts=$(field "$l" ts)
    printf '%-8s %-10s %12.6g %14.6g %12.6g %6s\n' "$(field "$l" sym)" \
      "$(date -u -d "@$((ts / 1000000000))" +%F)" "$(field "$l" px)" "$(field "$l" pred_ret)" \
      "$(field "$l" pred_px)" "$(field "$l" n)"
  done
}

while :; do
  sleep 1
  kill -0 "$RUN_PID" 2>/dev/null || fail "tickcast run stopped"
  view
  if ! kill -0 "$FEED_PID" 2>/dev/null && [ -z "$KEEP" ]; then
    wait "$FEED_PID" || fail "the feed failed"
    sent=$(sed -n 's/.*delivered \([0-9]*\).*/\1/p' "$D/feed.log")
    stats=$(tail -n 1 "$D/stats.jsonl")
    expect=$((sent - $(field "$stats" rejected_total || echo 0)))
    if [ "$(wc -l <"$D/predictions.jsonl")" -ge "$expect" ]; then
      sleep 1.2 # one more stats message, so the last view shows the final figures
      view
      echo
      echo "demo: all $sent ticks fed, $(wc -l <"$D/predictions.jsonl") predictions out."
      command -v curl >/dev/null && curl -s "http://$HTTP/metrics" | grep -E '^tickcast_(ticks_in|predictions_out|instruments)' || true
      kill -TERM "$RUN_PID"
      wait "$RUN_PID" && echo "demo: tickcast run stopped cleanly on SIGTERM"
      "$TC" inspect --state "$D/state.db" 2>/dev/null | head -20 || true
      exit 0
    fi
  fi
done
