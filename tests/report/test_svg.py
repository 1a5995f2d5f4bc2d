"""The SVG charts: tick values, bar geometry and escaping, checked by hand."""

from __future__ import annotations

import re

from curate.report import svg


def test_nice_ticks():
    assert svg.nice_ticks(0, 10, 5) == [0, 2, 4, 6, 8, 10]
    assert svg.nice_ticks(0.95, 1.0, 5) == [0.95, 0.96, 0.97, 0.98, 0.99, 1.0]
    assert svg.nice_ticks(1, 4, 6) == [1, 1.5, 2, 2.5, 3, 3.5, 4]
    assert svg.nice_ticks(3, 3) == [3]


def test_histogram_bars_have_the_counts_heights():
    chart = svg.histogram([0, 1, 2], {"kept": [2, 0], "dropped": [1, 4]}, title="t <x>", x_label="score",
                          cuts=[(1.0, "cut")], frame=svg.Frame(width=200, height=124, left=0, right=0, top=12,
                                                                bottom=12))
    heights = [float(h) for h in re.findall(r'<rect x="[^"]+" y="[^"]+" width="[^"]+" height="([^"]+)"', chart)]
    assert heights[:3] == [50.0, 25.0, 100.0]  # 100 px for the tallest stack (4): 2 -> 50, 1 -> 25, 4 -> 100
    assert 'class="cut"' in chart and "cut 1" in chart and "t &lt;x&gt;" in chart and "<x>" not in chart


def test_line_ticks_stay_whole_for_whole_x():
    chart = svg.lines([1, 2, 3, 4], {"reward": [0.1, None, 0.3, 0.4]}, title="r", x_label="round", y_label="r")
    labels = re.findall(r'text-anchor="middle">([^<]+)</text>', chart)
    assert "2.5" not in labels and "2" in labels
    assert chart.count("<polyline") == 1  # the None breaks the line: one segment of two points remains
