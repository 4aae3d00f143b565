#!/usr/bin/env bash
# e2e_docs.sh: the example outputs in README.md and docs/TRAINING.md are what their commands print
# now: docs/gen_examples.sh --check reruns every example (train, eval, inspect on the bundled FX
# sample and an AR(1) file) and fails with a diff when a document differs. After a change that
# moves the output, `docs/gen_examples.sh` rewrites the documents.
. "$(dirname "$0")/lib.sh"
TICKCAST="$TC" bash "$ROOT/docs/gen_examples.sh" --check || tc_fail "the documents' examples are stale"
# The check itself must catch a change: a copy of the repository's documents with one digit altered.
mkdir -p "$TMP/repo/docs"
cp "$ROOT/README.md" "$TMP/repo/"
cp "$ROOT/docs/gen_examples.sh" "$ROOT/docs/TRAINING.md" "$TMP/repo/docs/"
ln -s "$ROOT/data" "$TMP/repo/data"
sed -i '0,/^ALL  /s/^ALL  \(.*\)2017/ALL  \12018/' "$TMP/repo/README.md"
cmp -s "$ROOT/README.md" "$TMP/repo/README.md" && tc_fail "the altered copy is not altered"
if TICKCAST="$TC" bash "$TMP/repo/docs/gen_examples.sh" --check >"$TMP/check.out" 2>&1; then
  tc_fail "--check passed an altered README"
fi
grep -q "^gen_examples: README.md differs" "$TMP/check.out" || { cat "$TMP/check.out"; tc_fail "no diff"; }
echo "PASS e2e_docs"
