#!/usr/bin/env bash
# gen_results.sh: the runs behind docs/RESULTS.md, printed as the tables it shows. Needs `make data`
# (data/real/fx_daily.csv, data/real/sp500.csv) and ./tickcast. Every real-data figure it prints
# is of a held-out test part: train --test-frac 0.2 never reads the last 20% of each instrument,
# and eval --test scores exactly that part. Synthetic processes are trained on one file and scored
# on another file of the same process made with another seed. Plots go to docs/results_*.svg.
# About 2 minutes on one core.
# shellcheck disable=SC2034 # NAME is read by results_common.sh
NAME=gen_results
. "$(dirname "$0")/results_common.sh"

meta() { # model key
  /usr/bin/python3 -c 'import json,struct,sys; b=open(sys.argv[1],"rb").read(); n=struct.unpack("<Q",b[:8])[0]
print(json.loads(b[8:8+n])["__metadata__"].get(sys.argv[2], "-"))' "$1" "$2"
}
# One row of a test-part table from eval --test --json: skill [lo, hi], DM stat and p, direction.
row() { # eval.json
  /usr/bin/python3 - "$1" <<'PYEOF'
import json, sys
o = json.load(open(sys.argv[1]))["overall"]
d, ci, di, st = o["dm"], o["skill_ci"], o["direction"], o["strategy"]
acc = f"{di['acc']:.4f} / {di['base']:.4f} (PT p {di['pt_p']:.2g})" if di["called"] else "no call"
print(f"{o['skill']:+.5f} | [{ci['lo']:+.5f}, {ci['hi']:+.5f}] | {d['stat_hln']:+.2f} | {d['p_hln']:.3g} | "
      f"{acc} | {st['gross']:+.4f} / {st['net']:+.4f} / {st['hold']:+.4f} | {o['n']}")
PYEOF
}

echo "## Real data, five seeds (train --test-frac 0.2 --seed S; eval --test)"
echo
echo "| data | seed | best epoch | val fit skill | val t | test skill | 95% interval | DM | p | dir acc / base | strategy gross / net / hold | n |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
for f in fx_daily sp500; do
  for s in 1 2 3 4 5; do
    m="$W/${f}_$s.safetensors"
    "$TC" train --input "$ROOT/data/real/$f.csv" --output "$m" --test-frac 0.2 --seed "$s" --quiet
    "$TC" eval --model "$m" --input "$ROOT/data/real/$f.csv" --test --json --quiet >"$W/e.json"
    [ "$s" = 1 ] && (cd "$W" && "$TC" eval --model "${f}_1.safetensors" --input "data/real/$f.csv" \
      --test --quiet --plot "$ROOT/docs/results_$f.svg" >"${f}_table.txt")
    fit=$(/usr/bin/python3 -c 'import sys; print(f"{float(sys.argv[1]):+.4f}")' "$(meta "$m" tickcast.val_fit_skill)")
    echo "| $f | $s | $(meta "$m" tickcast.best_epoch) | $fit | $(meta "$m" tickcast.val_tstat) | $(row "$W/e.json") |"
  done
done
echo
instrument_tables

echo "## Search (train --search --cell lstm --trials 8 --test-frac 0.2; eval --test)"
echo
for f in fx_daily sp500; do
  m="$W/${f}_search.safetensors"
  echo "### $f"
  echo
  echo '```'
  "$TC" train --input "$ROOT/data/real/$f.csv" --output "$m" --test-frac 0.2 --search --cell lstm --trials 8 --quiet
  echo '```'
  "$TC" eval --model "$m" --input "$ROOT/data/real/$f.csv" --test --json --quiet >"$W/e.json"
  echo
  echo "saved model on the test part: skill, interval, DM, p, direction, strategy, n: $(row "$W/e.json")"
  echo
done

echo "## Synthetic processes (train on 50,000 ticks, seed 1; test on 50,000 other ticks)"
echo
echo "| process | oracle test skill | test skill | 95% interval | DM p | val t | train s |"
echo "|---|---|---|---|---|---|---|"
for p in ar05 arm03 ar2 qty multi noise; do
  /usr/bin/python3 - "$p" "$W" <<'PYEOF'
import math, random, sys
kind, w = sys.argv[1], sys.argv[2]
def gen(seed, path, t0):
    rnd = random.Random(seed)
    n, nsym = 50000, 100 if kind == "multi" else 1
    st = [[0.0, 0.0, 100.0, 0.0] for _ in range(nsym)]  # r[t], r[t-1], px, qty[t]
    se = sr = 0.0
    with open(path, "w") as f:
        f.write("sym,ts,px,qty\n")
        for i in range(n):
            k = i % nsym
            r1, r2, px, q1 = st[k]
            q = rnd.choice([1.0, 10.0, 100.0, 1000.0])
            if kind == "ar05":  mean = 0.5 * r1
            elif kind in ("arm03", "multi"): mean = -0.3 * r1
            elif kind == "ar2": mean = 0.3 * r1 + 0.4 * r2
            elif kind == "qty": mean = 0.00025 * (math.log1p(q1) - 3.65) if i >= nsym else 0.0
            else: mean = 0.0
            r = mean + rnd.gauss(0, 0.001)
            px *= math.exp(r)
            if i >= nsym:  # the first tick of each has no return
                se += (r - mean) ** 2; sr += r * r
            st[k] = [r, r1, px, q]
            f.write(f"S{k},{t0 + i * 10**9},{px:.12g},{q:g}\n")
    return 1 - se / sr
