#!/usr/bin/env bash
# e2e_gauss.sh: the scale head end to end. (1) On simulated GARCH(1,1) returns (tests/gen_garch.py)
# a model trained with --head gauss forecasts the variance of the next return on a file of another
# seed with a QLIKE within 2% of the true conditional variance's (tests/garch_qlike.py), and eval
# finds it better than EWMA by QLIKE (Diebold-Mariano p < 0.01) with a 90% interval covering 89-91%
# (its z the validation quantile of |z| the model carries); on GARCH with Student t(4) innovations
# that calibrated interval covers 88-92%, closer to 90% than the normal quantile's; on i.i.d.
# returns it does not beat the constant variance significantly (p > 0.05). (2) Its
# file holds scale_head.* and "tickcast.head": "gauss", PyTorch loads it (docs/torch_roundtrip.py:
# nn.LSTM, head and scale_head as nn.Linear) and predicts what replay does, and a mean model's
# output keeps its columns. (3) --interval and --interval-adapt are checked. (4) The daemon,
# restarted from its changelog and from its state file, and a Kafka range replay emit pred_std,
# lo_px and hi_px identical to a file replay's, at --interval 0.8 with the online interval (its
# per-instrument z survives the restarts). Replays and evals run with the default
# --interval-adapt (the online interval) unless they say --interval-adapt 0 (the static z).
. "$(dirname "$0")/lib.sh"

# 1. GARCH(1,1): alpha 0.1, beta 0.85, three instruments.
$PY "$ROOT/tests/gen_garch.py" 90000 1 3 "$TMP/g_train.csv" "$TMP/g_train_truth.csv"
$PY "$ROOT/tests/gen_garch.py" 30000 2 3 "$TMP/g_test.csv" "$TMP/g_test_truth.csv"
"$TC" train --head gauss --input "$TMP/g_train.csv" --output "$TMP/g.safetensors" --seed 1 \
  2>"$TMP/train.log" || { cat "$TMP/train.log"; tc_fail "train --head gauss"; }
grep -q "model lstm L=1 H=32 head=gauss" "$TMP/train.log" || tc_fail "$(head -3 "$TMP/train.log")"
grep -q "scale head: validation NLL" "$TMP/train.log" || tc_fail "no scale head line"
"$TC" replay --model "$TMP/g.safetensors" --input "$TMP/g_test.csv" --output "$TMP/g_pred.csv" -q
tc_eq "gauss CSV header" "$(head -n 1 "$TMP/g_pred.csv")" "sym,ts,px,pred_ret,pred_px,n,pred_std,lo_px,hi_px"
# docs/CONTRACT.md quotes this model's first row and its 90% z: they must be what the code prints.
$PY - "$ROOT/docs/CONTRACT.md" "$TMP/g_pred.csv" "$("$TC" inspect --model "$TMP/g.safetensors" --json)" <<'PYEOF' ||
import json, re, sys
doc = open(sys.argv[1]).read()
row = json.loads(re.search(r'`(\{"sym":"S0".*?"hi_px":[^}]*\})`', doc).group(1))
got = open(sys.argv[2]).read().splitlines()[1].split(",")
want = [row[k] for k in ("pred_std", "lo_px", "hi_px")]
z = float(re.search(r"90% interval z ([0-9.]+)", doc).group(1))
z90 = json.loads(sys.argv[3])["scale_head"]["z90"]
ok = [float(x) for x in got[6:9]] == want and abs(z - z90) < 5e-7
print(f"CONTRACT row {want}, z {z}; replay {got[6:9]}, z {z90}")
sys.exit(0 if ok else 1)
PYEOF
  tc_fail "docs/CONTRACT.md's gauss example row is stale"
$PY "$ROOT/tests/garch_qlike.py" "$TMP/g_test.csv" "$TMP/g_test_truth.csv" "$TMP/g_pred.csv" \
  >"$TMP/qlike.json"
