# stagehand: build, test and run everything from here (see README.md).
#
#   make          every binary into build/
#   make deps     install the missing Debian packages (apt-get)
#   make test     deps, then a sanitizer build (ASan + UBSan) and every test
#   make run      deps, build, and start the development stack (Ctrl-C stops it);
#                 KAFKA=kafka runs it on a local Apache Kafka instead of the dev broker
#   make clean    remove build/
#
# BUILD selects the output directory and SANITIZE=1 the sanitizer flags;
# `make test` uses BUILD=build/san SANITIZE=1 so it never mixes objects with
# the normal build.

BUILD    ?= build
SANITIZE ?= 0
JOBS     ?= $(shell nproc 2>/dev/null || echo 2)
# make run's broker: devbroker (librdkafka's mock, starts at once) or kafka
# (Apache Kafka from tools/kafka/pom.xml, see tools/kafka/kafka.sh).
KAFKA    ?= devbroker

CC       ?= cc
CPPFLAGS += -Icommon -Iworkers -D_GNU_SOURCE -MMD -MP
CFLAGS   += -std=c11 -g -Wall -Wextra -Werror
LDLIBS   += -lrdkafka -lmicrohttpd -ljansson -lcurl -lssl -lcrypto -lpthread -lm

ifeq ($(SANITIZE),1)
CFLAGS  += -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
else
CFLAGS  += -O2
endif

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

