#!/usr/bin/env bash
# run_train.sh (part of make bench; BENCH_ROUNDS=3 bench/run_train.sh alone): the whole
# `tickcast train` on one file with --threads 1, 2 and the number of cores, rounds alternating
# the thread counts, the median wall and CPU seconds (user + sys of every thread), the speed-up
# and the efficiency per added core ((speed-up - 1) / (threads - 1)); the models are compared
# byte for byte. The file is data/real/fx_daily.csv (`make data`: ten FX rates since
# 1971, 130,000 ticks) when it is there, else the bundled sample. TRAIN_ARGS adds flags.
# On up to 8 cores each round also runs --threads 1 pinned to each core (taskset), as
# run_replay.sh does: a shared machine's cores are not equally fast, and the rate of all the
# cores is set against the sum of their own rates in the same round.
set -euo pipefail
export OPENBLAS_NUM_THREADS=1
cd "$(dirname "$0")/.."
TC=${TICKCAST:-./tickcast}
R=${BENCH_ROUNDS:-3}
F=data/real/fx_daily.csv
[ -f "$F" ] || F=data/sample/fx_daily_2021_2025.csv
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tickcast-bench-train.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
# shellcheck disable=SC2086 # TRAIN_ARGS is a list of flags
ARGS="--input $F --epochs ${TRAIN_EPOCHS:-10} --patience 100 --quiet ${TRAIN_ARGS:-}"
TS=$(printf '%s\n' 1 2 "$(nproc)" | awk '!seen[$0]++' | tr '\n' ' ')
echo "# tickcast train $ARGS --threads N for N in $TS($(nproc) cores), $R rounds, load average $(cut -d' ' -f1-3 /proc/loadavg)"
cpu() { # out command... -> "wall user+sys" seconds of the child
  /usr/bin/python3 -c '
import resource, subprocess, sys, time
t = time.time(); subprocess.run(sys.argv[1:], check=True)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"{time.time() - t:.3f} {r.ru_utime + r.ru_stime:.3f}")' "$@"
}
for r in $(seq "$R"); do
  for n in $TS; do
    # shellcheck disable=SC2086
    read -r w c < <(cpu "$TC" train $ARGS --output "$TMP/m$n.safetensors" --threads "$n")
    echo "round $r threads $n: wall $w s, cpu $c s"
    echo "$n $w $c $r" >>"$TMP/times"
  done
  for n in $TS; do
    cmp "$TMP/m1.safetensors" "$TMP/m$n.safetensors" || { echo "models differ"; exit 1; }
  done
  if [ "$(nproc)" -le 8 ]; then
    for k in $(seq 0 $(($(nproc) - 1))); do
      # shellcheck disable=SC2086
      read -r w c < <(cpu taskset -c "$k" "$TC" train $ARGS --output "$TMP/core.safetensors" --threads 1)
      echo "round $r threads 1 pinned to core $k: wall $w s, cpu $c s"
      echo "$r $k $w" >>"$TMP/cores"
    done
  fi
done
echo "# load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); models identical"
awk '{ w[$1] = w[$1] " " $2; c[$1] = c[$1] " " $3 }
function med(s,  a, n, i, j, t) { n = split(s, a, " ")
  for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
  return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
END { w1 = med(w[1]); for (n in w) ns[++k] = n + 0
  for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (ns[j] < ns[i]) { t = ns[i]; ns[i] = ns[j]; ns[j] = t }
  for (i = 1; i <= k; i++) { n = ns[i]; sp = w1 / med(w[n]); eff = ""
    if (n > 1) eff = sprintf(", efficiency per added core %.0f%%", 100 * (sp - 1) / (n - 1))
    printf "train threads=%d median wall %.2f s, cpu %.2f s, speedup %.2fx%s\n", n, med(w[n]), med(c[n]), sp, eff } }' "$TMP/times"
[ -f "$TMP/cores" ] && /usr/bin/python3 - "$TMP/times" "$TMP/cores" "$(nproc)" <<'PYEOF'
import statistics as st, sys
runs = {(int(r), int(n)): float(w) for n, w, c, r in (l.split() for l in open(sys.argv[1]))}
core = {(int(r), int(k)): float(w) for r, k, w in (l.split() for l in open(sys.argv[2]))}
ncpu = int(sys.argv[3])
rounds = sorted({r for r, _ in core}); ks = sorted({k for _, k in core})
print("train --threads 1 pinned to each core (taskset), median wall: " +
      ", ".join(f"core {k} {st.median(core[(r, k)] for r in rounds):.2f} s" for k in ks))
frac = st.median((1 / runs[(r, ncpu)]) / sum(1 / core[(r, k)] for k in ks) for r in rounds)
fast = st.median(min(core[(r, k)] for k in ks) / runs[(r, ncpu)] for r in rounds)
print(f"train --threads {ncpu} against the sum of the cores' own 1-thread rates in the same round: "
      f"median {frac:.0%}; against the fastest core: median {fast:.2f}x")
PYEOF
