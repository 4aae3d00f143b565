#!/usr/bin/env bash
# e2e_run_cli.sh: `tickcast run` as a command: --help, usage errors (exit 2, one line naming the
# flag), a bad model file (exit 2), an HTTP port in use (exit 1, one clear line), libmicrohttpd
# missing (exit 1, one clear line; replay unaffected), the embedded broker when --brokers is absent
# (ticks in and predictions out with kcat, nothing else running), and the heap policy's re-exec
# (daemon/cmd/heap.c: same pid and process name, GLIBC_TUNABLES with glibc.malloc.hugetlb=1 when
# the kernel has transparent huge pages, a user's own setting left alone).
. "$(dirname "$0")/lib.sh"
H="$ROOT/tests/e2e_run.py"
$PY "$H" model "$TMP/m.safetensors" 1 8 1
$PY "$H" model "$TMP/m2.safetensors" 1 8 2
cp "$TMP/m.safetensors" "$TMP/live.safetensors"

"$TC" run --help >"$TMP/help.txt" || tc_fail "--help exit status"
for w in --model --brokers --group --input-topic --output-topic --stats-topic --dlq-topic \
  --stats-interval --http --state --checkpoint-interval --reset-state --on-model-change --sync \
  --changelog-topic --max-instruments --max-future --unhealthy-after \
  -X --config --log-level SIGHUP SIGTERM; do
  grep -q -- "$w" "$TMP/help.txt" || tc_fail "--help does not mention $w"
done
echo "ok: --help lists every flag"

usage() { # expected-substring args...
  local want=$1; shift
  set +e
  "$TC" run "$@" >"$TMP/out.txt" 2>"$TMP/err.txt"
  local rc=$?
  set -e
  [ "$rc" -eq 2 ] || tc_fail "run $*: exit $rc, expected 2 ($(cat "$TMP/err.txt"))"
  [ "$(wc -l <"$TMP/err.txt")" -eq 1 ] || tc_fail "run $*: not one error line: $(cat "$TMP/err.txt")"
  grep -qF -- "$want" "$TMP/err.txt" || tc_fail "run $*: '$(cat "$TMP/err.txt")' lacks '$want'"
  echo "ok: run $* -> 2: $(cat "$TMP/err.txt")"
}
M="$TMP/m.safetensors"
usage "--model: missing" --brokers x:1
usage "--stats-interval 0" --model "$M" --stats-interval 0
usage "--stats-interval abc" --model "$M" --stats-interval abc
usage "--chunk 0" --model "$M" --chunk 0
usage "--on-model-change maybe" --model "$M" --on-model-change maybe
usage "--sync fast" --model "$M" --sync fast
usage "--log-level loud" --model "$M" --log-level loud
usage "unknown flag '--bogus'" --model "$M" --bogus 1
usage "--group: missing value" --model "$M" --group
usage "--input-topic 'bad topic'" --model "$M" --input-topic "bad topic"
usage "must differ" --model "$M" --input-topic same --output-topic same
# The daemon's own records stay out of the topics of ticks, predictions and dead letters (stats in
# the input topic came back as dead letters; a changelog there was read as the input's history).
usage "--stats-topic ticks: must differ from the input, output and dead-letter topics" \
  --model "$M" --stats-topic ticks
usage "--changelog-topic predictions: must differ from the input, output and dead-letter topics" \
  --model "$M" --changelog-topic predictions
usage "--changelog-topic tickcast.stats: must differ from the stats topic" \
  --model "$M" --changelog-topic tickcast.stats
# The group is --group: a group.id from -X (any scope) or the config file would join another
# group while the changelog, the stats and the logs carry --group's name.
usage "-X group.id: found 'gD', expected none (the consumer group is --group, now 'gC'" \
  --model "$M" --group gC -X consumer.group.id=gD --state "$TMP/gid.db"
