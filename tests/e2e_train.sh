#!/usr/bin/env bash
# e2e_train.sh: `tickcast train` and `tickcast eval` end to end: on a synthetic AR(1) return series
# (r[t+1] = 0.5 r[t] + noise, optimal skill 0.25) the trained model's skill on a held-out file is
# within 0.02 of 0.25; a trained model loaded into PyTorch (tests/torch_eval_check.py reads the
# safetensors by hand) predicts what `replay` and `eval` say, for a 1-layer and a 2-layer peephole
# model; pure noise gives the zero model; the same seed gives the same model bytes and another
# seed does not; rejected lines are reported; --search prints its table and raises the threshold
# for its trials; the plot is an SVG; a held-out test part (--test-frac, --test-from) scored by
# eval --test equals the figures train recorded and an outside implementation (eval_ref.py);
# eval warns about overlap with the training range; inspect --model; --ts-unit; exit codes follow
# CONTRACT §6.
. "$(dirname "$0")/lib.sh"

# AR(1) ticks (tests/gen_ar1.py): one instrument, 1 s apart. Train and test files use different
# seeds.
gen_ar1() { $PY "$ROOT/tests/gen_ar1.py" "$@"; }
gen_ar1 50000 1 1 "$TMP/ar1_train.csv"
gen_ar1 50000 2 1 "$TMP/ar1_test.csv"

# 1. AR(1): skill on held-out data near the optimum 0.25.
t0=$SECONDS
"$TC" train --input "$TMP/ar1_train.csv" --output "$TMP/ar1.safetensors" --seed 3 2>"$TMP/train.log" \
  || { cat "$TMP/train.log"; tc_fail "train on AR(1) exited $?"; }
echo "train on 50000 AR(1) ticks: $((SECONDS - t0)) s"
tail -n 1 "$TMP/train.log"
"$TC" eval --model "$TMP/ar1.safetensors" --input "$TMP/ar1_test.csv" --json --quiet >"$TMP/ar1_eval.json"
skill=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["overall"]["skill"])' "$TMP/ar1_eval.json")
echo "AR(1) held-out skill: $skill (optimum 0.25)"
$PY -c 'import sys; sys.exit(0 if abs(float(sys.argv[1]) - 0.25) <= 0.02 else 1)' "$skill" \
  || tc_fail "AR(1) skill $skill is not within 0.02 of 0.25"
grep -q '"tickcast.val_skill"' "$TMP/ar1.safetensors" || tc_fail "model lacks tickcast.val_skill metadata"

# 2. PyTorch agrees with replay and eval on that model.
"$TC" replay --model "$TMP/ar1.safetensors" --input "$TMP/ar1_test.csv" --output "$TMP/ar1_pred.csv" --quiet
$PY "$ROOT/tests/torch_eval_check.py" "$TMP/ar1.safetensors" "$TMP/ar1_test.csv" "$TMP/ar1_pred.csv" \
  "$TMP/ar1_eval.json" || tc_fail "PyTorch disagrees with tickcast on the AR(1) model"

# 3. Several instruments with qty, quotes and bad lines; a 2-layer peephole model.
$PY - "$TMP/multi.csv" <<'PYEOF'
import math, random, sys
rnd = random.Random(5)
syms = ["AAA", "BBB", "CCC"]
st = {s: (0.0, 50.0 + 10 * i) for i, s in enumerate(syms)}
ts = 1600000000000000000
lines = ["sym,ts,px,qty,bid,ask"]
for i in range(3000):
    s = syms[rnd.randrange(3)]
    r, px = st[s]
    r = -0.3 * r + rnd.gauss(0, 0.002)
    px *= math.exp(r)
    st[s] = (r, px)
    ts += rnd.randrange(1, 3 * 10**9)
    q = rnd.choice(["", "1", "7.5", "100"])
    b = a = ""
    if rnd.random() < 0.7:
        b, a = f"{px * 0.9995:.9g}", f"{px * 1.0005:.9g}"
    lines.append(f"{s},{ts},{px:.10g},{q},{b},{a}")
lines.insert(100, "AAA,1600000000000000000,12.5,1,,")   # out of order (older than AAA's last)
lines.insert(200, "BBB,1600000000000000000,-1,1,,")     # bad px
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
PYEOF
"$TC" train --input "$TMP/multi.csv" --output "$TMP/multi.safetensors" --layers 2 --hidden 8 \
  --peephole --epochs 20 --seq 16 --batch 8 2>"$TMP/multi.log" || { cat "$TMP/multi.log"; tc_fail "train multi"; }
