"""Code generation: consecutive synchronous steps become one loop over a batch.

For ``map(f) >> filter(g) >> flat_map(h) >> map(k)`` the generated function is, in essence::

    def fused(batch, dead, f0=f, f1=g, f2=h, f3=k):
        out = []
        deaths = [0, 0, 0, 0]
        c1 = 0
        it = iter(batch)
        for v0 in it:
            try:
                v1 = f0(v0)                       # map(f)
                if not f1(v1):                    # filter(g)
                    c1 += 1
                    continue
                for v2 in list(f2(v1)):           # flat_map(h)
                    try:
                        out.append(f3(v2))        # map(k)
                    except Exception as exc:
                        <fail(exc): which step, from the line; its input, v2>
            except Exception as exc:
                <fail(exc): step 0, 1 or 2, from the line; its input, v0 or v1>
        return out, lengths(len(batch), len(out), (c1,), deaths)

Each step is a call on a line of its own, so the line of the generated frame on the traceback
tells exactly which step raised, whatever the step is (a Python function, a builtin, a
predicate whose result has no truth value); its input is the variable that line read. The source
event's index is read from the batch iterator, so positions are exact even when equal objects
repeat in a batch. Invariants:
- every user function is called once per event it receives, never twice;
- a flat_map's items for one event are materialised (``list(h(v))``) before any is emitted: when
  ``h`` raises midway, none of that event's items go on and the event is dead-lettered once, so
  a dead letter means "none of this event's output was emitted" (replaying it duplicates nothing);
- the loop is the same shape as a list comprehension: per event only the calls, the stores of
  their results and ``out.append`` (a ``try`` costs nothing until something raises);
- a step's counts hold: in = out + filtered + dead; filters count what they drop and flat_maps
  what they emit, except the last such step, whose count follows from ``len(out)``.

The source is registered with ``linecache``, so a traceback through it shows the step's line,
which names the step's label; the user's own frame follows it.
"""

from __future__ import annotations

import itertools
import linecache
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._graph import SYNC_KINDS, Step

__all__ = ["FusedGroup", "compile_group"]

#: ``dead(exc, step, event, index)``: ``event``, the input of ``step``, failed there; it came from
#: ``batch[index]``.
DeadFn = Callable[[BaseException, int, Any, int], None]
#: ``fused(batch, dead) -> (out, lengths)``; ``lengths[k]`` is the number of events step k emitted.
FusedFn = Callable[[list[Any], DeadFn], tuple[list[Any], tuple[int, ...]]]

_serial = itertools.count(1)
#: Compiled groups by their steps (steps are immutable), so rerunning a pipeline reuses its code.
_cache: dict[tuple[Step, ...], FusedGroup] = {}
_CACHE_SIZE = 256


@dataclass(frozen=True, slots=True)
class FusedGroup:
    """A compiled run of synchronous steps."""

    steps: tuple[Step, ...]
    fn: FusedFn
    #: generated line number -> index of the step whose call is on that line
    line_to_step: dict[int, int]
    filename: str
    source: str = field(repr=False, default="")

    def step_of(self, exc: BaseException) -> int:
        """The index of the step that raised ``exc`` inside the generated loop (0 if unknown)."""
        tb = exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == self.filename:
                return self.line_to_step.get(tb.tb_lineno, 0)
            tb = tb.tb_next
        return 0


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.line_to_step: dict[int, int] = {}

    def __call__(self, indent: int, text: str, step: int | None = None) -> None:
        self.lines.append("    " * indent + text)
        if step is not None:
            self.line_to_step[len(self.lines)] = step


def _counted(steps: tuple[Step, ...]) -> list[int]:
    """Filters and flat_maps that count: all but the last, when only maps and taps follow it."""
    kinds = [k for k, s in enumerate(steps) if s.kind in ("filter", "flat_map")]
    return kinds[:-1]


def _lengths_fn(steps: tuple[Step, ...], counted: list[int]) -> Callable[..., tuple[int, ...]]:
    """``lengths(n, n_out, counters, deaths)``: how many events each step emitted."""
    kinds = [s.kind for s in steps]
    slot = {k: i for i, k in enumerate(counted)}
    last = len(steps)

    def lengths(n: int, n_out: int, counters: tuple[int, ...], deaths: list[int]) -> tuple[int, ...]:
        out = [0] * last
        cur = n
        for k in range(last):
            kind = kinds[k]
            if kind in ("map", "tap"):
                cur -= deaths[k]
            elif k in slot:
                cur = cur - deaths[k] - counters[slot[k]] if kind == "filter" else counters[slot[k]]
            else:
                # The last filter or flat_map: only maps and taps follow, each passing on what it
                # got less what failed in it.
                cur = n_out + sum(deaths[k + 1 :])
            out[k] = cur
        return tuple(out)

    return lengths


