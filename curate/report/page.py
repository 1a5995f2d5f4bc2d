"""The HTML shell of the report: one self-contained page (inline CSS, inline SVG, no script, no URL)
and small helpers to write escaped tables and key-value lists."""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape
from typing import Any

CSS = """
:root { --ink: #1d2330; --muted: #5b6475; --line: #d9dde5; --soft: #f4f6f9; --kept: #0072B2; --dropped: #D55E00; }
* { box-sizing: border-box; }
body { font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--ink);
       margin: 0; background: #fff; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 64px; }
header { border-bottom: 2px solid var(--ink); margin-bottom: 18px; padding-bottom: 8px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 34px 0 10px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 16px; margin: 22px 0 8px; }
h4 { font-size: 14px; margin: 14px 0 6px; color: var(--muted); }
.sub { color: var(--muted); font-size: 13px; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 12px 0; }
.card { background: var(--soft); border: 1px solid var(--line); border-radius: 8px; padding: 8px 14px; min-width: 130px; }
.card .k { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .v { font-size: 18px; font-weight: 600; word-break: break-all; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: var(--soft); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
.row-flex { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
.panel { flex: 1 1 520px; min-width: 0; }
.examples { display: grid; grid-template-columns: 1fr 1fr; gap: 14px; }
.example { border: 1px solid var(--line); border-left: 4px solid var(--kept); border-radius: 4px; padding: 6px 9px;
           margin: 0 0 8px; background: #fff; }
.example.dropped { border-left-color: var(--dropped); }
.example .meta { color: var(--muted); font-size: 12px; margin-bottom: 3px; }
.example pre { white-space: pre-wrap; word-break: break-word; margin: 2px 0; font-size: 12px; max-height: 9.5em;
               overflow: auto; background: var(--soft); padding: 4px 6px; border-radius: 3px; }
.tag { display: inline-block; padding: 0 6px; border-radius: 9px; font-size: 12px; background: var(--soft);
       border: 1px solid var(--line); margin-right: 4px; }
.tag.kept { color: #fff; background: var(--kept); border-color: var(--kept); }
.tag.dropped { color: #fff; background: var(--dropped); border-color: var(--dropped); }
.note { background: #fff8e6; border: 1px solid #f0d890; padding: 6px 10px; border-radius: 4px; font-size: 13px; }
.tokens { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; line-height: 1.9;
          white-space: pre-wrap; word-break: break-word; border: 1px solid var(--line); padding: 8px; border-radius: 4px; }
.tokens .k { background: #d7ebf8; border-radius: 2px; }
.tokens .m { background: #f9d9c6; color: #7a3a12; text-decoration: line-through; border-radius: 2px; }
svg.chart text, svg.lineage text { font-size: 11px; fill: var(--ink); }
svg.chart .axis { stroke: #8a93a3; stroke-width: 1; }
svg.chart .grid { stroke: #eceff3; stroke-width: 1; }
svg.chart .label { fill: var(--muted); font-size: 12px; }
svg.chart .cut { stroke: #111; stroke-width: 1.5; stroke-dasharray: 5 3; }
svg.chart .cut-label { font-weight: 600; }
svg.lineage .edge { stroke: #667; stroke-width: 1.3; }
svg.lineage .node rect { stroke: #667; stroke-width: 1; }
svg.lineage .node.source rect { fill: #f1f1f1; }
svg.lineage .node.version rect { fill: #d7ebf8; }
svg.lineage .node.step rect { fill: #fff3df; }
svg.lineage .node-label { font-weight: 600; }
svg.lineage .node-detail { fill: var(--muted); }
.scroll { overflow-x: auto; }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; }
"""


def esc(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, (dict, list)):
        return escape(json.dumps(value, ensure_ascii=False, default=str))
    return escape(str(value))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[int] = ()) -> str:
    """An escaped table; `numeric` are the column indices to right-align."""
    if not rows:
        return ""
    head = "".join(f'<th class="num">{escape(h)}</th>' if i in numeric else f"<th>{escape(h)}</th>"
                   for i, h in enumerate(headers))
    body = []
    for row in rows:
        cells = "".join(f'<td class="num">{esc(v)}</td>' if i in numeric else f"<td>{esc(v)}</td>"
                        for i, v in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def key_values(rows: Sequence[Sequence[Any]]) -> str:
    """A two-column table without a header: names in bold."""
    if not rows:
        return ""
    body = "".join(f"<tr><th>{escape(str(k))}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    return f'<div class="scroll"><table class="kv"><tbody>{body}</tbody></table></div>'


def cards(items: dict[str, Any]) -> str:
    return '<div class="cards">' + "".join(
        f'<div class="card"><div class="k">{escape(k)}</div><div class="v">{esc(v)}</div></div>'
        for k, v in items.items()) + "</div>"


def note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'


def page(title: str, subtitle: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{CSS}</style></head>\n<body><main>"
            f"<header><h1>{escape(title)}</h1><div class=\"sub\">{escape(subtitle)}</div></header>\n{body}\n"
            f"<footer>Written by curate report. The numbers are also in the JSON file beside this page.</footer>"
            f"</main></body></html>\n")
