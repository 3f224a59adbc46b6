"""Code generation: consecutive synchronous steps become one function over a batch.

The generated function runs the steps *column by column*: each step makes one pass over the
whole batch before the next step starts, and a ``map``, ``filter`` or ``tap`` pass is a single
C-level iteration (``list.extend(map(f, events))``) with no Python bytecode per event. For
``map(f) >> filter(g)`` the function is, in essence::

    def fused(batch, dead):
        v1 = []; t0 = []; m = map(f0, batch)
        while True:                                   # map(f)
            try:
                v1.extend(m)
            except Exception as exc:                  # f raised on batch[len(v1) + len(t0)]
                i = len(v1) + len(t0); t0.append(i); dead(exc, 0, batch, i, ())
                continue                              # resume the same map after that event
            ...                                       # (a StopIteration from f, see below)
            break
        t1 = []; m = map(f1, v1)                      # filter(g): the predicate's results...
        ...                                           # ...collected like a map, then
        v2 = list(compress(v1, t1))                   # ...the events whose result is true
        return v2, (len(v1), len(v2))

Why columns: it is as fast as a list comprehension, and it is exactly what the unfused plan does
(there each step is a stage that takes the whole batch), so side effects of user functions happen
in the same order in both modes. Invariants:
- every user function is called once per event it receives, never twice;
- a failing event is reported to ``dead(exc, step, inputs, index, trace)`` with the exact step
  and that step's input (``inputs[index]``); ``trace`` holds what the earlier passes recorded
  (failed indices, filter results, flat_map ends) so the runtime can find the source event;
- ``list.extend`` keeps what was appended before an exception, and ``map``/``compress`` resume
  after the event that raised, so the rest of the batch is processed exactly once;
- ``list.extend`` takes a ``StopIteration`` raised by a user function for the end of the
  iteration; the pass then has fewer results than inputs, which is how it is detected.

The source is registered with ``linecache`` so a traceback through it shows the step's line, which
carries the step's label; the user's own frame follows it.
"""

from __future__ import annotations

import bisect
import itertools
import linecache
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._graph import SYNC_KINDS, Step

__all__ = ["FusedGroup", "compile_group", "source_index"]

#: ``dead(exc, step, inputs, index, trace)``
DeadFn = Callable[[BaseException, int, list[Any], int, tuple[Any, ...]], None]
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
    #: generated line number -> index of the step whose pass is on that line
    line_to_step: dict[int, int]
    filename: str
    source: str = field(repr=False, default="")

    def step_of(self, exc: BaseException) -> int:
        """The index of the step whose pass was running when ``exc`` was raised (0 if unknown)."""
        tb = exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == self.filename:
                return self.line_to_step.get(tb.tb_lineno, 0)
            tb = tb.tb_next
        return 0


def source_index(steps: Sequence[Step], step: int, index: int, trace: tuple[Any, ...]) -> int:
    """The index in the batch of the event that became input ``index`` of ``steps[step]``.

    ``trace[k]`` is what pass k recorded: the failed input indices (map, tap), the predicate
    results with failures set to False (filter), or the output length after each input (flat_map).
    Only called for dead letters, so it may take a pass over the batch.
    """
    for k in range(step - 1, -1, -1):
        kind, info = steps[k].kind, trace[k]
        if kind == "filter":
            kept = list(itertools.compress(range(len(info)), info))
            index = kept[index]
        elif kind == "flat_map":
            index = bisect.bisect_right(info, index)
        else:  # map, tap: skip the inputs that failed (ascending)
            for failed in info:
                if failed > index:
                    break
                index += 1
    return index


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.line_to_step: dict[int, int] = {}

    def __call__(self, indent: int, text: str, step: int | None = None) -> None:
        self.lines.append("    " * indent + text)
        if step is not None:
            self.line_to_step[len(self.lines)] = step


