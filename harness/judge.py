"""Fill the holes in runs' top-k with graded LLM relevance judgments, and measure whether to trust them.

python -m harness.judge RUN_DIR [RUN_DIR ...] [key=value ...]   (conf/judge.yaml; docs/judge.md)

For every pair in the runs' top ``depth`` that the qrels do not judge, the LLM grades the document
0-3 with an UMBRELA-style prompt (conf/prompt/umbrela.yaml). Answers go through the response
cache the listwise reranker uses, so a rerun makes no calls. An answer without a readable grade
is counted as malformed and its pair stays unjudged: it never becomes a silent 0.

Written to ``<out_dir>/<dataset>/<hash>/``: ``qrels.augmented.txt`` (TREC qrels: the human ones
plus the LLM ones), ``judgments.tsv`` (every pair of the augmented qrels with its ``source``,
human or llm, plus the held-out pairs and the malformed ones) and ``judge.json`` (provenance,
counts, measures on both qrels per run, agreement).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import logging
import random
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from tqdm import tqdm

from rankbench.harness import agreement, cost
from rankbench.harness.cache import key_hash, write_text_atomic
from rankbench.harness.config import conf_dir
from rankbench.harness.datasets import Dataset, load_dataset, natural_key
from rankbench.harness.errors import ConfigError, DataError, RankbenchError
from rankbench.harness.experiment import select_queries
from rankbench.harness.leaderboard import to_markdown
from rankbench.harness.llm import CallClock
from rankbench.harness.metrics import evaluate, parse_measures
from rankbench.harness.provenance import git_commit
from rankbench.harness.response_cache import (  # the listwise reranker's store of paid-for answers
    ResponseCache,
    request_key,
)
from rankbench.harness.runfile import read_trec_run
from rankbench.harness.signals import resumable
from rankbench.harness.types import Qrels, Run

log = logging.getLogger(__name__)

GRADES = (0, 1, 2, 3)
GRADE_MAPS = ("auto", "identity", "binary")
# "Final score: 2", "final score = **3**", "Score: 1", "Relevance: 0"; the last such phrase counts.
_LABELLED = re.compile(r"(?:final\s+score|score|grade|relevance)\s*(?:is|of|=|:)?\s*[*\"'(\[]*\s*(\d+)", re.I)
_BARE = re.compile(r"^\W*(\d+)\W*$")  # the whole answer is one number, e.g. "2" or "**3**."


@dataclass(frozen=True)
class JudgePrompt:
    """A template from conf/prompt/ with placeholders {query} and {passage}; ``grade_names`` are the
    scale's names of grades 0-3, read when an answer names its grade instead of giving the number."""

    system: str
    user: str
    grade_names: tuple[str, ...] = ()

    def messages(self, query: str, passage: str) -> list[dict[str, str]]:
        return [
            {"role": "system", "content": self.system},
            {"role": "user", "content": self.user.format(query=query, passage=passage)},
        ]

    def digest(self) -> str:
        """What provenance names the prompt by: its text, not its file name, which may be edited."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]

    def name_pattern(self) -> re.Pattern | None:
        """A grade name as a whole phrase, not negated ("not related", "isn't relevant")."""
        if not self.grade_names:
            return None
        names = sorted(self.grade_names, key=len, reverse=True)  # "highly relevant" before a shorter name
        return re.compile(r"(?<!not )(?<!n't )\b(" + "|".join(map(re.escape, names)) + r")\b", re.I)


@dataclass(frozen=True)
class Request:
    """One LLM call the judge would make: ``purpose`` is "hole" (fills the qrels) or "holdout"."""

    qid: str
    docid: str
    purpose: str
    messages: list[dict[str, str]]
    max_tokens: int


@dataclass
class Tally:
    calls: int = 0  # answers bought now (cached answers are not calls)
    cached: int = 0
    failed: int = 0  # calls that failed after the backend's retries: the pair stays unjudged
    malformed: int = 0  # answers with no grade 0-3 in them: the pair stays unjudged
    by_name: int = 0  # answers graded by a grade name ("highly relevant") rather than a number
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0  # wall time with a call in flight (harness/llm.py CallClock)


@dataclass
class RunInput:
    label: str  # "<system> (<config hash>)", as the run folder names it
    path: Path
    run: Run
    measures: list[str]


@dataclass
class Plan:
    """Everything decided before any call: the pairs, and why each is asked."""

    dataset: Dataset
    runs: list[RunInput]
    qids: list[str]
    pooled: int  # distinct (qid, docid) pairs in the runs' top-k
    holes: list[tuple[str, str]]
    holdout_relevant: list[tuple[str, str]]
    holdout_nonrelevant: list[tuple[str, str]]
    nonrelevant_kind: str  # "judged" (grade-0 rows of the qrels) or "assumed" (unjudged, by convention 0)
    requests: list[Request] = field(default_factory=list)


def parse_grade(text: str, prompt: JudgePrompt | None = None) -> tuple[int | None, str]:
    """(grade 0-3, how it was read): the last labelled score ("Final score: 2"), else a bare number,
    else the first grade name the answer uses ("score" | "name"); (None, "malformed") when none is
    found or the number is out of range: a malformed answer is never read as 0."""
    found = _LABELLED.findall(text)
    if not found and (bare := _BARE.match(text.strip())):
        found = [bare.group(1)]
    if found:
        grade = int(found[-1])
        return (grade, "score") if grade in GRADES else (None, "malformed")
    pattern = prompt.name_pattern() if prompt else None
    if pattern and (named := pattern.search(text)):
        names = [name.lower() for name in prompt.grade_names]
        return names.index(named.group(1).lower()), "name"
    return None, "malformed"


def compose_config(overrides: list[str]) -> DictConfig:
    """conf/judge.yaml with command-line overrides such as ``llm=openai depth=20``."""
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            return compose("judge", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(f"conf/judge.yaml with overrides {overrides}: {e}") from None


def load_runs(run_dirs: list[Path]) -> tuple[DictConfig, list[RunInput]]:
    """The runs and the one run config they share (dataset and max_queries must agree)."""
    if not run_dirs:
        raise ConfigError("name at least one run folder (runs/<dataset>/<system>/<hash>)")
    inputs, first = [], None
    for path in run_dirs:
        for name in ("run.trec", "config.yaml"):
            if not (path / name).is_file():
                raise DataError(f"{path}: no {name}; expected an evaluate.py run folder")
        cfg = OmegaConf.load(path / "config.yaml")
        if first is None:
            first = cfg
        for key in ("dataset", "max_queries"):
            if _plain(cfg.get(key)) != _plain(first.get(key)):
                raise ConfigError(f"{path}/config.yaml: {key} differs from {run_dirs[0]}'s; judge runs of one dataset")
        measures = [str(m) for m in cfg.get("measures") or []]
        inputs.append(RunInput(f"{path.parent.name} ({path.name})", path, read_trec_run(path / "run.trec"), measures))
    return first, inputs


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def pool(runs: list[RunInput], qids: list[str], depth: int) -> list[tuple[str, str]]:
    """The union of the runs' top-``depth`` (qid, docid) pairs, in natural qid order then first sight."""
    pairs: dict[tuple[str, str], None] = {}
    for qid in qids:
        for run in runs:
            for docid, _ in run.run.get(qid, [])[:depth]:
                pairs[(qid, docid)] = None
    return list(pairs)


