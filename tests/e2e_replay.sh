#!/usr/bin/env bash
# e2e_replay.sh: the real `tickcast replay` binary against the independent PyTorch reference
# (tests/ref_replay.py) on the bundled real sample and on files with malformed lines, for every
# fixture model (1 and 2 layers, with and without peepholes); rejected lines are reported by
# reason and line; output formats; exit statuses of CONTRACT §6.
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
SAMPLE=data/sample/fx_daily_2021_2025.csv

# 1. Agreement with PyTorch on real data, every fixture model.
for m in tests/fixtures/nn_*.safetensors; do
  "$TC" replay --model "$m" --input "$SAMPLE" --output "$TMP/c.csv" 2>"$TMP/c.err"
  "$PY" tests/ref_replay.py "$m" "$SAMPLE" --out "$TMP/r.csv" 2>/dev/null
  "$PY" tests/compare_preds.py "$m" "$TMP/c.csv" "$TMP/r.csv" --tol 1e-4 || tc_fail "$m disagrees with PyTorch"
  grep -q "10146 ticks read, 10146 accepted, 0 rejected, 10 instruments" "$TMP/c.err" ||
    tc_fail "summary: $(cat "$TMP/c.err")"
done
M=tests/fixtures/nn_l2_h16_peep.safetensors

# 2. Malformed lines: CSV. Each reason once, at a known line; the rest goes on.
cat >"$TMP/bad.csv" <<'CSV'
sym,ts,px,qty,bid,ask
AAA,1000000000,10.0,1,,
AAA,2000000000,-3,1,,
BBB,2000000000,20.0,,19.9,20.1
AAA,1970-01-01T00:00:03Z,10.5,2,,
AAA,2500000000,10.1,1,,
"BA""D",3000000000,10.0,1,,
BBB,2024-13-01T00:00:00Z,20.0,,,
BBB,3000000000,20.5,-1,,
BBB,3000000000,20.5,1,0,20
BBB,3000000000,20.6
,3000000000,20.6,,,
BBB,3000000000,20.6,1.5,20.7,20.5
AAA,1970-01-01T00:00:04.5+00:00,10.2,0,,
CSV
"$TC" replay --model $M --input "$TMP/bad.csv" --output "$TMP/bad.out.csv" 2>"$TMP/bad.err" ||
  tc_fail "replay of bad.csv exited $?"
cat "$TMP/bad.err"
tc_eq "accepted rows" "$(tail -n +2 "$TMP/bad.out.csv" | wc -l)" 5
grep -q "13 ticks read, 5 accepted, 8 rejected, 2 instruments" "$TMP/bad.err" || tc_fail "summary"
grep -q "bad.csv:3: bad_px: " "$TMP/bad.err" || tc_fail "bad_px line 3 not reported"
grep -qE "rejected out_of_order +1 +\(lines 6\)" "$TMP/bad.err" || tc_fail "out_of_order at line 6"
grep -qE "rejected bad_sym +1 +\(lines 7\)" "$TMP/bad.err" || tc_fail "bad_sym at line 7"
grep -qE "rejected bad_ts +1 +\(lines 8\)" "$TMP/bad.err" || tc_fail "bad_ts at line 8"
grep -qE "rejected bad_qty +1 +\(lines 9\)" "$TMP/bad.err" || tc_fail "bad_qty at line 9"
grep -qE "rejected bad_quote +1 +\(lines 10\)" "$TMP/bad.err" || tc_fail "bad_quote at line 10"
grep -qE "rejected (bad_json|bad_row) +1 +\(lines 11\)" "$TMP/bad.err" || tc_fail "short row at line 11"
grep -qE "rejected missing_field +1 +\(lines 12\)" "$TMP/bad.err" || tc_fail "missing sym at line 12"
"$PY" tests/ref_replay.py $M "$TMP/bad.csv" --out "$TMP/bad.ref.csv" 2>/dev/null
"$PY" tests/compare_preds.py $M "$TMP/bad.out.csv" "$TMP/bad.ref.csv" || tc_fail "bad.csv vs PyTorch"
# n counts per instrument; the crossed quote (bid > ask) is accepted with spread 0.
tc_eq "AAA n sequence" "$(awk -F, '$1=="AAA"{printf "%s ", $6}' "$TMP/bad.out.csv")" "1 2 3 "

