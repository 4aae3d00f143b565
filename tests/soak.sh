#!/usr/bin/env bash
# soak.sh: `make soak`: tests/soak.py against ./tickcast in a scratch directory (kept, with the
# daemons' logs and the RSS and stall series, when the soak fails or SOAK_KEEP is set). Not part of
# `make test`: it runs for SOAK_SECONDS (default 300) plus a minute. See tests/soak.py.
set -euo pipefail
cd "$(dirname "$0")/.."
TC=${TICKCAST:-$PWD/tickcast}
W=$(mktemp -d "${TMPDIR:-/tmp}/tickcast-soak.XXXXXX")
export OPENBLAS_NUM_THREADS=1
rc=0
/usr/bin/python3 tests/soak.py "$TC" "$W" || rc=$?
if [ "$rc" -ne 0 ] || [ -n "${SOAK_KEEP:-}" ]; then
  echo "soak: logs and series kept in $W"
else
  rm -rf "$W"
fi
exit "$rc"
