"""Seeded synthetic corpora for the scaling benchmark: SciFact plus N distractor documents.

Only SciFact's corpus text is available offline, so a large collection is SciFact itself plus
distractors whose words are drawn from SciFact's word unigram distribution: a distractor is a
haystack document that shares SciFact's vocabulary (and so its idf statistics shift as N grows)
but answers no query. SciFact's queries and test qrels are copied unchanged, so nDCG@10 shows how
much the haystack hurts.

Lengths come either from SciFact's own document lengths (resampled) or, for the MS MARCO-shaped
set, from a lognormal with MS MARCO passage's mean of ~56 words. Sampling is vectorised numpy
over chunks of documents and written as it goes, so 8.8M passages never sit in memory.

A corpus is a BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv) named after its spec,
built under a temporary name and renamed into place with its ``manifest.json`` last, so a
folder with a matching manifest is complete and one without is regenerated.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from tqdm import tqdm

from rankbench.harness import cache
from rankbench.harness.readers import BeirSource, iter_beir_docs

log = logging.getLogger("bench.synthetic")

# Bump when the same spec would produce different bytes (sampling, chunking, line layout).
GENERATOR_VERSION = 1
CHUNK_DOCS = 8192  # fixed: the random stream is drawn chunk by chunk, so it is part of the output
MSMARCO_PASSAGES = 8_841_823
MSMARCO_MEAN_WORDS = 56.0
MSMARCO_SIGMA = 0.4  # lognormal shape: standard deviation ~23 words around the mean of 56
DISTRACTOR_PREFIX = "synth-"  # SciFact's document ids are all digits: no distractor id can equal one
_WORD = re.compile(r"\w+")
_MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Spec:
    """What a corpus is: its name, how many distractors, how their lengths are drawn, and the seed."""

    name: str
    distractors: int
    lengths: str  # "scifact": SciFact's document lengths resampled; "msmarco": lognormal, mean 56 words
    seed: int


def scifact_spec(distractors: int, seed: int) -> Spec:
    """SciFact plus ``distractors`` documents shaped like SciFact's (``scifact`` alone for 0)."""
    name = "scifact" if distractors == 0 else f"scifact+{_short(distractors)}"
    return Spec(name, distractors, "scifact", seed)


def msmarco_spec(seed: int, scifact_docs: int, passages: int = MSMARCO_PASSAGES) -> Spec:
    """MS MARCO passage's size in total (SciFact's documents included) and its mean length."""
    return Spec(f"msmarco-shaped-{_short(passages)}", passages - scifact_docs, "msmarco", seed)


def _short(n: int) -> str:
    """1000000 -> "1m", 100000 -> "100k", 8841823 -> "8.8m", 200 -> "200": readable folder names."""
    for unit, size in (("m", 1_000_000), ("k", 1000)):
        if n >= size:
            value = n / size
            return f"{value:g}{unit}" if value == int(value) else f"{math.floor(value * 10) / 10:g}{unit}"
    return str(n)


