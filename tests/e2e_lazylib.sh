#!/usr/bin/env bash
# Libraries loaded on the first call (nn/base/lazylib.h, nn/base/lazystubs.sh).
#
# 1. The stubs on a library of this test's own: a program that calls it through stubs prints the
#    same as the program linked with it, for each function as the first call (so that each
#    signature goes through lazylib_bind once: eight integer arguments and two on the stack,
#    floating-point ones, a variadic call and the %al it sets, a struct returned in memory; the
#    library's constructor leaves garbage in every register the stub must keep), and with 8
#    threads making their first calls at once. It does not name the library (readelf NEEDED), and
#    without the library it prints one line and exits 1. A backtrace taken inside the library's
#    load (its constructor, under the stub's bind routine) reaches main: the stubs carry call
#    frame information.
# 2. tickcast: it does not name librdkafka, OpenSSL's libraries, SQLite or libuv; with any of the
#    three hidden (a private mount namespace), `replay` of a file works, and `run` (and `feed`,
#    `broker` and `replay --brokers`, without librdkafka) stops after its flag check with one line
#    and exit status 1, before it creates its state file; a usage error is still status 2.
. "$(dirname "$0")/lib.sh"
CC=${CC:-cc}

cat >"$TMP/lzt.h" <<'EOF'
typedef struct lzt_big { long v[5]; } lzt_big;
long lzt_ints(long a, long b, long c, long d, long e, long f, long g, long h);
double lzt_floats(int n, double x0, double x1, double x2, double x3, double x4, double x5,
                  double x6, double x7, double x8, long tail);
double lzt_vsum(int n, ...);
lzt_big lzt_struct(long seed);
int lzt_al(int n, ...); /* the %al it was called with: the number of vector registers used */
EOF
cat >"$TMP/lzt.c" <<'EOF'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <execinfo.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lzt.h"
long lzt_ints(long a, long b, long c, long d, long e, long f, long g, long h) {
  return a + 2 * b + 3 * c + 4 * d + 5 * e + 6 * f + 7 * g + 8 * h;
}
double lzt_floats(int n, double x0, double x1, double x2, double x3, double x4, double x5,
                  double x6, double x7, double x8, long tail) {
  return n + x0 + 2 * x1 + 3 * x2 + 4 * x3 + 5 * x4 + 6 * x5 + 7 * x6 + 8 * x7 + 9 * x8 + tail;
}
double lzt_vsum(int n, ...) {
  va_list ap;
  va_start(ap, n);
  double s = 0;
  for (int i = 0; i < n; i++)
    s = s * 10 + va_arg(ap, double);
  va_end(ap);
  return s;
}
lzt_big lzt_struct(long seed) {
  lzt_big b;
  for (int i = 0; i < 5; i++)
    b.v[i] = seed * (i + 1);
  return b;
}
__asm__(".text\n.globl lzt_al\n.type lzt_al, @function\nlzt_al:\n"
        "  movzbl %al, %eax\n  ret\n.size lzt_al, .-lzt_al\n");
/* Runs inside the stub's dlopen: leaves garbage in every register a stub must keep, so that one
 * it does not restore shows (what dlopen itself leaves there varies). */
__attribute__((constructor)) static void clobber(void) {
  __asm__ volatile("pcmpeqd %%xmm0, %%xmm0\n"
                   "movdqa %%xmm0, %%xmm1\n movdqa %%xmm0, %%xmm2\n movdqa %%xmm0, %%xmm3\n"
                   "movdqa %%xmm0, %%xmm4\n movdqa %%xmm0, %%xmm5\n movdqa %%xmm0, %%xmm6\n"
                   "movdqa %%xmm0, %%xmm7\n"
                   "movq $-1, %%rdi\n movq $-1, %%rsi\n movq $-1, %%rdx\n movq $-1, %%rcx\n"
                   "movq $-1, %%r8\n movq $-1, %%r9\n movq $-1, %%rax\n"
                   ::: "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "rdi",
                   "rsi", "rdx", "rcx", "r8", "r9", "rax", "memory");
}
/* With LZT_UNWIND set: whether a backtrace from inside the stub's dlopen (libgcc's unwinder, by
 * the call frame information) reaches main through lazylib_bind and the stub's bind routine. */