def holdout(
    pooled: list[tuple[str, str]], qrels: Qrels, size: int, seed: int
) -> tuple[list[tuple[str, str]], list[tuple[str, str]], str]:
    """Human-judged pairs of the pool held out for agreement: up to ``size`` relevant ones, and as
    many non-relevant ones. Non-relevant ones are grade-0 rows of the qrels where it has any in the
    pool; qrels of relevant documents only (SciFact) judge the rest non-relevant by convention, so
    then they are unjudged pool pairs, marked "assumed" (docs/judge.md says what that costs κ)."""
    rng = random.Random(seed)
    judged = [p for p in pooled if p[1] in qrels.get(p[0], {})]
    relevant = [p for p in judged if qrels[p[0]][p[1]] > 0]
    relevant = sorted(rng.sample(relevant, min(size, len(relevant))), key=_pair_order)
    zeros = [p for p in judged if qrels[p[0]][p[1]] <= 0]
    kind = "judged" if zeros else "assumed"
    candidates = zeros or [p for p in pooled if p[1] not in qrels.get(p[0], {})]
    nonrelevant = sorted(rng.sample(candidates, min(len(relevant), len(candidates))), key=_pair_order)
    return relevant, nonrelevant, kind


def _pair_order(pair: tuple[str, str]) -> tuple[list, str]:
    return natural_key(pair[0]), pair[1]


