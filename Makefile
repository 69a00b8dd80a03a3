# Two commands on a fresh machine: `make demo` and `make test`.
# Each creates or refreshes .venv and installs everything itself.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The CPU build; an open range would pull a several-GB CUDA build.
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast install clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# One resolver sees every requirement at once, so transformers cannot
	# upgrade click past what faust-streaming allows.
	$(BIN)/pip install --quiet "$(TORCH)" -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/strata demo

test: $(STAMP)
	$(BIN)/pytest -q

# Unit tests only: skips the real-broker tests (CI always runs `make test`).
test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not broker"

clean:
	rm -rf $(VENV) .pytest_cache