cat "$TMP/qlike.json"
$PY -c 'import json, sys; o = json.load(open(sys.argv[1])); sys.exit(0 if o["ratio"] <= 1.02 else 1)' \
  "$TMP/qlike.json" || tc_fail "QLIKE of the scale head is not within 2% of the truth's"
# The static interval (--interval-adapt 0) is pred_ret -+ z pred_std with z the 90% point of the
# model's table of |z| quantiles (tickcast.interval_absz, read here from the file's header):
# lo = px exp(pred_ret - z sd).
"$TC" replay --model "$TMP/g.safetensors" --input "$TMP/g_test.csv" --output "$TMP/g_static.csv" \
  --interval-adapt 0 -q
$PY - "$TMP/g.safetensors" "$TMP/g_static.csv" "$TMP/train.log" <<'PYEOF' || tc_fail "lo_px/hi_px are not px exp(pred_ret -+ z pred_std)"
import csv, json, math, struct, sys
buf = open(sys.argv[1], "rb").read()
meta = json.loads(buf[8:8 + struct.unpack("<Q", buf[:8])[0]])["__metadata__"]
t = json.loads(meta["tickcast.interval_absz"])
c = [p[0] for p in t["absz"]]
assert c == [k / 100 for k in range(1, 100)] + [0.995, 0.999], c  # 17997 residuals reach 0.999
z = dict(t["absz"])[0.9]
# Normal innovations: the calibrated z is the normal one up to the quantile's sampling error.
assert abs(z - 1.6448536269514722) < 0.05, z
assert f"interval calibrated on {t['n']} validation residuals" in open(sys.argv[3]).read()
worst = 0
for r in csv.DictReader(open(sys.argv[2])):
    px, mu, sd = float(r["px"]), float(r["pred_ret"]), float(r["pred_std"])
    assert sd > 0, r
    for f, s in (("lo_px", -1), ("hi_px", 1)):
        want = px * math.exp(mu + s * z * sd)
        worst = max(worst, abs(float(r[f]) / want - 1))
assert worst < 1e-9, worst
print(f"intervals: px exp(pred_ret -+ {z} pred_std) to {worst:.2g} (n {t['n']})")
PYEOF
# The online interval (the default, --interval-adapt 0.02): each instrument's z starts at that z
# and after every row moves by 0.02 (miss - 0.1), miss = the row's price outside the interval of
# the instrument's row before; recomputed here from the printed fields (10 digits). The static
# and online rows agree in everything else, and online the miss rate is within the tracker's
# bound of 10%: |misses / T - 0.1| <= (B + eta) / (eta T), B the largest |z| score seen.
$PY - "$TMP/g.safetensors" "$TMP/g_pred.csv" "$TMP/g_static.csv" <<'PYEOF' || tc_fail "the online interval does not follow the quantile tracker"
import csv, json, math, struct, sys
buf = open(sys.argv[1], "rb").read()
meta = json.loads(buf[8:8 + struct.unpack("<Q", buf[:8])[0]])["__metadata__"]
z0 = dict(json.loads(meta["tickcast.interval_absz"])["absz"])[0.9]
eta, alpha = 0.02, 0.1
q, prev, T, misses, B, worst, moved = {}, {}, 0, 0, 0.0, 0.0, 0
rows = list(csv.DictReader(open(sys.argv[2])))
static = list(csv.DictReader(open(sys.argv[3])))
assert len(rows) == len(static) == 30000, (len(rows), len(static))
for r, s in zip(rows, static):
    assert [r[k] for k in r if k not in ("lo_px", "hi_px")] == [s[k] for k in s if k not in ("lo_px", "hi_px")], (r, s)
    sym, px = r["sym"], float(r["px"])
    mu, sd = float(r["pred_ret"]), float(r["pred_std"])
    if sym in prev:
        p = prev[sym]
        miss = px < float(p["lo_px"]) or px > float(p["hi_px"])
        misses += miss
        T += 1
        B = max(B, abs(math.log(px / float(p["px"])) - float(p["pred_ret"])) / float(p["pred_std"]))
        q[sym] = max(0.0, q[sym] + eta * (miss - alpha))
    else:
        q[sym] = z0
    for f, sg in (("lo_px", -1), ("hi_px", 1)):
        worst = max(worst, abs(float(r[f]) / (px * math.exp(mu + sg * q[sym] * sd)) - 1))
    moved += r["lo_px"] != s["lo_px"]
    prev[sym] = r
