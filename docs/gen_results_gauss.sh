#!/usr/bin/env bash
# gen_results_gauss.sh: the runs behind the "Variance forecasts" part of docs/RESULTS.md, printed
# as the tables it shows. Needs `make data` (data/real/fx_daily.csv, data/real/sp500.csv) and
# ./tickcast. Every real-data figure is of the held-out test part: train --head gauss
# --test-frac 0.2 never reads the last 20% of each instrument, eval --test scores exactly that
# part, and the baselines (EWMA, GARCH(1,1), the constant) are fitted per instrument on the
# returns before it. The synthetic GARCH(1,1) (normal and Student t(4) innovations) and i.i.d.
# streams are tests/gen_garch.py's. Plots (with the 90% band) go to docs/results_*_gauss.svg.
# About a minute and a half on one core.
# shellcheck disable=SC2034 # NAME is read by results_common.sh
NAME=gen_results_gauss
. "$(dirname "$0")/results_common.sh"

# One row from eval --test --json: QLIKE of each forecast, DM p of the model against EWMA and
# GARCH (sign: < 0 the model is better), the model's 90% interval: the static one (its z, the
# quantile of |z| the model calibrated on its validation part) and the online one the model emits
# by default (--interval-adapt 0.02: each instrument's z tracked from its first tick).
row() { # eval.json
  /usr/bin/python3 - "$1" <<'PYEOF'
import json, sys
v = json.load(open(sys.argv[1]))["variance"]
m, e, g, c = v["model"], v["ewma"], v["garch"], v["const"]
iv, st = m["interval"], m["interval_static"]
def dm(b):
    d = b["dm_qlike"]
    return f"{d['stat_hln']:+.2f} ({d['p_hln']:.2g})"
print(f"{m['qlike']:.4f} | {e['qlike']:.4f} | {dm(e)} | {g['qlike']:.4f} | {dm(g)} | {c['qlike']:.4f} | "
      f"{st['z']:.4f} | {st['coverage']:.4f} | {st['width']:.4f} | {st['kupiec_p']:.2g} | "
      f"**{iv['coverage']:.4f}** | {iv['width']:.4f} | {iv['kupiec_p']:.2g} | "
      f"{e['interval']['coverage']:.4f} | {v['n']}")
PYEOF
}

echo "## Variance forecasts on real data, five seeds (train --head gauss --test-frac 0.2 --seed S; eval --test)"
echo
echo "| data | seed | QLIKE model | EWMA | DM vs EWMA (p) | GARCH(1,1) | DM vs GARCH (p) | constant | static 90% z (normal 1.6449) | static coverage | width | Kupiec p | online coverage | width | Kupiec p | EWMA 90% coverage | n |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for f in fx_daily sp500; do
  for s in 1 2 3 4 5; do
    m="$W/${f}_$s.safetensors"
    "$TC" train --head gauss --input "$ROOT/data/real/$f.csv" --output "$m" --test-frac 0.2 \
      --seed "$s" --quiet
    "$TC" eval --model "$m" --input "$ROOT/data/real/$f.csv" --test --json --quiet >"$W/e.json"
    [ "$s" = 1 ] && (cd "$W" && "$TC" eval --model "${f}_$s.safetensors" --input "data/real/$f.csv" \
      --test --quiet --plot "$ROOT/docs/results_${f}_gauss.svg" |
      sed -n '/^variance forecasts/,$p' >"$W/${f}_table.txt")
    echo "| $f | $s | $(row "$W/e.json") |"
  done
done
echo
instrument_tables

echo "## Variance forecasts on simulated streams (tests/gen_garch.py; train on one seed, test on another)"
echo
echo "| process | n test | QLIKE model / true variance (normalized form) | QLIKE model | EWMA | GARCH(1,1) | constant | DM vs constant (p) | model 90% coverage (online; static) |"
echo "|---|---|---|---|---|---|---|---|---|"
for p in garch garch_t4 iid; do
  a=(); [ $p = iid ] && a=(--alpha 0 --beta 0)
  [ $p = garch_t4 ] && a=(--df 4)
  /usr/bin/python3 "$ROOT/tests/gen_garch.py" 90000 1 3 "$W/${p}_train.csv" "$W/t1.csv" "${a[@]}"
  /usr/bin/python3 "$ROOT/tests/gen_garch.py" 30000 2 3 "$W/${p}_test.csv" "$W/${p}_truth.csv" "${a[@]}"
  "$TC" train --head gauss --input "$W/${p}_train.csv" --output "$W/$p.safetensors" --seed 1 --quiet
  "$TC" replay --model "$W/$p.safetensors" --input "$W/${p}_test.csv" --output "$W/${p}_pred.csv" -q
  /usr/bin/python3 "$ROOT/tests/garch_qlike.py" "$W/${p}_test.csv" "$W/${p}_truth.csv" \
    "$W/${p}_pred.csv" >"$W/q.json"
  "$TC" eval --model "$W/$p.safetensors" --input "$W/${p}_test.csv" --json --quiet >"$W/e.json" 2>/dev/null
  /usr/bin/python3 - "$W/q.json" "$W/e.json" "$p" <<'PYEOF'
import json, sys
q, v = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))["variance"]
name = {"garch": "GARCH(1,1), alpha 0.1, beta 0.85, 3 instruments",
        "garch_t4": "the same with Student t(4) innovations",
        "iid": "i.i.d. normal, 3 instruments"}[sys.argv[3]]
d = v["const"]["dm_qlike"]
print(f"| {name} | {q['n']} | {q['qlike_model']:.4f} / {q['qlike_true']:.4f} = {q['ratio']:.4f} | "
      f"{v['model']['qlike']:.4f} | {v['ewma']['qlike']:.4f} | {v['garch']['qlike']:.4f} | "
      f"{v['const']['qlike']:.4f} | {d['stat_hln']:+.2f} ({d['p_hln']:.2g}) | "
      f"{v['model']['interval']['coverage']:.4f}; {v['model']['interval_static']['coverage']:.4f} |")
PYEOF
done
