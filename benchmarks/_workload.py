"""The events, user functions and hand-written baselines the benchmarks share.

The user functions are the same for flowpump and for every baseline, so a ratio measures only
what runs around them.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

#: Bytes per read in the batched hand loop (flowpump's file source reads the same).
BLOCK = 256 * 1024
KINDS = ("view", "click", "buy", "share")


class Click(msgspec.Struct):
    id: int
    user: str
    kind: str
    value: float
    ts: float


class Scored(msgspec.Struct):
    id: int
    user: str
    kind: str
    value: float
    score: float
    ts: float


def score(c: Click) -> Scored:
    """The anchor's map: score = value x 1.5, kind upper-cased."""
    return Scored(c.id, c.user, c.kind.upper(), c.value, c.value * 1.5, c.ts)


def keep(s: Scored) -> bool:
    """The anchor's filter: purchases, and anything worth more than 50."""
    return s.kind == "BUY" or s.value > 50


def clicks(n: int, seed: int = 7) -> list[Click]:
    rng = random.Random(seed)
    t0 = 1_700_000_000.0
    return [
        Click(i, f"u{rng.randrange(10_000)}", rng.choice(KINDS), round(rng.uniform(0, 100), 2), t0 + i * 0.001)
        for i in range(n)
    ]


def write_clicks(path: Path, n: int) -> None:
    """``n`` JSON lines ``{"id","user","kind","value","ts"}``, written a million at a time."""
    enc = msgspec.json.Encoder()
    with path.open("wb") as f:
        for start in range(0, n, 1_000_000):
            f.write(enc.encode_lines(clicks(min(1_000_000, n - start), seed=start)))


def plain_loop(src: Path, dst: Path) -> None:
    """The plain hand-written loop: one line, one decode, one encode, one write."""
    decode = msgspec.json.Decoder(Click).decode
    encode = msgspec.json.Encoder().encode
    with src.open("rb") as fin, dst.open("wb") as fout:
        write = fout.write
        for line in fin:
            s = score(decode(line))
            if keep(s):
                write(encode(s) + b"\n")


def batched_loop(src: Path, dst: Path) -> None:
    """The batched hand-written loop: a block of lines per decode_lines/encode_lines call."""
    decoder = msgspec.json.Decoder(Click)
    encoder = msgspec.json.Encoder()
    with src.open("rb") as fin, dst.open("wb") as fout:
        rest = b""
        while chunk := fin.read(BLOCK):
            data = rest + chunk
            cut = data.rfind(b"\n") + 1
            block, rest = data[:cut], data[cut:]
            fout.write(encoder.encode_lines([s for c in decoder.decode_lines(block) if keep(s := score(c))]))
        if rest:
            fout.write(encoder.encode_lines([s for c in decoder.decode_lines(rest) if keep(s := score(c))]))


def list_comprehension(xs: list[Any], f: Callable[[Any], Any], g: Callable[[Any], bool]) -> list[Any]:
    """The in-memory baseline: map then filter in one comprehension, f called once per event."""
    return [y for x in xs if g(y := f(x))]


def list_comprehension_over_map(xs: list[Any], f: Callable[[Any], Any], g: Callable[[Any], bool]) -> list[Any]:
    """The same with ``map()`` feeding the comprehension (f is called from C, not inlined)."""
    return [y for y in map(f, xs) if g(y)]