assert worst < 1e-8 and T == 29997, (worst, T)
assert moved > len(rows) // 2, moved
bound = (B + eta) / (eta * T)
assert abs(misses / T - alpha) <= bound, (misses / T, bound)
print(f"online interval: z from {z0:.4f} to {', '.join(f'{v:.4f}' for v in q.values())}; "
      f"misses {misses / T:.4f} (bound |. - 0.1| <= {bound:.4f}); rows to {worst:.2g}")
PYEOF
echo "ok: the scale head's QLIKE on GARCH(1,1) is within 2% of the true variance's"
"$TC" eval --model "$TMP/g.safetensors" --input "$TMP/g_test.csv" --json --quiet >"$TMP/g_eval.json" \
  2>/dev/null
"$TC" eval --model "$TMP/g.safetensors" --input "$TMP/g_test.csv" --quiet 2>/dev/null | tail -n 7
$PY - "$TMP/g_eval.json" <<'PYEOF' || tc_fail "eval of the GARCH model"
import json, sys
o = json.load(open(sys.argv[1]))
v = o["variance"]
m, e = v["model"], v["ewma"]
assert m["qlike"] < e["qlike"] and e["dm_qlike"]["mean"] < 0 and e["dm_qlike"]["p_hln"] < 0.01, v
assert 0.89 <= m["interval"]["coverage"] <= 0.91 and m["interval"]["nominal"] == 0.9, m
assert 0.89 <= m["interval_static"]["coverage"] <= 0.91 and v["interval_adapt"] == 0.02, m
assert v["n"] == 29997 and len(o["instruments"]) == 3, v["n"]
b = o["instruments"][0]["baselines"]
assert b["in_sample"] and b["garch"]["alpha"] > 0.05, b  # no split: the first half; the ARCH effect
print(f"eval: qlike model {m['qlike']:.4f}, ewma {e['qlike']:.4f} (DM p {e['dm_qlike']['p_hln']:.2g}), "
      f"garch {v['garch']['qlike']:.4f}; 90% interval covers {m['interval']['coverage']:.4f}")
PYEOF
# Fat tails: GARCH(1,1) with Student t(4) innovations. Where the variance is right, the normal
# 90% interval covers about 92% (P(|t4| / sqrt 2 <= 1.645) = 0.919); the quantile calibrated on
# validation is narrower in the body and wider in the far tail, and covers 88-92% of another seed.
$PY "$ROOT/tests/gen_garch.py" 90000 5 3 "$TMP/t_train.csv" "$TMP/t_train_truth.csv" --df 4
$PY "$ROOT/tests/gen_garch.py" 30000 6 3 "$TMP/t_test.csv" "$TMP/t_test_truth.csv" --df 4
"$TC" train --head gauss --input "$TMP/t_train.csv" --output "$TMP/t.safetensors" --seed 1 --quiet
"$TC" replay --model "$TMP/t.safetensors" --input "$TMP/t_test.csv" --output "$TMP/t_pred.csv" -q
"$TC" eval --model "$TMP/t.safetensors" --input "$TMP/t_test.csv" --json --quiet \
  --interval-adapt 0 >"$TMP/t_eval.json" 2>/dev/null
"$TC" eval --model "$TMP/t.safetensors" --input "$TMP/t_test.csv" --json --quiet \
  >"$TMP/t_eval_online.json" 2>/dev/null