# 3. The same ticks as JSON Lines, with JSONL output: src names FILE:LINE.
cat >"$TMP/bad.jsonl" <<'JL'
{"sym":"AAA","ts":1000000000,"px":10.0,"qty":1}
{"sym":"AAA","ts":2000000000,"px":-3}
{"sym":"BBB","ts":"1970-01-01T00:00:02Z","px":20.0,"bid":19.9,"ask":20.1,"venue":{"x":[1,2]}}
{"sym":"AAA","ts":3000000000,"px":10.5
{"sym":"AAA","ts":2500000000,"px":10.1}

{"sym":"AAA","ts":3000000000.5,"px":10.1}
{"sym":"AAA","px":10.1}
{"sym":"AAA","ts":3000000000,"px":10.2,"qty":null}
JL
"$TC" replay --model $M --input "$TMP/bad.jsonl" --output "$TMP/o.jsonl" 2>"$TMP/j.err" || tc_fail "jsonl replay"
cat "$TMP/j.err"
grep -q "8 ticks read, 4 accepted, 4 rejected" "$TMP/j.err" || tc_fail "jsonl summary"
tc_eq "jsonl rows" "$(wc -l <"$TMP/o.jsonl")" 4
"$PY" - "$TMP/o.jsonl" "$TMP/bad.jsonl" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [r['src'].rsplit(':', 1)[1] for r in rows] == ['1', '3', '5', '9'], rows
assert all(r['src'].startswith(sys.argv[2]) for r in rows), rows
assert [r['n'] for r in rows] == [1, 1, 2, 3] and rows[1]['ts'] == 2000000000, rows
assert set(rows[0]) == {'sym', 'ts', 'px', 'pred_ret', 'pred_px', 'n', 'src'}, rows[0]
assert isinstance(rows[0]['ts'], int) and len(repr(rows[0]['pred_ret']).strip('-0.e').replace('.', '')) >= 1
print('ok: jsonl rows, src and n')
PYEOF

# 4. stdin input, stdout output; a big timestamp survives exactly (never through a double).
printf 'sym,ts,px\nZ,1700000000123456789,1.5\nZ,1700000000123456790,1.25\n' |
  "$TC" replay --model $M --input - --quiet >"$TMP/s.csv"
tc_eq "stdin replay ts" "$(cut -d, -f2 "$TMP/s.csv" | tail -n 2 | tr '\n' ' ')" \
  "1700000000123456789 1700000000123456790 "

# 5. Exit statuses: usage 2, bad model 2, unreadable input 2, no valid header 2, --help 0.
st() { set +e; "$@" >/dev/null 2>"$TMP/st.err"; echo $?; set -e; }
tc_eq "no --model" "$(st "$TC" replay --input "$SAMPLE")" 2
tc_eq "unknown flag" "$(st "$TC" replay --model $M --input "$SAMPLE" --bogus)" 2
tc_eq "bad model" "$(st "$TC" replay --model "$SAMPLE" --input "$SAMPLE")" 2
grep -q "$SAMPLE" "$TMP/st.err" || tc_fail "bad model error does not name the file"
# A model file with no room for a header (8 zero bytes) says so (it once read "header length is 0,
# expected 2..0 (file size 8 minus 8)").
printf '\0\0\0\0\0\0\0\0' >"$TMP/z.safetensors"
tc_eq "8-byte model" "$(st "$TC" replay --model "$TMP/z.safetensors" --input "$SAMPLE")" 2
tc_eq "8-byte model: message" "$(cat "$TMP/st.err")" \
  "tickcast replay: model $TMP/z.safetensors: file is 8 bytes, expected at least 10 (an 8-byte header length, then a header of at least 2)"
tc_eq "missing input" "$(st "$TC" replay --model $M --input "$TMP/nope.csv")" 2
grep -q "nope.csv" "$TMP/st.err" || tc_fail "missing input error does not name the file"
printf 'a,b,c\n1,2,3\n' >"$TMP/nohdr.csv"
tc_eq "no valid header" "$(st "$TC" replay --model $M --input "$TMP/nohdr.csv")" 2
grep -q "px" "$TMP/st.err" || tc_fail "header error does not name the missing column"
tc_eq "--help" "$(st "$TC" replay --help)" 0
echo "e2e_replay: all checks passed"