usage "-X group.id: found 'gD'" --model "$M" -X group.id=gD --state "$TMP/gid.db"
[ ! -e "$TMP/gid.db" ] || tc_fail "a refused group.id left a state file"
# Committed offsets follow the checkpoints: librdkafka's automatic offset store (it once was
# accepted) would commit offsets past ticks whose state no checkpoint holds.
usage "-X enable.auto.offset.store: found 'true', expected false (the daemon stores a partition's" \
  --model "$M" -X consumer.enable.auto.offset.store=true --state "$TMP/gid.db"
[ ! -e "$TMP/gid.db" ] || tc_fail "a refused enable.auto.offset.store left a state file"
usage "-X" --model "$M" -X nonsense
usage "unexpected argument 'extra'" --model "$M" extra
printf 'input-topic = ticks\ninptu-topic = x\n' >"$TMP/bad.conf"
usage "inptu-topic" --model "$M" --config "$TMP/bad.conf"
# A librdkafka property it does not know: one line, exit 2, before any network activity.
usage "no.such.property" --model "$M" --brokers 127.0.0.1:1 --http off -X no.such.property=1
# Everything is checked before anything starts: a bad --http or -X, without --brokers, exits 2
# with its one line, and no embedded broker, HTTP server or state file was started or created.
usage "--http nonsense: expected ADDR:PORT" --model "$M" --http nonsense --state "$TMP/never.db"
usage "port '99999' is not a number in 0..65535" --model "$M" --http 127.0.0.1:99999 --state "$TMP/never.db"
usage "-X no.such.property (value not shown)" --model "$M" -X no.such.property=1 --state "$TMP/never.db"
usage "-X compression.codec=zzz" --model "$M" -X compression.codec=zzz --state "$TMP/never.db"
[ ! -e "$TMP/never.db" ] || tc_fail "a refused start created its state file"
echo "ok: bad --http and -X are refused before the broker, the HTTP server and the state file"

# A bad model file: exit 2 with the loader's one-line error naming the file.
printf 'not a model' >"$TMP/bad.safetensors"
set +e
"$TC" run --model "$TMP/bad.safetensors" --brokers 127.0.0.1:1 --http off 2>"$TMP/err.txt"
rc=$?
set -e
tc_eq "exit status with a bad model" "$rc" 2
grep -q "bad.safetensors" "$TMP/err.txt" || tc_fail "model error does not name the file: $(cat "$TMP/err.txt")"

# The HTTP port in use: exit 1 with one clear line.
$PY -c "
import socket, time, sys
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1)
open(sys.argv[1], 'w').write(str(s.getsockname()[1])); time.sleep(30)" "$TMP/port" &
HOLDER=$!
TC_PIDS+=("$HOLDER")
tc_wait_for 10 test -s "$TMP/port" || tc_fail "no port holder"
BUSY=$(cat "$TMP/port")
set +e
timeout 20 "$TC" run --model "$M" --state "$TMP/busy.db" --http "127.0.0.1:$BUSY" 2>"$TMP/err.txt"
rc=$?
set -e
tc_eq "exit status with the http port in use" "$rc" 1
grep -q "ERROR .*--http 127.0.0.1:$BUSY: cannot listen: Address already in use" "$TMP/err.txt" ||
  tc_fail "port-in-use message: $(cat "$TMP/err.txt")"
[ "$(grep -c ERROR "$TMP/err.txt")" -eq 1 ] || tc_fail "more than one error line: $(cat "$TMP/err.txt")"
echo "ok: port in use -> exit 1: $(grep ERROR "$TMP/err.txt")"
# The refused start leaves no state file behind (it once left a new, empty one); one that existed
# before is kept as it was.
[ ! -e "$TMP/busy.db" ] && [ ! -e "$TMP/busy.db-wal" ] || tc_fail "a refused start left $(ls "$TMP"/busy.db*)"
"$TC" run --model "$M" --state "$TMP/busy.db" --http "127.0.0.1:$BUSY" 2>/dev/null || true
[ ! -e "$TMP/busy.db" ] || tc_fail "the second refused start left a state file"
$PY "$ROOT/tests/statedb.py" write "$TMP/kept.db" --instruments 1 --layers 1 --hidden 8
"$TC" run --model "$M" --state "$TMP/kept.db" --http "127.0.0.1:$BUSY" --reset-state 2>/dev/null || true
[ -e "$TMP/kept.db" ] || tc_fail "a refused start removed a state file that existed before"
echo "ok: a refused start removes the state file it created, and only that one"

