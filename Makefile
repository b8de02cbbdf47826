# emoget: `make run` sets everything up and starts the page; `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.emoget-installed
PORT ?= 8501

.PHONY: setup node run demo test test-fast bench data browser lint clean

NODE_DIR := face2emoticon/styledata
NODE_STAMP := $(NODE_DIR)/node_modules/.package-lock.json

setup: $(STAMP) node

# The vector stylizer's renderer (DiceBear + Twemoji + resvg, pinned by package-lock.json).
node: $(NODE_STAMP)

$(NODE_STAMP): $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	@command -v npm >/dev/null || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }
	@if command -v npm >/dev/null; then \
		cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.package-lock.json; \
	else \
		echo "npm not found: install Node.js 18+ for the vector stylizer (the neural one works without it)"; \
	fi

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check -r requirements.txt
	$(PIP) install -q --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	$(PIP) install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

# Server settings (headless, no usage statistics, the 10 MB upload limit) are in .streamlit/config.toml.
run: setup
	$(VENV)/bin/streamlit run ui/app.py --server.port $(PORT)

# The sample photos in every style: drawn with the styles' vector art, and by the shipped generator.
demo: setup
	$(VENV)/bin/emoget demo -o out/
	$(VENV)/bin/emoget demo -o out/gan --stylizer gan

# Debian's Chromium for the browser test (no browser download); skipped where it is already there.
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: setup browser
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not browser and not slow"

bench: setup
	$(PY) -m bench

data: setup
	$(PY) -m face2emoticon.styledata --out data

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf out .pytest_cache
