"""Cross-encoder throughput and fidelity: rankbench's reranker against sentence-transformers' CrossEncoder.

    python benchmarks/cross_encoder.py --model runs/models/ce-minilm-scifact   # a trained model: nDCG@10 too
    python benchmarks/cross_encoder.py --queries 30 --depth 50                 # fresh head, 1,500 pairs
    python benchmarks/cross_encoder.py --queries 2 --depth 5                   # a smoke run

Every system scores the same (query, title + " " + text) pairs, BM25's top ``--depth`` for the
first ``--queries`` SciFact test queries, with the same model folder, max length, batch size and
torch threads, in one process:

- the peer: sentence-transformers' ``CrossEncoder.predict`` (fp32; it already sorts by length,
  pads per batch and runs under ``inference_mode``), raw logits (identity activation);
- rankbench ``CrossEncoder`` with ``dtype=float32`` (like for like), ``dtype=int8`` (dynamic int8
  linear layers, the AVX2 fast path) and ``dtype=bfloat16`` (what ``auto`` runs on CPUs with
  AVX-512 BF16/AMX; elsewhere it is emulated and slow, so it is not run but listed under
  ``skipped`` with the reason).

The machine may be shared, so the systems take turns: the pairs are cut into ``--rounds`` slices
of whole queries and every system scores each slice in turn, each round led by the next system,
so other work slows them alike. pairs/s is the number of pairs over the summed time of a system's
slices, after an untimed warm-up on 64 pairs; ratio is that over the peer's. Agreement with the
peer is the max absolute score difference and the mean per-query Spearman rho; fidelity to
rankbench fp32 is the per-query Spearman rho (mean and min) and top-10 overlap (mean). With a
trained ``--model`` each system's nDCG@10 on the queries scored is reported beside BM25's (a
``--model fresh`` head, the default, is a seeded untrained 1-logit head on all-MiniLM-L6-v2: fast
to make, meaningless to evaluate, and its scores are so close together that int8's rounding
reorders them more than it would a trained model's).

The report goes to ``<out>/cross_encoder-<cpu kind>.md`` and ``.json``, the kind being avx2,
avx512 or avx512_bf16 (``rankbench.harness.machine.cpu_kind``): speeds differ by kind, so each kind's
latest report is kept beside the others.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
from rankbench.harness.machine import cpu_kind  # noqa: E402
from rankbench.harness.metrics import evaluate, parse_measures  # noqa: E402
from rankbench.harness.models import resolve_model, weights_digest  # noqa: E402
from rankbench.harness.stages import first_stage_run  # noqa: E402
from rankbench.harness.types import Doc, Qrels, Query, Run  # noqa: E402
from rankbench.rerankers.cross_encoder import CrossEncoder, doc_text  # noqa: E402

log = logging.getLogger("bench.cross_encoder")

Pairs = list[tuple[Query, Doc]]
Scorer = Callable[[Pairs], Any]
PEER = "sentence-transformers CrossEncoder.predict (fp32)"
OURS = "rankbench CrossEncoder ({})"
FP32 = OURS.format("float32")
WARMUP_PAIRS = 64


def fresh_head(folder: Path, seed: int = 13) -> Path:
    """all-MiniLM-L6-v2 with a seeded, untrained 1-logit classification head."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    base = resolve_model("sentence-transformers/all-MiniLM-L6-v2")
    torch.manual_seed(seed)
    AutoModelForSequenceClassification.from_pretrained(base, num_labels=1).save_pretrained(folder)
    AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    return folder


def bm25_pairs(queries: int, depth: int, data_root: str, cache_dir: Path) -> tuple[Pairs, Run, Qrels]:
    """(query, document) pairs of BM25's top ``depth`` per query, BM25's run of those heads, their qrels."""
    cfg = compose(["dataset=scifact", "retriever=bm25", f"data_root={data_root}"])
    dataset = load_dataset(cfg.dataset, cfg.data_root, cache_dir)
    chosen = dataset.queries[:queries]
    run = first_stage_run(cfg.retriever, dataset.corpus, chosen, cache_dir).run
    heads = {q.qid: run.get(q.qid, [])[:depth] for q in chosen}
    docs = dataset.corpus.get_many({d for head in heads.values() for d, _ in head})
    pairs = [(q, docs[d]) for q in chosen for d, _ in heads[q.qid]]
    return pairs, heads, {q.qid: dataset.qrels.get(q.qid, {}) for q in chosen}


