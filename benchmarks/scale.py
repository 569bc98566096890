"""BM25 at scale: SciFact plus N synthetic distractors, each BM25 engine and bm25s, one process each.

    python benchmarks/scale.py                              # N = 0, 100k, 1M (make bench-scale)
    python benchmarks/scale.py --sizes 0,100000 --queries 50
    python benchmarks/scale.py --sizes 0 --msmarco          # adds 8.8M MS MARCO-shaped passages

Corpora come from benchmarks/synthetic.py (seeded, cached as BEIR folders under
``<cache-dir>/scale/<name>/``). Every (corpus, system) pair is measured in a fresh child process
(``--_one CORPUS SYSTEM``), so its peak RSS is its own and a crash or an out-of-memory kill loses
nothing else. The child indexes (timing ``index()`` and reading the engine's ``stats``: Lucene
indexing and postings export when it reports them), runs one untimed warm-up pass, then times one
pass over the queries at each depth, scores the deepest run with nDCG@10 and saves it, and writes
its result JSON atomically to ``<cache-dir>/scale/results/``. A rerun skips every pair whose result
is there with the same settings, so an interrupted benchmark resumes. The parent then compares
each system's deepest run with Anserini's hit for hit and writes ``<out>/scale.md`` and ``.json``.

The rankbench engines share one Lucene index cache entry today, so the numpy engine runs first
and builds it; each result says whether its index was built or reused. bm25s holds its whole
index in memory: before it runs, its need is estimated from the corpus's word count and it is
skipped, with the reason recorded, when the estimate exceeds the memory available.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from anywhere: import this checkout's packages
    sys.path.insert(0, str(REPO))

from benchmarks import synthetic  # noqa: E402
from benchmarks.common import Bm25sPeer, add_path_options, compare_runs, environment, write_report  # noqa: E402
from rankbench.harness import cache  # noqa: E402
from rankbench.harness.types import Query, Run  # noqa: E402

log = logging.getLogger("bench.scale")

K1, B, THREADS = 0.9, 0.4, 2
SYSTEMS = ("numpy", "anserini", "bm25s")  # numpy first: it builds the Lucene index the anserini engine reuses
REFERENCE = "anserini"
# bm25s's peak RSS: a base (interpreter, numpy, scipy) plus bytes per corpus word and per document. Fitted
# on this benchmark's SciFact-shaped corpora (0.23 GiB at 1.2M words, 1.0 GiB at 23.7M words: ~37 bytes a
# word) and in line with 8.9 GB at 1M documents (~225M words); the guard adds a quarter on top.
BM25S_BYTES_PER_WORD = 40.0
BM25S_BYTES_PER_DOC = 400.0  # a text, a token list and a docid string per document
BM25S_BASE_BYTES = 0.25 * 2**30
GUARD_MARGIN = 1.25
GB = 2**30  # GiB: RSS and disk as the kernel counts them (the tables say GiB)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="0,100000,1000000", help="distractor counts added to SciFact")
    parser.add_argument("--msmarco", action="store_true", help="also the 8.8M-passage MS MARCO-shaped corpus")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"subset of {','.join(SYSTEMS)}")
    parser.add_argument("--queries", type=int, default=None, help="only the first N SciFact test queries (smoke)")
    parser.add_argument("--hits", default="10,100,1000", help="depths timed; nDCG@10 comes from the deepest")
    parser.add_argument("--seed", type=int, default=13, help="seed of the synthetic distractors")
    parser.add_argument("--heap", default="2g", help="JVM -Xmx of the rankbench children")
    add_path_options(parser, "corpora, indexes and per-measurement results go under <cache-dir>/scale/")
    parser.add_argument("--_one", nargs=2, metavar=("CORPUS", "SYSTEM"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    args.systems = [s for s in SYSTEMS if s in args.systems.split(",")]
    args.hits = sorted(int(h) for h in args.hits.split(",") if h.strip())
    args.root = args.cache_dir / "scale"
    return args


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """What a stored result must have been measured with to be reused."""
    return {"queries": args.queries, "hits": args.hits, "k1": K1, "b": B, "threads": THREADS, "heap": args.heap}


# ---- the child: one system on one corpus ------------------------------------------------------------


def kib_field_gb(path: str, field: str) -> float | None:
    """A ``Field:  N kB`` line of a /proc file in GiB: VmRSS (now) or VmHWM (peak) of this process from
    /proc/self/status, JVM included; MemTotal or MemAvailable from /proc/meminfo."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024 / GB
    except OSError:
        pass
    return None


