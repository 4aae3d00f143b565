#!/usr/bin/env bash
# e2e_changelog_shared_latest.sh: a partition that waits for its changelog only because it shares
# a changelog partition with one that has state, and turns out to have none, starts where
# auto.offset.reset says as of when it began to wait. Ticks partition 1 and 0 share changelog
# partition g1.state/0. A first member checkpoints partition 0's ticks (partition 1 is empty: no
# marker of it) and is killed before the group commits. Then partition 1 gets "old" ticks, and a
# second member (state file gone, auto.offset.reset=latest) cannot read the changelog: both
# partitions wait. Ticks fed during the wait, to both, are predicted once a read succeeds: partition
# 0 from its checkpoint, partition 1 from zero state at the end it had when the wait began, so its
# old ticks are never predicted, as at an assignment without a wait. It once started at the low
# watermark (auto.offset.reset=earliest, whatever was set) and predicted the old ticks too.
. "$(dirname "$0")/lib.sh"
X="$PY $ROOT/tests/e2e_crash.py"
$PY "$ROOT/tests/e2e_run.py" model "$TMP/m.safetensors" 1 16 1
$X gen "$TMP/gen.csv" 600 40 17
# Rows by the partition their sym goes to (Kafka's murmur2, as feed's murmur2_random partitioner):
# first.csv: partition 0's of the first 400; old.csv: partition 1's of those; mid.csv: the last 200.
$PY - "$TMP" <<'EOF'
import sys
def murmur2(d):
    m, h = 0x5bd1e995, 0x9747b28c ^ len(d)
    for i in range(0, len(d) // 4 * 4, 4):
        k = (d[i] | d[i + 1] << 8 | d[i + 2] << 16 | d[i + 3] << 24) * m & 0xffffffff
        k = (k ^ k >> 24) * m & 0xffffffff
        h = (h * m & 0xffffffff) ^ k
    t = len(d) & ~3
    if len(d) % 4 == 3: h ^= d[t + 2] << 16
    if len(d) % 4 >= 2: h ^= d[t + 1] << 8
    if len(d) % 4 >= 1: h = (h ^ d[t]) * m & 0xffffffff
    h = (h ^ h >> 13) * m & 0xffffffff
    return h ^ h >> 15
tmp = sys.argv[1]
lines = open(f"{tmp}/gen.csv").read().splitlines()
head, rows = lines[0], lines[1:]
part = lambda r: (murmur2(r.split(",")[0].encode()) & 0x7fffffff) % 2
out = {"first": [r for r in rows[:400] if part(r) == 0], "old": [r for r in rows[:400] if part(r) == 1],
       "mid": rows[400:]}
for name, rs in out.items():
    open(f"{tmp}/{name}.csv", "w").write("\n".join([head] + rs) + "\n")
# What the daemon should predict, in order: everything but the old ticks.
open(f"{tmp}/all.csv", "w").write("\n".join([head] + out["first"] + out["mid"]) + "\n")
open(f"{tmp}/n.txt", "w").write(f"{len(out['first'])} {len(out['old'])} {len(out['mid'])}\n")
EOF
read -r NF NO NM <"$TMP/n.txt"
echo "first $NF ticks (partition 0), old $NO (partition 1), mid $NM (both)"
mkfifo "$TMP/ctl"
tc_broker_start --topics ticks:2,predictions:2,tickcast.dlq:1,tickcast.stats:1,g1.state:1 \
  --commands "$TMP/ctl"
"$TC" feed --brokers "$BROKERS" --topic ticks --input "$TMP/first.csv" 2>"$TMP/feed.log" ||
  tc_fail "feed failed: $(tail -n 3 "$TMP/feed.log")"
ends() { # the high watermarks of ticks/0 and ticks/1
  $PY - "$BROKERS" <<'EOF'
import sys, confluent_kafka as ck
c = ck.Consumer({"bootstrap.servers": sys.argv[1], "group.id": "wm"})
print(" ".join(str(c.get_watermark_offsets(ck.TopicPartition("ticks", p), timeout=10)[1]) for p in (0, 1)))
c.close()
EOF
}
tc_eq "ticks' ends after first.csv" "$(ends)" "$NF 0"

tc_killed_uncommitted "$NF"

"$TC" feed --brokers "$BROKERS" --topic ticks --input "$TMP/old.csv" 2>"$TMP/feed.log" ||
  tc_fail "feed of old.csv failed: $(tail -n 3 "$TMP/feed.log")"
tc_broker_cmd "fail-requests Fetch:UNKNOWN:100000" "100000 requests will fail"
tc_member "$TMP/run2.log" -X consumer.auto.offset.reset=latest
tc_wait_for 60 grep -q "ticks partitions \[0,1\] wait, paused, for their state in changelog" "$TMP/run2.log" ||
  tc_fail "the partitions did not both wait: $(grep -v rdkafka "$TMP/run2.log" | tail -n 5)"
"$TC" feed --brokers "$BROKERS" --topic ticks --input "$TMP/mid.csv" 2>"$TMP/feed2.log" ||
  tc_fail "feed of mid.csv failed: $(tail -n 3 "$TMP/feed2.log")"
tc_broker_cmd "clear-requests Fetch" "queued failures dropped: Fetch"
tc_wait_for 60 grep -q "restored ticks partitions" "$TMP/run2.log" ||
  tc_fail "no retry restored the partitions: $(grep -v rdkafka "$TMP/run2.log" | tail -n 5)"
tc_wait_for 60 sh -c "[ \"\$($X count "$BROKERS" predictions)\" -ge $((NF + NM)) ]" ||
  tc_fail "the mid ticks were not predicted: $(grep -v rdkafka "$TMP/run2.log" | tail -n 5)"
tc_stop "$RUN_PID" 15
tc_eq "the second member's exit" "$STOP_RC" 0
# Every prediction equals a replay of first.csv and mid.csv (old.csv's ticks are not in it: one
# predicted would have no replay row, or put its instrument's later ticks out of step).
tc_check_replay $((NF + NM))
grep -q "ticks/1: no state of it in the changelog and no committed offset: it starts at $NO (auto.offset.reset=latest: the end of the partition when the wait first asked it)" \
  "$TMP/run2.log" || tc_fail "ticks/1 did not start at $NO: $(grep -E 'ticks/1|restored' "$TMP/run2.log" | grep -v rdkafka)"
echo "PASS e2e_changelog_shared_latest"
