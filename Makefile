# The project's vocabulary: setup, test, run/demo, lint, bench.
# Override the virtualenv location with `make VENV=/path/to/venv test`.

VENV ?= .venv
PYTHON ?= python3
PYTEST_ARGS ?=
# Test processes: most tests wait on sockets, subprocesses and Postgres, so three keep
# two cores busy (each has its own PostgreSQL cluster); TEST_WORKERS=0 runs them in one.
TEST_WORKERS ?= 3

BIN := $(VENV)/bin
# Re-install only when pyproject.toml changes, so `make test` stays quick.
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := test
.PHONY: setup test run demo lint bench

setup: $(STAMP)

$(STAMP): pyproject.toml
	@.ci/system-deps >/dev/null
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e '.[dev]'
	@touch $@

# pytest exits 5 when it collected no tests: say so, and fail.
test: setup
	@status=0; $(BIN)/python -m pytest -q -n $(TEST_WORKERS) $(PYTEST_ARGS) || status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; \
	exit $$status

run: setup
	$(BIN)/crm-bridge demo

demo: run

lint: setup
	$(BIN)/ruff check bridge tests bench
	$(BIN)/mypy bridge tests bench

bench: setup
	$(BIN)/python -m bench
