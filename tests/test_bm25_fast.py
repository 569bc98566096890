"""The numpy BM25 engine reproduces Lucene/Anserini exactly.

Unit tests check the pieces against values derived by hand from Lucene's algorithms (not
from this code's output); the slow tests compare whole SciFact runs against Anserini's own
SearchCollection, and the encoding against Lucene's SmallFloat through the JVM.
"""

from __future__ import annotations

import itertools
import math
import os
from pathlib import Path

import numpy as np
import pytest

from rankbench.retrievers.lucene_exact import adjust_score_ties, byte4_to_int, encode_lengths, int_to_byte4, lucene_idf

SHARED_DATA = Path(os.environ.get("RANKBENCH_DATA_ROOT") or Path(__file__).resolve().parents[2] / "shared" / "data")

# Lucene's SmallFloat.intToByte4, worked by hand. NUM_FREE_VALUES = 255 - longToInt4(2^31 - 1)
# = 255 - 231 = 24, so lengths 0-23 are stored as themselves; above, byte = 24 + longToInt4(len - 24)
# where longToInt4(x) keeps x's top 4 bits (implicit leading 1 dropped: 3 stored) and the shift + 1.
#   24   -> 24 + 0                                                      = 24
#   31   -> x = 7 (3 bits, "subnormal", stored as is)                   = 31
#   32   -> x = 8 = 0b1000, shift 0: (8 & 7) | 1 << 3 = 8               = 32
#   40   -> x = 16, shift 1: (16 >> 1 & 7) | 2 << 3 = 16                = 40
#   41   -> x = 17, shift 1: (17 >> 1 & 7) | 2 << 3 = 16                = 40  (lossy: same byte as 40)
#   100  -> x = 76 = 0b1001100, shift 3: (76 >> 3 & 7) = 1 | 4 << 3    = 24 + 33 = 57
#   1000 -> x = 976 (10 bits), shift 6: (976 >> 6 & 7) = 7 | 7 << 3     = 24 + 63 = 87
#   2^31-1 -> x = 2147483623 (31 bits), shift 27: 15 & 7 = 7 | 28 << 3 = 24 + 231 = 255
# and byte4ToInt decodes a byte to the smallest length with that byte:
#   57 -> 33: bits 1, shift (33 >> 3) - 1 = 3: (1 | 8) << 3 = 72       -> 24 + 72 = 96
#   87 -> 63: bits 7, shift 6: (7 | 8) << 6 = 960                       -> 984
#   255 -> 231: bits 7, shift (231 >> 3) - 1 = 27: (7 | 8) << 27         -> 24 + 2013265920 = 2013265944
ENCODED = {0: 0, 1: 1, 23: 23, 24: 24, 31: 31, 32: 32, 39: 39, 40: 40, 41: 40, 100: 57, 1000: 87, 2**31 - 1: 255}
DECODED = {0: 0, 23: 23, 24: 24, 32: 32, 40: 40, 57: 96, 87: 984, 255: 2013265944}


@pytest.mark.parametrize(("length", "byte"), sorted(ENCODED.items()))
def test_int_to_byte4_matches_lucene(length: int, byte: int):
    assert int_to_byte4(length) == byte


@pytest.mark.parametrize(("byte", "length"), sorted(DECODED.items()))
def test_byte4_to_int_matches_lucene(byte: int, length: int):
    assert byte4_to_int(byte) == length


def test_length_encoding_is_monotonic_and_round_trips():
    """Lucene's contract: every byte decodes to a length that encodes back to it; order is kept."""
    assert all(int_to_byte4(byte4_to_int(b)) == b for b in range(256))
    codes = [int_to_byte4(n) for n in range(5000)]
    assert codes == sorted(codes)
    assert all(byte4_to_int(c) <= n for n, c in enumerate(codes))
    assert encode_lengths(np.array([0, 41, 100, 1000])).tolist() == [0, 40, 57, 87]


