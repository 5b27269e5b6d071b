# Portcullis — the quick start is `make run` and `make test`.
# Meson + Ninja do the building; this file only strings the steps together.

PREFIX  ?= /usr/local
PYTHON  ?= /usr/bin/python3
BUILD   ?= build
ASAN    ?= build-asan
FUZZ_SECONDS ?= 60
CONF    ?= etc/portcullis.conf

.PHONY: all deps test-deps run test unit integration sanitize install bench fuzz soak clean

all: $(BUILD)/build.ninja
	@ninja -C $(BUILD)

$(BUILD)/build.ninja:
	@scripts/deps.sh build
	meson setup $(BUILD) --prefix=$(PREFIX)

deps:
	@scripts/deps.sh build

test-deps:
	@scripts/deps.sh build test

run: deps all
	@scripts/democert.sh etc
	@scripts/demousers.sh etc/users var/users
	@scripts/demotoken.sh var/tokens
	./$(BUILD)/portcullisd -c $(CONF)

test: test-deps all
	meson test -C $(BUILD) --print-errorlogs
	cd tests/integration && PORTCULLIS_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

sanitize: test-deps
	@[ -f $(ASAN)/build.ninja ] || meson setup $(ASAN) -Db_sanitize=address,undefined -Db_lundef=false
	ninja -C $(ASAN)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  meson test -C $(ASAN) --print-errorlogs
	cd tests/integration && PORTCULLIS_BUILD=$(abspath $(ASAN)) PORTCULLIS_SANITIZED=1 \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  $(PYTHON) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

install: all
	meson configure $(BUILD) -Dprefix=$(PREFIX)
	meson install -C $(BUILD)

bench: test-deps all
	@scripts/deps.sh bench
	bench/run.sh

fuzz:
	@scripts/deps.sh build fuzz
	fuzz/run.sh $(FUZZ_SECONDS)

# The crash-durability test with many more SIGKILLs than CI runs.
soak: test-deps all
	cd tests/integration && PORTCULLIS_BUILD=$(abspath $(BUILD)) PORTCULLIS_KILLS=$${PORTCULLIS_KILLS:-300} \
	  $(PYTHON) -m pytest -q -p no:cacheprovider test_durability_crash.py

clean:
	rm -rf $(BUILD) $(ASAN) build-fuzz
