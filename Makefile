# Kehu CRM — developer entry points. Quick start: `make run` (app with demo data), `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: run test setup backend frontend spa lint check-api chromium clean help

help:
	@echo "make run    set everything up, migrate an SQLite database, add demo data, serve on http://$(HOST):$(PORT)"
	@echo "make test   set everything up and run the whole test suite (KEHU_TEST_DATABASE_URL=... for PostgreSQL)"
	@echo "make lint   ruff, mypy, import contracts, alembic check, generated API client up to date"

run: setup
	$(BIN)/kehu migrate
	$(BIN)/kehu seed-demo
	@$(BIN)/kehu demo-logins
	@echo "Kehu CRM: open http://$(HOST):$(PORT)/  (API under /api/v1, docs at /docs)"
	$(BIN)/kehu serve --host $(HOST) --port $(PORT)

test: setup chromium
	$(BIN)/python -m pytest $(PYTEST_ARGS)

setup: backend spa

# Python: a virtual environment with the locked dependencies (uv installs them quickly).
backend: $(VENV)/.installed

$(VENV)/.installed: requirements-dev.lock pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Kehu needs Python 3.11+"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==0.13.9
	$(BIN)/uv pip sync --quiet --python $(BIN)/python requirements-dev.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

# Front end: npm packages from the lock file, then the production build served at /.
frontend: frontend/node_modules/.installed

frontend/node_modules/.installed: frontend/package-lock.json frontend/package.json
	cd frontend && npm ci --no-audit --no-fund --loglevel=error
	touch $@

SPA_SOURCES := $(shell find frontend/src frontend/public frontend/index.html frontend/vite.config.ts frontend/tsconfig*.json -type f 2>/dev/null)

spa: frontend/dist/index.html

frontend/dist/index.html: frontend/node_modules/.installed $(SPA_SOURCES)
	cd frontend && npm run --silent build
	touch $@

# Browser tests drive Debian's Chromium; install it when we may (root with apt), else they skip.
chromium:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; \
	  else \
	    echo "chromium not found: the browser tests (tests/e2e) will be skipped"; \
	  fi; \
	fi

lint: backend frontend
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy app
	$(BIN)/lint-imports
	KEHU_DATABASE_URL=sqlite+aiosqlite:///$$(mktemp -d)/check.db bash -c '$(BIN)/alembic -q upgrade head && $(BIN)/alembic -q check'
	cd frontend && npm run --silent check:api

check-api: backend frontend
	cd frontend && npm run --silent check:api

clean:
	rm -rf $(VENV) frontend/node_modules frontend/dist var
