#!/usr/bin/env bash
# e2e_inspect.sh: `tickcast inspect` on state files written by an independent Python writer
# (tests/statedb.py, its own XXH64): text and JSON output with exact values, a file whose last
# commit lives only in the -wal (as after kill -9), and exit 2 with a clear message for a missing,
# random, truncated, foreign, too-new file or a damaged state blob. Inspect never modifies a file.
. "$(dirname "$0")/lib.sh"
SDB="$PY $ROOT/tests/statedb.py"
cd "$TMP"

# A good file, last transaction only in the WAL.
$SDB write good.db --instruments 25 --layers 2 --hidden 8 --wal-tail
[ -s good.db-wal ] || tc_fail "statedb.py should have left a -wal file"
sum_before=$(cat good.db good.db-wal | sha256sum)
"$TC" inspect --state good.db >out.txt 2>err.txt || tc_fail "inspect good.db: exit $? $(cat err.txt)"
cat out.txt
grep -q "^model        sha256 $(printf 'ab%.0s' $(seq 32))$" out.txt || tc_fail "model line"
grep -q "^shape        L=2 H=8$" out.txt || tc_fail "shape line"
grep -q "^checkpoint   2025-11-28T22:46:40.123Z (.* s ago), 3 written$" out.txt || tc_fail "checkpoint"
grep -q "^instruments  25 (25 states verified)$" out.txt || tc_fail "instrument count"
grep -q "^  ticks/2 *next offset 2022$" out.txt || tc_fail "offset of ticks/2"
tc_eq "first of the top list" "$(grep -A2 '^top 10 by n:' out.txt | tail -1 | tr -s ' ')" \
  " S024 0 169 1700000000123456813 7.5"
tc_eq "lines in the top list" "$(sed -n '/^top 10 by n:/,$p' out.txt | wc -l)" 12
tc_eq "file untouched by inspect" "$(cat good.db good.db-wal | sha256sum)" "$sum_before"

"$TC" inspect --state good.db --json --top 3 >out.json || tc_fail "inspect --json: exit $?"
$PY - out.json <<'EOF'
import json, sys
o = json.load(open(sys.argv[1]))
assert o["model_sha256"] == "ab" * 32, o["model_sha256"]
assert (o["layers"], o["hidden"], o["instruments"], o["states_verified"]) == (2, 8, 25, 25), o
assert o["checkpoint_time_ns"] == 1764370000123456789, o["checkpoint_time_ns"]
assert o["checkpoint_time"] == "2025-11-28T22:46:40.123Z"
assert [(x["topic"], x["partition"], x["next_offset"]) for x in o["offsets"]] == \
    [("ticks", 0, 22), ("ticks", 1, 1022), ("ticks", 2, 2022)], o["offsets"]
assert [x["sym"] for x in o["top"]] == ["S024", "S023", "S022"], o["top"]
t = o["top"][1]
# int64 nanoseconds survive exactly (no trip through a double)
assert (t["partition"], t["n"], t["last_ts"], t["last_px"]) == (2, 162, 1700000000123456812, 7.25), t
print("ok: inspect --json values")
EOF

"$TC" inspect --state good.db --top 0 | grep -q "^top" && tc_fail "--top 0 should list none"
expect_exit() { # code, message substring, inspect args...
  local code=$1 msg=$2 rc=0; shift 2
  "$TC" inspect "$@" >/dev/null 2>err.txt || rc=$?
  tc_eq "exit of inspect $*" "$rc" "$code"
  grep -qF -- "$msg" err.txt || tc_fail "inspect $*: stderr lacks '$msg': $(cat err.txt)"
}
expect_exit 2 "--state DB is required"
expect_exit 2 "--top x: expected a number" --state good.db --top x
expect_exit 2 "unknown or incomplete option '--bogus'" --state good.db --bogus
expect_exit 2 "missing.db: No such file or directory" --state missing.db

head -c 65536 /dev/urandom >random.db
expect_exit 2 "not a SQLite database" --state random.db

$SDB write big.db --instruments 3000 --hidden 64
size=$(stat -c %s big.db)
truncate -s $((size / 2)) big.db
expect_exit 2 "corrupt or truncated" --state big.db

$SDB foreign foreign.db
expect_exit 2 "not a tickcast state file (SQLite application_id 0x00000000, expected 0x54434b43; tables: users)" --state foreign.db

$SDB future future.db
expect_exit 2 "schema version 9 is newer than this tickcast supports" --state future.db

$SDB write damaged.db --instruments 5
$SDB corrupt-blob damaged.db S003
expect_exit 2 "instrument S003: state blob checksum" --state damaged.db

: >empty.db
expect_exit 2 "empty file, expected a tickcast state file" --state empty.db
tc_eq "empty file left empty" "$(stat -c %s empty.db)" 0
# A damaged meta row or a missing table is a damaged file: exit 2 naming what is wrong (they were
# exit 1 with an internal message, or accepted).
for dq in "UPDATE meta SET cell = 99|meta cell: found 99, expected 0..3 (lstm, gru, rnn_tanh, rnn_relu)" \
  "UPDATE meta SET model_sha256 = 'zz'|meta model_sha256: found 'zz', expected 64 lowercase hex digits" \
  "UPDATE meta SET hidden = 0|meta hidden: found 0, expected an integer >= 1" \
  "DROP TABLE offsets|the schema lacks what version 2 has: no such table: offsets"; do
  IFS='|' read -r sql msg <<<"$dq"
  cp good.db damaged.db
  cp good.db-wal damaged.db-wal
  sqlite3 damaged.db "$sql"
  expect_exit 2 "state db damaged.db: $msg" --state damaged.db
done
# Checkpoint times before 1970 and at int64's ends (a file written by another tool, or damaged)
# print as the instants they are: the second and the fraction floored. Once INT64_MIN printed
# "00:12:44.-854Z" (and overflowed computing its age) and -1 printed 1970-01-01T00:00:00.000Z.
cp good.db times.db
cp good.db-wal times.db-wal
for tv in "-9223372036854775808 1677-09-21T00:12:43.145Z" "-1 1969-12-31T23:59:59.999Z" \
  "9223372036854775807 2262-04-11T23:47:16.854Z"; do
  read -r ns want <<<"$tv"
  sqlite3 times.db "UPDATE meta SET ckpt_time_ns = $ns"
  tc_eq "checkpoint time $ns" "$("$TC" inspect --state times.db | sed -n 's/^checkpoint   \([^ ]*\) .*/\1/p')" "$want"
done
# A report that cannot be written is a failure (exit 1, one line), not exit 0 with the output
# lost: stdout on a full device, for the state and the model, text and JSON.
full_exit() { # inspect args...
  local rc=0
  "$TC" inspect "$@" >/dev/full 2>err.txt || rc=$?
  tc_eq "exit of inspect $* >/dev/full" "$rc" 1
  tc_eq "stderr of inspect $* >/dev/full" "$(cat err.txt)" \
    "tickcast inspect: stdout: write failed: No space left on device"
}
full_exit --state good.db
full_exit --state good.db --json
full_exit --model "$ROOT/data/model/fx.safetensors"
full_exit --model "$ROOT/data/model/fx.safetensors" --json
echo "e2e_inspect: all passed"