def test_idf_is_lucenes_rounded_to_float():
    # N = 10, df = 2: log(1 + 8.5 / 2.5) = log(4.4) = 1.4816045..., stored as float32
    assert lucene_idf(10, np.array([2]))[0] == np.float32(math.log(4.4))
    assert lucene_idf(10, np.array([2])).dtype == np.float32


def test_score_ties_are_adjusted_like_anserini():
    """Round to 4 decimals; each hit within 1e-4 of the adjusted one above loses 1e-6 more."""
    scores = np.array([3.0, 2.71242, 2.71238, 2.7124, 2.7123, 2.7121, 1.5], dtype=np.float32)
    adjusted = adjust_score_ties(scores)
    # 2.71242 and 2.71238 both round to 2.7124: the second is a tie (-1e-6), so is 2.7124 (-2e-6);
    # 2.7123 is 1e-4 below 2.7124 but only 0.98e-4 below the adjusted 2.712398: a tie too (-3e-6).
    # 2.7121 is 1.97e-4 below 2.712297: the run of ties ends.
    expected = [3.0, 2.7124, 2.7124 - 1e-6, 2.7124 - 2e-6, 2.7123 - 3e-6, 2.7121, 1.5]
    assert adjusted.tolist() == pytest.approx(expected, abs=1e-7)
    assert all(a > b for a, b in itertools.pairwise(adjusted))


@pytest.fixture(scope="module")
def scifact():
    if not (SHARED_DATA / "beir" / "scifact.zip").is_file():
        pytest.skip(f"SciFact not found under {SHARED_DATA}")
    from rankbench.harness.datasets import load_dataset

    cfg = {"name": "scifact", "beir_name": "scifact", "split": "test", "path": None}
    return load_dataset({**cfg, "ir_datasets_id": "beir/scifact/test", "topics": None, "qrels": None}, SHARED_DATA)


@pytest.mark.slow
@pytest.mark.parametrize("multifield", [False, True], ids=["flat", "multifield"])
def test_numpy_engine_equals_searchcollection_on_scifact(scifact, multifield: bool, tmp_path_factory):
    from rankbench.retrievers.bm25 import BM25

    cache_dir = tmp_path_factory.mktemp("cache")  # a fresh build: exercises the postings export too
    runs = {}
    for engine in ("anserini", "numpy"):
        bm25 = BM25(k1=0.9, b=0.4, hits=1000, multifield=multifield, remove_query=True, engine=engine)
        bm25.index(scifact.corpus, cache_dir)
        runs[engine] = bm25.retrieve(scifact.queries)
    reference, fast = runs["anserini"], runs["numpy"]
    assert len(scifact.queries) == 300
    for q in scifact.queries:
        assert [d for d, _ in fast[q.qid]] == [d for d, _ in reference[q.qid]], q.qid
        worst = max((abs(a - b) for (_, a), (_, b) in zip(fast[q.qid], reference[q.qid], strict=True)), default=0)
        assert worst < 1e-5, q.qid  # SearchCollection writes 6 decimals; the runs agree to them


@pytest.mark.slow
def test_encoding_and_idf_match_lucene_in_the_jvm():
    from rankbench.harness import java

    small_float = java.autoclass("org.apache.lucene.util.SmallFloat")
    java_math = java.autoclass("java.lang.Math")
    lengths = [*range(2000), *range(2000, 10**7, 9973), 2**31 - 1]
    assert [small_float.intToByte4(n) & 0xFF for n in lengths] == [int_to_byte4(n) for n in lengths]
    assert [small_float.byte4ToInt(b - 256 if b > 127 else b) for b in range(256)] == [
        byte4_to_int(b) for b in range(256)
    ]
    n, dfs = 5183, np.arange(1, 5184)
    expected = [np.float32(java_math.log(1 + (n - df + 0.5) / (df + 0.5))) for df in dfs.tolist()]
    assert lucene_idf(n, dfs).tolist() == [float(x) for x in expected]
