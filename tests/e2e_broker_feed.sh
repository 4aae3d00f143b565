#!/usr/bin/env bash
# e2e_broker_feed.sh: `tickcast broker` and `tickcast feed` against outside clients (kcat and
# Python confluent_kafka): topics with the requested partition counts, every valid tick delivered
# once, keyed by sym, in the Java client's murmur2 partition, in file order per key, decoding to
# the same tick; bad lines reported with their line numbers and not sent; --raw, -X passthrough
# and its errors, delivery failure -> exit 1, a consumer group commit, SIGTERM -> exit 0.
. "$(dirname "$0")/lib.sh"

# A CSV tick file (5 instruments, 120 ticks, quotes on some, an RFC 3339 ts, empty fields) with
# 4 bad lines, and the same ticks as JSON Lines.
$PY - "$TMP" <<'PYEOF'
import json, random, sys
d = sys.argv[1]
rnd = random.Random(7)
syms = ["EURUSD", "USDTHB", "BTC-USD", "X", "S.P_500"]
px = {s: 10 + 90 * rnd.random() for s in syms}
ts = 1700000000000000000
rows, bad = [], {13: "EURUSD,1700000000000000000,-3,1,,", 40: "USDTHB,notatime,12.5,1,,",
                 77: "BAD\"SYM,1700000000000000000,1,1,,", 101: "X,1700000000000000000,,1,,"}
csv = ["sym,ts,px,qty,bid,ask"]
jl = []
for i in range(120):
    s = syms[rnd.randrange(5)]
    px[s] *= 1 + 0.001 * rnd.gauss(0, 1)
    ts += rnd.randrange(1, 10**9)
    q = rnd.choice(["", "0", "3", "0.25"])
    b = a = ""
    if rnd.random() < 0.5:
        b, a = repr(px[s] * 0.999), repr(px[s] * 1.001)
    t = str(ts) if i != 5 else "2023-11-14T22:13:20.123456789Z"
    csv.append(",".join([s, t, repr(px[s]), q, b, a]))
    o = {"sym": s, "ts": ts if i != 5 else "2023-11-14T22:13:20.123456789Z", "px": px[s]}
    if q: o["qty"] = float(q)
    if b: o["bid"], o["ask"] = float(b), float(a)
    o["extra"] = {"ignored": [1, 2]}
    jl.append(json.dumps(o))
    if len(csv) + 1 in bad: csv.append(bad[len(csv) + 1])
open(d + "/ticks.csv", "w").write("\n".join(csv) + "\n")
open(d + "/ticks.jsonl", "w").write("\n".join(jl) + "\n{not json}\n")
PYEOF

tc_broker_start --topics ticks:8,jticks:3,raw:1
# kcat sees the topics with the requested partition counts.
kcat -b "$BROKERS" -L >"$TMP/meta.txt"
tc_eq "ticks partitions" "$(grep -o 'topic "ticks" with [0-9]* partitions' "$TMP/meta.txt")" \
  'topic "ticks" with 8 partitions'
tc_eq "jticks partitions" "$(grep -o 'topic "jticks" with [0-9]* partitions' "$TMP/meta.txt")" \
  'topic "jticks" with 3 partitions'

# Feed the CSV: 120 sent, the 4 bad lines reported by reason and line number.
"$TC" feed --brokers "$BROKERS" --topic ticks --input "$TMP/ticks.csv" 2>"$TMP/feed.log" ||
  tc_fail "feed exited $?: $(cat "$TMP/feed.log")"
grep -q "sent 120, delivered 120, failed 0, rejected 4" "$TMP/feed.log" || tc_fail "summary: $(cat "$TMP/feed.log")"
grep -q "rejected bad_px: 1 (line 13)" "$TMP/feed.log" || tc_fail "bad_px line: $(cat "$TMP/feed.log")"
grep -q "rejected bad_ts: 1 (line 40)" "$TMP/feed.log" || tc_fail "bad_ts line: $(cat "$TMP/feed.log")"
grep -q "rejected bad_sym: 1 (line 77)" "$TMP/feed.log" || tc_fail "bad_sym line: $(cat "$TMP/feed.log")"
grep -q "rejected missing_field: 1 (line 101)" "$TMP/feed.log" || tc_fail "missing line: $(cat "$TMP/feed.log")"
echo "ok: feed summary and rejected line numbers"

