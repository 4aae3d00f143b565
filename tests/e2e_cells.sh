#!/usr/bin/env bash
# e2e_cells.sh: the GRU and RNN cells end to end. (1) The PyTorch round trip of docs/TRAINING.md,
# run as written there: a torch.nn.GRU exported to a model file gives in `replay` what PyTorch
# gives, and a model trained with --cell rnn_relu loads into torch.nn.RNN and gives what `replay`
# gives. (2) Each cell trained on an AR(1) return series reaches within 10% of the optimal skill
# on a held-out file, and PyTorch's own module agrees with `replay` and `eval` on that model.
# (3) --search takes the cells in turn. (4) The daemon with a GRU model predicts what `replay`
# and a Kafka range replay predict; a SIGHUP to an RNN model is refused; a restart with an RNN
# model on its state file is refused naming both cells (exit 2) unless --reset-state, and an RNN
# daemon does not take the GRU daemon's checkpoints from the changelog: its instruments start
# afresh; a GRU daemon without a state file restores the GRU's states from that changelog (not
# the RNN's) and continues exactly as replay; inspect shows the cell of each kind of state file.
. "$(dirname "$0")/lib.sh"

# Ticks: K instruments with AR(1) returns (r' = 0.5 r + noise: optimal skill 0.25), 1 s apart,
# with qty and quotes.
gen_ar1() { # n seed k file
  $PY - "$@" <<'PYEOF'
import math, random, sys
n, seed, k, path = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rnd = random.Random(seed)
st = [(0.0, 100.0 + 10 * i) for i in range(k)]
with open(path, "w") as f:
    f.write("sym,ts,px,qty,bid,ask\n")
    for i in range(n):
        s = i % k
        r, px = st[s]
        r = 0.5 * r + rnd.gauss(0, 0.001)
        px *= math.exp(r)
        st[s] = (r, px)
        sp = px * 1e-4 * (1 + rnd.random())
        f.write(f"S{s},{1700000000000000000 + i * 1000000000},{px:.12g},{rnd.randrange(1, 50)},"
                f"{px - sp / 2:.12g},{px + sp / 2:.12g}\n")
PYEOF
}

# 1. The round trip of docs/TRAINING.md, the lines between its roundtrip markers as they are.
mkdir -p "$TMP/work/bin"
ln -s "$TC" "$TMP/work/tickcast"
ln -s "$ROOT/docs" "$TMP/work/docs"
ln -s "$PY" "$TMP/work/bin/python3"
gen_ar1 6000 7 3 "$TMP/work/ticks.csv"
sed -n '/^<!-- roundtrip -->$/,/^<!-- \/roundtrip -->$/p' "$ROOT/docs/TRAINING.md" |
  sed '1,2d;$d' | sed '$d' >"$TMP/roundtrip.sh"
[ "$(grep -c tickcast "$TMP/roundtrip.sh")" -ge 4 ] || tc_fail "no roundtrip block in TRAINING.md"
(cd "$TMP/work" && PATH="$TMP/work/bin:$PATH" bash -euo pipefail "$TMP/roundtrip.sh") ||
  tc_fail "the round trip of docs/TRAINING.md failed"
for m in gru rnn; do
  $PY "$ROOT/tests/compare_preds.py" "$TMP/work/$m.safetensors" "$TMP/work/tickcast_$m.csv" \
    "$TMP/work/torch_$m.csv" --tol 1e-4 || tc_fail "$m: PyTorch and tickcast disagree"
done
grep -q '"tickcast.nonlinearity":"relu"' "$TMP/work/rnn.safetensors" || tc_fail "rnn: no nonlinearity"
grep -q '"gru.weight_hh_l1"' "$TMP/work/gru.safetensors" || tc_fail "gru: not 2 layers"
# The trained RNN predicts something (not the zero model), so the comparison means something.
$PY -c 'import csv, sys
p = [abs(float(r["pred_ret"])) for r in csv.DictReader(open(sys.argv[1]))]
sys.exit(0 if max(p) > 1e-5 else 1)' "$TMP/work/tickcast_rnn.csv" || tc_fail "rnn: zero model"
# The snippet in TRAINING.md is the example's code, line for line.
$PY - "$ROOT/docs/TRAINING.md" "$ROOT/docs/torch_roundtrip.py" <<'PYEOF' || tc_fail "snippet"
import re, sys
doc, src = open(sys.argv[1]).read(), open(sys.argv[2]).read()
block = re.search(r"```python\n(.*?)```", doc[doc.index("## The model in PyTorch"):], re.S).group(1)
code = {l.split("  #")[0].strip() for l in src.splitlines()}
missing = [l for l in block.splitlines() if l.strip() and l.split("  #")[0].strip() not in code]
if missing:
    sys.exit(f"TRAINING.md lines not in torch_roundtrip.py: {missing}")
