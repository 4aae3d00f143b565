#!/usr/bin/env bash
# e2e_kreplay.sh: `tickcast replay --brokers --topic` (a Kafka topic range) agrees with the file
# replay of the same ticks: the bundled real sample fed with `tickcast feed` in two halves, with
# malformed messages (bad JSON, key mismatch) and an out-of-order tick published in between by
# kcat. Checks: same predictions per (sym, n) (within float32 rounding, see below), rejects by reason, JSONL src
# pointing at the right message, --output-topic, offset ranges, offsets-for-times on the embedded
# broker failing clearly, exit statuses.
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
M=tests/fixtures/nn_l2_h16_peep.safetensors
SAMPLE=data/sample/fx_daily_2021_2025.csv

# The file: the sample with one out-of-order tick of USDJPY (older than its last one) in the middle.
$PY - "$SAMPLE" "$TMP" <<'PYEOF'
import sys
lines = open(sys.argv[1]).read().splitlines()
hdr, rows = lines[0], lines[1:]
half = len(rows) // 2
last = [r for r in rows[:half] if r.startswith("USDJPY,")][-1].split(",")
ooo = f"USDJPY,{int(last[1]) - 86400 * 10**9},{last[2]}"
open(sys.argv[2] + "/a.csv", "w").write("\n".join([hdr] + rows[:half] + [ooo]) + "\n")
open(sys.argv[2] + "/b.csv", "w").write("\n".join([hdr] + rows[half:]) + "\n")
open(sys.argv[2] + "/all.csv", "w").write("\n".join([hdr] + rows[:half] + [ooo] + rows[half:]) + "\n")
PYEOF

tc_broker_start --topics ticks:4,preds:4
"$TC" feed --brokers "$BROKERS" --topic ticks --input "$TMP/a.csv" 2>"$TMP/feed.log"
# Malformed messages between the halves: not JSON, and a key that is not the tick's sym.
printf 'USDEUR:{not json\nUSDGBP:{"sym":"USDEUR","ts":1,"px":1}\n' |
  kcat -b "$BROKERS" -t ticks -P -K: 2>>"$TMP/feed.log"
"$TC" feed --brokers "$BROKERS" --topic ticks --input "$TMP/b.csv" 2>>"$TMP/feed.log"
total=$(kcat -b "$BROKERS" -t ticks -C -e -q -f 'x\n' | wc -l)
ntick=$(($(wc -l <"$TMP/all.csv") - 1))
tc_eq "messages in topic" "$total" $((ntick + 2))

# The topic range replay vs the file replay.
"$TC" replay --model $M --brokers "$BROKERS" --topic ticks --output "$TMP/k.csv" 2>"$TMP/k.log" ||
  tc_fail "kafka replay exited $?: $(cat "$TMP/k.log")"
"$TC" replay --model $M --input "$TMP/all.csv" --output "$TMP/f.csv" 2>"$TMP/f.log" ||
  tc_fail "file replay exited $?"
cat "$TMP/k.log"
grep -q "replay ticks: $total messages read, $((ntick - 1)) accepted, 3 rejected, 10 instruments" \
  "$TMP/k.log" || tc_fail "kafka replay summary"
for r in bad_json key_mismatch out_of_order; do
  grep -Eq "rejected $r +1 " "$TMP/k.log" || tc_fail "no $r reject in the summary"
done
# The summaries name where the out-of-order tick is: its message (partition/offset) in the topic,
# its line in the file (not "ticks/0/0" or "line 0", what they once printed for engine rejects).
OOO_TS=$(tail -n 1 "$TMP/a.csv" | cut -d, -f2)
OOO_AT=$(kcat -b "$BROKERS" -t ticks -C -e -q -f '%p/%o %s\n' | grep "\"ts\": *$OOO_TS[,}]" | cut -d' ' -f1)
[ -n "$OOO_AT" ] || tc_fail "the out-of-order tick is not in the topic"
grep -Eq "rejected out_of_order +1 +\(ticks/$OOO_AT\)" "$TMP/k.log" ||
  tc_fail "out_of_order not located at ticks/$OOO_AT: $(grep out_of_order "$TMP/k.log")"
OOO_LINE=$(wc -l <"$TMP/a.csv")
grep -Eq "rejected out_of_order +1 +\(lines $OOO_LINE\)" "$TMP/f.log" ||
  tc_fail "out_of_order not located at line $OOO_LINE: $(grep out_of_order "$TMP/f.log")"