"$TC" inspect --model "$TMP/t.safetensors" --json >"$TMP/t_inspect.json"
"$TC" inspect --model "$TMP/t.safetensors" >"$TMP/t_inspect.txt"
$PY - "$TMP/t_eval.json" "$TMP/t_pred.csv" "$TMP/t_inspect.json" "$TMP/t_eval_online.json" <<'PYEOF' || tc_fail "the calibrated interval on t(4) returns"
import csv, json, math, sys
v = json.load(open(sys.argv[1]))["variance"]
iv = v["model"]["interval"]
assert "interval_static" not in v["model"] and v["interval_adapt"] == 0, v["model"]
# Online, the interval eval scores is the one replay emits; the static one, beside it, is the
# --interval-adapt 0 figure.
on = json.load(open(sys.argv[4]))["variance"]["model"]
assert on["interval_static"] == iv and 0.88 <= on["interval"]["coverage"] <= 0.92, on
sh = json.load(open(sys.argv[3]))["scale_head"]
q = dict(map(tuple, sh["interval"]["absz"]))
assert sh["interval"]["n"] == 17997 and sh["z90"] == q[0.9] == iv["z"], (sh, iv)
# The direction fat tails give: below the normal quantile in the body, above it in the tail.
assert q[0.5] < 0.6745 and q[0.9] < 1.6449 - 0.1 and q[0.99] > 2.5758 + 0.3, q
# The normal z's coverage of the same test returns, from replay's rows (each row's interval is
# for the return to the instrument's next row).
prev, n, inside = {}, 0, 0
for r in csv.DictReader(open(sys.argv[2])):
    p = prev.get(r["sym"])
    if p:
        ret = math.log(float(r["px"]) / float(p["px"]))
        n += 1
        inside += abs(ret - float(p["pred_ret"])) <= 1.6448536269514722 * float(p["pred_std"])
    prev[r["sym"]] = r
normal = inside / n
cal = iv["coverage"]
assert n == v["n"] == 29997, (n, v["n"])
assert 0.88 <= cal <= 0.92 and abs(cal - 0.9) < abs(normal - 0.9) and normal > 0.91, (cal, normal)
print(f"t(4): 90% interval z {q[0.9]:.4f} (normal 1.6449) covers {cal:.4f} of the test part; "
      f"the normal one {normal:.4f}; the online one {on['interval']['coverage']:.4f}")
PYEOF
grep -q "^interval     z = quantile of |z| on 17997 validation residuals" "$TMP/t_inspect.txt" ||
  tc_fail "inspect: $(grep interval "$TMP/t_inspect.txt")"
echo "ok: on t(4) returns the calibrated 90% interval covers 88-92%, closer to 90% than the normal one"

# I.i.d. returns: nothing to forecast beyond the constant variance, and the model does not pretend.
$PY "$ROOT/tests/gen_garch.py" 60000 3 3 "$TMP/i_train.csv" "$TMP/i_train_truth.csv" --alpha 0 --beta 0
$PY "$ROOT/tests/gen_garch.py" 30000 4 3 "$TMP/i_test.csv" "$TMP/i_test_truth.csv" --alpha 0 --beta 0
"$TC" train --head gauss --input "$TMP/i_train.csv" --output "$TMP/i.safetensors" --quiet
"$TC" eval --model "$TMP/i.safetensors" --input "$TMP/i_test.csv" --json --quiet >"$TMP/i_eval.json" \
  2>/dev/null
$PY - "$TMP/i_eval.json" <<'PYEOF' || tc_fail "the i.i.d. model beats the constant variance"
import json, sys
v = json.load(open(sys.argv[1]))["variance"]
d = v["const"]["dm_qlike"]
assert d["p_hln"] > 0.05, d
print(f"i.i.d.: qlike model {v['model']['qlike']:.5f} vs constant {v['const']['qlike']:.5f}, "
      f"DM p {d['p_hln']:.3f} (not significant)")
PYEOF
# The plot draws the model's interval over the realized returns (two orange lines, a legend).
"$TC" eval --model "$TMP/g.safetensors" --input "$TMP/g_test.csv" --quiet --plot "$TMP/g.svg" \
  >/dev/null 2>&1
