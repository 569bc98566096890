"""Self-contained HTML pages: one style and one table, shared by the leaderboard report and the
reproduction matrix (and free of matplotlib, so the core install can write them)."""

from __future__ import annotations

import html

STYLE = """
body { font-family: sans-serif; margin: 16px; color: #222; }
.wide { overflow-x: auto; }
table { border-collapse: collapse; font-size: 12px; }
th, td { border: 1px solid #ccc; padding: 2px 5px; text-align: right; white-space: nowrap; }
th { background: #f0f0f0; }
td:nth-child(-n+3), th:nth-child(-n+3) { text-align: left; }
tr.baseline td { background: #eef4ff; }
.settings { color: #555; font-size: 13px; }
figure { margin: 12px 0; }
"""


def table(header: list[str], body: list[list[str]], marked: str | None = None) -> str:
    """Rows whose ``sig`` cell says ``marked`` get the baseline style."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    sig = header.index("sig") if "sig" in header else None
    rows = []
    for cells in body:
        css = ' class="baseline"' if marked and sig is not None and cells[sig] == marked else ""
        rows.append(f"<tr{css}>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    return f"<div class='wide'><table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"


def document(title: str, parts: list[str]) -> str:
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>\n"
    )
