#!/usr/bin/env bash
# e2e_ts_unit.sh: integer timestamps in another unit through `tickcast replay`: --ts-unit s and ms
# give the nanoseconds of the same instants (CSV and JSON Lines; dates and RFC 3339 strings are
# not scaled); without it the integers are read as nanoseconds and one warning names the first
# line; --ts-unit ns silences it; a date alone is midnight UTC in CSV and bad_ts in JSON Lines.
# (feed --ts-unit is in e2e_model_id.sh.)
. "$(dirname "$0")/lib.sh"
MODEL=$(ls "$ROOT"/data/model/*.safetensors | head -n 1)
printf 'sym,ts,px\nA,1704186000,1.1\nA,2024-01-02T10:00:00Z,1.2\nB,2024-01-02,3\n' >"$TMP/s.csv"
printf '{"sym":"A","ts":1704186000500,"px":1.1}\n{"sym":"A","ts":"2024-01-03","px":1.2}\n' >"$TMP/ms.jsonl"
ts() { cut -d, -f2 | tail -n +2 | tr '\n' ' '; }

"$TC" replay --model "$MODEL" --input "$TMP/s.csv" --ts-unit s --quiet 2>"$TMP/err" | ts >"$TMP/ts"
tc_eq "replay --ts-unit s" "$(cat "$TMP/ts")" "1704186000000000000 1704189600000000000 1704153600000000000 "
[ -s "$TMP/err" ] && { cat "$TMP/err"; tc_fail "warning with --ts-unit s"; }

"$TC" replay --model "$MODEL" --input "$TMP/s.csv" --quiet 2>"$TMP/err" | ts >"$TMP/ts"
tc_eq "replay without --ts-unit" "$(cat "$TMP/ts")" "1704186000 1704189600000000000 1704153600000000000 "
tc_eq "the warning" "$(cat "$TMP/err")" "$TMP/s.csv:2: warning: integer ts 1704186000 is read as nanoseconds (1970-01-01T00:00:01.704186Z) but looks like seconds (2024-01-02T09:00:00Z); 1 of 1 integer timestamps look like that: pass --ts-unit s if they are seconds, or --ts-unit ns to keep nanoseconds"
"$TC" replay --model "$MODEL" --input "$TMP/s.csv" --ts-unit ns --quiet >/dev/null 2>"$TMP/err"
[ -s "$TMP/err" ] && { cat "$TMP/err"; tc_fail "warning with --ts-unit ns"; }

"$TC" replay --model "$MODEL" --input "$TMP/ms.jsonl" --ts-unit ms --output "$TMP/o.csv" 2>"$TMP/err"
tc_eq "JSON Lines in ms" "$(ts <"$TMP/o.csv")" "1704186000500000000 "
grep -q "ms.jsonl:2: bad_ts" "$TMP/err" || { cat "$TMP/err"; tc_fail "a date alone in JSON Lines is not bad_ts"; }
code=0
"$TC" replay --model "$MODEL" --input "$TMP/s.csv" --ts-unit h --quiet >/dev/null 2>"$TMP/err" || code=$?
tc_eq "--ts-unit h" "$code" 2
grep -q -- "--ts-unit" "$TMP/err" || tc_fail "--ts-unit h message"
echo "PASS e2e_ts_unit"
