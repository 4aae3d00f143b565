#!/usr/bin/env bash
# e2e_group_survive.sh: a consumer group of daemons that loses any member (SIGKILL, a new member
# with no state file, shrinking to one and growing back) while ticks stream in and retention drops
# the old input, predicts like one uninterrupted instance: every tick predicted, repeats equal,
# every value equal to `tickcast replay` of the same ticks (tests/e2e_group.py has the scenario).
# Eager protocol (range), with the changelog created up front (12 partitions, as the input).
# tests/e2e_group_survive_coop.sh runs it with the cooperative protocol.
. "$(dirname "$0")/lib.sh"
STRATEGY=${STRATEGY:-range}
$PY "$ROOT/tests/e2e_run.py" model "$TMP/m.safetensors" 1 8 9
TOPICS=ticks:12,predictions:12,tickcast.dlq:4,tickcast.stats:1
[ "$STRATEGY" = range ] && TOPICS=$TOPICS,g.state:12
tc_broker_start --topics "$TOPICS"
$PY "$ROOT/tests/e2e_group.py" run "$BROKERS" "$STRATEGY" "$TC" "$TMP"
echo "PASS e2e_group_survive ($STRATEGY)"