def plan(cfg: DictConfig, run_dirs: list[Path], llm: Any) -> Plan:
    """Every pair to judge and its prompt, without calling the LLM (the backend only counts and
    cuts tokens): ``Plan.requests`` is what a cost estimate needs."""
    _check(cfg)
    run_cfg, runs = load_runs(run_dirs)
    dataset = load_dataset(run_cfg.dataset, cfg.data_root or run_cfg.get("data_root"), cfg.cache_dir)
    qids = [q.qid for q in select_queries(dataset.queries, run_cfg.get("max_queries"))]
    pooled = pool(runs, qids, cfg.depth)
    holes = [p for p in pooled if p[1] not in dataset.qrels.get(p[0], {})]
    relevant, nonrelevant, kind = holdout(pooled, dataset.qrels, cfg.holdout.size, cfg.holdout.seed)
    result = Plan(dataset, runs, qids, len(pooled), holes, relevant, nonrelevant, kind)
    result.requests = requests(cfg, result, llm)
    return result


def planned_requests(cfg: DictConfig, run_dirs: list[Path], llm: Any | None = None) -> list[Request]:
    """The calls ``judge`` would make (prompt messages and max completion tokens per pair), with no
    call made: what a cost estimate counts. Answers already cached are included; ``judge`` skips them."""
    return plan(cfg, run_dirs, llm if llm is not None else instantiate(cfg.llm)).requests


def requests(cfg: DictConfig, p: Plan, llm: Any) -> list[Request]:
    """One request per hole, then one per held-out human-judged pair (holes held out are asked once)."""
    prompt = judge_prompt(cfg)
    asked = [(pair, "hole") for pair in p.holes] + [(pair, "holdout") for pair in p.holdout_relevant]
    if p.nonrelevant_kind == "judged":
        asked += [(pair, "holdout") for pair in p.holdout_nonrelevant]
    docs = p.dataset.corpus.get_many({docid for (_, docid), _ in asked})
    if missing := {docid for (_, docid), _ in asked} - docs.keys():
        raise DataError(f"{len(missing)} run documents are not in {p.dataset.corpus.source}: {sorted(missing)[:5]}")
    texts = {q.qid: q.text for q in p.dataset.queries}
    out = []
    for (qid, docid), purpose in asked:
        passage = llm.truncate(f"{docs[docid].title} {docs[docid].text}".strip(), cfg.passage_tokens)
        out.append(Request(qid, docid, purpose, prompt.messages(texts[qid], passage), cfg.max_tokens))
    return out


def judge_prompt(cfg: DictConfig) -> JudgePrompt:
    try:
        spec = OmegaConf.to_container(cfg.prompt)
        prompt = JudgePrompt(**{**spec, "grade_names": tuple(spec.get("grade_names") or ())})
        prompt.messages("q", "p")
    except (TypeError, KeyError, IndexError) as e:
        raise ConfigError(f"prompt: {e}; expected the keys of conf/prompt/umbrela.yaml") from None
    if prompt.grade_names and len(prompt.grade_names) != len(GRADES):
        raise ConfigError(f"prompt.grade_names must name the grades 0-3 in order, got {list(prompt.grade_names)}")
    return prompt


def _check(cfg: DictConfig) -> None:
    size = cfg.holdout.size
    checks = [
        ("depth", cfg.depth, "a positive integer", isinstance(cfg.depth, int) and cfg.depth > 0),
        ("passage_tokens", cfg.passage_tokens, "a positive integer", cfg.passage_tokens > 0),
        ("max_tokens", cfg.max_tokens, "a positive integer", cfg.max_tokens > 0),
        ("grade_map", cfg.grade_map, f"one of {GRADE_MAPS}", cfg.grade_map in GRADE_MAPS),
        ("binary_threshold", cfg.binary_threshold, "1, 2 or 3", cfg.binary_threshold in GRADES[1:]),
        ("holdout.size", size, "an integer >= 0", isinstance(size, int) and size >= 0),
    ]
    for key, value, expected, ok in checks:
        if not ok:
            raise ConfigError(f"judge config {key} must be {expected}, got {value!r}")


