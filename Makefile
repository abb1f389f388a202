# loft - build, test and demo.
#
#   make            build/loft and build/libloft.a
#   make demo       fetch the models, build, run `loft suite --quick` into suite-out/
#   make test       build and run every test (fetches models and Python
#                   reference tools first when missing); ends "N passed, N failed"
#   make asan       the same tests under AddressSanitizer + UBSan (build/asan)
#   make tsan       the same tests under ThreadSanitizer (build/tsan)
#                   (TEST_ONLY="test_x test_y" limits test/asan/tsan to those)
#   make valgrind   the inference path (info, run on both models, run with an
#                   adapter, perplexity) under valgrind memcheck, no leaks
#                   allowed; ends "N passed, N failed"
#   make fuzz       build the libFuzzer targets with clang and run each for
#                   FUZZ_SECONDS (default 600)
#   make format     run clang-format over the C sources

CC      ?= cc
BUILD   ?= build
PYTHON  ?= python3
FUZZ_SECONDS ?= 600

WARN    := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Werror
# -ffp-contract=off: reference code rounds exactly like the reference
# implementations; fast kernels ask for fused multiply-adds explicitly.
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -O2 -g -ffp-contract=off -fno-strict-aliasing \
               -Iinclude -Isrc $(WARN)
CFLAGS  ?=
SAN_FLAGS :=
ifeq ($(SAN),1)
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
endif
ifeq ($(SAN),thread)
SAN_FLAGS := -fsanitize=thread -fno-omit-frame-pointer
endif
ALL_CFLAGS = $(BASE_CFLAGS) $(SAN_FLAGS) $(CFLAGS)
LDLIBS  := -lm -lpthread

# Kernel translation units that carry their own instruction-set flags.
ISA_SRCS   := $(wildcard src/kernels/avx2.c src/kernels/avx2_packed.c src/kernels/avx512.c \
                src/kernels/avx512_packed.c src/kernels/neon.c)
