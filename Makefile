# Two commands for a fresh machine: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SYSDEPS_STAMP := $(VENV)/.sysdeps
# Debian packages the platform, tests and benchmarks drive as real processes (haproxy is the
# geo topology's edge, which `make run` uses too).
DEBIAN_PACKAGES := haproxy wrk prometheus prometheus-alertmanager chromium chromium-driver
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=

.PHONY: run test lint typecheck check bench screenshots serve seed clean help sysdeps venv

help:
	@echo "make run    - create .venv, install, run the baseline and capacity scenarios and open the results"
	@echo "make test   - create .venv if needed, install everything, run every test"
	@echo "make bench  - run the ratio benchmarks side by side and print the figures"
	@echo "make lint   - ruff + mypy"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Installs the Debian packages once per machine (apt-get needs root: sudo is used if needed),
# and again when this Makefile changes the list. haproxy lands in /usr/sbin, which a user's
# PATH may lack: it is looked for there too (the geo supervisor does the same).
$(SYSDEPS_STAMP): Makefile | $(STAMP)
	@missing=""; PATH="$$PATH:/usr/sbin:/usr/local/sbin"; \
	for cmd in haproxy wrk promtool prometheus prometheus-alertmanager chromium chromedriver; do \
	  command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$cmd"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages (missing:$$missing)"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(DEBIAN_PACKAGES); \
	fi
	touch $(SYSDEPS_STAMP)

sysdeps: $(SYSDEPS_STAMP)

test: $(STAMP) $(SYSDEPS_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy pitchey pitchey_cli loadtests gate collectors alerts dashboards testing

check: lint test

# The main job: the baseline geo scenario against the embedded platform (it seeds demo data
# and starts the platform itself), then the capacity breakpoint run (arrivals in steps until
# p95 passes the target: the measured capacity of one instance), then the dashboard on the runs
# they wrote. `pitchey run` exits with the gate's verdict (1 breach, 3 invalid); the `-`
# prefixes keep going either way, and the dashboard shows why.
run: $(STAMP) $(SYSDEPS_STAMP)
	-$(BIN)/pitchey run baseline --out runs
	-$(BIN)/pitchey run capacity --out runs
	@echo "opening the dashboard on runs/ at http://127.0.0.1:8050 (Ctrl-C to stop)"
	$(BIN)/pitchey dashboard --runs runs

serve: $(STAMP)
	$(BIN)/pitchey serve

seed: $(STAMP)
	$(BIN)/pitchey seed

bench: $(STAMP) $(SYSDEPS_STAMP)
	$(BIN)/python -m benchmarks

screenshots: $(STAMP) $(SYSDEPS_STAMP)
	$(BIN)/python -m dashboards.screenshots --out screenshots

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache pitchey.db pitchey.db-* runs screenshots
