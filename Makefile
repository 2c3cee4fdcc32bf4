# tgqr: every target creates the virtualenv and installs what it needs first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# The page's browser tests drive Debian's Chromium (Playwright cannot download its own here).
CHROMIUM := $(VENV)/.chromium-stamp
# The rules' unit tests and the end-to-end scrape run Debian's prometheus (server + promtool).
PROMETHEUS := $(VENV)/.prometheus-stamp
# The proxy tests put Debian's microsocks (a SOCKS5 proxy with a password) before the simulator.
MICROSOCKS := $(VENV)/.microsocks-stamp

.PHONY: test demo up cluster bench lint typecheck pytest screenshots clean

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

# Installs Debian's prometheus (promtool and the server) like chromium above; where it cannot,
# the rules tests fail with one line saying how to install it. No service is started.
$(PROMETHEUS): $(STAMP)
	@command -v promtool >/dev/null 2>&1 \
	  || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 \
	  || (DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 \
	      && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1) \
	  || echo "make: could not install prometheus (apt-get install -y prometheus, as root)"
	@if command -v promtool >/dev/null 2>&1; then touch $@; fi

# Installs Debian's microsocks like chromium above; where it cannot, the proxy tests fail with
# one line saying how to install it. No service is started (the tests start their own).
$(MICROSOCKS): $(STAMP)
	@command -v microsocks >/dev/null 2>&1 \
	  || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq microsocks >/dev/null 2>&1 \
	  || (DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 \
	      && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq microsocks >/dev/null 2>&1) \
	  || echo "make: could not install microsocks (apt-get install -y microsocks, as root)"
	@if command -v microsocks >/dev/null 2>&1; then touch $@; fi

pytest: $(STAMP) $(CHROMIUM) $(PROMETHEUS) $(MICROSOCKS)
	$(BIN)/pytest -q

# The README's screenshots: the end user's page (docs/page-*.png), made by its browser tests,
# and Prometheus showing tgqr's series (docs/prometheus.png), made by the end-to-end scrape.
screenshots: $(STAMP) $(CHROMIUM) $(PROMETHEUS)
	TGQR_SCREENSHOTS=docs $(BIN)/pytest -q tests/actors/gateway/page/test_browser.py \
	  tests/actors/gateway/page/test_browser_miniapp.py tests/actors/service/test_prometheus_e2e.py

demo: $(STAMP)
	$(BIN)/tgqr demo

# Three nats-servers and three instances on loopback (README, "Running more than one").
cluster: $(STAMP)
	$(BIN)/tgqr cluster

up: $(STAMP)
	$(BIN)/tgqr up

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache .hypothesis
