#!/usr/bin/env bash
# e2e_proc_subset.sh: under systemd's ProcSubset=pid (deploy/tickcast.service), /proc shows only
# processes: /proc/stat, where the boot time is, is hidden, and process_start_time_seconds once
# went missing from /metrics. The daemon runs in a mount namespace whose /proc is mounted with
# subset=pid (as that unit's is) and must still report its start time, within a few seconds of
# when it was started. Needs root and a kernel with procfs subset=pid (5.8); says so and stops
# otherwise.
. "$(dirname "$0")/lib.sh"
$PY "$ROOT/tests/e2e_run.py" model "$TMP/m.safetensors" 1 8 1
if ! unshare -m sh -c 'mount -t proc -o subset=pid proc /proc && [ ! -e /proc/stat ]' 2>/dev/null; then
  echo "skip: cannot mount /proc with subset=pid here (needs root and Linux >= 5.8)"
  exit 0
fi
port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
t0=$(date +%s)
tc_bg unshare -m sh -c "mount -t proc -o subset=pid proc /proc && exec \"$TC\" run \
  --model \"$TMP/m.safetensors\" --state \"$TMP/s.db\" --http 127.0.0.1:$port" 2>"$TMP/run.log"
RUN_PID=$BG_PID
tc_wait_for 20 grep -q "http on" "$TMP/run.log" || tc_fail "no http line: $(tail -n 3 "$TMP/run.log")"
st=$(curl -s "http://127.0.0.1:$port/metrics" | sed -n 's/^process_start_time_seconds //p')
[ -n "$st" ] || tc_fail "no process_start_time_seconds without /proc/stat"
$PY -c "import sys; st, t0 = float(sys.argv[1]), int(sys.argv[2]); assert t0 - 2 <= st <= t0 + 10, (st, t0)" "$st" "$t0" ||
  tc_fail "process_start_time_seconds $st, started at $t0"
echo "ok: process_start_time_seconds $st without /proc/stat (started at $t0)"
tc_stop "$RUN_PID" 15
tc_eq "exit after SIGTERM" "$STOP_RC" 0
echo "PASS e2e_proc_subset"