# The test file continues in time after the training file (a day later), with another seed.
gen(1, f"{w}/{kind}_train.csv", 1700000000000000000)
print(f"{gen(2, w + '/' + kind + '_test.csv', 1700100000000000000):.4f}", file=open(f"{w}/{kind}_oracle", "w"))
PYEOF
  t0=$(date +%s.%N)
  "$TC" train --input "$W/${p}_train.csv" --output "$W/$p.safetensors" --quiet
  t1=$(date +%s.%N)
  "$TC" eval --model "$W/$p.safetensors" --input "$W/${p}_test.csv" --json --quiet >"$W/e.json"
  /usr/bin/python3 - "$W/e.json" "$p" "$(cat "$W/${p}_oracle")" "$(meta "$W/$p.safetensors" tickcast.val_tstat)" "$t0" "$t1" <<'PYEOF'
import json, sys
o = json.load(open(sys.argv[1]))["overall"]
names = {"ar05": "AR(1) r[t+1] = 0.5 r[t] + e", "arm03": "AR(1) r[t+1] = -0.3 r[t] + e",
         "ar2": "AR(2) r[t+1] = 0.3 r[t] + 0.4 r[t-1] + e",
         "qty": "r[t+1] = 0.00025 (log(1 + qty[t]) - 3.65) + e (volume carries the signal)",
         "multi": "AR(1) -0.3, 100 instruments x 500 ticks, interleaved", "noise": "iid noise (no signal)"}
ci = o["skill_ci"]
p = o["dm"]["p_hln"]
print(f"| {names[sys.argv[2]]} | {float(sys.argv[3]):.4f} | {o['skill']:+.4f} | [{ci['lo']:+.4f}, {ci['hi']:+.4f}] | "
      f"{'< 1e-300' if p == 0 else format(p, '.2g')} | {float(sys.argv[4]):.2f} | {float(sys.argv[6]) - float(sys.argv[5]):.1f} |")
PYEOF
done

echo
echo "## How often the gate keeps a model (20,000 ticks to train, 20,000 later ones to test, seeds 1-20)"
echo
echo "| process | models kept (val t >= 2) | their test skills | mean test skill over all 20 |"
echo "|---|---|---|---|"
for p in noise garch ar005; do
  kept=0 skills="" sum=0
  for s in $(seq 1 20); do
    /usr/bin/python3 - "$p" "$s" "$W" <<'PYEOF'
import math, random, sys
kind, seed, w = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def gen(rs, path, t0):
    rnd = random.Random(rs)
    r, px, h = 0.0, 100.0, 1e-6
    with open(path, "w") as f:
        f.write("sym,ts,px\n")
        for i in range(20000):
            if kind == "garch":  # GARCH(1,1), alpha 0.1, beta 0.85, no predictable mean
                e = rnd.gauss(0, math.sqrt(h)); h = 0.05e-6 + 0.1 * e * e + 0.85 * h; r = e
            elif kind == "ar005":
                r = 0.05 * r + rnd.gauss(0, 0.001)
            else:
                r = rnd.gauss(0, 0.001)
            px *= math.exp(r)
            f.write(f"X,{t0 + i * 10**9},{px:.12g}\n")
gen(1000 + seed, f"{w}/g_train.csv", 1700000000000000000)
gen(2000 + seed, f"{w}/g_test.csv", 1700100000000000000)
PYEOF
    "$TC" train --input "$W/g_train.csv" --output "$W/g.safetensors" --seed "$s" --quiet
    "$TC" eval --model "$W/g.safetensors" --input "$W/g_test.csv" --json --quiet >"$W/e.json"
    sk=$(/usr/bin/python3 -c 'import json,sys; s = json.load(open(sys.argv[1]))["overall"]["skill"]; print(f"{s:+.4f}")' "$W/e.json")
    sum=$(/usr/bin/python3 -c 'import sys; print(float(sys.argv[1]) + float(sys.argv[2]))' "$sum" "$sk")
    if [ "$(meta "$W/g.safetensors" tickcast.output_scale)" != "0.000000" ]; then
      kept=$((kept + 1)); skills="$skills $sk"
    fi
  done
  case $p in
    noise) name="iid normal returns (no signal)";;
    garch) name="GARCH(1,1) returns, heavy-tailed (no predictable mean)";;
    ar005) name="AR(1) 0.05 (optimum skill 0.0025)";;
  esac
  echo "| $name | $kept of 20 | ${skills:- -} | $(/usr/bin/python3 -c 'import sys; print(f"{float(sys.argv[1]) / 20:+.5f}")' "$sum") |"
done

echo
# The scale head's variance forecasts (its own script, so that it can be rerun alone).
TICKCAST="$TC" bash "$ROOT/docs/gen_results_gauss.sh"
