# Every target creates .venv (Python 3.11) and installs the pinned stack when missing.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

# Offline benchmark data: use ../shared/data when it exists and nothing else was set.
RANKBENCH_DATA_ROOT ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)
export RANKBENCH_DATA_ROOT

.PHONY: run test lint bench reproduce clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python evaluate.py

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python benchmarks/bm25.py

reproduce: $(STAMP)
	$(BIN)/python evaluate.py -m retriever=bm25,bm25_multifield overwrite=true

clean:
	rm -rf $(VENV) runs/*/ runs/leaderboard.csv
