"""Code generation: consecutive synchronous steps become one function over a batch.

The generated function runs the steps *column by column*: each step makes one pass over the
whole batch before the next step starts, and a ``map``, ``filter`` or ``tap`` pass is a single
C-level iteration (``list.extend(map(f, events))``) with no Python bytecode per event. For
``map(f) >> filter(g)`` the function is, in essence::

    def fused(batch, dead):
        v1 = []; t0 = []; m = map(f0, batch)
        while True:                                  # map(f)
            try:
                v1.extend(m)
            except Exception as exc:                 # f raised on batch[len(v1) + len(t0)]
                i = len(v1) + len(t0); t0.append(i)
                dead(exc, 0, batch, i, ())
                continue                             # resume the same map after that event
            ...                                      # (a StopIteration from f, see below)
            break
        v2 = []; it = iter(v1); c = filter(f1, chain(it, _end()))
        while True:                                  # filter(g)
            try:
                v2.extend(c)
            except _BatchEnd:                        # _end() raises it after the last event
                break
            except Exception as exc:                 # g raised on v1[i]
                dead(exc, 1, v1, len(v1) - it.__length_hint__() - 1, (t0,))
                continue
            ...                                      # (a StopIteration from g)
        return v2, (len(v1), len(v2))

Why columns: it runs as fast as a list comprehension, and it is what the unfused plan does (there
each step is a stage that takes the whole batch), so user functions see events, and side effects
happen, in the same order in both modes. Invariants:
- every user function is called once per event it receives, never twice;
- a failing event is reported as ``dead(exc, step, inputs, index, trace)`` with the exact step and
  that step's input ``inputs[index]``; ``trace`` holds what the earlier passes recorded, from
  which ``FusedGroup.source_event`` finds the batch event it came from (for its position);
- ``list.extend`` keeps what it appended before an exception, and ``map``/``filter``/``compress``
  resume after the event that raised, so the rest of the batch is processed exactly once;
- ``list.extend`` takes a ``StopIteration`` raised by a user function for the end of the
  iteration and drops it: a pass detects that (fewer results than inputs; no ``_BatchEnd``) and
  dead-letters the event with a new ``StopIteration()`` (the original's arguments are lost).

The source is registered with ``linecache`` so a traceback through it shows the pass's line, which
names the step; the user's own frame follows it.
"""

from __future__ import annotations

import bisect
import inspect
import itertools
import linecache
import types
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._graph import SYNC_KINDS, Step

__all__ = ["FusedGroup", "compile_group"]

#: ``dead(exc, step, event, index, trace)``: ``event`` failed in ``step``; it came from item ``index``
#: of the input list of that step's pass (see ``FusedGroup.source_event``).
DeadFn = Callable[[BaseException, int, Any, int, tuple[Any, ...]], None]
#: ``fused(batch, dead) -> (out, lengths)``; ``lengths[k]`` is the number of events step k emitted.
FusedFn = Callable[[list[Any], DeadFn], tuple[list[Any], tuple[int, ...]]]

_serial = itertools.count(1)
#: Compiled groups by their steps (steps are immutable), so rerunning a pipeline reuses its code.
_cache: dict[tuple[Step, ...], FusedGroup] = {}
_CACHE_SIZE = 256


class _BatchEnd(Exception):  # noqa: N818 - a signal, not an error
    """Raised by ``_end(layer)`` once the iterator before it is used up.

    ``list.extend`` takes a ``StopIteration`` for the end of its input; this tells a real end
    (layer 0: the batch is used up) from a user function that raised ``StopIteration`` (layer
    k + 1: step k of a pipelined tail stopped early).
    """

    def __init__(self, layer: int) -> None:
        super().__init__(layer)
        self.layer = layer


def _end(layer: int = 0) -> Iterator[Any]:
    raise _BatchEnd(layer)
    yield  # a generator: raises on the first next(), i.e. once what comes before it is used up


def _without(events: list[Any], failed: list[int]) -> list[Any]:
    """``events`` without the indices in ``failed``."""
    drop = set(failed)
    return [e for i, e in enumerate(events) if i not in drop]


