#!/usr/bin/env bash
# gen_examples.sh [--check]: runs the train/eval/inspect examples of README.md and docs/TRAINING.md
# and puts their commands and output between the markers
#   <!-- gen_examples NAME -->
#   ...
#   <!-- /gen_examples -->
# so the documents show what the commands print, never a hand-edited copy. Without arguments it
# rewrites the documents; with --check it writes nothing and exits 1 with a diff when a document
# differs from what the commands print now (tests/e2e_docs.sh runs that in `make test`).
# The commands run in a scratch directory holding links to ./tickcast and data/, so they read as
# typed at the repository root. Inputs: the bundled FX sample and an AR(1) file made here (Python's
# seeded random module, the same on every machine). Training is bit-reproducible for one seed on
# one machine (one BLAS thread); another CPU may pick other OpenBLAS kernels and print other digits,
# in which case --check says so and `docs/gen_examples.sh` brings the documents up to date.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
check=0
[ "${1:-}" = "--check" ] && check=1
export OPENBLAS_NUM_THREADS=1 LC_ALL=C
W=$(mktemp -d "${TMPDIR:-/tmp}/tickcast-docs.XXXXXX")
trap 'rm -rf "$W"' EXIT
ln -s "${TICKCAST:-$ROOT/tickcast}" "$W/tickcast"
ln -s "$ROOT/data" "$W/data"
cd "$W"

# ar.csv: three instruments of r[t+1] = -0.3 r[t] + noise, 4,000 ticks each, 1 to 3 s apart, with
# a bid and ask 0.1% wide on most ticks.
/usr/bin/python3 - <<'PYEOF'
import math, random
rnd = random.Random(7)
st = {s: [0.0, p] for s, p in (("AAA", 50.0), ("BBB", 80.0), ("CCC", 20.0))}
ts = 1735689600000000000
with open("ar.csv", "w") as f:
    f.write("sym,ts,px,qty,bid,ask\n")
    for i in range(12000):
        s = "ABC"[i % 3] * 3
        r = -0.3 * st[s][0] + rnd.gauss(0, 0.002)
        st[s] = [r, st[s][1] * math.exp(r)]
        px = st[s][1]
        ts += rnd.randrange(1, 3) * 10**9
        q = f"{px * 0.9995:.9g},{px * 1.0005:.9g}" if rnd.random() < 0.8 else ","
        f.write(f"{s},{ts},{px:.10g},{rnd.randrange(1, 100)},{q}\n")
PYEOF

# Runs a command line shown as "$ LINE", then its output (stdout; stderr only with 2>&1 in LINE),
# with the timings train prints (seconds, tick-steps/s) shown as "..": they differ run to run.
show() {
  echo "\$ $1"
  eval "$1" | sed -E 's/[0-9]+\.[0-9] s, [0-9]+ tick-steps\/s/.. s, .. tick-steps\/s/;
                     s/  [0-9]+ tick-steps\/s/  .. tick-steps\/s/'
}

block_readme() {
  echo '```console'
  show "./tickcast train --input data/sample/fx_daily_2021_2025.csv --output fx.safetensors --test-frac 0.2 --quiet"
  show "./tickcast eval --model fx.safetensors --input data/sample/fx_daily_2021_2025.csv --test --plot fx.svg"
  echo '```'
}

block_train() {
  echo '```console'
  show "./tickcast train --input ar.csv --output ar.safetensors --test-frac 0.2 2>&1 | tail -n 5"
  echo '```'
}

block_eval() {
  echo '```console'
  show "./tickcast eval --model ar.safetensors --input ar.csv --test --quiet"
  show "./tickcast eval --model ar.safetensors --input ar.csv --quiet 2>&1 >/dev/null"
  echo '```'
}

block_json() {
  echo '```console'
  show "./tickcast eval --model ar.safetensors --input ar.csv --test --sym AAA --json --quiet | python3 -m json.tool --indent 1"
  echo '```'
}

block_inspect() {
  echo '```console'
  show "./tickcast inspect --model ar.safetensors"
  echo '```'
}

block_fx() {
  echo '```console'
  show "./tickcast train --input data/sample/fx_daily_2021_2025.csv --output fx.safetensors --test-frac 0.2 2>&1 | tail -n 4"
  echo '```'
}

# The blocks each document holds, in the order the commands must run (later blocks use earlier
# models).
declare -A DOC=([readme]=README.md [fx]=docs/TRAINING.md [train]=docs/TRAINING.md
  [eval]=docs/TRAINING.md [json]=docs/TRAINING.md [inspect]=docs/TRAINING.md)
ORDER="readme fx train eval json inspect"
for b in $ORDER; do
  "block_$b" >"$W/$b.out" 2>"$W/$b.err" || { cat "$W/$b.err" >&2; echo "gen_examples: block $b failed" >&2; exit 1; }
done

# Replaces the body of every marked block of $1 by its output; the result on stdout.
fill() {
  awk -v dir="$W" '
    /^<!-- gen_examples [a-z]+ -->$/ { print; name = $3; body = 1
      f = dir "/" name ".out"
      if ((getline line < f) <= 0) { print "gen_examples: no block " name > "/dev/stderr"; exit 1 }
      print line; while ((getline line < f) > 0) print line; close(f); next }
    /^<!-- \/gen_examples -->$/ { body = 0 }
    !body { print }' "$1"
}

status=0
for doc in README.md docs/TRAINING.md; do
  fill "$ROOT/$doc" >"$W/new.md"
  if [ $check -eq 1 ]; then
    if ! diff -u "$ROOT/$doc" "$W/new.md" >"$W/diff"; then
      echo "gen_examples: $doc differs from what its commands print (run docs/gen_examples.sh):"
      cat "$W/diff"
      status=1
    fi
  elif ! cmp -s "$ROOT/$doc" "$W/new.md"; then
    cp "$W/new.md" "$ROOT/$doc"
    echo "gen_examples: updated $doc"
  fi
done
for b in $ORDER; do
  grep -q "^<!-- gen_examples $b -->$" "$ROOT/${DOC[$b]}" ||
    { echo "gen_examples: ${DOC[$b]} has no block $b" >&2; status=1; }
done
exit $status