PYEOF
echo "ok: the PyTorch round trip of TRAINING.md, both ways"

# 2. AR(1) per cell: held-out skill within 10% of the optimum of the test file itself.
gen_ar1 50000 1 1 "$TMP/ar1_train.csv"
gen_ar1 50000 2 1 "$TMP/ar1_test.csv"
oracle=$($PY - "$TMP/ar1_test.csv" <<'PYEOF'
import csv, math, sys
px = [float(r["px"]) for r in csv.DictReader(open(sys.argv[1]))]
ret = [0.0] + [math.log(b / a) for a, b in zip(px, px[1:])]
se = sum((ret[t + 1] - 0.5 * ret[t]) ** 2 for t in range(len(ret) - 1))
rw = sum(ret[t + 1] ** 2 for t in range(len(ret) - 1))
print(f"{1 - se / rw:.6f}")
PYEOF
)
echo "AR(1) test file: optimal skill $oracle"
for cell in gru rnn_tanh rnn_relu lstm; do
  "$TC" train --cell $cell --input "$TMP/ar1_train.csv" --output "$TMP/ar1_$cell.safetensors" \
    --seed 3 2>"$TMP/train_$cell.log" || { cat "$TMP/train_$cell.log"; tc_fail "train --cell $cell"; }
  grep -q "model $cell L=1 H=32" "$TMP/train_$cell.log" || tc_fail "$cell: $(head -3 "$TMP/train_$cell.log")"
  "$TC" eval --model "$TMP/ar1_$cell.safetensors" --input "$TMP/ar1_test.csv" --json --quiet \
    >"$TMP/eval_$cell.json"
  skill=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["overall"]["skill"])' \
    "$TMP/eval_$cell.json")
  echo "$cell: held-out skill $skill (optimum $oracle)"
  $PY -c 'import sys; s, o = map(float, sys.argv[1:]); sys.exit(0 if 0.9 * o <= s <= o + 0.01 else 1)' \
    "$skill" "$oracle" || tc_fail "$cell: skill $skill is not within 10% of $oracle"
  "$TC" replay --model "$TMP/ar1_$cell.safetensors" --input "$TMP/ar1_test.csv" \
    --output "$TMP/ar1_$cell.csv" --quiet
  $PY "$ROOT/tests/torch_eval_check.py" "$TMP/ar1_$cell.safetensors" "$TMP/ar1_test.csv" \
    "$TMP/ar1_$cell.csv" "$TMP/eval_$cell.json" >"$TMP/check_$cell.log" ||
    { cat "$TMP/check_$cell.log"; tc_fail "$cell: PyTorch disagrees with replay or eval"; }
done
grep -q 'cell=rnn_relu' "$TMP/ar1_rnn_relu.safetensors" || tc_fail "train_args lack the cell"
echo "ok: every cell within 10% of the optimal skill; PyTorch agrees with replay and eval"

# 3. --search takes the cells in turn; --cell keeps it to one; --peephole is the LSTM's.
"$TC" train --input "$TMP/work/ticks.csv" --output "$TMP/search.safetensors" --search --trials 4 \
  --epochs 2 --quiet >"$TMP/search.out"
cat "$TMP/search.out"
tc_eq "cells of the 4 trials" "$(awk '$1 ~ /^[1-4]$/ {printf "%s ", $2}' "$TMP/search.out")" \
  "lstm gru rnn_tanh rnn_relu "
# The trials on 1 and on 3 threads: the same model bytes, the same table but for its sec column.
for n in 1 3; do
  "$TC" train --input "$TMP/work/ticks.csv" --output "$TMP/search_t$n.safetensors" --search \
    --trials 4 --epochs 2 --threads "$n" --quiet >"$TMP/search_t$n.out"
done
cmp "$TMP/search_t1.safetensors" "$TMP/search_t3.safetensors" ||
  tc_fail "--search on 1 and 3 threads kept different models"
tc_eq "search table on 1 and 3 threads" "$(awk '{$NF = ""; print}' "$TMP/search_t3.out")" \
  "$(awk '{$NF = ""; print}' "$TMP/search_t1.out")"
tc_eq "distinct validation figures of the 4 trials" \
  "$(awk '$1 ~ /^[1-4]$/ {print $8}' "$TMP/search_t1.out" | sort -u | wc -l)" 4
"$TC" train --input "$TMP/work/ticks.csv" --output "$TMP/search1.safetensors" --search --trials 2 \
  --epochs 2 --cell gru --quiet >"$TMP/search1.out"
tc_eq "cells with --cell gru" "$(awk '$1 ~ /^[1-2]$/ {printf "%s ", $2}' "$TMP/search1.out")" "gru gru "
rc=0
"$TC" train --input "$TMP/work/ticks.csv" --output "$TMP/x.safetensors" --cell gru --peephole \
  2>"$TMP/peep.err" || rc=$?
