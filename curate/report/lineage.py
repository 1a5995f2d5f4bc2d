"""The lineage graph (`curate.catalog.provenance`) drawn as SVG: layers by the longest path from a
source, sources on top and the version at the bottom."""

from __future__ import annotations

from html import escape
from typing import Any


def _layers(graph: dict[str, Any]) -> dict[str, int]:
    """Longest distance from a root for every node (the graph is acyclic: versions are immutable)."""
    parents: dict[str, list[str]] = {n["id"]: [] for n in graph["nodes"]}
    for a, b in graph["edges"]:
        parents[b].append(a)
    depth: dict[str, int] = {}

    def visit(node: str, trail: frozenset[str] = frozenset()) -> int:
        if node not in depth:
            ups = [p for p in parents[node] if p not in trail]
            depth[node] = 1 + max((visit(p, trail | {node}) for p in ups), default=-1)
        return depth[node]

    for node in parents:
        visit(node)
    return depth


def draw(graph: dict[str, Any], box_width: int = 230, box_height: int = 40, gap_x: int = 24, gap_y: int = 26) -> str:
    """The graph as SVG, top (sources) to bottom (the version)."""
    if not graph["nodes"]:
        return ""
    depth = _layers(graph)
    rows: dict[int, list[dict[str, Any]]] = {}
    for node in graph["nodes"]:
        rows.setdefault(depth[node["id"]], []).append(node)
    widest = max(len(r) for r in rows.values())
    width = widest * (box_width + gap_x) + gap_x
    height = len(rows) * (box_height + gap_y) + gap_y
    where: dict[str, tuple[float, float]] = {}
    for level, nodes in sorted(rows.items()):
        offset = (width - len(nodes) * (box_width + gap_x) + gap_x) / 2
        for i, node in enumerate(nodes):
            where[node["id"]] = (offset + i * (box_width + gap_x), gap_y + level * (box_height + gap_y))
    out = [f'<svg class="lineage" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="lineage">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#667"/></marker></defs>']
    for a, b in graph["edges"]:
        (ax, ay), (bx, by) = where[a], where[b]
        out.append(f'<line x1="{ax + box_width / 2:.1f}" y1="{ay + box_height:.1f}" x2="{bx + box_width / 2:.1f}" '
                   f'y2="{by - 2:.1f}" class="edge" marker-end="url(#arrow)"/>')
    for node in graph["nodes"]:
        x, y = where[node["id"]]
        label, detail = node["label"], node["detail"]
        out.append(f'<g class="node {node["kind"]}"><rect x="{x:.1f}" y="{y:.1f}" width="{box_width}" '
                   f'height="{box_height}" rx="6"/>')
        shown = label if len(label) <= 34 else "…" + label[-33:]
        out.append(f'<text x="{x + box_width / 2:.1f}" y="{y + (16 if detail else 24):.1f}" '
                   f'text-anchor="middle" class="node-label">{escape(shown)}</text>')
        if detail:
            out.append(f'<text x="{x + box_width / 2:.1f}" y="{y + 32:.1f}" text-anchor="middle" '
                       f'class="node-detail">{escape(detail)}</text>')
        out.append(f"<title>{escape(label)}</title></g>")
    out.append("</svg>")
    return "\n".join(out)
