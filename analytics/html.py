"""`lifecycle report --html`: one self-contained page, charts as inline SVG, no external asset.

Four charts (funnel, time in stage, promise outcomes, NPS trend), then every table of the
terminal report. Everything is escaped; nothing is fetched when the page opens.
"""

from __future__ import annotations

from html import escape
from typing import Any

from analytics.report import SECTIONS, cell

WIDTH = 760
ROOM = 200  # right of the longest bar, for its label
BAR = 22
COLORS = {"bar": "#4c78a8", "p90": "#9ecae9", "kept": "#54a24b", "broken": "#e45756", "line": "#4c78a8"}


def render(report: dict[str, Any], title: str = "Lifecycle report") -> str:
    """The report as one HTML page."""
    summary = report["summary"]
    charts = [
        _chart("funnel", "Funnel: customers who entered each stage",
               _bars([(row["stage"], row["customers"]) for row in report["funnel"]])),
        _chart("time-in-stage", "Time in stage: p50 and p90 days",
               _paired_bars([(row["stage"], row["p50_days"], row["p90_days"]) for row in report["time_in_stage"]])),
        _chart("promise-outcomes", "Promise outcomes by kind: kept and broken",
               _stacked([(row["about"], row["kept"], row["broken"]) for row in report["promises_by_kind"]])),
        _chart("nps-trend", "NPS by month of the answer",
               _line([(row["month"], row["nps"]) for row in report["nps_by_month"]])),
    ]
    tables = [_table(name, report[key]) for key, name in SECTIONS]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 60rem; }}
