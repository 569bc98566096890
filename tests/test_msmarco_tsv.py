"""MS MARCO passage from its official TSV layout: the same reading path a user's download takes."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from rankbench.harness.datasets import load_dataset
from rankbench.harness.errors import DataError, DatasetUnavailable
from rankbench.harness.experiment import run_experiment
from rankbench.harness.types import Doc

PASSAGES = {
    "101": "The aardvark digs a burrow at night to find ants.",
    "102": "A rabbit burrow runs under the old hedge in the field.",
    "103": "Zebra herds graze on the open savanna grass every day.",
    "104": "Zebra stripes may confuse biting flies near water.",
    "105": "Café crème in Zürich costs 5 €; 東京 has cheaper tea.",
}
TOPICS = ["bread", "rivers", "copper", "violins", "glaciers", "tides", "orchards", "lanterns", "comets", "ferries"]
FILLER = {str(200 + i): f"Note {i} on {TOPICS[i % 10]} and the weather of season {i // 10}." for i in range(30)}
QUERIES = {"1001": "aardvark burrow", "1002": "zebra stripes", "1003": "cheap tea in tokyo"}  # 1003 is unjudged
QRELS = [("1001", "101", 3), ("1001", "102", 0), ("1002", "103", 2), ("1002", "104", 1)]


def write_msmarco(folder: Path, collection_lines: list[str] | None = None) -> Path:
    """collection.tsv, queries.tiny.tsv and a TREC qrels file, as MS MARCO ships them."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = collection_lines or [f"{pid}\t{text}" for pid, text in {**PASSAGES, **FILLER}.items()]
    (folder / "collection.tsv").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    (folder / "queries.tiny.tsv").write_text("".join(f"{qid}\t{text}\n" for qid, text in QUERIES.items()))
    (folder / "qrels.tiny.txt").write_text("".join(f"{q} 0 {d} {r}\n" for q, d, r in QRELS))
    return folder


def dl19_cfg(folder: Path, **extra: str | None) -> dict:
    """conf/dataset/dl19.yaml's keys with the path and file names of the tiny collection."""
    cfg = {"name": "dl19", "beir_name": None, "split": None, "path": str(folder), "ir_datasets_id": None}
    cfg |= {"topics": "topics.dl19-passage.txt", "queries": "queries.tiny.tsv", "qrels": "qrels.tiny.txt"}
    return {**cfg, **extra}


def test_dl19_on_the_official_tsv_layout_end_to_end(make_cfg, tmp_path: Path):
    folder = write_msmarco(tmp_path / "msmarco")
    overrides = ["dataset.queries=queries.tiny.tsv", "dataset.qrels=qrels.tiny.txt"]
    outcome = run_experiment(make_cfg("dataset=dl19", f"dataset.path={folder}", *overrides))
    run: dict[str, list[str]] = {}
    for line in (outcome.run_dir / "run.trec").read_text().splitlines():
        qid, _, docid, *_ = line.split()
        run.setdefault(qid, []).append(docid)
    assert set(run) == {"1001", "1002"}  # the unjudged query is not evaluated
    assert run["1001"] == ["101", "102"]  # both rare words beat one of them
    assert run["1002"] == ["104", "103"]
    # By hand from the qrels: nDCG's gain is the grade; AP, RR and R count grade >= 2 only.
    ndcg_1002 = (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3))
    assert outcome.metrics["nDCG@10"] == pytest.approx((1.0 + ndcg_1002) / 2, abs=1e-9)
    assert outcome.metrics["AP(rel=2)"] == pytest.approx((1.0 + 1 / 2) / 2)
    assert outcome.metrics["RR(rel=2)@10"] == pytest.approx((1.0 + 1 / 2) / 2)
    assert outcome.metrics["R(rel=2)@100"] == pytest.approx(1.0)
    assert outcome.run_dir.parts[-3] == "dl19"


