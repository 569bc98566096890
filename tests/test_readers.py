"""Malformed BEIR data fails with the file and line at fault."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from rankbench.harness.errors import DataError
from rankbench.harness.readers import BeirSource, iter_beir_docs, read_beir_qrels, read_beir_queries, read_trec_qrels
from tests.conftest import TINY_DOCS, write_beir


def docs_of(folder: Path) -> list:
    return list(iter_beir_docs(BeirSource(folder)))


def test_reads_folder_and_zip_alike(tiny_beir: Path, tmp_path: Path):
    archive = shutil.make_archive(str(tmp_path / "tiny"), "zip", root_dir=tmp_path, base_dir="tiny")
    from_zip = list(iter_beir_docs(BeirSource(Path(archive))))
    assert from_zip == docs_of(tiny_beir)
    assert [d.docid for d in from_zip] == ["d1", "d2", "d3", "q2"]
    assert from_zip[0].title == "Goldfish"
    assert BeirSource(Path(archive)).display("corpus.jsonl").endswith("tiny.zip!tiny/corpus.jsonl")


def test_corpus_line_that_is_not_json_names_file_and_line(tmp_path: Path):
    folder = write_beir(tmp_path / "bad", corpus_lines=[json.dumps(TINY_DOCS[0]), '{"_id": "d2", "text": '])
    with pytest.raises(DataError, match=r"bad/corpus\.jsonl line 2: not valid JSON"):
        docs_of(folder)


def test_corpus_line_without_id_names_file_and_line(tmp_path: Path):
    lines = [json.dumps(TINY_DOCS[0]), "", json.dumps({"title": "t", "text": "no id"})]
    folder = write_beir(tmp_path / "bad", corpus_lines=lines)
    with pytest.raises(DataError, match=r'corpus\.jsonl line 3: missing required field "_id"'):
        docs_of(folder)


def test_corpus_line_that_is_not_an_object(tmp_path: Path):
    folder = write_beir(tmp_path / "bad", corpus_lines=['["d1", "text"]'])
    with pytest.raises(DataError, match="line 1: expected a JSON object, got list"):
        docs_of(folder)


def test_duplicate_doc_ids_name_both_lines(tmp_path: Path):
    lines = [json.dumps(d) for d in TINY_DOCS] + [json.dumps({"_id": "d2", "text": "again"})]
    folder = write_beir(tmp_path / "dup", corpus_lines=lines)
    with pytest.raises(DataError, match=r'line 5: duplicate document id "d2" \(first on line 2\)'):
        docs_of(folder)


def test_empty_corpus_is_an_error(tmp_path: Path):
    folder = write_beir(tmp_path / "empty", corpus_lines=["", "   "])
    with pytest.raises(DataError, match="corpus is empty"):
        docs_of(folder)


def test_missing_title_and_text_become_empty_strings(tmp_path: Path):
    folder = write_beir(tmp_path / "sparse", corpus_lines=[json.dumps({"_id": 7, "text": None})])
    [doc] = docs_of(folder)
    assert (doc.docid, doc.title, doc.text) == ("7", "", "")


def test_queries_and_qrels(tiny_beir: Path):
    source = BeirSource(tiny_beir)
    assert sorted(read_beir_queries(source)) == ["q1", "q2", "q3"]
    assert read_beir_qrels(source, "test") == {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 2}}


def test_malformed_qrels_line(tiny_beir: Path):
    (tiny_beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\tyes\n")
    with pytest.raises(DataError, match=r"test\.tsv line 2: relevance 'yes' is not a number"):
        read_beir_qrels(BeirSource(tiny_beir), "test")


def test_trec_qrels_wrong_column_count(tmp_path: Path):
    path = tmp_path / "qrels.txt"
    path.write_text("1 0 d1 1\n2 d2 1\n")
    with pytest.raises(DataError, match=r"qrels\.txt line 2: expected 4 columns"):
        read_trec_qrels(path)


def test_zip_without_corpus(tmp_path: Path):
    archive = tmp_path / "x.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("readme.txt", "nothing here")
    with pytest.raises(DataError, match=r"zip holds no corpus\.jsonl"):
        BeirSource(archive)
