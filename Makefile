# The README's two commands: `make demo` and `make test`. Everything else is below them.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
REVIEWS := $(VENV)/bin/reviews
# Default data: the shared Amazon review files beside the project (never copied into it).
DATA ?= $(wildcard ../shared/data)
STAMP := $(VENV)/.installed
# The storefront's browser tests drive Debian's Chromium (Playwright never downloads a browser here).
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
# The alert rules' unit tests run Debian's promtool; the Alertmanager's configuration is checked by amtool.
PROMTOOL := /usr/bin/promtool
AMTOOL := /usr/bin/amtool

# Every target runs on the local stack, whose secrets are published placeholders: only ENVIRONMENT=local
# accepts them (unset means production's rules).
export ENVIRONMENT := local

.PHONY: demo test install browser monitoring-tools bench chaos stack-down clean

$(PY):
	python3 -m venv $(VENV)

# torch first and alone: pip then takes the CPU build on disk instead of a CUDA download.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --disable-pip-version-check -q torch==2.13.0
	$(PY) -m pip install --disable-pip-version-check -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Only when missing. A failed install does not stop `make test`: the browser tests then fail, saying so.
$(CHROMIUM):
	-$(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver

browser: $(CHROMIUM)

# Only when missing, like Chromium; without them the monitoring tests fail, saying so.
# --no-install-recommends: the tools, not a node exporter.
$(PROMTOOL):
	-$(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus

$(AMTOOL):
	-$(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus-alertmanager

monitoring-tools: $(PROMTOOL) $(AMTOOL)

# The API benchmark's load generator (Debian's wrk), installed like Chromium: only when missing.
WRK := /usr/bin/wrk
$(WRK):
	-$(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk

demo: install
	$(PY) -m ops.demo --data "$(DATA)"

test: install browser monitoring-tools
	$(PY) -m pytest $(PYTEST_ARGS)

# Speed and memory figures, on the real local stack (never part of `make test`).
bench: install $(WRK)
	$(PY) -m bench.run $(if $(ONLY),--only $(ONLY))

# Faults during real runs (bench/chaos.py, 8 min on a quiet 2-core machine, ~21 min loaded): its section of BENCHMARKS.md. Not in `make bench`.
chaos: install $(WRK)
	$(PY) -m bench.run --only chaos

stack-down:
	$(REVIEWS) stack down

clean: stack-down
	rm -rf .stack
