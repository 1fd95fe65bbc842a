# Tunables
PYTHON ?= python3
VENV ?= .venv
PYTEST_ARGS ?=
SOAK_MINUTES ?= 30

BIN := $(VENV)/bin
RUNTIME := $(VENV)/.runtime
DEV := $(VENV)/.dev

.DEFAULT_GOAL := help
.PHONY: help install run test bench lint demo soak mac-check

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# the runtime alone: what `make run` needs, in seconds
$(RUNTIME): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# plus the test and lint tools
$(DEV): $(RUNTIME)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(RUNTIME) ## create .venv with imgdrop (runtime only)

run: $(RUNTIME) ## run the daemon in the foreground
	$(BIN)/imgdrop run

demo: $(RUNTIME) ## offline sandbox: local test hosts, a daemon, a few images; leaves nothing behind
	$(BIN)/imgdrop demo

test: $(DEV) ## run the test suite
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(DEV) ## run the benchmarks under tests/bench
	$(BIN)/pytest -p no:cacheprovider -o addopts="" tests/bench -s

soak: $(DEV) ## random drops, faults and kills for SOAK_MINUTES (default 30), then an audit
	SOAK_MINUTES=$(SOAK_MINUTES) $(BIN)/pytest -p no:cacheprovider -o addopts="" -o timeout=0 tests/soak -s

mac-check: $(RUNTIME) ## macOS self-check: screenshot, big copy, service stop/start (PASS/FAIL per step)
	$(BIN)/python -m imgdrop.maccheck

lint: $(DEV) ## ruff + mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
