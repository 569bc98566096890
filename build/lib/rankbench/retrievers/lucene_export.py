"""Bulk export of a Lucene index's postings, norms and document ids for the numpy BM25 engine.

Reading postings through pyjnius costs a bridge crossing per posting (~1 µs: 275 s for the
120M postings of a 1M-document collection). The loops run in Java instead
(``retrievers/java/rankbench/PostingsExport.java``, shipped compiled: see docs/bm25.md); Python
makes one call per chunk, for a progress bar, and reads the little-endian files with numpy.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from rankbench.harness import java

POSTINGS_PER_CALL = 2_000_000  # a progress-bar step; the Java side moves whole terms
DOCS_PER_CALL = 1_000_000


@dataclass
class FieldPostings:
    """One field's postings as written by the exporter: term-major, terms in Lucene's (byte) order.

    ``docs`` and ``tf`` are files of little-endian int32 (document numbers ascending within a
    term, and frequencies), left on disk: at MS MARCO's size they are 2.6 GB together.
    """

    terms: bytes  # UTF-8 terms, concatenated
    term_offsets: np.ndarray  # int64, len(terms) + 1
    indptr: np.ndarray  # int64, len(terms) + 1
    docs: Path
    tf: Path


def _read_int32(path: Path) -> np.ndarray:
    values = np.fromfile(path, dtype="<i4")
    return values if sys.byteorder == "little" else values.astype(np.int32)


def _offsets(lens_path: Path) -> np.ndarray:
    """Offsets (int64, one more than there are entries) from a file of int32 lengths."""
    lens = _read_int32(lens_path)
    offsets = np.zeros(len(lens) + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    return offsets


def _exporter() -> Any:
    return java.autoclass("rankbench.PostingsExport")


def export_field(reader: Any, field: str, folder: Path) -> FieldPostings:
    """Every term of ``field`` in Lucene's order with its postings, written under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    export = _exporter()(reader, field, str(folder))
    try:
        total = reader.getSumDocFreq(field)
        with tqdm(total=max(total, 0), unit="posting", unit_scale=True, desc=f"export {field} postings") as bar:
            while export.step(POSTINGS_PER_CALL):
                bar.update(export.written() - bar.n)
            bar.update(export.written() - bar.n)
    finally:
        export.close()
    indptr = _offsets(folder / "dfs")  # postings per term, as offsets
    term_offsets = _offsets(folder / "term_lens")
    terms = (folder / "terms").read_bytes()
    for name in ("dfs", "term_lens", "terms"):
        (folder / name).unlink()
    return FieldPostings(terms, term_offsets, indptr, folder / "docs", folder / "tf")


def export_norms(reader: Any, field: str, folder: Path) -> np.ndarray:
    """The length-norm byte Lucene stored for every document in ``field`` (0 where it has none)."""
    n, path = reader.maxDoc(), folder / f"{field}.norms.scratch"
    _exporter().writeNorms(reader, field, 0, n, str(path))
    norms = np.fromfile(path, dtype=np.uint8)
    path.unlink()
    return norms


def export_docids(reader: Any, folder: Path) -> tuple[bytes, np.ndarray]:
    """The ``id`` of every document in Lucene's document-number order: UTF-8 bytes, concatenated, and offsets."""
    n = reader.maxDoc()
    lens, blob = folder / "id_lens.scratch", folder / "id_bytes.scratch"
    lens.touch()
    blob.touch()
    with tqdm(total=n, unit="doc", desc="export docids") as bar:
        for start in range(0, n, DOCS_PER_CALL):
            end = min(start + DOCS_PER_CALL, n)
            _exporter().writeDocids(reader, start, end, str(lens), str(blob))
            bar.update(end - start)
    ids, offsets = blob.read_bytes(), _offsets(lens)
    for path in (lens, blob):
        path.unlink()
    return ids, offsets
