# `make demo` and `make test` set everything up on a fresh machine (Python 3.11).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint install clean

install: $(STAMP)

# Re-runs only when pyproject.toml changes; pip then installs only what is missing.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/casestudy run --config demo --overwrite

lint: $(STAMP)
	$(BIN)/ruff check casestudy autograder tests benchmarks

test: lint
	$(BIN)/pytest

clean:
	rm -rf runs data/synthetic
