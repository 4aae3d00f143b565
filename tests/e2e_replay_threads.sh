#!/usr/bin/env bash
# e2e_replay_threads.sh: `replay --threads N`, the Kafka range replay's --threads and `eval
# --threads` write the same bytes for N = 1, 2, 3, 4 and 8: predictions (CSV and JSONL, to a file
# and to stdout), the rejected lines printed in full on stderr with their order, the summary's
# counts and the --ts-unit warning. Inputs: many instruments over several chunks with rejected,
# blank, CRLF and out-of-order lines placed to interleave in the first ten rejects and around
# the one-thread replay's chunk boundary (4096 accepted ticks); a one-instrument file (nothing to
# spread); JSON Lines from stdin; a Kafka topic with malformed messages; eval --json.
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
M=tests/fixtures/nn_l2_h16_peep.safetensors
NS="1 2 3 4 8"

# The files. many.csv: 40000 lines, 300 instruments (40 of them frequent); 25 decode rejects
# and 25 out-of-order ticks (minus those that fall on blank lines) spread so that both kinds are
# among the first 10 rejects and on both sides of accepted tick 4096; blank and CRLF lines; a
# quoted field in every ninth row (such rows are decoded to be placed on a worker: an instrument
# must land on the same worker either way); no newline at the end. Integer timestamps in seconds,
# so that the --ts-unit warning names a line.
# many.expect: the counts a replay must report, from the generator's own bookkeeping.
$PY - "$TMP" <<'PYEOF'
import random, sys
d = sys.argv[1]
rnd = random.Random(7)
syms = [f"S{k:03d}" for k in range(300)]
px = {s: 100.0 + k for k, s in enumerate(syms)}
ts = {s: 1704186000 + k for k, s in enumerate(syms)}
bad = {40: "S001,1704186100,-3,1,,", 90: "S002,1704186100,abc,1,,", 4095: "S003,x,1,1,,",
       4102: "S004,1704186100,1", 9000: ",1704186100,1,,,"}
for k in range(20):
    bad[15000 + 1000 * k] = f"S{k:03d},1704186100,0,1,,"
ooo = {60, 70, 100, 4097, 4099, 4101, 4105} | {20000 + 700 * k for k in range(18)}
out = ["sym,ts,px,qty,bid,ask"]
seen, nread, nok, order = set(), 0, 0, []  # what a one-thread replay must report
i = 0
while len(out) < 40000:
    i += 1
    if i % 997 == 0:
        out.append(""); continue
    nread += 1
    if i in bad:
        out.append(bad[i]); order.append("decode"); continue
    s = rnd.choice(syms[:40]) if i % 3 else rnd.choice(syms)
    if i in ooo:
        s = sorted(seen)[0]
        out.append(f"{s},{ts[s] - 5},{px[s]:.4f},1,,"); order.append("ooo"); nok += 1; continue
    seen.add(s)
    nok += 1
    ts[s] += rnd.randint(1, 50)
    px[s] *= 1 + rnd.uniform(-1e-3, 1e-3)
    q = f"{px[s] * 0.9999:.4f},{px[s] * 1.0001:.4f}" if i % 5 else ","
    qty = f'"{rnd.randint(1, 9)}"' if i % 9 == 0 else str(rnd.randint(1, 9))  # decoded to route
    line = f"{s},{ts[s]},{px[s]:.4f},{qty},{q}"
    out.append(line + ("\r" if i % 13 == 0 else ""))
open(d + "/many.csv", "w").write("\n".join(out))
nbad = order.count("decode")
open(d + "/many.expect", "w").write(
    f"{nread} ticks read, {nok - order.count('ooo')} accepted, {len(order)} rejected, "
    f"{len(seen)} instruments\n")
# one.csv: one instrument, 9000 ticks, one out-of-order tick and one bad line.
one, t, p = ["sym,ts,px"], 1_700_000_000_000_000_000, 50.0
for k in range(9000):
    t += 1_000_000_000; p *= 1.0001 if k % 2 else 0.9999
    one.append(f"ONE,{t},{p:.5f}" if k != 5000 else f"ONE,{t - 10**12},{p:.5f}")
