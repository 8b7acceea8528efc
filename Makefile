# Meterline: `make run` (fresh machine → running with demo data) and `make test` (the whole suite).
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
# The compiled OTLP span reader (ingest/span_wire.py), built from its C source on every install.
SPANWIRE := $(sort $(wildcard native/spanwire/*.c native/spanwire/*.h)) native/spanwire/setup.py native/spanwire/pyproject.toml
STAMP  := $(VENV)/.installed-$(shell cat requirements.in requirements-dev.in requirements.lock sdk/python/pyproject.toml $(SPANWIRE) | sha1sum | cut -c1-12)
HOST   ?= 127.0.0.1
PORT   ?= 8000
# The address links in alerts point at: the one `make run` serves on, unless set explicitly
# (behind a proxy, or when HOST is 0.0.0.0, which no browser can open).
METERLINE_BASE_URL ?= http://$(HOST):$(PORT)

.PHONY: install focus-validator browser run test lint typecheck bench-ingest bench-query bench-sdk bench-dashboards bench-alerts bench-faults bench-advisor bench-capacity migrate cluster-snapshot clean

$(STAMP): requirements.in requirements-dev.in requirements.lock sdk/python/pyproject.toml $(SPANWIRE)
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found (Meterline needs CPython 3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.in -r requirements-dev.in -c requirements.lock
	$(BIN)/pip install --disable-pip-version-check -q --no-deps -e ./sdk/python
	@command -v $${CC:-cc} >/dev/null || { echo "a C compiler ($${CC:-cc}) is needed to build native/spanwire"; exit 1; }
	$(BIN)/pip install --disable-pip-version-check -q --no-deps --force-reinstall ./native/spanwire
	$(BIN)/python -c "import meterline_spanwire"
	rm -f $(VENV)/.installed-* && touch $@

# The FinOps Foundation's FOCUS validator, for the FOCUS export tests, in a virtualenv of its own:
# its pins (pandas<3, numpy<2) cannot share the main one. Tests find it at $(VENV)/focus-validator;
# `make test` makes it (or `make focus-validator`).
FOCUS_VALIDATOR := $(VENV)/focus-validator/bin/focus-validator
$(FOCUS_VALIDATOR): requirements-focus-validator.lock
	test -x $(VENV)/focus-validator/bin/python || $(PYTHON) -m venv $(VENV)/focus-validator
	$(VENV)/focus-validator/bin/pip install --disable-pip-version-check -q -r requirements-focus-validator.lock
	touch $@

focus-validator: $(FOCUS_VALIDATOR)

install: $(STAMP)

migrate: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py migrate_clickhouse

# The cluster DDL snapshot that ledger/tests/test_cluster_ddl.py pins: regenerate after changing a
# ClickHouse migration or ledger/clickhouse/cluster.py, then review the diff. Nothing is contacted.
cluster-snapshot: install
	CLICKHOUSE_URL=http://localhost:8123 CLICKHOUSE_CLUSTER=meterline CLICKHOUSE_DATABASE=meterline \
	CLICKHOUSE_RAW_TTL_DAYS=400 CLICKHOUSE_MINUTE_TTL_DAYS=14 CLICKHOUSE_HOUR_TTL_DAYS=730 \
	$(BIN)/python manage.py migrate_clickhouse --print-sql > ledger/tests/snapshots/clickhouse_cluster.sql

run: migrate
	$(BIN)/python manage.py collectstatic --noinput -v0
	$(BIN)/python manage.py seed_demo --url $(METERLINE_BASE_URL)/
	METERLINE_BASE_URL=$(METERLINE_BASE_URL) $(BIN)/python manage.py serve --host $(HOST) --port $(PORT)

# The browser tests drive Debian's Chromium (Playwright's own browser download needs the internet).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	$(if $(filter 0,$(shell id -u)),,sudo) sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null'

browser: $(CHROMIUM)

# The proxy test runs Debian's nginx with the shipped config in front of gunicorn; it starts its
# own nginx, so the package's system service (started by the package on systemd machines) is
# stopped and disabled right after a fresh install.
NGINX := /usr/sbin/nginx
$(NGINX):
	$(if $(filter 0,$(shell id -u)),,sudo) sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null'
	$(if $(filter 0,$(shell id -u)),,sudo) sh -c 'command -v systemctl >/dev/null && systemctl disable --now nginx >/dev/null 2>&1 || true'

# The suite in PYTEST_WORKERS processes (pytest-xdist); each worker has its own test database
# (test_<name>_gw0, …), chDB directory and Redis db (see config/settings_test.py). PYTEST_WORKERS=0: one process.
PYTEST_WORKERS ?= 2
test: install $(FOCUS_VALIDATOR) $(CHROMIUM) $(NGINX)
	$(BIN)/lint-imports
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy .

bench-ingest: install
	$(BIN)/python bench/ingest.py

bench-query: install
	$(BIN)/python bench/query.py

bench-sdk: install
	$(BIN)/python bench/sdk.py

bench-dashboards: install
	$(BIN)/python bench/dashboards.py

clean:
	rm -rf $(VENV) var

bench-alerts: install
	$(BIN)/python bench/alerts.py

bench-faults: install
	$(BIN)/python bench/faults.py

bench-advisor: install
	$(BIN)/python bench/advisor.py

bench-capacity: install
	$(BIN)/python bench/capacity.py