@dataclass(frozen=True, slots=True)
class FusedGroup:
    """A compiled run of synchronous steps.

    ``masked[k]`` says how filter k records its trace: its predicate results, aligned with its
    input, when a ``map``/``flat_map`` comes before it in the group and a step after it (its
    output events then need not be events of the batch); otherwise its output list, whose events
    are events of the batch themselves.
    """

    steps: tuple[Step, ...]
    fn: FusedFn
    masked: tuple[bool, ...]
    #: the first step of the pass each step runs in (a pipelined tail is one pass of many steps)
    entry: tuple[int, ...]
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

    def source_event(
        self, step: int, index: int, trace: tuple[Any, ...], batch: list[Any], memo: dict[int, list[int]]
    ) -> tuple[int | None, Any]:
        """The event of ``batch`` that became item ``index`` of the input of ``step``'s pass.

        Returns its index in ``batch`` and the event, or None and the event when only the event
        is known (after a filter whose output events are the batch's own, see ``masked``).
        ``trace[k]`` is what pass k recorded: failed input indices, ascending (map, tap); output
        lengths after each input (flat_map); predicate results with failures set to False, or the
        output list (filter). Only called for dead letters. ``memo`` (one per batch) keeps each
        filter's kept indices, so many dead letters in a batch cost one pass, not one each.
        """
        for k in range(self.entry[step] - 1, -1, -1):
            kind, info = self.steps[k].kind, trace[k]
            if kind == "filter":
                if not self.masked[k]:
                    # No map before it: its output events are the batch's own events.
                    return None, info[index]
                kept = memo.get(id(info))
                if kept is None:
                    kept = memo[id(info)] = list(itertools.compress(range(len(info)), info))
                index = kept[index]
            elif kind == "flat_map":
                index = bisect.bisect_right(info, index)
            elif info:  # map, tap: the smallest i with i - (failures <= i) == index
                lo, hi = index, index + len(info)
                while lo < hi:
                    mid = (lo + hi) // 2
                    if mid - bisect.bisect_right(info, mid) >= index:
                        hi = mid
                    else:
                        lo = mid + 1
                index = lo
        return index, batch[index]

def _takes_one_argument(fn: Callable[..., Any]) -> bool:
    try:
        inspect.signature(fn).bind(None)
    except (TypeError, ValueError):
        return False
    return True


def _tail_start(steps: tuple[Step, ...]) -> int:
    """Where the pipelined tail of ``steps`` starts (``len(steps)``: no tail).

    A tail is at least two ``map``/``filter`` steps at the end of the group whose functions are
    plain Python functions taking one argument, with distinct code objects, and at most one of
    them a filter. Then every failure is attributed exactly: an exception by the code object of
    the first frame below the loop (the step's own), a frameless one can only be the filter's
    result failing to convert to bool, a StopIteration by the ``_end(layer)`` after its step.
    """
    start, filters, codes = len(steps), 0, set()
    for k in range(len(steps) - 1, -1, -1):
        step, fn = steps[k], steps[k].fn
        if step.kind not in ("map", "filter") or type(fn) is not types.FunctionType or not _takes_one_argument(fn):
            break
        if fn.__code__ in codes or (step.kind == "filter" and filters):
            break
        filters += step.kind == "filter"
        codes.add(fn.__code__)
        start = k
    return start if len(steps) - start >= 2 else len(steps)