# libmicrohttpd is loaded, not linked: without it (the library file hidden in a private mount
# namespace) `run` stops at its flag check with one line naming --http and exit status 1, creates
# no state file, and runs with --http off; `replay` does not need it at all.
LIBMHD=$(readlink -f "$(pkg-config --variable=libdir libmicrohttpd)/libmicrohttpd.so.12")
[ -f "$LIBMHD" ] || tc_fail "libmicrohttpd.so.12 not found in pkg-config's libdir: $LIBMHD"
if ! ldd "$TC" | grep -q microhttpd && unshare -m true 2>/dev/null; then
  set +e
  unshare -m sh -c 'mount --bind /dev/null "$1" && shift && exec "$@"' sh "$LIBMHD" \
    "$TC" run --model "$M" --brokers 127.0.0.1:1 --state "$TMP/nolib.db" 2>"$TMP/err.txt"
  rc=$?
  set -e
  tc_one_error "run without libmicrohttpd" "$rc" "$TMP/err.txt" \
    "^tickcast run: --http: cannot load libmicrohttpd \(libmicrohttpd\.so\.12; install Debian's libmicrohttpd12, or --http off\): "
  [ ! -e "$TMP/nolib.db" ] || tc_fail "a state file was created before the flag check failed"
  printf 'sym,ts,px\nA,1700000000000000000,10\nA,1700000001000000000,11\n' >"$TMP/two.csv"
  unshare -m sh -c 'mount --bind /dev/null "$1" && shift && exec "$@"' sh "$LIBMHD" \
    "$TC" replay --model "$M" --input "$TMP/two.csv" --output "$TMP/two.out" --quiet ||
    tc_fail "replay without libmicrohttpd failed"
  tc_eq "prediction rows of a replay without libmicrohttpd" "$(($(wc -l <"$TMP/two.out") - 1))" 2
  echo "ok: without libmicrohttpd: run -> exit 1: $(cat "$TMP/err.txt"); replay works"
elif ldd "$TC" | grep -q microhttpd; then
  tc_fail "$TC links libmicrohttpd"
else
  echo "skip: no private mount namespace here (unshare -m), so libmicrohttpd cannot be hidden"
fi

# No --brokers: the embedded broker, reachable by an outside client (kcat).
tc_bg "$TC" run --model "$TMP/live.safetensors" --state "$TMP/live.db" --http off \
  --on-model-change keep 2>"$TMP/run.log"
RUN_PID=$BG_PID
tc_wait_for 10 grep -q "embedded development broker at" "$TMP/run.log" || tc_fail "no embedded broker line"
EMB=$(sed -n 's/.*embedded development broker at \([0-9.:]*\) .*/\1/p' "$TMP/run.log")
tc_wait_for 20 grep -q "assigned ticks partitions" "$TMP/run.log" || tc_fail "no assignment"
printf '%s\n' 'E1|{"sym":"E1","ts":1,"px":2.5}' 'E1|{"sym":"E1","ts":2,"px":2.6}' \
  'E2|{"sym":"E2","ts":"2024-01-01T00:00:00Z","px":7}' |
  kcat -P -b "$EMB" -t ticks -K '|' 2>/dev/null
kcat -C -b "$EMB" -t predictions -o beginning -c 3 -e -q -f '%k %s\n' >"$TMP/emb.txt" 2>/dev/null || true
tc_wait_for 15 sh -c "kcat -C -b $EMB -t predictions -o beginning -e -q -f '%k %s\n' 2>/dev/null >$TMP/emb.txt; [ \$(wc -l <$TMP/emb.txt) -ge 3 ]" ||
  tc_fail "no 3 predictions from the embedded broker: $(cat "$TMP/emb.txt")"