# --- the common library -----------------------------------------------------
COMMON_SRC := $(wildcard common/*.c)
SCHEMA_SRC := $(wildcard schemas/*.json)
SCHEMA_GEN := $(BUILD)/gen/schemas_data.c
COMMON_OBJ := $(call obj,$(COMMON_SRC)) $(BUILD)/obj/gen/schemas_data.o
LIB        := $(BUILD)/libstagehand.a

# --- programs: one directory (or set of files) each ---------------------------
DEVBROKER_OBJ := $(call obj,$(wildcard tools/devbroker/*.c))
EMULATOR_OBJ  := $(call obj,$(wildcard tools/twilio-emulator/*.c))
LOADGEN_OBJ   := $(call obj,$(wildcard tools/loadgen/*.c))
REPLAY_OBJ    := $(call obj,$(wildcard tools/replay/*.c))
TOPICS_OBJ    := $(call obj,$(wildcard tools/topics/*.c))
# The ingress's modules (all but main.c) also form a library the tests link.
INGRESS_OBJ   := $(call obj,$(filter-out ingress/main.c,$(wildcard ingress/*.c)))
INGRESS_LIB   := $(BUILD)/libingress.a
# The worker runtime (all of workers/ but the roles' *_worker.c) is a library too.
WORKER_ROLES  := room stream sync
WORKER_OBJ    := $(call obj,$(filter-out %_worker.c,$(wildcard workers/*.c)))
WORKER_LIB    := $(BUILD)/libworkers.a
WORKERS       := $(patsubst %,$(BUILD)/stagehand-%-worker,$(WORKER_ROLES))
PROGRAMS      := $(BUILD)/stagehand-devbroker $(BUILD)/twilio-emulator $(BUILD)/stagehand-ingress $(WORKERS) \
                 $(BUILD)/stagehand-loadgen $(BUILD)/stagehand-replay $(BUILD)/stagehand-topics

# --- tests ---------------------------------------------------------------------
# tests/support: plain C for every test program, and the integration tests'
# fixture and helpers (cmocka), linked into those only.
TEST_FIXTURE_SRC  := tests/support/fixture.c tests/support/ingress_helpers.c tests/support/pipeline_helpers.c
TEST_FIXTURE_OBJ  := $(call obj,$(TEST_FIXTURE_SRC))
TEST_SUPPORT_OBJ  := $(call obj,$(filter-out $(TEST_FIXTURE_SRC),$(wildcard tests/support/*.c)))
UNIT_TESTS        := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(wildcard tests/unit/test_*.c))
INTEGRATION_TESTS := $(patsubst tests/integration/%.c,$(BUILD)/tests/integration/%,$(wildcard tests/integration/test_*.c))
TEST_HELPERS      := $(patsubst tests/helpers/%.c,$(BUILD)/tests/helpers/%,$(wildcard tests/helpers/*.c))
TESTS             := $(UNIT_TESTS) $(INTEGRATION_TESTS) $(TEST_HELPERS)

ALL_OBJ := $(COMMON_OBJ) $(DEVBROKER_OBJ) $(EMULATOR_OBJ) $(LOADGEN_OBJ) $(REPLAY_OBJ) $(TOPICS_OBJ) $(INGRESS_OBJ) $(BUILD)/obj/ingress/main.o \
           $(WORKER_OBJ) $(call obj,$(wildcard workers/*_worker.c)) \
           $(TEST_SUPPORT_OBJ) $(TEST_FIXTURE_OBJ) \
           $(call obj,$(wildcard tests/unit/*.c tests/integration/*.c tests/helpers/*.c))

.PHONY: all deps test test-cluster check tests run demo bench fuzz fuzz-build clean
# Keep the object files of tests (make would delete them as intermediates).
.SECONDARY:
.DEFAULT_GOAL := all

all: $(PROGRAMS)

deps:
	@sh tools/deps.sh

test: deps
	@sh tools/format-check
	@$(MAKE) --no-print-directory -j$(JOBS) BUILD=build/san SANITIZE=1 all tests
	@$(MAKE) --no-print-directory -j$(JOBS) fuzz-build
	@sh tests/fuzz/run.sh $(FUZZ_DIR) 3
	@STAGEHAND_REAL_KAFKA=1 sh tests/run-tests.sh build/san

# A broker killed under a join burst, on three Apache Kafka nodes
# (tests/integration/test_cluster.c); not part of `make test`.
test-cluster: deps
	@$(MAKE) --no-print-directory -j$(JOBS) BUILD=build/san SANITIZE=1 all tests
	@STAGEHAND_CLUSTER_TEST=1 STAGEHAND_REAL_KAFKA=0 sh tests/run-tests.sh build/san test_cluster

run: deps
	@$(MAKE) --no-print-directory -j$(JOBS) all
	@BUILD=$(BUILD) KAFKA=$(KAFKA) sh tools/run-stack.sh

# Plays the reference app's story against a running `make run` stack.
demo:
	@python3 tools/demo.py

# --- fuzzing (clang, libFuzzer) ---------------------------------------------------
# Harnesses tests/fuzz/fuzz_<name>.c, linked with the common library and the
# ingress's modules built by clang into build/fuzz/ (-Wall -Wextra -Werror
# too). `make fuzz` runs each for FUZZ_SECONDS; `make test` for a few.
FUZZ_DIR     := build/fuzz
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS  := -std=c11 -g -O1 -Wall -Wextra -Werror -fno-omit-frame-pointer \
                -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_LIB_SRC := $(COMMON_SRC) $(SCHEMA_GEN) $(filter-out ingress/main.c,$(wildcard ingress/*.c))
FUZZ_LIB_OBJ := $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(FUZZ_LIB_SRC))
FUZZERS      := $(patsubst tests/fuzz/fuzz_%.c,$(FUZZ_DIR)/fuzz_%,$(wildcard tests/fuzz/fuzz_*.c))

$(FUZZ_DIR)/obj/%.o: %.c
	@mkdir -p $(@D)
	clang $(CPPFLAGS) -Iingress $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIB_OBJ)
	clang $(CPPFLAGS) -Iingress $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

fuzz-build: $(FUZZERS)

fuzz: deps
	@$(MAKE) --no-print-directory -j$(JOBS) fuzz-build
	@sh tests/fuzz/run.sh $(FUZZ_DIR) $(FUZZ_SECONDS)

# Benchmarks on this machine; writes BENCHMARKS.md (see tools/bench/bench.py).
bench:
	@sh tools/deps.sh wrk nginx-light
	@$(MAKE) --no-print-directory -j$(JOBS) all
	@python3 tools/bench/bench.py --build $(BUILD)

# Run the tests of the current BUILD without installing anything.
check: all tests
	@sh tests/run-tests.sh $(BUILD)

tests: $(TESTS)

clean:
	rm -rf build

# --- rules ------------------------------------------------------------------------
$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(SCHEMA_GEN): tools/embed-schemas.sh $(SCHEMA_SRC)
	@mkdir -p $(@D)
	sh tools/embed-schemas.sh schemas $@

$(BUILD)/obj/gen/schemas_data.o: $(SCHEMA_GEN)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(LIB): $(COMMON_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/stagehand-devbroker: $(DEVBROKER_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/twilio-emulator: $(EMULATOR_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/stagehand-loadgen: $(LOADGEN_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/stagehand-replay: $(REPLAY_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/stagehand-topics: $(TOPICS_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(INGRESS_LIB): $(INGRESS_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/stagehand-ingress: $(BUILD)/obj/ingress/main.o $(INGRESS_LIB) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(WORKER_LIB): $(WORKER_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/stagehand-%-worker: $(BUILD)/obj/workers/%_worker.o $(WORKER_LIB) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/unit/%: $(BUILD)/obj/tests/unit/%.o $(TEST_SUPPORT_OBJ) $(INGRESS_LIB) $(WORKER_LIB) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

$(BUILD)/tests/integration/%: $(BUILD)/obj/tests/integration/%.o $(TEST_FIXTURE_OBJ) $(TEST_SUPPORT_OBJ) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

$(BUILD)/tests/helpers/%: $(BUILD)/obj/tests/helpers/%.o $(TEST_SUPPORT_OBJ) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

-include $(ALL_OBJ:.o=.d)
