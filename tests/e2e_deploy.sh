#!/usr/bin/env bash
# e2e_deploy.sh: the files in deploy/ against the real daemon. Static checks (tests/e2e_deploy.py
# static: every YAML and JSON parses; Dockerfile stages, user, health check, COPY sources and
# package names (the runtime stage has those of the libraries tickcast links and of those it
# opens with dlopen); the compose file's KRaft broker, topics, members and feed; the Kubernetes
# manifests' probes, ports and volumes; alert rules, dashboard and deploy/metrics.txt); install.sh
# into a staging root, twice; the systemd unit with systemd-analyze (verify, security score);
# the alert rules with promtool when it is installed. Then `tickcast run` with the Kubernetes
# ConfigMap's settings and the StatefulSet's arguments against a `tickcast broker`, fed by the
# compose file's feed command plus synthetic and malformed ticks: the probes and the image's
# HEALTHCHECK answer, every prediction, stats message and dead letter read back matches its
# schema in deploy/schemas/, and every metric the alert rules and the dashboard name is in the
# daemon's /metrics. Last, the compose members' command line and the unit's ExecStart with
# deploy/tickcast.conf start and stop cleanly.
. "$(dirname "$0")/lib.sh"
H="$ROOT/tests/e2e_deploy.py"
D="$ROOT/deploy"
MODEL="$ROOT/data/model/fx.safetensors"
# The highest systemd-analyze exposure accepted, times 10 (the unit scores 1.1; "OK" is below 5).
SECURITY_MAX_X10=20

$PY "$H" static "$ROOT"

# ---- install.sh: into a staging root; a second run changes nothing and keeps an edited config.
S="$TMP/stage"
BIN="$TC" DESTDIR="$S" PREFIX=/opt/tc "$D/install.sh" >"$TMP/install1.log"
for f in opt/tc/bin/tickcast etc/systemd/system/tickcast.service etc/systemd/system/tickcast@.service \
  etc/tickcast/tickcast.conf; do
  [ -f "$S/$f" ] || tc_fail "install.sh did not install /$f"
done
# The model is copied into the state directory before the first start (deploy/README.md).
[ -d "$S/var/lib/tickcast" ] || tc_fail "install.sh did not create /var/lib/tickcast"
cmp -s "$S/opt/tc/bin/tickcast" "$TC" || tc_fail "install.sh: the installed binary is not ./tickcast"
cmp -s "$S/etc/tickcast/tickcast.conf" "$D/tickcast.conf" ||
  tc_fail "install.sh: the config is not deploy/tickcast.conf"
tc_eq "installed config mode" "$(stat -c %a "$S/etc/tickcast/tickcast.conf")" 640
grep -qx "ExecStart=/opt/tc/bin/tickcast run --config /etc/tickcast/tickcast.conf" \
  "$S/etc/systemd/system/tickcast.service" ||
  tc_fail "install.sh: the unit's ExecStart does not follow PREFIX"
echo "# edited" >>"$S/etc/tickcast/tickcast.conf"
tree_sum() {
  (cd "$S" && find . -type f ! -name tickcast.conf -exec sha256sum {} + | sort | sha256sum | cut -c1-16)
}
sum1=$(tree_sum)
BIN="$TC" DESTDIR="$S" PREFIX=/opt/tc "$D/install.sh" >"$TMP/install2.log"
sum2=$(tree_sum)
tc_eq "checksum of the staged files after a second install.sh" "$sum2" "$sum1"
tail -n 1 "$S/etc/tickcast/tickcast.conf" | grep -qx "# edited" ||
  tc_fail "install.sh overwrote an existing config"
grep -q "kept the existing" "$TMP/install2.log" || tc_fail "install.sh did not say it kept the config"
grep -q "running members use it once restarted" "$TMP/install2.log" ||
  tc_fail "a second install.sh did not say that running members need a restart: $(tail -n 1 "$TMP/install2.log")"
grep -q "running members" "$TMP/install1.log" && tc_fail "the first install.sh spoke of an upgrade"
rc=0; BIN=/nonexistent DESTDIR="$S" "$D/install.sh" >/dev/null 2>&1 || rc=$?
tc_eq "install.sh exit status without a binary" "$rc" 2
echo "ok: install.sh honours DESTDIR and PREFIX, is idempotent and keeps an existing config"

