"""stdin and stdout, through a real subprocess running a small pipeline."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def pump(code: str, stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    program = "import flowpump as fp\n" + code
    return subprocess.run([sys.executable, "-c", program], input=stdin, capture_output=True, timeout=60, check=False)


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
def test_stdin_to_stdout_as_text(fuse):
    done = pump(f"(fp.stdin() >> fp.map(str.upper) >> fp.stdout()).run(fuse={fuse})", b"alpha\nbeta\n\ngamma")
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b"ALPHA\nBETA\n\nGAMMA\n"


def test_stdout_writes_non_strings_as_json():
    code = "(fp.stdin() >> fp.map(lambda s: {'line': s, 'n': len(s)}) >> fp.stdout()).run()"
    done = pump(code, b"ab\nc\n")
    assert done.returncode == 0, done.stderr.decode()
    assert [json.loads(line) for line in done.stdout.splitlines()] == [{"line": "ab", "n": 2}, {"line": "c", "n": 1}]


def test_a_large_stdin_streams_through():
    data = b"".join(b"%d\n" % i for i in range(200_000))
    done = pump("(fp.stdin() >> fp.map(int) >> fp.filter(lambda x: x % 1000 == 0) >> fp.stdout()).run()", data)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.split() == [b"%d" % i for i in range(0, 200_000, 1000)]


def test_stdin_positions_in_dead_letters():
    code = (
        "dead = fp.collect()\n"
        "(fp.stdin() >> fp.map(int) >> fp.stdout()).on_error(dead).run()\n"
        "import sys\n"
        "print([(d.position, d.event) for d in dead.items], file=sys.stderr)\n"
    )
    done = pump(code, b"1\nx\n3\n")
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b"1\n3\n"
    assert done.stderr.decode().strip() == "[('stdin:2', 'x')]"


def test_take_from_stdin_stops_early():
    done = pump("print(fp.stdin().take(2))", b"a\nb\nc\nd\n")
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b"['a', 'b']\n"


def test_strings_are_written_as_text_whatever_shares_their_batch():
    code = "(fp.from_iterable(['a', 1, 'b', {'k': 'v'}, 'c']) >> fp.stdout()).run()"
    done = pump(code, b"")
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b'a\n1\nb\n{"k":"v"}\nc\n'


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
def test_stdout_writes_text_when_sys_stdout_has_no_buffer(fuse):
    import contextlib
    import io

    import flowpump as fp

    buf = io.StringIO()  # like Jupyter's OutStream: a text stream without .buffer
    with contextlib.redirect_stdout(buf):
        report = (fp.from_iterable(["a", {"b": 1}, "é"]) >> fp.stdout()).run(fuse=fuse)
    assert report.events_out == 3
    assert buf.getvalue() == 'a\n{"b":1}\né\n'