def systems(folder: Path, args: argparse.Namespace) -> tuple[dict[str, Scorer], list[dict[str, str]]]:
    """The peer first, then rankbench in float32, int8 and (where the CPU has it natively) bfloat16."""
    from sentence_transformers import CrossEncoder as STCrossEncoder

    peer = STCrossEncoder(str(folder), max_length=args.max_length, device="cpu", activation_fn=torch.nn.Identity())

    def predict(pairs: Pairs) -> np.ndarray:
        texts = [(q.text, doc_text(d)) for q, d in pairs]
        return peer.predict(texts, batch_size=args.batch_size, show_progress_bar=False)

    dtypes = ["float32", "int8"] + (["bfloat16"] if native_bf16() else [])
    options = {"max_length": args.max_length, "batch_size": args.batch_size, "threads": args.threads}
    found: dict[str, Scorer] = {PEER: predict}
    found |= {OURS.format(d): CrossEncoder(str(folder), dtype=d, **options).score for d in dtypes}
    if native_bf16():
        return found, []
    reason = "no AVX-512 BF16/AMX on this CPU: bf16 is emulated there, and dtype=auto runs float32"
    return found, [{"system": OURS.format("bfloat16"), "reason": reason}]


def slices(qids: list[str], rounds: int) -> list[slice]:
    """``rounds`` contiguous slices of the pairs, each of whole queries (fewer if there are fewer queries)."""
    starts = [i for i, q in enumerate(qids) if i == 0 or q != qids[i - 1]]
    cuts = sorted({starts[int(k)] for k in np.linspace(0, len(starts), rounds, endpoint=False)})
    return [slice(a, b) for a, b in zip(cuts, [*cuts[1:], len(qids)], strict=True)]


def measure(scorers: dict[str, Scorer], pairs: Pairs, rounds: int) -> dict[str, tuple[np.ndarray, float]]:
    """Each system's scores and summed seconds, the systems taking turns slice by slice, each round led by
    the next system, so that whatever else the machine does slows them alike."""
    names = list(scorers)
    for name in names:
        scorers[name](pairs[:WARMUP_PAIRS])  # first-call allocations, oneDNN/fbgemm kernel selection
    parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
    seconds = dict.fromkeys(names, 0.0)
    for r, part in enumerate(slices([q.qid for q, _ in pairs], rounds)):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            started = time.perf_counter()
            parts[name].append(np.asarray(scorers[name](pairs[part]), dtype=np.float64))
            seconds[name] += time.perf_counter() - started
        log.info("round %d, pairs/s so far: %s", r + 1, ", ".join(f"{part.stop / seconds[n]:.1f}" for n in names))
    return {name: (np.concatenate(parts[name]), seconds[name]) for name in names}


def per_query(a: np.ndarray, b: np.ndarray, qids: list[str]) -> tuple[list[float], list[float]]:
    """Per query (with more than 2 pairs): Spearman rho between two score lists, and their top-10 overlap."""
    rhos, overlaps = [], []
    for qid in dict.fromkeys(qids):
        mask = np.array([q == qid for q in qids])
        if mask.sum() > 2:
            rhos.append(float(spearmanr(a[mask], b[mask]).statistic))
            top = min(10, int(mask.sum()))
            overlaps.append(len(set(np.argsort(-a[mask])[:top]) & set(np.argsort(-b[mask])[:top])) / top)
    return rhos, overlaps


def agreement(scores: np.ndarray, peer: np.ndarray, fp32: np.ndarray, qids: list[str]) -> dict[str, float]:
    """Agreement with the peer (same model, fp32: equal up to float rounding) and fidelity to rankbench fp32."""
    peer_rhos, _ = per_query(scores, peer, qids)
    rhos, overlaps = per_query(scores, fp32, qids)
    return {
        "max_abs_diff_vs_peer": float(np.abs(scores - peer).max()),
        "mean_spearman_vs_peer": float(np.mean(peer_rhos)) if peer_rhos else 1.0,
        "mean_spearman_vs_fp32": float(np.mean(rhos)) if rhos else 1.0,
        "min_spearman_vs_fp32": float(np.min(rhos)) if rhos else 1.0,
        "top10_overlap_vs_fp32": float(np.mean(overlaps)) if overlaps else 1.0,
    }


def ndcg10(scores: np.ndarray, pairs: Pairs, qrels: Qrels) -> float:
    """nDCG@10 of the heads reordered by ``scores`` (depth >= 10: the tail beneath cannot change it)."""
    run: Run = {}
    for (q, d), s in zip(pairs, scores, strict=True):
        run.setdefault(q.qid, []).append((d.docid, float(s)))
    return evaluate(run, qrels, parse_measures(["nDCG@10"]))[0]["nDCG@10"]


