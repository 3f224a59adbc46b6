"""File connectors: read_jsonl, read_lines, write_jsonl, write_lines; plain and gzip."""

from __future__ import annotations

import gzip
import re
from pathlib import Path
from typing import Any

import msgspec
import pytest

import flowpump as fp
from flowpump.connectors.files import BLOCK_SIZE


class Click(msgspec.Struct):
    user: str
    kind: str
    value: float


def click_line(i: int) -> str:
    return msgspec.json.encode(Click(f"user{i:05d}", "view" if i % 2 else "buy", i / 4)).decode()


def drain(source: fp.Flow[Any], fuse: bool = True) -> tuple[list[Any], list[fp.DeadLetter], fp.RunReport]:
    out: fp.Collect[Any] = fp.collect()
    dead: fp.Collect[fp.DeadLetter] = fp.collect()
    report = (source >> out).on_error(dead).run(fuse=fuse)
    return out.items, dead.items, report


# -- read_jsonl -------------------------------------------------------------------------------


def test_read_jsonl_decodes_typed_events(tmp_path, fuse):
    path = tmp_path / "clicks.jsonl"
    path.write_text("".join(click_line(i) + "\n" for i in range(100)))
    items, dead, report = drain(fp.read_jsonl(path, Click), fuse)
    assert items == [Click(f"user{i:05d}", "view" if i % 2 else "buy", i / 4) for i in range(100)]
    assert all(type(c) is Click for c in items)
    assert dead == []
    assert report.events_in == 100


def test_read_jsonl_converts_ints_to_floats_and_rejects_wrong_types(tmp_path, fuse):
    path = tmp_path / "c.jsonl"
    path.write_text('{"user": "a", "kind": "k", "value": 3}\n{"user": "b", "kind": "k", "value": "3"}\n')
    items, dead, _ = drain(fp.read_jsonl(path, Click), fuse)
    assert items == [Click("a", "k", 3.0)]
    [d] = dead
    assert (d.stage, d.position, d.raw) == (
        "read_jsonl(c.jsonl)",
        "c.jsonl:2",
        b'{"user": "b", "kind": "k", "value": "3"}',
    )
    assert d.error == "ValidationError: Expected `float`, got `str` - at `$.value`"


def test_blank_lines_are_skipped_and_positions_stay_right(tmp_path, fuse):
    path = tmp_path / "gaps.jsonl"
    path.write_text(f"\n{click_line(1)}\n\n   \n{click_line(2)}\nbroken\n\n{click_line(3)}\n")
    items, dead, report = drain(fp.read_jsonl(path, Click), fuse)
    assert [c.user for c in items] == ["user00001", "user00002", "user00003"]
    assert [(d.position, d.raw) for d in dead] == [("gaps.jsonl:6", b"broken")]
    assert report.events_in == 4


def test_positions_of_step_failures_after_blank_lines(tmp_path):
    path = tmp_path / "gaps.jsonl"
    path.write_text(f"\n{click_line(1)}\n\n{click_line(2)}\n{click_line(3)}\n")

    def reject_two(c: Click) -> Click:
        if c.user == "user00002":
            raise ValueError("two")
        return c

    _, dead, _ = drain(fp.read_jsonl(path, Click) >> fp.map(reject_two))
    assert [(d.stage, d.position) for d in dead] == [("map(reject_two)", "gaps.jsonl:4")]


def test_a_final_line_without_newline_is_read(tmp_path, fuse):
    path = tmp_path / "tail.jsonl"
    path.write_text(f"{click_line(1)}\n{click_line(2)}")
    items, _, _ = drain(fp.read_jsonl(path, Click), fuse)
    assert [c.user for c in items] == ["user00001", "user00002"]


def test_a_bad_final_line_without_newline_has_its_position(tmp_path, fuse):
    path = tmp_path / "tail.jsonl"
    path.write_text(f"{click_line(1)}\n{{bad")
    items, dead, _ = drain(fp.read_jsonl(path, Click), fuse)
    assert len(items) == 1
    assert [(d.position, d.raw) for d in dead] == [("tail.jsonl:2", b"{bad")]


def test_an_empty_file(tmp_path, fuse):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    items, dead, report = drain(fp.read_jsonl(path, Click), fuse)
    assert (items, dead, report.events_in) == ([], [], 0)


