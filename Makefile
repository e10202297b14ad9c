# The two commands a user needs: `make demo` (the main job) and `make test`.
# Both do all set-up on a fresh machine: Debian packages, the Python venv with pinned
# dependencies, and the Go-built control plane (cached outside the repository).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export TBO_CACHE ?= $(HOME)/.cache/timeout-budget-operator

.PHONY: setup venv binaries system-deps lint test test-unit test-integration test-reliability demo clean

setup: system-deps venv binaries

system-deps:
	@bash sandbox/install-system-deps.sh

$(VENV)/.installed: pyproject.toml
	@echo "[venv] creating $(VENV) and installing pinned dependencies" >&2
	@$(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip==24.3.1
	@$(PY) -m pip install -q -e '.[dev]'
	@touch $@

venv: $(VENV)/.installed

binaries:
	@bash sandbox/build-binaries.sh all

lint: venv
	$(VENV)/bin/ruff check operator sandbox tests bench
	$(VENV)/bin/ruff format --check operator sandbox tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test-unit: venv
	$(PY) -m pytest -m unit -q

# Everything: unit, integration, e2e and the reliability suite (which regenerates
# docs/reliability.md).
test: setup lint
	$(PY) -m pytest -q

# The reliability suite alone (faults, hostile input, secrets; about 8 minutes on two cores).
test-reliability: setup
	$(PY) -m pytest tests/reliability -q

demo: setup
	$(PY) -m sandbox.demo $(DEMO_ARGS)

# Thousands of routes per cycle on the sandbox (bench/README.md); e.g. BENCH_ARGS='--routes 1000'.
.PHONY: bench
bench: setup
	$(PY) -m bench.run $(BENCH_ARGS)

# One replica against two shards at 10,000 routes, and the fast lane's reaction
# (bench/README.md, "Sharding and the fast lane"); e.g. SHARDS_ARGS='--routes 1000'.
.PHONY: bench-shards
bench-shards: setup
	$(PY) -m bench.bench_shards $(SHARDS_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
