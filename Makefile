# Two commands matter: `make run` and `make test`. Everything else supports them.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CONFIG ?= node.toml

.PHONY: run test lint check-chromium check-cc check-nginx bench clean

$(VENV)/.installed: pyproject.toml node/media/_rtpsend.c
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

run: $(VENV)/.installed static/vendor/hls.mjs
	$(PY) -m node --config $(CONFIG)

# Debian's chromium is what the browser tests drive (never `playwright install`).
check-chromium:
	@test -x /usr/bin/chromium || { \
	  echo "installing Debian's chromium"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	@# Reactions are emoji: without a colour emoji font the screenshots show empty boxes.
	@test -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-noto-color-emoji; }

# The native step of the WebRTC fan-out (node/media/_rtpsend.c) is compiled by pip: it
# needs a C compiler and Python's headers (the node runs without it, in Python, but the
# tests check it). Its libsrtp is pylibsrtp's own: no SRTP package to install.
check-cc:
	@command -v cc >/dev/null && $(PYTHON) -c "import os, sysconfig, sys; \
	  sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))" \
	  || { echo "installing a C compiler and Python's headers"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev python3-dev; }

# hls.js plays rooms over HLS in the web client. Pinned (version and sha512) in
# client/package-lock.json, which `npm ci` checks; the file is served as it ships (no build
# step), copied here at install time rather than kept in git.
static/vendor/hls.mjs: client/package-lock.json
	cd client && npm ci --no-audit --no-fund --loglevel=error
	mkdir -p static/vendor
	cp client/node_modules/hls.js/dist/hls.light.min.mjs $@

# Debian's nginx: the HTTP cache the HLS tests and benchmark put in front of a node
# (deploy/nginx-hls.conf). Tests start it themselves on loopback.
check-nginx:
	@test -x /usr/sbin/nginx || { \
	  echo "installing Debian's nginx"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx; }

# The independent ActivityPub peer (Fedify, pinned in its lockfile) for interop tests.
tests/fedify/node_modules/.package-lock.json: tests/fedify/package-lock.json
	cd tests/fedify && npm ci --no-audit --no-fund --loglevel=error

# axe-core (pinned in its lockfile), injected into pages for the accessibility checks.
tests/axe/node_modules/.package-lock.json: tests/axe/package-lock.json
	cd tests/axe && npm ci --no-audit --no-fund --loglevel=error

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check node federation tests bench
	$(VENV)/bin/ruff format --check node federation tests bench
	$(VENV)/bin/mypy node federation
	$(VENV)/bin/lint-imports

# Two pytest workers (pytest-xdist), a test file to a worker: most tests wait on node
# processes, browsers and the network, so two workers finish well before one on 2 cores.
test: check-cc $(VENV)/.installed static/vendor/hls.mjs check-chromium check-nginx tests/fedify/node_modules/.package-lock.json tests/axe/node_modules/.package-lock.json lint
	$(PY) -m pytest -q -n 2 --dist loadfile tests

bench: $(VENV)/.installed check-chromium check-nginx
	$(PY) -m bench.run_all

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
