"""Jupyter display: pictures of pipelines, tables of events and reports, live views of runs.

Nothing here needs to be called by hand in a notebook: a ``Flow``, ``Processor``, ``Sink`` or
``Pipeline`` left as the last expression of a cell shows its picture, ``flow.preview(n)`` and a
``RunReport`` show as tables, and a run shows its live counts. The functions are public for
other front ends (the ``flowpump graph`` command writes ``to_svg(pipeline)``).

>>> import flowpump as fp
>>> from flowpump.notebook import table_html
>>> table_html([{"user": "ann", "score": 1.5}]).startswith("<table")
True
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from ._picture import Picture, Renderer, diagram, dot_available, to_svg

if TYPE_CHECKING:
    from .runtime._report import RunReport

__all__ = [
    "Picture",
    "Preview",
    "diagram",
    "dot_available",
    "live_html",
    "picture",
    "report_html",
    "table_html",
    "to_svg",
]

#: Longest text shown in a table cell; the whole value is in the cell's tooltip.
MAX_CELL = 120

_TABLE = "border-collapse:collapse;font-size:12px;margin:4px 0"
_CAPTION = "caption-side:top;text-align:left;font-weight:600;padding:2px 0 4px 0"
_TH = "padding:3px 8px;border-bottom:1px solid #999;text-align:{align}"
_TD = "padding:2px 8px;border-bottom:1px solid #e4e4e4;text-align:{align};vertical-align:top"


def picture(obj: object, *, fuse: bool | None = None, renderer: Renderer = "auto") -> Picture:
    """The picture of a Flow, Processor, Sink or Pipeline; ``fuse`` picks the plan to show.

    >>> import flowpump as fp
    >>> p = fp.from_iterable([1]) >> fp.map(str) >> fp.collect()
    >>> "map(str)" in str(picture(p, fuse=False, renderer="builtin"))
    True
    """
    d = diagram(obj, fuse=fuse)
    return Picture(to_svg(d, renderer=renderer), d.title)


# -- tables ------------------------------------------------------------------------------------


def _cells(event: Any) -> dict[str, Any]:
    """One table row: the fields of a Struct, dataclass or named tuple, a dict's items, or the value."""
    if isinstance(event, msgspec.Struct):
        return {f: getattr(event, f) for f in event.__struct_fields__}
    if dataclasses.is_dataclass(event) and not isinstance(event, type):
        return {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
    if isinstance(event, tuple) and hasattr(event, "_fields"):
        return dict(zip(event._fields, event, strict=True))
    if isinstance(event, Mapping):
        return {str(k): v for k, v in event.items()}
    return {"value": event}


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return repr(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def table_html(rows: Iterable[Mapping[str, Any]], caption: str = "", *, index: bool = False) -> str:
    """A plain HTML table with one column per key seen in ``rows`` (numbers right-aligned).

    Values are escaped and cut at ``MAX_CELL`` characters (the whole text is the tooltip).
    """
    rows = list(rows)
    cols: list[str] = []
    for r in rows:
        cols.extend(k for k in r if k not in cols)
    right = {c: bool(rows) and all(_is_number(r.get(c)) or r.get(c) is None for r in rows) for c in cols}
    head = "".join(
        f'<th style="{_TH.format(align="right" if right[c] else "left")}">{html.escape(c)}</th>' for c in cols
    )
    if index:
        head = f'<th style="{_TH.format(align="right")}"></th>' + head
    body = []
    for i, r in enumerate(rows):
        cells = []
        if index:
            cells.append(f'<td style="{_TD.format(align="right")};color:#888">{i}</td>')
        for c in cols:
            full = _text(r[c]) if c in r else ""
            shown = full if len(full) <= MAX_CELL else full[: MAX_CELL - 1] + "…"
            title = f' title="{html.escape(full)}"' if shown != full else ""
            align = "right" if right[c] else "left"
            cells.append(f'<td style="{_TD.format(align=align)}"{title}>{html.escape(shown)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    cap = f'<caption style="{_CAPTION}">{html.escape(caption)}</caption>' if caption else ""
    return (
        f'<table class="flowpump" style="{_TABLE}">{cap}<thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


class Preview(list[Any]):
    """A list of events that displays as a table in a notebook (one column per field)."""

    def __init__(self, events: list[Any], label: str) -> None:
        super().__init__(events)
        self.label = label

    def _repr_html_(self) -> str:
        if not self:
            return f"<p><code>{html.escape(self.label)}</code>: no events</p>"
        rows = [_cells(e) for e in self]
        # Dead letters read best with where they came from first.
        if all(type(e).__name__ == "DeadLetter" for e in self):
            order = ("position", "stage", "error", "event", "raw")
            rows = [{k: r[k] for k in order if k in r} for r in rows]
        return table_html(rows, f"{self.label}: first {len(self)} events", index=True)


def _summary(report: RunReport) -> str:
    return str(report).splitlines()[-1]


def _stage_rows(report: RunReport, rates: list[float] | None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for i, s in enumerate(report.stages):
        rate = (
            rates[i]
            if rates is not None and i < len(rates)
            else (s.events_in / report.seconds if report.seconds > 0 else 0.0)
        )
        row: dict[str, Any] = {
            "#": s.group,
            "stage": s.label,
            "kind": s.kind if s.role != "errors" else f"{s.kind} (dead letters)",
            "in": s.events_in,
            "out": s.events_out,
            "filtered": s.filtered,
            "dead": s.dead_lettered,
            "events/s": round(rate),
            "seconds": round(s.seconds, 4),
        }
        rows.append(row)
    return rows


def dead_letter_rows(report: RunReport) -> list[dict[str, Any]]:
    """The sampled dead letters of ``report``: where each came from, which stage, which error."""
    return [
        {
            "position": d.position or "",
            "stage": d.stage,
            "error": d.error,
            "event": d.event if d.raw is None else d.raw,
        }
        for d in report.dead_letter_samples
    ]


def report_html(report: RunReport) -> str:
    """The report as HTML: totals, a row per stage, and the first dead letters."""
    parts = [table_html(_stage_rows(report, None), _summary(report))]
    if report.dead_letter_samples:
        shown, total = len(report.dead_letter_samples), report.dead_lettered
        caption = f"dead letters (first {shown} of {total})" if total > shown else "dead letters"
        parts.append(table_html(dead_letter_rows(report), caption))
    return "".join(parts)


State = Literal["starting", "running", "finished", "stopped", "failed"]
_BADGE = {
    "starting": ("#777777", "○ starting"),
    "running": ("#1f6fb2", "● running"),
    "finished": ("#2e7d32", "✔ finished"),
    "stopped": ("#8a6d00", "■ stopped"),
    "failed": ("#c0392b", "✖ failed"),
}


def _bar(fraction: float) -> str:
    pct = max(0.0, min(fraction, 1.0)) * 100
    return (
        '<span style="display:inline-block;width:120px;height:8px;background:#e6e6e6;border-radius:4px;'
        'vertical-align:middle;margin:0 6px">'
        f'<span style="display:block;width:{pct:.1f}%;height:8px;background:#1f6fb2;border-radius:4px"></span>'
        f"</span>{pct:.0f}%"
    )


def live_html(
    report: RunReport | None,
    state: State,
    *,
    rates: list[float] | None = None,
    rate: float | None = None,
    fraction: float | None = None,
    error: BaseException | None = None,
    table: bool = True,
) -> str:
    """The live view of a run: a status line, then (``table``) the counts of every stage."""
    colour, badge = _BADGE[state]
    line = [f'<b style="color:{colour}">{badge}</b>']
    if report is not None:
        speed = report.events_per_second if rate is None else rate
        line.append(
            f"{report.seconds:.1f} s · {report.events_in:,} in · {report.events_out:,} out"
            + (f" · {report.filtered:,} filtered" if report.filtered else "")
            + (f" · {report.dead_lettered:,} dead-lettered" if report.dead_lettered else "")
            + f" · {speed:,.0f} events/s"
        )
        if state == "running" and fraction is not None:
            line.append(_bar(fraction))
    if error is not None:
        line.append(f"<code>{html.escape(f'{type(error).__name__}: {error}')}</code>")
    head = f'<div class="flowpump-live" style="font-size:12px;margin:2px 0">{" ".join(line)}</div>'
    if report is None or not table:
        return head
    parts = [head, table_html(_stage_rows(report, rates if state == "running" else None))]
    if report.dead_letter_samples and state != "running":
        parts.append(table_html(dead_letter_rows(report), "dead letters"))
    return "".join(parts)
