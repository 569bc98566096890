# Every target creates .venv (Python 3.11) and installs the pinned stack when missing.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

# Offline benchmark data: use ../shared/data when it exists and nothing else was set.
RANKBENCH_DATA_ROOT ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)
export RANKBENCH_DATA_ROOT

.PHONY: run test lint check-extras bench tune reproduce clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench,onnx,joblib,submitit,optuna,ray]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python evaluate.py

test: $(STAMP) check-extras
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

# Every optional extra (launchers, sweeper, benchmark peers) is installed for the tests:
# show that they sit beside the pinned stack without a broken requirement.
check-extras: $(STAMP)
	$(BIN)/pip check

lint: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python benchmarks/bm25.py
	$(BIN)/python benchmarks/dense.py

# Optuna on SciFact train, then the best k1/b evaluated once on SciFact test.
TUNED := runs/tune/bm25-scifact-train/optimization_results.yaml
tune: $(STAMP)
	$(BIN)/python evaluate.py experiment=tune_bm25
	$(BIN)/python evaluate.py retriever.name=bm25_tuned $$($(BIN)/python -m harness.tune $(TUNED))

reproduce: $(STAMP)
	$(BIN)/python evaluate.py -m retriever=bm25,bm25_multifield,dense overwrite=true
	$(BIN)/python evaluate.py -m retriever=hybrid retriever.method=rrf,linear overwrite=true
	$(BIN)/python evaluate.py retriever=hybrid retriever.method=linear retriever.normalization=zscore overwrite=true
	$(MAKE) tune

clean:
	rm -rf $(VENV) runs/*/ runs/leaderboard.csv
