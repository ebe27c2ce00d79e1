# One entry point for people and CI. `make run` and `make test` work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run serve sandbox test lint typecheck unit eval calibrate bench services browser clean install image

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

## Run the service with embedded defaults and a local sandbox mesh (no API key, no external mesh).
run: $(STAMP)
	$(PY) -m scripts.run_local

## Run only droplet 12, configured from the environment / .env.
serve: $(STAMP)
	$(PY) -m app.main

## Run only the sandbox Registry (8001) and Orchestrator (8010).
sandbox: $(STAMP)
	$(PY) -m sandbox

services:
	@bash scripts/ensure-services.sh

browser:
	@bash scripts/ensure-browser.sh

LINTED := app sandbox scripts tests bench alembic

lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# Most tests wait on loopback peers (sandbox mesh, PostgreSQL, a browser) rather than compute,
# so the suite runs in parallel processes (pytest-xdist); tests that share one Redis key are
# grouped onto one worker (`xdist_group`). `make test TEST_WORKERS=0` runs it in one process.
TEST_WORKERS ?= 3
PARALLEL := -n $(TEST_WORKERS) --dist loadgroup

unit: $(STAMP)
	$(PY) -m pytest -q $(PARALLEL)

# The tests that run the whole service again on PostgreSQL (the store's own tests and the
# scale-out tests cover both stores in the first pass already).
PG_SUITE := tests/channels tests/test_durability.py tests/test_llm_planning.py \
	tests/conversation/test_watches.py \
	tests/test_fault_injection.py tests/test_secrets.py tests/test_fuzz_api.py

# Line coverage of app/ by the SQLite pass; `make test` fails below it.
COVERAGE_FLOOR := 85

## Everything CI runs: set-up, lint, strict typing, the whole suite on SQLite, then on PostgreSQL.
test: $(STAMP) services browser
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/mypy
	$(PY) -m pytest -q -p no:cacheprovider $(PARALLEL) --cov=app --cov-report=term:skip-covered \
		--cov-fail-under=$(COVERAGE_FLOOR)
	TEST_STORE=postgresql $(PY) -m pytest -q -p no:cacheprovider $(PARALLEL) $(PG_SUITE)

# pyproject.toml holds the one version; the image's label and tag are taken from it.
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)

## The production image (no sandbox, no tests), labelled and tagged with the package version.
image:
	docker build --build-arg VERSION=$(VERSION) -t chat-orchestrator:$(VERSION) .

## Accuracy per split and category, misses, calibration (ARGS="--split test --misses 0").
eval: $(STAMP)
	$(PY) -m tests.eval.run_eval $(ARGS)

## Refit the offline planner's confidence and the hybrid threshold on the calib split.
calibrate: $(STAMP)
	$(PY) -m tests.eval.calibrate $(ARGS)

bench: $(STAMP)
	$(PY) -m bench.run $(ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
