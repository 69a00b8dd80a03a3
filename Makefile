# Two commands on a fresh machine: `make demo` and `make test`.
# Each creates or refreshes .venv and installs everything itself.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast install tools clean

# constraints.txt pins every package, torch==2.13.0 included. On Linux x86_64 PyPI's torch
# 2.13.0 is the CUDA build (several GB of nvidia-* wheels); this project's machines get the CPU
# build (2.13.0+cpu, which the pin admits) because their pip config offers that wheel locally.
# Elsewhere add the PyTorch CPU index for it, as deploy/Dockerfile does.
$(STAMP): pyproject.toml constraints.txt Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/strata demo

# Prometheus, Alertmanager's amtool and Chromium from Debian: the monitoring and profile-page tests run them for real.
tools:
	deploy/test-tools.sh

test: $(STAMP) tools
	$(BIN)/pytest -q

# Unit tests only: skips the real-broker tests (CI always runs `make test`).
test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not broker"

clean:
	rm -rf $(VENV) .pytest_cache