def _generate(steps: tuple[Step, ...]) -> _Writer:
    w = _Writer()
    args = "".join(f", f{k}=f{k}" for k in range(len(steps)))
    w(0, f"def fused(batch, dead{args}):")
    w(1, "out = []")
    w(1, f"deaths = [0] * {len(steps)}")
    counted = _counted(steps)
    for k in counted:
        w(1, f"c{k} = 0")
    w(1, "it = iter(batch)")
    w(1, "for v0 in it:")
    w(2, "try:")
    indent, var, n_vars = 3, "v0", 1
    # One try per loop level; each level's handler serves the steps on its lines.
    levels: list[tuple[int, list[tuple[int, str]]]] = [(2, [])]
    for k, step in enumerate(steps):
        label = f"  # {step.label}"
        levels[-1][1].append((k, var))
        last = k == len(steps) - 1
        if step.kind == "map":
            if last:
                w(indent, f"out.append(f{k}({var})){label}", k)
            else:
                new = f"v{n_vars}"
                n_vars += 1
                w(indent, f"{new} = f{k}({var}){label}", k)
                var = new
        elif step.kind == "tap":
            w(indent, f"f{k}({var}){label}", k)
        elif step.kind == "filter":
            w(indent, f"if not f{k}({var}):{label}", k)
            if k in counted:
                w(indent + 1, f"c{k} += 1")
            w(indent + 1, "continue")
        # A flat_map's items are materialised (list(...), on the step's line) before any is
        # emitted: if the function raises midway, none of them go on and only the dead letter
        # remains, so replaying dead letters duplicates nothing.
        elif last:
            w(indent, f"out.extend(list(f{k}({var}))){label}", k)
        else:  # flat_map: a loop of its own, with its own try (one bad item spares its siblings)
            new = f"v{n_vars}"
            n_vars += 1
            w(indent, f"for {new} in list(f{k}({var})):{label}", k)
            if k in counted:
                w(indent + 1, f"c{k} += 1")
            w(indent + 1, "try:")
            var = new
            indent += 2
            levels.append((indent - 1, []))
        if last and step.kind in ("filter", "tap"):
            w(indent, f"out.append({var})")
    for h_indent, served in reversed(levels):
        w(h_indent, "except Exception as exc:")
        if len(served) == 1:
            k, v = served[0]
            w(h_indent + 1, f"k, e = {k}, {v}")
        else:
            # The first traceback entry is this frame: its line is the step's.
            w(h_indent + 1, f"k = lines.get(exc.__traceback__.tb_lineno, {served[0][0]})")
            for i, (k, v) in enumerate(served[1:]):
                w(h_indent + 1, f"{'if' if i == 0 else 'elif'} k == {k}:")
                w(h_indent + 2, f"e = {v}")
            w(h_indent + 1, "else:")
            w(h_indent + 2, f"k, e = {served[0][0]}, {served[0][1]}")
        w(h_indent + 1, "deaths[k] += 1")
        w(h_indent + 1, "dead(exc, k, e, len(batch) - it.__length_hint__() - 1)")
    counters = "".join(f"c{k}, " for k in counted)
    w(1, f"return out, lengths(len(batch), len(out), ({counters}), deaths)")
    return w


def compile_group(steps: Sequence[Step]) -> FusedGroup:
    """Generate, compile and return the fused loop for ``steps`` (all synchronous)."""
    steps = tuple(steps)
    if not steps or any(s.kind not in SYNC_KINDS for s in steps):
        msg = f"only synchronous steps fuse, got {[s.kind for s in steps]}"
        raise ValueError(msg)
    cached = _cache.get(steps)
    if cached is not None:
        _register(cached)
        return cached
    w = _generate(steps)
    source = "\n".join(w.lines) + "\n"
    title = " >> ".join(s.label for s in steps)
    filename = f"<flowpump fused #{next(_serial)}: {title}>"
    namespace: dict[str, Any] = {f"f{k}": s.fn for k, s in enumerate(steps)}
    namespace["lines"] = w.line_to_step
    namespace["lengths"] = _lengths_fn(steps, _counted(steps))
    exec(compile(source, filename, "exec"), namespace)
    group = FusedGroup(steps, namespace["fused"], w.line_to_step, filename, source)
    if len(_cache) >= _CACHE_SIZE:
        old = _cache.pop(next(iter(_cache)))
        linecache.cache.pop(old.filename, None)
    _cache[steps] = group
    _register(group)
    return group


def _register(group: FusedGroup) -> None:
    # On every use: something may have cleared linecache since (linecache.clearcache()).
    if group.filename not in linecache.cache:
        src = group.source
        linecache.cache[group.filename] = (len(src), None, src.splitlines(True), group.filename)
