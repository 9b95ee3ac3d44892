"""The report in a terminal (Rich tables), and two stores side by side."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

SECTIONS = [
    ("funnel", "Funnel"),
    ("time_in_stage", "Time in stage (days)"),
    ("promises_by_kind", "Promises by kind"),
    ("promises_by_role", "Promises by the role that made them"),
    ("promises_by_segment", "Promises by segment"),
    ("recovery", "After a broken promise"),
    ("nps", "NPS"),
    ("nps_by_segment", "NPS by segment"),
    ("nps_by_cohort", "NPS by cohort month"),
    ("nps_by_broken_promise", "NPS by broken promise"),
    ("referrals", "Referrals"),
    ("task_sla", "Task SLA by role"),
    ("messages", "Messages by channel and category"),
    ("consent_opt_outs", "Opt-outs by month"),
    ("consent_changes", "Consent changes by channel and category"),
    ("consent_suppressed", "Sends suppressed by reason"),
    ("consent_deferred", "Sends deferred by reason"),
    ("channel_preferences", "Channel preference"),
    ("revenue", "Revenue and lifetime value"),
    ("top_value", "Most valuable customers"),
    ("top_risk", "Customers most at risk"),
]


def table(title: str, rows: list[dict[str, Any]] | dict[str, Any]) -> Table:
    """A Rich table of rows (a dict is one row per key)."""
    if isinstance(rows, dict):
        result = Table(title=title, title_justify="left", show_header=False)
        result.add_column("", style="bold")
        result.add_column("", justify="right")
        for key, value in rows.items():
            result.add_row(key, cell(value))
        return result
    result = Table(title=title, title_justify="left")
    columns = list(rows[0]) if rows else ["(no records)"]
    for index, column in enumerate(columns):
        result.add_column(column, justify="left" if index == 0 else "right")
    for row in rows:
        result.add_row(*(cell(row.get(column)) for column in columns))
    return result


def cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1 else f"{value:,.2f}".rstrip("0").rstrip(".")
    return str(value)


def print_report(report: dict[str, Any], console: Console) -> None:
    """Every section of `Analyst.report()` as a table."""
    summary = report["summary"]
    console.print(f"[bold]{summary['records']:,} records, {summary['customers']:,} customers[/bold]"
                  f" ({summary['first'] or '—'} .. {summary['last'] or '—'})")
    for key, title in SECTIONS:
        console.print(table(title, report[key]))


def comparison(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """The figures that tell two playbook versions apart, from two reports."""
    def figures(report: dict[str, Any]) -> dict[str, Any]:
        customers = report["summary"]["customers"] or 0
        per = (lambda n: round(n / customers, 3) if customers else None)
        kept = sum(row["kept"] for row in report["promises_by_kind"])
        broken = sum(row["broken"] for row in report["promises_by_kind"])
        nps = report["nps"][0]["nps"] if report["nps"] else None
        sent = sum(row["records"] for row in report["messages"] if row["kind"] == "message")
        result = {
            "customers": customers,
            "records": report["summary"]["records"],
            "promises kept": kept, "promises broken": broken,
            "promise kept rate": round(kept / (kept + broken), 4) if kept + broken else None,
            "recovery in time rate": report["recovery"]["recovery_in_time_rate"],
            "NPS": nps,
            "survey answers": report["nps"][0]["answers"] if report["nps"] else 0,
            "messages per customer": per(sent),
            "referral conversion": report["referrals"]["conversion"],
            "revenue per customer": report["revenue"]["revenue_per_customer"],
            "CLV estimate": report["revenue"]["clv"],
        }
        for row in report["task_sla"]:
            result[f"tasks per customer: {row['role']}"] = per(row["created"])
            result[f"overdue: {row['role']}"] = row["overdue"]
        return result

    left, right = figures(a), figures(b)
    rows = []
    for name in list(left) + [name for name in right if name not in left]:
        x, y = left.get(name), right.get(name)
        delta = round(y - x, 4) if isinstance(x, (int, float)) and isinstance(y, (int, float)) else None
        rows.append({"figure": name, "A": x, "B": y, "B - A": delta})
    return rows