one[777] = "ONE,1700000000000000000,nope"
open(d + "/one.csv", "w").write("\n".join(one) + "\n")
# many.jsonl: the first 12000 lines of many.csv as JSON Lines (nanoseconds), bad ones as they are;
# some with an escaped key, a nested or a second sym (the same instrument, decoded to route).
js = []
for k, l in enumerate(out[1:12000]):
    f = l.rstrip("\r").replace('"', "").split(",")
    if len(f) != 6 or not f[1].isdigit():
        js.append("{" + l + "}" if l else ""); continue
    key = ['"sym"', '"s\\u0079m"', '"meta":{"sym":"ZZ"},"sym"', '"sym":"ZZ","sym"'][k % 4 if k % 3 == 0 else 0]
    o = f'{{{key}:"{f[0]}","ts":{int(f[1]) * 10**9},"px":{f[2]},"qty":{f[3]}'
    js.append(o + (f',"bid":{f[4]},"ask":{f[5]}}}' if f[4] else "}"))
open(d + "/many.jsonl", "w").write("\n".join(js) + "\n")
PYEOF

# Runs replay with --threads N on the rest of the arguments; stderr to $TMP/NAME.N.err without
# the timing of the summary line. Every run must exit 0.
run() { # name n args...
  local name=$1 n=$2
  shift 2
  "$TC" replay --model $M --threads "$n" "$@" 2>"$TMP/$name.$n.raw" ||
    tc_fail "replay $name --threads $n exited $?: $(cat "$TMP/$name.$n.raw")"
  sed -E 's/, [0-9.]+ s, [0-9]+ ticks\/s$//' "$TMP/$name.$n.raw" >"$TMP/$name.$n.err"
}
same() { # name files...: every file equal to the first, byte for byte
  local name=$1 first=$2 f
  shift 2
  for f in "$@"; do cmp "$first" "$f" || tc_fail "$name: $f differs from $first"; done
  echo "ok: $name identical, $(($# + 1)) runs ($(wc -c <"$first") bytes)"
}

for n in $NS; do run many "$n" --input "$TMP/many.csv" --output "$TMP/many.$n.csv"; done
same "many.csv predictions" $(for n in $NS; do echo "$TMP/many.$n.csv"; done)
same "many.csv stderr" $(for n in $NS; do echo "$TMP/many.$n.err"; done)
cat "$TMP/many.1.err"
# The values themselves: the counts, the first rejects interleaved, the warning naming line 2.
grep -qF "replay $TMP/many.csv: $(cat "$TMP/many.expect")" "$TMP/many.1.err" ||
  tc_fail "many.csv summary, expected $(cat "$TMP/many.expect")"
tc_eq "rejects printed in full" \
  "$(grep "^$TMP/many.csv:[0-9][0-9]*: [a-z]" "$TMP/many.1.err" | grep -vc ": warning: ")" 10
grep -q "^$TMP/many.csv:2: warning: integer ts" "$TMP/many.1.err" || tc_fail "no ts warning"
# The first 10 rejected lines in file order (lines 41, 61, 71, 91, 101, 4096, 4098, 4100, 4102,
# 4103 of the generator), decode rejects and out-of-order ticks interleaved. Once a chunk's
# decode rejects came first, and ten of them could hide an earlier out-of-order line.
tc_eq "first rejects by line and reason" \
  "$(grep -o "^$TMP/many.csv:[0-9][0-9]*: [a-z_]*" "$TMP/many.1.err" | sed "s|^$TMP/many.csv:||" |
    head -n 10 | tr '\n' ' ')" \
  "41: bad_px 61: out_of_order 71: out_of_order 91: bad_px 101: out_of_order 4096: bad_ts \
4098: out_of_order 4100: out_of_order 4102: out_of_order 4103: bad_row "
grep -q "^$TMP/many.csv:61: out_of_order: field ts: found [0-9]*, expected >= [0-9]* (the last accepted tick of S0[0-9][0-9])$" \
  "$TMP/many.1.err" || tc_fail "the out_of_order message: $(grep ':61:' "$TMP/many.1.err")"
tc_eq "csv rows" "$(($(wc -l <"$TMP/many.1.csv") - 1))" "$(cut -d' ' -f4 "$TMP/many.expect")"

# The other cells (GRU, RNN tanh and relu) give the same bytes on any number of threads too.
for cm in nn_gru_l2_h16 nn_rnn_tanh_l2_h16 nn_rnn_relu_l2_h12; do
  for n in 1 3; do
    "$TC" replay --model "tests/fixtures/$cm.safetensors" --threads "$n" --input "$TMP/many.csv" \
      --output "$TMP/$cm.$n.csv" --quiet || tc_fail "replay $cm --threads $n"
  done
  same "$cm predictions" "$TMP/$cm.1.csv" "$TMP/$cm.3.csv"
