# Two commands matter: `make run` and `make test`. Everything else supports them.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CONFIG ?= node.toml

.PHONY: run test lint check-chromium bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

run: $(VENV)/.installed
	$(PY) -m node --config $(CONFIG)

# Debian's chromium is what the browser tests drive (never `playwright install`).
check-chromium:
	@test -x /usr/bin/chromium || { \
	  echo "installing Debian's chromium"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# The independent ActivityPub peer (Fedify, pinned in its lockfile) for interop tests.
tests/fedify/node_modules/.package-lock.json: tests/fedify/package-lock.json
	cd tests/fedify && npm ci --no-audit --no-fund --loglevel=error

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check node federation tests bench
	$(VENV)/bin/ruff format --check node federation tests bench
	$(VENV)/bin/mypy node federation

# axe-core (pinned in its lockfile), injected into pages for the accessibility checks.
tests/axe/node_modules/.package-lock.json: tests/axe/package-lock.json
	cd tests/axe && npm ci --no-audit --no-fund --loglevel=error

test: $(VENV)/.installed check-chromium tests/fedify/node_modules/.package-lock.json tests/axe/node_modules/.package-lock.json lint
	$(PY) -m pytest -q tests

bench: $(VENV)/.installed
	$(PY) -m bench.run_all

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