def ask(
    requests: list[Request], llm: Any, cache: ResponseCache, prompt: JudgePrompt
) -> tuple[dict[tuple[str, str], dict], Tally]:
    """Each pair's answer {grade (None: malformed or failed), text, status}, cached answers first.
    Weights are loaded before the first call, so ``Tally.seconds`` (a :class:`CallClock`'s) times
    only the calls, as the estimate (harness/cost.py) does."""
    tally, answers, clock = Tally(), {}, CallClock()

    def one(request: Request) -> tuple[Request, dict | None, bool]:
        key = answer_key(request)
        if (answer := cache.get(key)) is not None:
            return request, answer, True
        try:
            with clock.timing():
                completion = llm.complete(request.messages, request.max_tokens)
        except RankbenchError as e:  # LLMCallFailed: the pair stays unjudged, and is counted
            log.warning("%s/%s: no judgment: %s", request.qid, request.docid, e)
            return request, None, False
        answer = {
            "text": completion.text,
            "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens,
        }
        cache.put(key, answer)
        return request, answer, False

    if any(cache.get(answer_key(r)) is None for r in requests):
        llm.load()
    with ThreadPoolExecutor(max(1, getattr(llm, "concurrency", 1))) as workers:
        for request, answer, cached in tqdm(
            workers.map(one, requests), total=len(requests), desc="judging", unit="pair"
        ):
            if answer is None:
                tally.failed += 1
                answers[(request.qid, request.docid)] = {"grade": None, "text": "", "status": "failed"}
                continue
            if cached:
                tally.cached += 1
            else:
                tally.calls += 1
                tally.prompt_tokens += answer["prompt_tokens"]
                tally.completion_tokens += answer["completion_tokens"]
            grade, status = parse_grade(answer["text"], prompt)
            tally.malformed += status == "malformed"
            tally.by_name += status == "name"
            answers[(request.qid, request.docid)] = {"grade": grade, "text": answer["text"], "status": status}
    tally.seconds = clock.seconds
    return answers, tally


def answer_key(request: Request) -> str:
    """The response-cache key of a judgment: its messages and decoding settings."""
    return request_key(request.messages, {"task": "judge", "max_tokens": request.max_tokens, "temperature": 0})


def cost_plan(requests: list[Request], llm: Any, cache: ResponseCache) -> cost.Plan:
    """The judgment's requests in harness/cost.py's terms (prompt tokens by the backend's own count, the
    cap on completion tokens, whether the answer is cached), for ``estimate_only=true``."""
    priced = [
        cost.Request(llm.prompt_tokens(r.messages), r.max_tokens, cache.get(answer_key(r)) is not None, r.messages)
        for r in tqdm(requests, desc="judging (estimate)", unit="pair")
    ]
    return cost.Plan(llm, priced, "completion tokens at their cap (max_tokens)")


def estimate(cfg: DictConfig, run_dirs: list[Path], llm: Any | None = None) -> cost.Cost:
    """What ``judge`` would spend on these runs, with no judgment asked (only a calibration, once per machine)."""
    llm = llm if llm is not None else instantiate(cfg.llm)
    requests = planned_requests(cfg, run_dirs, llm)
    cache = ResponseCache(Path(cfg.cache_dir) / "llm-answers", llm.identity())
    try:
        return cost.estimate(cost_plan(requests, llm, cache), Path(cfg.cache_dir))
    finally:
        cache.close()


def grade_mapping(cfg: DictConfig, qrels: Qrels) -> dict[int, int]:
    """LLM grade -> qrels grade; ``auto`` follows the human qrels' scale, so a SciFact gain stays 0/1."""
    human_max = max((g for docs in qrels.values() for g in docs.values()), default=1)
    binary = cfg.grade_map == "binary" or (cfg.grade_map == "auto" and human_max <= 1)
    return {g: int(g >= cfg.binary_threshold) if binary else g for g in GRADES}


def augmented_qrels(qrels: Qrels, p: Plan, answers: dict, mapping: dict[int, int]) -> Qrels:
    """The human qrels of the judged queries plus each hole the LLM graded; human rows always win."""
    out = {qid: dict(qrels.get(qid, {})) for qid in p.qids}
    for qid, docid in p.holes:
        if (grade := answers[(qid, docid)]["grade"]) is not None:
            out[qid].setdefault(docid, mapping[grade])
    return out


def measure_runs(p: Plan, augmented: Qrels, extra: list[str]) -> dict[str, dict[str, dict[str, float]]]:
    """Per run, its measures (plus ``extra``) on the original and on the augmented qrels."""
    original = {qid: p.dataset.qrels[qid] for qid in p.qids}
    out = {}
    for run in p.runs:
        names = list(dict.fromkeys([*run.measures, *extra]))
        measures = parse_measures(names)
        out[run.label] = {
            "original": evaluate(run.run, original, measures)[0],
            "augmented": evaluate(run.run, augmented, measures)[0],
        }
    return out


