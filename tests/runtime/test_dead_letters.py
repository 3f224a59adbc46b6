"""Per-event failures become DeadLetter records: routed to on_error, or counted, logged once and
reported; a bad record never takes valid records down with it."""

from __future__ import annotations

import logging
from pathlib import Path

import msgspec
import pytest

import flowpump as fp


class Click(msgspec.Struct):
    user: str
    value: float


def write_clicks(path: Path, n: int, bad: dict[int, str]) -> None:
    """``n`` lines of clicks; line numbers in ``bad`` (1-based) get that text instead."""
    lines = [bad.get(i, msgspec.json.encode(Click(f"u{i}", float(i))).decode()) for i in range(1, n + 1)]
    path.write_text("\n".join(lines) + "\n")


def score(c: Click) -> float:
    if c.user == "u17":
        raise ValueError("cannot score u17")
    return c.value * 1.5


def test_dead_letters_go_to_on_error_collect_with_stage_error_event_and_position(tmp_path, fuse):
    path = tmp_path / "clicks.jsonl"
    write_clicks(path, 30, {5: "{not json", 9: '{"user": "u9"}'})
    out: fp.Collect[float] = fp.collect()
    dead: fp.Collect[fp.DeadLetter] = fp.collect()

    report = (fp.read_jsonl(path, Click) >> fp.map(score) >> out).on_error(dead).run(fuse=fuse)

    assert out.items == [i * 1.5 for i in range(1, 31) if i not in (5, 9, 17)]
    by_position = {d.position: d for d in dead.items}
    assert sorted(by_position) == ["clicks.jsonl:17", "clicks.jsonl:5", "clicks.jsonl:9"]
    decode, missing, scored = (by_position[f"clicks.jsonl:{n}"] for n in (5, 9, 17))
    assert decode.stage == missing.stage == "read_jsonl(clicks.jsonl)"
    assert decode.raw == b"{not json"
    assert decode.error.startswith("DecodeError:")
    assert missing.raw == b'{"user": "u9"}'
    assert missing.error == "ValidationError: Object missing required field `value`"
    assert (scored.stage, scored.error, scored.event) == (
        "map(score)",
        "ValueError: cannot score u17",
        Click("u17", 17.0),
    )
    assert scored.raw is None
    assert (report.events_in, report.events_out, report.dead_lettered) == (30, 27, 3)


def test_dead_letters_written_as_json_lines(tmp_path, fuse):
    path, dead_path = tmp_path / "clicks.jsonl", tmp_path / "dead.jsonl"
    write_clicks(path, 20, {3: "oops"})
    out: fp.Collect[float] = fp.collect()

    (fp.read_jsonl(path, Click) >> fp.map(score) >> out).on_error(fp.write_jsonl(dead_path)).run(fuse=fuse)

    dead = [msgspec.json.decode(line, type=fp.DeadLetter) for line in dead_path.read_bytes().splitlines()]
    assert [(d.stage, d.position, d.raw, d.event) for d in dead] == [
        ("read_jsonl(clicks.jsonl)", "clicks.jsonl:3", b"oops", None),
        ("map(score)", "clicks.jsonl:17", None, {"user": "u17", "value": 17.0}),
    ]
    assert len(out.items) == 18


def test_dead_letters_of_events_json_cannot_encode_are_still_written(tmp_path, fuse):
    class Opaque:
        def __repr__(self) -> str:
            return "<Opaque 7>"

    def boom(x: object) -> object:
        raise RuntimeError("no")

    dead_path = tmp_path / "dead.jsonl"
    report = (
        (fp.from_iterable([Opaque()]) >> fp.map(boom) >> fp.collect())
        .on_error(fp.write_jsonl(dead_path))
        .run(fuse=fuse)
    )
    [line] = dead_path.read_bytes().splitlines()
    dead = msgspec.json.decode(line, type=fp.DeadLetter)
    assert (dead.stage, dead.error, dead.event) == ("map(boom)", "RuntimeError: no", "<Opaque 7>")
    assert report.dead_lettered == 1


def test_without_on_error_dead_letters_are_counted_reported_and_logged_once(tmp_path, fuse, caplog):
    path = tmp_path / "clicks.jsonl"
    write_clicks(path, 40, {2: "[]", 30: "nope"})
    out: fp.Collect[float] = fp.collect()

    with caplog.at_level(logging.WARNING, logger="flowpump"):
        report = (fp.read_jsonl(path, Click) >> fp.map(score) >> out).run(fuse=fuse)

    assert len(out.items) == 37
    assert report.dead_lettered == 3
    assert report.events_in == report.events_out + report.filtered + report.dead_lettered
    rows = {s.label: s for s in report.stages}
    assert rows["read_jsonl(clicks.jsonl)"].dead_lettered == 2
    assert rows["map(score)"].dead_lettered == 1
    assert sorted(d.position for d in report.dead_letter_samples) == [
        "clicks.jsonl:17",
        "clicks.jsonl:2",
        "clicks.jsonl:30",
    ]
    [record] = [r for r in caplog.records if r.name == "flowpump"]
    message = record.getMessage()
    assert record.levelno == logging.WARNING
    assert message.startswith("3 event(s) were dead-lettered and no error sink is set")
    assert ".on_error(" in message
    # The first dead letter (a decode error) is named by its own error, not wrapped in another.
    assert message.endswith(
        "in stage 'read_jsonl(clicks.jsonl)' at clicks.jsonl:2: ValidationError: Expected `object`, got `array`"
    )