# JSON Lines are forwarded verbatim (unknown keys kept); the bad last line is not sent.
"$TC" feed --brokers "$BROKERS" --topic jticks --input "$TMP/ticks.jsonl" 2>"$TMP/feedj.log" ||
  tc_fail "feed jsonl exited $?"
grep -q "sent 120, delivered 120, failed 0, rejected 1" "$TMP/feedj.log" || tc_fail "$(cat "$TMP/feedj.log")"
grep -q "rejected bad_json: 1 (line 121)" "$TMP/feedj.log" || tc_fail "$(cat "$TMP/feedj.log")"

# --raw with --ts-unit: the unit cannot apply to lines sent verbatim (it was once ignored, exit 0).
set +e
"$TC" feed --brokers "$BROKERS" --topic raw --input "$TMP/ticks.csv" --raw --ts-unit s \
  2>"$TMP/rawunit.log"
rc=$?
set -e
tc_eq "--raw --ts-unit exit" "$rc" 2
grep -qx "tickcast feed: --raw sends lines verbatim, so --ts-unit cannot convert them (drop one) (see tickcast feed --help)" \
  "$TMP/rawunit.log" || tc_fail "--raw --ts-unit: $(cat "$TMP/rawunit.log")"
# --raw sends every line, malformed ones and the CSV header included.
"$TC" feed --brokers "$BROKERS" --topic raw --input "$TMP/ticks.csv" --raw 2>"$TMP/feedr.log" ||
  tc_fail "feed --raw exited $?"
tc_eq "raw messages" "$(kcat -b "$BROKERS" -t raw -C -e -q -f '%s\n' | wc -l)" \
  "$(grep -c . "$TMP/ticks.csv")"
kcat -b "$BROKERS" -t raw -C -e -q -f '%s\n' >"$TMP/raw.txt"
grep -qx 'USDTHB,notatime,12.5,1,,' "$TMP/raw.txt" ||
  tc_fail "raw topic lacks the malformed line"

# An outside consumer (confluent_kafka, explicit assignment) checks every message.
$PY - "$BROKERS" "$TMP" <<'PYEOF' || tc_fail "consumer check"
import csv, json, sys, datetime
import confluent_kafka as ck
brokers, d = sys.argv[1], sys.argv[2]

def murmur2(data):  # Java's org.apache.kafka.common.utils.Utils.murmur2
    m, h = 0x5bd1e995, 0x9747b28c ^ len(data)
    n4 = len(data) // 4
    for i in range(n4):
        k = int.from_bytes(data[4 * i:4 * i + 4], "little")
        k = (k * m) & 0xffffffff; k ^= k >> 24; k = (k * m) & 0xffffffff
        h = (h * m) & 0xffffffff; h ^= k
    rest = len(data) & 3; i = n4 * 4
    if rest == 3: h ^= data[i + 2] << 16
    if rest >= 2: h ^= data[i + 1] << 8
    if rest >= 1: h ^= data[i]; h = (h * m) & 0xffffffff
    h ^= h >> 13; h = (h * m) & 0xffffffff; h ^= h >> 15
    return h

def ns(v):
    if isinstance(v, int): return v
    s, frac = v[:19], v[20:-1]
    t = datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    return int(t.timestamp()) * 10**9 + int(frac.ljust(9, "0"))

def consume(topic, nparts):  # every message of every partition, explicit assignment
    c = ck.Consumer({"bootstrap.servers": brokers, "group.id": "unused", "enable.auto.commit": False})
    out = []
    for p in range(nparts):
        lo, hi = c.get_watermark_offsets(ck.TopicPartition(topic, p), timeout=10)
        if hi == lo: continue
        c.assign([ck.TopicPartition(topic, p, lo)])
        while True:
            m = c.poll(5)
            assert m is not None, f"{topic}/{p}: timed out before offset {hi - 1}"
            if m.error(): continue
            out.append((m.key().decode(), m.partition(), m.offset(), m.value()))
            if m.offset() == hi - 1: break
    c.close()
    return out

# Expected: the valid CSV rows in file order.
exp = []
for r in csv.DictReader(open(d + "/ticks.csv")):
    try:
        t = (r["sym"], ns(int(r["ts"]) if r["ts"].isdigit() else r["ts"]), float(r["px"]),
             float(r["qty"] or 0), r["bid"] and float(r["bid"]), r["ask"] and float(r["ask"]))
        if '"' in t[0] or not t[2] > 0: continue
    except (ValueError, TypeError):
        continue
    exp.append(t)
