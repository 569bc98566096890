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

from harness import java

POSTINGS_PER_CALL = 2_000_000
DOCS_PER_CALL = 1_000_000


@dataclass
class FieldPostings:
    """One field's postings, term-major, with its terms in Lucene's (byte) order."""

    terms: list[str]
    indptr: np.ndarray  # int64, len(terms) + 1
    docs: np.ndarray  # int32 document numbers, ascending within a term
    tf: np.ndarray  # int32


def _read_int32(path: Path) -> np.ndarray:
    values = np.fromfile(path, dtype="<i4")
    return values if sys.byteorder == "little" else values.astype(np.int32)


def _strings(lens_path: Path, bytes_path: Path) -> list[str]:
    """Length-prefixed UTF-8 strings written by the exporter."""
    lens = _read_int32(lens_path).tolist()
    blob = bytes_path.read_bytes()
    out, start = [], 0
    for n in lens:
        out.append(blob[start : start + n].decode("utf-8"))
        start += n
    return out


def _exporter() -> Any:
    return java.autoclass("rankbench.PostingsExport")


def export_field(reader: Any, field: str, folder: Path) -> FieldPostings:
    """Every term of ``field`` in Lucene's order with its postings; scratch files go to ``folder``."""
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
    terms = _strings(folder / "term_lens", folder / "terms")
    indptr = np.zeros(len(terms) + 1, dtype=np.int64)
    np.cumsum(_read_int32(folder / "dfs"), out=indptr[1:])
    postings = FieldPostings(terms, indptr, _read_int32(folder / "docs"), _read_int32(folder / "tf"))
    for name in ("docs", "tf", "dfs", "terms", "term_lens"):
        (folder / name).unlink()
    return postings


def export_norms(reader: Any, field: str, folder: Path) -> np.ndarray:
    """The length-norm byte Lucene stored for every document in ``field`` (0 where it has none)."""
    n, path = reader.maxDoc(), folder / f"{field}.norms.scratch"
    _exporter().writeNorms(reader, field, 0, n, str(path))
    norms = np.fromfile(path, dtype=np.uint8)
    path.unlink()
    return norms


def export_docids(reader: Any, folder: Path) -> list[str]:
    """The stored ``id`` of every document, in Lucene's document-number order."""
    n = reader.maxDoc()
    lens, blob = folder / "id_lens.scratch", folder / "id_bytes.scratch"
    with tqdm(total=n, unit="doc", desc="export docids") as bar:
        for start in range(0, n, DOCS_PER_CALL):
            end = min(start + DOCS_PER_CALL, n)
            _exporter().writeDocids(reader, start, end, str(lens), str(blob))
            bar.update(end - start)
    docids = _strings(lens, blob) if n else []
    for path in (lens, blob):
        path.unlink(missing_ok=True)
    return docids
