# dfm - diffusion and flow-matching training in C11 + MPI.
#
#   make            build bin/dfm                 make test    deps + build + every test
#   make run        train the quick-start job     make bench   benchmarks (long)
#   make asan       tests under AddressSanitizer  make ubsan   tests under UBSan
#   make lint       include graph, MPI, libraries make fuzz    fuzz the job-spec and weights readers
#   make parity     regenerate PyTorch reference files (needs python3-torch)
#   make docs       regenerate the key tables of jobs/README.md from io/jobspec_keys.c
#   make clean
#
# Options: WERROR=1 (warnings are errors; CI), ARCH=native (tune for this CPU; the default
# binary runs on any x86-64), SANITIZER=address|undefined, FUZZ_SECONDS=N, NP=N (ranks for run).

CC       ?= mpicc
ifeq ($(origin CC),default)
CC       := mpicc
endif
WERROR   ?= 0
ARCH     ?=
SANITIZER ?=
FUZZ_SECONDS ?= 20

WARN := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wpointer-arith -Wcast-qual -Wdouble-promotion -Wformat=2 \
        -Werror=implicit-function-declaration -Werror=implicit-int
ifeq ($(WERROR),1)
WARN += -Werror
else ifneq ($(WERROR),0)
$(error WERROR must be 0 or 1, not '$(WERROR)')
endif

OPT := -O3
ifeq ($(ARCH),native)
OPT += -march=native
else ifneq ($(ARCH),)
$(error ARCH must be empty or 'native', not '$(ARCH)')
endif

BUILD := build
BIN   := bin
ifeq ($(SANITIZER),address)
OPT   := -O1 -g -fsanitize=address -fno-sanitize-recover=all -fno-omit-frame-pointer
BUILD := build/asan
BIN   := build/asan/bin
else ifeq ($(SANITIZER),undefined)
OPT   := -O1 -g -fsanitize=undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
BUILD := build/ubsan
BIN   := build/ubsan/bin
else ifneq ($(SANITIZER),)
$(error SANITIZER must be address or undefined, not '$(SANITIZER)')
endif

GIT_COMMIT := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
VERSION    := 0.1.0

CPPFLAGS := -I. -I/usr/include/x86_64-linux-gnu/openblas-pthread -D_GNU_SOURCE \
            -DDFM_VERSION='"$(VERSION)"' -DDFM_GIT_COMMIT='"$(GIT_COMMIT)"'
# -fno-trapping-math: dfm never reads floating-point exception flags, and without it GCC will
# not if-convert (and so not vectorise) loops with float comparisons such as SiLU's exp. It
# changes no result: no reassociation, NaN and Inf semantics intact (unlike -ffast-math).
CFLAGS   := -std=c11 $(OPT) -g -fopenmp -fno-trapping-math $(WARN) -MMD -MP
LDFLAGS  := -fopenmp $(filter -fsanitize=%,$(OPT))
LDLIBS   := -lyaml -lcurl -lfftw3 -llapacke -ldnnl -lopenblas -lpng -lz -lcrypto -lm -lpthread

