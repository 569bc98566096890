"""Readers for BEIR folders/zips and Anserini topic/qrels files, validating line by line.

Every error names the file and the 1-based line, so a user can fix the data by hand.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm

from rankbench.harness.errors import DataError
from rankbench.harness.types import Doc, Qrels, Query

_QUIET_BYTES = 256 << 20  # files smaller than this hash in a second or two: no bar


class BeirSource:
    """A BEIR-format dataset: a folder or zip holding corpus.jsonl, queries.jsonl, qrels/.

    A zip may hold the files at its root or under one top-level folder (as BEIR ships).
    """

    def __init__(self, path: Path):
        self.path = path
        self._zip_prefix: str | None = None
        if path.is_file():
            if not zipfile.is_zipfile(path):
                raise DataError(f"{path}: expected a BEIR folder or a .zip of one")
            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist() if n.endswith("corpus.jsonl")]
            if not names:
                raise DataError(f"{path}: zip holds no corpus.jsonl")
            self._zip_prefix = min(names, key=len).removesuffix("corpus.jsonl")

    def has(self, rel: str) -> bool:
        if self._zip_prefix is None:
            return (self.path / rel).is_file()
        with zipfile.ZipFile(self.path) as zf:
            return self._zip_prefix + rel in zf.namelist()

    def display(self, rel: str) -> str:
        if self._zip_prefix is None:
            return str(self.path / rel)
        return f"{self.path}!{self._zip_prefix}{rel}"

    @contextmanager
    def open_bytes(self, rel: str) -> Iterator[IO[bytes]]:
        if self._zip_prefix is None:
            with open(self.path / rel, "rb") as f:
                yield f
        else:
            with zipfile.ZipFile(self.path) as zf, zf.open(self._zip_prefix + rel) as f:
                yield f

    def lines(self, rel: str) -> Iterator[tuple[int, str]]:
        """(line number, text) for each line, decoded as UTF-8."""
        with self.open_bytes(rel) as raw:
            for number, line in enumerate(io.TextIOWrapper(raw, encoding="utf-8"), start=1):
                yield number, line.rstrip("\r\n")

    def size(self, rel: str) -> int:
        if self._zip_prefix is None:
            return (self.path / rel).stat().st_size
        with zipfile.ZipFile(self.path) as zf:
            return zf.getinfo(self._zip_prefix + rel).file_size

    def sha256(self, rel: str) -> str:
        with self.open_bytes(rel) as raw:
            return _stream_sha256(raw, self.size(rel), self.display(rel))


def _json_object(line: str, where: str) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _field(obj: dict[str, Any], key: str, where: str, required: bool) -> str:
    value = obj.get(key)
    if value is None:
        if required:
            raise DataError(f'{where}: missing required field "{key}"')
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise DataError(f'{where}: field "{key}" must be a string, got {type(value).__name__}')
    return str(value)


def _jsonl_records(source: BeirSource, rel: str, kind: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(where, id, object) per non-blank line; bad JSON, a missing id or a repeated id is an error."""
    first_line: dict[str, int] = {}
    for number, line in source.lines(rel):
        if not line.strip():
            continue
        where = f"{source.display(rel)} line {number}"
        obj = _json_object(line, where)
        key = _field(obj, "_id", where, required=True)
        if key in first_line:
            raise DataError(f'{where}: duplicate {kind} id "{key}" (first on line {first_line[key]})')
        first_line[key] = number
        yield where, key, obj


def iter_beir_docs(source: BeirSource) -> Iterator[Doc]:
    """Validated documents of corpus.jsonl; duplicate ids and an empty corpus are errors."""
    empty = True
    for where, docid, obj in _jsonl_records(source, "corpus.jsonl", "document"):
        empty = False
        yield Doc(docid, _field(obj, "title", where, False), _field(obj, "text", where, False))
    if empty:
        raise DataError(f"{source.display('corpus.jsonl')}: corpus is empty")


def read_beir_queries(source: BeirSource) -> dict[str, Query]:
    records = _jsonl_records(source, "queries.jsonl", "query")
    return {qid: Query(qid, _field(obj, "text", where, required=True)) for where, qid, obj in records}


def read_beir_qrels(source: BeirSource, split: str) -> Qrels:
    """qrels/<split>.tsv: an optional header, then query-id, corpus-id, score."""
    rel = f"qrels/{split}.tsv"
    qrels: Qrels = {}
    for number, line in source.lines(rel):
        cols = line.split("\t")
        if (number == 1 and cols[0] == "query-id") or not line.strip():
            continue
        where = f"{source.display(rel)} line {number}"
        if len(cols) != 3:
            raise DataError(f"{where}: expected 3 tab-separated columns (query-id, corpus-id, score), got {len(cols)}")
        qrels.setdefault(cols[0], {})[cols[1]] = _grade(cols[2], where)
    return qrels


def _grade(value: str, where: str) -> int:
    try:
        return int(float(value))
    except ValueError:
        raise DataError(f"{where}: relevance {value!r} is not a number") from None


def _text_lines(path: Path) -> Iterator[tuple[int, str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            yield number, line.rstrip("\r\n")


def read_anserini_topics(path: Path) -> dict[str, Query]:
    """Anserini TSV topics (qid<TAB>text), plain or gzipped."""
    queries: dict[str, Query] = {}
    for number, line in _text_lines(path):
        if not line.strip():
            continue
        qid, sep, text = line.partition("\t")
        if not sep:
            raise DataError(f"{path} line {number}: expected qid<TAB>text")
        queries[qid.strip()] = Query(qid.strip(), text.strip())
    return queries


def read_trec_qrels(path: Path) -> Qrels:
    """TREC qrels: qid, iteration, docid, relevance separated by whitespace."""
    qrels: Qrels = {}
    for number, line in _text_lines(path):
        cols = line.split()
        if not cols:
            continue
        if len(cols) != 4:
            raise DataError(f"{path} line {number}: expected 4 columns (qid iter docid rel), got {len(cols)}")
        qrels.setdefault(cols[0], {})[cols[2]] = _grade(cols[3], f"{path} line {number}")
    return qrels


def _stream_sha256(raw: IO[bytes], size: int, name: str) -> str:
    """Hex SHA-256 of a stream; a bar for big files (an MS MARCO corpus takes a while to read)."""
    digest = hashlib.sha256()
    with tqdm(total=size, unit="B", unit_scale=True, desc=f"hash {name}", disable=size < _QUIET_BYTES) as bar:
        while chunk := raw.read(1 << 20):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def iter_tsv_docs(path: Path) -> Iterator[Doc]:
    """MS MARCO's collection.tsv: ``docid<TAB>text`` per line, no title. Only ``\\n`` ends a line,
    so a stray carriage return inside a passage stays part of its text."""
    empty = True
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            line = _decoded(raw, path, number).rstrip("\r\n")
            if not line.strip():
                continue
            cols = line.split("\t")
            if len(cols) != 2:
                raise DataError(
                    f"{path} line {number}: expected 2 tab-separated columns (docid, text), got {len(cols)}"
                )
            if not cols[0].strip():
                raise DataError(f"{path} line {number}: empty docid before the tab")
            empty = False
            yield Doc(cols[0].strip(), "", cols[1])
    if empty:
        raise DataError(f"{path}: collection is empty")


def _decoded(raw: bytes, path: Path, number: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path} line {number}: not UTF-8 (byte {e.start + 1} of the line)") from None


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, with a bar when it is big."""
    with open(path, "rb") as f:
        return _stream_sha256(f, path.stat().st_size, str(path))