echo "ok: the out-of-order tick is reported at ticks/$OOO_AT and at line $OOO_LINE"
# The engine steps each wave of instruments as one float32 GEMM, and how a chunk splits into waves
# depends on the interleaving of instruments in the input, which differs between the topic
# (partition by partition) and the file. Float32 rounding therefore differs slightly: sorting the
# file by sym alone moves pred_ret by up to ~1e-9 absolute. So: ts, px and n exactly equal;
# pred_px within 1e-8 relative; the network output y = (pred_ret - target.mean) / target.std
# within 1e-5 (what float32 recurrences over 1000 steps give, far below any real difference).
$PY - "$TMP/k.csv" "$TMP/f.csv" "$M" <<'PYEOF' || tc_fail "kafka and file replays disagree"
import csv, json, struct, sys
b = open(sys.argv[3], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
get = lambda k: struct.unpack("<f", b[8 + n + h[k]["data_offsets"][0]:][:4])[0]
mean, std = get("target.mean"), get("target.std")
def rows(p):
    return {(r["sym"], int(r["n"])): r for r in csv.DictReader(open(p))}
k, f = rows(sys.argv[1]), rows(sys.argv[2])
assert len(k) == len(f) == 10146, (len(k), len(f))
assert k.keys() == f.keys(), "different (sym, n) sets"
wy = wp = 0.0
exact = 0
for key in f:
    a, c = k[key], f[key]
    assert a["ts"] == c["ts"] and float(a["px"]) == float(c["px"]), (key, a, c)
    dy = abs(float(a["pred_ret"]) - float(c["pred_ret"])) / std
    dp = abs(float(a["pred_px"]) - float(c["pred_px"])) / float(c["pred_px"])
    exact += a["pred_ret"] == c["pred_ret"]
    wy, wp = max(wy, dy), max(wp, dp)
    assert dy <= 1e-5 and dp <= 1e-8, f"{key}: {a} vs {c}: |dy| {dy:.3g}, pred_px rel {dp:.3g}"
print(f"ok: {len(k)} predictions agree by (sym, n): {exact} identical pred_ret, worst |dy| "
      f"{wy:.3g}, worst pred_px relative difference {wp:.3g}")
PYEOF

# Two replays of one range are identical to the byte: chunks are fixed by offsets, not timing.
"$TC" replay --model $M --brokers "$BROKERS" --topic ticks --output "$TMP/k2.csv" --quiet ||
  tc_fail "second kafka replay"
cmp "$TMP/k.csv" "$TMP/k2.csv" || tc_fail "two replays of the same range differ"
echo "ok: a second replay of the range is byte-identical"

# JSON Lines: src = TOPIC/PARTITION/OFFSET names the message holding the tick.
"$TC" replay --model $M --brokers "$BROKERS" --topic ticks --output "$TMP/k.jsonl" --quiet ||
  tc_fail "jsonl replay"
tc_eq "jsonl lines" "$(wc -l <"$TMP/k.jsonl")" 10146
for i in 1 777 5000 10146; do
  line=$(sed -n "${i}p" "$TMP/k.jsonl")
  src=$(echo "$line" | $PY -c 'import json,sys; print(json.load(sys.stdin)["src"])')
  IFS=/ read -r topic part off <<<"$src"
  msg=$(kcat -b "$BROKERS" -t "$topic" -p "$part" -o "$off" -c 1 -C -e -q)
  $PY - "$line" "$msg" <<'PYEOF' || tc_fail "src $src does not hold the tick of: $line"
import json, sys
p, m = json.loads(sys.argv[1]), json.loads(sys.argv[2])
assert (p["sym"], p["ts"], p["px"]) == (m["sym"], m["ts"], m["px"]), (p, m)
PYEOF
done
echo "ok: src of JSON Lines predictions points at the input messages"

# --output-topic: one prediction per accepted tick, key = sym, same values as the file.
"$TC" replay --model $M --brokers "$BROKERS" --topic ticks --output-topic preds --quiet ||
  tc_fail "--output-topic replay"
kcat -b "$BROKERS" -t preds -C -e -q -f '%k\t%s\n' >"$TMP/preds.tsv"
$PY - "$TMP/preds.tsv" "$TMP/k.jsonl" <<'PYEOF' || tc_fail "--output-topic content"
import json, sys
got = [l.split("\t", 1) for l in open(sys.argv[1]).read().splitlines()]
assert len(got) == 10146, len(got)
for k, v in got: assert json.loads(v)["sym"] == k, (k, v)
a = sorted(json.loads(v)["src"] + v for k, v in got)
b = sorted(json.loads(l)["src"] + l for l in open(sys.argv[2]).read().splitlines())
assert a == b, "topic predictions differ from the JSONL file"
print("ok: --output-topic holds the same 10146 predictions, keyed by sym")
PYEOF

# An offset range: partition 1, offsets [5, 15): ten messages, fresh state (n starts at 1).
"$TC" replay --model $M --brokers "$BROKERS" --topic ticks --partitions 1 --start-offset 5 \
  --end-offset 15 --output "$TMP/r.jsonl" 2>"$TMP/r.log" || tc_fail "range replay"
grep -q "partition 1: offsets \[5, 15), 10 read" "$TMP/r.log" || tc_fail "range: $(cat "$TMP/r.log")"
exp=$(kcat -b "$BROKERS" -t ticks -p 1 -o 5 -c 10 -C -e -q | grep -c '"sym"' || true)
tc_eq "range predictions" "$(wc -l <"$TMP/r.jsonl")" "$exp"
$PY - "$TMP/r.jsonl" <<'PYEOF' || tc_fail "range src/n"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
offs = [int(r["src"].split("/")[2]) for r in rows]
assert all(r["src"].startswith("ticks/1/") for r in rows) and offs == sorted(offs), offs
assert min(offs) >= 5 and max(offs) < 15, offs
first = {}
for r in rows: first.setdefault(r["sym"], r["n"])
assert set(first.values()) == {1}, first
print("ok: offset range [5, 15) of partition 1, in order, fresh state")
PYEOF

# Offsets-for-times: the embedded broker does not implement it; the error says so (exit 1).
set +e
"$TC" replay --model $M --brokers "$BROKERS" --topic ticks --start-time 2024-01-01T00:00:00Z \
  --output "$TMP/t.csv" 2>"$TMP/t.log"
rc=$?
set -e
tc_eq "start-time on the mock: exit" "$rc" 1
grep -q "does not implement offsets-for-times" "$TMP/t.log" || tc_fail "$(cat "$TMP/t.log")"
# An end time later than every message is a range to the end (no lookup problem to detect).
"$TC" replay --model $M --brokers "$BROKERS" --topic ticks --end-time 4000000000000000000 \
  --quiet --output "$TMP/t.csv" || tc_fail "--end-time in the far future"
tc_eq "far end-time rows" "$(($(wc -l <"$TMP/t.csv") - 1))" 10146

# Failures: unknown topic (and it is not auto-created), bad partition, bad model, bad flags.
set +e
"$TC" replay --model $M --brokers "$BROKERS" --topic nosuch 2>"$TMP/e1.log"; r1=$?
"$TC" replay --model $M --brokers "$BROKERS" --topic ticks --partitions 0,9 2>"$TMP/e2.log"; r2=$?
"$TC" replay --model "$TMP/a.csv" --brokers "$BROKERS" --topic ticks 2>"$TMP/e3.log"; r3=$?
"$TC" replay --model $M --brokers "$BROKERS" --topic ticks --start-offset x 2>"$TMP/e4.log"; r4=$?
"$TC" replay --model $M --brokers "$BROKERS" --topic ticks --start-offset 10 --end-offset 3 \
  --output "$TMP/e5.csv" 2>"$TMP/e5.log"; r5=$?
"$TC" replay --model $M --brokers "$BROKERS" --topic ticks --start-time 2024-01-02T00:00:00Z \
  --end-time 2024-01-01T00:00:00Z 2>"$TMP/e6.log"; r6=$?
set -e
tc_eq "unknown topic exit" "$r1" 1
grep -q "topic nosuch on $BROKERS: .*Unknown topic" "$TMP/e1.log" || tc_fail "$(cat "$TMP/e1.log")"
kcat -b "$BROKERS" -L >"$TMP/meta.txt"
! grep -q '"nosuch"' "$TMP/meta.txt" || tc_fail "replay created topic nosuch"
tc_eq "bad partition exit" "$r2" 2
grep -q "topic ticks has partitions 0..3, found 9" "$TMP/e2.log" || tc_fail "$(cat "$TMP/e2.log")"
tc_eq "bad model exit" "$r3" 2
tc_eq "bad offset exit" "$r4" 2
grep -q -- "--start-offset x: expected an offset" "$TMP/e4.log" || tc_fail "$(cat "$TMP/e4.log")"
# A reversed range (it once read nothing and exited 0), refused before anything is read or written.
tc_eq "reversed offsets exit" "$r5" 2
grep -qx -- "tickcast replay: --start-offset 10 is past --end-offset 3 (expected start <= end)" \
  "$TMP/e5.log" || tc_fail "$(cat "$TMP/e5.log")"
[ ! -e "$TMP/e5.csv" ] || tc_fail "a refused replay wrote its output"
tc_eq "reversed times exit" "$r6" 2
grep -q -- "^tickcast replay: --start-time 2024-01-02T00:00:00Z is after --end-time" "$TMP/e6.log" ||
  tc_fail "$(cat "$TMP/e6.log")"

tc_stop "$BROKER_PID"
tc_eq "broker exit" "$STOP_RC" 0
echo "e2e_kreplay: all ok"