__attribute__((constructor)) static void unwind(void) {
  if (!getenv("LZT_UNWIND"))
    return;
  void *ip[256];
  int n = backtrace(ip, 256), found = 0;
  for (int i = 0; i < n; i++) {
    Dl_info di;
    if (dladdr(ip[i], &di) && di.dli_sname && !strcmp(di.dli_sname, "main"))
      found = 1;
  }
  fprintf(stderr, "unwind from the first call's load: %s\n", found ? "reaches main" : "stops");
}
EOF
cat >"$TMP/main.c" <<'EOF'
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include "lzt.h"
static void one(const char *what) {
  if (!strcmp(what, "ints"))
    printf("ints %ld\n", lzt_ints(1, -2, 3, -4, 5, -6, 70, -80));
  else if (!strcmp(what, "floats"))
    printf("floats %.17g\n", lzt_floats(3, .5, 1.25, -2, 3.5, 1e-3, 7, -8.25, 9, 10.5, 1000));
  else if (!strcmp(what, "vsum"))
    printf("vsum %.17g\n", lzt_vsum(4, 1.0, 2.5, 3.0, 4.25));
  else if (!strcmp(what, "al"))
    printf("al %d\n", lzt_al(0, 1.0, 2.0, 3.0));
  else if (!strcmp(what, "struct")) {
    lzt_big b = lzt_struct(7);
    printf("struct %ld %ld %ld %ld %ld\n", b.v[0], b.v[1], b.v[2], b.v[3], b.v[4]);
  }
}
static void *thread(void *arg) {
  long i = (long)arg;
  return (void *)(lzt_ints(i, i, i, i, i, i, i, i) == 36 * i ? 0 : 1L);
}
int main(int argc, char **argv) {
  if (argc == 2 && !strcmp(argv[1], "threads")) {
    pthread_t t[8];
    for (long i = 0; i < 8; i++)
      pthread_create(&t[i], NULL, thread, (void *)(i + 1));
    long bad = 0;
    for (int i = 0; i < 8; i++) {
      void *r;
      pthread_join(t[i], &r);
      bad += (long)r;
    }
    printf("threads %ld wrong\n", bad);
    return 0;
  }
  for (int i = 1; i < argc; i++)
    one(argv[i]);
  return 0;
}
EOF
cd "$TMP"
$CC -O2 -fPIC -shared -Wl,-soname,liblzt.so.1 -o liblzt.so.1 lzt.c
ln -s liblzt.so.1 liblzt.so
$CC -O2 -c -o main.o main.c
$CC -o direct main.o -L. -llzt -lpthread
LIBRARY_PATH=$TMP CC=$CC sh "$ROOT/nn/base/lazystubs.sh" lzt liblzt.so.1 lzt-test '^lzt_' main.o \
  >stubs.c
$CC -O2 -I"$ROOT" -c -o stubs.o stubs.c
$CC -O2 -I"$ROOT" -c -o lazylib.o "$ROOT/nn/base/lazylib.c"
$CC -rdynamic -o lazy main.o stubs.o lazylib.o -lpthread
cd - >/dev/null
! readelf -dW "$TMP/lazy" | grep -q 'NEEDED.*liblzt' || tc_fail "the stubbed program links liblzt"
for first in ints floats vsum al struct; do
  rest=$(printf '%s\n' ints floats vsum al struct | grep -vx "$first" | tr '\n' ' ')
  # shellcheck disable=SC2086 # the other functions, one argument each
  want=$(LD_LIBRARY_PATH=$TMP "$TMP/direct" "$first" $rest)
  # shellcheck disable=SC2086
  got=$(LD_LIBRARY_PATH=$TMP "$TMP/lazy" "$first" $rest)
  tc_eq "calls through the stubs, $first first" "$got" "$want"