def measure_agreement(p: Plan, answers: dict, qrels: Qrels, threshold: int, measures: dict, tau_measure: str) -> dict:
    """κ on the held-out pairs (graded where human grades are graded; binarised at grade >= 1 and
    >= 2), their confusion matrix, and Kendall τ of the system orders under both qrels."""
    held = [(pair, qrels[pair[0]][pair[1]]) for pair in p.holdout_relevant]
    held += [(pair, qrels.get(pair[0], {}).get(pair[1], 0)) for pair in p.holdout_nonrelevant]
    graded = [(h, answers[pair]["grade"]) for pair, h in held if answers[pair]["grade"] is not None]
    human, llm = [h for h, _ in graded], [g for _, g in graded]
    human_max = max((g for docs in qrels.values() for g in docs.values()), default=1)
    labels = sorted(set(GRADES) | set(human))
    result: dict[str, Any] = {
        "held_out_relevant": len(p.holdout_relevant),
        "held_out_nonrelevant": len(p.holdout_nonrelevant),
        "nonrelevant_kind": p.nonrelevant_kind,
        "unanswered": len(held) - len(graded),
        "pairs": len(graded),
        "confusion": {
            "rows_human": labels,
            "cols_llm": labels,
            "counts": agreement.confusion_matrix(human, llm, labels),
        },
        # graded κ only means something when humans graded on the same 0-3 scale
        "kappa_graded": agreement.cohen_kappa(human, llm, labels) if human_max > 1 else None,
    }
    for t in (1, 2):  # human side: relevant at >= t, or >= 1 on binary qrels
        result[f"kappa_binary_ge{t}"] = agreement.cohen_kappa(
            agreement.binarised(human, min(t, human_max)), agreement.binarised(llm, t), (0, 1)
        )
    result["kappa_headline"] = f"kappa_binary_ge{threshold}"
    labels_runs = list(measures)
    scores = [[measures[r][q].get(tau_measure) for r in labels_runs] for q in ("original", "augmented")]
    if any(v is None for side in scores for v in side):
        raise ConfigError(f"tau_measure={tau_measure!r} is not an ir_measures measure name such as nDCG@10")
    result["tau"] = {"measure": tau_measure, "systems": len(labels_runs), "value": agreement.kendall_tau(*scores)}
    return result


def judgment_rows(p: Plan, answers: dict, qrels: Qrels, mapping: dict[int, int]) -> list[list[str]]:
    """judgments.tsv: every pair the judge touched and every human row of the judged queries."""
    header = ["qid", "docid", "source", "grade", "llm_grade", "status", "held_out"]
    held = set(p.holdout_relevant) | set(p.holdout_nonrelevant)
    rows = [header]
    for qid in p.qids:
        for docid, grade in qrels.get(qid, {}).items():
            answer = answers.get((qid, docid), {})
            llm_grade = answer.get("grade")
            rows.append(
                [qid, docid, "human", str(grade), "" if llm_grade is None else str(llm_grade),
                 answer.get("status", ""), str((qid, docid) in held).lower()]
            )  # fmt: skip
    for qid, docid in p.holes:
        answer = answers[(qid, docid)]
        grade = answer["grade"]
        rows.append(
            [qid, docid, "llm", "" if grade is None else str(mapping[grade]), "" if grade is None else str(grade),
             answer["status"], str((qid, docid) in held).lower()]
        )  # fmt: skip
    return rows


def judgment_hash(cfg: DictConfig, p: Plan, identity: dict[str, str], prompt: JudgePrompt) -> str:
    """Everything that decides the judgments and the held-out sample."""
    key = {
        "runs": sorted(str(r.path.resolve()) for r in p.runs),
        "data": p.dataset.fingerprint,
        "llm": identity,
        "prompt": prompt.digest(),
        **{k: OmegaConf.to_container(cfg)[k] for k in ("depth", "passage_tokens", "max_tokens", "holdout")},
        **{k: cfg[k] for k in ("grade_map", "binary_threshold")},
    }
    return key_hash(key)[:12]


