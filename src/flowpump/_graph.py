"""Graph nodes and the ``>>`` algebra.

Nodes are frozen and hold no run state, so a fragment can be reused in many pipelines.

Variance: a ``Flow`` is covariant in what it yields (a ``Flow[Bool]`` is a ``Flow[int]``), a
``Sink`` contravariant in what it accepts (a ``Sink[object]`` takes anything), a ``Processor``
contravariant in its input and covariant in its output, like a function.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeGuard, TypeVar, overload

from ._connector import SinkSpec, SourceSpec
from ._errors import DeadLetter, PipelineDefinitionError
from ._typecheck import check_edge

if TYPE_CHECKING:
    from .runtime._report import RunReport
    from .runtime._run import RunHandle

__all__ = ["Flow", "Pipeline", "Processor", "Sink", "Source", "Step", "merge", "tee"]

T = TypeVar("T")
U = TypeVar("U")
T_co = TypeVar("T_co", covariant=True)  # a Flow yields T: covariant
T_contra = TypeVar("T_contra", contravariant=True)  # a Sink accepts T: contravariant
I_contra = TypeVar("I_contra", contravariant=True)
O_co = TypeVar("O_co", covariant=True)

StepKind = Literal["map", "filter", "flat_map", "tap", "map_async", "batch"]
#: Kinds the compiler may fuse into one synchronous loop.
SYNC_KINDS: frozenset[str] = frozenset({"map", "filter", "flat_map", "tap"})


@dataclass(frozen=True, eq=False, slots=True)
class Step:
    """One operator: what it does (``kind``, ``fn``), its label and its declared types."""

    kind: StepKind
    fn: Callable[..., Any]
    label: str
    in_type: Any = None
    out_type: Any = None  # None: same as input (filter, tap) or unknown
    options: dict[str, Any] = field(default_factory=dict)


def _chain_types(upstream_label: str, produced: Any, steps: tuple[Step, ...]) -> Any:
    """Check each edge along ``steps`` and return the type the last one produces."""
    for step in steps:
        check_edge(upstream_label, produced, step.label, step.in_type, downstream_fn=step.fn)
        if step.out_type is not None:
            produced = step.out_type
        elif step.kind not in ("filter", "tap"):
            produced = None
        upstream_label = step.label
    return produced


def _check_sink_edge(upstream_label: str, produced: Any, sink: Sink[Any]) -> None:
    """Check the edge into ``sink``: its first step, else its connector, else each tee branch's."""
    if sink.steps:
        _chain_types(upstream_label, produced, sink.steps[:1])
    elif isinstance(sink.terminal, tuple):
        for branch in sink.terminal:
            _check_sink_edge(upstream_label, produced, branch)
    else:
        check_edge(upstream_label, produced, sink.label, sink.in_type)


def _steps_label(steps: tuple[Step, ...], default: str) -> str:
    return steps[-1].label if steps else default


@dataclass(frozen=True, eq=False)
class Processor(Generic[I_contra, O_co]):
    """A reusable chain of operators from ``I`` to ``O``; build one with ``fp.map`` & co.

    >>> import flowpump as fp
    >>> double_then_positive = fp.map(lambda x: x * 2) >> fp.filter(lambda x: x > 0)
    >>> fp.from_iterable([-1, 2]).pipe(double_then_positive).take(5)
    [4]
    """

    steps: tuple[Step, ...]

    @property
    def label(self) -> str:
        """The labels of the steps, joined by ``>>``."""
        return " >> ".join(s.label for s in self.steps)

    @property
    def in_type(self) -> Any:
        """The declared input type of the first step, or None when unknown."""
        return self.steps[0].in_type if self.steps else None

    @property
    def out_type(self) -> Any:
        """The declared output type, or None when unknown."""
        return _chain_types("input", self.in_type, self.steps) if self.steps else None

    @overload
    def __rshift__(self, other: Processor[O_co, U]) -> Processor[I_contra, U]: ...
    @overload
    def __rshift__(self, other: Sink[O_co]) -> Sink[I_contra]: ...
    def __rshift__(self, other: Processor[Any, Any] | Sink[Any]) -> Processor[Any, Any] | Sink[Any]:
        if isinstance(other, Processor):
            _chain_types(self.steps[-1].label, self.out_type, other.steps[:1])
            return Processor(self.steps + other.steps)
        if isinstance(other, Sink):
            _check_sink_edge(self.steps[-1].label, self.out_type, other)
            return Sink(other.terminal, self.steps + other.steps)
        return NotImplemented

    def __repr__(self) -> str:
        return f"<Processor {self.label}>"

    def _repr_svg_(self) -> str:
        from .notebook import to_svg

        return to_svg(self)