tc_eq "interval lines in the plot" "$(grep -c "stroke='#e08214' stroke-width='1.2' points=" "$TMP/g.svg")" 2
grep -q "predicted 90% interval (column mean)" "$TMP/g.svg" || tc_fail "no interval legend"
"$TC" eval --model "$TMP/i.safetensors" --input "$TMP/i_test.csv" --quiet --interval 0.5 \
  --plot "$TMP/i.svg" >/dev/null 2>&1
grep -q "predicted 50% interval" "$TMP/i.svg" || tc_fail "--interval 0.5 not in the plot"
echo "ok: eval scores the variance forecasts against EWMA, GARCH(1,1) and the constant"

# 2. The file: scale_head.* tensors and the head metadata; a mean model keeps its columns.
grep -q '"scale_head.weight":{"data_offsets":\[[0-9]*,[0-9]*\],"dtype":"F32","shape":\[1,32\]' "$TMP/g.safetensors" ||
  tc_fail "no scale_head.weight [1,32]"
grep -q '"tickcast.head":"gauss"' "$TMP/g.safetensors" || tc_fail "no tickcast.head"
grep -q 'head=gauss' "$TMP/g.safetensors" || tc_fail "train_args lack head=gauss"
"$TC" train --input "$TMP/g_train.csv" --output "$TMP/m.safetensors" --epochs 2 --quiet
grep -q 'scale_head\|tickcast.head' "$TMP/m.safetensors" && tc_fail "a mean model has a scale head"
"$TC" replay --model "$TMP/m.safetensors" --input "$TMP/g_test.csv" --output "$TMP/m.jsonl" -q
grep -q pred_std "$TMP/m.jsonl" && tc_fail "a mean model's JSON has pred_std"
"$TC" eval --model "$TMP/m.safetensors" --input "$TMP/g_test.csv" --quiet --plot "$TMP/m.svg" \
  >"$TMP/m_eval.txt" 2>/dev/null
grep -q "interval\|e08214" "$TMP/m.svg" && tc_fail "a mean model's plot has an interval"
grep -q "variance forecasts" "$TMP/m_eval.txt" && tc_fail "a mean model's eval scores a variance"
tc_eq "mean CSV header" "$("$TC" replay --model "$TMP/m.safetensors" --input "$TMP/g_test.csv" -q |
  head -n 1)" "sym,ts,px,pred_ret,pred_px,n"

# PyTorch loads it (docs/torch_roundtrip.py: nn.LSTM, head and scale_head as nn.Linear) and
# predicts what replay does with the static interval.
head -n 3001 "$TMP/g_test.csv" >"$TMP/a.csv"
"$TC" replay --model "$TMP/g.safetensors" --input "$TMP/a.csv" --output "$TMP/r09.csv" \
  --interval-adapt 0 -q
$PY "$ROOT/docs/torch_roundtrip.py" predict "$TMP/g.safetensors" "$TMP/a.csv" >"$TMP/torch.csv"
$PY - "$TMP/r09.csv" "$TMP/torch.csv" <<'PYEOF' || tc_fail "PyTorch and replay disagree on the scale head"
import csv, sys
a, b = (list(csv.DictReader(open(p))) for p in sys.argv[1:])
assert len(a) == len(b) == 3000 and list(a[0]) == list(b[0]), (len(a), len(b), list(b[0]))
worst = max(abs(float(x[f]) / float(y[f]) - 1) for x, y in zip(a, b) for f in ("pred_std", "lo_px", "hi_px"))
assert worst < 1e-5, worst
print(f"PyTorch = replay: pred_std, lo_px, hi_px of 3000 ticks within {worst:.2g} (relative)")
PYEOF
# Only the static interval: replay's default online interval has other lo_px, and the script's
# docstring says which replay it matches (it once said it prints what replay prints).
"$TC" replay --model "$TMP/g.safetensors" --input "$TMP/a.csv" --output "$TMP/r_adapt.csv" -q
$PY - "$TMP/r_adapt.csv" "$TMP/torch.csv" <<'PYEOF' || tc_fail "the online interval equals PyTorch's static one"
import csv, sys
a, b = (list(csv.DictReader(open(p))) for p in sys.argv[1:])
diff = sum(abs(float(x["lo_px"]) / float(y["lo_px"]) - 1) > 1e-5 for x, y in zip(a, b))
assert diff > 0, diff
print(f"ok: the default online interval differs from PyTorch's static one at {diff} of {len(a)} ticks")
PYEOF
$PY - "$ROOT/docs/torch_roundtrip.py" <<'PYEOF' ||
import ast, sys
doc = " ".join(ast.get_docstring(ast.parse(open(sys.argv[1]).read())).split())
sys.exit(0 if "so they match only `tickcast replay --interval-adapt 0`" in doc else 1)
PYEOF
  tc_fail "docs/torch_roundtrip.py does not say that its lo_px, hi_px match only replay --interval-adapt 0"

