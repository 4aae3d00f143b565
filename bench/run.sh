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

section "tickcast replay binary vs batched PyTorch replay, same file: H=64, L=1, 256 instruments, $N ticks"
"$B/bench/bench_replay" --write "$TMP/ticks.csv" --hidden 64 --instruments 256 --ticks "$N"
cpu() { # command... -> "wall user+sys" seconds of the child
  /usr/bin/python3 -c '
import resource, subprocess, sys, time
t = time.time(); subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"{time.time() - t:.3f} {r.ru_utime + r.ru_stime:.3f}")' "$@"
}
read -r tw tc < <(cpu "${TICKCAST:-./tickcast}" replay --model "$TMP/ticks.csv.safetensors" --input "$TMP/ticks.csv" --output "$TMP/tc.csv" --quiet)
read -r pw pc < <(cpu /usr/bin/python3 bench/torch_replay.py "$TMP/ticks.csv.safetensors" "$TMP/ticks.csv" --out "$TMP/pt.csv")
/usr/bin/python3 tests/compare_preds.py "$TMP/ticks.csv.safetensors" "$TMP/tc.csv" "$TMP/pt.csv" | sed 's/^/outputs agree: /'
awk -v n="$N" -v tw="$tw" -v tc="$tc" -v pw="$pw" -v pc="$pc" 'BEGIN {
  printf "tickcast replay: wall %.3f s (%.0f ticks/s), cpu %.3f s (%.0f ticks/s)\n", tw, n / tw, tc, n / tc
  printf "torch replay:    wall %.3f s (%.0f ticks/s), cpu %.3f s (%.0f ticks/s)\n", pw, n / pw, pc, n / pc
  printf "ratio tickcast/torch: wall %.1fx, cpu %.1fx\n", pw / tw, pc / tc }'

if [ -x "$B/bench/bench_train" ]; then
  section "training throughput vs PyTorch (one thread)"
  "$B/bench/bench_train"
fi

if [ -x "$B/bench/bench_store" ]; then
  section "checkpoints (SQLite, H=64)"
  "$B/bench/bench_store"
fi

if [ -x "$B/bench/bench_restore" ]; then
  section "restore from the changelog (embedded broker): a member with no state file"
  TICKCAST=${TICKCAST:-./tickcast} "$B/bench/bench_restore" ${BENCH_QUICK:+--quick} 2>/dev/null
fi

if [ -x bench/run_kafka.sh ]; then
  section "daemon vs passthrough on one embedded broker"
  bench/run_kafka.sh
fi
echo; echo "# kept in $OUT"