done

# JSON Lines out (src = FILE:LINE), to stdout, and --quiet.
for n in $NS; do run mj "$n" --input "$TMP/many.csv" --output "$TMP/mj.$n.jsonl" --quiet; done
same "many.csv JSONL" $(for n in $NS; do echo "$TMP/mj.$n.jsonl"; done)
same "--quiet stderr" $(for n in $NS; do echo "$TMP/mj.$n.err"; done)
grep -q '"src":"'"$TMP"'/many.csv:39999"}' "$TMP/mj.1.jsonl" || tc_fail "JSONL src of the last line"
for n in 1 3; do run so "$n" --input "$TMP/many.csv" --quiet >"$TMP/so.$n.csv"; done
same "stdout" "$TMP/so.1.csv" "$TMP/so.3.csv" "$TMP/many.1.csv"

# One instrument: all ticks on one worker, still correct.
for n in $NS; do run one "$n" --input "$TMP/one.csv" --output "$TMP/one.$n.csv"; done
same "one.csv predictions" $(for n in $NS; do echo "$TMP/one.$n.csv"; done)
same "one.csv stderr" $(for n in $NS; do echo "$TMP/one.$n.err"; done)
grep -q "9000 ticks read, 8998 accepted, 2 rejected, 1 instruments" "$TMP/one.1.err" ||
  tc_fail "one.csv summary: $(cat "$TMP/one.1.err")"
tc_eq "one.csv last n" "$(tail -n 1 "$TMP/one.1.csv" | cut -d, -f6)" 8998

# A flood of bad lines: more than a chunk holds back (4096), so a one-thread chunk ends early;
# an out-of-order tick (line 8) among the first of them, more later among bad lines. Same bytes
# and stderr on every N, the counts right, the first ten printed in file order: 2..6, the
# out-of-order line 8, 9..12 (once the chunk's decode rejects came first and hid line 8).
awk 'BEGIN { print "sym,ts,px"; for (i = 0; i < 10000; i++) print "A,1,bad";
  for (i = 1; i <= 3000; i++) { printf "B,%d,1.5\n", i % 500 == 0 ? 5 : 100 + i; if (i % 3 == 0) print "C,x,1" } }' |
  sed '6a D,10,2.5\nD,5,2.5' >"$TMP/flood.csv"
for n in $NS; do run flood "$n" --input "$TMP/flood.csv" --output "$TMP/flood.$n.csv"; done
same "flood.csv predictions" $(for n in $NS; do echo "$TMP/flood.$n.csv"; done)
same "flood.csv stderr" $(for n in $NS; do echo "$TMP/flood.$n.err"; done)
grep -q "14002 ticks read, 2995 accepted, 11007 rejected, 2 instruments" "$TMP/flood.1.err" ||
  tc_fail "flood.csv summary: $(cat "$TMP/flood.1.err")"
grep -qE "rejected out_of_order +7 +\(lines 8, 10669, 11336, 12002, 12669, \.\.\.\)" "$TMP/flood.1.err" ||
  tc_fail "flood.csv out_of_order: $(grep out_of_order "$TMP/flood.1.err")"
tc_eq "flood.csv first rejects" \
  "$(grep -o "^$TMP/flood.csv:[0-9]*" "$TMP/flood.1.err" | sed 's/.*://' | head -n 10 | tr '\n' ' ')" \
  "2 3 4 5 6 8 9 10 11 12 "
grep -q "^$TMP/flood.csv:8: out_of_order: field ts: found 5, expected >= 10 (the last accepted tick of D)$" \
  "$TMP/flood.1.err" || tc_fail "flood.csv line 8: $(grep ':8:' "$TMP/flood.1.err")"

# JSON Lines from stdin, JSONL out with src stdin:LINE.
for n in $NS; do
  run js "$n" --input - --output "$TMP/js.$n.jsonl" <"$TMP/many.jsonl"
done
same "stdin JSONL predictions" $(for n in $NS; do echo "$TMP/js.$n.jsonl"; done)
same "stdin JSONL stderr" $(for n in $NS; do echo "$TMP/js.$n.err"; done)
grep -q '"src":"stdin:1"}' "$TMP/js.1.jsonl" || tc_fail "stdin src"

