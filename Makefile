# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch first and pinned: on this project's machines `torch==2.13.0` is a local CPU build,
# while an unpinned `torch` would pull a multi-GB CUDA build. The package itself takes a range.
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup demo test test-fast test-e2e test-slurm lint benchmark gpu-check clean

setup: $(VENV)/.installed

# pip installs without compiling bytecode; compileall then compiles it on every CPU (pip
# does it file by file: 14 s more on 2 cores). Like pip, it skips files that do not compile
# (torch ships a test file in Python 3.12 syntax).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --no-compile "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet --no-compile -e ".[test]"
	$(PY) -m compileall -q -j 0 $(VENV)/lib > /dev/null || true
	touch $@

demo: setup
	$(PY) -m fastesm_extract.demo demo/checkpoint
	$(VENV)/bin/fastesm-extract extract examples -o demo/out --model demo/checkpoint --device cpu
	$(PY) -c "import torch; d = torch.load('demo/out/output_1_ESM.pt', weights_only=True); \
	print('demo/out/output_1_ESM.pt:', len(d['proteins']), 'proteins,', \
	tuple(d['data'][0].shape), d['data'][0].dtype, '(RANDOM demo weights)')"

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/ruff format --check src tests benchmarks examples

# Lanes are pytest markers (pyproject.toml): unit (in one process), e2e (starts processes),
# slurm (a one-node cluster). `make test` runs every lane and is the CI entry (.ci/run);
# -rs lists each skipped test with its reason. Tests run in TEST_WORKERS pytest-xdist
# workers (default: one more than the CPUs this process may use, at most 4: the cluster
# group's worker spends minutes waiting on Slurm); tests sharing costly fixtures keep to one
# worker (xdist groups, tests/conftest.py). TEST_WORKERS=0: no workers.
TEST_WORKERS ?= $(shell $(PYTHON) -c "import os; print(min(4, len(os.sched_getaffinity(0)) + 1))")
PYTEST := $(PY) -m pytest -q -rs -n $(TEST_WORKERS) --dist loadgroup

test: setup lint
	$(PYTEST)

test-fast: setup
	$(PYTEST) -m unit

test-e2e: setup
	$(PYTEST) -m e2e

test-slurm: setup
	$(PYTEST) -m slurm

benchmark: setup
	$(PY) benchmarks/bench_extract.py
	$(PY) benchmarks/bench_workers.py

# On a lent GPU machine: its own python3, torch and transformers, no venv, no install. Writes
# gpu_check.json/.md and the CUDA tests' log under $OUT (see benchmarks/gpu_check.py).
gpu-check:
	PYTHONPATH=src PYTHONUNBUFFERED=1 $(PYTHON) benchmarks/gpu_check.py --out "$${OUT:-gpu-check-out}" $(GPU_CHECK_ARGS)

clean:
	rm -rf demo $(VENV)
