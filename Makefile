# The README's two commands: `make demo` and `make test`. Both set up .venv first: the demo
# only what the daemon needs; the tests add training (TensorFlow, about 2.4 GB) and pytest.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# setuptools ends every editable install of a flat layout with a boxed note that a folder named
# like the package in the working directory can shadow it. Nothing painedge starts looks there
# (the demo's daemon drops the current folder from sys.path), so the note would only puzzle.
PIP    := PYTHONWARNINGS="ignore:Editable installation" $(BIN)/pip
# pip's installs run with -qq: errors still show, but not the warnings a machine's own pip
# configuration can print by the dozen (index folders it lists but does not have).

.PHONY: demo test test-fast lint setup setup-test clean

setup: $(VENV)/.installed
setup-test: $(VENV)/.installed-test

$(VENV)/.installed: pyproject.toml
	scripts/setup-system
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --quiet --upgrade pip
	$(PIP) install --quiet --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	scripts/setup-system --test
	$(PIP) install --quiet --quiet -e '.[train,dev]'
	touch $@

demo: setup
	$(BIN)/painedge demo

# Node.js's Ajv checks the wire schema in the tests (a validator that is not Python).
tests/node/node_modules/.package-lock.json: tests/node/package-lock.json
	cd tests/node && npm ci --no-audit --no-fund --loglevel=error

# Four workers (pytest-xdist), each given whole modules (--dist loadfile; tests/conftest.py keeps the TensorFlow
# modules on one worker): most tests wait on sockets, processes and timers, so four share 2 cores well (measured
# here, the whole suite: 148 s with four workers, 153 s with three).
test: setup-test tests/node/node_modules/.package-lock.json
	$(BIN)/python -m pytest -n 4 --dist loadfile

# The inner loop: every test not marked slow (no daemon process, no long fuzz, no training), in seconds.
test-fast: setup-test tests/node/node_modules/.package-lock.json
	$(BIN)/python -m pytest -m "not slow" -q

# What .ci/run checks before the tests: ruff (its rules in pyproject.toml) and mypy on the package
# ([tool.mypy] in pyproject.toml); both come with the dev extra.
lint: setup-test
	$(BIN)/ruff check painedge tests
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info
