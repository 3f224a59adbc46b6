"""Jupyter display: HTML tables for previews and reports."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from .runtime._report import RunReport


def _cells(event: Any) -> dict[str, Any]:
    if isinstance(event, msgspec.Struct):
        return {f: getattr(event, f) for f in event.__struct_fields__}
    if isinstance(event, dict):
        return {str(k): v for k, v in event.items()}
    return {"value": event}


def table_html(rows: list[dict[str, Any]], caption: str = "") -> str:
    """A plain HTML table with one column per key seen in ``rows``."""
    cols: list[str] = []
    for r in rows:
        cols.extend(k for k in r if k not in cols)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in cols) + "</tr>" for r in rows)
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table class='flowpump'>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class Preview(list[Any]):
    """A list of events that displays as a table in a notebook."""

    def __init__(self, events: list[Any], label: str) -> None:
        super().__init__(events)
        self.label = label

    def _repr_html_(self) -> str:
        return table_html([_cells(e) for e in self], f"{self.label}: first {len(self)} events")


def report_html(report: RunReport) -> str:
    """The report as HTML: totals, stages, and sample dead letters."""
    stages = [
        {
            "group": s.group,
            "stage": s.label,
            "in": s.events_in,
            "out": s.events_out,
            "filtered": s.filtered,
            "dead": s.dead_lettered,
            "seconds": f"{s.seconds:.4f}",
        }
        for s in report.stages
    ]
    parts = [table_html(stages, str(report).splitlines()[-1])]
    if report.dead_letter_samples:
        dead = [
            {"position": d.position, "stage": d.stage, "error": d.error, "event": d.event if d.raw is None else d.raw}
            for d in report.dead_letter_samples
        ]
        parts.append(table_html(dead, "dead letters (first ones)"))
    return "".join(parts)
