# Everything a fresh machine needs: `make demo` runs the main job, `make test` the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export LITELLM_LOCAL_MODEL_COST_MAP := True

.PHONY: setup browser postgres lint typecheck test test-fast demo bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# Chromium for the browser tests and the demo: an existing one (RECORDER_CHROMIUM,
# /usr/bin/chromium or a Playwright-managed build) is used as it is; otherwise Debian's
# package is installed when we are root, and the way to get one is printed when not.
browser: $(STAMP)
	@$(BIN)/python -m recorder.integrations.browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  else \
	    echo "no Chromium found: run 'sudo apt-get install chromium' or '$(BIN)/playwright install chromium'"; exit 1; \
	  fi; }

# Postgres for the Postgres store's tests: the suite starts its own throwaway cluster from
# Debian's server binaries (/usr/lib/postgresql/*/bin); they are installed when we are
# root, and the way to get them is printed when not. No server is started here.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql; \
	  else \
	    echo "no Postgres server found: run 'sudo apt-get install postgresql' (the Postgres store's tests skip without it, and fail under CI=true)"; exit 1; \
	  fi; }

setup: $(STAMP) browser postgres

lint: $(STAMP)
	$(BIN)/ruff check recorder fixtures tests
	$(BIN)/ruff format --check recorder fixtures tests

typecheck: $(STAMP)
	$(BIN)/mypy

test: setup lint typecheck
	$(BIN)/python -m pytest -q --durations=30

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

demo: setup
	$(BIN)/python -m fixtures.demo

bench: setup
	$(BIN)/python tests/bench/bench_llm.py
	$(BIN)/python tests/bench/bench_browser.py
	$(BIN)/python tests/bench/bench_effects.py
	$(BIN)/python tests/bench/bench_display.py
	$(BIN)/python tests/bench/bench_fanout.py
	$(BIN)/python tests/bench/bench_postgres.py
	$(BIN)/python tests/bench/bench_dask.py

clean:
	rm -rf $(VENV) .recorder .pytest_cache .mypy_cache .ruff_cache .hypothesis
