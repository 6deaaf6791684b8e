# One entry point per job; .ci/run calls `make test` verbatim (the README's test command).
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed-stamp
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

AXE := .cache/npm/node_modules/axe-core/axe.min.js

.PHONY: demo demo-postgres serve test lint typecheck unit bench browser clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $(STAMP)

## The gateway plus a demo site on the embedded defaults (SQLite under ./data, bundled GeoLite2); its first start
## writes labelled sample data (SAMPLE=0 leaves it out) and queues a scan of the demo site, which needs Chromium.
DEMO_FLAGS := $(if $(filter 0,$(SAMPLE)),--no-sample-data)
demo: $(STAMP) browser
	$(VENV)/bin/consent-gateway demo $(DEMO_FLAGS)

## The same demo on PostgreSQL: a throwaway cluster under .cache/postgres (Debian's packages), deleted at Ctrl-C.
demo-postgres: $(STAMP) browser
	$(PYTHON) scripts/postgres_cluster.py run --database consent_gateway_demo --database-env CONSENT_GATEWAY_DATABASE \
		-- $(VENV)/bin/consent-gateway demo $(DEMO_FLAGS)

## Debian's chromium for the browser tests and the demo's first scan (Playwright cannot download its own here).
browser:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null; }

## axe-core from the npm registry, for the accessibility checks of the banner and dialog.
$(AXE):
	npm install --silent --no-audit --no-fund --prefix .cache/npm axe-core@4

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

## The suite on both stores: a throwaway PostgreSQL cluster is up for pytest's length (stopped and deleted even when
## pytest fails; its exit status is pytest's). PYTEST_ARGS narrows a run: make unit PYTEST_ARGS=tests/storage
unit: $(STAMP) browser $(AXE)
	$(PYTHON) scripts/postgres_cluster.py run -- $(VENV)/bin/pytest $(PYTEST_ARGS)

## Everything: lint, types, the whole suite on SQLite and on PostgreSQL.
test: lint typecheck unit

bench: $(STAMP) browser
	@command -v wrk >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq wrk >/dev/null; }
	$(VENV)/bin/python bench/middleware.py
	$(VENV)/bin/python bench/ingest.py
	$(VENV)/bin/python bench/ingest.py --store postgresql
	$(VENV)/bin/python bench/snippet_size.py
	$(VENV)/bin/python bench/snippet_timing.py
	$(VENV)/bin/python bench/dashboard.py
	$(VENV)/bin/python bench/dashboard.py --store postgresql

clean:
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache .hypothesis