# The same bytes on 1 and 3 threads, with the online interval (each worker keeps its instruments'
# z): replay (CSV and JSONL, --interval 0.8) and eval's report.
for n in 1 3; do
  "$TC" replay --model "$TMP/g.safetensors" --input "$TMP/g_test.csv" --output "$TMP/t$n.csv" \
    --threads "$n" --interval 0.8 -q || tc_fail "replay --threads $n"
  "$TC" replay --model "$TMP/g.safetensors" --input "$TMP/g_test.csv" --output "$TMP/t$n.jsonl" \
    --threads "$n" -q || tc_fail "replay --threads $n (JSONL)"
  "$TC" eval --model "$TMP/g.safetensors" --input "$TMP/g_test.csv" --json --threads "$n" --quiet \
    >"$TMP/e$n.json" || tc_fail "eval --threads $n"
done
cmp "$TMP/t1.csv" "$TMP/t3.csv" && cmp "$TMP/t1.jsonl" "$TMP/t3.jsonl" && cmp "$TMP/e1.json" "$TMP/e3.json" ||
  tc_fail "a gauss model's replay or eval differs between 1 and 3 threads"
grep -q '"pred_std":' "$TMP/t3.jsonl" || tc_fail "no pred_std on 3 threads"
cmp -s "$TMP/t1.csv" "$TMP/g_pred.csv" && tc_fail "--interval 0.8 made the same intervals as 0.9"
echo "ok: a gauss model's replay (CSV, JSONL, --interval 0.8) and eval are the same bytes on 1 and 3 threads"

# 3. --interval in (0, 1).
for bad in 0 1 -0.5 1.5 x; do
  rc=0
  "$TC" replay --model "$TMP/g.safetensors" --input "$TMP/g_test.csv" --interval "$bad" -q \
    >/dev/null 2>"$TMP/bad.err" || rc=$?
  tc_eq "exit of --interval $bad" "$rc" 2
  grep -q -- "--interval $bad: expected a coverage in (0, 1)" "$TMP/bad.err" || tc_fail "$(cat "$TMP/bad.err")"
done
rc=0
"$TC" run --model "$TMP/g.safetensors" --interval 1 >/dev/null 2>"$TMP/bad.err" || rc=$?
tc_eq "exit of run --interval 1" "$rc" 2
for bad in -0.01 1.5 x; do
  for cmd in replay run eval; do
    rc=0
    input=(--input "$TMP/g_test.csv")
    [ "$cmd" = run ] && input=()
    "$TC" "$cmd" --model "$TMP/g.safetensors" "${input[@]}" --interval-adapt "$bad" \
      >/dev/null 2>"$TMP/bad.err" || rc=$?
    tc_eq "exit of $cmd --interval-adapt $bad" "$rc" 2
    grep -q -- "--interval-adapt.*$bad.*expected a step in z units (0: off) in \[0, 1\]" "$TMP/bad.err" ||
      tc_fail "$(cat "$TMP/bad.err")"
  done
done

