#!/usr/bin/env bash
# e2e_load_threads.sh: `eval` (and `train`, the same loader) reads its input on --threads threads
# and stops where one thread stops, saying the same: the report, every line on stderr and the
# exit status are those of --threads 1 for 2 and 3 threads when
# 1. the memory bound stops the load, with an integer ts that looks like microseconds after the
#    bound's line (its warning counts only the lines before the stop, so there is none);
# 2. reading the file fails midway (read(2) made to fail by a preloaded shim at a byte offset):
#    the lines before the failing read are all taken (a reject among them is printed) and the
#    error names the line after the last whole one;
# 3. reading fails in a file whose timestamps look like microseconds: the error is the read
#    error, not the unit's warning (which is printed before it).
. "$(dirname "$0")/lib.sh"
CC=${CC:-cc}
M=$ROOT/data/model/fx.safetensors
[ -f "$M" ] || tc_fail "no bundled model $M"

cat >"$TMP/shim.c" <<'EOF'
/* read(2) fails with EIO from byte FAIL_AFTER on of a file whose path contains FAIL_PATH. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
ssize_t read(int fd, void *buf, size_t n) {
  static ssize_t (*real)(int, void *, size_t);
  if (!real)
    real = (ssize_t(*)(int, void *, size_t))dlsym(RTLD_NEXT, "read");
  const char *path = getenv("FAIL_PATH"), *after = getenv("FAIL_AFTER");
  if (path && after) {
    char l[64], t[4096];
    snprintf(l, sizeof l, "/proc/self/fd/%d", fd);
    ssize_t k = readlink(l, t, sizeof t - 1);
    if (k > 0) {
      t[k] = 0;
      if (strstr(t, path)) {
        off_t off = lseek(fd, 0, SEEK_CUR), lim = atoll(after);
        if (off >= lim) {
          errno = EIO;
          return -1;
        }
        if (off + (off_t)n > lim)
          n = (size_t)(lim - off);
      }
    }
  }
  return real(fd, buf, n);
}
EOF
$CC -O2 -fPIC -shared -o "$TMP/shim.so" "$TMP/shim.c" -ldl

# Runs eval on 1, 2 and 3 threads (with the environment given first) and compares them.
same() { # name file env... -- eval args...
  local name=$1 f=$2
  shift 2
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  for n in 1 2 3; do
    set +e
    # (ASan wants its runtime first; a preloaded shim is second here on purpose)
    env "${envs[@]}" ASAN_OPTIONS="${ASAN_OPTIONS:-}:verify_asan_link_order=0" \
      "$TC" eval --model "$M" --input "$f" --json --threads "$n" "$@" >"$TMP/out.$n" 2>"$TMP/err.$n"
    echo $? >"$TMP/rc.$n"
    set -e
  done
  for n in 2 3; do
    cmp -s "$TMP/err.1" "$TMP/err.$n" ||
      tc_fail "$name: stderr of --threads $n differs from 1: $(diff "$TMP/err.1" "$TMP/err.$n" | head -6)"
    cmp -s "$TMP/out.1" "$TMP/out.$n" || tc_fail "$name: the report of --threads $n differs from 1"
    tc_eq "$name: exit status of --threads $n" "$(cat "$TMP/rc.$n")" "$(cat "$TMP/rc.1")"
  done
  echo "ok: $name: --threads 1, 2 and 3 say the same (status $(cat "$TMP/rc.1"))"
}

# 1. The bound at line 5244 of 6001; line 6001's ts looks like microseconds.
$PY - "$TMP/bound.csv" <<'EOF'
import sys
rows = ["A,%d,1.5" % (1600000000000000000 + i * 1000) for i in range(6000)]
rows[5999] = "B,1600000000000000,1.5"
open(sys.argv[1], "w").write("sym,ts,px\n" + "\n".join(rows) + "\n")
EOF
same "memory bound before a microsecond ts" "$TMP/bound.csv" -- --max-memory 1
tc_eq "memory bound: the error" "$(cat "$TMP/err.1")" \
  "tickcast eval: $TMP/bound.csv:5244: more than 5242 accepted ticks at 200 bytes a tick: past the memory bound of 1 MiB (--max-memory; default: half of this machine's memory); use a shorter range of the input, or raise --max-memory"

# 2. 20,000 lines with a bad px on line 9002; reading fails at byte 400,000 (in line 15386).
$PY - "$TMP/rerr.csv" <<'EOF'
import sys
rows = ["A,%d,%s" % (1600000000000000000 + i * 1000, "-1" if i == 9000 else "1.5")
        for i in range(20000)]
open(sys.argv[1], "w").write("sym,ts,px\n" + "\n".join(rows) + "\n")
EOF
same "a read error at byte 400000" "$TMP/rerr.csv" FAIL_PATH=rerr.csv FAIL_AFTER=400000 \
  LD_PRELOAD="$TMP/shim.so" --
grep -q "rerr.csv:9002: bad_px: " "$TMP/err.1" || tc_fail "read error: no reject before it: $(cat "$TMP/err.1")"
tc_eq "read error: the last line" "$(tail -n 1 "$TMP/err.1")" \
  "tickcast eval: $TMP/rerr.csv:15386: cannot read: Input/output error"
tc_eq "read error: exit status" "$(cat "$TMP/rc.1")" 2

# 3. Microsecond timestamps, reading fails at byte 100,000.
$PY - "$TMP/us.csv" <<'EOF'
import sys
rows = ["A,%d,1.5" % (1600000000000000 + i) for i in range(20000)]
open(sys.argv[1], "w").write("sym,ts,px\n" + "\n".join(rows) + "\n")
EOF
same "a read error in a file of microsecond timestamps" "$TMP/us.csv" FAIL_PATH=us.csv \
  FAIL_AFTER=100000 LD_PRELOAD="$TMP/shim.so" --
grep -q "warning: integer ts 1600000000000000 is read as nanoseconds" "$TMP/err.1" ||
  tc_fail "no unit warning: $(cat "$TMP/err.1")"
tail -n 1 "$TMP/err.1" | grep -qE "^tickcast eval: .*us\.csv:[0-9]+: cannot read: Input/output error$" ||
  tc_fail "the read error became: $(tail -n 1 "$TMP/err.1")"
echo "e2e_load_threads: all passed"