tc_eq "exit of --cell gru --peephole" "$rc" 2
grep -q -- "--peephole is for the LSTM only" "$TMP/peep.err" || tc_fail "$(cat "$TMP/peep.err")"

# 4. The daemon with the GRU model: predictions equal replay (file and Kafka range).
M=$TMP/ar1_gru.safetensors
R=$TMP/ar1_rnn_relu.safetensors
sha() { sha256sum "$1" | cut -c1-64; }
head -n 2001 "$TMP/work/ticks.csv" >"$TMP/a.csv"
{ head -n 1 "$TMP/a.csv"; sed -n 2002,3001p "$TMP/work/ticks.csv"; } >"$TMP/b.csv"
"$TC" replay --model "$M" --input "$TMP/a.csv" --output "$TMP/ra.csv" --quiet
tc_broker_start --topics ticks:3,predictions:3,preds2:3,tickcast.dlq:1,tickcast.stats:1
"$TC" feed --brokers "$BROKERS" --topic ticks --input "$TMP/a.csv" 2>"$TMP/feed.log" ||
  tc_fail "feed: $(tail -n 3 "$TMP/feed.log")"
cp "$M" "$TMP/live.safetensors"
tc_bg "$TC" run --brokers "$BROKERS" --model "$TMP/live.safetensors" --state "$TMP/gru.db" \
  --group cells --checkpoint-interval 200 --http off 2>"$TMP/run_gru.log"
GRU_PID=$BG_PID
$PY "$ROOT/tests/e2e_run.py" collect "$BROKERS" predictions 2000 60 "$TMP/preds.jsonl"
$PY "$ROOT/tests/e2e_run.py" check-preds "$TMP/preds.jsonl" "$TMP/ra.csv" ||
  tc_fail "GRU daemon and replay disagree"
grep -q "gru L=1 H=32" "$TMP/run_gru.log" || tc_fail "start-up line lacks the cell"
"$TC" replay --model "$M" --brokers "$BROKERS" --topic ticks --output "$TMP/k.csv" 2>"$TMP/k.log" ||
  tc_fail "kafka replay: $(cat "$TMP/k.log")"
$PY - "$TMP/ra.csv" "$TMP/k.csv" <<'PYEOF' || tc_fail "GRU Kafka range replay and file replay disagree"
import csv, sys
a, b = ({(r["sym"], r["n"]): float(r["pred_ret"]) for r in csv.DictReader(open(p))} for p in sys.argv[1:])
assert a.keys() == b.keys(), (len(a), len(b))
worst = max(abs(a[k] - b[k]) for k in a)
assert worst <= 1e-9, worst  # pred_ret ~ 1e-3: float32 rounding of y times target.std at most
print(f"Kafka range replay = file replay: {len(a)} rows, max |d pred_ret| {worst:.3g}")
PYEOF
# SIGHUP with the RNN model in the GRU daemon's model file: refused (another cell), GRU kept.
cp "$R" "$TMP/new.safetensors" && mv "$TMP/new.safetensors" "$TMP/live.safetensors"
kill -HUP "$GRU_PID"
tc_wait_for 10 grep -q "SIGHUP: .* has shape rnn_relu L=1 H=32 .*expected gru L=1 H=32 .*refused" \
  "$TMP/run_gru.log" || tc_fail "SIGHUP with another cell: $(grep SIGHUP "$TMP/run_gru.log")"
tc_stop "$GRU_PID" 20
tc_eq "GRU daemon exit" "$STOP_RC" 0
grep -q "shutdown: checkpoint of [0-9]* instruments" "$TMP/run_gru.log" ||
  tc_fail "the GRU daemon wrote no final checkpoint"
"$TC" inspect --state "$TMP/gru.db" >"$TMP/inspect.txt"
grep -q "^cell         gru$" "$TMP/inspect.txt" || tc_fail "inspect: $(cat "$TMP/inspect.txt")"
echo "ok: GRU daemon = replay = Kafka range replay; inspect shows the cell"

# The RNN model on the GRU's state file: refused naming both cells, the file untouched.
before=$(sha "$TMP/gru.db")
rc=0
timeout 30 "$TC" run --brokers "$BROKERS" --model "$R" --state "$TMP/gru.db" --group cells \
  --http off >/dev/null 2>"$TMP/other.err" || rc=$?
tc_eq "exit with a model of another cell" "$rc" 2
grep -q "(gru L=1 H=32), but the model given is .* (rnn_relu L=1 H=32).*--reset-state" \
  "$TMP/other.err" || tc_fail "message: $(cat "$TMP/other.err")"
tc_eq "state file untouched" "$(sha "$TMP/gru.db")" "$before"
echo "ok: $(grep ERROR "$TMP/other.err")"