class Source:
    """SciFact read once: its raw files to copy, and the word stream and lengths to sample from.

    Drawing a uniform position in SciFact's concatenated word stream draws a word with exactly its
    unigram probability, with no table to normalise.
    """

    def __init__(self, zip_path: Path):
        self.path = zip_path
        beir = BeirSource(zip_path)
        self.files = {rel: _read(beir, rel) for rel in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv")}
        vocab: dict[str, int] = {}
        stream: list[int] = []
        lengths: list[int] = []
        for doc in iter_beir_docs(beir):
            if doc.docid.startswith(DISTRACTOR_PREFIX):
                raise ValueError(f"SciFact document id {doc.docid!r} could collide with distractor ids")
            words = _WORD.findall(f"{doc.title} {doc.text}".lower())
            stream.extend(vocab.setdefault(w, len(vocab)) for w in words)
            lengths.append(len(words))
        self.docs = len(lengths)
        self.stream = np.array(stream, dtype=np.int32)
        self.lengths = np.array(lengths, dtype=np.int64)
        encoded = [w.encode() + b" " for w in vocab]  # \w characters only: valid inside a JSON string
        self.word_bytes = np.array([len(w) for w in encoded], dtype=np.int64)
        self.word_offsets = np.cumsum(self.word_bytes) - self.word_bytes
        self.blob = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        self.digest = cache.file_digest(zip_path)


def _read(beir: BeirSource, rel: str) -> bytes:
    with beir.open_bytes(rel) as f:
        data = f.read()
    return data if data.endswith(b"\n") else data + b"\n"


def sample_lengths(spec: Spec, source: Source, rng: np.random.Generator, n: int) -> np.ndarray:
    """Words per distractor for ``n`` documents, at least one each."""
    if spec.lengths == "scifact":
        return np.maximum(source.lengths[rng.integers(0, source.docs, n)], 1)
    mu = math.log(MSMARCO_MEAN_WORDS) - MSMARCO_SIGMA**2 / 2  # lognormal mean = exp(mu + sigma^2 / 2)
    return np.maximum(np.rint(rng.lognormal(mu, MSMARCO_SIGMA, n)), 1).astype(np.int64)


def render_chunk(source: Source, rng: np.random.Generator, lengths: np.ndarray, first: int) -> bytes:
    """corpus.jsonl lines for distractors ``first``.. with these lengths; words gathered as bytes."""
    words = source.stream[rng.integers(0, len(source.stream), int(lengths.sum()))]
    sizes = source.word_bytes[words]
    ends = np.cumsum(sizes)
    gather = np.repeat(source.word_offsets[words] - (ends - sizes), sizes) + np.arange(ends[-1])
    text = source.blob[gather].tobytes()
    doc_ends = ends[np.cumsum(lengths) - 1]
    doc_starts = np.concatenate(([0], doc_ends[:-1]))
    return b"".join(
        b'{"_id": "%s%08d", "title": "", "text": "%s"}\n' % (DISTRACTOR_PREFIX.encode(), first + i, text[s : e - 1])
        for i, (s, e) in enumerate(zip(doc_starts.tolist(), doc_ends.tolist(), strict=True))
    )


def write_distractors(spec: Spec, source: Source, out: BinaryIO) -> int:
    """Append the spec's distractors to ``out`` chunk by chunk; returns the number of words written."""
    rng = np.random.default_rng(spec.seed)
    words = 0
    with tqdm(
        total=spec.distractors, unit="doc", desc=f"generate {spec.name}", disable=spec.distractors < 50_000
    ) as bar:
        for first in range(0, spec.distractors, CHUNK_DOCS):
            lengths = sample_lengths(spec, source, rng, min(CHUNK_DOCS, spec.distractors - first))
            out.write(render_chunk(source, rng, lengths, first))
            words += int(lengths.sum())
            bar.update(len(lengths))
    return words


def manifest_key(spec: Spec, source: Source) -> dict[str, object]:
    """What decides the corpus's bytes: a folder whose manifest holds another key is rebuilt."""
    return {**asdict(spec), "generator": GENERATOR_VERSION, "chunk_docs": CHUNK_DOCS, "source": source.digest}


def ensure_corpus(spec: Spec, source: Source, root: Path) -> Path:
    """The BEIR folder ``root/<name>``: reused when complete for this spec, else generated atomically."""
    final = root / spec.name
    if read_manifest(final, manifest_key(spec, source)) is not None:
        log.info("reusing corpus %s", final)
        return final
    if final.exists():
        log.warning("corpus %s is incomplete or from another spec: regenerating", final)
        shutil.rmtree(final)
    root.mkdir(parents=True, exist_ok=True)
    cache.remove_stale_temps(root)
    tmp = cache.temp_path(final)
    try:
        build_corpus(spec, source, tmp)
        cache.replace_dir(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def build_corpus(spec: Spec, source: Source, folder: Path) -> None:
    """Write the BEIR files into ``folder``, then the manifest (document and word counts, file sizes)."""
    (folder / "qrels").mkdir(parents=True)
    for rel in ("queries.jsonl", "qrels/test.tsv"):
        (folder / rel).write_bytes(source.files[rel])
    with open(folder / "corpus.jsonl", "wb") as out:
        out.write(source.files["corpus.jsonl"])
        distractor_words = write_distractors(spec, source, out)
    files = {rel: (folder / rel).stat().st_size for rel in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv")}
    manifest = {
        "key": manifest_key(spec, source),
        "docs": source.docs + spec.distractors,
        "words": int(source.lengths.sum()) + distractor_words,
        "distractor_words": distractor_words,
        "files": files,
    }
    cache.write_text_atomic(folder / _MANIFEST, json.dumps(manifest, indent=1))


def read_manifest(folder: Path, key: dict[str, object] | None = None) -> dict[str, object] | None:
    """The manifest of a complete corpus folder (matching ``key`` when given), else None."""
    try:
        manifest = json.loads((folder / _MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if key is not None and manifest.get("key") != key:
        return None
    sizes = manifest.get("files", {})
    if not all((folder / rel).is_file() and (folder / rel).stat().st_size == size for rel, size in sizes.items()):
        return None
    return manifest
