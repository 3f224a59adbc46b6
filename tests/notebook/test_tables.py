"""HTML tables: previews (Struct fields as columns), reports with dead letters, live views."""

from __future__ import annotations

import html
import re
from pathlib import Path

import msgspec
import pytest

import flowpump as fp
from flowpump.notebook import Preview, State, live_html, report_html, table_html


class Click(msgspec.Struct):
    user: str
    value: float


def cells(markup: str, tag: str = "td") -> list[str]:
    return [html.unescape(c) for c in re.findall(rf"<{tag}(?:\s[^>]*)?>(.*?)</{tag}>", markup)]


def test_preview_has_a_column_per_struct_field() -> None:
    preview = fp.from_iterable([Click("ann", 1.5), Click("<b>ob</b>", 2.0)]).preview(5)
    assert isinstance(preview, Preview)
    assert preview == [Click("ann", 1.5), Click("<b>ob</b>", 2.0)]
    markup = preview._repr_html_()
    assert cells(markup, "th") == ["", "user", "value"]
    assert cells(markup) == ["0", "ann", "1.5", "1", "<b>ob</b>", "2"]
    assert "<b>ob</b>" not in markup  # escaped
    assert "from_iterable(list): first 2 events" in markup


def test_preview_of_plain_values_dicts_and_nothing() -> None:
    assert cells(fp.from_iterable([7]).preview()._repr_html_(), "th") == ["", "value"]
    assert cells(fp.from_iterable([{"a": 1}, {"b": 2}]).preview()._repr_html_(), "th") == ["", "a", "b"]
    assert "no events" in fp.from_iterable([]).preview()._repr_html_()


def test_long_values_are_cut_with_a_tooltip() -> None:
    markup = table_html([{"text": "x" * 500}])
    assert "x" * 119 + "…" in markup
    assert 'title="' + "x" * 500 + '"' in markup


def test_dead_letters_show_position_first() -> None:
    dead = [fp.DeadLetter(stage="map(f)", error="ValueError: bad", event=3, position="a.jsonl:7")]
    markup = Preview(dead, "dead")._repr_html_()
    assert cells(markup, "th") == ["", "position", "stage", "error", "event", "raw"]


def test_report_shows_stages_and_dead_letters_with_position_and_error(tmp_path: Path) -> None:
    path = tmp_path / "clicks.jsonl"
    path.write_text('{"user": "a", "value": 1}\n{"user": "b", "value": "x"}\n{"user": "c", "value": 0}\n')

    def inverse(c: Click) -> float:
        return 1 / c.value

    report = (fp.read_jsonl(path, Click) >> fp.map(inverse) >> fp.collect()).on_error(fp.collect()).run()
    markup = report._repr_html_()
    assert cells(markup, "th")[:9] == ["#", "stage", "kind", "in", "out", "filtered", "dead", "events/s", "seconds"]
    assert "events in 3, out 1, filtered 0, dead-lettered 2" in markup
    body = cells(markup)
    assert "clicks.jsonl:2" in body
    assert "clicks.jsonl:3" in body
    assert any(c.startswith("ZeroDivisionError") for c in body)
    assert any(c.startswith("ValidationError") for c in body)
    assert report_html(report) == markup


@pytest.mark.parametrize("state", ["running", "finished", "stopped", "failed"])
def test_live_view_states(state: State) -> None:
    report = (fp.from_iterable(range(10)) >> fp.collect()).run()
    error = ValueError("boom") if state == "failed" else None
    markup = live_html(report, state, rates=[1.0, 2.0], fraction=0.5, error=error)
    assert state in markup
    assert "10 in" in markup
    assert ("50%" in markup) == (state == "running")
    assert ("ValueError: boom" in markup) == (state == "failed")
    assert "<table" in markup
    assert "<table" not in live_html(report, "finished", table=False)
    assert "starting" in live_html(None, "starting")
