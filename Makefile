# agentq — the only build entry. `make` builds bin/agentq-api, bin/agentq-worker and bin/agentq;
# `make test` runs every test against a throwaway Postgres; `make run` starts
# the stack on a project-local cluster; `make bench` measures; `make soak` runs an hour of load. Variants:
# SANITIZE=1 (ASan+UBSan), DEBUG=1 (-O0), V=1 (show commands). `make fuzz` runs the
# libFuzzer harnesses (tests/fuzz/) built with clang in build/fuzz.

PKG_CONFIG ?= pkg-config
CC         ?= cc
ifeq ($(CC),cc)
CC := gcc
endif

OPT := -O2
ifeq ($(DEBUG),1)
OPT := -O0
endif
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Wstrict-prototypes -Wno-unused-parameter -pthread \
           -D_GNU_SOURCE -MMD -MP
LDFLAGS ?=
# sanitized binaries live apart from bin/, so the two variants never relink each other
ifeq ($(SANITIZE),1)
CFLAGS  += -fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=all -fno-omit-frame-pointer
LDFLAGS += -fsanitize=address,undefined,float-cast-overflow
BUILD   := build/san
BINDIR  := build/san/bin
else
BUILD   := build/rel
BINDIR  := bin
endif
ifneq ($(V),1)
Q := @
endif

COMMON_PKGS := libuv libpq libcjson libsodium libcurl glib-2.0
# GMime is linked only into bin/agentq-mime.so, which the worker loads the
# first time it reads a message (handlers/mime.h), and into the test runner
MIME_PKGS   := gmime-3.0 libcjson
# the API uses h2o's libuv flavour: one uv loop per thread carries h2o and libpq
API_PKGS    := libh2o libssl libcrypto
PKG_CFLAGS  := $(shell $(PKG_CONFIG) --cflags $(COMMON_PKGS) 2>/dev/null)
PKG_LIBS    := $(shell $(PKG_CONFIG) --libs $(COMMON_PKGS) 2>/dev/null)
API_LIBS    := $(shell $(PKG_CONFIG) --libs $(API_PKGS) 2>/dev/null)
MIME_LIBS   := $(shell $(PKG_CONFIG) --libs $(MIME_PKGS) 2>/dev/null)
CFLAGS      += $(PKG_CFLAGS) $(shell $(PKG_CONFIG) --cflags gmime-3.0 2>/dev/null)
# a binary names only the libraries it calls (the API and the CLI never load GMime's stack)
LDFLAGS     += -Wl,--as-needed

# Each folder sees only what it may include (tests/check_includes.sh, run by
# `make test`, checks the quoted includes too): api/ and cli/ see common/;
# handlers/ sees common/ and its own contract folder; worker/ sees common/ and,
# of handlers/, only the handler contract and registry (handlers/include/).
# A folder's own headers are found next to the file. Tests see everything.
INC_common   := -Icommon
INC_api      := -Icommon
INC_cli      := -Icommon
INC_handlers := -Icommon -Ihandlers/include
INC_worker   := -Icommon -Ihandlers/include
INC_tests    := -Icommon -Ihandlers -Ihandlers/include -Iworker
INC_build    := -Icommon
incs = $(INC_$(firstword $(subst /, ,$(1))))