# ---- systemd: the unit verifies cleanly and its sandbox scores at most SECURITY_MAX_X10 / 10.
grep -qx "RestartPreventExitStatus=2" "$D/tickcast.service" ||
  tc_fail "the unit lacks RestartPreventExitStatus=2"
if command -v systemd-analyze >/dev/null; then
  mkdir -p "$TMP/unit"
  # verify checks that ExecStart's binary exists: point it at the staged one.
  sed "s|^ExecStart=/opt/tc/bin/tickcast|ExecStart=$S/opt/tc/bin/tickcast|" \
    "$S/etc/systemd/system/tickcast.service" >"$TMP/unit/tickcast.service"
  systemd-analyze verify "$TMP/unit/tickcast.service" >"$TMP/verify.log" 2>&1 ||
    tc_fail "systemd-analyze verify: $(cat "$TMP/verify.log")"
  [ ! -s "$TMP/verify.log" ] || tc_fail "systemd-analyze verify warns: $(cat "$TMP/verify.log")"
  echo "ok: systemd-analyze verify tickcast.service: no warning"
  # --threshold is on the 0..100 scale of the printed 0.0..10.0 score.
  rc=0
  systemd-analyze security --offline=yes --threshold="$SECURITY_MAX_X10" "$D/tickcast.service" \
    >"$TMP/security.log" 2>&1 || rc=$?
  score=$(sed -n 's/.*Overall exposure level for tickcast.service: \([0-9.]* [A-Z]*\).*/\1/p' \
    "$TMP/security.log")
  [ -n "$score" ] || tc_fail "systemd-analyze security printed no score: $(tail -n 3 "$TMP/security.log")"
  [ "$rc" -eq 0 ] || tc_fail "systemd-analyze security: exposure $score, above $SECURITY_MAX_X10/10"
  echo "ok: systemd-analyze security --offline=yes: exposure $score (at most $SECURITY_MAX_X10/10)"
  # The template, as an instance: the same checks.
  sed "s|^ExecStart=/opt/tc/bin/tickcast|ExecStart=$S/opt/tc/bin/tickcast|" \
    "$S/etc/systemd/system/tickcast@.service" >"$TMP/unit/tickcast@.service"
  systemd-analyze verify "$TMP/unit/tickcast@9465.service" >"$TMP/verify.log" 2>&1 ||
    tc_fail "systemd-analyze verify tickcast@9465: $(cat "$TMP/verify.log")"
  [ ! -s "$TMP/verify.log" ] || tc_fail "systemd-analyze verify tickcast@9465 warns: $(cat "$TMP/verify.log")"
  systemd-analyze security --offline=yes --threshold="$SECURITY_MAX_X10" \
    "$TMP/unit/tickcast@9465.service" >"$TMP/security.log" 2>&1 ||
    tc_fail "systemd-analyze security tickcast@9465: $(tail -n 1 "$TMP/security.log")"
  echo "ok: the template tickcast@.service verifies and scores like the unit"
else
  echo "skip: systemd-analyze not installed: the unit is not verified"
fi

# ---- Alert rules: syntax and unit tests, when promtool (Debian's prometheus) is at hand.
PROMTOOL=${PROMTOOL:-$(command -v promtool || true)}
if [ -n "$PROMTOOL" ]; then
  if ! { "$PROMTOOL" check rules "$D/prometheus/tickcast-alerts.yml" &&
    "$PROMTOOL" check config "$D/prometheus/prometheus.yml" &&
    (cd "$D/prometheus" && "$PROMTOOL" test rules tickcast-alerts.test.yml); } >"$TMP/promtool.log" 2>&1; then
    tc_fail "promtool: $(cat "$TMP/promtool.log")"
  fi
  echo "ok: promtool check rules, check config and test rules pass"
else
  echo "skip: promtool not installed (Debian package prometheus): alert rules not unit-tested"
fi

# ---- The daemon as the Kubernetes manifests run it.
$PY "$H" get "$ROOT" configmap-conf >"$TMP/tickcast.conf"
mapfile -t ARGS < <($PY "$H" get "$ROOT" statefulset-args)
ARGS=("${ARGS[@]//\/etc\/tickcast\/tickcast.conf/$TMP/tickcast.conf}")
ARGS=("${ARGS[@]//\$(POD_NAME)/tickcast-0}")
tc_broker_start --topics ticks:4,predictions:4,tickcast.dlq:2,tickcast.stats:1,tickcast.state:4
# Command-line flags beat the file: the test's broker, model, state file and a free port.
tc_bg "$TC" "${ARGS[@]}" --brokers "$BROKERS" --model "$MODEL" --state "$TMP/k8s.db" \
  --http 127.0.0.1:0 --stats-interval 1000 -X consumer.session.timeout.ms=6000 2>"$TMP/run.log"
