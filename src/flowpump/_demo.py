"""``flowpump demo``: a sample clickstream through a typed pipeline, with a report."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import msgspec

from . import _ops as ops
from ._errors import DeadLetter
from ._graph import Pipeline
from .connectors.files import read_jsonl, write_jsonl

KINDS = ("view", "click", "buy", "share")


class Click(msgspec.Struct):
    """One raw click from the sample clickstream."""

    id: int
    user: str
    kind: str
    value: float
    ts: float


class Scored(msgspec.Struct):
    """A click with its score, as the demo pipeline writes it."""

    id: int
    user: str
    kind: str
    score: float


def score(c: Click) -> Scored:
    """Score a click: value x 1.5, the kind upper-cased."""
    return Scored(c.id, c.user, c.kind.upper(), c.value * 1.5)


def keep(s: Scored) -> bool:
    """Keep purchases and anything scored above 75."""
    return s.kind == "BUY" or s.score > 75


def make_clicks(path: Path, n: int, *, bad_every: int = 0, seed: int = 7) -> None:
    """Write ``n`` sample clicks as JSON lines; every ``bad_every``-th line is corrupt."""
    rng = random.Random(seed)
    enc = msgspec.json.Encoder()
    t0 = 1_700_000_000.0
    with path.open("wb") as f:
        for i in range(n):
            if bad_every and i % bad_every == bad_every - 1:
                f.write(b'{"id": %d, "user": "u1", "kind": "click", "value": "oops"}\n' % i)
                continue
            c = Click(i, f"u{rng.randrange(1000)}", rng.choice(KINDS), round(rng.uniform(0, 100), 2), t0 + i)
            f.write(enc.encode(c) + b"\n")


def pipeline(src: Path, out: Path, dead: Path) -> Pipeline:
    """The demo pipeline: decode, score, keep, encode; bad lines to ``dead``."""
    return (read_jsonl(src, Click) >> ops.map(score) >> ops.filter(keep) >> write_jsonl(out)).on_error(
        write_jsonl(dead)
    )


def main(workdir: str = "demo-out", n: int = 200_000) -> int:
    """Generate the sample, run the pipeline, print plan, report and a few results."""
    root = Path(workdir)
    root.mkdir(parents=True, exist_ok=True)
    src, out, dead = root / "clicks.jsonl", root / "scored.jsonl", root / "dead.jsonl"
    t0 = time.perf_counter()
    make_clicks(src, n, bad_every=50_000)
    print(f"generated {n:,} clicks in {src} ({os.path.getsize(src) / 1e6:.1f} MB, {time.perf_counter() - t0:.2f}s)")
    p = pipeline(src, out, dead)
    print(p.explain())
    report = p.run()
    print(report)
    dead_letters = msgspec.json.Decoder(DeadLetter).decode_lines(dead.read_bytes())
    for d in dead_letters[:3]:
        print(f"dead letter at {d.position}: {d.error}")
    print(f"results in {out}, dead letters in {dead}")
    return 0