def test_no_log_when_dead_letters_have_a_sink(fuse, caplog):
    with caplog.at_level(logging.WARNING, logger="flowpump"):
        (fp.from_iterable([0, 1]) >> fp.map(lambda x: 1 / x) >> fp.collect()).on_error(fp.collect()).run(fuse=fuse)
    assert [r for r in caplog.records if r.name == "flowpump"] == []


def test_a_bad_record_does_not_take_its_batch_down(recording_source, fuse):
    src = recording_source([list(range(100))], set, pace=False)

    def check(x: int) -> int:
        if x in (0, 50, 99):
            raise ValueError(x)
        return x

    out: fp.Collect[int] = fp.collect()
    dead: fp.Collect[fp.DeadLetter] = fp.collect()
    (fp.Source(src) >> fp.map(check) >> fp.map(lambda x: x) >> out).on_error(dead).run(fuse=fuse)
    assert out.items == [x for x in range(100) if x not in (0, 50, 99)]
    assert [d.event for d in dead.items] == [0, 50, 99]
    assert src.acks.acked == [0]


def test_an_unencodable_event_does_not_take_the_written_batch_down(tmp_path, fuse):
    path = tmp_path / "out.jsonl"
    events: list[object] = [{"i": i} for i in range(10)]
    events[4] = {1, 2}.__iter__()  # not JSON
    dead: fp.Collect[fp.DeadLetter] = fp.collect()
    report = (fp.from_iterable(events) >> fp.write_jsonl(path)).on_error(dead).run(fuse=fuse)
    assert [msgspec.json.decode(line) for line in path.read_bytes().splitlines()] == [
        {"i": i} for i in range(10) if i != 4
    ]
    [d] = dead.items
    assert d.stage == "write_jsonl(out.jsonl)"
    assert d.event is events[4]
    assert (report.events_in, report.events_out, report.dead_lettered) == (10, 9, 1)


def test_a_failing_step_in_the_dead_letter_branch_is_counted_not_looped(arun, fuse):
    def bad(x: object) -> object:
        raise ValueError("bad")

    kept: fp.Collect[str] = fp.collect()
    pipeline = (fp.from_iterable(range(50)) >> fp.map(bad) >> fp.collect()).on_error(
        fp.filter(lambda d: d.event % 2 == 0) >> fp.map(lambda d: d if d.event < 10 else bad(d)) >> kept
    )
    report = arun(pipeline.arun(fuse=fuse))
    assert [d.event for d in kept.items] == [0, 2, 4, 6, 8]
    errors = [s for s in report.stages if s.role == "errors"]
    assert [(s.kind, s.events_in, s.events_out, s.filtered, s.dead_lettered) for s in errors] == [
        ("filter", 50, 25, 25, 0),
        ("map", 25, 5, 0, 20),
        ("sink", 5, 5, 0, 0),
    ]
    # The main pipeline's totals are not changed by what the dead-letter branch did.
    assert (report.events_in, report.events_out, report.dead_lettered) == (50, 0, 50)


def test_error_branch_operators_see_dead_letters(fuse):
    stages: fp.Collect[str] = fp.collect()
    (fp.from_iterable(["1", "x", "2"]) >> fp.map(int) >> fp.collect()).on_error(
        fp.map(lambda d: d.stage) >> stages
    ).run(fuse=fuse)
    assert stages.items == ["map(int)"]


@pytest.mark.parametrize("n_bad", [1, 25])
def test_report_identity_holds_with_dead_letters_everywhere(tmp_path, fuse, n_bad):
    path = tmp_path / "clicks.jsonl"
    write_clicks(path, 200, {i * 7: "x" for i in range(1, n_bad + 1)})
    report = (
        fp.read_jsonl(path, Click)
        >> fp.filter(lambda c: c.value % 3 != 0)
        >> fp.map(score)
        >> fp.map(lambda v: v if v < 250 else complex(v))  # complex numbers are not JSON
        >> fp.write_jsonl(tmp_path / "out.jsonl")
    ).run(fuse=fuse)
    assert report.events_in == 200
    assert report.events_in == report.events_out + report.filtered + report.dead_lettered