@dataclass(frozen=True, eq=False)
class Sink(Generic[T_contra]):
    """Where events end: a connector, optionally behind operators, or a ``tee`` of sinks."""

    terminal: SinkSpec | tuple[Sink[Any], ...]
    steps: tuple[Step, ...] = ()

    @property
    def label(self) -> str:
        """The sink's label, such as ``write_jsonl(out.jsonl)`` or ``tee(...)``."""
        if isinstance(self.terminal, tuple):
            return "tee(" + ", ".join(s.label for s in self.terminal) + ")"
        return self.terminal.label

    @property
    def in_type(self) -> Any:
        """The type of event the sink accepts, or None when unknown."""
        if self.steps:
            return self.steps[0].in_type
        return None if isinstance(self.terminal, tuple) else self.terminal.in_type

    def __repr__(self) -> str:
        return f"<Sink {self.label}>"

    def _repr_svg_(self) -> str:
        from .notebook import to_svg

        return to_svg(self)


def _as_sink(obj: object, where: str) -> Sink[Any]:
    if isinstance(obj, Sink):
        return obj
    msg = f"{where} expects a sink such as fp.collect() or fp.write_jsonl(path), got {obj!r}"
    raise PipelineDefinitionError(msg)


def _terminals(sink: Sink[Any]) -> list[SinkSpec]:
    """The connectors at the ends of ``sink`` (several for a tee)."""
    if isinstance(sink.terminal, tuple):
        return [spec for branch in sink.terminal for spec in _terminals(branch)]
    return [sink.terminal]


def _check_no_reuse(sinks: list[Sink[Any]], where: str) -> None:
    """Each run opens a sink once per place it appears; a second place would clobber the first
    (a collect() would keep only one branch's events, a file would be truncated twice)."""
    seen: set[int] = set()
    for spec in (spec for s in sinks for spec in _terminals(s)):
        if id(spec) in seen:
            msg = (
                f"{where}: the sink '{spec.label}' is used twice in one pipeline; give each place "
                f"its own sink (e.g. two fp.collect()), or put the operators before a single sink"
            )
            raise PipelineDefinitionError(msg)
        seen.add(id(spec))


