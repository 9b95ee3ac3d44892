# Every target creates and uses .venv itself, so a fresh clone needs only Python 3.11+ and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test run bench bench-release clean browser

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

test: install browser
	$(BIN)/pytest -q

run: install
	$(BIN)/lifecycle dev --playbooks playbooks

bench: install
	$(BIN)/python -m bench

# The simulator against the release issue 10 measured, alternated in one run (bench/against_release.py).
bench-release: install
	$(BIN)/python -m bench.against_release

clean:
	rm -rf $(VENV) .pytest_cache .lifecycle .bench

# The HTML report is checked in Debian's headless chromium: installed here where we may (root
# with apt-get, as in CI); elsewhere that one test is skipped unless LIFECYCLE_REQUIRE_BROWSER=1.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		echo "note: chromium is not installed: the browser test of the HTML report will be skipped"