class _Tail:
    """The last steps of a group run *pipelined*: ``filter(g, map(f, batch))``, one C iteration.

    Each event goes through all the steps before the next one starts, so an event that a filter
    drops is freed at once (a column-by-column pass would keep every mapped event of the batch
    alive until the filter runs: slower for events that are objects, such as Structs). Only the
    latest output of each map that another step reads is kept (``deque(maxlen=1)``), so the input
    of a failing step is known; ``_end(layer)`` after each step tells which step's function raised
    a StopIteration (``list.extend`` would have taken it for the end of the batch).
    """

    def __init__(self, steps: tuple[Step, ...], base: int) -> None:
        self.base = base
        self.n = n = len(steps)
        self.kinds = [s.kind for s in steps]
        self.fns = [s.fn for s in steps]
        self.codes = {s.fn.__code__: k for k, s in enumerate(steps)}
        self.filter_at = next((k for k, s in enumerate(steps) if s.kind == "filter"), None)
        #: maps whose output a later step reads: their latest output is recorded
        self.recorded = [s.kind == "map" and k < n - 1 for k, s in enumerate(steps)]
        #: where step k's input is: the record of the nearest map before it, or the batch (None)
        self.input_of: list[int | None] = []
        last = None
        for k in range(n):
            self.input_of.append(last)
            if self.recorded[k]:
                last = k

    def _stack(self, start: int, below: Iterator[Any], layers: list[Any], records: list[Any]) -> Iterator[Any]:
        """Steps ``start``.. stacked over ``below``; returns the top iterator."""
        inner = below
        for k in range(start, self.n):
            layer = (map if self.kinds[k] == "map" else filter)(self.fns[k], inner)
            layers[k] = layer
            inner = self._above(k, layer, records)
        return inner

    def _above(self, k: int, layer: Iterator[Any], records: list[Any]) -> Iterator[Any]:
        if k == self.n - 1:
            return layer
        above: Iterator[Any] = itertools.chain(layer, _end(k + 1))
        if self.recorded[k]:
            # deque.append returns None, so filterfalse passes every event on after recording it.
            above = itertools.filterfalse(records[k].append, above)
        return above

    def _step_of(self, exc: BaseException) -> int:
        tb = exc.__traceback__
        below = tb.tb_next if tb is not None else None  # tb is this frame; below, the step's
        if below is not None:
            k = self.codes.get(below.tb_frame.f_code)
            if k is not None:
                return k
        # No frame of a step function: the filter's result could not be converted to bool.
        return self.filter_at if self.filter_at is not None else 0

    def __call__(self, src: list[Any], dead: DeadFn, trace: tuple[Any, ...]) -> tuple[list[Any], tuple[int, ...]]:
        n = self.n
        records = [deque(maxlen=1) if r else None for r in self.recorded]
        layers: list[Any] = [None] * n
        it = iter(src)
        top = self._stack(0, itertools.chain(it, _end(0)), layers, records)
        out: list[Any] = []
        deaths = [0] * n
        while True:
            exc: BaseException
            try:
                out.extend(top)
            except _BatchEnd as end:
                if end.layer == 0:
                    break
                k = end.layer - 1
                exc = StopIteration()
                # The chain after step k is used up: restack the steps above it.
                top = self._stack(k + 1, self._above(k, layers[k], records), layers, records)
            except Exception as e:
                k, exc = self._step_of(e), e
            else:
                k, exc = n - 1, StopIteration()  # the top step's function raised StopIteration
            i = len(src) - it.__length_hint__() - 1
            m = self.input_of[k]
            deaths[k] += 1
            dead(exc, self.base + k, src[i] if m is None else records[m][0], i, trace)
        lengths: list[int] = []
        count = len(src)
        for k in range(n):
            if k == self.filter_at:
                # Only maps follow the filter: each passes on what it got, less what failed in it.
                count = len(out) + sum(deaths[k + 1 :])
            else:
                count -= deaths[k]
            lengths.append(count)
        return out, tuple(lengths)


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.line_to_step: dict[int, int] = {}

    def __call__(self, indent: int, text: str, step: int | None = None) -> None:
        self.lines.append("    " * indent + text)
        if step is not None:
            self.line_to_step[len(self.lines)] = step