def results_of(measured: dict[str, tuple[np.ndarray, float]], pairs: Pairs, qrels: Qrels | None) -> list[dict]:
    """One row per system: pairs/s, ratio to the peer, agreement, and nDCG@10 where ``qrels`` is given."""
    qids = [q.qid for q, _ in pairs]
    peer_scores, peer_seconds = measured[PEER]
    rows = []
    for name, (scores, seconds) in measured.items():
        row = {"system": name, "pairs": len(pairs), "seconds": seconds, "pairs_per_s": len(pairs) / seconds}
        row["ratio_vs_peer"] = peer_seconds / seconds
        row |= agreement(scores, peer_scores, measured[FP32][0], qids)
        if qrels is not None:
            row["ndcg@10"] = ndcg10(scores, pairs, qrels)
        rows.append(row)
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="fresh", help="a cross-encoder folder or name; 'fresh': untrained head")
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=6, help="slices of whole queries the systems take turns on")
    add_path_options(parser, "BM25 index and run cache")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    trained = args.model != "fresh"
    pairs, heads, qrels = bm25_pairs(args.queries, args.depth, args.data_root, args.cache_dir)
    with tempfile.TemporaryDirectory() as tmp:
        folder = resolve_model(args.model) if trained else fresh_head(Path(tmp) / "fresh")
        scorers, skipped = systems(folder, args)
        load_before = os.getloadavg()
        measured = measure(scorers, pairs, args.rounds)
        digest = weights_digest(folder)
    report = {
        "model": args.model,
        "model_hash": digest,
        "pairs": len(pairs),
        "queries": args.queries,
        "depth": args.depth,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "threads": args.threads,
        "rounds": args.rounds,
        "load_average_before": load_before,
        **environment(torch=torch.__version__),
        "bm25_ndcg@10": evaluate(heads, qrels, parse_measures(["nDCG@10"]))[0]["nDCG@10"] if trained else None,
        "results": results_of(measured, pairs, qrels if trained else None),
        "skipped": skipped,
        "command": "python benchmarks/cross_encoder.py" + "".join(f" {a}" for a in (argv or sys.argv[1:])),
    }
    name = f"cross_encoder-{cpu_kind(report['machine']['cpu_flags'])}"
    write_report(args.out, name, render(report), report)
    log.info("wrote %s", args.out / f"{name}.md")
    return report


def render(report: dict) -> str:
    """The Markdown report: the setting, one table, what was not run, and the command."""
    machine, trained = report["machine"], report["bm25_ndcg@10"] is not None
    lines = [
        "# Cross-encoder throughput and fidelity: rankbench vs sentence-transformers",
        "",
        f"Model `{report['model']}` (weights {report['model_hash']}); {report['pairs']} pairs = BM25 top-"
        f"{report['depth']} of {report['queries']} SciFact test queries; max_length {report['max_length']}, "
        f"batch size {report['batch_size']}, {report['threads']} threads; {machine['cpu']} ({machine['cpu_count']} "
        f"cores; vector flags: {', '.join(machine['cpu_flags']) or 'none'}). Load average (1, 5, 15 min) before "
        f"timing {', '.join(f'{v:.2f}' for v in report['load_average_before'])}, after "
        f"{', '.join(f'{v:.2f}' for v in report['load_average'])}; the systems took turns over "
        f"{report['rounds']} slices, so other work slows them alike: compare ratios.",
        "",
        "| system | pairs/s | ratio vs ST | max abs diff vs ST | Spearman vs ST | Spearman vs fp32 (mean / min) "
        f"| top-10 overlap vs fp32 |{' nDCG@10 |' if trained else ''}",
        f"|---|---:|---:|---:|---:|---:|---:|{'---:|' if trained else ''}",
    ]
    for r in report["results"]:
        ndcg = f" {r['ndcg@10']:.4f} |" if trained else ""
        lines.append(
            f"| {r['system']} | {r['pairs_per_s']:.1f} | {r['ratio_vs_peer']:.2f} | {r['max_abs_diff_vs_peer']:.2e} "
            f"| {r['mean_spearman_vs_peer']:.4f} | {r['mean_spearman_vs_fp32']:.4f} / "
            f"{r['min_spearman_vs_fp32']:.4f} | {r['top10_overlap_vs_fp32']:.3f} |{ndcg}"
        )
    if trained:
        lines.append(f"\nBM25 alone on the same queries: nDCG@10 {report['bm25_ndcg@10']:.4f}.")
    lines += [f"\nNot run: {s['system']} ({s['reason']})." for s in report["skipped"]]
    lines += ["", "Reproduce:", "", f"    {report['command']}"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