# A file under a directory of 200 tabs: src escapes to 6 bytes a tab and is cut at 300 escaped
# bytes (it once overran the 512-byte prediction buffers): the same JSONL on 1 and 3 threads,
# every line valid JSON with src a prefix of FILE:LINE.
TABS=$(printf '\t%.0s' $(seq 200))
mkdir -p "$TMP/$TABS" && cp "$TMP/many.jsonl" "$TMP/$TABS/t.jsonl"
for n in 1 3; do
  "$TC" replay --model $M --threads "$n" --input "$TMP/$TABS/t.jsonl" --output "$TMP/tabs.$n.jsonl" \
    --quiet || tc_fail "replay under a directory of tabs, --threads $n"
done
same "tab-directory JSONL" "$TMP/tabs.1.jsonl" "$TMP/tabs.3.jsonl"
$PY - "$TMP/tabs.1.jsonl" "$TMP/$TABS/t.jsonl" <<'PYEOF' || tc_fail "tab-directory JSONL"
import json, sys
lines = open(sys.argv[1], "rb").read().splitlines()
assert lines and max(len(l) for l in lines) <= 512, max(len(l) for l in lines)
for l in lines:
    src = json.loads(l)["src"]
    assert sys.argv[2].startswith(src) and len(src) >= 40, src
print(f"ok: {len(lines)} lines of at most 512 bytes, src cut to {len(src)} characters")
PYEOF

# Over an existing file longer than the output (truncated on a thread of its own with N > 1,
# before the first write): the same bytes; and one that cannot be opened: exit 1, one message.
for n in 1 3; do
  head -c 3000000 /dev/zero | tr '\0' x >"$TMP/over.$n.csv"
  run over "$n" --input "$TMP/many.csv" --output "$TMP/over.$n.csv" --quiet
done
same "over a longer file" "$TMP/many.1.csv" "$TMP/over.1.csv" "$TMP/over.3.csv"
for n in 1 3; do
  set +e
  "$TC" replay --model $M --threads "$n" --input "$TMP/many.csv" --output "$TMP/no/dir.csv" \
    2>"$TMP/nodir.$n.err"
  rc=$?
  set -e
  tc_eq "unopenable output, --threads $n: exit" "$rc" 1
done
same "unopenable output stderr" "$TMP/nodir.1.err" "$TMP/nodir.3.err"
grep -q "dir.csv: cannot open for writing" "$TMP/nodir.1.err" || tc_fail "$(cat "$TMP/nodir.1.err")"

# Wide lines (JSON ticks with 16 KB of other fields, 4000 of them, 64 MB): a chunk takes no more
# lines once it holds 1 MiB, so the ring stays small: the same bytes on 1 and 2 threads, and
# --threads 2 peaks less than 20 MB above --threads 1 (3 MB; 9 MB in the sanitizer build; 61 MB
# with chunks of 8192 lines whatever their width, when the first one held the whole file), plus,
# where the kernel has transparent huge pages, the 2 MiB pages of the ring: each of the 5 chunk
# slots' text and log is resident in whole 2 MiB pages (nn/base/bigbuf.h), 20 MB (31 MB above in
# all, 2026-12-02).
$PY - "$TMP/wide.jsonl" <<'PYEOF'
import json, sys
pad = "w" * 16000
with open(sys.argv[1], "w") as f:
    for i in range(4000):
        f.write(json.dumps({"sym": "W%d" % (i % 50), "ts": 1700000000000000000 + i * 1000,
                            "px": 100 + i % 7, "meta": pad}) + "\n")
PYEOF
peak_kb() { # command... -> its peak RSS in KB
  $PY -c 'import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' "$@"
}
for n in 1 2; do
  rss=$(peak_kb "$TC" replay --model "$M" --input "$TMP/wide.jsonl" --output "$TMP/wide.$n.csv" \
    --threads "$n" --quiet) || tc_fail "wide lines, --threads $n"
  rss=$((rss / 1024))
  echo "wide lines, --threads $n: peak $rss MB"
  eval "rss$n=$rss"
done
same "wide lines" "$TMP/wide.1.csv" "$TMP/wide.2.csv"
room=20
case $(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null) in
*"[always]"* | *"[madvise]"*) room=$((room + 5 * 2 * 2)) ;;
esac
[ "$rss2" -lt $((rss1 + room)) ] ||
  tc_fail "wide lines: peak $rss2 MB on 2 threads, expected under $((rss1 + room)) ($rss1 on 1 + $room)"