# The check below needs a model that predicts something (not the zero fallback).
scale() { $PY -c 'import json,struct,sys; b=open(sys.argv[1],"rb").read(); n=struct.unpack("<Q",b[:8])[0]
print(json.loads(b[8:8+n])["__metadata__"]["tickcast.output_scale"])' "$1"; }
s=$(scale "$TMP/multi.safetensors")
$PY -c 'import sys; sys.exit(0 if float(sys.argv[1]) > 0 else 1)' "$s" || { cat "$TMP/multi.log"; tc_fail "multi model fell back to zero"; }
grep -q "rejected out_of_order *1 " "$TMP/multi.log" || { cat "$TMP/multi.log"; tc_fail "out_of_order not reported"; }
grep -q "rejected bad_px *1 " "$TMP/multi.log" || tc_fail "bad_px not reported"
grep -q "3000 accepted, 2 rejected, 3 instruments" "$TMP/multi.log" || tc_fail "summary counts"
grep -q "multi.csv:101: out_of_order" "$TMP/multi.log" || tc_fail "line number of the out-of-order tick"
# Keep only valid lines for the torch check (its CSV reader does not validate).
grep -v -e '^AAA,1600000000000000000,' -e ',-1,' "$TMP/multi.csv" >"$TMP/multi_ok.csv"
"$TC" replay --model "$TMP/multi.safetensors" --input "$TMP/multi_ok.csv" --output "$TMP/multi_pred.csv" --quiet
"$TC" eval --model "$TMP/multi.safetensors" --input "$TMP/multi_ok.csv" --json --quiet >"$TMP/multi_eval.json"
$PY "$ROOT/tests/torch_eval_check.py" "$TMP/multi.safetensors" "$TMP/multi_ok.csv" "$TMP/multi_pred.csv" \
  "$TMP/multi_eval.json" || tc_fail "PyTorch disagrees with tickcast on the 2-layer peephole model"
n_inst=$($PY -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["instruments"]))' "$TMP/multi_eval.json")
tc_eq "instruments in eval --json" "$n_inst" 3

# 3b. Pure noise (iid returns): no significant gain, so the saved model predicts exactly zero.
$PY - "$TMP/noise.csv" <<'PYEOF'
import math, random, sys
rnd = random.Random(9)
px = 100.0
with open(sys.argv[1], "w") as f:
    f.write("sym,ts,px\n")
    for i in range(20000):
        px *= math.exp(rnd.gauss(0, 0.001))
        f.write(f"N,{1700000000000000000 + i * 10**9},{px:.12g}\n")
PYEOF
"$TC" train --input "$TMP/noise.csv" --output "$TMP/noise.safetensors" 2>"$TMP/noise.log"
grep -q "predicts a zero return" "$TMP/noise.log" || { cat "$TMP/noise.log"; tc_fail "noise model did not fall back"; }
tc_eq "output scale of the noise model" "$(scale "$TMP/noise.safetensors")" 0.000000
"$TC" eval --model "$TMP/noise.safetensors" --input "$TMP/ar1_test.csv" --json --quiet >"$TMP/noise_eval.json"
tc_eq "skill of the zero model" "$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["overall"]["skill"] == 0)' "$TMP/noise_eval.json")" True

# 3c. eval's metrics in closed form: a hand-written model (zero LSTM weights, head bias 1,
# target.std 0.001) predicts pred_ret = 0.001 for every tick: every non-zero return is a called
# pair, recall of "up" is 1, precision and directional accuracy are the share of up moves, the
# base rate is the larger of the up and down shares, mse/mae follow from the realized returns.
$PY - "$TMP/const.safetensors" <<'PYEOF'
import json, struct, sys
H = 4
t = {"lstm.weight_ih_l0": ([4 * H, 4], 0.0), "lstm.weight_hh_l0": ([4 * H, H], 0.0),
     "lstm.bias_ih_l0": ([4 * H], 0.0), "lstm.bias_hh_l0": ([4 * H], 0.0),
     "head.weight": ([1, H], 0.0), "head.bias": ([1], 1.0), "features.mean": ([4], 0.0),
     "features.std": ([4], 1.0), "target.mean": ([1], 0.0), "target.std": ([1], 0.001)}
hdr, data = {"__metadata__": {"tickcast.format": "1", "tickcast.features": "ret,log_qty,log_dt,spread"}}, b""
for name, (shape, v) in t.items():
    n = 1
    for d in shape: n *= d
    hdr[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + 4 * n]}
    data += struct.pack("<%df" % n, *([v] * n))
h = json.dumps(hdr).encode()
h += b" " * (-len(h) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h + data)
PYEOF
"$TC" eval --model "$TMP/const.safetensors" --input "$TMP/multi_ok.csv" --json --quiet >"$TMP/const.json"
$PY - "$TMP/multi_ok.csv" "$TMP/const.json" <<'PYEOF' || tc_fail "eval metrics differ from the closed form"
import csv, json, math, sys
rows = {}
for r in csv.DictReader(open(sys.argv[1])): rows.setdefault(r["sym"], []).append(float(r["px"]))
real = [math.log(p[i + 1] / p[i]) for p in rows.values() for i in range(len(p) - 1)]
import struct
pred = struct.unpack("<f", struct.pack("<f", 0.001))[0]  # y = 1 times float32(0.001), in double
nz = [r for r in real if r != 0]
up = sum(r > 0 for r in nz) / len(nz)
want = {"n": len(real), "mse": sum((pred - r) ** 2 for r in real) / len(real),
        "mae": sum(abs(pred - r) for r in real) / len(real), "mse_rw": sum(r * r for r in real) / len(real),
        "acc": up, "base": max(up, 1 - up), "precision": up, "recall": 1.0, "f1": 2 * up / (1 + up),
        "called": len(nz)}
o = json.load(open(sys.argv[2]))["overall"]
got = dict(o, **o["direction"])
bad = [k for k, v in want.items() if abs(got[k] - v) > 1e-7 * max(1, abs(v))]
for k in want: print(f"const model {k}: eval {got[k]:.9g}, closed form {want[k]:.9g}")
sys.exit(1 if bad else 0)
PYEOF