grep -q '^E1 {"sym":"E1","ts":2,"px":2.6,.*"n":2,"src":"ticks/' "$TMP/emb.txt" ||
  tc_fail "prediction for E1 n=2: $(cat "$TMP/emb.txt")"
grep -q '^E2 {"sym":"E2","ts":1704067200000000000,"px":7,.*"n":1,' "$TMP/emb.txt" ||
  tc_fail "prediction for E2: $(cat "$TMP/emb.txt")"
echo "ok: embedded broker: 3 ticks in with kcat, 3 predictions out"
# The heap policy: `run` re-executed itself (the same pid, still named tickcast) with huge pages
# for malloc when the kernel has them (THP "always" or "madvise"), else it did not.
tc_eq "process name after the re-exec" "$(cat /proc/"$RUN_PID"/comm)" tickcast
THP=$(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || true)
TUN=$(tr '\0' '\n' </proc/"$RUN_PID"/environ | sed -n 's/^GLIBC_TUNABLES=//p')
case $THP in
*"[always]"* | *"[madvise]"*) tc_eq "GLIBC_TUNABLES of run (THP: $THP)" "$TUN" "glibc.malloc.hugetlb=1" ;;
*) tc_eq "GLIBC_TUNABLES of run (no THP: $THP)" "$TUN" "" ;;
esac
echo "ok: heap policy: $(grep AnonHugePages /proc/"$RUN_PID"/smaps_rollup 2>/dev/null | tr -s ' ')"
# SIGHUP to a same-shape model with --on-model-change keep: E1 goes on at n=3.
cp "$TMP/m2.safetensors" "$TMP/new.safetensors" && mv "$TMP/new.safetensors" "$TMP/live.safetensors"
kill -HUP "$RUN_PID"
tc_wait_for 10 grep -q "SIGHUP: model .* (kept instrument states)" "$TMP/run.log" || tc_fail "no keep swap"
echo 'E1|{"sym":"E1","ts":3,"px":2.7}' | kcat -P -b "$EMB" -t ticks -K '|' 2>/dev/null
tc_wait_for 15 sh -c "kcat -C -b $EMB -t predictions -o beginning -e -q -f '%k %s\n' 2>/dev/null | grep -q '\"ts\":3,.*\"n\":3,'" ||
  tc_fail "after a keep swap E1's next prediction is not n=3"
echo "ok: SIGHUP with --on-model-change keep carries the states over (n=3)"
# The example settings of deploy/ are accepted as they are (the command line overrides the
# cluster, model, group and paths). With the user's own glibc.malloc.hugetlb, which stands.
GLIBC_TUNABLES=glibc.malloc.arena_max=2:glibc.malloc.hugetlb=0 tc_bg "$TC" run --config "$ROOT/deploy/tickcast.conf" --brokers "$EMB" --group cfg \
  --output-topic cfg-preds --model "$TMP/m.safetensors" --state "$TMP/cfg.db" \
  --http 127.0.0.1:0 2>"$TMP/cfg.log"
CFG_PID=$BG_PID
tc_wait_for 20 grep -q "assigned ticks partitions" "$TMP/cfg.log" ||
  tc_fail "deploy/tickcast.conf: $(grep -v rdkafka "$TMP/cfg.log" | tail -n 5)"
# (glibc's tunables parser cuts the variable's original text at each ':' in place, so
# /proc/PID/environ shows its items as separate strings.)
tc_eq "glibc.malloc.hugetlb of run, the user's" \
  "$(tr '\0' '\n' </proc/"$CFG_PID"/environ | grep -o 'glibc\.malloc\.hugetlb=[0-9]*' | tr '\n' ' ')" \
  "glibc.malloc.hugetlb=0 "
tc_stop "$CFG_PID" 10
tc_eq "exit status with deploy/tickcast.conf" "$STOP_RC" 0
tc_stop "$RUN_PID" 10
tc_eq "exit status after SIGTERM (embedded)" "$STOP_RC" 0
echo "PASS e2e_run_cli"
