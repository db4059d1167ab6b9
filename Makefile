# Two commands do all the set-up on a fresh Debian 12 machine:
#   make demo   virtualenv + install + the one-machine demo
#   make test   + Debian packages and services the tests need, then lint, types and tests
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
DEBS := mosquitto mosquitto-clients postgresql pcscd swig libpcsclite-dev vsmartcard-vpcd socat chromium fonts-dejavu-core faketime rabbitmq-server nats-server

.PHONY: demo test venv install install-test debs services lint types unit clean

venv: $(VENV)/.stamp-venv
$(VENV)/.stamp-venv:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	touch $@

$(VENV)/.stamp-install: pyproject.toml $(VENV)/.stamp-venv
	$(PIP) install -q -e '.[dev]'
	touch $@

$(VENV)/.stamp-install-test: pyproject.toml $(VENV)/.stamp-install $(VENV)/.stamp-debs
	$(PIP) install -q -e '.[dev,pcsc,faces]'
	$(PIP) install -q --no-deps face-recognition==1.3.0
	touch $@

$(VENV)/.stamp-debs: Makefile $(VENV)/.stamp-venv
	./deploy/install-debs.sh $(DEBS)
	touch $@

install: $(VENV)/.stamp-install
install-test: $(VENV)/.stamp-install-test

demo: install
	$(VENV)/bin/qaqpa demo

services: install-test
	./deploy/start-services.sh

lint: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

types: install-test
	$(VENV)/bin/mypy

# The suite in two phases (tests/support/markers.py): the tests that share nothing on
# TEST_WORKERS pytest-xdist workers, then the serial ones (integration, hardware, browser, fixed
# ports) one at a time. Both phases always run; the target fails if either did.
TEST_WORKERS ?= 3
PYTEST := $(VENV)/bin/pytest -q -p no:cacheprovider

test: services lint types
	@start=$$(date +%s); \
	$(PYTEST) -n $(TEST_WORKERS) -m "not serial"; parallel=$$?; \
	echo "make test: parallel phase exit $$parallel after $$(( $$(date +%s) - start )) s"; \
	$(PYTEST) -m serial; serial=$$?; \
	echo "make test: serial phase exit $$serial, $$(( $$(date +%s) - start )) s in all"; \
	test $$parallel -eq 0 -a $$serial -eq 0

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
