"""read_csv: header row, rows converted into a msgspec type (numbers from text), bad rows dead-lettered."""

from __future__ import annotations

import gzip
import re

import msgspec
import pytest

import flowpump as fp


class Row(msgspec.Struct):
    name: str
    count: int
    price: float
    active: bool


def run(flow: fp.Flow[Row], fuse: bool) -> tuple[list[Row], list[fp.DeadLetter]]:
    out: fp.Collect[Row] = fp.collect()
    dead: fp.Collect[fp.DeadLetter] = fp.collect()
    (flow >> out).on_error(dead).run(fuse=fuse)
    return out.items, dead.items


def test_read_csv_converts_numbers_and_booleans(tmp_path, fuse):
    path = tmp_path / "rows.csv"
    path.write_text("name,count,price,active\nap,3,1.5,true\nbe,-2,7,false\n")
    items, dead = run(fp.read_csv(path, Row), fuse)
    assert items == [Row("ap", 3, 1.5, True), Row("be", -2, 7.0, False)]
    assert dead == []


def test_bad_rows_are_dead_lettered_with_their_line(tmp_path, fuse):
    path = tmp_path / "rows.csv"
    path.write_text('name,count,price,active\nok,1,1,true\n"multi\nline",2,2,false\nbad,two,2,true\nlast,4,4,true\n')
    items, dead = run(fp.read_csv(path, Row), fuse)
    assert [r.name for r in items] == ["ok", "multi\nline", "last"]
    [d] = dead
    assert (d.stage, d.position, d.raw) == ("read_csv(rows.csv)", "rows.csv:5", b"bad,two,2,true")
    assert d.error == "ValidationError: Expected `int`, got `str` - at `$.count`"


def test_a_row_with_extra_fields_is_a_bad_row_and_the_others_pass(tmp_path, fuse):
    path = tmp_path / "rows.csv"
    path.write_text('name,count,price,active\nok,1,1,true\nlong,2,2,true,X,Y\n"multi\nline",3,3,false\nlast,4,4,true\n')
    items, dead = run(fp.read_csv(path, Row), fuse)
    assert [r.name for r in items] == ["ok", "multi\nline", "last"]
    [d] = dead
    assert (d.stage, d.position, d.raw) == ("read_csv(rows.csv)", "rows.csv:3", b"long,2,2,true,X,Y")
    assert d.error == "ValueError: line 3 has 2 extra field(s): 6 fields, the header names 4"


def test_a_missing_column_is_a_bad_row(tmp_path, fuse):
    path = tmp_path / "rows.csv"
    path.write_text("name,count,price\na,1,2\n")
    items, dead = run(fp.read_csv(path, Row), fuse)
    assert items == []
    assert [d.position for d in dead] == ["rows.csv:2"]
    assert "active" in dead[0].error


def test_many_rows_keep_order_and_positions(tmp_path, fuse):
    path = tmp_path / "many.csv"
    rows = [f"n{i},{i},{i}.5,{'true' if i % 2 else 'false'}" for i in range(5000)]
    rows[4321] = "n4321,x,1,true"
    path.write_text("name,count,price,active\n" + "\n".join(rows) + "\n")
    items, dead = run(fp.read_csv(path, Row), fuse)
    assert [r.count for r in items] == [i for i in range(5000) if i != 4321]
    assert [d.position for d in dead] == ["many.csv:4323"]  # header is line 1


def test_delimiter_and_gzip(tmp_path, fuse):
    path = tmp_path / "rows.csv.gz"
    path.write_bytes(gzip.compress(b"name;count;price;active\nx;1;0.25;true\n"))
    items, _ = run(fp.read_csv(path, Row, delimiter=";"), fuse)
    assert items == [Row("x", 1, 0.25, True)]


def test_read_csv_into_dicts(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("a,b\n1,x\n")
    assert fp.read_csv(path, dict).take(5) == [{"a": "1", "b": "x"}]


def test_read_csv_missing_file(tmp_path):
    with pytest.raises(fp.PipelineError, match=re.escape("read_csv(none.csv): no such file")) as info:
        fp.read_csv(tmp_path / "none.csv", Row).take(1)
    assert info.value.stage == "read_csv(none.csv)"