RUN_PID=$BG_PID
tc_wait_for 10 grep -q "http on" "$TMP/run.log" || tc_fail "no http line in the log"
PORT=$(sed -n 's/.*http on .* (port \([0-9]*\)).*/\1/p' "$TMP/run.log" | head -n 1)
URL="http://127.0.0.1:$PORT"
tc_wait_for 20 curl -sf "$URL/readyz" -o /dev/null || tc_fail "/readyz not 200 within 20 s"
while read -r path port; do
  tc_eq "k8s probe $path (port $port in the manifest)" \
    "$(curl -s -o /dev/null -w '%{http_code}' "$URL$path")" 200
done < <($PY "$H" get "$ROOT" probes)
mapfile -t HC < <($PY "$H" get "$ROOT" healthcheck)
"${HC[@]//:9464/:$PORT}" || tc_fail "the Dockerfile's HEALTHCHECK (${HC[*]}) fails against the daemon"
if "${HC[@]//:9464/:1}" 2>/dev/null; then tc_fail "the HEALTHCHECK passes with nothing listening"; fi
echo "ok: the Dockerfile's HEALTHCHECK passes against the daemon and fails without it"

# Ticks: the compose file's feed command (the bundled sample), synthetic ticks with malformed
# messages among them (tests/e2e_run.py), and one message whose key is not UTF-8.
mapfile -t FEED < <($PY "$H" get "$ROOT" compose-cmd feed --brokers="$BROKERS")
(cd "$ROOT" && "$TC" "${FEED[@]}") 2>"$TMP/feed.log" ||
  tc_fail "compose's feed command failed: $(tail -n 3 "$TMP/feed.log")"
$PY "$ROOT/tests/e2e_run.py" publish-b "$BROKERS" ticks "$TMP/b.csv" "$TMP/dlq_expected.json"
$PY "$H" publish-extra "$BROKERS" ticks "$TMP/dlq_expected.json"
"$TC" replay --model "$MODEL" --input "$ROOT/data/sample/fx_daily_2021_2025.csv" \
  --output "$TMP/ra.csv" 2>/dev/null
"$TC" replay --model "$MODEL" --input "$TMP/b.csv" --output "$TMP/rb.csv" 2>/dev/null
NPRED=$(($(wc -l <"$TMP/ra.csv") + $(wc -l <"$TMP/rb.csv") - 2))
NDLQ=$($PY -c "import json,sys; print(len(json.load(open(sys.argv[1]))))" "$TMP/dlq_expected.json")
$PY "$ROOT/tests/e2e_run.py" collect "$BROKERS" predictions "$NPRED" 60 "$TMP/predictions.jsonl"
$PY "$ROOT/tests/e2e_run.py" collect "$BROKERS" tickcast.dlq "$NDLQ" 20 "$TMP/dlq.jsonl"
tc_eq "predictions read back" "$(wc -l <"$TMP/predictions.jsonl")" "$NPRED"
tc_eq "dead letters read back" "$(wc -l <"$TMP/dlq.jsonl")" "$NDLQ"
# Metrics that appear only once known: the lag (librdkafka statistics) and the checkpoint age.
has_late_metrics() {
  curl -s "$URL/metrics" >"$TMP/metrics.txt" &&
    grep -q '^tickcast_partition_lag_messages{' "$TMP/metrics.txt" &&
    grep -q '^tickcast_checkpoint_age_seconds ' "$TMP/metrics.txt"
}
tc_wait_for 15 has_late_metrics || tc_fail "/metrics has no partition lag or checkpoint age after 15 s"
sleep 1.2 # one more stats message after all that
$PY "$ROOT/tests/e2e_run.py" collect "$BROKERS" tickcast.stats 3 5 "$TMP/stats.jsonl"
$PY "$H" validate "$ROOT" prediction "$TMP/predictions.jsonl"
$PY "$H" validate "$ROOT" stats "$TMP/stats.jsonl" "$(sed -n "s/^group *= *//p" "$TMP/tickcast.conf")"
$PY "$H" validate "$ROOT" dead-letter "$TMP/dlq.jsonl" "$TMP/dlq_expected.json"
$PY "$H" metrics "$ROOT" "$TMP/metrics.txt"
# Idle for a while, the checkpoint age stays far below TickcastCheckpointStale's 60 s.
sleep 3
age=$(curl -s "$URL/metrics" | sed -n 's/^tickcast_checkpoint_age_seconds //p')
awk -v a="$age" 'BEGIN { exit !(a != "" && a < 5) }' || tc_fail "checkpoint age $age s on an idle daemon"
echo "ok: idle, the checkpoint age is $age s"
tc_stop "$RUN_PID" 10
tc_eq "exit status after SIGTERM" "$STOP_RC" 0

