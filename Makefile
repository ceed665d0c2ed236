# `make demo` and `make test` set everything up on a fresh machine (Python 3.11).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint install clean book

install: $(STAMP)

# Re-runs only when pyproject.toml or constraints.txt changes; pip then installs only what is
# missing, at the exact versions of constraints.txt.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/casestudy run --config demo --overwrite

lint: $(STAMP)
	$(BIN)/ruff check casestudy autograder tests benchmarks book/build.py

# The book into book/_build/html: npm installs MathJax when needed, every page runs (cached),
# warnings are errors. CASESTUDY_BOOK_DATA=course|FOLDER builds it on real data.
book: $(STAMP)
	$(BIN)/python book/build.py

# The browser test (tests/test_book.py) checks the build just made instead of building again.
# Test files run on TEST_JOBS processes (a file's tests stay together: they share fixtures).
TEST_JOBS ?= 2
test: lint book
	CASESTUDY_BOOK_BUILT=1 $(BIN)/pytest -n $(TEST_JOBS) --dist loadfile

clean:
	rm -rf runs data/synthetic
