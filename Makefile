VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: all init lint test test-fast build demo bench clean

all: lint test

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install --upgrade pip wheel >/dev/null

init: $(PY)
	$(PIP) install -e '.[dev]'

lint: $(PY)
	$(VENV)/bin/ruff check plldb tests benchmarks
	$(VENV)/bin/cfn-lint plldb/infra/template.yaml
	$(VENV)/bin/lint-imports

test: $(PY)
	$(VENV)/bin/pytest -q

test-fast: $(PY)
	$(VENV)/bin/pytest -q -m "not e2e"

build: $(PY)
	$(PY) -m plldb.cloud.packaging dist

demo: init
	$(PY) -m tests.harness.demo $(ARGS)

bench: init
	$(PY) -m benchmarks $(ARGS)

clean:
	rm -rf dist build .pytest_cache *.egg-info
