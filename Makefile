# `make run`: the quickstart (offline, CPU-sized). `make test`: the test suite.
# Both create .venv and install the project (with its test extra) the first time.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-fast bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,parallel,slurm]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) run.py experiment=quickstart

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

bench: $(STAMP)
	$(PY) -m freezeout.bench

clean:
	rm -rf outputs multirun .pytest_cache
