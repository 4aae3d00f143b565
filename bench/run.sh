#!/usr/bin/env bash
# run.sh (make bench): every benchmark, each next to its baseline measured in the same run, with
# the output kept in bench/out/bench-<time>.txt. Numbers go to docs/BENCHMARKS.md by hand, with
# this command and the machine. BENCH_QUICK=1 runs smaller cases. Machines are shared: compare
# ratios from one run, not absolute numbers across runs.
set -uo pipefail
cd "$(dirname "$0")/.."
B=${TICKCAST_BUILD:-build}
export OPENBLAS_NUM_THREADS=1
mkdir -p bench/out
OUT=bench/out/bench-$(date -u +%Y%m%dT%H%M%SZ).txt
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tickcast-bench.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
N=${BENCH_TICKS:-1000000}
[ -n "${BENCH_QUICK:-}" ] && N=200000
exec > >(tee "$OUT") 2>&1
echo "# tickcast bench $(date -u +%FT%TZ) on $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
echo "# load average: $(cut -d' ' -f1-3 /proc/loadavg)"

section() { echo; echo "## $*"; }

if [ -x "$B/bench/bench_lstm" ]; then
  section "LSTM step (nn_lstm_step), ns per instrument-step"
  "$B/bench/bench_lstm"
fi

if [ -x "$B/bench/bench_ingest" ]; then
  section "decoders and formatters, ns per call (snprintf alongside)"
  "$B/bench/bench_ingest" ${BENCH_QUICK:+500000}
fi

section "replay by stage, in process (decode, features, LSTM, encode, end to end)"
"$B/bench/bench_replay" ${BENCH_QUICK:+--quick}

if [ -x bench/run_replay.sh ]; then
  section "replay with 1, 2 and all threads vs batched PyTorch with as many"
  bench/run_replay.sh
fi

if [ -x "$B/bench/bench_train" ]; then
  section "training throughput vs PyTorch (one thread)"
  "$B/bench/bench_train"
fi

if [ -x "$B/bench/bench_store" ]; then
  section "checkpoints (SQLite, H=64)"
  "$B/bench/bench_store"
fi

if [ -x bench/run_kafka.sh ]; then
  section "daemon vs passthrough on one embedded broker"
  bench/run_kafka.sh
fi
echo; echo "# kept in $OUT"
