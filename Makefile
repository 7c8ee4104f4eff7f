# mailseal — the two everyday commands are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EXTRAS := dev,server,hsm,ldap,gateway,escrow

.PHONY: run test lint bench format clean venv interop compile

# setup.py builds the optional compiled part (src/mailseal/mime/_speedups.c) when a C
# compiler is there; without one the pure-Python code is used.
$(STAMP): pyproject.toml setup.py src/mailseal/mime/_speedups.c
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	@touch $(STAMP)

venv: $(STAMP)

# Byte-compile mailseal as installing a wheel would: where the environment forbids writing
# bytecode at import time (PYTHONDONTWRITEBYTECODE), every start would compile the sources.
# Quick when nothing changed.
compile: $(STAMP)
	@$(BIN)/python -m compileall -q src/mailseal

# `make run` serves a demo organisation kept in .mailseal-demo (created on first start);
# PORT=8081 make run picks another port.
RUN_HOME ?= $(CURDIR)/.mailseal-demo
PORT     ?= 8080
run: compile
	MAILSEAL_HOME=$(RUN_HOME) $(BIN)/mailseal serve --demo --port $(PORT)

test: compile
	$(BIN)/python -m pytest $(PYTEST_ARGS)

interop: $(STAMP)
	MAILSEAL_REQUIRE_PEERS=1 $(BIN)/python -m pytest tests/interop $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench: compile
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
	find src -name '*.so' -delete
	find src tests bench -name __pycache__ -type d -prune -exec rm -rf {} +
