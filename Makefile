# streamplane: `make run` runs the product, `make test` runs every check and test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
BUF := node_modules/.bin/buf

.PHONY: setup run test unit lint import-graph typecheck proto-lint streaming-proto kafka-jars venv bench clean

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml hatch_build.py scripts/gen_proto.py $(wildcard proto/streamplane/*/v1/*.proto)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,rl]'
	@touch $@

$(BUF): package.json
	npm install --no-audit --no-fund --silent
	@touch $@

kafka-jars: venv
	$(PY) -c "from streamplane.dev.broker import ensure_jars; print('kafka jars:', ensure_jars())"

## streaming-proto: generate the Python stubs from proto/ and lint the contracts
streaming-proto: venv $(BUF)
	$(PY) scripts/gen_proto.py
	cd proto && ../$(BUF) lint

proto-lint: $(BUF)
	cd proto && ../$(BUF) lint

lint: venv
	$(BIN)/ruff check src tests scripts hatch_build.py
	$(BIN)/ruff format --check src tests scripts hatch_build.py
	$(BIN)/lint-imports

## import-graph: the package import graph as Mermaid (docs/architecture.md embeds it)
import-graph: venv
	$(PY) scripts/import_graph.py

typecheck: venv
	$(BIN)/mypy

## run: the product through Dagster: Kafka, the Dagster UI on http://127.0.0.1:3000 with
## the sensors that start the supervisor and worker runs, and a demo producer; Ctrl-C stops it
run: venv kafka-jars
	$(PY) -m streamplane.dev.dagster_dev

unit: venv
	$(BIN)/pytest tests/unit -q

## setup: the system side of `make test` (Debian packages, single-node Slurm, a Docker
## daemon), idempotent; as root it installs and starts what is missing (scripts/setup-system.sh)
setup:
	@bash scripts/setup-system.sh

## test: lint, types, proto lint, then every test (real Kafka included)
test: setup venv kafka-jars proto-lint lint typecheck
	$(BIN)/pytest -q $(PYTEST_ARGS)

bench: venv kafka-jars
	$(BIN)/streamplane bench

clean:
	rm -rf $(VENV) node_modules .data build dist .pytest_cache .mypy_cache .ruff_cache

# The container stack: streaming-env, -build, -up, -logs, -down (docs/streaming-stack.md)
include docker/streaming/streaming.mk
