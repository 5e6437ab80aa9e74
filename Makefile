# pipesl — two commands do everything on a fresh machine:
#   make demo   create .venv if missing, install, run the main job on the default scenario
#   make test   create .venv if missing, install, run the whole suite (ruff, mypy, pytest)
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

.PHONY: demo test lint typecheck venv clean bench

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

# pytest exits 5 when it collects no tests; make treats any non-zero exit as a failure.
test: $(STAMP) lint
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/planner.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache .mypy_cache
