#!/usr/bin/env bash
# e2e_train_threads.sh: `tickcast train --threads N` gives the same model bytes and the same
# progress (but for its timings) for N = 1, 2, 3 and 8 (more threads than shards): an LSTM with
# the mean head, the scale head (--head gauss) and a 2-layer GRU, on ten AR(1) instruments of
# different lengths with --batch 40 (three training shards) and two validation shards; a
# one-instrument file trained on 2 threads keeps its skill on a held-out file (near the optimal
# 0.25) and the bytes of 1 thread; --search with more threads than trials (the rest go to the
# shards inside each trial) keeps the one-thread model; the model is the same whatever kernels
# OpenBLAS would pick for this CPU. Ticks: tests/gen_ar1.py.
. "$(dirname "$0")/lib.sh"

$PY "$ROOT/tests/gen_ar1.py" 30000 11 10 "$TMP/multi.csv" --skew 300

strip_times() { # the progress without its timings
  sed -E 's/[0-9]+ tick-steps\/s//g; s/, [0-9.]+ s,/,/; s/_t[0-9]+[.]safetensors/.safetensors/' "$1"
}

# 1. Three models on 1, 2, 3 and 8 threads.
for cfg in "lstm --batch 40" "gauss --head gauss --batch 40" "gru --cell gru --layers 2 --batch 40"; do
  set -- $cfg
  name=$1
  shift
  for n in 1 2 3 8; do
    "$TC" train --input "$TMP/multi.csv" --output "$TMP/${name}_t$n.safetensors" --epochs 3 \
      --hidden 16 --seed 5 --test-frac 0.1 --threads "$n" "$@" 2>"$TMP/${name}_t$n.log" ||
      { cat "$TMP/${name}_t$n.log"; tc_fail "train $name --threads $n exited $?"; }
  done
  grep -q "validation MSE" "$TMP/${name}_t1.log" || tc_fail "$name: $(tail -n 2 "$TMP/${name}_t1.log")"
  for n in 2 3 8; do
    cmp "$TMP/${name}_t1.safetensors" "$TMP/${name}_t$n.safetensors" ||
      tc_fail "$name: --threads 1 and --threads $n wrote different model bytes"
    tc_eq "$name progress on $n threads" "$(strip_times "$TMP/${name}_t$n.log")" \
      "$(strip_times "$TMP/${name}_t1.log")"
  done
  echo "ok: $name: the same model bytes and progress on 1, 2, 3 and 8 threads"
done

# 2. One instrument on 2 threads: the bytes of 1 thread, and the skill of an AR(1) 0.5 model.
$PY "$ROOT/tests/gen_ar1.py" 20000 1 1 "$TMP/one_train.csv"
$PY "$ROOT/tests/gen_ar1.py" 20000 2 1 "$TMP/one_test.csv"
for n in 1 2; do
  "$TC" train --input "$TMP/one_train.csv" --output "$TMP/one_t$n.safetensors" --seed 3 \
    --threads "$n" --quiet || tc_fail "train on one instrument, --threads $n, exited $?"
done
cmp "$TMP/one_t1.safetensors" "$TMP/one_t2.safetensors" ||
  tc_fail "one instrument: --threads 1 and 2 wrote different model bytes"
"$TC" eval --model "$TMP/one_t2.safetensors" --input "$TMP/one_test.csv" --json --quiet >"$TMP/one.json"
skill=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["overall"]["skill"])' "$TMP/one.json")
echo "one instrument on 2 threads: held-out skill $skill (optimum 0.25)"
$PY -c 'import sys; sys.exit(0 if abs(float(sys.argv[1]) - 0.25) <= 0.03 else 1)' "$skill" ||
  tc_fail "one instrument on 2 threads: skill $skill is not within 0.03 of 0.25"

# 3. --search with more threads than trials: the rest go to each trial's shards, same model.
for n in 1 4; do
  "$TC" train --input "$TMP/multi.csv" --output "$TMP/search_t$n.safetensors" --search --trials 2 \
    --epochs 2 --batch 40 --threads "$n" --quiet >"$TMP/search_t$n.out" ||
    tc_fail "search --threads $n exited $?"
done
cmp "$TMP/search_t1.safetensors" "$TMP/search_t4.safetensors" ||
  tc_fail "--search --trials 2 on 1 and 4 threads kept different models"
tc_eq "search table on 1 and 4 threads" "$(awk '{$NF = ""; print}' "$TMP/search_t4.out")" \
  "$(awk '{$NF = ""; print}' "$TMP/search_t1.out")"
# 4. A train waiting for its input runs on its own thread only: train loaded OpenBLAS before it
# read (nn/blas.c), which stopped OpenBLAS's workers, and must not start them again by setting
# OpenBLAS's thread count.
tc_threads_waiting "$TMP/one_train.csv" train --output "$TMP/fifo.safetensors" --threads 1 \
  --epochs 1 --quiet
tc_eq "threads of a train --threads 1 waiting for its input, OpenBLAS left to its default" \
  "$NTHREADS" 1
[ "$NBLAS" -gt 0 ] || tc_fail "train waiting for its input has not loaded OpenBLAS"
# 5. The same model bytes whatever kernels OpenBLAS would pick for this CPU: on one with AVX2
# and FMA, tickcast runs Haswell's (nn_blas_pin_kernels), so a model trained here is the one
# OPENBLAS_CORETYPE=Haswell trains (OpenBLAS 0.3.21 picks its AVX-512 kernels, which sum in
# another order, on AVX-512 CPUs); a user's OPENBLAS_CORETYPE is kept.
if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then
  (unset OPENBLAS_CORETYPE && OPENBLAS_VERBOSE=2 "$TC" train --input "$TMP/multi.csv" \
    --output "$TMP/core_default.safetensors" --epochs 2 --hidden 16 --seed 5 --batch 40 \
    --threads 1 --quiet 2>"$TMP/core_default.log") || tc_fail "train, kernels left to tickcast"
  OPENBLAS_CORETYPE=Haswell "$TC" train --input "$TMP/multi.csv" \
    --output "$TMP/core_haswell.safetensors" --epochs 2 --hidden 16 --seed 5 --batch 40 \
    --threads 1 --quiet || tc_fail "train, OPENBLAS_CORETYPE=Haswell"
  tc_eq "OpenBLAS's kernels for tickcast train" "$(grep -m1 '^Core:' "$TMP/core_default.log")" \
    "Core: Haswell"
  cmp "$TMP/core_default.safetensors" "$TMP/core_haswell.safetensors" ||
    tc_fail "the kernels OpenBLAS picks for this CPU changed the model bytes"
  OPENBLAS_VERBOSE=2 OPENBLAS_CORETYPE=Prescott "$TC" train --input "$TMP/multi.csv" \
    --output "$TMP/core_prescott.safetensors" --epochs 1 --hidden 16 --batch 40 --threads 1 \
    --quiet 2>"$TMP/core_prescott.log" || tc_fail "train, OPENBLAS_CORETYPE=Prescott"
  tc_eq "OpenBLAS's kernels with OPENBLAS_CORETYPE=Prescott" \
    "$(grep -m1 '^Core:' "$TMP/core_prescott.log")" "Core: Prescott"
else
  echo "skip: this CPU has no AVX2 and FMA, so OpenBLAS's kernels are left to it"
fi
echo "e2e_train_threads: all passed"
