# Every target creates and uses .venv itself, so a fresh clone needs only Python 3.11+ and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test run bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

test: install
	$(BIN)/pytest -q

run: install
	$(BIN)/lifecycle dev --playbooks playbooks

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .lifecycle