# ---- The compose members' command line and the unit's ExecStart with deploy/tickcast.conf:
# their flags and settings are accepted; each starts, serves /healthz and stops with status 0.
start_stop() { # name, command...
  local name=$1; shift
  tc_bg "$@" 2>"$TMP/$name.log"
  local pid=$BG_PID
  tc_wait_for 10 grep -q "http on" "$TMP/$name.log" ||
    tc_fail "$name did not start: $(tail -n 3 "$TMP/$name.log")"
  local port; port=$(sed -n 's/.*http on .* (port \([0-9]*\)).*/\1/p' "$TMP/$name.log" | head -n 1)
  tc_eq "$name /healthz" "$(curl -s "http://127.0.0.1:$port/healthz")" ok
  tc_stop "$pid" 10
  tc_eq "$name exit status after SIGTERM" "$STOP_RC" 0
}
mapfile -t MEMBER < <($PY "$H" get "$ROOT" compose-cmd tickcast-1 --brokers="$BROKERS" \
  --http=127.0.0.1:0 --state="$TMP/member.db" --model="$MODEL" --group=deploy-compose)
start_stop compose-member "$TC" "${MEMBER[@]}"
mapfile -t UNIT < <($PY "$H" get "$ROOT" unit-exec)
UNIT=("${UNIT[@]//\/etc\/tickcast\/tickcast.conf/$D/tickcast.conf}")
start_stop systemd-exec "$TC" "${UNIT[@]:1}" --brokers "$BROKERS" --model "$MODEL" \
  --state "$TMP/unit.db" --http 127.0.0.1:0 --group deploy-unit
# The template's ExecStart, two instances named by free ports, in one group on the 4-partition
# input: both start, each serves its own port, the partitions are split between them (2 + 2), and
# each keeps its own state file; both stop with status 0.
mapfile -t TPL < <($PY "$H" get "$ROOT" unit-exec "tickcast@.service" "$S/etc/systemd/system")
TPL=("${TPL[@]//\/etc\/tickcast\/tickcast.conf/$D/tickcast.conf}")
TPL=("${TPL[@]//\/var\/lib\/tickcast/$TMP}")
PIDS=()
for inst in $($PY -c 'import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])'); do
  M=("${TPL[@]:1}")
  tc_bg "$TC" "${M[@]//%i/$inst}" --brokers "$BROKERS" --model "$MODEL" --group deploy-template \
    -X consumer.session.timeout.ms=6000 2>"$TMP/member-$inst.log"
  PIDS+=("$BG_PID:$inst")
done
two_assigned() {
  local pi
  for pi in "${PIDS[@]}"; do
    [ "$(curl -s "http://127.0.0.1:${pi#*:}/metrics" |
      sed -n 's/^tickcast_partitions_assigned //p')" = 2 ] || return 1
  done
}
tc_wait_for 30 two_assigned || tc_fail "the template's two members did not split 4 partitions 2 + 2: \
$(for pi in "${PIDS[@]}"; do tail -n 2 "$TMP/member-${pi#*:}.log"; done)"
for pi in "${PIDS[@]}"; do
  [ -f "$TMP/member-${pi#*:}.db" ] || tc_fail "member ${pi#*:} has no state file member-${pi#*:}.db"
  tc_stop "${pi%%:*}" 15
  tc_eq "template member ${pi#*:} exit status after SIGTERM" "$STOP_RC" 0
done
echo "ok: two members from tickcast@.service split the partitions 2 + 2, each on its own port and state file"
echo "PASS e2e_deploy"
