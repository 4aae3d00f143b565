#!/usr/bin/env bash
# e2e_docs.sh: the example outputs in README.md and docs/TRAINING.md are what their commands print
# now: docs/gen_examples.sh --check reruns every example (train, eval, inspect on the bundled FX
# sample and an AR(1) file) and fails with a diff when a document differs. After a change that
# moves the output, `docs/gen_examples.sh` rewrites the documents. Also: every repository path
# docs/ARCHITECTURE.md names exists, and every FILE:FUNCTION it names is a word of that file.
. "$(dirname "$0")/lib.sh"

# Checks the paths a document names under the tree's folders (nn/lstm.c, daemon/loop/, a glob
# such as tests/e2e_*.sh or a placeholder such as tests/test_NAME.c: something must match it) and,
# for FILE:FUNCTION, that FUNCTION is a word of FILE.
# Prints one line per missing one; returns 1 if there is any.
doc_paths_check() { # dir doc
  local dir=$1 doc=$2 tok path name bad=0
  local re='(?<![\w/.-])(nn|ingest|store|daemon|tests|docs|deploy|bench|data)/[\w./*\[\]-]*(:\w+)?'
  while read -r tok; do
    path=${tok%%:*}
    path=$(sed -E 's/\.+$//; s/NAME/*/g' <<<"$path") # a full stop; NAME is a placeholder
    name=
    if [[ $tok == *:* ]]; then name=${tok#*:}; fi
    # shellcheck disable=SC2086 # the path may be a glob
    if ! compgen -G "$dir/$path" >/dev/null; then
      echo "$doc: names $path, which does not exist"
      bad=1
    elif [ -n "$name" ] && ! grep -qw -- "$name" "$dir"/$path; then
      echo "$doc: names $path:$name, but $path has no $name"
      bad=1
    fi
  done < <(grep -oP "$re" "$doc" | sort -u)
  return $bad
}
doc_paths_check "$ROOT" "$ROOT/docs/ARCHITECTURE.md" ||
  tc_fail "docs/ARCHITECTURE.md names what is not there"
# The check must catch a renamed file and a renamed function.
sed 's#daemon/loop/drain.c:drain_process_chunk#daemon/loop/drains.c:drain_process_chunk#' \
  "$ROOT/docs/ARCHITECTURE.md" >"$TMP/arch1.md"
sed 's#daemon/loop/drain.c:drain_process_chunk#daemon/loop/drain.c:drain_process_chunks#' \
  "$ROOT/docs/ARCHITECTURE.md" >"$TMP/arch2.md"
for k in 1 2; do
  cmp -s "$ROOT/docs/ARCHITECTURE.md" "$TMP/arch$k.md" && tc_fail "altered copy $k is not altered"
  doc_paths_check "$ROOT" "$TMP/arch$k.md" >"$TMP/paths$k.out" &&
    tc_fail "the path check passed altered copy $k"
done
grep -q "names daemon/loop/drains.c, which does not exist" "$TMP/paths1.out" ||
  { cat "$TMP/paths1.out"; tc_fail "no missing file reported"; }
grep -q "names daemon/loop/drain.c:drain_process_chunks, but" "$TMP/paths2.out" ||
  { cat "$TMP/paths2.out"; tc_fail "no missing function reported"; }

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
