# authgate: `make run` starts a dev server on SQLite, `make test` runs the whole suite.
# Both create .venv and install the project (with pinned dependencies) on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install compile run test bench clean lint

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Byte-compile the sources up front: start-up then reads .pyc even where PYTHONDONTWRITEBYTECODE
# is set (as on CI machines), instead of compiling ~12k lines on every start.
compile: install
	$(BIN)/python -m compileall -q src

run: compile
	$(BIN)/authgate migrate
	$(BIN)/authgate serve

# The machine's PostgreSQL and Redis are used when they answer (scripts/test-services prints
# the variables); tests that need them skip outside CI when absent and fail under CI=true.
test: install
	$(BIN)/ruff check $(LINT_RULES) src tests bench
	$(BIN)/mypy src bench
	bash scripts/ci-packages
	eval "$$($(BIN)/python scripts/test-services)" && $(BIN)/python -m pytest $(PYTEST_ARGS)

bench: compile
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) *.db *.db-wal *.db-shm .pytest_cache

# Static checks (pyflakes-level and a few bugbear rules, and mypy --strict over src and bench: the
# [tool.mypy] table in pyproject.toml); `make test` runs them first.
LINT_RULES := --select F,E9,B006,B017,B023
lint: install
	$(BIN)/ruff check $(LINT_RULES) src tests bench
	$(BIN)/mypy src bench