done
tc_eq "a backtrace from inside the first call's library load" \
  "$(LZT_UNWIND=1 LD_LIBRARY_PATH=$TMP "$TMP/lazy" ints 2>&1 >/dev/null)" \
  "unwind from the first call's load: reaches main"
tc_eq "8 threads calling first at once" "$(LD_LIBRARY_PATH=$TMP "$TMP/lazy" threads)" \
  "threads 0 wrong"
set +e
"$TMP/lazy" ints >"$TMP/out.txt" 2>"$TMP/err.txt"
rc=$?
set -e
tc_one_error "without the library" "$rc" "$TMP/err.txt" \
  "^tickcast: cannot load liblzt\.so\.1 \(install Debian's lzt-test\): "
[ ! -s "$TMP/out.txt" ] || tc_fail "output without the library: $(cat "$TMP/out.txt")"

# tickcast itself.
needed=$(readelf -dW "$TC" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p' | tr '\n' ' ')
for lib in librdkafka libssl libcrypto libsqlite3 libuv; do
  case " $needed" in *" $lib."*) tc_fail "$TC links $lib: $needed" ;; esac
done
echo "ok: tickcast links $needed"
M=$ROOT/data/model/fx.safetensors
[ -f "$M" ] || tc_fail "no bundled model $M"
printf 'sym,ts,px\nA,1700000000000000000,10\nA,1700000001000000000,11\n' >"$TMP/two.csv"
if unshare -m true 2>/dev/null; then
  for pair in librdkafka.so.1:rdkafka libsqlite3.so.0:sqlite3 libuv.so.1:libuv; do
    so=${pair%%:*}
    lib=$(readlink -f "$(pkg-config --variable=libdir "${pair#*:}")/$so")
    [ -f "$lib" ] || tc_fail "$so not found in pkg-config's libdir: $lib"
    hide() { unshare -m sh -c 'mount --bind /dev/null "$1" && shift && exec "$@"' sh "$lib" "$@"; }
    rm -f "$TMP/two.out"
    hide "$TC" replay --model "$M" --input "$TMP/two.csv" --output "$TMP/two.out" --quiet ||
      tc_fail "replay without $so failed"
    tc_eq "prediction rows of a replay without $so" "$(($(wc -l <"$TMP/two.out") - 1))" 2
    cmds="run"
    [ "$so" != librdkafka.so.1 ] || cmds="feed run broker replay"
    for cmd in $cmds; do
      set +e
      case $cmd in
        feed) hide "$TC" feed --brokers 127.0.0.1:1 --topic ticks --input "$TMP/two.csv" ;;
        run) hide "$TC" run --model "$M" --brokers 127.0.0.1:1 --state "$TMP/nolib.db" ;;
        broker) hide "$TC" broker --port 0 ;;
        replay) hide "$TC" replay --model "$M" --brokers 127.0.0.1:1 --topic ticks ;;
      esac 2>"$TMP/err.txt"
      rc=$?
      set -e
      tc_one_error "$cmd without $so" "$rc" "$TMP/err.txt" \
        "^tickcast $cmd: cannot load $so \(install Debian's [a-z0-9-]+\): "
    done
    # A usage error is still one (status 2), library or not.
    set +e
    hide "$TC" run --brokers 127.0.0.1:1 --state "$TMP/nolib.db" 2>"$TMP/err.txt"
    rc=$?
    set -e
    tc_eq "run without --model and $so: exit status" "$rc" 2
    grep -q "model" "$TMP/err.txt" || tc_fail "run without --model: $(cat "$TMP/err.txt")"
    [ ! -e "$TMP/nolib.db" ] || tc_fail "run created a state file before its flag check failed"
  done
else
  echo "skip: no private mount namespace here (unshare -m), so librdkafka cannot be hidden"
fi
