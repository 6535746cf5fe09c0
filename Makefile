# The two commands of the README: `make up` runs the system, `make test` runs every test.
# Both set up a virtual environment from the lock file first, so a fresh clone needs only Python 3.11+.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9

CHROMIUM := /usr/bin/chromium

.PHONY: setup browser up demo test test-fast check clean

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: pyproject.toml uv.lock | $(BIN)/uv
	# --inexact keeps uv itself in the environment it manages. --compile-bytecode: each of the
	# five processes of `pmo up` would otherwise compile its libraries at every start (where
	# PYTHONDONTWRITEBYTECODE is set, as in CI and the image), twice the CPU of importing them.
	UV_PROJECT_ENVIRONMENT=$(VENV) $(BIN)/uv sync --frozen --inexact --extra dev --compile-bytecode
	touch $@

setup: $(VENV)/.synced

# The dashboard's browser tests drive Debian's Chromium through Playwright (never a browser
# download): installed once from Debian's packages when missing and we are root.
browser:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get > /dev/null; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    apt-get update -q > /dev/null && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	      chromium fonts-dejavu-core > /dev/null; \
	  else \
	    echo "make test: the dashboard tests need Chromium: sudo apt-get install chromium"; \
	  fi; \
	fi

up: setup
	$(BIN)/pmo up

demo: setup
	$(BIN)/pmo demo

test: setup browser
	$(BIN)/python -m pytest

# The fast lane: the tests marked `fast` (rules on the fake unit of work, domain, contracts),
# which start no broker and reach no database; `make test` runs them too, with all the rest.
test-fast: setup
	$(BIN)/python -m pytest -m fast

check: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shared services pmo tests bench

clean:
	rm -rf $(VENV) .pmo .mypy_cache .ruff_cache .pytest_cache