assert len(exp) == 120, len(exp)
for topic, nparts in (("ticks", 8), ("jticks", 3)):
    got = consume(topic, nparts)
    assert len(got) == 120, f"{topic}: {len(got)} messages, expected 120"
    per = {}
    for key, part, off, val in got:
        o = json.loads(val)
        assert key == o["sym"], f"{topic}/{part}/{off}: key {key} != sym {o['sym']}"
        want = (murmur2(key.encode()) & 0x7fffffff) % nparts
        assert part == want, f"{topic}: key {key} in partition {part}, murmur2 says {want}"
        t = (o["sym"], ns(o["ts"]), o["px"], o.get("qty", 0.0), o.get("bid", ""), o.get("ask", ""))
        per.setdefault(key, []).append(t)
        if topic == "jticks": assert "extra" in o, "JSONL not forwarded verbatim"
    for s in per:
        e = [t for t in exp if t[0] == s]
        assert per[s] == e, f"{topic}: {s}: order or values differ:\n{per[s][:3]}\n{e[:3]}"
    print(f"ok: {topic}: 120 messages, keys = sym, murmur2 partitions, per-key order and values")

# A consumer group over the fed topic commits its offsets on the mock.
c = ck.Consumer({"bootstrap.servers": brokers, "group.id": "e2e", "auto.offset.reset": "earliest",
                 "enable.auto.commit": False})
c.subscribe(["ticks"])
n = 0
import time
t0 = time.time()
while n < 120 and time.time() - t0 < 30:
    m = c.poll(0.5)
    if m is not None and not m.error(): n += 1
assert n == 120, f"group consumer got {n}"
c.commit(asynchronous=False)
com = c.committed([ck.TopicPartition("ticks", p) for p in range(8)], timeout=10)
assert sum(max(tp.offset, 0) for tp in com) == 120, com
c.close()
print("ok: consumer group read 120 and committed offsets summing to 120")
PYEOF

# -X passes through; a property librdkafka does not know is named, its value not shown (it may
# be a mistyped secret), with librdkafka's reason; exit 2.
set +e
"$TC" feed --brokers "$BROKERS" --topic ticks --input "$TMP/ticks.csv" -X no.such=1 2>"$TMP/x.log"
rc=$?
set -e
tc_eq "bad -X exit" "$rc" 2
grep -q "^tickcast feed: -X no.such (value not shown): No such configuration property" "$TMP/x.log" ||
  tc_fail "bad -X message: $(cat "$TMP/x.log")"
set +e
"$TC" feed --brokers "$BROKERS" --topic ticks --input "$TMP/nonexistent.csv" 2>"$TMP/nf.log"
rc=$?
set -e
tc_eq "missing input exit" "$rc" 2
grep -q "nonexistent.csv: cannot open" "$TMP/nf.log" || tc_fail "$(cat "$TMP/nf.log")"

# Counts and seeds are integers: a fraction or a sign is refused (exit 2, one line), not truncated.
for bad in "--synthetic 2.5|--synthetic 2.5: expected an integer in 0..1000000000000" \
  "--synthetic 1000000000001|--synthetic 1000000000001: expected an integer in 0..1000000000000" \
  "--instruments 1.5|--instruments 1.5: expected an integer in 1..1000000" \
  "--seed -1|--seed -1: expected an unsigned 64-bit integer"; do
  IFS='|' read -r args msg <<<"$bad"
  set +e
  # shellcheck disable=SC2086 # a flag and its value
  "$TC" feed --brokers "$BROKERS" --topic ints --synthetic 3 $args 2>"$TMP/int.log"
  rc=$?
  set -e
  tc_eq "feed $args: exit" "$rc" 2
  tc_eq "feed $args: message" "$(cat "$TMP/int.log")" "tickcast feed: $msg"
done

# A config file: flags without '--', librdkafka properties as kafka.KEY; errors quote FILE:LINE.
printf '# feed settings\nbrokers = %s\ntopic=cfg\nkafka.linger.ms=1\n' "$BROKERS" >"$TMP/feed.conf"
"$TC" feed --config "$TMP/feed.conf" --synthetic 7 2>"$TMP/cfg.log" || tc_fail "feed --config: $(cat "$TMP/cfg.log")"
tc_eq "messages via --config" "$(kcat -b "$BROKERS" -t cfg -C -e -q | wc -l)" 7
printf 'brokers=%s\ntopic=cfg\ninptu=x\n' "$BROKERS" >"$TMP/bad.conf"
set +e
"$TC" feed --config "$TMP/bad.conf" --synthetic 7 2>"$TMP/badcfg.log"
rc=$?
set -e
tc_eq "bad config exit" "$rc" 2
grep -q "bad.conf:3: unknown key 'inptu'" "$TMP/badcfg.log" || tc_fail "$(cat "$TMP/badcfg.log")"