table {{ border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.9rem; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 0.2rem 0.6rem; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
svg text {{ font-size: 12px; font-family: system-ui, sans-serif; }}
figure {{ margin: 1rem 0 2rem; }}
</style></head>
<body>
<h1>{escape(title)}</h1>
<p>{summary['records']:,} records, {summary['customers']:,} customers ({escape(str(summary['first'] or '—'))} ..
{escape(str(summary['last'] or '—'))}). Definitions: docs/analytics.md.</p>
{''.join(charts)}
{''.join(tables)}
</body></html>
"""


def _chart(ident: str, caption: str, svg: str) -> str:
    return f'<figure id="chart-{ident}"><figcaption><h2>{escape(caption)}</h2></figcaption>{svg}</figure>\n'


def _svg(height: int, body: str, label: str) -> str:
    return (f'<svg role="img" aria-label="{escape(label)}" '
            f'width="{WIDTH}" height="{max(height, 30)}" viewBox="0 0 {WIDTH} {max(height, 30)}">{body}</svg>')


def _empty() -> str:
    return _svg(30, '<text x="0" y="20">no data</text>', "no data")


def _bars(items: list[tuple[str, float | None]]) -> str:
    if not items:
        return _empty()
    top = max((value or 0) for _, value in items) or 1
    parts = []
    for index, (name, value) in enumerate(items):
        y = index * (BAR + 6)
        width = (WIDTH - 180 - ROOM) * (value or 0) / top
        parts.append(f'<text x="0" y="{y + 15}">{escape(str(name))}</text>'
                     f'<rect class="bar" x="180" y="{y}" width="{width:.1f}" height="{BAR}" fill="{COLORS["bar"]}"/>'
                     f'<text x="{184 + width:.1f}" y="{y + 15}">{escape(cell(value))}</text>')
    return _svg(len(items) * (BAR + 6), "".join(parts), "bar chart")


def _paired_bars(items: list[tuple[str, float | None, float | None]]) -> str:
    if not items:
        return _empty()
    top = max(max(p50 or 0, p90 or 0) for _, p50, p90 in items) or 1
    scale = (WIDTH - 180 - ROOM) / top
    parts = []
    for index, (name, p50, p90) in enumerate(items):
        y = index * (BAR + 10)
        parts.append(
            f'<text x="0" y="{y + 15}">{escape(str(name))}</text>'
            f'<rect class="bar" x="180" y="{y}" width="{(p90 or 0) * scale:.1f}" height="{BAR}" fill="{COLORS["p90"]}"/>'
            f'<rect class="bar" x="180" y="{y + 5}" width="{(p50 or 0) * scale:.1f}" height="{BAR - 10}" '
            f'fill="{COLORS["bar"]}"/>'
            f'<text x="{186 + (p90 or 0) * scale:.1f}" y="{y + 15}">p50 {escape(cell(p50))} · p90 {escape(cell(p90))}</text>')
    return _svg(len(items) * (BAR + 10), "".join(parts), "time in stage")


def _stacked(items: list[tuple[str, int, int]]) -> str:
    if not items:
        return _empty()
    top = max(kept + broken for _, kept, broken in items) or 1
    scale = (WIDTH - 180 - ROOM) / top
    parts = []
    for index, (name, kept, broken) in enumerate(items):
        y = index * (BAR + 6)
        parts.append(
            f'<text x="0" y="{y + 15}">{escape(str(name))}</text>'
            f'<rect class="bar" x="180" y="{y}" width="{kept * scale:.1f}" height="{BAR}" fill="{COLORS["kept"]}"/>'
            f'<rect class="bar" x="{180 + kept * scale:.1f}" y="{y}" width="{broken * scale:.1f}" height="{BAR}" '
            f'fill="{COLORS["broken"]}"/>'
            f'<text x="{186 + (kept + broken) * scale:.1f}" y="{y + 15}">kept {kept} · broken {broken}</text>')
    return _svg(len(items) * (BAR + 6), "".join(parts), "promise outcomes")


def _line(points: list[tuple[str, float | None]]) -> str:
    points = [(label, value) for label, value in points if value is not None]
    if not points:
        return _empty()
    height, left, bottom = 220, 40, 190
    step = (WIDTH - left - 20) / max(len(points) - 1, 1)

    def y(value: float) -> float:  # NPS runs from -100 to 100
        return bottom - (value + 100) / 200 * (bottom - 10)

    path = " ".join(f"{'M' if i == 0 else 'L'}{left + i * step:.1f},{y(v):.1f}" for i, (_, v) in enumerate(points))
    parts = [f'<line x1="{left}" y1="{y(0):.1f}" x2="{WIDTH - 10}" y2="{y(0):.1f}" stroke="#bbb"/>',
             f'<text x="0" y="{y(100) + 4:.1f}">100</text><text x="8" y="{y(0) + 4:.1f}">0</text>'
             f'<text x="0" y="{y(-100) + 4:.1f}">-100</text>',
             f'<path class="line" d="{path}" fill="none" stroke="{COLORS["line"]}" stroke-width="2"/>']
    every = max(1, len(points) // 8)
    for i, (label, value) in enumerate(points):
        parts.append(f'<circle cx="{left + i * step:.1f}" cy="{y(value):.1f}" r="3" fill="{COLORS["line"]}">'
                     f'<title>{escape(label)}: {escape(cell(value))}</title></circle>')
        if i % every == 0:
            x = min(max(left + i * step - 20, 0), WIDTH - 60)
            parts.append(f'<text x="{x:.1f}" y="{height - 8}">{escape(label)}</text>')
    return _svg(height, "".join(parts), "NPS trend")


def _table(title: str, rows: list[dict[str, Any]] | dict[str, Any]) -> str:
    if isinstance(rows, dict):
        body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(cell(v))}</td></tr>" for k, v in rows.items())
        return f"<h2>{escape(title)}</h2><table>{body}</table>\n"
    if not rows:
        return f"<h2>{escape(title)}</h2><p>No records.</p>\n"
    head = "".join(f"<th>{escape(column)}</th>" for column in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{escape(cell(value))}</td>" for value in row.values()) + "</tr>"
                   for row in rows)
    return f"<h2>{escape(title)}</h2><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>\n"
