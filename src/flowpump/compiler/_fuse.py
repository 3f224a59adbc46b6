"""Code generation: consecutive synchronous steps become one loop over a batch.

For ``map(f) >> filter(g) >> flat_map(h) >> map(k)`` the generated function is, in essence::

    def fused(batch, dead):
        out = []; append = out.append; c1 = 0; c2 = 0
        for x in batch:
            e0 = x
            try:
                e0 = f0(e0)                 # map(f)
                if not f1(e0):              # filter(g)
                    c1 += 1; continue
                for e1 in f2(e0):           # flat_map(h)
                    c2 += 1
                    try:
                        e1 = f3(e1)         # map(k)
                        append(e1)
                    except Exception as exc:
                        dead(exc, e1, x)
            except Exception as exc:
                dead(exc, e0, x)
        return out, [0, c1, c2, 0]

No per-event generator, await or metrics lookup. Which step raised is read from the line number
of the generated frame in the traceback, so the happy path carries no bookkeeping. The source is
registered with ``linecache`` so tracebacks through it are readable.
"""

from __future__ import annotations

import itertools
import linecache
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .._graph import SYNC_KINDS, Step

__all__ = ["FusedGroup", "compile_group"]

DeadFn = Callable[[BaseException, Any, Any], None]
FusedFn = Callable[[list[Any], DeadFn], tuple[list[Any], list[int]]]

_serial = itertools.count(1)


@dataclass(frozen=True, slots=True)
class FusedGroup:
    """A compiled run of synchronous steps."""

    steps: tuple[Step, ...]
    fn: FusedFn
    #: generated line number -> index of the step whose call is on that line
    line_to_step: dict[int, int]
    filename: str

    def step_of(self, exc: BaseException) -> int:
        """The index of the step that raised ``exc`` inside the generated loop."""
        tb = exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == self.filename:
                return self.line_to_step.get(tb.tb_lineno, 0)
            tb = tb.tb_next
        return 0


def compile_group(steps: Sequence[Step]) -> FusedGroup:
    """Generate, compile and return the fused loop for ``steps`` (all synchronous)."""
    steps = tuple(steps)
    if not steps or any(s.kind not in SYNC_KINDS for s in steps):
        msg = f"only synchronous steps fuse, got {[s.kind for s in steps]}"
        raise ValueError(msg)
    lines: list[str] = []
    line_to_step: dict[int, int] = {}

    def emit(indent: int, text: str, step: int | None = None) -> None:
        lines.append("    " * indent + text)
        if step is not None:
            line_to_step[len(lines)] = step

    emit(0, "def fused(batch, dead):")
    emit(1, "out = []")
    emit(1, "append = out.append")
    counted = [k for k, s in enumerate(steps) if s.kind in ("filter", "flat_map")]
    for k in counted:
        emit(1, f"c{k} = 0")
    emit(1, "for x in batch:")
    emit(2, "e0 = x")
    emit(2, "try:")
    indent, level = 3, 0
    # Each flat_map opens a nested loop with its own try, so one bad derived event does not
    # take its siblings down; ``handlers`` closes them innermost first.
    handlers: list[tuple[int, int]] = [(2, 0)]
    for k, step in enumerate(steps):
        var = f"e{level}"
        if step.kind == "map":
            emit(indent, f"{var} = f{k}({var})", k)
        elif step.kind == "tap":
            emit(indent, f"f{k}({var})", k)
        elif step.kind == "filter":
            emit(indent, f"if not f{k}({var}):", k)
            emit(indent + 1, f"c{k} += 1")
            emit(indent + 1, "continue")
        else:  # flat_map
            level += 1
            emit(indent, f"for e{level} in f{k}({var}):", k)
            emit(indent + 1, f"c{k} += 1")
            emit(indent + 1, "try:")
            handlers.append((indent + 1, level))
            indent += 2
    emit(indent, f"append(e{level})")
    for h_indent, h_level in reversed(handlers):
        emit(h_indent, "except Exception as exc:")
        emit(h_indent + 1, f"dead(exc, e{h_level}, x)")
    counts = ", ".join(f"c{k}" if k in counted else "0" for k in range(len(steps)))
    emit(1, f"return out, [{counts}]")

    source = "\n".join(lines) + "\n"
    title = " >> ".join(s.label for s in steps)
    filename = f"<flowpump fused #{next(_serial)}: {title}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {f"f{k}": s.fn for k, s in enumerate(steps)}
    exec(compile(source, filename, "exec"), namespace)
    return FusedGroup(steps, namespace["fused"], line_to_step, filename)
