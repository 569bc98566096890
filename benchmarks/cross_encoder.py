"""Cross-encoder throughput: rankbench's reranker against sentence-transformers' CrossEncoder, in one process.

    python benchmarks/cross_encoder.py --model runs/models/ce-minilm-scifact   # the trained model
    python benchmarks/cross_encoder.py --queries 2 --depth 5                   # a smoke run, fresh head

Both systems score the same (query, title + " " + text) pairs, BM25's top ``--depth`` for the
first ``--queries`` SciFact test queries, with the same model folder, max length, batch size
and torch threads. sentence-transformers' ``predict`` already sorts by length, so the gap is
what bf16 autocast (``dtype=auto`` on AVX-512 BF16 CPUs) buys; rankbench in float32 is timed
too, for the like-for-like path; on a CPU without native bf16, ``auto`` is float32, so the bf16
row is not run but listed under ``skipped`` with the reason. Throughput is pairs per second of
one timed pass after an untimed warm-up on 64 pairs. Agreement with sentence-transformers' raw logits (identity
activation) is reported as the max absolute difference and the mean per-query Spearman rho.
``--model fresh`` (the default) puts a seeded, untrained 1-logit head on all-MiniLM-L6-v2.
The report goes to ``<out>/cross_encoder.md`` and ``<out>/cross_encoder.json``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from anywhere: import this checkout's packages
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from benchmarks.common import add_path_options, environment, write_report  # noqa: E402
from rankbench.harness.compute import native_bf16  # noqa: E402
from rankbench.harness.config import compose  # noqa: E402
from rankbench.harness.datasets import load_dataset  # noqa: E402
from rankbench.harness.models import resolve_model, weights_digest  # noqa: E402
from rankbench.harness.stages import first_stage_run  # noqa: E402
from rankbench.harness.types import Doc, Query  # noqa: E402
from rankbench.rerankers.cross_encoder import CrossEncoder, doc_text  # noqa: E402

log = logging.getLogger("bench.cross_encoder")


def fresh_head(folder: Path, seed: int = 13) -> Path:
    """all-MiniLM-L6-v2 with a seeded, untrained 1-logit classification head."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    base = resolve_model("sentence-transformers/all-MiniLM-L6-v2")
    torch.manual_seed(seed)
    AutoModelForSequenceClassification.from_pretrained(base, num_labels=1).save_pretrained(folder)
    AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    return folder


def bm25_pairs(queries: int, depth: int, data_root: str, cache_dir: Path) -> list[tuple[Query, Doc]]:
    cfg = compose(["dataset=scifact", "retriever=bm25", f"data_root={data_root}"])
    dataset = load_dataset(cfg.dataset, cfg.data_root, cache_dir)
    chosen = dataset.queries[:queries]
    run = first_stage_run(cfg.retriever, dataset.corpus, chosen, cache_dir).run
    heads = {q.qid: [d for d, _ in run.get(q.qid, [])[:depth]] for q in chosen}
    docs = dataset.corpus.get_many({d for head in heads.values() for d in head})
    return [(q, docs[d]) for q in chosen for d in heads[q.qid]]


def rankbench_systems(folder: Path, args: argparse.Namespace) -> tuple[dict, list[dict[str, str]]]:
    """rankbench in float32, and in bfloat16 (what ``dtype=auto`` runs) where the CPU has it; else why not."""
    label = "rankbench CrossEncoder ({})"
    options = {"max_length": args.max_length, "batch_size": args.batch_size}
    systems = {label.format("float32"): CrossEncoder(str(folder), dtype="float32", **options).score}
    if not native_bf16():
        reason = "no AVX-512 BF16/AMX on this CPU: dtype=auto runs float32, the row above"
        return systems, [{"system": label.format("bfloat16"), "reason": reason}]
    systems[label.format("bfloat16")] = CrossEncoder(str(folder), dtype="bfloat16", **options).score
    return systems, []


def timed(score, pairs: list) -> tuple[np.ndarray, float]:
    score(pairs[:64])  # warm-up: first-call allocations and oneDNN kernel selection
    started = time.perf_counter()
    scores = np.asarray(score(pairs), dtype=np.float64)
    return scores, time.perf_counter() - started


def agreement(a: np.ndarray, b: np.ndarray, qids: list[str]) -> dict[str, float]:
    rhos = []
    for qid in dict.fromkeys(qids):
        mask = np.array([q == qid for q in qids])
        if mask.sum() > 2:
            rhos.append(float(spearmanr(a[mask], b[mask]).statistic))
    return {"max_abs_diff": float(np.abs(a - b).max()), "mean_spearman": float(np.mean(rhos)) if rhos else 1.0}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="fresh", help="a cross-encoder folder or name; 'fresh': untrained head")
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    add_path_options(parser, "BM25 index and run cache")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        folder = fresh_head(Path(tmp) / "fresh") if args.model == "fresh" else resolve_model(args.model)
        pairs = bm25_pairs(args.queries, args.depth, args.data_root, args.cache_dir)
        texts = [(q.text, doc_text(d)) for q, d in pairs]
        qids = [q.qid for q, _ in pairs]
        from sentence_transformers import CrossEncoder as STCrossEncoder

        peer = STCrossEncoder(str(folder), max_length=args.max_length, device="cpu", activation_fn=torch.nn.Identity())
        systems = {
            "sentence-transformers CrossEncoder.predict (fp32)": lambda p: peer.predict(
                [(q.text, doc_text(d)) for q, d in p], batch_size=args.batch_size, show_progress_bar=False
            ),
        }
        ours, skipped = rankbench_systems(folder, args)
        systems |= ours
        results, reference = [], None
        for name, score in systems.items():
            scores, seconds = timed(score, pairs)
            reference = scores if reference is None else reference
            results.append(
                {"system": name, "pairs": len(pairs), "seconds": seconds, "pairs_per_s": len(pairs) / seconds}
            )
            results[-1] |= agreement(scores, reference, qids)
            log.info("%s: %.1f pairs/s", name, results[-1]["pairs_per_s"])
        digest = weights_digest(folder)
    peer_speed = results[0]["pairs_per_s"]
    for r in results:
        r["ratio_vs_peer"] = r["pairs_per_s"] / peer_speed
    report = {
        "model": args.model,
        "model_hash": digest,
        "pairs": len(texts),
        "queries": args.queries,
        "depth": args.depth,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "threads": args.threads,
        **environment(torch=torch.__version__),
        "results": results,
        "skipped": skipped,
    }
    write_report(args.out, "cross_encoder", render(report), report)
    return report


def render(report: dict) -> str:
    lines = [
        "# Cross-encoder throughput: rankbench vs sentence-transformers",
        "",
        f"Model `{report['model']}` (weights {report['model_hash']}); {report['pairs']} pairs = BM25 top-"
        f"{report['depth']} of {report['queries']} SciFact test queries; max_length {report['max_length']}, "
        f"batch size {report['batch_size']}, {report['threads']} threads; load average at the end "
        f"{', '.join(f'{v:.2f}' for v in report['load_average'])}.",
        "",
        "| system | pairs/s | ours ÷ theirs | max abs diff vs ST | mean Spearman vs ST |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['system']} | {r['pairs_per_s']:.1f} | {r['ratio_vs_peer']:.2f} | {r['max_abs_diff']:.2e} | "
        f"{r['mean_spearman']:.4f} |"
        for r in report["results"]
    ]
    lines += [f"\nNot run: {s['system']} ({s['reason']})." for s in report["skipped"]]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
