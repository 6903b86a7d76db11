"""Bar charts drawn on the server as inline SVG: no script, no inline style (CSP), a data table
beside each chart for screen readers and for anyone who prefers numbers."""

from __future__ import annotations

from dataclasses import dataclass

from authgate.core.flows.ui_admin import Series
from authgate.web.strings import translate

WIDTH, HEIGHT = 560, 200
LEFT, BOTTOM, TOP = 36, 28, 12


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    value: int
    label: str  # the day, e.g. 2026-03-01


@dataclass
class Chart:
    key: str
    title: str
    total: int
    bars: list[Bar]
    ticks: list[tuple[float, int]]  # (y, value) of the horizontal grid lines
    x_labels: list[tuple[float, str]]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    bottom_y: int = HEIGHT - BOTTOM


def _nice_max(value: int) -> int:
    if value <= 4:
        return 4
    step = 1
    while step * 10 < value:
        step *= 10
    for mult in (1, 2, 2.5, 5, 10):
        top = int(step * mult)
        if top >= value and top % 4 == 0:
            return top
    return ((value + 3) // 4) * 4


def bar_chart(series: Series, locale: str) -> Chart:
    plot_w = WIDTH - LEFT - 8
    plot_h = HEIGHT - BOTTOM - TOP
    top = _nice_max(max(series.counts, default=0))
    slot = plot_w / max(1, len(series.counts))
    bars = []
    for i, (day, count) in enumerate(zip(series.days, series.counts, strict=True)):
        h = plot_h * count / top
        bars.append(Bar(
            x=round(LEFT + i * slot + slot * 0.15, 1), y=round(TOP + plot_h - h, 1),
            width=round(slot * 0.7, 1), height=round(h, 1), value=count, label=day.isoformat(),
        ))
    ticks = [(round(TOP + plot_h - plot_h * k / 4, 1), top * k // 4) for k in range(5)]
    every = max(1, len(series.days) // 7)
    x_labels = [
        (round(LEFT + i * slot + slot / 2, 1), day.strftime("%m-%d"))
        for i, day in enumerate(series.days) if i % every == 0
    ]
    return Chart(
        key=series.name, title=translate(locale, f"chart_{series.name}"), total=series.total,
        bars=bars, ticks=ticks, x_labels=x_labels,
    )