def _map_pass(w: _Writer, k: int, label: str, results: str, fails: str | None, src: str, trace: str) -> None:
    """``results.extend(map(fk, src))``, resuming after each failing event.

    ``fails`` names the list of failed indices; None records a failure in ``results`` itself as
    False (a masked filter's predicate results stay aligned with its input).
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
    w(3, f"dead(exc, {k}, {src}[i], i, {trace})")
    w(3, "continue")
    w(2, f"if {done} < len({src}):  # the function raised StopIteration, taken for the end")
    w(3, f"i = {done}")
    w(3, record)
    w(3, f"dead(StopIteration(), {k}, {src}[i], i, {trace})")
    w(3, "continue")
    w(2, "break")


def _iter_pass(w: _Writer, k: int, label: str, dst: str, src: str, trace: str, make: str, mask: str | None) -> None:
    """``dst.extend(make)`` where ``make`` iterates ``it = iter(src)`` and may raise per event."""
    w(1, f"it = iter({src})")
    w(1, f"c = {make}")
    w(1, "while True:")
    w(2, "try:")
    w(3, f"{dst}.extend(c)  # {label}", k)
    if mask is None:
        w(2, "except _BatchEnd:")
        w(3, "break")
    w(2, "except Exception as exc:")
    w(3, f"i = len({src}) - it.__length_hint__() - 1")
    if mask is not None:
        w(3, f"{mask}[i] = False")
    w(3, f"dead(exc, {k}, {src}[i], i, {trace})")
    w(3, "continue")
    if mask is None:
        w(2, f"i = len({src}) - it.__length_hint__() - 1  # no _BatchEnd: the predicate raised StopIteration")
        w(2, f"dead(StopIteration(), {k}, {src}[i], i, {trace})")
    else:
        w(2, "break")


def _generate(steps: tuple[Step, ...], masked: tuple[bool, ...], tail: int) -> _Writer:
    w = _Writer()
    w(0, "def fused(batch, dead):")
    w(1, "v0 = batch")
    for k, step in enumerate(steps[:tail]):
        src, dst, info = f"v{k}", f"v{k + 1}", f"t{k}"
        trace = "(" + "".join(f"t{j}, " for j in range(k)) + ")"
        w(1, f"# step {k}: {step.label}")
        if step.kind == "map":
            w(1, f"{dst} = []")
            w(1, f"{info} = []")
            _map_pass(w, k, step.label, dst, info, src, trace)
        elif step.kind == "tap":
            w(1, "r = []")
            w(1, f"{info} = []")
            _map_pass(w, k, step.label, "r", info, src, trace)
            w(1, "del r")
            w(1, f"{dst} = _without({src}, {info}) if {info} else {src}")
        elif step.kind == "filter" and masked[k]:
            # The predicate's results are kept (to find source events); compress() then converts
            # each to bool once and keeps the events whose result is true.
            w(1, f"{info} = []")
            _map_pass(w, k, step.label, info, None, src, trace)
            w(1, f"{dst} = []")
            _iter_pass(w, k, step.label, dst, src, trace, f"compress(it, {info})", info)
        elif step.kind == "filter":
            w(1, f"{dst} = []")
            _iter_pass(w, k, step.label, dst, src, trace, f"filter(f{k}, chain(it, _end()))", None)
            w(1, f"{info} = {dst}")
        else:  # flat_map: a Python loop, one extend() per input event
            w(1, f"{dst} = []")
            w(1, f"ext = {dst}.extend")
            w(1, f"{info} = []")
            w(1, f"ends = {info}.append")
            w(1, f"for i, e in enumerate({src}):")
            w(2, "try:")
            w(3, f"ext(f{k}(e))  # {step.label}", k)
            w(2, "except Exception as exc:")
            w(3, f"dead(exc, {k}, {src}[i], i, {trace})")
            if k < len(steps) - 1:
                # Output index -> input index, for dead letters further down the group.
                w(2, f"ends(len({dst}))")
    lengths = "".join(f"len(v{k + 1}), " for k in range(tail))
    if tail < len(steps):
        trace = "(" + "".join(f"t{j}, " for j in range(tail)) + ")"
        label = " >> ".join(s.label for s in steps[tail:])
        w(1, f"# steps {tail}-{len(steps) - 1}, pipelined: {label}")
        w(1, f"out, lengths = _tail(v{tail}, dead, {trace})  # {label}", tail)
        w(1, f"return out, ({lengths}) + lengths")
    else:
        w(1, f"return v{len(steps)}, ({lengths})")
    return w


def _masks(steps: tuple[Step, ...]) -> tuple[bool, ...]:
    out: list[bool] = []
    seen_new_events = False
    for k, s in enumerate(steps):
        out.append(s.kind == "filter" and seen_new_events and k < len(steps) - 1)
        seen_new_events = seen_new_events or s.kind in ("map", "flat_map")
    return tuple(out)


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
    masked = _masks(steps)
    tail = _tail_start(steps)
    w = _generate(steps, masked, tail)
    source = "\n".join(w.lines) + "\n"
    title = " >> ".join(s.label for s in steps)
    filename = f"<flowpump fused #{next(_serial)}: {title}>"
    namespace: dict[str, Any] = {f"f{k}": s.fn for k, s in enumerate(steps)}
    namespace.update(
        chain=itertools.chain, compress=itertools.compress, _end=_end, _BatchEnd=_BatchEnd, _without=_without
    )
    if tail < len(steps):
        namespace["_tail"] = _Tail(steps[tail:], tail)
    exec(compile(source, filename, "exec"), namespace)
    entry = tuple(range(tail)) + (tail,) * (len(steps) - tail)
    group = FusedGroup(steps, namespace["fused"], masked, entry, w.line_to_step, filename, source)
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