@dataclass(frozen=True, eq=False)
class Flow(Generic[T_co]):
    """A stream of events of type ``T``: a source followed by zero or more operators.

    >>> import flowpump as fp
    >>> fp.from_iterable(range(5)).map(lambda x: x * x).filter(lambda x: x % 2 == 0).take(10)
    [0, 4, 16]
    """

    origin: SourceSpec | tuple[Flow[Any], ...]  # a tuple is a merge of flows
    steps: tuple[Step, ...] = ()

    @property
    def label(self) -> str:
        """The label of the last stage of this flow."""
        if self.steps:
            return self.steps[-1].label
        if isinstance(self.origin, tuple):
            return "merge(" + ", ".join(f.label for f in self.origin) + ")"
        return self.origin.label

    @property
    def out_type(self) -> Any:
        """The type of the events this flow yields, when it is known before running."""
        origin = self.origin
        if isinstance(origin, tuple):
            produced = _common_type([f.out_type for f in origin])
            start = "merge"
        else:
            produced, start = origin.out_type, origin.label
        return _chain_types(start, produced, self.steps)

    # -- composition ------------------------------------------------------------------------
    @overload
    def __rshift__(self, other: Processor[T_co, U]) -> Flow[U]: ...
    @overload
    def __rshift__(self, other: Sink[T_co]) -> Pipeline: ...
    def __rshift__(self, other: Processor[Any, Any] | Sink[Any]) -> Flow[Any] | Pipeline:
        if isinstance(other, Processor):
            return self._extend(other.steps)
        if isinstance(other, Sink):
            return self.to(other)
        return NotImplemented

    def _extend(self, steps: tuple[Step, ...]) -> Flow[Any]:
        _chain_types(self.label, self.out_type, steps[:1])
        return Flow(self.origin, self.steps + steps)

    def pipe(self, processor: Processor[T_co, U]) -> Flow[U]:
        """Apply a processor fragment: ``flow.pipe(p)`` is ``flow >> p``."""
        return self._extend(processor.steps)

    def map(self, f: Callable[[T_co], U]) -> Flow[U]:
        """``flow >> fp.map(f)``."""
        from ._ops import map as map_

        return self._extend(map_(f).steps)

    @overload
    def filter(self, pred: Callable[[T_co], TypeGuard[U]]) -> Flow[U]: ...
    @overload
    def filter(self, pred: Callable[[T_co], object]) -> Flow[T_co]: ...
    def filter(self, pred: Callable[[Any], Any]) -> Flow[Any]:
        """``flow >> fp.filter(pred)``."""
        from ._ops import filter as filter_

        return self._extend(filter_(pred).steps)

    def flat_map(self, f: Callable[[T_co], Iterable[U]]) -> Flow[U]:
        """``flow >> fp.flat_map(f)``."""
        from ._ops import flat_map

        return self._extend(flat_map(f).steps)

    def map_async(self, f: Callable[[T_co], Awaitable[U]], *, concurrency: int = 16, ordered: bool = True) -> Flow[U]:
        """``flow >> fp.map_async(f, concurrency=..., ordered=...)``."""
        from ._ops import map_async

        return self._extend(map_async(f, concurrency=concurrency, ordered=ordered).steps)

    def tap(self, f: Callable[[T_co], object]) -> Flow[T_co]:
        """``flow >> fp.tap(f)``."""
        from ._ops import tap

        return self._extend(tap(f).steps)

    def to(self, sink: Sink[T_co]) -> Pipeline:
        """``flow >> sink``: a runnable pipeline."""
        sink = _as_sink(sink, "Flow.to()")
        _check_sink_edge(self.label, self.out_type, sink)
        return Pipeline(self, sink)

    # -- running ----------------------------------------------------------------------------
    def take(self, n: int, *, fuse: bool = True) -> list[T_co]:
        """Run until ``n`` events arrived, stop the sources, and return those events."""
        from .connectors.memory import _TakeSpec

        spec: _TakeSpec[T_co] = _TakeSpec(n)
        self.to(Sink(spec)).run(fuse=fuse)
        return spec.items[:n]

    async def atake(self, n: int, *, fuse: bool = True) -> list[T_co]:
        """``take`` for async code: run in the current event loop until ``n`` events arrived.

        Use it inside a running loop (a notebook cell, ``async def``) when a source is an async
        iterable that belongs to that loop.

        >>> import asyncio, flowpump as fp
        >>> async def numbers():
        ...     for i in range(5):
        ...         yield i
        >>> asyncio.run(fp.from_iterable(numbers()).atake(3))
        [0, 1, 2]
        """
        from .connectors.memory import _TakeSpec

        spec: _TakeSpec[T_co] = _TakeSpec(n)
        await self.to(Sink(spec)).arun(fuse=fuse)
        return spec.items[:n]

    def preview(self, n: int = 10) -> Any:
        """The first ``n`` events, displayed as a table in a notebook."""
        from .notebook import Preview

        return Preview(self.take(n), self.label)

    def __repr__(self) -> str:
        return f"<Flow {self.label}>"

    def _repr_svg_(self) -> str:
        from .notebook import to_svg

        return to_svg(self)


class Source(Flow[T_co]):
    """A flow with no operators yet: what a connector such as ``fp.read_jsonl`` returns."""

    def __init__(self, spec: SourceSpec) -> None:
        super().__init__(spec, ())

    def __repr__(self) -> str:
        return f"<Source {self.label}>"