def du(path: Path) -> int:
    """Bytes of every file under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def timed_passes(search: Callable[[int], Run], hits: list[int], queries: int) -> tuple[dict[str, float], Run]:
    """One untimed warm-up pass at the deepest depth, then one timed pass per depth: (q/s per depth, deepest run)."""
    search(hits[-1])
    qps, run = {}, {}
    for depth in hits:
        start = time.perf_counter()
        run = search(depth)
        qps[str(depth)] = queries / (time.perf_counter() - start)
        log.info("  @%d: %.1f q/s", depth, qps[str(depth)])
    return qps, run


def index_rankbench(engine: str, dataset: Any, cache_dir: Path, hits: int, heap: str) -> tuple[Any, dict[str, Any]]:
    """A rankbench BM25 engine indexed (or its cached index reused): the retriever and what indexing cost."""
    from rankbench.retrievers.bm25 import BM25

    retriever = BM25(k1=K1, b=B, hits=hits, threads=THREADS, remove_query=True, engine=engine, java={"heap": heap})
    with cache.tally() as used:
        start = time.perf_counter()
        retriever.index(dataset.corpus, cache_dir)
        seconds = time.perf_counter() - start
    folders = {"lucene": retriever.index_dir, "postings": retriever.postings_dir}
    disk = {name: du(folder) for name, folder in folders.items() if folder is not None}
    stats = dict(retriever.stats())
    info = {
        "index_s": seconds,
        "stats": stats,
        "cache": {kind: dict(counts) for kind, counts in used.items()},
        "built": any(counts.get("built") for counts in used.values()),
        "rss_after_index_gb": kib_field_gb("/proc/self/status", "VmRSS"),
        "disk_bytes": disk,
        "postings": stats.get("postings"),
    }
    return retriever, info


def measure_rankbench(engine: str, dataset: Any, queries: list[Query], args: argparse.Namespace) -> dict[str, Any]:
    """Index with a rankbench engine, then time its searches; the JVM lives in this child, so its RSS counts."""
    from rankbench.harness import java

    java.configure(heap=args.heap, crash_dir=args.root)
    retriever, info = index_rankbench(engine, dataset, args.root / "index", args.hits[-1], args.heap)

    def search(depth: int) -> Run:
        retriever.hits = depth  # the same indexed retriever at each depth: no second index lookup
        return retriever.retrieve(queries)

    qps, run = timed_passes(search, args.hits, len(queries))
    return {**info, "qps": qps, "run": run}


def measure_bm25s(dataset: Any, queries: list[Query], args: argparse.Namespace) -> dict[str, Any]:
    """bm25s as a user runs it: every text read into memory, tokenised and indexed (all three timed), then searched."""
    start = time.perf_counter()
    docs = list(dataset.corpus)
    texts = [f"{d.title} {d.text}" if d.title else d.text for d in docs]
    docids = [d.docid for d in docs]
    del docs
    read = time.perf_counter()
    peer = Bm25sPeer(texts, docids, K1, B, n_threads=THREADS)
    done = time.perf_counter()
    del texts
    info = {
        "index_s": done - start,
        "stats": {"read_corpus_s": read - start, "tokenize_index_s": done - read},
        "built": True,
        "rss_after_index_gb": kib_field_gb("/proc/self/status", "VmRSS"),
        "disk_bytes": {},
        "postings": peer.postings,
        "note": peer.note,
    }
    qps, run = timed_passes(lambda depth: peer.search(queries, depth), args.hits, len(queries))
    return {**info, "qps": qps, "run": run}


def run_one(args: argparse.Namespace, corpus: str, system: str) -> int:
    """Measure ``system`` on ``corpus`` and write its result JSON and its deepest run; the child's whole job."""
    from rankbench.harness.datasets import load_dataset
    from rankbench.harness.metrics import evaluate, parse_measures
    from rankbench.harness.runfile import write_trec_run

    folder = args.root / corpus
    manifest = synthetic.read_manifest(folder)
    if manifest is None:
        raise SystemExit(f"{folder} is not a complete corpus: run scale.py without --_one first")
    dataset = load_dataset({"name": corpus, "path": str(folder), "split": "test"}, None)
    queries = dataset.queries[: args.queries] if args.queries else dataset.queries
    log.info("%s / %s: %d documents, %d queries", corpus, system, manifest["docs"], len(queries))
    if system == "bm25s":
        measured = measure_bm25s(dataset, queries, args)
    else:
        measured = measure_rankbench(system, dataset, queries, args)
    run = measured.pop("run")
    metrics, _ = evaluate(run, {q.qid: dataset.qrels[q.qid] for q in queries}, parse_measures(["nDCG@10"]))
    results = args.root / "results"
    run_path = results / f"{corpus}__{system}.trec"
    tmp = cache.temp_path(run_path)
    write_trec_run(run, tmp, tag=system)
    os.replace(tmp, run_path)
    result = {
        "corpus": corpus,
        "system": system,
        "status": "ok",
        "settings": settings(args),
        "docs": manifest["docs"],
        "words": manifest["words"],
        "queries": len(queries),
        **measured,
        "ndcg10": metrics["nDCG@10"],
        "peak_rss_gb": kib_field_gb("/proc/self/status", "VmHWM"),
        "run_file": run_path.name,
    }
    cache.write_text_atomic(results / f"{corpus}__{system}.json", json.dumps(result, indent=1))
    return 0