def big_file(path: Path, n_lines: int) -> tuple[list[str], set[int]]:
    """Write ``n_lines`` click lines, bad ones around each block boundary; return lines and bad numbers."""
    lines = [click_line(i) for i in range(1, n_lines + 1)]
    offsets, total = [], 0
    for line in lines:
        offsets.append(total)
        total += len(line) + 1
    assert total > 2 * BLOCK_SIZE, "the file must span several blocks"
    bad: set[int] = {1, n_lines}
    for boundary in range(BLOCK_SIZE, total, BLOCK_SIZE):
        crossing = max(i for i, off in enumerate(offsets) if off < boundary)  # 0-based
        bad.update({crossing, crossing + 1, crossing + 2})  # 1-based numbers around the cut
    for n in bad:
        lines[n - 1] = f'{{"user": "bad{n}"'
    path.write_text("\n".join(lines) + "\n")
    return lines, bad


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_a_file_bigger_than_one_block_keeps_positions_right(tmp_path, fuse, suffix):
    plain = tmp_path / "big.jsonl"
    lines, bad = big_file(plain, 20_000)
    path = plain
    if suffix.endswith(".gz"):
        path = tmp_path / "big.jsonl.gz"
        path.write_bytes(gzip.compress(plain.read_bytes()))
    name = path.name

    items, dead, report = drain(fp.read_jsonl(path, Click), fuse)

    assert [c.user for c in items] == [f"user{i:05d}" for i in range(1, 20_001) if i not in bad]
    assert sorted((d.position, d.raw) for d in dead) == sorted((f"{name}:{n}", lines[n - 1].encode()) for n in bad)
    assert report.events_in == 20_000


def test_step_failures_in_later_blocks_have_the_right_line(tmp_path):
    path = tmp_path / "big.jsonl"
    path.write_text("".join(click_line(i) + "\n" for i in range(1, 20_001)))
    unlucky = {7, 9_999, 12_345, 20_000}

    def check(c: Click) -> Click:
        if int(c.user[4:]) in unlucky:
            raise ValueError(c.user)
        return c

    items, dead, _ = drain(fp.read_jsonl(path, Click) >> fp.filter(lambda c: True) >> fp.map(check))
    assert len(items) == 20_000 - len(unlucky)
    assert sorted(d.position for d in dead) == sorted(f"big.jsonl:{n}" for n in unlucky)
    assert all(d.error == f"ValueError: {d.event.user}" for d in dead)


def test_the_file_source_acknowledges_the_last_line_written(tmp_path, fast_retry):
    path = tmp_path / "big.jsonl"
    path.write_text("".join(click_line(i) + "\n" for i in range(1, 20_001)))
    source = fp.read_jsonl(path, Click)
    spec = source.origin
    (source >> fp.collect()).run()
    assert spec.acked_line == 20_000  # type: ignore[union-attr]

    def fail_late(c: Click) -> None:
        if c.user == "user15000":
            raise OSError("full")

    with pytest.raises(fp.PipelineError):
        (source >> fp.sink(fail_late)).run()
    # Whole blocks before the failing one are acknowledged; nothing at or after line 15000 is.
    assert 0 < spec.acked_line < 15_000  # type: ignore[union-attr]


def test_missing_file_is_a_clear_error(tmp_path, fuse):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(fp.PipelineError) as info:
        (fp.read_jsonl(missing, Click) >> fp.collect()).run(fuse=fuse)
    assert info.value.stage == "read_jsonl(nope.jsonl)"
    assert f"no such file {str(missing)!r}" in str(info.value)


@pytest.mark.parametrize("read", ["jsonl", "lines", "csv"])
def test_a_missing_input_file_does_not_truncate_the_output(tmp_path, fuse, read):
    out, dead = tmp_path / "results.jsonl", tmp_path / "dead.jsonl"
    out.write_text('{"x":1}\n')
    dead.write_text('{"y":2}\n')
    missing = tmp_path / f"typo.{read}"
    src: fp.Source[Any] = {
        "jsonl": lambda: fp.read_jsonl(missing, Click),
        "lines": lambda: fp.read_lines(missing),
        "csv": lambda: fp.read_csv(missing, Click),
    }[read]()
    with pytest.raises(fp.PipelineError, match="no such file") as info:
        (src >> fp.write_jsonl(out)).on_error(fp.write_jsonl(dead)).run(fuse=fuse)
    assert info.value.stage == src.label
    assert out.read_text() == '{"x":1}\n'
    assert dead.read_text() == '{"y":2}\n'


# -- read_lines -------------------------------------------------------------------------------


def test_read_lines_without_line_ends(tmp_path, fuse):
    path = tmp_path / "a.txt"
    path.write_bytes(b"alpha\n\nbeta\r\ngamma")
    items, dead, _ = drain(fp.read_lines(path), fuse)
    assert items == ["alpha", "", "beta", "gamma"]
    assert dead == []


def test_read_lines_dead_letters_undecodable_lines(tmp_path, fuse):
    path = tmp_path / "a.txt"
    path.write_bytes(b"ok\n\xff\xfe bad\nfine\r\n")
    items, dead, _ = drain(fp.read_lines(path), fuse)
    assert items == ["ok", "fine"]
    [d] = dead
    assert (d.stage, d.position, d.raw) == ("read_lines(a.txt)", "a.txt:2", b"\xff\xfe bad")
    assert d.error.startswith("UnicodeDecodeError:")


def test_read_lines_gz_and_encoding(tmp_path, fuse):
    path = tmp_path / "a.txt.gz"
    path.write_bytes(gzip.compress("naïve\ncafé\n".encode("latin-1")))
    items, _, _ = drain(fp.read_lines(path, encoding="latin-1"), fuse)
    assert items == ["naïve", "café"]


