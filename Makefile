# pipesl — two commands do everything on a fresh machine:
#   make demo   create .venv if missing, install, run the main job on the default scenario
#   make test   create .venv if missing, install, run the whole suite (ruff, mypy, pytest):
#               what CI runs, under 10 min here
#   make test-fast   the edit loop: ruff, mypy and the tests that spawn no process, in 2 min
#
# torch is installed *before* the package: `pip install torch==2.13.0` takes the CPU wheel
# that lies on this machine's disk; an unpinned torch would download a multi-GB CUDA build.
# See DEVELOPERS.md.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
TORCH  ?= torch==2.13.0
PYTEST_ARGS ?=
# Tests that spawn no process run on TEST_WORKERS pytest-xdist workers, a file per worker
# (module fixtures stay shared); the process-spawning ones (marker `distributed`, each one
# already several processes) run alone afterwards.
TEST_WORKERS ?= 2
XDIST := -p xdist -n $(TEST_WORKERS) --dist loadfile
FAST := not distributed and not slow

.PHONY: demo test test-fast lint typecheck venv clean bench bench-cli

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e '.[torch,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/pipesl demo

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# Two runs, one verdict (tools/test_suite.py): the tests that spawn no process on
# TEST_WORKERS xdist workers, then the distributed ones alone. pytest exits 5 when it selects
# no test: the suite fails then; only one of its halves may be empty, and it says so.
test: $(STAMP) lint
	$(PY) tools/test_suite.py --workers $(TEST_WORKERS) $(PYTEST_ARGS)

# Under two minutes: neither process-spawning nor slow tests.
test-fast: $(STAMP) lint
	$(PY) -m pytest -q $(XDIST) -m "$(FAST)" $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/planner.py

bench-cli: $(STAMP)
	$(PY) benchmarks/cli_startup.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache .mypy_cache
