# EdgeQuant build entry points. `make demo` and `make test` work on a fresh machine: they restore NuGet
# packages, fetch the pinned native runtimes from npm and install the Debian packages the tests compare against.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CONFIG ?= Release
DOTNET ?= dotnet
CLI := $(DOTNET) src/EdgeQuant.Cli/bin/$(CONFIG)/net10.0/edgequant.dll
FIXTURES := $(DOTNET) tools/EdgeQuant.Fixtures/bin/$(CONFIG)/net10.0/EdgeQuant.Fixtures.dll
DEMO_DIR ?= demo-out

.PHONY: all build restore test demo bench runtimes test-deps clean publish-tool publish-runner

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
	$(FIXTURES) --arch llama --preset demo --layers 4 --embd 256 --heads 4 --kv-heads 2 --ffn 768 --vocab 512 --untied \
		--out $(DEMO_DIR)/fixture-llama --format both --seed 7
	$(CLI) inspect $(DEMO_DIR)/fixture-llama/hf
	$(CLI) imatrix $(DEMO_DIR)/fixture-llama/hf --text pipelines/demo/calibration.txt --ctx 128 -o $(DEMO_DIR)/fixture-llama.imatrix
	$(CLI) quantize $(DEMO_DIR)/fixture-llama/hf --type Q4_K_M --imatrix $(DEMO_DIR)/fixture-llama.imatrix -o $(DEMO_DIR)/fixture-llama-Q4_K_M.gguf
	$(CLI) reference $(DEMO_DIR)/fixture-llama/gguf/model.gguf --text pipelines/demo/eval.txt --ctx 128 -o $(DEMO_DIR)/fixture-llama.eqref
	$(CLI) verify $(DEMO_DIR)/fixture-llama-Q4_K_M.gguf --reference $(DEMO_DIR)/fixture-llama.eqref --threads 1 --report $(DEMO_DIR)/report
	cat $(DEMO_DIR)/report/report.md
	@echo "HTML report: $(DEMO_DIR)/report/report.html"

# OpenBLAS (from test-deps) is the GEMM peer; OPENBLAS_CORETYPE is removed because this environment pins it to
# Haswell, which halves OpenBLAS on AVX-512 machines (the bench also warns if it still sees it). BENCH=filter.
bench: build runtimes test-deps
	env -u OPENBLAS_CORETYPE $(DOTNET) run -c $(CONFIG) --no-build --project tests/EdgeQuant.Benchmarks -- $(BENCH)

publish-tool: build
	$(DOTNET) pack src/EdgeQuant.Cli -c $(CONFIG) --no-build -o artifacts/tool

# The on-device runner: artifacts/runner/edgequant-<rid>/ (+ .tar.gz) with the pinned native runtimes;
# self-contained single file for linux-x64, framework-dependent for linux-arm64 (docs/publish-runner.md).
publish-runner: runtimes
	CONFIG=$(CONFIG) DOTNET=$(DOTNET) bash tools/publish-runner.sh

clean:
	$(DOTNET) clean EdgeQuant.sln -c $(CONFIG) -nologo >/dev/null
	rm -rf $(DEMO_DIR) artifacts
