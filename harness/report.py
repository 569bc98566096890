"""A self-contained HTML leaderboard report: tables, effectiveness/latency plot, per-query deltas.

Everything is inline (CSS, PNG plots as base64 data URIs) so the file can be mailed, archived
with the runs, or opened offline. Plots are drawn with matplotlib's Agg canvas directly, not
pyplot, so no display or global figure state is involved.
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from rankbench.harness.cache import write_text_atomic
from rankbench.harness.htmlpage import document, table
from rankbench.harness.significance import ALPHA, Comparison

PLAIN = FuncFormatter(lambda value, _: f"{value:g}")
TIE = 1e-9  # per-query values are saved with 6 decimals: smaller deltas are ties


@dataclass
class Point:
    """One run on the effectiveness/latency plot; None where the leaderboard lacks the value."""

    dataset: str
    label: str
    latency_ms: float | None
    value: float | None


@dataclass
class Pair:
    """One system compared with one baseline on one measure."""

    dataset: str
    label: str
    baseline: str
    measure: str
    comparison: Comparison


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _img(data: str, alt: str) -> str:
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def scatter(points: list[Point], measure: str) -> str:
    """Effectiveness against per-query latency (log x), one labelled point per run."""
    fig = Figure(figsize=(8, 5), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    for p in points:
        ax.scatter(p.latency_ms, p.value, color="tab:blue")
        ax.annotate(p.label, (p.latency_ms, p.value), textcoords="offset points", xytext=(6, 4), fontsize=9)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(PLAIN)  # 30 rather than 3×10^1
    ax.xaxis.set_minor_formatter(PLAIN)
    ax.margins(x=0.15, y=0.1)  # room for the labels of the outermost points
    ax.set_xlabel("latency per query, ms (retrieve + rerank)")
    ax.set_ylabel(measure)
    ax.grid(True, which="both", alpha=0.3)
    return _png(fig)


def delta_bars(pair: Pair, measure: str) -> str:
    """Per-query deltas sorted high to low: shows whether a mean gain is broad or a few big wins."""
    deltas = np.sort(pair.comparison.deltas)[::-1]
    fig = Figure(figsize=(8, 2.6), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    colors = np.where(deltas > TIE, "tab:green", np.where(deltas < -TIE, "tab:red", "tab:gray"))
    ax.bar(np.arange(len(deltas)), deltas, width=1.0, color=colors)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xlim(-0.5, max(len(deltas), 1) - 0.5)
    ax.set_xlabel(f"{len(deltas)} paired queries, sorted by delta")
    ax.set_ylabel(f"Δ {measure}")
    ax.set_title(f"{pair.label} − {pair.baseline}", fontsize=10)
    return _png(fig)


CORRECTION_NAMES = {"holm": "Holm", "bonferroni": "Bonferroni", "bh": "Benjamini–Hochberg"}


def _per_query(pair: Pair) -> str:
    c = pair.comparison
    wins = int(np.count_nonzero(c.deltas > TIE))
    losses = int(np.count_nonzero(c.deltas < -TIE))
    ties = c.paired - wins - losses
    verdict = "significant" if c.significant else "not significant"
    p = "n/a" if math.isnan(c.p_adjusted) else f"{c.p_adjusted:.4g}"
    which = f"{CORRECTION_NAMES[c.correction]}-adjusted p" if c.correction in CORRECTION_NAMES else "randomization p"
    interval = "" if math.isnan(c.ci_low) else f" (95% CI {c.ci_low:+.4f} to {c.ci_high:+.4f})"
    summary = (
        f"{c.paired} paired queries: {wins} wins, {ties} ties, {losses} losses; "
        f"mean Δ {c.mean_delta:+.4f}{interval}; {which} {p} ({verdict} at {ALPHA})"
    )
    heading = f"<h3>{html.escape(pair.label)} vs {html.escape(pair.baseline)}: {html.escape(pair.measure)}</h3>"
    image = _img(delta_bars(pair, pair.measure), f"per-query {pair.measure} deltas") if c.paired else ""
    return f"{heading}<p>{html.escape(summary)}</p><figure>{image}</figure>"


def _method(pairs: list[Pair], intervals: bool) -> str:
    """How the numbers were made, in a sentence or two above the tables."""
    text = ""
    if pairs:
        correction = pairs[0].comparison.correction
        corrected = (
            f"{CORRECTION_NAMES[correction]} over the comparisons on each dataset and measure, applied to the "
            "randomization p"
            if correction in CORRECTION_NAMES
            else "no multiple-testing correction"
        )
        text += (
            "Per-query significance, paired on the queries both runs judged: two-sided paired t-test and "
            f"sign-flip randomization test; {corrected}; * marks adjusted p &lt; {ALPHA}. "
        )
    if intervals:
        text += "Intervals are 95% BCa bootstrap intervals of the mean (scipy.stats.bootstrap)."
    return f"<p class='settings'>{text}</p>" if text else ""


Table = tuple[list[str], list[list[str]]]


def page(
    runs: Table,
    comparisons: Table | None,
    sort: str,
    points: list[Point],
    pairs: list[Pair],
    settings: dict[str, str],
    intervals: bool = False,
    sections: list[str] | None = None,
) -> str:
    """The whole document: the runs table, the comparisons table, ``sections`` (``section``'s HTML: the
    aggregate, the holes), and per dataset the plot of ``points`` by ``sort`` and each pair's per-query
    deltas; ``intervals``: the tables hold bootstrap intervals."""
    parts = [f"<h1>rankbench leaderboard</h1><p class='settings'>generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"]
    parts += [f"; {html.escape(k)}: {html.escape(v)}" for k, v in settings.items()]
    parts.append("</p>")
    parts.append(_method(pairs, intervals))
    parts.append(table(*runs))
    if comparisons is not None:
        parts += ["<h2>Comparisons</h2>", table(*comparisons)]
    parts += sections or []
    for dataset in dict.fromkeys(p.dataset for p in points):
        parts.append(f"<h2>{html.escape(dataset)}</h2>")
        plotted = [p for p in points if p.dataset == dataset and p.value is not None and (p.latency_ms or 0) > 0]
        if plotted:
            parts.append(f"<figure>{_img(scatter(plotted, sort), f'{sort} against latency')}</figure>")
        if left := [p.label for p in points if p.dataset == dataset and p not in plotted]:
            parts.append(f"<p>Not plotted (no {html.escape(sort)} or no latency): {html.escape(', '.join(left))}</p>")
        parts += [_per_query(pair) for pair in pairs if pair.dataset == dataset]
    return document("rankbench leaderboard", parts)


def section(title: str, header: list[str], body: list[list[str]], notes: list[str]) -> str:
    """A titled table with its notes beneath (what was averaged, what a column means)."""
    lines = "".join(f"<p class='settings'>{html.escape(note)}</p>" for note in notes)
    return f"<h2>{html.escape(title)}</h2>{table(header, body)}{lines}"


def write(path: Path, document: str) -> None:
    """Atomically, so a browser or a sync never sees half a page."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, document)
