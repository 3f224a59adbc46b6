"""Block codecs and lazy line numbers (``connectors/_codec.py``)."""

from __future__ import annotations

import io
from pathlib import Path

import msgspec

import flowpump as fp
from flowpump.connectors._codec import BlockPositions, LineIndex


class P(msgspec.Struct):
    x: int


def test_line_index_counts_when_asked_and_from_the_nearest_point(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"a\nb\nc\nd\ne")  # the last line has no newline
    opened: list[int] = []

    def reopen() -> io.BufferedReader:
        opened.append(1)
        return path.open("rb")

    index = LineIndex(reopen)
    assert opened == []
    assert index.lines_before(4) == 2
    assert index.lines_before(4) == 2  # remembered
    assert len(opened) == 1
    assert index.lines_before(2) == 1  # from 0, the nearest point before it
    assert index.lines_before(9) == 4
    assert index.lines_before(10) == 5  # one past the end: the last line, as if it had a newline


def test_line_index_without_reopen_answers_from_noted_points() -> None:
    index = LineIndex()
    index.note(100, 7)
    assert index.lines_before(100) == 7


def test_block_positions_number_events_by_line_only_when_asked(tmp_path: Path) -> None:
    block = b'{"x": 1}\n\n   \n{"x": 2} {"x": 3}\n{"x": 4}\n'
    path = tmp_path / "b.jsonl"
    path.write_bytes(b'{"x": 0}\n' * 3 + block)
    index = LineIndex(lambda: path.open("rb"))
    raw = msgspec.json.Decoder(msgspec.Raw)
    positions = BlockPositions("b.jsonl", index, 27, block, 4, lambda line: len(raw.decode_lines(line)))
    assert [positions.at(i) for i in range(4)] == ["b.jsonl:4", "b.jsonl:7", "b.jsonl:7", "b.jsonl:8"]


def test_a_line_with_two_values_gives_two_events_in_both_decode_paths(tmp_path: Path) -> None:
    # decode_lines reads whitespace-separated values; the per-line path (taken when a block has
    # a bad line) reads such a line the same way, so the result does not depend on neighbours.
    for extra in ("", "oops\n"):
        path = tmp_path / "two.jsonl"
        path.write_text('{"x": 1} {"x": 2}\n' + extra + '{"x": 3}\n')
        out: fp.Collect[P] = fp.collect()
        dead: fp.Collect[fp.DeadLetter] = fp.collect()
        (fp.read_jsonl(path, P) >> out).on_error(dead).run()
        assert out.items == [P(1), P(2), P(3)]
        assert [d.position for d in dead.items] == (["two.jsonl:2"] if extra else [])
