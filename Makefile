# The two commands of the README: `make up` runs the system, `make test` runs every test.
# Both set up a virtual environment from the lock file first, so a fresh clone needs only Python 3.11+.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9

.PHONY: setup up demo test check clean

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: pyproject.toml uv.lock | $(BIN)/uv
	# --inexact keeps uv itself in the environment it manages.
	UV_PROJECT_ENVIRONMENT=$(VENV) $(BIN)/uv sync --frozen --inexact --extra dev
	touch $@

setup: $(VENV)/.synced

up: setup
	$(BIN)/pmo up

demo: setup
	$(BIN)/pmo demo

test: setup
	$(BIN)/python -m pytest

check: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shared services pmo tests bench

clean:
	rm -rf $(VENV) .pmo .mypy_cache .ruff_cache .pytest_cache