def test_reranking_fetches_tsv_passages_from_the_store(make_cfg, tmp_path: Path):
    folder = write_msmarco(tmp_path / "msmarco")
    overrides = ["dataset.queries=queries.tiny.tsv", "dataset.qrels=qrels.tiny.txt"]
    reranker = ["+reranker._target_=tests.fakes.ScriptedLengthScorer", "reranker.name=length", "+reranker.depth=2"]
    outcome = run_experiment(make_cfg("dataset=dl19", f"dataset.path={folder}", *overrides, *reranker))
    first = outcome.run_dir / "run.trec"
    ranked = [line.split()[2] for line in first.read_text().splitlines() if line.startswith("1002 ")]
    assert ranked == ["103", "104"]  # the longer passage first: the scorer saw the real texts
    assert len(list((tmp_path / "runs" / "cache" / "docstore").glob("*/docs.sqlite"))) == 1


def test_passages_read_back_exactly(tmp_path: Path):
    dataset = load_dataset(dl19_cfg(write_msmarco(tmp_path / "mm")), None, tmp_path / "cache")
    assert dataset.corpus.get_many({"105", "999"}) == {"105": Doc("105", "", PASSAGES["105"])}
    assert len(list(dataset.corpus)) == len(PASSAGES) + len(FILLER)
    assert dataset.source == str(tmp_path / "mm")


def test_queries_fall_back_to_the_data_root_topics(tmp_path: Path):
    folder = write_msmarco(tmp_path / "mm")
    (folder / "queries.tiny.tsv").unlink()
    root = tmp_path / "root"
    (root / "topics-qrels").mkdir(parents=True)
    (root / "topics-qrels" / "topics.dl19-passage.txt").write_text("1001\taardvark burrow\n1002\tzebra\n")
    dataset = load_dataset(dl19_cfg(folder), str(root), tmp_path / "cache")
    assert [q.text for q in dataset.queries] == ["aardvark burrow", "zebra"]


def test_a_missing_queries_file_says_where_it_looked(tmp_path: Path):
    folder = write_msmarco(tmp_path / "mm")
    with pytest.raises(DatasetUnavailable) as error:
        load_dataset(dl19_cfg(folder, queries="queries.dev.small.tsv"), None)
    message = str(error.value)
    assert str(folder / "queries.dev.small.tsv") + " (dataset.queries)" in message
    assert str(folder / "topics.dl19-passage.txt") + " (dataset.topics)" in message
    assert "dataset.queries=<file name" in message


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("103 no tab between id and text", "expected 2 tab-separated columns (docid, text), got 1"),
        ("103\ttext\textra column", "expected 2 tab-separated columns (docid, text), got 3"),
        ("\torphan passage without an id", "empty docid before the tab"),
    ],
)
def test_malformed_collection_lines_name_file_and_line(tmp_path: Path, line: str, expected: str):
    folder = write_msmarco(tmp_path / "mm", ["101\tfine", "102\talso fine", line])
    corpus = load_dataset(dl19_cfg(folder), None).corpus
    with pytest.raises(DataError) as error:
        list(corpus)
    assert str(error.value) == f"{folder / 'collection.tsv'} line 3: {expected}"


def test_non_utf8_collection_line_names_file_and_line(tmp_path: Path):
    folder = write_msmarco(tmp_path / "mm", ["101\tfine"])
    with open(folder / "collection.tsv", "ab") as f:
        f.write(b"102\tLatin-1 caf\xe9\n")
    with pytest.raises(DataError, match=r"collection\.tsv line 2: not UTF-8"):
        list(load_dataset(dl19_cfg(folder), None).corpus)


def test_malformed_queries_and_qrels_name_file_and_line(tmp_path: Path):
    folder = write_msmarco(tmp_path / "mm")
    (folder / "queries.tiny.tsv").write_text("1001\taardvark burrow\n1002 zebra stripes\n")
    with pytest.raises(DataError, match=r"queries\.tiny\.tsv line 2: expected qid<TAB>text"):
        load_dataset(dl19_cfg(folder), None)
    write_msmarco(folder)
    (folder / "qrels.tiny.txt").write_text("1001 0 101 3\n1002 103 2\n")
    with pytest.raises(DataError, match=r"qrels\.tiny\.txt line 2: expected 4 columns \(qid iter docid rel\), got 3"):
        load_dataset(dl19_cfg(folder), None)


def test_a_folder_of_neither_layout_is_named(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"expected a BEIR folder .* or an MS MARCO-style folder"):
        load_dataset(dl19_cfg(tmp_path / "empty"), None)