def _collect(w: _Writer, k: int, label: str, results: str, fails: str | None, src: str, trace: str) -> None:
    """A pass ``results.extend(map(fk, src))`` that resumes after each failing event.

    ``fails`` names the list of failed indices; None means a failure is recorded in ``results``
    itself as ``False`` (the filter's predicate results stay aligned with its inputs).
    """
    done = f"len({results}) + len({fails})" if fails is not None else f"len({results})"
    record = f"{fails}.append(i)" if fails is not None else f"{results}.append(False)"
    w(1, f"m = map(f{k}, {src})")
    w(1, "while True:")
    w(2, "try:")
    w(3, f"{results}.extend(m)  # {label}", k)
    w(2, "except Exception as exc:")
    w(3, f"i = {done}")
    w(3, record)
    w(3, f"dead(exc, {k}, {src}, i, {trace})")
    w(3, "continue")
    # extend() ends quietly when the user function raises StopIteration: fewer results than inputs.
    w(2, f"if {done} < len({src}):")
    w(3, f"i = {done}")
    w(3, record)
    w(3, f"dead(StopIteration(), {k}, {src}, i, {trace})")
    w(3, "continue")
    w(2, "break")


def _generate(steps: tuple[Step, ...]) -> _Writer:
    w = _Writer()
    w(0, "def fused(batch, dead):")
    w(1, "v0 = batch")
    last = len(steps) - 1
    for k, step in enumerate(steps):
        src, dst, info = f"v{k}", f"v{k + 1}", f"t{k}"
        trace = "(" + "".join(f"t{j}, " for j in range(k)) + ")"
        w(1, f"# step {k}: {step.label}")
        if step.kind == "map":
            w(1, f"{dst} = []")
            w(1, f"{info} = []")
            _collect(w, k, step.label, dst, info, src, trace)
        elif step.kind == "tap":
            w(1, "r = []")
            w(1, f"{info} = []")
            _collect(w, k, step.label, "r", info, src, trace)
            w(1, "del r")
            w(1, f"{dst} = _without({src}, {info}) if {info} else {src}")
        elif step.kind == "filter":
            w(1, f"{info} = []")
            _collect(w, k, step.label, info, None, src, trace)
            w(1, f"{dst} = []")
            w(1, f"it = iter({src})")
            w(1, f"c = compress(it, {info})")
            w(1, "while True:")
            w(2, "try:")
            w(3, f"{dst}.extend(c)  # {step.label}", k)
            w(3, "break")
            # The predicate's result could not be converted to bool: a failure of this step.
            w(2, "except Exception as exc:")
            w(3, f"i = len({src}) - it.__length_hint__() - 1")
            w(3, f"{info}[i] = False")
            w(3, f"dead(exc, {k}, {src}, i, {trace})")
        else:  # flat_map: a Python loop, one extend() per input event
            w(1, f"{dst} = []")
            w(1, f"ext = {dst}.extend")
            w(1, f"{info} = []")
            if k < last:
                w(1, f"ends = {info}.append")
            w(1, f"for i, e in enumerate({src}):")
            w(2, "try:")
            w(3, f"ext(f{k}(e))  # {step.label}", k)
            w(2, "except Exception as exc:")
            w(3, f"dead(exc, {k}, {src}, i, {trace})")
            if k < last:
                # Output index -> input index, for dead letters further down the group.
                w(2, f"ends(len({dst}))")
    lengths = "".join(f"len(v{k + 1}), " for k in range(len(steps)))
    w(1, f"return v{len(steps)}, ({lengths})")
    return w


def _without(events: list[Any], failed: list[int]) -> list[Any]:
    """``events`` without the indices in ``failed``."""
    drop = set(failed)
    return [e for i, e in enumerate(events) if i not in drop]


def compile_group(steps: Sequence[Step]) -> FusedGroup:
    """Generate, compile and return the fused function for ``steps`` (all synchronous)."""
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
    namespace.update(compress=itertools.compress, _without=_without)
    exec(compile(source, filename, "exec"), namespace)
    group = FusedGroup(steps, namespace["fused"], w.line_to_step, filename, source)
    if len(_cache) >= _CACHE_SIZE:
        old = _cache.pop(next(iter(_cache)))
        linecache.cache.pop(old.filename, None)
    _cache[steps] = group
    _register(group)
    return group


def _register(group: FusedGroup) -> None:
    # Again on every use: something may have cleared linecache since (linecache.clearcache()).
    if group.filename not in linecache.cache:
        src = group.source
        linecache.cache[group.filename] = (len(src), None, src.splitlines(True), group.filename)