@dataclass(frozen=True, eq=False)
class Pipeline:
    """A flow connected to a sink: ready to ``run()``.

    >>> import flowpump as fp
    >>> out = fp.collect[int]()
    >>> report = (fp.from_iterable([1, 2, 3]) >> fp.map(lambda x: x + 1) >> out).run()
    >>> out.items, report.events_in, report.events_out
    ([2, 3, 4], 3, 3)
    """

    flow: Flow[Any]
    sink: Sink[Any]
    errors: Sink[DeadLetter] | None = None

    def on_error(self, sink: Sink[DeadLetter]) -> Pipeline:
        """Send dead letters (bad input, failing user functions) to ``sink``."""
        errors = _as_sink(sink, "Pipeline.on_error()")
        _check_no_reuse([self.sink, errors], "Pipeline.on_error()")
        return Pipeline(self.flow, self.sink, errors)

    def run(self, *, fuse: bool = True, progress: bool | None = None) -> RunReport:
        """Run to completion and return the report; works inside a notebook's running loop.

        ``progress``: live counts in a notebook, a progress bar on a terminal's stderr (None:
        automatic, shown once the run lasts a second; True: always; False: never).
        """
        from .runtime._run import run_blocking

        return run_blocking(self, fuse=fuse, progress=progress)

    async def arun(self, *, fuse: bool = True, progress: bool | None = None) -> RunReport:
        """Run to completion in the current event loop (``progress`` as for ``run``, no bar unless True)."""
        from .runtime._run import run_async

        return await run_async(self, fuse=fuse, progress=progress)

    def start(self, *, fuse: bool = True, progress: bool | None = None) -> RunHandle:
        """Run in the background; the handle has ``stop()``, ``await wait()`` and ``result()``.

        In a notebook the run shows its live counts (``progress=False`` turns that off).
        """
        from .runtime._run import start

        return start(self, fuse=fuse, progress=progress)

    def explain(self, *, fuse: bool = True) -> str:
        """The execution plan: stages, fused steps, channels and the type on each edge."""
        from .compiler import explain

        return explain(self, fuse=fuse)

    def __repr__(self) -> str:
        return f"<Pipeline {self.flow.label} >> {self.sink.label}>"

    def _repr_svg_(self) -> str:
        from .notebook import to_svg

        return to_svg(self)


def _common_type(types: list[Any]) -> Any:
    first = types[0] if types else None
    return first if all(t == first for t in types) else None


def merge(*flows: Flow[T]) -> Flow[T]:
    """Fan-in: one flow with the events of all ``flows``, interleaved as they arrive.

    >>> import flowpump as fp
    >>> sorted(fp.merge(fp.from_iterable([1, 2]), fp.from_iterable([3])).take(10))
    [1, 2, 3]
    """
    if not flows:
        msg = "fp.merge() needs at least one flow: fp.merge(flow_a, flow_b)"
        raise PipelineDefinitionError(msg)
    for f in flows:
        if not isinstance(f, Flow):
            msg = f"fp.merge() takes flows, got {f!r}; wrap iterables in fp.from_iterable(...)"
            raise PipelineDefinitionError(msg)
    if len(flows) == 1:
        return flows[0]
    return Flow(tuple(flows))


def tee(*sinks: Sink[T]) -> Sink[T]:
    """Fan-out: every event goes to each of ``sinks`` (each may start with its own operators).

    >>> import flowpump as fp
    >>> a, b = fp.collect[int](), fp.collect[int]()
    >>> _ = (fp.from_iterable([1, 2]) >> fp.tee(a, fp.map(lambda x: -x) >> b)).run()
    >>> a.items, b.items
    ([1, 2], [-1, -2])
    """
    if not sinks:
        msg = "fp.tee() needs at least one sink: fp.tee(sink_a, sink_b)"
        raise PipelineDefinitionError(msg)
    checked = tuple(_as_sink(s, "fp.tee()") for s in sinks)
    _check_no_reuse(list(checked), "fp.tee()")
    return checked[0] if len(checked) == 1 else Sink(checked)
