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

CELLS=${BENCH_CELLS:-lstm gru rnn_tanh rnn_relu} # BENCH_CELLS=gru: fewer cells
SECS=0.5 TRAIN_SECS=3
[ -n "${BENCH_QUICK:-}" ] && SECS=0.2 TRAIN_SECS=1

if [ -x "$B/bench/bench_lstm" ]; then
  section "LSTM step (nn_lstm_step), ns per instrument-step"
  "$B/bench/bench_lstm"
  section "every cell's step (nn_step), ns per instrument-step, against the LSTM's and PyTorch's module"
  "$B/bench/bench_lstm" --cells "$SECS"
fi

if [ -x "$B/bench/bench_ingest" ]; then
  section "decoders and formatters, ns per call (snprintf alongside)"
  "$B/bench/bench_ingest" ${BENCH_QUICK:+500000}
fi

section "replay by stage, in process (decode, features, network step, encode, end to end), LSTM"
"$B/bench/bench_replay" ${BENCH_QUICK:+--quick}

cpu() { # command... -> "wall user+sys" seconds of the child
  /usr/bin/python3 -c '
import resource, subprocess, sys, time
t = time.time(); subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"{time.time() - t:.3f} {r.ru_utime + r.ru_stime:.3f}")' "$@"
}
replay_vs_torch() { # cell H ticks: the binary and the batched PyTorch replay on one file, 256 instruments
  local cell=$1 h=$2 n=$3 tw tc pw pc
  "$B/bench/bench_replay" --write "$TMP/ticks.csv" --hidden "$h" --instruments 256 --ticks "$n" --cell "$cell"
  read -r tw tc < <(cpu "${TICKCAST:-./tickcast}" replay --model "$TMP/ticks.csv.safetensors" --input "$TMP/ticks.csv" --output "$TMP/tc.csv" --quiet)
  read -r pw pc < <(cpu /usr/bin/python3 bench/torch_replay.py "$TMP/ticks.csv.safetensors" "$TMP/ticks.csv" --out "$TMP/pt.csv")
  /usr/bin/python3 tests/compare_preds.py "$TMP/ticks.csv.safetensors" "$TMP/tc.csv" "$TMP/pt.csv" | sed 's/^/outputs agree: /'
  awk -v n="$n" -v tw="$tw" -v tc="$tc" -v pw="$pw" -v pc="$pc" -v cell="$cell" -v h="$h" 'BEGIN {
    printf "tickcast replay: wall %.3f s (%.0f ticks/s), cpu %.3f s (%.0f ticks/s)\n", tw, n / tw, tc, n / tc
    printf "torch replay:    wall %.3f s (%.0f ticks/s), cpu %.3f s (%.0f ticks/s)\n", pw, n / pw, pc, n / pc
    printf "replay cell=%s H=%d ticks=%d tickcast_ticks_per_s=%.0f torch_ticks_per_s=%.0f ratio_wall=%.1f ratio_cpu=%.1f\n", cell, h, n, n / tw, n / pw, pw / tw, pc / tc }'
}
NL=${BENCH_TICKS_H256:-250000}
[ -n "${BENCH_QUICK:-}" ] && NL=50000
for cell in $CELLS; do
  section "tickcast replay binary vs batched PyTorch replay, same file: $cell, H=64, L=1, 256 instruments, $N ticks"
  replay_vs_torch "$cell" 64 "$N"
done
for cell in $CELLS; do
  section "tickcast replay binary vs batched PyTorch replay, same file: $cell, H=256, L=1, 256 instruments, $NL ticks"
  replay_vs_torch "$cell" 256 "$NL"
done

if [ -x bench/run_replay.sh ]; then
  section "replay with 1, 2 and all threads vs batched PyTorch with as many"
  bench/run_replay.sh
fi

if [ -x "$B/bench/bench_boot" ]; then
  section "eval's block bootstrap (2000 replicates) against its plain form, ns per block drawn"
  "$B/bench/bench_boot" ${BENCH_QUICK:+3}
fi

if [ -x "$B/bench/bench_train" ]; then
  for cell in $CELLS; do
    section "training throughput vs PyTorch (one thread): $cell"
    "$B/bench/bench_train" 64 64 32 1 "$TRAIN_SECS" --cell "$cell"
  done
  TL=$(printf '%s\n' 1 2 "$(nproc)" | awk '!seen[$0]++' | paste -sd,)
  section "training on $TL threads vs PyTorch on as many (torch.set_num_threads): lstm, H=64, B=64, T=32"
  "$B/bench/bench_train" 64 64 32 1 "$TRAIN_SECS" --threads-list "$TL" --rounds "${BENCH_ROUNDS:-3}"
  if [ -x bench/run_train.sh ]; then
    section "tickcast train on a whole file with --threads 1, 2 and all the cores'"
    bench/run_train.sh
  fi
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
