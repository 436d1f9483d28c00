# ReelRank: `make run` does the main job, `make test` runs the suite. `make help` lists all.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
LOCK := requirements.lock

DATASET ?= ml-100k
SOURCE ?=
RUN_ARGS ?=
RAY ?=

.PHONY: help install run test lint typecheck format lock clean benchmark report serve up down up-local down-local audit

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml $(LOCK)
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=/path/to/python3.11 ...'"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -c $(LOCK) -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install the project from the lock file

run: $(STAMP) ## Run the whole pipeline (DATASET=ml-100k|ml-1m|synthetic, SOURCE=path/to/zip)
	$(BIN)/reelrank run --dataset $(DATASET) $(if $(SOURCE),--source $(SOURCE)) $(RUN_ARGS)

test: $(STAMP) ## Run the test suite (installs promtool from Debian's packages when it can)
	@scripts/system_tools.sh
	$(BIN)/pytest -n 2 --dist loadfile

lint: $(STAMP) ## ruff check + format check + the import contracts (import-linter)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: $(STAMP) ## Format the code with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

audit: $(STAMP) ## pip-audit over the pinned lock (skips with a message when no advisory service answers)
	$(PY) scripts/audit.py

typecheck: $(STAMP) ## mypy over the library, pipelines and serving
	$(BIN)/mypy

lock: ## Re-resolve dependencies and rewrite requirements.lock (needs network to PyPI)
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --upgrade "pip>=24" && .lock-venv/bin/pip install --quiet -e ".[dev]"
	.lock-venv/bin/pip freeze --exclude-editable | grep -v '^-e' > $(LOCK)
	rm -rf .lock-venv

serve: $(STAMP) ## Serve the champion model with uvicorn
	$(BIN)/reelrank serve

report: $(STAMP) ## Regenerate design_docs/results from the latest runs
	$(BIN)/reelrank report

benchmark: $(STAMP) ## Run the speed benchmarks under benchmarks/ (each prints its figures)
	$(PY) benchmarks/feature_store_latency.py
	$(PY) benchmarks/serving.py

up: ## Bring the production topology up with Docker Compose (needs a Docker engine)
	docker compose up -d --build

down: ## Stop the Docker Compose stack
	docker compose down

up-local: $(STAMP) ## The same services as local processes (Postgres, Redis running); RUN_ARGS for `reelrank run`, RAY=1 adds the Ray cluster
	$(PY) scripts/local_stack.py up $(if $(RUN_ARGS),--run-args "$(RUN_ARGS)") $(if $(RAY),--ray)

down-local: $(STAMP) ## Stop the local-process stack
	$(PY) scripts/local_stack.py down

clean: ## Remove caches (keeps data/ and .venv)
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis
