# The README's two commands: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test setup clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	scripts/setup-system
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[train,dev]'
	touch $@

demo: setup
	$(BIN)/painedge demo

# Node.js's Ajv checks the wire schema in the tests (a validator that is not Python).
tests/node/node_modules/.package-lock.json: tests/node/package-lock.json
	cd tests/node && npm ci --no-audit --no-fund --loglevel=error

test: setup tests/node/node_modules/.package-lock.json
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) build *.egg-info
