# Thin wrapper over CMake. The README's two commands are `make demo` and
# `make test`; both install missing Debian packages first.
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=

.PHONY: deps configure build demo causality-demo test asan asan-subset fuzz fuzz-smoke fuzz-build bench clean

deps:
	@bash scripts/install-deps.sh

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja $(CMAKE_ARGS)

configure: deps $(BUILD)/build.ninja

build: configure
	cmake --build $(BUILD) -j $(JOBS)

# The local demo network: a relay and three nodes as real processes on
# loopback (scripts/demo-network.sh; DEMO_ARGS=--keep leaves it running).
demo: build
	bash scripts/demo-network.sh --build $(BUILD) $(DEMO_ARGS)

# The in-process causality walk-through (was the first demo).
causality-demo: build
	$(BUILD)/node/kith-causality-demo

# The suite, then a 10 s run of every fuzz target and its regression
# inputs (clang build in $(FUZZ_BUILD); docs/fuzzing.md), then the
# sanitizer subset below.
test: build fuzz-build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)
	ctest --test-dir $(FUZZ_BUILD) -L fuzz --output-on-failure -j $(JOBS)
	$(MAKE) --no-print-directory asan-subset

# The part of `make asan` that `make test` (and so CI) runs: the libraries
# without CAF (causality, protocol, storage, the relay core) and their
# tests, under ASan + UBSan, in $(ASAN_BUILD). The actor, node and process
# tests need the CAF libraries built with the sanitizers too, which would
# double CI's time: they run in `make asan`. The relay's 20,000-peer
# footprint test is left out too (12 minutes under ASan).
ASAN_SUBSET = kith_causality_tests kith_protocol_tests kith_storage_tests kith_relay_tests
asan-subset: deps
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DKITH_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug $(CMAKE_ARGS)
	cmake --build $(ASAN_BUILD) -j $(JOBS) --target $(ASAN_SUBSET)
	ctest --test-dir $(ASAN_BUILD) -R '^(causality|protocol|storage|relay):' -E 'costs the relay core' \
	      --output-on-failure -j $(JOBS)

# The whole suite under AddressSanitizer + UndefinedBehaviorSanitizer.
asan: deps
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DKITH_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug $(CMAKE_ARGS)
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	ctest --test-dir $(ASAN_BUILD) --output-on-failure -j $(JOBS)

# libFuzzer targets (clang-14, $(FUZZ_BUILD)); docs/fuzzing.md. Each target
# fuzzes 60 s (fuzz) or 10 s (fuzz-smoke), up to nproc at a time.
fuzz: deps
	FUZZ_BUILD=$(FUZZ_BUILD) bash scripts/fuzz.sh 60

fuzz-smoke: deps
	FUZZ_BUILD=$(FUZZ_BUILD) bash scripts/fuzz.sh 10

# Only configures and builds them (the ctest entries labelled "fuzz" run
# them: ctest --test-dir $(FUZZ_BUILD) -L fuzz).
fuzz-build: deps
	FUZZ_BUILD=$(FUZZ_BUILD) bash scripts/fuzz.sh 0

# The benchmark suite (scripts/bench.sh, docs/benchmarks.md): every
# workload at full size (~15 minutes), one JSON file in out/bench/ and a
# table of figure vs baseline vs target. BENCH_ARGS=--quick for a smoke
# run (a minute or two), BENCH_ARGS="--only relay,sim" for some workloads.
BENCH_ARGS ?=
bench: build
	bash scripts/bench.sh --build $(BUILD) $(BENCH_ARGS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
