#!/usr/bin/env bash
# check_layers.sh (make check-layers, run by make test): every #include in nn/, ingest/, store/
# and daemon/ stays inside what its layer may use (docs/ARCHITECTURE.md explains the layers).
# Prints one line per violation and exits 1 if there is any, e.g.
#   daemon/pipeline/engine.c:12: includes <uv.h>: daemon/pipeline/ must not include uv.h (see ...)
# tests/ and bench/ may include anything and are not checked. Needs only bash and awk.
set -euo pipefail
cd "$(dirname "$0")/.."

# The rules. A file takes the first rule whose layer its path starts with (so a sub-folder comes
# before its parent); a file under no rule is a violation, so a new folder gets a rule here.
#   project: the tree's folders whose files it may include ("*": any). Project includes are
#            rooted at the repository ("nn/lstm.h"); a path under nn/ ingest/ store/ daemon/ is one.
#   refused: headers from outside the tree it must not include ("openssl/": that folder). Any
#            other outside header is allowed: libc, POSIX, and cblas.h or immintrin.h in nn/.
LIBS="jansson.h openssl/ nettle/ uv.h librdkafka/ sqlite3.h microhttpd.h xxhash.h cblas.h"
RULES="
# layer            | project                                                 | refused
nn/base/           | nn/base/                                                | $LIBS
nn/safetensors/    | nn/                                                     | openssl/ uv.h librdkafka/ sqlite3.h microhttpd.h
nn/                | nn/                                                     | jansson.h openssl/ nettle/ uv.h librdkafka/ sqlite3.h microhttpd.h
ingest/            | nn/ ingest/                                             | uv.h librdkafka/ sqlite3.h microhttpd.h
store/             | nn/base/ store/                                         | uv.h librdkafka/ microhttpd.h jansson.h
daemon/pipeline/   | nn/ ingest/ store/ daemon/pipeline/                     | uv.h librdkafka/ microhttpd.h
daemon/kafka/      | nn/ ingest/ store/ daemon/pipeline/ daemon/kafka/       | uv.h microhttpd.h
daemon/loop/       | nn/ ingest/ store/ daemon/pipeline/ daemon/kafka/ daemon/loop/ |
daemon/cmd/        | *                                                       |
daemon/main.c      | *                                                       |
"

# Temporary allowances, "FILE INCLUDED-HEADER # why": includes that break a rule today and are
# being moved by work under way. An allowance that no longer matches an include fails the check,
# so each is deleted here when its move lands.
ALLOW="
"

# shellcheck disable=SC2046 # file names without blanks, well under the argument limit
awk -v rules="$RULES" -v allow="$ALLOW" '
function trim(s) { gsub(/^[ \t]+|[ \t]+$/, "", s); return s }
function starts(s, p) { return substr(s, 1, length(p)) == p }
function say(msg) { print FILENAME ":" FNR ": " msg " (see docs/ARCHITECTURE.md)"; bad++ }
BEGIN {
  n = split(rules, line, "\n")
  for (i = 1; i <= n; i++) {
    if (line[i] ~ /^[ \t]*(#|$)/) continue
    split(line[i], f, "|")
    nr++; layer[nr] = trim(f[1]); proj[nr] = trim(f[2]); refused[nr] = trim(f[3])
  }
  n = split(allow, line, "\n")
  for (i = 1; i <= n; i++) {
    sub(/#.*/, "", line[i])
    if (split(line[i], f, " ") == 2) { allowed[f[1] " " f[2]] = 0; nallow++ }
  }
}
FNR == 1 {
  r = 0
  for (i = 1; i <= nr && !r; i++) if (starts(FILENAME, layer[i])) r = i
  if (!r) say("no layer rule covers this file: add one to tests/check_layers.sh")
}
r && /^[ \t]*#[ \t]*include[ \t]*[<"]/ {
  match($0, /[<"]/); h = substr($0, RSTART + 1); sub(/[>"].*/, "", h)
  shown = substr($0, RSTART, 1) == "<" ? "<" h ">" : "\"" h "\""
  if ((FILENAME " " h) in allowed) { allowed[FILENAME " " h]++; next }
  if (h ~ /^(nn|ingest|store|daemon)\//) {
    if (proj[r] == "*") next
    k = split(proj[r], p, " "); ok = 0
    for (j = 1; j <= k; j++) if (starts(h, p[j])) ok = 1
    if (!ok) say("includes " shown ": " layer[r] " must not include " h " (it may include " proj[r] ")")
    next
  }
  k = split(refused[r], p, " ")
  for (j = 1; j <= k; j++)
    if (h == p[j] || (p[j] ~ /\/$/ && starts(h, p[j]))) say("includes " shown ": " layer[r] " must not include " p[j])
}
END {
  for (a in allowed)
    if (!allowed[a]) { print "tests/check_layers.sh: allowance \"" a "\" matches no include any more: delete it"; bad++ }
  exit (bad > 0)
}' $(find nn ingest store daemon -name '*.[ch]' | LC_ALL=C sort)