# With --reset-state it runs. A new group on the same changelog, which holds the GRU daemon's
# checkpoints (markers at offsets ahead of the emptied file): the RNN daemon does not take them,
# so it reads every tick from the start with fresh states, and its predictions equal a replay of
# all the ticks with the RNN model (n from 1).
head -n 3001 "$TMP/work/ticks.csv" >"$TMP/ab.csv"
"$TC" replay --model "$R" --input "$TMP/ab.csv" --output "$TMP/rab.csv" --quiet
"$TC" feed --brokers "$BROKERS" --topic ticks --input "$TMP/b.csv" 2>>"$TMP/feed.log"
tc_bg "$TC" run --brokers "$BROKERS" --model "$R" --state "$TMP/gru.db" --group cells2 \
  --changelog-topic cells.state --output-topic preds2 --reset-state --http off 2>"$TMP/run_rnn.log"
RNN_PID=$BG_PID
$PY "$ROOT/tests/e2e_run.py" collect "$BROKERS" preds2 3000 60 "$TMP/preds2.jsonl"
$PY "$ROOT/tests/e2e_run.py" check-preds "$TMP/preds2.jsonl" "$TMP/rab.csv" ||
  tc_fail "the RNN daemon took state it should not have"
grep -q "restored ticks partitions .*: 0 instruments" "$TMP/run_rnn.log" ||
  tc_fail "the RNN daemon restored instruments: $(grep restored "$TMP/run_rnn.log")"
grep -q "ignored 0 values that do not decode, 0 hand-off records of an earlier version, [1-9][0-9]* records and markers of another model" \
  "$TMP/run_rnn.log" || tc_fail "no checkpoint of another model seen: $(grep changelog "$TMP/run_rnn.log")"
tc_stop "$RNN_PID" 20
tc_eq "RNN daemon exit" "$STOP_RC" 0
"$TC" inspect --state "$TMP/gru.db" >"$TMP/inspect2.txt"
grep -q "^cell         rnn_relu$" "$TMP/inspect2.txt" || tc_fail "inspect: $(cat "$TMP/inspect2.txt")"
echo "ok: --reset-state runs the RNN model afresh; the GRU's checkpoints are not taken"

# The GRU model again, in its group, with no state file: it restores the GRU's states from the
# changelog, which now holds the RNN daemon's checkpoints too (another model: ignored), resumes
# where the GRU daemon stopped and predicts b.csv's ticks as a replay of all of them does.
"$TC" replay --model "$M" --input "$TMP/ab.csv" --output "$TMP/gab.csv" --quiet
tc_bg "$TC" run --brokers "$BROKERS" --model "$M" --state "$TMP/gru2.db" --group cells --http off \
  2>"$TMP/run_gru2.log"
GRU2_PID=$BG_PID
$PY "$ROOT/tests/e2e_run.py" collect "$BROKERS" predictions 3000 60 "$TMP/preds3.jsonl"
$PY "$ROOT/tests/e2e_run.py" check-preds "$TMP/preds3.jsonl" "$TMP/gab.csv" ||
  tc_fail "the GRU daemon restored from the changelog disagrees with replay"
grep -q "restored ticks partitions .*: 3 instruments (3 from the changelog, 0 from the state file)" \
  "$TMP/run_gru2.log" || tc_fail "GRU restore: $(grep restored "$TMP/run_gru2.log")"
grep -q "ignored 0 values that do not decode, .*[1-9][0-9]* records and markers of another model" \
  "$TMP/run_gru2.log" || tc_fail "the RNN's checkpoints not seen: $(grep changelog "$TMP/run_gru2.log")"
tc_stop "$GRU2_PID" 20
tc_eq "second GRU daemon exit" "$STOP_RC" 0
echo "ok: a GRU daemon with no state file restores the GRU's states from the changelog, = replay"

# inspect on files of an independent writer (tests/statedb.py): version 2 blobs of each cell,
# and version 1 blobs, which are an LSTM's.
for cell in gru rnn_tanh rnn_relu lstm v1; do
  args=(--cell "$cell")
  [ "$cell" = v1 ] && args=()
  $PY "$ROOT/tests/statedb.py" write "$TMP/sdb_$cell.db" --instruments 7 --layers 2 --hidden 5 "${args[@]}"
  "$TC" inspect --state "$TMP/sdb_$cell.db" --json | $PY -c '
import json, sys
o = json.load(sys.stdin)
want = "lstm" if sys.argv[1] == "v1" else sys.argv[1]
assert (o["cell"], o["layers"], o["hidden"], o["states_verified"]) == (want, 2, 5, 7), o' "$cell" ||
    tc_fail "inspect of a $cell state file"
done
echo "ok: inspect reads the states of every cell, and version 1 blobs as the LSTM's"
echo "e2e_cells: all passed"