# The one-thread replay's fixed memory: the cell's scratch is for waves of 256 instruments
# (ENGINE_WAVE), not for the whole chunk of 4096 ticks, so a replay of a small file at H = 64
# peaks less than 3 MB above the same replay at H = 8 (0.6 MB; 6.5 MB with the scratch of a whole
# chunk, zeroed at the start).
small_kb() { # model -> the peak RSS in KB of `replay --threads 1` of one.csv with it
  peak_kb "$TC" replay --model "$1" --input "$TMP/one.csv" --output "$TMP/one.small.csv" \
    --threads 1 --quiet
}
h8=$(small_kb tests/fixtures/nn_gru_l1_h8.safetensors) || tc_fail "replay of a small file, H = 8"
h64=$(small_kb tests/fixtures/nn_gru_l1_h64.safetensors) || tc_fail "replay of a small file, H = 64"
echo "replay --threads 1 of a small file: peak $h64 KB at H = 64, $h8 KB at H = 8"
[ "$h64" -lt $((h8 + 3072)) ] ||
  tc_fail "replay --threads 1 of a small file: peak $h64 KB at H = 64, expected under $((h8 + 3072)) (H = 8: $h8)"

# Bad values of --threads.
set +e
"$TC" replay --model $M --input "$TMP/one.csv" --threads 0 2>"$TMP/t0.log"
rc=$?
set -e
tc_eq "--threads 0 exit" "$rc" 2
grep -q -- "--threads 0" "$TMP/t0.log" || tc_fail "$(cat "$TMP/t0.log")"

# eval --json: the same report for every N.
for n in $NS; do
  "$TC" eval --model $M --input "$TMP/many.csv" --json --threads "$n" --quiet \
    >"$TMP/ev.$n.json" 2>/dev/null || tc_fail "eval --threads $n"
done
same "eval --json" $(for n in $NS; do echo "$TMP/ev.$n.json"; done)

# The Kafka range replay: many.csv's first 12000 ticks fed to 4 partitions with two malformed
# messages; every N reads the same order and writes the same bytes.
tc_broker_start --topics ticks:4,preds:4
head -n 12000 "$TMP/many.csv" | tr -d '\r' | grep -v '^$' >"$TMP/k.csv"
"$TC" feed --brokers "$BROKERS" --topic ticks --input "$TMP/k.csv" 2>"$TMP/feed.log"
printf 'S001:{not json\nS002:{"sym":"S003","ts":1,"px":1}\n' |
  kcat -b "$BROKERS" -t ticks -P -K: 2>>"$TMP/feed.log"
for n in $NS; do
  "$TC" replay --model $M --brokers "$BROKERS" --topic ticks --threads "$n" \
    --output "$TMP/kr.$n.jsonl" 2>"$TMP/kr.$n.raw" || tc_fail "kafka replay --threads $n"
  sed -E 's/, [0-9.]+ s, [0-9]+ ticks\/s$//; s/^[0-9T:.-]+Z //' "$TMP/kr.$n.raw" >"$TMP/kr.$n.err"
done
same "kafka replay JSONL" $(for n in $NS; do echo "$TMP/kr.$n.jsonl"; done)
same "kafka replay stderr" $(for n in $NS; do echo "$TMP/kr.$n.err"; done)
cat "$TMP/kr.1.err"
grep -q "rejected out_of_order" "$TMP/kr.1.err" || tc_fail "kafka: no out_of_order"
grep -q "rejected key_mismatch" "$TMP/kr.1.err" || tc_fail "kafka: no key_mismatch"
for n in 1 2; do
  "$TC" replay --model $M --brokers "$BROKERS" --topic ticks --threads "$n" --quiet \
    >"$TMP/kc.$n.csv" || tc_fail "kafka replay to stdout --threads $n"
done
same "kafka replay CSV" "$TMP/kc.1.csv" "$TMP/kc.2.csv"
tc_stop "$BROKER_PID"

# A replay waiting for its input runs on its own thread only, and has not loaded OpenBLAS, which it
# never calls: loading it took 4-6 ms of every start (nn/blas.h).
printf 'sym,ts,px\nA,1,1\n' >"$TMP/fifo.in"
tc_threads_waiting "$TMP/fifo.in" replay --model $M --output "$TMP/fifo.csv" --threads 1 --quiet
tc_eq "threads of a replay --threads 1 waiting for its input, OpenBLAS left to its default" \
  "$NTHREADS" 1
tc_eq "libopenblas mappings of a replay waiting for its input" "$NBLAS" 0
echo "e2e_replay_threads: all ok"