LIB_SRCS   := $(sort $(shell find src -name '*.c'))
TOOL_SRCS  := $(sort $(wildcard tools/loft/*.c))
TEST_SRCS  := $(sort $(wildcard tests/unit/test_*.c))

LIB_OBJS   := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
TOOL_OBJS  := $(TOOL_SRCS:%.c=$(BUILD)/obj/%.o)
TEST_BINS  := $(TEST_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
TEST_HARNESS := $(BUILD)/obj/tests/test.o

LIB := $(BUILD)/libloft.a
BIN := $(BUILD)/loft

.PHONY: all test asan tsan valgrind fuzz demo models pydeps clean format tests-build
.DELETE_ON_ERROR:

all: $(BIN) $(LIB)

$(BUILD)/obj/src/kernels/avx2.o:   ISA_FLAGS := -mavx2 -mfma -mf16c
$(BUILD)/obj/src/kernels/avx2_packed.o: ISA_FLAGS := -mavx2 -mfma -mf16c
$(BUILD)/obj/src/kernels/avx512.o: ISA_FLAGS := -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512bf16 -mavx2 -mfma -mf16c
$(BUILD)/obj/src/kernels/avx512_packed.o: ISA_FLAGS := -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx2 -mfma -mf16c
$(BUILD)/obj/src/kernels/attn_ggml.o: ISA_FLAGS := -O3
$(BUILD)/obj/src/kernels/attn_ggml_tokens.o: ISA_FLAGS := -O3

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(ISA_FLAGS) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(BIN): $(TOOL_OBJS) $(LIB)
	$(CC) $(ALL_CFLAGS) -o $@ $(TOOL_OBJS) $(LIB) $(LDLIBS)

$(BUILD)/obj/tests/%.o: tests/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests -Wno-format-truncation -MMD -MP -c $< -o $@

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(TEST_HARNESS) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(TEST_HARNESS) $(LIB) $(LDLIBS)

tests-build: $(TEST_BINS) $(BIN)

# Real models and the Python reference tools the tests compare against.
models:
	@scripts/get-models

pydeps:
	@scripts/get-pydeps

# TEST_ONLY="test_a test_b" builds and runs just those binaries (the CI's
# ThreadSanitizer subset); empty means all of them.
TEST_ONLY ?=
RUN_BINS = $(if $(strip $(TEST_ONLY)),$(addprefix $(BUILD)/tests/,$(TEST_ONLY)),$(TEST_BINS))

test: models pydeps $(RUN_BINS) $(BIN)
	@LOFT_BIN=$(BIN) PYTHONPATH=$(CURDIR)/.pydeps/lib tests/run-tests.sh $(RUN_BINS)

asan:
	@$(MAKE) --no-print-directory BUILD=build/asan SAN=1 test

# Every test binary under ThreadSanitizer, including the loft program the
# tests run; the first report fails the binary (halt_on_error).
tsan:
	@TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 $$TSAN_OPTIONS" \
	    $(MAKE) --no-print-directory BUILD=build/tsan SAN=thread test

# valgrind 3.19 does not decode AVX-512, so tests/valgrind.sh forces the
# AVX2 kernels (LOFT_ISA=avx2) in an ordinary build.
valgrind: models $(BIN)
	@LOFT_BIN=$(BIN) tests/valgrind.sh

# libFuzzer targets: tests/fuzz/fuzz_*.c, each linked with the library
# sources built by clang with the fuzzer and sanitizers.
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=build/fuzz/%)
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -O1 -g -Iinclude -Isrc -ffp-contract=off \
               -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined

build/fuzz/%: tests/fuzz/%.c $(LIB_SRCS)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $< $(filter-out $(ISA_SRCS),$(LIB_SRCS)) $(LDLIBS)

fuzz: $(FUZZ_BINS)
	@for f in $(FUZZ_BINS); do \
	    name=$$(basename $$f); corpus=build/fuzz/corpus-$$name; mkdir -p $$corpus; \
	    echo "== $$name for $(FUZZ_SECONDS)s"; \
	    $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
	        $$corpus tests/fuzz/seed-$${name#fuzz_} $$([ $$name = fuzz_gguf ] && echo tests/corrupt) \
	        $$([ -d tests/fuzz/regress-$${name#fuzz_} ] && echo tests/fuzz/regress-$${name#fuzz_}) || exit 1; \
	done

demo: models all
	@LOFT_BIN=$(BIN) scripts/demo

format:
	clang-format -i $$(find src tools tests include -name '*.[ch]')

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# ---- kernels: the fuzz build compiles without the ISA files -------------
build/fuzz/%: FUZZ_CFLAGS += -DLOFT_NO_ISA_KERNELS

# ---- kernels: the NEON set, cross-built for aarch64 and run under qemu ----
#   make test-neon    (needs gcc-aarch64-linux-gnu and qemu-user)
AARCH64_CC ?= aarch64-linux-gnu-gcc
A64_BUILD  := build/aarch64
A64_TESTS  := test_kernels test_kernels_rows
A64_LIB_OBJS := $(LIB_SRCS:%.c=$(A64_BUILD)/obj/%.o) $(A64_BUILD)/obj/tests/test.o
# kept between runs (a pattern rule's prerequisites are otherwise deleted)
.SECONDARY: $(A64_LIB_OBJS) $(A64_TESTS:%=$(A64_BUILD)/obj/tests/unit/%.o)

$(A64_BUILD)/obj/src/kernels/neon.o: A64_ISA := -march=armv8.2-a+dotprod

$(A64_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(AARCH64_CC) $(BASE_CFLAGS) -Itests -Wno-format-truncation $(A64_ISA) -MMD -MP -c $< -o $@

$(A64_BUILD)/tests/%: $(A64_BUILD)/obj/tests/unit/%.o $(A64_LIB_OBJS)
	@mkdir -p $(dir $@)
	$(AARCH64_CC) -static -o $@ $^ $(LDLIBS)

.PHONY: test-neon
test-neon: $(A64_TESTS:%=$(A64_BUILD)/tests/%)
	@for t in $^; do echo "== $$t"; qemu-aarch64 -cpu max $$t || exit 1; done

-include $(shell find $(A64_BUILD)/obj -name '*.d' 2>/dev/null)

# Build record for benchmark results (src/bench/sysinfo.c): the commit and
# the flags are baked into that one object, rebuilt when git state changes.
# (rev-parse and diff-index only read the repository; describe --dirty may
# rewrite the index.)
LOFT_GIT_COMMIT := $(shell c=$$(git rev-parse --short=12 HEAD 2>/dev/null) && \
    { git diff-index --quiet HEAD -- 2>/dev/null && echo $$c || echo $$c-dirty; } || echo unknown)
$(BUILD)/obj/src/bench/sysinfo.o: ISA_FLAGS = -DLOFT_GIT_COMMIT='"$(LOFT_GIT_COMMIT)"' \
    -DLOFT_BUILD_CFLAGS='"$(strip $(ALL_CFLAGS))"'
$(BUILD)/obj/src/bench/sysinfo.o: $(wildcard .git/HEAD .git/index)
