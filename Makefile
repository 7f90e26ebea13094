# EdgeQuant build entry points. `make demo` and `make test` work on a fresh machine: they restore NuGet
# packages, fetch the pinned native runtimes from npm and install the Debian packages the tests compare against.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CONFIG ?= Release
DOTNET ?= dotnet
CLI := $(DOTNET) src/EdgeQuant.Cli/bin/$(CONFIG)/net10.0/edgequant.dll
FIXTURES := $(DOTNET) tools/EdgeQuant.Fixtures/bin/$(CONFIG)/net10.0/EdgeQuant.Fixtures.dll
DEMO_DIR ?= demo-out

.PHONY: all build restore test demo bench runtimes test-deps clean publish-tool

all: build

restore:
	$(DOTNET) restore EdgeQuant.sln

build: restore
	$(DOTNET) build EdgeQuant.sln -c $(CONFIG) --no-restore -nologo -clp:ErrorsOnly

runtimes:
	bash tools/fetch-runtimes.sh

test-deps:
	bash tools/install-test-deps.sh

test: build runtimes test-deps
	bash tools/run-tests.sh $(CONFIG)

demo: build runtimes
	rm -rf $(DEMO_DIR) && mkdir -p $(DEMO_DIR)
	$(FIXTURES) --arch llama --preset demo --out $(DEMO_DIR)/fixture-llama --format both --seed 7
	$(CLI) inspect $(DEMO_DIR)/fixture-llama/gguf/model.gguf
	$(CLI) inspect $(DEMO_DIR)/fixture-llama/hf

# OpenBLAS (from test-deps) is the GEMM peer; OPENBLAS_CORETYPE is removed because this environment pins it to
# Haswell, which halves OpenBLAS on AVX-512 machines (the bench also warns if it still sees it). BENCH=filter.
bench: build runtimes test-deps
	env -u OPENBLAS_CORETYPE $(DOTNET) run -c $(CONFIG) --no-build --project tests/EdgeQuant.Benchmarks -- $(BENCH)

publish-tool: build
	$(DOTNET) pack src/EdgeQuant.Cli -c $(CONFIG) --no-build -o artifacts/tool

clean:
	$(DOTNET) clean EdgeQuant.sln -c $(CONFIG) -nologo >/dev/null
	rm -rf $(DEMO_DIR) artifacts