# 4. The daemon and a Kafka range replay at --interval 0.8, the online interval on: identical to
# the file replay of all the ticks. The ticks come in thirds: the first daemon checkpoints to its
# state file and the changelog; the second starts without a state file, so every instrument, its
# z and last interval with it, comes back from the changelog; the third restarts from the
# second's state file. Each resumes where the one before stopped.
"$TC" replay --model "$TMP/g.safetensors" --input "$TMP/a.csv" --output "$TMP/ra.csv" \
  --interval 0.8 -q
head -n 1001 "$TMP/a.csv" >"$TMP/a1.csv"
{ head -n 1 "$TMP/a.csv"; sed -n 1002,2001p "$TMP/a.csv"; } >"$TMP/a2.csv"
{ head -n 1 "$TMP/a.csv"; sed -n 2002,3001p "$TMP/a.csv"; } >"$TMP/a3.csv"
tc_broker_start --topics ticks:3,predictions:3,tickcast.dlq:1,tickcast.stats:1
gauss_run() { # k db: feed a<k>.csv, run a daemon on db until 1000 k predictions are out, stop it
  "$TC" feed --brokers "$BROKERS" --topic ticks --input "$TMP/a$1.csv" 2>"$TMP/feed.log" ||
    tc_fail "feed: $(tail -n 3 "$TMP/feed.log")"
  tc_bg "$TC" run --brokers "$BROKERS" --model "$TMP/g.safetensors" --state "$2" \
    --group gauss --interval 0.8 --http off 2>"$TMP/run$1.log"
  RUN_PID=$BG_PID
  $PY "$ROOT/tests/e2e_run.py" collect "$BROKERS" predictions $((1000 * $1)) 60 "$TMP/preds.jsonl"
  tc_stop "$RUN_PID" 20
  tc_eq "daemon $1 exit" "$STOP_RC" 0
}
gauss_run 1 "$TMP/g.db"
gauss_run 2 "$TMP/g2.db"
grep -q "restored ticks partitions .*: 3 instruments (3 from the changelog, 0 from the state file)" \
  "$TMP/run2.log" || tc_fail "daemon 2 did not restore from the changelog: $(grep restored "$TMP/run2.log")"
gauss_run 3 "$TMP/g2.db"
$PY "$ROOT/tests/e2e_run.py" check-preds "$TMP/preds.jsonl" "$TMP/ra.csv" ||
  tc_fail "the gauss daemon, restarted, and replay disagree"
grep -q pred_std "$TMP/preds.jsonl" || tc_fail "no pred_std in the daemon's predictions"
"$TC" replay --model "$TMP/g.safetensors" --brokers "$BROKERS" --topic ticks --interval 0.8 \
  --output "$TMP/k.csv" --threads 1 2>"$TMP/k.log" || tc_fail "kafka replay: $(cat "$TMP/k.log")"
"$TC" replay --model "$TMP/g.safetensors" --brokers "$BROKERS" --topic ticks --interval 0.8 \
  --output "$TMP/k2.csv" --threads 2 2>"$TMP/k.log" || tc_fail "kafka replay: $(cat "$TMP/k.log")"
cmp "$TMP/k.csv" "$TMP/k2.csv" || tc_fail "Kafka range replay differs between 1 and 2 threads"
$PY - "$TMP/ra.csv" "$TMP/k.csv" <<'PYEOF' || tc_fail "Kafka range replay and file replay disagree"
import csv, sys
a, b = ({(r["sym"], r["n"]): (r["pred_std"], r["lo_px"], r["hi_px"]) for r in csv.DictReader(open(p))}
        for p in sys.argv[1:])
assert a.keys() == b.keys(), (len(a), len(b))
diff = [k for k in a if a[k] != b[k]]
assert not diff, (len(diff), diff[:3], [a[k] for k in diff[:3]], [b[k] for k in diff[:3]])
print(f"Kafka range replay = file replay: {len(a)} rows, pred_std, lo_px, hi_px identical")
PYEOF
echo "ok: daemon = Kafka range replay = file replay for pred_std, lo_px, hi_px"
echo "e2e_gauss: all passed"
