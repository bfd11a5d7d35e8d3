# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv and install first.
PYTHON ?= python3
VENV ?= .venv
STAMP := $(VENV)/.installed-stamp
ARGS ?=

.PHONY: install lock demo demo-quick test lint clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Pin the packages of the current .venv (run after changing dependencies in pyproject.toml).
lock: $(STAMP)
	{ head -n 2 constraints.txt; $(VENV)/bin/pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

demo: $(STAMP)
	$(VENV)/bin/panoptic-st demo $(ARGS)

demo-quick: $(STAMP)
	$(VENV)/bin/panoptic-st demo --quick --out runs/demo-quick --data data/toy-quick $(ARGS)

test: $(STAMP)
	$(VENV)/bin/pytest -q $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check panoptic_st tests experiments

clean:
	rm -rf runs data/toy data/toy-quick .pytest_cache
