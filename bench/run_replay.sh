#!/usr/bin/env bash
# run_replay.sh (part of make bench): the replay binary and the batched PyTorch replay
# (bench/torch_replay.py) on one synthetic file, with 1, 2 and all the cores' threads (tickcast
# --threads T, torch.set_num_threads(T)), in BENCH_ROUNDS rounds (default 3) that alternate the
# thread counts and the two sides, so that all of them see the same load. Each round's speedup is
# against the 1-thread run of the same round; the figures are medians over the rounds, with
# efficiency per added core = (speedup - 1) / (T - 1). On up to 8 cores each round also runs
# --threads 1 pinned to each core (taskset): a shared machine's cores are not equally fast (another
# tenant's load), so the unpinned 1-thread run's speed depends on where it landed, and the rate
# of all the cores is set against the sum of their own rates. Then the pipeline's CPU per tick by
# stage (bench_replay --pipeline). BENCH_TICKS (default 1000000; BENCH_QUICK=1: 200000).
# Each run writes a new file: the previous round's output is removed before the timing starts.
# Replacing an existing 70 MB output (truncating it frees its pages and blocks) took 15-24 ms on
# this VM: before the replay starts on 1 thread, on a thread of its own beside it on several
# (cmd_replay.c), so the ratio would measure the file system's cleanup as well.
set -uo pipefail
cd "$(dirname "$0")/.."
B=${TICKCAST_BUILD:-build}
export OPENBLAS_NUM_THREADS=1
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tickcast-bench.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
N=${BENCH_TICKS:-1000000}
[ -n "${BENCH_QUICK:-}" ] && N=200000
for f in ./tickcast "$B/bench/bench_replay"; do
  [ -x "$f" ] || { echo "bench/run_replay.sh: $f is not built: make bench builds it" >&2; exit 2; }
done
NCPU=$(nproc)
TS=$(printf '%s\n' 1 2 "$NCPU" | awk '!seen[$0]++' | tr '\n' ' ')
ROUNDS=${BENCH_ROUNDS:-3}
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $NCPU cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# H=64, L=1, 256 instruments, $N ticks; threads $TS; $ROUNDS rounds"
"$B/bench/bench_replay" --write "$TMP/ticks.csv" --hidden 64 --instruments 256 --ticks "$N"
M="$TMP/ticks.csv.safetensors"
cpu() { # command... -> "wall user+sys" seconds of the child
  /usr/bin/python3 -c '
import resource, subprocess, sys, time
t = time.time(); subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"{time.time() - t:.3f} {r.ru_utime + r.ru_stime:.3f}")' "$@"
}
: >"$TMP/times"
for r in $(seq "$ROUNDS"); do
  for t in $TS; do
    rm -f "$TMP/tc$t.csv" "$TMP/pt$t.csv"
    read -r w c < <(cpu "${TICKCAST:-./tickcast}" replay --model "$M" --input "$TMP/ticks.csv" \
      --output "$TMP/tc$t.csv" --threads "$t" --quiet)
    echo "$r tickcast $t $w $c" >>"$TMP/times"
    read -r w c < <(cpu /usr/bin/python3 bench/torch_replay.py "$M" "$TMP/ticks.csv" \
      --out "$TMP/pt$t.csv" --threads "$t")
    echo "$r torch $t $w $c" >>"$TMP/times"
  done
  if [ "$NCPU" -le 8 ]; then
    for k in $(seq 0 $((NCPU - 1))); do
      rm -f "$TMP/core.csv"
      read -r w c < <(cpu taskset -c "$k" "${TICKCAST:-./tickcast}" replay --model "$M" \
        --input "$TMP/ticks.csv" --output "$TMP/core.csv" --threads 1 --quiet)
      echo "$r core $k $w $c" >>"$TMP/times"
    done
  fi
done
for t in $TS; do
  cmp -s "$TMP/tc1.csv" "$TMP/tc$t.csv" && echo "tickcast --threads $t output: byte-identical to --threads 1" ||
    echo "tickcast --threads $t output: DIFFERS from --threads 1"
done
/usr/bin/python3 tests/compare_preds.py "$M" "$TMP/tc1.csv" "$TMP/pt1.csv" | sed 's/^/tickcast vs torch outputs agree: /'
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 - "$TMP/times" "$N" "$NCPU" <<'PYEOF'
import statistics as st, sys
rows = [l.split() for l in open(sys.argv[1])]
n, ncpu = int(sys.argv[2]), int(sys.argv[3])
t = {}
for r, who, th, w, c in rows:
    t[(int(r), who, int(th))] = (float(w), float(c))
rounds = sorted({k[0] for k in t}); ths = sorted({k[2] for k in t if k[1] != "core"})
cores = sorted({k[2] for k in t if k[1] == "core"})
print(f"cores {ncpu}; per thread count, medians over {len(rounds)} rounds (ticks/s on wall time; "
      "speedup against 1 thread in the same round)")
print(f"{'threads':>7} | {'tickcast ticks/s':>16} {'speedup':>7} {'eff/core':>8} {'cpu s':>6} | "
      f"{'torch ticks/s':>13} {'speedup':>7} {'cpu s':>6} | {'tickcast/torch':>14}")
for th in ths:
    row = []
    for who in ("tickcast", "torch"):
        rate = st.median(n / t[(r, who, th)][0] for r in rounds)
        sp = st.median(t[(r, who, 1)][0] / t[(r, who, th)][0] for r in rounds)
        cpu = st.median(t[(r, who, th)][1] for r in rounds)
        row.append((rate, sp, cpu))
    (a, sa, ca), (b, sb, cb) = row
    eff = f"{(sa - 1) / (th - 1):8.0%}" if th > 1 else f"{'':>8}"
    ratio = st.median(t[(r, "torch", th)][0] / t[(r, "tickcast", th)][0] for r in rounds)
    print(f"{th:>7} | {a:16,.0f} {sa:6.2f}x {eff} {ca:6.2f} | {b:13,.0f} {sb:6.2f}x {cb:6.2f} | "
          f"{ratio:13.1f}x")
if cores:
    rate = {k: st.median(n / t[(r, "core", k)][0] for r in rounds) for k in cores}
    print("tickcast --threads 1 pinned to each core (taskset), median ticks/s: " +
          ", ".join(f"core {k} {rate[k]:,.0f}" for k in cores))
    frac = st.median(n / t[(r, "tickcast", ncpu)][0] / sum(n / t[(r, "core", k)][0] for k in cores)
                     for r in rounds)
    print(f"--threads {ncpu} against the sum of the cores' own 1-thread rates in the same round: "
          f"median {frac:.0%}; against the fastest core: median "
          f"{st.median(t[(r, 'core', max(cores, key=rate.get))][0] / t[(r, 'tickcast', ncpu)][0] for r in rounds):.2f}x")
PYEOF
echo "per-stage CPU of the replay pipeline (bench_replay --pipeline, ns per tick; read and write run"
echo "on the caller's thread, decode and step on the workers):"
for t in $TS; do "$B/bench/bench_replay" --pipeline "$TMP/ticks.csv" "$M" "$t"; done