# ---- the parent: corpora, children, resume -------------------------------------------------------------


def bm25s_guard(docs: int, words: int, available_gb: float) -> str | None:
    """Why bm25s must not run on a corpus this size (its estimated peak exceeds the memory), or None."""
    need = (BM25S_BASE_BYTES + BM25S_BYTES_PER_WORD * words + BM25S_BYTES_PER_DOC * docs) / GB
    if need * GUARD_MARGIN <= available_gb:
        return None
    return (
        f"estimated peak {need:.1f} GiB (+{GUARD_MARGIN - 1:.0%} margin) for {docs:,} documents and {words:,} words "
        f"exceeds the {available_gb:.1f} GiB available: bm25s holds every text, token list and score in memory"
    )


def run_child(command: list[str], log_path: Path) -> dict[str, Any]:
    """Run one measurement process, its stderr shown live and kept in ``log_path``; its exit and peak RSS.

    ``os.wait4`` gives this child's own peak RSS even when it was killed (out of memory, say).
    """
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(command, stderr=subprocess.PIPE, cwd=REPO)
        assert proc.stderr is not None
        while chunk := os.read(proc.stderr.fileno(), 1 << 16):
            sys.stderr.buffer.write(chunk)
            sys.stderr.flush()
            log_file.write(chunk)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        proc.stderr.close()
    return {"returncode": proc.returncode, "maxrss_gb": usage.ru_maxrss * 1024 / GB}


def stderr_tail(log_path: Path, lines: int = 25) -> str:
    """The last lines of a child's stderr, each progress-bar line collapsed to its last redraw."""
    text = log_path.read_text(encoding="utf-8", errors="replace")
    kept = [line.rsplit("\r", 1)[-1] for line in text.split("\n")]
    return "\n".join([line for line in kept if line.strip()][-lines:])


def stored_result(path: Path, wanted: dict[str, Any]) -> dict[str, Any] | None:
    """A finished measurement with these settings, or None (missing, failed, skipped, other settings)."""
    try:
        result = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return result if result.get("status") == "ok" and result.get("settings") == wanted else None