# --rate paces; SIGINT stops sending, flushes and reports: exit 0, every sent message delivered.
tc_bg "$TC" feed --brokers "$BROKERS" --topic paced --synthetic 100000 --rate 2000 2>"$TMP/paced.log"
FP=$BG_PID
sleep 1.5
kill -INT "$FP"
tc_stop "$FP" 10
tc_eq "feed exit after SIGINT" "$STOP_RC" 0
sent=$(grep -o 'sent [0-9]*' "$TMP/paced.log" | cut -d' ' -f2)
got=$(kcat -b "$BROKERS" -t paced -C -e -q | wc -l)
tc_eq "paced messages delivered" "$got" "$sent"
[ "$sent" -ge 1000 ] && [ "$sent" -le 4000 ] || tc_fail "--rate 2000 for ~1.5 s sent $sent"

# Nothing listens there: every delivery fails after message.timeout.ms, exit 1.
port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
set +e
timeout 30 "$TC" feed --brokers "127.0.0.1:$port" --topic ticks --input "$TMP/ticks.csv" \
  -X message.timeout.ms=1500 --log-level error 2>"$TMP/down.log"
rc=$?
set -e
tc_eq "unreachable broker exit" "$rc" 1
grep -q "failed 120" "$TMP/down.log" || tc_fail "$(tail -3 "$TMP/down.log")"
# SIGINT while the final flush waits (nothing sent can be delivered there): the flush ends 5 s
# after the signal, not at its 30 s bound (it once ignored a signal that came during the flush).
tc_bg "$TC" feed --brokers "127.0.0.1:$port" --topic ticks --input "$TMP/ticks.csv" --log-level error \
  2>"$TMP/intflush.log"
FP=$BG_PID
sleep 1 # the 120 ticks are sent at once; the flush waits
kill -INT "$FP"
tc_stop "$FP" 15 # (SIGTERM too after the SIGINT: the same stop, the bound runs from the first)
tc_eq "feed exit after SIGINT during the flush (120 undelivered)" "$STOP_RC" 1
grep -q "flush: 120 messages still undelivered after" "$TMP/intflush.log" ||
  tc_fail "SIGINT during the flush: $(tail -3 "$TMP/intflush.log")"

# --port: a fixed port, and a taken one is refused with exit 1. The same broker has --rtt and
# --no-leader: a feed there takes at least one round trip of 400 ms, and one to the topic without
# a leader fails every message.
fport=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
tc_bg "$TC" broker --port "$fport" --topics t2:2,t3:3 --rtt 400 --no-leader t3 \
  >"$TMP/b2.out" 2>"$TMP/b2.log"
B2=$BG_PID
tc_wait_for 10 grep -q . "$TMP/b2.out" || tc_fail "second broker did not start"
tc_eq "fixed port bootstrap" "$(head -1 "$TMP/b2.out")" "127.0.0.1:$fport"
kcat -b "127.0.0.1:$fport" -L -t t2 >"$TMP/t2.txt"
grep -q 'topic "t2" with 2 partitions' "$TMP/t2.txt" || tc_fail "kcat on fixed port"
grep -q "topic t3: 3 partitions without a leader" "$TMP/b2.log" || tc_fail "$(cat "$TMP/b2.log")"
kcat -b "127.0.0.1:$fport" -L -t t3 >"$TMP/t3.txt"
[ "$(grep -c 'leader -1' "$TMP/t3.txt")" -eq 3 ] || tc_fail "t3 leaders: $(cat "$TMP/t3.txt")"
t0=$(date +%s%N)
head -n 3 "$TMP/ticks.csv" | "$TC" feed --brokers "127.0.0.1:$fport" --topic t2 --input - \
  2>"$TMP/rtt.log" || tc_fail "feed with --rtt: $(cat "$TMP/rtt.log")"
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$ms" -ge 400 ] || tc_fail "feed through --rtt 400 took only $ms ms"
set +e
head -n 3 "$TMP/ticks.csv" | "$TC" feed --brokers "127.0.0.1:$fport" --topic t3 --input - \
  -X message.timeout.ms=1000 --log-level error 2>"$TMP/nl.log"