def judge(cfg: DictConfig, run_dirs: list[Path], llm: Any | None = None) -> tuple[Path, dict[str, Any]]:
    """Plan, ask (cached), write the augmented qrels and judge.json; (output folder, judge.json)."""
    llm = llm if llm is not None else instantiate(cfg.llm)
    p = plan(cfg, run_dirs, llm)
    prompt = judge_prompt(cfg)
    cache = ResponseCache(Path(cfg.cache_dir) / "llm-answers", llm.identity())
    try:
        answers, tally = ask(p.requests, llm, cache, prompt)
    finally:
        cache.close()
    qrels = p.dataset.qrels
    mapping = grade_mapping(cfg, qrels)
    augmented = augmented_qrels(qrels, p, answers, mapping)
    measures = measure_runs(p, augmented, [*(cfg.measures or []), cfg.tau_measure, f"Judged@{cfg.depth}"])
    identity = llm.identity()
    report = {
        "provenance": {
            "model": llm.model,
            "backend": identity.get("backend", getattr(llm, "name", "")),
            "llm_identity": identity,
            "prompt": OmegaConf.to_container(cfg.prompt),
            "prompt_hash": prompt.digest(),
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "git_commit": git_commit(),
            "dataset": p.dataset.name,
            "runs": {r.label: str(r.path) for r in p.runs},
            "depth": cfg.depth,
            "grade_map": {str(k): v for k, v in mapping.items()},
        },
        "counts": {
            "queries": len(p.qids),
            "pool_pairs": p.pooled,
            "holes": len(p.holes),
            "llm_judged": sum(answers[pair]["grade"] is not None for pair in p.holes),
            "requests": len(p.requests),
            **asdict(tally),
        },
        "measures": measures,
        "agreement": measure_agreement(p, answers, qrels, cfg.binary_threshold, measures, cfg.tau_measure),
    }
    folder = Path(cfg.out_dir) / p.dataset.name / judgment_hash(cfg, p, identity, prompt)
    write_outputs(folder, report, augmented, judgment_rows(p, answers, qrels, mapping))
    return folder, report


def write_outputs(folder: Path, report: dict, augmented: Qrels, rows: list[list[str]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    qrels_text = "".join(
        f"{qid} 0 {docid} {grade}\n" for qid, docs in augmented.items() for docid, grade in docs.items()
    )
    write_text_atomic(folder / "qrels.augmented.txt", qrels_text)
    buffer = io.StringIO()
    csv.writer(buffer, delimiter="\t", lineterminator="\n").writerows(rows)
    write_text_atomic(folder / "judgments.tsv", buffer.getvalue())
    write_text_atomic(folder / "judge.json", json.dumps(report, indent=1) + "\n")


def summary(report: dict) -> str:
    """The Markdown a user reads: measures on both qrels per run, then counts and agreement."""
    measures = report["measures"]
    names = list(next(iter(measures.values()))["original"])
    header = ["system", *(f"{m} {side}" for m in names for side in ("orig", "aug"))]
    rows = [
        [label, *(f"{values[side][m]:.4f}" for m in names for side in ("original", "augmented"))]
        for label, values in measures.items()
    ]
    c, a = report["counts"], report["agreement"]
    kappa, tau = a[a["kappa_headline"]], a["tau"]["value"]
    lines = [
        f"holes judged {c['llm_judged']}/{c['holes']}; calls {c['calls']}, cached {c['cached']}, "
        f"malformed {c['malformed']}, failed {c['failed']}, read from a grade name {c['by_name']}; "
        f"{c['prompt_tokens']:,} prompt + {c['completion_tokens']:,} completion tokens in {c['seconds']:,.1f} s",
        f"agreement on {a['pairs']} held-out pairs ({a['held_out_relevant']} relevant, {a['held_out_nonrelevant']} "
        f"{a['nonrelevant_kind']} non-relevant): {a['kappa_headline']} = {_fmt(kappa)}; "
        f"Kendall tau ({a['tau']['measure']}, {a['tau']['systems']} systems) = {_fmt(tau)}",
    ]
    return to_markdown(header, rows) + "\n".join(lines) + "\n"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness.judge", description=__doc__.split("\n")[0])
    parser.add_argument("args", nargs="+", help="run folders, then conf/judge.yaml overrides (key=value)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv).args
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request would bury the progress bar
    overrides = [a for a in args if "=" in a]
    run_dirs = [Path(a) for a in args if "=" not in a]
    try:
        cfg = compose_config(overrides)
        if cfg.estimate_only:
            spent = estimate(cfg, run_dirs)
            print("LLM cost estimate (no judgment asked): " + spent.describe())
            print("".join(f"  {note}\n" for note in spent.notes), end="")
            return 0
        with resumable("answers so far are cached"):
            folder, report = judge(cfg, run_dirs)
    except (RankbenchError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(summary(report), end="")
    print(f"results: {folder}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