def child_command(args: argparse.Namespace, corpus: str, system: str) -> list[str]:
    """This script again, in this interpreter, measuring one pair with the parent's settings."""
    command = [sys.executable, str(Path(__file__).resolve()), "--_one", corpus, system]
    command += ["--cache-dir", str(args.cache_dir), "--hits", ",".join(map(str, args.hits)), "--heap", args.heap]
    return command + (["--queries", str(args.queries)] if args.queries else [])


def measure_pair(args: argparse.Namespace, corpus: str, system: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """Run (or skip, when bm25s would not fit) one measurement; a failure becomes a result, never an exception."""
    results = args.root / "results"
    path = results / f"{corpus}__{system}.json"
    base = {"corpus": corpus, "system": system, "settings": settings(args), "docs": manifest["docs"]}
    if system == "bm25s":
        reason = bm25s_guard(manifest["docs"], manifest["words"], kib_field_gb("/proc/meminfo", "MemAvailable") or 0.0)
        if reason:
            log.warning("%s / bm25s skipped: %s", corpus, reason)
            result = {**base, "status": "skipped", "reason": reason}
            cache.write_text_atomic(path, json.dumps(result, indent=1))
            return result
    log_path = results / f"{corpus}__{system}.log"
    child = run_child(child_command(args, corpus, system), log_path)
    result = stored_result(path, settings(args)) if child["returncode"] == 0 else None
    if result is None:
        tail = stderr_tail(log_path)
        log.error("%s / %s failed (exit %s):\n%s", corpus, system, child["returncode"], tail)
        result = {**base, "status": "failed", "returncode": child["returncode"], "stderr_tail": tail}
    result["wait4_maxrss_gb"] = child["maxrss_gb"]
    cache.write_text_atomic(path, json.dumps(result, indent=1))
    return result


def corpora(args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    """Generate (or reuse) every requested corpus: (name, manifest) in order."""
    source = synthetic.Source(Path(args.data_root) / "beir" / "scifact.zip")
    specs = [synthetic.scifact_spec(n, args.seed) for n in args.sizes]
    if args.msmarco:
        specs.append(synthetic.msmarco_spec(args.seed, source.docs))
    found = []
    for spec in specs:
        folder = synthetic.ensure_corpus(spec, source, args.root)
        manifest = synthetic.read_manifest(folder)
        assert manifest is not None, f"{folder} failed its manifest check right after generation"
        found.append((spec.name, manifest))
    return found


def measure_all(args: argparse.Namespace, found: list[tuple[str, dict[str, Any]]]) -> tuple[list[dict], dict]:
    """Every (corpus, system) result, stored ones reused; with how many children ran, were reused, failed."""
    (args.root / "results").mkdir(parents=True, exist_ok=True)
    counts = {"ran": 0, "reused": 0, "failed": 0, "skipped": 0}
    results = []
    pairs = [(name, manifest, system) for name, manifest in found for system in args.systems]
    for i, (name, manifest, system) in enumerate(pairs, start=1):
        stored = stored_result(args.root / "results" / f"{name}__{system}.json", settings(args))
        if stored is not None:
            log.info("[%d/%d] %s / %s: measured before, reused", i, len(pairs), name, system)
            counts["reused"] += 1
            results.append(stored)
            continue
        log.info("[%d/%d] %s / %s: measuring in a child process", i, len(pairs), name, system)
        result = measure_pair(args, name, system, manifest)
        counts["ran"] += result["status"] != "skipped"  # a failed child ran too
        if result["status"] != "ok":
            counts[result["status"]] += 1
        results.append(result)
    return results, counts


def add_comparisons(args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    """``same_as_anserini`` on each result: its deepest run against Anserini's on the same corpus, hit for hit."""
    from rankbench.harness.runfile import read_trec_run

    folder = args.root / "results"
    for corpus in {r["corpus"] for r in results}:
        ok = {r["system"]: r for r in results if r["corpus"] == corpus and r["status"] == "ok"}
        if REFERENCE not in ok:
            continue
        reference = read_trec_run(folder / ok[REFERENCE]["run_file"])
        for system, result in ok.items():
            if system != REFERENCE:
                same_order, worst = compare_runs(read_trec_run(folder / result["run_file"]), reference)
                result["same_as_anserini"] = bool(same_order and worst < 1e-5)
                result["max_score_diff_vs_anserini"] = worst


# ---- the report ----------------------------------------------------------------------------------------------


def _num(value: Any, fmt: str = ".1f") -> str:
    return "–" if value is None else format(value, fmt)


def row(r: dict[str, Any], hits: list[int]) -> str:
    """One table row: a failed or skipped measurement says so in place of its numbers."""
    if r["status"] != "ok":
        cells = [r["corpus"], r["system"], f"{r['docs']:,}"] + ["–"] * (8 + len(hits))
        return "| " + " | ".join(cells) + f" | {r['status']} |"
    stats = r.get("stats", {})
    disk = sum(r.get("disk_bytes", {}).values()) / GB if r.get("disk_bytes") else None
    same = {True: "yes", False: "**no**", None: "reference" if r["system"] == REFERENCE else "–"}
    cells = [
        r["corpus"],
        r["system"],
        f"{r['docs']:,}",
        _num(r.get("postings"), ",") if r.get("postings") is not None else "–",
        _num(stats.get("lucene_index_s")),
        _num(stats.get("export_s")),
        _num(r["index_s"]) + ("" if r.get("built") else " (reused)"),
        _num(r.get("peak_rss_gb"), ".2f"),
        _num(disk, ".2f"),
        *(_num(r["qps"].get(str(h))) for h in hits),
        _num(r.get("ndcg10"), ".4f"),
        same[r.get("same_as_anserini")],
    ]
    return "| " + " | ".join(cells) + " | ok |"


def ratios(results: list[dict[str, Any]], deepest: int) -> list[dict[str, Any]]:
    """Per corpus, what the issue's targets compare: numpy against Anserini, export overhead, memory, bm25s."""
    out = []
    for corpus in dict.fromkeys(r["corpus"] for r in results):
        ok = {r["system"]: r for r in results if r["corpus"] == corpus and r["status"] == "ok"}
        numpy, anserini, peer = ok.get("numpy"), ok.get("anserini"), ok.get("bm25s")
        qps = {name: r["qps"].get(str(deepest)) for name, r in ok.items()}
        lucene = (numpy or {}).get("stats", {}).get("lucene_index_s")
        out.append(
            {
                "corpus": corpus,
                "numpy_over_anserini_qps": qps["numpy"] / qps["anserini"] if numpy and anserini else None,
                "index_over_lucene": numpy["index_s"] / lucene if numpy and lucene and numpy.get("built") else None,
                "numpy_peak_rss_gb": numpy.get("peak_rss_gb") if numpy else None,
                "bm25s_qps": qps.get("bm25s"),
                "bm25s_peak_rss_gb": peer.get("peak_rss_gb") if peer else None,
                "numpy_over_bm25s_qps": qps["numpy"] / qps["bm25s"] if numpy and peer else None,
            }
        )
    return out


def render(meta: dict[str, Any], results: list[dict[str, Any]], table: list[dict[str, Any]]) -> str:
    """The Markdown report: one row per measurement, the ratios per corpus, what was not measured, how to rerun."""
    hits = meta["hits"]
    deepest = hits[-1]
    machine = meta["environment"]["machine"]
    lines = [
        "# BM25 at scale: SciFact plus synthetic distractors",
        "",
        f"{meta['queries']} SciFact test queries, k1={K1} b={B}, {THREADS} threads; {machine['cpu']} "
        f"({machine['cpu_count']} cores; vector flags: {', '.join(machine['cpu_flags']) or 'no avx2/avx512/amx'}), "
        f"{meta['memory_gb']:.1f} GiB RAM. 1-minute load average at the start/end: {meta['load_average_1min'][0]} / "
        f"{meta['load_average_1min'][1]} (other work slows every system; compare within one report).",
        "",
        "Each row is one child process: index (or reuse the cached index), one untimed warm-up pass, then one "
        "timed pass per depth. Lucene index s and export s are what the engine reports about its build; total "
        'index s is the wall time of `index()` (corpus reading included; "reused": the index was cached, the time '
        f"is the lookup). Peak RSS is the child's own (JVM included). nDCG@10 is from the {deepest}-hit run; "
        f"same as Anserini: that run equals `engine=anserini`'s hit for hit (scores within 1e-5).",
        "",
        "| corpus | system | docs | postings | Lucene index s | export s | total index s | peak RSS GiB | disk GiB | "
        + " | ".join(f"q/s @{h}" for h in hits)
        + " | nDCG@10 | same as Anserini | status |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * len(hits) + "---:|---|---|",
        *(row(r, hits) for r in results),
        "",
        f"## Ratios (targets at 1M documents: numpy ≥ 5× Anserini's q/s @{deepest}, index + export ≤ 1.5× Lucene "
        "indexing, numpy peak RSS ≤ 4 GB)",
        "",
        f"| corpus | numpy ÷ Anserini q/s @{deepest} | total index ÷ Lucene index | numpy peak RSS GiB "
        f"| bm25s q/s @{deepest} | bm25s peak RSS GiB | numpy ÷ bm25s q/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {t['corpus']} | {_num(t['numpy_over_anserini_qps'], '.2f')} | {_num(t['index_over_lucene'], '.2f')} "
            f"| {_num(t['numpy_peak_rss_gb'], '.2f')} | {_num(t['bm25s_qps'])} | {_num(t['bm25s_peak_rss_gb'], '.2f')} "
            f"| {_num(t['numpy_over_bm25s_qps'], '.2f')} |"
            for t in table
        ),
        "",
    ]
    notes = [f"- **{r['corpus']} / {r['system']}** {r['status']}: {r.get('reason') or ''}" for r in results]
    notes = [n for n, r in zip(notes, results, strict=True) if r["status"] != "ok"]
    failures = [r for r in results if r["status"] == "failed"]
    if notes:
        lines += ["## Not measured", "", *notes, ""]
        for r in failures:
            tail = "\n".join(f"    {line}" for line in r.get("stderr_tail", "").splitlines())
            lines += [f"{r['corpus']} / {r['system']}: exit {r.get('returncode')}, stderr tail:", "", tail, ""]
    peer_note = next((r.get("note") for r in results if r["system"] == "bm25s" and r.get("note")), None)
    if peer_note:
        lines += [f"bm25s 0.3.16: method=lucene; {peer_note}.", ""]
    lines += ["## Reproduce", "", f"    {meta['command']}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args._one:
        return run_one(args, *args._one)
    load_before = os.getloadavg()[0]
    found = corpora(args)
    results, counts = measure_all(args, found)
    add_comparisons(args, results)
    table = ratios(results, args.hits[-1])
    queries = next((r["queries"] for r in results if r["status"] == "ok"), args.queries)
    meta = {
        "hits": args.hits,
        "queries": queries,
        "seed": args.seed,
        "generator": synthetic.GENERATOR_VERSION,
        "children": counts,
        "memory_gb": kib_field_gb("/proc/meminfo", "MemTotal") or 0.0,
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "environment": environment(),
        "corpora": {name: {k: manifest[k] for k in ("docs", "words")} for name, manifest in found},
        "command": "python benchmarks/scale.py" + "".join(f" {a}" for a in (argv or sys.argv[1:])),
    }
    write_report(args.out, "scale", render(meta, results, table), {"meta": meta, "results": results, "ratios": table})
    log.info("children: %(ran)d ran, %(reused)d reused, %(failed)d failed, %(skipped)d skipped", counts)
    log.info("wrote %s and %s", args.out / "scale.md", args.out / "scale.json")
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
