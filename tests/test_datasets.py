"""Dataset resolution: explicit path, data root, ir_datasets; clear errors when none works."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from pathlib import Path

import pytest

from rankbench.harness.datasets import load_dataset, natural_key
from rankbench.harness.errors import DatasetUnavailable
from tests.conftest import SHARED_DATA, run_python, write_beir


def beir_cfg(name: str = "tiny", **extra) -> dict:
    cfg = {"name": name, "beir_name": name, "split": "test", "path": None, "ir_datasets_id": None}
    cfg.update(topics=None, qrels=None)
    return {**cfg, **extra}


def test_explicit_path_wins_over_data_root(tiny_beir: Path, tmp_path: Path):
    root = tmp_path / "root"
    write_beir(root / "beir" / "tiny", queries=[{"_id": "q1", "text": "other"}], qrels=[("q1", "d1", 1)])
    dataset = load_dataset(beir_cfg(path=str(tiny_beir)), str(root))
    assert [q.qid for q in dataset.queries] == ["q1", "q2", "q3"]
    assert dataset.source == str(tiny_beir)


def test_data_root_folder(tmp_path: Path):
    write_beir(tmp_path / "root" / "beir" / "tiny")
    dataset = load_dataset(beir_cfg(), str(tmp_path / "root"))
    assert len(list(dataset.corpus)) == 4
    assert dataset.corpus.fingerprint.startswith("sha256:")


def test_qrels_for_unknown_queries_are_warned_and_counted(tmp_path: Path, caplog):
    folder = write_beir(tmp_path / "tiny", qrels=[("q1", "d1", 1), ("q9", "d2", 1), ("q10", "d3", 1)])
    with caplog.at_level(logging.WARNING):
        dataset = load_dataset(beir_cfg(path=str(folder)), None)
    assert dataset.unknown_qrels_queries == ["q9", "q10"]  # natural order
    assert "qrels name 2 queries missing from the topics" in caplog.text
    assert [q.qid for q in dataset.queries] == ["q1"]  # only judged queries are evaluated


def test_missing_explicit_path(tmp_path: Path):
    with pytest.raises(DatasetUnavailable, match=r"dataset\.path=.*nowhere does not exist"):
        load_dataset(beir_cfg(path=str(tmp_path / "nowhere")), None)


def load_in_subprocess(cfg: dict, data_root: str | None, irds_home: Path) -> subprocess.CompletedProcess:
    """ir_datasets fixes its home folder at import, so each home needs a fresh interpreter."""
    code = (
        "import json, sys; from rankbench.harness.datasets import load_dataset\n"
        "d = load_dataset(json.loads(sys.argv[1]), sys.argv[2] or None)\n"
        "c = d.corpus\n"
        "print(json.dumps([len(d.queries), sum(map(len, d.qrels.values())), c.count_hint(), c.fingerprint]))"
    )
    env = {"IR_DATASETS_HOME": str(irds_home)}
    return run_python("-c", code, json.dumps(cfg), data_root or "", env=env, check=False)


def test_unresolvable_offline_says_where_it_looked(tmp_path: Path):
    cfg = beir_cfg("nfcorpus", ir_datasets_id="beir/nfcorpus/test")
    result = load_in_subprocess(cfg, str(tmp_path / "empty-root"), tmp_path / "irds")
    assert result.returncode != 0
    message = result.stderr
    assert "DatasetUnavailable: dataset 'nfcorpus' could not be resolved" in message
    assert "dataset 'nfcorpus' could not be resolved" in message
    assert str(tmp_path / "empty-root" / "beir" / "nfcorpus.zip") in message
    assert "ir_datasets 'beir/nfcorpus/test'" in message and str(tmp_path / "irds") in message
    assert "To provide it" in message


def test_ir_datasets_staged_source_works_offline(tmp_path: Path):
    """The user path: ir_datasets with its source zip staged under IR_DATASETS_HOME."""
    home = tmp_path / "irds"
    (home / "beir" / "scifact").mkdir(parents=True)
    shutil.copy(SHARED_DATA / "beir" / "scifact.zip", home / "beir" / "scifact" / "source.zip")
    result = load_in_subprocess(beir_cfg("scifact", ir_datasets_id="beir/scifact/test"), None, home)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.splitlines()[-1]) == [300, 339, 5183, "ir_datasets:beir/scifact"]


def test_anserini_topics_with_data_root_still_need_a_corpus(tmp_path: Path):
    """MS MARCO layout: topics/qrels from Anserini files, but no corpus offline: a clear error."""
    cfg = {"name": "dl19", "beir_name": None, "split": None, "path": None}
    cfg |= {"ir_datasets_id": "msmarco-passage/trec-dl-2019/judged"}
    cfg |= {"topics": "topics.dl19-passage.txt", "qrels": "qrels.dl19-passage.txt"}
    result = load_in_subprocess(cfg, str(SHARED_DATA), tmp_path / "irds")
    assert "dataset 'dl19' could not be resolved" in result.stderr
    assert str(SHARED_DATA / "topics-qrels" / "topics.dl19-passage.txt") in result.stderr


def test_natural_qid_order():
    assert sorted(["10", "2", "b", "1", "a"], key=natural_key) == ["1", "2", "10", "a", "b"]
    assert sorted(["q10", "q9", "q1a", "q1"], key=natural_key) == ["q1", "q1a", "q9", "q10"]
