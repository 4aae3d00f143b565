# shellcheck shell=bash
# results_common.sh: what docs/gen_results.sh and docs/gen_results_gauss.sh share, sourced by
# both with NAME set to the script's name: the paths, a scratch directory (removed at exit) with
# data/ linked in so that plot titles name data/real/..., the check that `make data` has run, and
# the per-instrument tables of seed 1 (written by each script to $W/<set>_table.txt).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck disable=SC2034 # TC is for the scripts that source this
TC=${TICKCAST:-$ROOT/tickcast}
export OPENBLAS_NUM_THREADS=1 LC_ALL=C
W=$(mktemp -d "${TMPDIR:-/tmp}/tickcast-results.XXXXXX")
trap 'rm -rf "$W"' EXIT
ln -s "$ROOT/data" "$W/data"
for f in fx_daily sp500; do
  [ -f "$ROOT/data/real/$f.csv" ] || { echo "$NAME: run make data first" >&2; exit 1; }
done

# Prints each real set's per-instrument table of seed 1 as a fenced block under a heading.
instrument_tables() {
  for f in fx_daily sp500; do
    echo "### $f, seed 1, test part per instrument"
    echo
    echo '```'
    cat "$W/${f}_table.txt"
    echo '```'
    echo
  done
}
