# The README's commands. Needs only Python 3.11+ (python3, or PYTHON=python3.12 make demo); everything else is
# installed from PyPI into .venv, again only when pyproject.toml changes.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check
DEMO_DB := chipp-demo.db
HOST ?= 127.0.0.1
PORT ?= 8000
SESSIONS ?= 200

.PHONY: demo test test-sqlite lint clean

## make demo: a fresh demo database (chipp-demo.db), served on http://$(HOST):$(PORT), with a key and a curl line
# --fresh deletes chipp-demo.db only after checking the port: a busy port stops it before anything changes.
demo: $(VENV)/.installed-server
	$(BIN)/chipp-builder demo --fresh --database-url sqlite:///$(DEMO_DB) --sessions $(SESSIONS) \
		--serve --host $(HOST) --port $(PORT)

## make test: the whole test suite. PostgreSQL and Redis cases use CHIPP_TEST_POSTGRES_URL / CHIPP_TEST_REDIS_URL,
## else whatever listens on 127.0.0.1:5432 and :6379, and skip when nothing does
test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## make lint: ruff on the code and tests, mypy --strict on the package (CI runs it before the tests)
lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests
	$(BIN)/mypy --strict src

clean:
	rm -rf $(VENV) $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm .pytest_cache .mypy_cache .ruff_cache

## make test-sqlite: the suite on SQLite only; the PostgreSQL and Redis cases skip even when those servers are up
test-sqlite: $(VENV)/.installed-dev
	CHIPP_TEST_POSTGRES_URL=off CHIPP_TEST_REDIS_URL=off $(BIN)/python -m pytest $(PYTEST_ARGS)

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "chipp-builder needs Python 3.11 or newer: run e.g. 'make PYTHON=python3.11 $(MAKECMDGOALS)'"; exit 1; }
	$(PYTHON) -m venv $(VENV)

# Stamps: reinstall only when pyproject.toml is newer than the last install.
$(VENV)/.installed-server: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e '.[server]'
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e '.[dev]'
	@touch $@