# ---- sources -------------------------------------------------------------------------------
LIB_DIRS := core io model sched dist
LIB_SRC  := $(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.c))
CMD_SRC  := $(wildcard cmd/*.c)
UNIT_SRC := $(wildcard tests/*/test_*.c)
MPI_TEST_SRC := $(wildcard tests/dist/mpi_*.c)
TOOL_SRC := $(wildcard tests/tools/*.c)
BENCH_SRC := $(wildcard tests/bench/*.c)

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CMD_OBJ  := $(CMD_SRC:%.c=$(BUILD)/%.o)
UNIT_OBJ := $(UNIT_SRC:%.c=$(BUILD)/%.o)
MPI_TESTS := $(MPI_TEST_SRC:tests/dist/%.c=$(BIN)/tests/%)
TOOLS    := $(TOOL_SRC:tests/tools/%.c=$(BIN)/tools/%)
BENCHES  := $(BENCH_SRC:tests/bench/%.c=$(BIN)/bench/%)

DFM      := $(BIN)/dfm
UNIT     := $(BIN)/tests/unit

.PHONY: all deps test test-unit test-cli test-mpi test-fuzz asan ubsan lint fuzz parity bench \
        run clean debug docs
.DEFAULT_GOAL := all
# Objects of the test programs and tools are intermediate files to make: keep them.
.SECONDARY:

all: $(DFM)

# V=1 shows the full compiler command lines.
ifeq ($(V),1)
Q :=
say = @true
else
Q := @
say = @echo "  $(1) $(2)"
endif

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(DFM): $(CMD_OBJ) $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(UNIT): $(UNIT_OBJ) $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcriterion

$(BIN)/tests/%: $(BUILD)/tests/dist/%.o $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BIN)/tools/%: $(BUILD)/tests/tools/%.o $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BIN)/bench/%: $(BUILD)/tests/bench/%.o $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

-include $(LIB_OBJ:.o=.d) $(CMD_OBJ:.o=.d) $(UNIT_OBJ:.o=.d) \
         $(BENCH_SRC:tests/bench/%.c=$(BUILD)/tests/bench/%.d) \
         $(MPI_TEST_SRC:tests/dist/%.c=$(BUILD)/tests/dist/%.d) \
         $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tests/tools/%.d)

# ---- dependencies --------------------------------------------------------------------------
deps:
	@sh .ci/deps

# ---- tests ---------------------------------------------------------------------------------
# Each stage prints "N passed, N failed"; any failure stops make with a non-zero status.
export OMPI_ALLOW_RUN_AS_ROOT := 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM := 1
export OMPI_MCA_rmaps_base_oversubscribe := 1

test: deps
	@$(MAKE) --no-print-directory lint
	@$(MAKE) -j2 --no-print-directory $(DFM) $(UNIT) $(MPI_TESTS) $(TOOLS) $(FUZZ_BIN)
	@$(MAKE) --no-print-directory test-unit test-cli test-mpi test-fuzz

test-unit: $(UNIT)
	DFM_ROOT=$(CURDIR) DFM_BIN=$(CURDIR)/$(BIN) $(UNIT) --jobs 2 --short-filename

test-cli: $(DFM) $(TOOLS)
	DFM=$(CURDIR)/$(DFM) DFM_BIN=$(CURDIR)/$(BIN) sh tests/cli/run.sh

test-mpi: $(DFM) $(MPI_TESTS)
	DFM=$(CURDIR)/$(DFM) DFM_BIN=$(CURDIR)/$(BIN) sh tests/dist/run.sh

asan:
	@$(MAKE) --no-print-directory SANITIZER=address test-san
ubsan:
	@$(MAKE) --no-print-directory SANITIZER=undefined test-san

# The sanitizer targets run the same unit, CLI and MPI tests against instrumented binaries,
# except t_toy.sh: its 1500-step quality check takes no code path that t_train.sh's few-step
# toy run does not, and instrumented it alone would take most of CI's time.
# Open MPI's own allocations trip LeakSanitizer (open-mpi/ompi#6242): suppressions cover them.
test-san: deps
	@$(MAKE) -j2 --no-print-directory $(DFM) $(UNIT) $(MPI_TESTS) $(TOOLS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 CLI_SKIP="t_toy $${CLI_SKIP:-}" \
	  $(MAKE) --no-print-directory test-unit test-cli test-mpi

# ---- lint: the include graph, MPI in dist/ only, each library in its module -----------------
lint:
	@sh tests/lint.sh

# ---- fuzzing (clang libFuzzer) -------------------------------------------------------------
FUZZ_CC  := clang
FUZZ_DIR := build/fuzz
FUZZ_SRC := $(wildcard core/*.c) $(wildcard io/*.c)
FUZZ_BIN := $(FUZZ_DIR)/fuzz_jobspec $(FUZZ_DIR)/fuzz_weights $(FUZZ_DIR)/fuzz_ckpt
# The weights reader is small: a shorter run covers it.
FUZZ_WEIGHTS_SECONDS ?= 10

$(FUZZ_DIR)/fuzz_%: tests/io/fuzz_%.c $(FUZZ_SRC) $(wildcard core/*.h io/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined $(CPPFLAGS) \
	  -o $@ $< $(FUZZ_SRC) $(LDLIBS)

fuzz: deps $(FUZZ_BIN)
	@mkdir -p $(FUZZ_DIR)/corpus $(FUZZ_DIR)/corpus_weights
	$(FUZZ_DIR)/fuzz_weights -max_total_time=$(FUZZ_SECONDS) -timeout=5 -rss_limit_mb=2048 \
	  $(FUZZ_DIR)/corpus_weights tests/io/weights_seeds
	$(FUZZ_DIR)/fuzz_jobspec -max_total_time=$(FUZZ_SECONDS) -timeout=5 -rss_limit_mb=2048 \
	  -dict=tests/io/jobspec.dict $(FUZZ_DIR)/corpus jobs tests/io/bad_specs
	@mkdir -p $(FUZZ_DIR)/corpus-ckpt
	$(FUZZ_DIR)/fuzz_ckpt -max_total_time=$(FUZZ_SECONDS) -timeout=5 -rss_limit_mb=2048 \
	  $(FUZZ_DIR)/corpus-ckpt tests/io/ckpt_seeds

test-fuzz: $(FUZZ_BIN)
	@mkdir -p $(FUZZ_DIR)/corpus $(FUZZ_DIR)/corpus_weights
	@$(FUZZ_DIR)/fuzz_weights -max_total_time=$(FUZZ_WEIGHTS_SECONDS) -timeout=5 -rss_limit_mb=2048 \
	  $(FUZZ_DIR)/corpus_weights tests/io/weights_seeds > $(FUZZ_DIR)/last_weights.log 2>&1 \
	  && echo "fuzz: $(FUZZ_WEIGHTS_SECONDS) s of libFuzzer on the weights reader, no finding" \
	  || { tail -40 $(FUZZ_DIR)/last_weights.log; echo "fuzz: 0 passed, 1 failed"; exit 1; }
	@$(FUZZ_DIR)/fuzz_jobspec -max_total_time=$(FUZZ_SECONDS) -timeout=5 -rss_limit_mb=2048 \
	  -dict=tests/io/jobspec.dict $(FUZZ_DIR)/corpus jobs tests/io/bad_specs \
	  > $(FUZZ_DIR)/last.log 2>&1 \
	  && echo "fuzz: $(FUZZ_SECONDS) s of libFuzzer on the job-spec loader, no finding" \
	  && echo "fuzz: 2 passed, 0 failed" \
	  || { tail -40 $(FUZZ_DIR)/last.log; echo "fuzz: 0 passed, 1 failed"; exit 1; }
	@mkdir -p $(FUZZ_DIR)/corpus-ckpt
	@$(FUZZ_DIR)/fuzz_ckpt -max_total_time=10 -timeout=5 -rss_limit_mb=2048 \
	  $(FUZZ_DIR)/corpus-ckpt tests/io/ckpt_seeds > $(FUZZ_DIR)/last-ckpt.log 2>&1 \
	  && echo "fuzz: 10 s of libFuzzer on the checkpoint readers, no finding" \
	  && echo "fuzz: 1 passed, 0 failed" \
	  || { tail -40 $(FUZZ_DIR)/last-ckpt.log; echo "fuzz: 0 passed, 1 failed"; exit 1; }

# ---- the quick start: fetch Fashion-MNIST, train the quick-start job on NP ranks ------------
NP ?= 2
RUN_JOB ?= jobs/quickstart.yaml
run: deps
	@$(MAKE) -j2 --no-print-directory $(DFM)
	$(DFM) fetch fashion-mnist --quiet
	mpirun -np $(NP) --oversubscribe --bind-to none $(DFM) train $(RUN_JOB)

# ---- benchmarks and references (long; need python3-torch) ---------------------------------
bench: deps
	@sh .ci/deps python3-torch
	@$(MAKE) --no-print-directory $(DFM) $(BENCHES) $(TOOLS)
	DFM=$(CURDIR)/$(DFM) DFM_BIN=$(CURDIR)/$(BIN) sh tests/bench/run.sh

parity: deps
	@sh .ci/deps python3-torch
	/usr/bin/python3 tests/torch/make_reference.py

# ---- generated documentation ---------------------------------------------------------------
docs: $(BIN)/tools/jobdoc
	$(BIN)/tools/jobdoc jobs/README.md > jobs/README.md.tmp && mv jobs/README.md.tmp jobs/README.md

clean:
	rm -rf build bin
