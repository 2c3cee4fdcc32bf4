# tgqr: every target creates the virtualenv and installs what it needs first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# The page's browser tests drive Debian's Chromium (Playwright cannot download its own here).
CHROMIUM := $(VENV)/.chromium-stamp

.PHONY: test demo up bench lint typecheck pytest screenshots clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# Installs chromium with apt when missing (as root; `apt-get update` only if the first try
# fails). Where it cannot, the browser tests fail with one line saying how to install it.
$(CHROMIUM): $(STAMP)
	@command -v chromium >/dev/null 2>&1 \
	  || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 \
	  || (DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 \
	      && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1) \
	  || echo "make: could not install chromium (apt-get install -y chromium, as root)"
	@if command -v chromium >/dev/null 2>&1; then touch $@; fi

pytest: $(STAMP) $(CHROMIUM)
	$(BIN)/pytest -q

# The README's screenshots of the end user's page (docs/page-*.png), made by its browser tests.
screenshots: $(STAMP) $(CHROMIUM)
	TGQR_SCREENSHOTS=docs $(BIN)/pytest -q tests/actors/gateway/page/test_browser.py

demo: $(STAMP)
	$(BIN)/tgqr demo

up: $(STAMP)
	$(BIN)/tgqr up

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache .hypothesis
