"""Small inline SVG charts for the HTML report: histograms, bars and lines, no plotting library.

The report must be one self-contained file that opens anywhere, so the charts are written as
SVG text: a few dozen elements each, crisp at any zoom, and readable in the file itself.
Every function takes plain numbers and returns an `<svg>` string; text is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

# Colour-blind-safe palette (Okabe-Ito): kept, dropped, then further series.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
KEPT, DROPPED = PALETTE[0], PALETTE[1]


@dataclass(frozen=True)
class Frame:
    """Plot area inside an SVG of `width` x `height` pixels."""

    width: int = 560
    height: int = 220
    left: int = 56
    right: int = 16
    top: int = 24
    bottom: int = 44

    @property
    def inner_width(self) -> float:
        return self.width - self.left - self.right

    @property
    def inner_height(self) -> float:
        return self.height - self.top - self.bottom


def fmt(value: float) -> str:
    """A tick label: short, no trailing zeros."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    magnitude = abs(value)
    if magnitude >= 1e5 or magnitude < 1e-3:
        return f"{value:.2g}"
    if magnitude >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (Heckbert's "nice numbers")."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * (1 - 1e-9))  # 0.05/5 is 0.0100...01
    start = math.ceil(lo / step - 1e-9) * step
    ticks = []
    value = start
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


def _open(frame: Frame, title: str) -> list[str]:
    return [f'<svg class="chart" width="{frame.width}" height="{frame.height}" viewBox="0 0 {frame.width} '
            f'{frame.height}" role="img" aria-label="{escape(title)}">', f"<title>{escape(title)}</title>"]


def _axes(frame: Frame, x_ticks: list[tuple[float, str]], y_ticks: list[tuple[float, str]],
          x_label: str, y_label: str) -> list[str]:
    """Axis lines, ticks and labels; tick positions are already in pixels."""
    f = frame
    base = f.top + f.inner_height
    out = [f'<line x1="{f.left}" y1="{base}" x2="{f.left + f.inner_width}" y2="{base}" class="axis"/>',
           f'<line x1="{f.left}" y1="{f.top}" x2="{f.left}" y2="{base}" class="axis"/>']
    for px, label in x_ticks:
        out.append(f'<line x1="{px:.1f}" y1="{base}" x2="{px:.1f}" y2="{base + 4}" class="axis"/>')
        out.append(f'<text x="{px:.1f}" y="{base + 16}" text-anchor="middle">{escape(label)}</text>')
    for py, label in y_ticks:
        out.append(f'<line x1="{f.left}" y1="{py:.1f}" x2="{f.left + f.inner_width}" y2="{py:.1f}" class="grid"/>')
        out.append(f'<text x="{f.left - 6}" y="{py + 4:.1f}" text-anchor="end">{escape(label)}</text>')
    out.append(f'<text x="{f.left + f.inner_width / 2:.1f}" y="{f.height - 6}" text-anchor="middle" '
               f'class="label">{escape(x_label)}</text>')
    out.append(f'<text x="12" y="{f.top + f.inner_height / 2:.1f}" text-anchor="middle" class="label" '
               f'transform="rotate(-90 12 {f.top + f.inner_height / 2:.1f})">{escape(y_label)}</text>')
    return out


def _legend(frame: Frame, names: Sequence[str], colours: Sequence[str]) -> list[str]:
    out, x = [], frame.left + 8
    for name, colour in zip(names, colours):
        out.append(f'<rect x="{x}" y="6" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{x + 14}" y="15">{escape(name)}</text>')
        x += 24 + 7 * len(name)
    return out


def histogram(edges: Sequence[float], series: dict[str, Sequence[int]], *, title: str, x_label: str,
              y_label: str = "rows", cuts: Sequence[tuple[float, str]] = (), frame: Frame = Frame()) -> str:
    """Stacked bars over bins [edges[i], edges[i+1]); each of `cuts` (value, label) is a dashed vertical line."""
    names = list(series)
    colours = [PALETTE[i % len(PALETTE)] for i in range(len(names))]
    bins = len(edges) - 1
    totals = [sum(series[n][i] for n in names) for i in range(bins)]
    top = max(totals, default=0) or 1
    lo, hi = edges[0], edges[-1]
    span = (hi - lo) or 1.0

    def px(value: float) -> float:
        return frame.left + (value - lo) / span * frame.inner_width

    def py(count: float) -> float:
        return frame.top + frame.inner_height * (1 - count / top)

    out = _open(frame, title)
    y_ticks = [(py(t), fmt(t)) for t in nice_ticks(0, top, 4) if t == int(t)]
    out += _axes(frame, [(px(t), fmt(t)) for t in nice_ticks(lo, hi, 6) if lo <= t <= hi], y_ticks, x_label, y_label)
    for i in range(bins):
        x0, x1 = px(edges[i]), px(edges[i + 1])
        width = max(0.5, x1 - x0 - 1)
        below = 0
        for name, colour in zip(names, colours):
            count = series[name][i]
            if count:
                y = py(below + count)
                out.append(f'<rect x="{x0 + 0.5:.1f}" y="{y:.1f}" width="{width:.1f}" height="{py(below) - y:.1f}" '
                           f'fill="{colour}"><title>{escape(name)}: {count:,} in [{fmt(edges[i])}, '
                           f'{fmt(edges[i + 1])})</title></rect>')
                below += count
    for k, (cut, cut_label) in enumerate(c for c in cuts if c[0] is not None and math.isfinite(c[0])):
        x = px(min(max(cut, lo), hi))
        out.append(f'<line x1="{x:.1f}" y1="{frame.top - 4}" x2="{x:.1f}" y2="{frame.top + frame.inner_height}" '
                   f'class="cut"/>')
        anchor = "end" if x > frame.left + frame.inner_width * 0.6 else "start"
        shift = -4 if anchor == "end" else 4
        out.append(f'<text x="{x + shift:.1f}" y="{frame.top + 10 + 13 * k}" text-anchor="{anchor}" '
                   f'class="cut-label">{escape(cut_label)} {fmt(cut)}</text>')
    if len(names) > 1:
        out += _legend(frame, names, colours)
    out.append("</svg>")
    return "\n".join(out)


def bars(labels: Sequence[str], series: dict[str, Sequence[float]], *, title: str, y_label: str = "rows",
         frame: Frame = Frame(), colours: Sequence[str] | None = None) -> str:
    """Grouped vertical bars, one group per label (e.g. rows per domain before and after a step)."""
    names = list(series)
    colours = list(colours or [PALETTE[i % len(PALETTE)] for i in range(len(names))])
    top = max((v for n in names for v in series[n]), default=0) or 1
    group = frame.inner_width / max(1, len(labels))
    bar = max(2.0, (group - 6) / max(1, len(names)))

    def py(value: float) -> float:
        return frame.top + frame.inner_height * (1 - value / top)

    out = _open(frame, title)
    x_ticks = [(frame.left + group * (i + 0.5), _clip(label, max(4, int(group / 7)))) for i, label in enumerate(labels)]
    out += _axes(frame, x_ticks, [(py(t), fmt(t)) for t in nice_ticks(0, top, 4)], "", y_label)
    for i, label in enumerate(labels):
        for j, (name, colour) in enumerate(zip(names, colours)):
            value = series[name][i]
            x = frame.left + group * i + 3 + bar * j
            out.append(f'<rect x="{x:.1f}" y="{py(value):.1f}" width="{bar - 1:.1f}" '
                       f'height="{frame.top + frame.inner_height - py(value):.1f}" fill="{colour}">'
                       f'<title>{escape(label)}, {escape(name)}: {fmt(value)}</title></rect>')
    if len(names) > 1:
        out += _legend(frame, names, colours)
    out.append("</svg>")
    return "\n".join(out)


def lines(x: Sequence[float], series: dict[str, Sequence[float | None]], *, title: str, x_label: str,
          y_label: str, frame: Frame = Frame()) -> str:
    """One polyline per series over shared x values; None/NaN values break the line."""
    names = list(series)
    colours = [PALETTE[i % len(PALETTE)] for i in range(len(names))]
    values = [v for n in names for v in series[n] if v is not None and math.isfinite(v)]
    if not values or not x:
        return ""
    lo, hi = min(values), max(values)
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    x_lo, x_hi = min(x), max(x)
    x_span = (x_hi - x_lo) or 1.0

    def px(value: float) -> float:
        return frame.left + (value - x_lo) / x_span * frame.inner_width

    def py(value: float) -> float:
        return frame.top + frame.inner_height * (1 - (value - lo) / (hi - lo))

    out = _open(frame, title)
    whole = all(float(v).is_integer() for v in x)  # rounds and steps: no tick at 2.5
    x_ticks = [(px(t), fmt(t)) for t in nice_ticks(x_lo, x_hi, 6)
               if x_lo <= t <= x_hi and (not whole or float(t).is_integer())]
    out += _axes(frame, x_ticks, [(py(t), fmt(t)) for t in nice_ticks(lo, hi, 4) if lo <= t <= hi], x_label, y_label)
    for name, colour in zip(names, colours):
        segment: list[str] = []
        segments = [segment]
        for xv, yv in zip(x, series[name]):
            if yv is None or not math.isfinite(yv):
                segment = []
                segments.append(segment)
                continue
            segment.append(f"{px(xv):.1f},{py(yv):.1f}")
        for points in segments:
            if len(points) > 1:
                out.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="{colour}" stroke-width="2"/>')
            for point in points:
                cx, cy = point.split(",")
                out.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{colour}"/>')
    if len(names) > 1 or names:
        out += _legend(frame, names, colours)
    out.append("</svg>")
    return "\n".join(out)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(1, limit - 1)] + "…"