rc=$?
set -e
tc_eq "feed to a topic without a leader exit" "$rc" 1
grep -q "delivered 0, failed 2" "$TMP/nl.log" || tc_fail "$(tail -3 "$TMP/nl.log")"
for bad in "a b" "x:2" ","; do
  set +e
  "$TC" broker --no-leader "$bad" >/dev/null 2>"$TMP/bad.log"
  rc=$?
  set -e
  tc_eq "--no-leader '$bad' exit" "$rc" 2
  grep -q "^tickcast broker: --no-leader $bad: expected" "$TMP/bad.log" || tc_fail "$(cat "$TMP/bad.log")"
done
# --fail-requests is checked whole before the broker starts: one line naming the item and what
# was expected (an unknown request or error name, a count out of range, an item without ERROR).
for bad in "Foo:NOT_COORDINATOR|unknown request 'Foo'" "Fetch:NOPE|unknown error 'NOPE'" \
  "Produce:NO_ERROR,Fetch:_TRANSPORT:0|count must be 1..100000, found '0'" \
  "Fetch|expected API:ERROR\[:COUNT\]" "Fetch:UNKNOWN,|an empty item" \
  "Fetch:_PARTITION_EOF|unknown error '_PARTITION_EOF'"; do
  set +e
  "$TC" broker --fail-requests "${bad%%|*}" >"$TMP/bad.out" 2>"$TMP/bad.log"
  rc=$?
  set -e
  tc_eq "--fail-requests ${bad%%|*} exit" "$rc" 2
  [ "$(wc -l <"$TMP/bad.log")" -eq 1 ] &&
    grep -qE "^tickcast broker: --fail-requests [^ ]*:? ${bad#*|}" "$TMP/bad.log" ||
    tc_fail "--fail-requests ${bad%%|*}: $(cat "$TMP/bad.log")"
  [ ! -s "$TMP/bad.out" ] || tc_fail "--fail-requests ${bad%%|*}: a broker started"
done
set +e
"$TC" broker --commands "$TMP/no-such-fifo" >"$TMP/bad.out" 2>"$TMP/bad.log"
rc=$?
set -e
tc_eq "--commands of a missing file exit" "$rc" 2
grep -qx "tickcast broker: --commands $TMP/no-such-fifo: No such file or directory (expected a readable FIFO or file, or -)" \
  "$TMP/bad.log" || tc_fail "--commands: $(cat "$TMP/bad.log")"
set +e
"$TC" broker --commands "$TMP" >"$TMP/bad.out" 2>"$TMP/bad.log"
rc=$?
set -e
tc_eq "--commands of a directory exit" "$rc" 2
grep -q "^tickcast broker: --commands $TMP: is a directory" "$TMP/bad.log" ||
  tc_fail "--commands: $(cat "$TMP/bad.log")"
# feed to a broker that is not there: each error is said once (librdkafka's own line; its error
# event as a warning, not again at ERROR), the summary counts every tick failed, exit 1. (Its
# messages time out before its flush ends, so none is left to purge: the stop during the flush
# below is the case that leaves some.)
{ echo "sym,ts,px"; for i in $(seq 1 50); do echo "AB,$((1700000000000000000 + i)),1.$i"; done; } \
  >"$TMP/dead.csv"
set +e
"$TC" feed --brokers 127.0.0.1:1 --topic ticks --input "$TMP/dead.csv" -X message.timeout.ms=2000 \
  >/dev/null 2>"$TMP/dead.log"
rc=$?
set -e
tc_eq "feed to no broker exit" "$rc" 1
grep -q "^feed: $TMP/dead.csv -> ticks: sent 50, delivered 0, failed 50, rejected 0" \
  "$TMP/dead.log" || tc_fail "feed to no broker: $(cat "$TMP/dead.log")"
grep -q "WARN  rdkafka: tickcast-feed#producer-1: _ALL_BROKERS_DOWN: 1/1 brokers are down" \
  "$TMP/dead.log" || tc_fail "no warning that the brokers are down: $(cat "$TMP/dead.log")"