COMMON_SRC  := $(wildcard common/*.c)
# mime.c (GMime) is the plugin's; the worker links mime_load.c, which loads it
MIME_SRC    := handlers/mime.c handlers/mime_plugin.c handlers/mime_load.c
HANDLER_SRC := $(filter-out $(MIME_SRC),$(wildcard handlers/*.c))
WORKER_SRC  := $(wildcard worker/*.c)
API_SRC     := $(wildcard api/*.c)
CLI_SRC     := $(wildcard cli/*.c)
TEST_SRC    := $(wildcard tests/*.c)
BENCH_SRC   := $(wildcard tests/bench/*.c)
MIGRATIONS  := $(sort $(wildcard sql/[0-9][0-9][0-9]_*.sql))
WEB_FILES   := $(sort $(wildcard web/*.html web/*.css web/*.js web/*.svg))

obj = $(patsubst %.c,$(BUILD)/%.o,$(1))
COMMON_OBJ  := $(call obj,$(COMMON_SRC)) $(BUILD)/build/migrations.o
HANDLER_OBJ := $(call obj,$(HANDLER_SRC))
WORKER_OBJ  := $(call obj,$(WORKER_SRC))
API_OBJ     := $(call obj,$(API_SRC)) $(BUILD)/build/web.o
CLI_OBJ     := $(call obj,$(CLI_SRC))
TEST_OBJ    := $(call obj,$(TEST_SRC))
BENCH_OBJ   := $(call obj,$(BENCH_SRC))
# the test runner links the worker's pure parts, never its main
WORKER_LIB_OBJ := $(filter-out $(BUILD)/worker/main.o,$(WORKER_OBJ))

# relink when the compiler changes
VARIANT_STAMP := $(BUILD)/variant
$(shell mkdir -p $(BUILD); echo "$(CC)" | cmp -s - $(VARIANT_STAMP) || echo "$(CC)" > $(VARIANT_STAMP))

BINS := $(BINDIR)/agentq-api $(BINDIR)/agentq-worker $(BINDIR)/agentq $(BINDIR)/agentq-mime.so
.PHONY: all deps test faults run bench soak fuzz install clean
all: $(BINS)

$(BINDIR)/agentq-worker: $(WORKER_OBJ) $(HANDLER_OBJ) $(BUILD)/handlers/mime_load.o $(COMMON_OBJ) $(VARIANT_STAMP)
	@mkdir -p $(BINDIR)
	@echo "  LD     $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(PKG_LIBS) -lm -pthread

# the worker's MIME reader (handlers/mime.h): position-independent copies of
# mime.c and the helpers it calls, every symbol hidden but the table
MIME_PLUGIN_OBJ := $(patsubst %.c,$(BUILD)/pic/%.o,handlers/mime.c handlers/mime_plugin.c common/aq_buf.c common/aq_alloc.c \
                   common/aq_json.c)
$(BUILD)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC     $< (plugin)"
	$(Q)$(CC) $(CFLAGS) -fPIC -fvisibility=hidden $(call incs,$<) -c -o $@ $<

$(BINDIR)/agentq-mime.so: $(MIME_PLUGIN_OBJ) $(VARIANT_STAMP)
	@mkdir -p $(BINDIR)
	@echo "  LD     $@"
	$(Q)$(CC) $(LDFLAGS) -shared -Wl,-z,defs -o $@ $(filter %.o,$^) $(MIME_LIBS) -lm -pthread

$(BINDIR)/agentq-api: $(API_OBJ) $(COMMON_OBJ) $(VARIANT_STAMP)
	@mkdir -p $(BINDIR)
	@echo "  LD     $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(API_LIBS) $(PKG_LIBS) -lm -pthread

# the CLI links no handler object: its Bot API client lives in common/
$(BINDIR)/agentq: $(CLI_OBJ) $(COMMON_OBJ) $(VARIANT_STAMP)
	@mkdir -p $(BINDIR)
	@echo "  LD     $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(PKG_LIBS) -lm -pthread

# with the bench's HTTP/1.1 response reader, whose cases t_unit.c checks
$(BINDIR)/agentq-test: $(TEST_OBJ) $(WORKER_LIB_OBJ) $(HANDLER_OBJ) $(BUILD)/handlers/mime.o $(BUILD)/tests/bench/http1.o \
                      $(COMMON_OBJ) $(VARIANT_STAMP)
	@mkdir -p $(BINDIR)
	@echo "  LD     $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(PKG_LIBS) $(MIME_LIBS) -lm -pthread

$(BINDIR)/agentq-bench: $(BENCH_OBJ) $(COMMON_OBJ) $(VARIANT_STAMP)
	@mkdir -p $(BINDIR)
	@echo "  LD     $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(PKG_LIBS) -lm -pthread

# the fake HTTP server tests put in place of external services (tests/fake/main.c);
# built by `make test`, not by `all`
FAKE_OBJ := $(call obj,$(wildcard tests/fake/*.c))
$(BINDIR)/agentq-fake: $(FAKE_OBJ) $(COMMON_OBJ) $(VARIANT_STAMP)
	@mkdir -p $(BINDIR)
	@echo "  LD     $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(PKG_LIBS) -lm -pthread

build/migrations.c: $(MIGRATIONS) sql/embed.sh
	@mkdir -p build
	$(Q)sh sql/embed.sh $(MIGRATIONS) > $@.tmp && mv $@.tmp $@

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC     $<"
	$(Q)$(CC) $(CFLAGS) $(call incs,$<) -c -o $@ $<

$(BUILD)/api/%.o: api/%.c
	@mkdir -p $(dir $@)
	@echo "  CC     $<"
	$(Q)$(CC) $(CFLAGS) $(call incs,$<) -DH2O_USE_LIBUV=1 -c -o $@ $<

# the web console, embedded in agentq-api (api/web.c serves it)
build/web.c: $(WEB_FILES) web/embed.sh
	@mkdir -p build
	$(Q)sh web/embed.sh $(WEB_FILES) > $@.tmp && mv $@.tmp $@

$(BUILD)/build/web.o: build/web.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -Iapi -c -o $@ $<

$(BUILD)/build/migrations.o: build/migrations.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) $(call incs,$<) -c -o $@ $<

# Installs what is missing (apt-get; as root or through sudo); a no-op when all is present.
deps:
	$(Q)sh deploy/deps.sh

# Everything: deps, build (plain and sanitized), all tests against a throwaway cluster.
test: deps
	$(Q)$(MAKE) --no-print-directory all $(BINDIR)/agentq-test $(BINDIR)/agentq-fake
	$(Q)AQ_TEST_BIN=$(CURDIR)/$(BINDIR) sh tests/run.sh $(TESTS)

# The fault campaign (tests/t_fault_campaign.c; README "Testing under faults"):
# FAULTS_SECONDS of injected faults under a steady mix, then the checks; the
# logs (processes, the fake's requests) are kept in $(BUILD)/faults.
faults: deps
	$(Q)$(MAKE) --no-print-directory all $(BINDIR)/agentq-test $(BINDIR)/agentq-fake
	$(Q)AQ_FAULT_CAMPAIGN=1 AQ_TEST_KEEP_LOGS=$(CURDIR)/$(BUILD)/faults AQ_TEST_BIN=$(CURDIR)/$(BINDIR) \
	    sh tests/run.sh fault_campaign

run: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)sh deploy/run.sh

bench: deps
	$(Q)$(MAKE) --no-print-directory all $(BINDIR)/agentq-bench $(BINDIR)/agentq-fake
	$(Q)sh tests/bench.sh

# An hour (SOAK_MINUTES) of mixed load; a CSV, a plot and a section in
# docs/BENCHMARKS.md (tests/soak.sh). Not part of `make test`.
soak: deps
	$(Q)$(MAKE) --no-print-directory all $(BINDIR)/agentq-bench $(BINDIR)/agentq-fake
	$(Q)sh tests/soak.sh

# ---- fuzzing (README.md, "Fuzzing") ----
# Each tests/fuzz/fz_NAME.c is one libFuzzer harness, linked against an archive
# of every object but the mains, all compiled with clang in build/fuzz (never
# mixed with build/rel or build/san): a harness pulls in only what it calls.
# FUZZ_SECONDS per harness (default 600), FUZZ=NAME to run one.
FUZZ_CC      ?= clang
FUZZ_BUILD   := build/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS  := -O1 -g $(filter-out -O% -g,$(CFLAGS)) $(FUZZ_SAN)
FUZZ_SRC     := $(filter-out api/main.c worker/main.c,$(COMMON_SRC) $(API_SRC) $(HANDLER_SRC) handlers/mime.c $(WORKER_SRC))
FUZZ_OBJ     := $(patsubst %.c,$(FUZZ_BUILD)/%.o,$(FUZZ_SRC)) $(FUZZ_BUILD)/build/migrations.o $(FUZZ_BUILD)/build/web.o
FUZZ_NAMES   := $(patsubst tests/fuzz/fz_%.c,%,$(wildcard tests/fuzz/fz_*.c))
FUZZ_BINS    := $(patsubst %,$(FUZZ_BUILD)/bin/fz_%,$(FUZZ_NAMES))
FUZZ_SECONDS ?= 600

$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC     $< (fuzz)"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(call incs,$<) -c -o $@ $<

$(FUZZ_BUILD)/build/migrations.o: build/migrations.c
	@mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(call incs,$<) -c -o $@ $<

$(FUZZ_BUILD)/build/web.o: build/web.c
	@mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -Iapi -c -o $@ $<

$(FUZZ_BUILD)/libagentq.a: $(FUZZ_OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^

$(FUZZ_BUILD)/bin/fz_%: tests/fuzz/fz_%.c tests/fuzz/fuzz.h $(FUZZ_BUILD)/libagentq.a
	@mkdir -p $(dir $@)
	@echo "  LD     $@"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(INC_tests) -Iapi \
	    -o $@ $< $(FUZZ_BUILD)/libagentq.a $(API_LIBS) $(PKG_LIBS) $(MIME_LIBS) -lm -pthread

fuzz: deps
	$(Q)$(MAKE) --no-print-directory $(if $(FUZZ),$(FUZZ_BUILD)/bin/fz_$(FUZZ),$(FUZZ_BINS))
	$(Q)FUZZ_BIN=$(CURDIR)/$(FUZZ_BUILD)/bin sh tests/fuzz/run.sh $(FUZZ_SECONDS) $(or $(FUZZ),$(FUZZ_NAMES))

PREFIX ?= /usr/local
install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(BINS) $(DESTDIR)$(PREFIX)/bin/

clean:
	rm -rf build bin

-include $(shell find build -name '*.d' 2>/dev/null)