# 4. Same seed, same bytes; another seed, other bytes.
head -n 8001 "$TMP/ar1_train.csv" >"$TMP/small.csv"
for s in 11 11 12; do
  "$TC" train --input "$TMP/small.csv" --output "$TMP/seed_$s.$RANDOM.safetensors" --seed $s \
    --epochs 3 --quiet
done
set -- "$TMP"/seed_11.*.safetensors
[ $# -eq 2 ] || tc_fail "expected two seed-11 models"
cmp "$1" "$2" || tc_fail "same seed gave different model bytes"
echo "ok: same seed, identical model bytes ($(stat -c %s "$1") bytes)"
cmp -s "$1" "$TMP"/seed_12.*.safetensors && tc_fail "seeds 11 and 12 gave identical models"
echo "ok: another seed, different bytes"

# 5. --search table, --plot SVG, --sym.
"$TC" train --input "$TMP/small.csv" --output "$TMP/search.safetensors" --search --trials 2 \
  --epochs 2 --quiet >"$TMP/search.out"
cat "$TMP/search.out"
[ "$(grep -c '^[12] ' "$TMP/search.out")" -eq 2 ] || tc_fail "search table lacks 2 trial rows"
grep -q '^best: trial [12] ' "$TMP/search.out" || tc_fail "search names no best trial"
grep -q '^search: 2 trials; .* is >= 2.27 (Sidak' "$TMP/search.out" || tc_fail "search threshold line"
meta() { $PY -c 'import json,struct,sys; b=open(sys.argv[1],"rb").read(); n=struct.unpack("<Q",b[:8])[0]
print(json.loads(b[8:8+n])["__metadata__"].get(sys.argv[2], "-"))' "$1" "$2"; }
tc_eq "search threshold in the model" "$(meta "$TMP/search.safetensors" tickcast.val_t_min)" 2.273
tc_eq "search trials in the model" "$(meta "$TMP/search.safetensors" tickcast.trials)" 2
"$TC" eval --model "$TMP/multi.safetensors" --input "$TMP/multi_ok.csv" --sym BBB \
  --plot "$TMP/p.svg" --quiet >"$TMP/bbb.txt"
grep -q '^BBB ' "$TMP/bbb.txt" || tc_fail "--sym BBB row"
grep -q '^ALL ' "$TMP/bbb.txt" && tc_fail "--sym shows ALL"
$PY - "$TMP/p.svg" <<'PYEOF' || tc_fail "plot is not a well-formed SVG with labels"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
text = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
for want in ("predicted", "realized", "sign of prediction, net of costs", "sign of prediction, gross",
             "buy and hold", "time (UTC)", "equal-weighted over 1 instrument:"):
    assert want in text, want
assert root.tag.endswith("svg")
PYEOF
# 100,000 ticks of two instruments: the plot stays small, draws both series per pixel column, and
# its curves end at the strategy figures of --json (equal-weighted, net and gross).
$PY - "$TMP/big.csv" <<'PYEOF'
import math, random, sys
rnd = random.Random(11)
st = {"P": [0.0, 50.0], "Q": [0.0, 80.0]}
with open(sys.argv[1], "w") as f:
    f.write("sym,ts,px,qty,bid,ask\n")
    for i in range(100000):
        s = "PQ"[i % 2]
        r = -0.3 * st[s][0] + rnd.gauss(0, 0.002)
        st[s] = [r, st[s][1] * math.exp(r)]
        px = st[s][1]
        q = f"{px * 0.9998:.9g},{px * 1.0002:.9g}" if i % 3 else ","
        f.write(f"{s},{1600000000000000000 + (i // 2) * 10**9},{px:.10g},1,{q}\n")
PYEOF
"$TC" eval --model "$TMP/multi.safetensors" --input "$TMP/big.csv" --plot "$TMP/big.svg" --json \
  --quiet >"$TMP/big.json"
$PY - "$TMP/big.svg" "$TMP/big.json" <<'PYEOF' || tc_fail "100,000-tick plot"
import json, os, re, sys, xml.etree.ElementTree as ET
size = os.path.getsize(sys.argv[1])
assert size < 200000, size
root = ET.parse(sys.argv[1]).getroot()
text = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
for want in ("99998 predictions, per pixel column", "realized: 10-90% of a column", "realized: min-max",
             "predicted: mean", "predicted: 10-90% of a column", "equal-weighted over 2 instruments",
             "half the quoted spread, 1 bp without a quote"):
    assert want in text, want
st = json.load(open(sys.argv[2]))["overall"]["strategy"]
m = re.search(r"net (\S+) \(gross (\S+)\), vs buy and hold (\S+)", text)
assert m and [float(x) for x in m.groups()] == [float(f"{st[k]:.4g}") for k in ("net", "gross", "hold")], (m.groups(), st)
assert st["net"] < st["gross"]
print(f"ok: 100,000-tick plot, {size} bytes; net {st['net']:.4g}, gross {st['gross']:.4g}")
PYEOF
echo "ok: search table, --sym, SVG plot"

# 6. A held-out test part: train --test-frac records it; eval --test scores exactly it and agrees
# with the figures train wrote into the model (inspect --model shows them) and with an outside
# implementation of every figure (tests/eval_ref.py, from replay's predictions); eval of the whole
# file warns that what it scored overlaps the training range, with counts from the ranges.
"$TC" train --input "$TMP/multi_ok.csv" --output "$TMP/held.safetensors" --hidden 8 --epochs 20 \
  --seq 16 --batch 8 --test-frac 0.3 2>"$TMP/held.log" || { cat "$TMP/held.log"; tc_fail "train --test-frac"; }
grep -q "train: held-out test part (never trained, validated or chosen on): skill" "$TMP/held.log" ||
  { cat "$TMP/held.log"; tc_fail "train reports no test figures"; }
"$TC" eval --model "$TMP/held.safetensors" --input "$TMP/multi_ok.csv" --test --json --quiet \
  --cost-bps 2 >"$TMP/held_test.json" 2>"$TMP/held_test.err"
[ -s "$TMP/held_test.err" ] && { cat "$TMP/held_test.err"; tc_fail "eval --test warned"; }
"$TC" replay --model "$TMP/held.safetensors" --input "$TMP/multi_ok.csv" --output "$TMP/held_pred.csv" --quiet
$PY "$ROOT/tests/eval_ref.py" "$TMP/held.safetensors" "$TMP/multi_ok.csv" "$TMP/held_pred.csv" \
  "$TMP/held_test.json" --test --cost-bps 2 || tc_fail "eval --test differs from the reference"
"$TC" inspect --model "$TMP/held.safetensors" --json >"$TMP/held_inspect.json"
$PY - "$TMP/held_test.json" "$TMP/held_inspect.json" "$TMP/multi_ok.csv" <<'PYEOF' || tc_fail "test figures"
import csv, json, math, sys
ev, ins = json.load(open(sys.argv[1]))["overall"], json.load(open(sys.argv[2]))
t = ins["test"]
# The test part: per instrument its last floor(0.3 n) ticks, predictions from its first one on.
n = {}
for r in csv.DictReader(open(sys.argv[3])): n[r["sym"]] = n.get(r["sym"], 0) + 1
want_n = sum(math.floor(k * 0.3) - 1 for k in n.values())
rows = {r["sym"]: r for r in ins["ranges"]}
assert sum(r["test"] for r in rows.values()) - len(rows) == ev["n"] == t["n"] == want_n, (ev["n"], t["n"], want_n)
for k in ("skill", "mse", "mse_rw"):
    assert abs(ev[k] - t[k]) <= 1e-6 * max(abs(t[k]), 1e-12) + 1e-6, (k, ev[k], t[k])
assert abs(ev["skill_ci"]["lo"] - t["skill_ci"][0]) <= 1e-6 and abs(ev["skill_ci"]["hi"] - t["skill_ci"][1]) <= 1e-6
assert abs(ev["dm"]["p_hln"] - t["dm_p"]) <= 1e-3 * t["dm_p"] + 1e-300
assert ins["cell"] == "lstm" and ins["layers"] == 1 and ins["hidden"] == 8 and ins["instruments"] == 3
assert all(r["train"] + r["val"] + r["test"] == n[s] for s, r in rows.items())
print(f"ok: eval --test = the model's test figures: n {ev['n']}, skill {ev['skill']:+.5f}")
PYEOF
"$TC" eval --model "$TMP/held.safetensors" --input "$TMP/multi_ok.csv" --json --quiet \
  >"$TMP/held_all.json" 2>"$TMP/held_all.err"
grep -q "^eval: warning: [0-9]* of [0-9]* scored predictions .* were made inside the model's training range" \
  "$TMP/held_all.err" || { cat "$TMP/held_all.err"; tc_fail "no overlap warning"; }
$PY - "$TMP/held_all.json" "$TMP/held_inspect.json" "$TMP/multi_ok.csv" <<'PYEOF' || tc_fail "overlap counts"
import csv, json, sys
ev, ins = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
rng = json.loads(ins["metadata"]["tickcast.ranges"])
ts = {}
for r in csv.DictReader(open(sys.argv[3])): ts.setdefault(r["sym"], []).append(int(r["ts"]))
inside = sum(1 for s, v in ts.items() for t in v[:-1] if rng[s]["from"] <= t <= rng[s]["to"])
ov = ev["overlap"]
assert ov["checked"] and ov["inside"] == inside and ov["instruments_inside"] == 3, (ov, inside)
assert ov["warning"].startswith(f"{inside} of {ev['overall']['n']} scored predictions")
print(f"ok: overlap {inside} of {ev['overall']['n']} in --json")
PYEOF
code() { set +e; "$@" >/dev/null 2>"$TMP/err"; echo $?; set -e; }
tc_eq "eval --test of a model without a test part" \
  "$(code "$TC" eval --model "$TMP/multi.safetensors" --input "$TMP/multi_ok.csv" --test --quiet)" 1
grep -q "was made after the model's training range" "$TMP/err" || tc_fail "eval --test message"
tc_eq "eval --test of a model without ranges" \
  "$(code "$TC" eval --model "$TMP/const.safetensors" --input "$TMP/multi_ok.csv" --test --quiet)" 2
grep -q "records no training ranges" "$TMP/err" || tc_fail "eval --test without ranges message"
# --test, --val-frac and --since are alternatives: two of them are bad usage naming both (they
# were accepted and their intersection scored).
for pair in "--test|--since 0" "--val-frac 0.5|--since 0" "--test|--val-frac 0.5"; do
  a=${pair%|*} b=${pair#*|}
  tc_eq "eval $a $b" \
    "$(code "$TC" eval --model "$TMP/held.safetensors" --input "$TMP/multi_ok.csv" $a $b --quiet)" 2
  tc_eq "eval $a $b: message" "$(cat "$TMP/err")" \
    "tickcast eval: ${a%% *} with ${b%% *}: found both, expected at most one of --test, --val-frac and --since (see tickcast eval --help)"
done
# Nothing to score (one tick per instrument) is exit 1, as --help says; so is a report that
# cannot be written (eval once exited 0 on a full disk).
head -4 "$TMP/multi_ok.csv" | awk -F, 'NR == 1 || !seen[$1]++' >"$TMP/one_each.csv"
tc_eq "eval with nothing to score" \
  "$(code "$TC" eval --model "$TMP/multi.safetensors" --input "$TMP/one_each.csv" --quiet)" 1
grep -q "one_each.csv: nothing to score: found [0-9]* accepted ticks" "$TMP/err" || tc_fail "nothing to score: $(cat "$TMP/err")"
set +e
"$TC" eval --model "$TMP/multi.safetensors" --input "$TMP/multi_ok.csv" --json --quiet >/dev/full 2>"$TMP/err"
tc_eq "eval to a full disk" "$?" 1
set -e
tc_eq "eval to a full disk: message" "$(tail -1 "$TMP/err")" "tickcast eval: stdout: cannot write the report: No space left on device"
# --test-from: every fitted tick is before the bound, and eval --test scores the ticks after it.
FROM=$(sed -n 2000p "$TMP/multi_ok.csv" | cut -d, -f2)
"$TC" train --input "$TMP/multi_ok.csv" --output "$TMP/from.safetensors" --hidden 4 --epochs 2 \
  --test-from "$FROM" --quiet
"$TC" eval --model "$TMP/from.safetensors" --input "$TMP/multi_ok.csv" --test --json --quiet >"$TMP/from.json"
$PY - "$TMP/from.safetensors" "$TMP/from.json" "$TMP/multi_ok.csv" "$FROM" <<'PYEOF' || tc_fail "--test-from"
import csv, json, struct, sys
b = open(sys.argv[1], "rb").read()
rng = json.loads(json.loads(b[8:8 + struct.unpack("<Q", b[:8])[0]])["__metadata__"]["tickcast.ranges"])
frm = int(sys.argv[4])
assert all(r["to"] < frm for r in rng.values()), rng
ts = {}
for r in csv.DictReader(open(sys.argv[3])): ts.setdefault(r["sym"], []).append(int(r["ts"]))
want = sum(1 for v in ts.values() for t in v[:-1] if t >= frm)
got = json.load(open(sys.argv[2]))["overall"]["n"]
assert got == want, (got, want)
print(f"ok: --test-from: {got} predictions after the bound")
PYEOF

# 7. inspect --model: text and JSON, and its exit codes.
"$TC" inspect --model "$TMP/held.safetensors" >"$TMP/inspect.txt"
for want in "cell         lstm" "shape        L=1 H=8" "trained on   multi_ok.csv" \
  "kept when t >= 2.000 over 1 trial(s)" "test         $($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["test"]["n"])' "$TMP/held_inspect.json") predictions" \
  "ranges       3 instruments" "sha256       $(sha256sum "$TMP/held.safetensors" | cut -c1-64)"; do
  grep -qF "$want" "$TMP/inspect.txt" || { cat "$TMP/inspect.txt"; tc_fail "inspect --model lacks '$want'"; }
done
tc_eq "inspect --model id" "$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$TMP/held_inspect.json")" \
  "$(sha256sum "$TMP/held.safetensors" | cut -c1-16)"
tc_eq "inspect --model of a missing file" "$(code "$TC" inspect --model "$TMP/nope.safetensors")" 2
tc_eq "inspect --model with --state" "$(code "$TC" inspect --model "$TMP/held.safetensors" --state x.db)" 2

# 8. --ts-unit: the same ticks with seconds and with nanoseconds give the same model bytes; without
# the flag the seconds are read as nanoseconds, with a warning.
awk -F, 'NR == 1 { print; next } NR <= 3001 { $2 = sprintf("%d", 1700000000 + NR); print }' OFS=, \
  "$TMP/small.csv" >"$TMP/sec.csv"
awk -F, 'NR == 1 { print; next } { $2 = $2 "000000000"; print }' OFS=, "$TMP/sec.csv" >"$TMP/nsec.csv"
"$TC" train --input "$TMP/sec.csv" --output "$TMP/sec.safetensors" --epochs 1 --ts-unit s --quiet
"$TC" train --input "$TMP/nsec.csv" --output "$TMP/nsec.safetensors" --epochs 1 --quiet 2>"$TMP/nsec.err"
[ -s "$TMP/nsec.err" ] && { cat "$TMP/nsec.err"; tc_fail "warning on nanoseconds"; }
$PY -c 'import json, sys
def parts(p):
    b = open(p, "rb").read(); n = int.from_bytes(b[:8], "little"); h = json.loads(b[8:8 + n])
    h["__metadata__"].pop("tickcast.trained_on"); return h, b[8 + n:]
sys.exit(0 if parts(sys.argv[1]) == parts(sys.argv[2]) else 1)' "$TMP/sec.safetensors" "$TMP/nsec.safetensors" ||
  tc_fail "--ts-unit s differs from nanoseconds"
"$TC" train --input "$TMP/sec.csv" --output "$TMP/x.safetensors" --epochs 1 --quiet 2>"$TMP/sec.err"
grep -q "sec.csv:2: warning: integer ts 1700000002 is read as nanoseconds .* looks like seconds" \
  "$TMP/sec.err" || { cat "$TMP/sec.err"; tc_fail "no seconds warning"; }
echo "ok: --ts-unit s = nanoseconds; seconds without it warned"

# 9. Exit codes (CONTRACT §6).
tc_eq "train --help" "$(code "$TC" train --help)" 0
tc_eq "eval --help" "$(code "$TC" eval --help)" 0
tc_eq "train without --output" "$(code "$TC" train --input "$TMP/small.csv")" 2
tc_eq "train --hidden 0" "$(code "$TC" train --input "$TMP/small.csv" --output "$TMP/x" --hidden 0)" 2
grep -q -- "--hidden: found '0', expected an integer" "$TMP/err" || tc_fail "--hidden message"
# --trials is --search's: without it, bad usage before any work (it was silently ignored).
tc_eq "train --trials without --search" \
  "$(code "$TC" train --input "$TMP/small.csv" --output "$TMP/trials.safetensors" --trials 3 --epochs 1)" 2
tc_eq "train --trials without --search: message" "$(cat "$TMP/err")" \
  "tickcast train: --trials 3 without --search: --trials is the number of configurations --search tries, expected --search with it"
[ ! -e "$TMP/trials.safetensors" ] || tc_fail "train --trials without --search wrote a model"
tc_eq "train missing input" "$(code "$TC" train --input "$TMP/nope.csv" --output "$TMP/x")" 2
grep -q "nope.csv: cannot open" "$TMP/err" || tc_fail "missing-input message"
printf 'foo,bar\n1,2\n' >"$TMP/noheader.csv"
tc_eq "train without a valid header" "$(code "$TC" train --input "$TMP/noheader.csv" --output "$TMP/x")" 2
printf 'sym,ts,px\nA,1,1\n' >"$TMP/one.csv"
tc_eq "train with no training targets" "$(code "$TC" train --input "$TMP/one.csv" --output "$TMP/x")" 1
head -c 100 "$TMP/ar1.safetensors" >"$TMP/bad.safetensors"
tc_eq "eval bad model" "$(code "$TC" eval --model "$TMP/bad.safetensors" --input "$TMP/small.csv")" 2
grep -q "bad.safetensors" "$TMP/err" || tc_fail "bad-model message names the file"
tc_eq "eval --sym absent" \
  "$(code "$TC" eval --model "$TMP/ar1.safetensors" --input "$TMP/small.csv" --sym ZZZ --quiet)" 2
tc_eq "eval --sym absent: message" "$(cat "$TMP/err")" \
  "tickcast eval: --sym ZZZ: no accepted tick of that instrument in $TMP/small.csv"
# ...while a --since (or a --sym that is there) that leaves nothing to score is exit 1; --help
# and TRAINING.md say both (TRAINING.md once said 1 for an absent --sym).
tc_eq "eval --since past the end" "$(code "$TC" eval --model "$TMP/ar1.safetensors" --input "$TMP/small.csv" \
  --since 2100-01-01T00:00:00Z --quiet)" 1
grep -q "nothing to score: .* that --sym, --since or --val-frac choose$" "$TMP/err" || tc_fail "--since: $(cat "$TMP/err")"
"$TC" eval --help | tr '\n' ' ' | grep -q "1 runtime failure or nothing to score (also when --since, --val-frac or --sym leave no prediction), 2 bad usage, bad model, unreadable input or a --sym with no accepted tick in the input" ||
  tc_fail "eval --help does not give the exit status of --sym and --since"
# past_bound WHAT TRAIN_INPUT EVAL_INPUT MESSAGE: with --max-memory 1, train on TRAIN_INPUT exits
# 1 with MESSAGE and writes no model, and eval on EVAL_INPUT exits 1.
past_bound() {
  tc_eq "train past --max-memory$1" "$(code "$TC" train --input "$2" --output "$TMP/mm.safetensors" \
    --max-memory 1)" 1
  grep -qF "$4" "$TMP/err" || tc_fail "max-memory message$1: $(cat "$TMP/err")"
  [ ! -e "$TMP/mm.safetensors" ] || tc_fail "a model was written past --max-memory$1"
  tc_eq "eval past --max-memory$1" "$(code "$TC" eval --model "$TMP/ar1.safetensors" --input "$3" \
    --max-memory 1)" 1
}
# The memory bound: 1 MiB holds 5242 ticks at 200 bytes a tick; the 50,000-tick file stops at the
# first tick past it (line 5244: a header, then 5242 accepted), exit 1 naming file, line and bound.
past_bound "" "$TMP/ar1_train.csv" "$TMP/ar1_test.csv" \
  "ar1_train.csv:5244: more than 5242 accepted ticks at 200 bytes a tick: past the memory bound of 1 MiB (--max-memory"
# An instrument counts as at least 16 ticks (what it holds whatever its ticks: once 17 KB, its
# first 256 ticks' arrays): 1,000 instruments of 2 ticks each (2,000 ticks) stop at the first
# tick of the 328th (16 x 328 > 5242), line 329.
awk 'BEGIN { print "sym,ts,px"; for (t = 0; t < 2; t++) for (i = 0; i < 1000; i++)
  printf "S%d,%d,%.3f\n", i, 1000 * t + i + 1, 100 + t * 0.01 + (i % 7) * 0.001 }' >"$TMP/syms.csv"
past_bound " by instruments" "$TMP/syms.csv" "$TMP/syms.csv" \
  "syms.csv:329: 327 accepted ticks in 327 instruments, each counted as at least 16 ticks, make more than 5242 at 200 bytes a tick: past the memory bound of 1 MiB (--max-memory"
# --search at once: 12 MiB holds the 50,000 ticks of ar1_test.csv at 200 bytes (10 MB) and
# (12 MiB - 10 MB) / (32 bytes x 50,000) = 1 more trial: 2 threads, not 8.
"$TC" train --input "$TMP/ar1_test.csv" --output "$TMP/mm.safetensors" --search --trials 3 --epochs 1 \
  --threads 8 --max-memory 12 >/dev/null 2>"$TMP/mm.err" || tc_fail "search within the bound: $(cat "$TMP/mm.err")"
grep -q "^train: --search on 2 threads instead of 8: each trial at once holds about 32 bytes a tick more, and the memory bound of 12 MiB allows 2$" "$TMP/mm.err" ||
  tc_fail "search threads under the bound: $(grep -- --search "$TMP/mm.err")"
tc_eq "eval within --max-memory 10" "$(code "$TC" eval --model "$TMP/ar1.safetensors" --input "$TMP/ar1_test.csv" \
  --max-memory 10 --quiet)" 0
# Valid prices whose ratio leaves double's range (1e-200 <-> 1e200: ln of the ratio is +-921, the
# quotient is inf or 0), and prices that never move under the Gaussian head (every validation
# residual 0): both models load, and replay predicts finite numbers. Once the first wrote a NaN
# features.mean and the second an infinite scale_head.bias, and both exited 0.
awk 'BEGIN { print "sym,ts,px"; for (i = 0; i < 400; i++) printf "A,%d,%s\n", 1000 + i, i % 2 ? "1e200" : "1e-200" }' >"$TMP/wild.csv"
awk 'BEGIN { print "sym,ts,px"; for (i = 0; i < 200; i++) printf "A,%d,100\n", 1000 + i }' >"$TMP/flat.csv"
for c in "wild.csv --hidden 4" "flat.csv --hidden 4 --head gauss"; do
  read -r f args <<<"$c"
  "$TC" train --input "$TMP/$f" --output "$TMP/$f.safetensors" $args --epochs 2 --quiet 2>"$TMP/edge.err" ||
    tc_fail "train on $f: $(cat "$TMP/edge.err")"
  "$TC" inspect --model "$TMP/$f.safetensors" >/dev/null 2>"$TMP/edge.err" || tc_fail "the model of $f: $(cat "$TMP/edge.err")"
  "$TC" replay --quiet --model "$TMP/$f.safetensors" --input "$TMP/$f" --output "$TMP/edge.out" --threads 1 ||
    tc_fail "replay of $f"
  $PY -c 'import csv, math, sys
rows = list(csv.DictReader(open(sys.argv[1])))
bad = [r for r in rows if not all(math.isfinite(float(r[k])) for k in ("pred_ret", "pred_px", "pred_std", "lo_px", "hi_px") if k in r)]
assert len(rows) > 100 and not bad, (len(rows), bad[:2])' "$TMP/edge.out" || tc_fail "replay of $f: not finite"
done
# Standard input can be read once: --input - twice is bad usage (it once read stdin, then
# failed on the second as an empty file).
set +e
"$TC" train --input - --input - --output "$TMP/twice.safetensors" <"$TMP/flat.csv" 2>"$TMP/twice.err"
rc=$?
set -e
tc_eq "train --input - twice: exit status" "$rc" 2
tc_eq "train --input - twice: message" "$(cat "$TMP/twice.err")" \
  "tickcast train: --input -: found 2 times, expected at most once (standard input can be read only once)"
# An --output that is not a regular file is written in place: a FIFO's reader gets the model's
# bytes, a device stays a device (the model was once written to a temp file and renamed over it,
# which made /dev/full a 22 KB regular file, exit 0). A full device is a failed write (exit 1).
"$TC" train --input "$TMP/flat.csv" --output "$TMP/flat_reg.safetensors" --hidden 4 --epochs 1 --quiet ||
  tc_fail "train to a regular file"
mkfifo "$TMP/model.fifo"
cat "$TMP/model.fifo" >"$TMP/from_fifo.safetensors" &
CAT_PID=$!
TC_PIDS+=("$CAT_PID") # ended at exit if train fails before it opens the FIFO
"$TC" train --input "$TMP/flat.csv" --output "$TMP/model.fifo" --hidden 4 --epochs 1 --quiet ||
  tc_fail "train to a FIFO"
[ -p "$TMP/model.fifo" ] || { kill "$CAT_PID"; tc_fail "the FIFO was replaced by a regular file"; }
wait "$CAT_PID"
cmp -s "$TMP/from_fifo.safetensors" "$TMP/flat_reg.safetensors" || tc_fail "the FIFO's reader got other bytes"
echo "ok: a model written into a FIFO reaches its reader, the FIFO stays one"
# A reader that leaves early: a failed write (exit 1, EPIPE named), not a death by SIGPIPE (141).
# The model (H = 64, about 80 KB) does not fit the pipe's buffer.
head -c 1 "$TMP/model.fifo" >/dev/null &
set +e
"$TC" train --input "$TMP/flat.csv" --output "$TMP/model.fifo" --hidden 64 --epochs 1 --quiet \
  2>"$TMP/pipe.err"
rc=$?
set -e
tc_eq "train --output a FIFO whose reader left: exit status" "$rc" 1
grep -q "cannot write: Broken pipe" "$TMP/pipe.err" || tc_fail "FIFO reader left: $(cat "$TMP/pipe.err")"
if mknod "$TMP/full" c 1 7 2>/dev/null && mknod "$TMP/null" c 1 3 2>/dev/null; then
  tc_eq "train --output a full device: exit status" \
    "$(code "$TC" train --input "$TMP/flat.csv" --output "$TMP/full" --hidden 4 --epochs 1 --quiet)" 1
  [ -c "$TMP/full" ] || tc_fail "the full device was replaced by a regular file"
  tc_eq "train --output a null device: exit status" \
    "$(code "$TC" train --input "$TMP/flat.csv" --output "$TMP/null" --hidden 4 --epochs 1 --quiet)" 0
  [ -c "$TMP/null" ] || tc_fail "the null device was replaced by a regular file"
  echo "ok: devices as --output stay devices; a full one fails the write (exit 1)"
else
  echo "skipped: devices as --output (mknod needs root)"
fi
# An output that cannot be written is refused before any work, with one line naming the flag, the
# path and why, and the exit status of a write that fails after the work (1); nothing is created.
# train once trained every epoch and only then failed on its temp file; eval printed its whole
# report first.
nowrite() { # what regex command...: exit 1, one error line matching regex, nothing on stdout
  local what=$1 re=$2 rc=0
  shift 2
  "$@" >"$TMP/nowrite.out" 2>"$TMP/nowrite.err" || rc=$?
  tc_one_error "$what" "$rc" "$TMP/nowrite.err" "$re"
  [ ! -s "$TMP/nowrite.out" ] || tc_fail "$what: work done first: $(head -n 3 "$TMP/nowrite.out")"
}
nowrite "train --output in a missing directory" \
  "^tickcast train: --output $TMP/nodir/m.safetensors: cannot be created: directory $TMP/nodir: No such file or directory \(expected an existing, writable directory\)$" \
  "$TC" train --input "$TMP/flat.csv" --output "$TMP/nodir/m.safetensors" --hidden 4 --epochs 50
nowrite "train --search --output under a file" \
  "^tickcast train: --output $TMP/flat.csv/m.safetensors: cannot be created: Not a directory$" \
  "$TC" train --input "$TMP/flat.csv" --output "$TMP/flat.csv/m.safetensors" --search --trials 2 \
  --hidden 4 --epochs 1
nowrite "train --output a directory" "^tickcast train: --output $TMP: is a directory, expected a file name$" \
  "$TC" train --input "$TMP/flat.csv" --output "$TMP" --hidden 4 --epochs 1
nowrite "eval --plot in a missing directory" \
  "^tickcast eval: --plot $TMP/nodir/p.svg: cannot be created: directory $TMP/nodir: No such file or directory \(expected an existing, writable directory\)$" \
  "$TC" eval --model "$TMP/flat_reg.safetensors" --input "$TMP/flat.csv" --plot "$TMP/nodir/p.svg" --quiet
[ ! -e "$TMP/nodir" ] || tc_fail "a refused output left $TMP/nodir"
echo "ok: outputs that cannot be written are refused before any work"
# An output that is an input under another name is refused before anything is read or written
# (exit 2): train's model over a tick file, eval's plot over its tick file or model, replay's
# predictions over its model. Each once replaced the file and exited 0.
cp "$TMP/flat.csv" "$TMP/keep.csv"
ln -s "$TMP/keep.csv" "$TMP/keep_link.csv"
cp "$TMP/flat_reg.safetensors" "$TMP/keep.safetensors"
tc_eq "train --output over an --input" \
  "$(code "$TC" train --input "$TMP/flat.csv" --input "$TMP/keep.csv" --output "$TMP/keep_link.csv" --quiet)" 2
tc_eq "eval --plot over --input" \
  "$(code "$TC" eval --model "$TMP/keep.safetensors" --input "$TMP/keep.csv" --plot "$TMP/keep_link.csv" --quiet)" 2
tc_eq "eval --plot over --model" \
  "$(code "$TC" eval --model "$TMP/keep.safetensors" --input "$TMP/keep.csv" --plot "$TMP/keep.safetensors" --quiet)" 2
tc_eq "replay --output over --model" \
  "$(code "$TC" replay --model "$TMP/keep.safetensors" --input "$TMP/keep.csv" --output "$TMP/keep.safetensors" --quiet)" 2
cmp -s "$TMP/keep.csv" "$TMP/flat.csv" || tc_fail "the tick file was overwritten"
cmp -s "$TMP/keep.safetensors" "$TMP/flat_reg.safetensors" || tc_fail "the model was overwritten"
echo "ok: outputs over an input or the model are refused, the files intact"
# --search prints its trials' table on stdout: a table that cannot be written is exit 1.
set +e
"$TC" train --input "$TMP/flat.csv" --output "$TMP/search_full.safetensors" --search --trials 2 \
  --epochs 1 --hidden 4 --quiet >/dev/full 2>"$TMP/err"
rc=$?
set -e
tc_eq "train --search >/dev/full: exit status" "$rc" 1
tc_eq "train --search >/dev/full: message" "$(cat "$TMP/err")" \
  "tickcast train: stdout: write failed: No space left on device"
echo "e2e_train: all passed in $SECONDS s"
