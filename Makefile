# `make run`: the quickstart (offline, CPU-sized). `make test`: the test suite. `make gpu-check`: on a
# machine with one NVIDIA GPU, the CUDA tests then the GPU benchmark, at most 8 minutes (without a GPU
# the CUDA tests skip, saying why, and the benchmark runs as a CPU smoke test).
# All create .venv and install the project (with its test extra) the first time.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-fast bench gpu-check clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[all,dev,parallel,slurm,cluster]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) run.py experiment=quickstart

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

bench: $(STAMP)
	$(PY) -m freezeout.bench

# At most 150 s of CUDA tests, then (whatever they gave) at most 330 s of benchmark (it skips fp32
# when bf16 took half of it); exits with the tests' status when they failed, else the benchmark's.
gpu-check: $(STAMP)
	$(PY) -m freezeout.bench.gpucheckall --out bench-results --tests-s 150 --bench-s 330 --budget-s 300

clean:
	rm -rf outputs multirun .pytest_cache
