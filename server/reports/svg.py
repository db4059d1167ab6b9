"""Bar charts as server-rendered SVG: no script library, fine on a slow connection, scales to a
phone through its viewBox. Accessible: role="img" with a <title> and a <desc>, and a <title> on
every bar (the value a screen reader or a long press shows). Colours are presentation
attributes, not ``style``: the console's CSP forbids inline styles."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

WIDTH = 400
HEIGHT = 200
LEFT = 36
RIGHT = 6
TOP = 10
BOTTOM = 28
FONT = 13


def _nice_max(value: int) -> int:
    if value <= 5:
        return 5
    for step in (10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000):
        if value <= step * 5:
            return -(-value // step) * step
    return value


def bar_chart(
    chart_id: str,
    title: str,
    desc: str,
    labels: Sequence[str],
    values: Sequence[int],
    bar_titles: Sequence[str] | None = None,
    label_every: int = 1,
) -> Markup:
    """``labels`` under the bars (every ``label_every``-th shown); ``bar_titles`` per bar."""
    n = max(1, len(values))
    top = _nice_max(max(values, default=0))
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    slot = plot_w / n
    bar_w = max(1.0, slot * 0.72)
    cid = escape(chart_id)
    parts = [
        f'<svg class="chart" id="{cid}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{cid}-t {cid}-d" xmlns="http://www.w3.org/2000/svg" '
        f'font-family="system-ui, DejaVu Sans, sans-serif" font-size="{FONT}">',
        f'<title id="{cid}-t">{escape(title)}</title>',
        f'<desc id="{cid}-d">{escape(desc)}</desc>',
    ]
    for frac in (0, 0.5, 1):
        y = TOP + plot_h * (1 - frac)
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#d8dee4"/>'
            f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" fill="#5f6b76">{round(top * frac)}</text>'
        )
    for i, v in enumerate(values):
        h = plot_h * v / top if top else 0
        x = LEFT + i * slot + (slot - bar_w) / 2
        tip = bar_titles[i] if bar_titles is not None else f"{labels[i]}: {v}"
        parts.append(
            f'<rect x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
            f'fill="#0a5ea8"><title>{escape(tip)}</title></rect>'
        )
        if i % max(1, label_every) == 0 and i < len(labels):
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" '
                f'fill="#1b1f23">{escape(labels[i])}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def day_chart(
    chart_id: str, title: str, desc: str, series: Sequence[tuple[int, int]], unit: str
) -> Markup:
    """A month's values per day of month: ``series`` = [(day number, value)]."""
    labels = [str(d) for d, _v in series]
    values = [v for _d, v in series]
    return bar_chart(
        chart_id,
        title,
        desc,
        labels,
        values,
        bar_titles=[f"{d}: {v} {unit}" for d, v in series],
        label_every=5 if len(series) > 12 else 1,
    )