def test_read_lines_positions_of_step_failures(tmp_path):
    path = tmp_path / "n.txt"
    path.write_text("1\n2\nx\n4\n")
    _, dead, _ = drain(fp.read_lines(path) >> fp.map(int))
    assert [(d.position, d.event) for d in dead] == [("n.txt:3", "x")]


def test_read_lines_missing_file(tmp_path):
    with pytest.raises(fp.PipelineError, match=re.escape("read_lines(gone.txt): no such file")):
        fp.read_lines(tmp_path / "gone.txt").take(1)


# -- writers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_write_jsonl_flushes_the_tail(tmp_path, fuse, suffix):
    path = tmp_path / f"out{suffix}"
    events = [Click(f"u{i}", "k", float(i)) for i in range(10_007)]
    report = (fp.from_iterable(events) >> fp.write_jsonl(path)).run(fuse=fuse)
    data = path.read_bytes()
    if suffix.endswith(".gz"):
        data = gzip.decompress(data)
    assert data.endswith(b"\n")
    assert [msgspec.json.decode(line, type=Click) for line in data.splitlines()] == events
    assert report.events_out == 10_007


def test_write_jsonl_writes_dicts_lists_and_builtins(tmp_path):
    path = tmp_path / "mixed.jsonl"
    (fp.from_iterable([{"a": 1}, [1, 2], "s", 3.5, None]) >> fp.write_jsonl(path)).run()
    assert path.read_text() == '{"a":1}\n[1,2]\n"s"\n3.5\nnull\n'


def test_write_jsonl_dead_letters_unencodable_events_and_goes_on(tmp_path, fuse):
    path = tmp_path / "out.jsonl"
    events: list[object] = [1, object(), 2, complex(1, 2), 3]
    dead: fp.Collect[fp.DeadLetter] = fp.collect()
    report = (fp.from_iterable(events) >> fp.write_jsonl(path)).on_error(dead).run(fuse=fuse)
    assert path.read_text() == "1\n2\n3\n"
    assert [d.event for d in dead.items] == [events[1], events[3]]
    assert all(d.stage == "write_jsonl(out.jsonl)" for d in dead.items)
    assert "convert it to a msgspec Struct" in dead.items[0].error
    assert (report.events_out, report.dead_lettered) == (3, 2)


def test_jsonl_round_trip_through_gzip(tmp_path, fuse):
    src, mid = tmp_path / "in.jsonl", tmp_path / "mid.jsonl.gz"
    src.write_text("".join(click_line(i) + "\n" for i in range(500)))
    (fp.read_jsonl(src, Click) >> fp.write_jsonl(mid)).run(fuse=fuse)
    assert fp.read_jsonl(mid, Click).take(1000, fuse=fuse) == fp.read_jsonl(src, Click).take(1000, fuse=fuse)


@pytest.mark.parametrize("suffix", [".txt", ".txt.gz"])
def test_write_lines_flushes_the_tail(tmp_path, fuse, suffix):
    path = tmp_path / f"out{suffix}"
    (fp.from_iterable(range(5003)) >> fp.map(str) >> fp.write_lines(path)).run(fuse=fuse)
    data = path.read_bytes()
    if suffix.endswith(".gz"):
        data = gzip.decompress(data)
    assert data.decode().split("\n") == [str(i) for i in range(5003)] + [""]


def test_write_lines_dead_letters_non_strings(tmp_path, fuse):
    path = tmp_path / "out.txt"
    dead: fp.Collect[fp.DeadLetter] = fp.collect()
    sink: fp.Sink[object] = fp.write_lines(path)  # type: ignore[assignment]
    report = (fp.from_iterable(["a", 2, "b", None]) >> sink).on_error(dead).run(fuse=fuse)
    assert path.read_text() == "a\nb\n"
    assert [d.event for d in dead.items] == [2, None]
    assert "write_lines writes str, got int (add fp.map(str) before it)" in dead.items[0].error
    assert (report.events_out, report.dead_lettered) == (2, 2)


def test_write_lines_round_trip(tmp_path, fuse):
    path = tmp_path / "lines.txt"
    lines = ["", "x", "ünï", "  spaced  "]
    (fp.from_iterable(lines) >> fp.write_lines(path)).run(fuse=fuse)
    assert fp.read_lines(path).take(10, fuse=fuse) == lines


def test_writing_into_a_missing_directory_fails_before_reading(tmp_path):
    read: list[int] = []
    with pytest.raises(fp.PipelineError, match=re.escape("out.jsonl")) as info:
        (fp.from_iterable(range(3)) >> fp.tap(read.append) >> fp.write_jsonl(tmp_path / "no" / "out.jsonl")).run()
    assert isinstance(info.value.__cause__, OSError)
    assert read == []


def test_positions_of_identical_events_in_one_batch(tmp_path, fuse):
    path = tmp_path / "n.txt"
    path.write_text("1\n\n3\n\n5\n")
    _, dead, _ = drain(fp.read_lines(path) >> fp.map(int), fuse)
    assert [d.position for d in dead] == ["n.txt:2", "n.txt:4"]
