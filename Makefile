# aiomove developer tasks. `make test` works on a fresh Debian machine as root.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# The real DICOM peers the tests talk to (DCMTK: storescp, echoscu, storescu, movescu, dcmqrscp).
PEER_COMMANDS := storescp echoscu

.PHONY: install peers lint format test test-fast demo daemon-demo clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -m venv --help >/dev/null 2>&1 && $(PYTHON) -c 'import ensurepip' 2>/dev/null \
	  || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

peers:
	@missing=0; for c in $(PEER_COMMANDS); do command -v $$c >/dev/null || missing=1; done; \
	if [ $$missing = 1 ]; then \
	  echo "installing DCMTK (apt-get)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq dcmtk; \
	else echo "DCMTK present: $$(command -v storescp)"; fi
	@# Orthanc (a C-MOVE source for tests/sources.py). The tests run the binary themselves on
	@# free ports; the Debian service is never used, so it is stopped and disabled after install.
	@if command -v Orthanc >/dev/null || [ -x /usr/sbin/Orthanc ]; then \
	  echo "Orthanc present: $$(command -v Orthanc || echo /usr/sbin/Orthanc)"; \
	else \
	  echo "installing Orthanc (apt-get)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq orthanc; \
	  if [ -d /run/systemd/system ]; then $(SUDO) systemctl disable --now orthanc.service || true; fi; \
	fi
	@# PostgreSQL (the daemon's shared job store). Tests run a throwaway cluster with initdb and
	@# pg_ctl as a non-root user on a free port; the Debian service is never used.
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  echo "PostgreSQL present: $$(ls -d /usr/lib/postgresql/*/bin | head -1)"; \
	else \
	  echo "installing PostgreSQL (apt-get)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
	  if [ -d /run/systemd/system ]; then $(SUDO) systemctl disable --now postgresql.service || true; fi; \
	fi

lint: install
	$(VENV)/bin/ruff check src tests fuzz bench
	$(VENV)/bin/ruff format --check src tests fuzz bench
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format src tests fuzz bench
	$(VENV)/bin/ruff check --fix src tests fuzz bench

test: install peers lint
	$(PY) -m pytest

test-fast: install
	$(PY) -m pytest tests/proto -q

# Generate a study, serve it from DCMTK dcmqrscp, retrieve it with `aiomove move`, list it.
demo: install peers
	bash scripts/demo.sh

# The retrieval daemon on SQLite: studies served by dcmqrscp, jobs submitted with `aiomove jobs
# submit` and POST /jobs, polled until done; then jobs, /metrics and files are shown (KEEP=1 keeps).
daemon-demo: install peers
	bash scripts/daemon_demo.sh

# Coverage-guided fuzzing (atheris) of the sans-IO core: FUZZ_SECONDS per target (default 60),
# seeded with the golden PDUs of tests/proto; fails if any target finds a failing input.
.PHONY: fuzz
fuzz: install
	$(PY) -m pip install -q -e '.[fuzz]'
	$(PY) fuzz/run.py

# Retrieve-to-self benchmark: DCMTK movescu, aiomove move, pynetdicom (bench/README.md).
# Data goes to a temporary directory. BENCH_ARGS passes options, e.g. BENCH_ARGS=--orthanc.
.PHONY: bench bench-quick
bench: install peers
	$(PY) bench/run.py $(BENCH_ARGS)
	$(PY) bench/jobstore.py

bench-quick: install peers
	$(PY) bench/run.py --quick $(BENCH_ARGS)
	$(PY) bench/jobstore.py --quick

clean:
	rm -rf $(VENV) build dist .mypy_cache .ruff_cache .pytest_cache