! grep -q "ERROR: \[thrd:" "$TMP/dead.log" ||
  tc_fail "feed to no broker: $(grep "ERROR: \[thrd:" "$TMP/dead.log" | head -n 3)"
# Stopped during its flush, with its messages still queued (they would wait a minute): it waits
# 5 s more, counts them undelivered and purges them before it exits.
"$TC" feed --brokers 127.0.0.1:1 --topic ticks --input "$TMP/dead.csv" -X message.timeout.ms=60000 \
  >/dev/null 2>"$TMP/dead2.log" &
FP=$!
TC_PIDS+=("$FP")
sleep 1
kill -INT "$FP"
set +e
wait "$FP"
rc=$?
set -e
tc_forget "$FP"
tc_eq "feed stopped during its flush exit" "$rc" 1
grep -q "^feed: $TMP/dead.csv -> ticks: sent 50, delivered 0, failed 50, rejected 0" \
  "$TMP/dead2.log" || tc_fail "feed stopped during its flush: $(cat "$TMP/dead2.log")"
grep -q "flush: 50 messages still undelivered after" "$TMP/dead2.log" ||
  tc_fail "no line on the undelivered messages: $(cat "$TMP/dead2.log")"
! grep -q "still in queue or transit" "$TMP/dead2.log" ||
  tc_fail "feed left its messages to librdkafka: $(grep "still in queue" "$TMP/dead2.log")"
# A command file's lines: each good one is logged as taken, each bad one with its file, line
# number and what was expected, and skipped. clear-requests drops the failures still queued: the
# feed after it is delivered whole (without it, every Produce would be refused for good).
printf '%s\n' "# a comment" "rtt 50" "rtt x" "rtt" "bogus 1" "fail-requests Fetch:UNKNOWN" "rtt 0" \
  "fail-requests Produce:TOPIC_AUTHORIZATION_FAILED:100000" "clear-requests Nope" \
  "clear-requests Produce," "clear-requests Fetch,Produce" >"$TMP/cmds"
"$TC" broker --topics cl:1 --commands "$TMP/cmds" >"$TMP/cmd.out" 2>"$TMP/cmd.log" &
CB=$!
TC_PIDS+=("$CB")
tc_wait_for 10 grep -q "queued failures dropped: Fetch,Produce" "$TMP/cmd.log" ||
  tc_fail "the command file was not read to its end: $(cat "$TMP/cmd.log")"
"$TC" feed --brokers "$(head -n 1 "$TMP/cmd.out")" --topic cl --synthetic 20 --instruments 2 \
  2>"$TMP/clfeed.log" || tc_fail "feed after clear-requests: $(cat "$TMP/clfeed.log")"
grep -q "sent 20, delivered 20, failed 0" "$TMP/clfeed.log" ||
  tc_fail "feed after clear-requests: $(cat "$TMP/clfeed.log")"
tc_stop "$CB"
grep -q "responses delayed by 50 ms" "$TMP/cmd.log" || tc_fail "rtt 50: $(cat "$TMP/cmd.log")"
grep -q "1 requests will fail: Fetch:UNKNOWN" "$TMP/cmd.log" || tc_fail "fail-requests: $(cat "$TMP/cmd.log")"
grep -q -- "--commands $TMP/cmds:3: rtt 'x': expected milliseconds 0..600000" "$TMP/cmd.log" ||
  tc_fail "rtt x: $(cat "$TMP/cmd.log")"
for l in "4: 'rtt'" "5: 'bogus 1'"; do
  grep -q -- "--commands $TMP/cmds:$l: unknown (expected 'fail-requests API:ERROR\[:N\],...', 'clear-requests API,...' or 'rtt MS')" \
    "$TMP/cmd.log" || tc_fail "line $l: $(cat "$TMP/cmd.log")"
done
grep -q -- "--commands $TMP/cmds:9: clear-requests Nope: unknown request 'Nope'" "$TMP/cmd.log" ||
  tc_fail "clear-requests Nope: $(cat "$TMP/cmd.log")"
grep -q -- "--commands $TMP/cmds:10: clear-requests 'Produce,': an empty item" "$TMP/cmd.log" ||
  tc_fail "clear-requests Produce,: $(cat "$TMP/cmd.log")"
set +e
"$TC" broker --port "$fport" >/dev/null 2>"$TMP/b3.log"
rc=$?
set -e
tc_eq "taken port exit" "$rc" 1
grep -q "Address already in use" "$TMP/b3.log" || tc_fail "$(cat "$TMP/b3.log")"
tc_stop "$B2"

tc_stop "$BROKER_PID"
tc_eq "broker exit on SIGTERM" "$STOP_RC" 0
echo "e2e_broker_feed: all ok"
