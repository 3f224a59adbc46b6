"""From graph to plan: which steps run together, where the task and channel boundaries are.

Rules (fused mode):
- consecutive synchronous steps form one ``fused`` stage, run inline in the task upstream of it;
- ``map_async`` and ``batch`` are boundaries: each runs in its own task behind a bounded channel;
- a sink with an async writer runs in its own task behind a channel, a synchronous one inline;
- a merge point has a channel that all merged flows write into.
Unfused mode (``fuse=False``) gives every step its own stage, task and channel.
The plan is a DAG of ``PlanStage``; sources are its roots.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from .._connector import SinkSpec, SourceSpec
from .._graph import SYNC_KINDS, Flow, Pipeline, Sink, Step, _common_type

StageKind = Literal["source", "fused", "map_async", "batch", "sink", "tee", "merge"]

#: Envelopes a channel holds before its producer waits (backpressure).
CHANNEL_CAPACITY = 8


@dataclass(eq=False)
class PlanStage:
    """One node of the execution plan."""

    kind: StageKind
    label: str
    steps: tuple[Step, ...] = ()
    source: SourceSpec | None = None
    sink: SinkSpec | None = None
    next: list[PlanStage] = field(default_factory=list)
    #: capacity of the channel in front of this stage; None: runs inline in the upstream task
    channel: int | None = None
    in_type: Any = None
    out_type: Any = None
    producers: int = 0
    errors: bool = False


@dataclass(eq=False)
class Plan:
    """Sources (roots of the main DAG) and the dead-letter branch, if any."""

    roots: list[PlanStage]
    errors: PlanStage | None
    fused: bool

    def stages(self) -> list[PlanStage]:
        """Every stage once, in topological order (main DAG, then the dead-letter branch)."""
        seen: dict[int, PlanStage] = {}
        indegree: dict[int, int] = {}

        def visit(s: PlanStage) -> None:
            if id(s) in seen:
                return
            seen[id(s)] = s
            for n in s.next:
                indegree[id(n)] = indegree.get(id(n), 0) + 1
                visit(n)

        for r in self.roots:
            visit(r)
        if self.errors is not None:
            visit(self.errors)
        order: list[PlanStage] = []
        # The dead-letter branch has no producer in the DAG either: hold it back until the main
        # DAG is done, so reports and explain() list it last.
        ready = [s for s in seen.values() if indegree.get(id(s), 0) == 0 and s is not self.errors]
        later = [self.errors] if self.errors is not None else []
        while ready or later:
            if not ready:
                ready.append(later.pop())
            s = ready.pop(0)
            order.append(s)
            for n in s.next:
                indegree[id(n)] -= 1
                if indegree[id(n)] == 0:
                    ready.append(n)
        return order


def _produced(step: Step, produced: Any) -> Any:
    """The type ``step`` emits when ``produced`` arrives (None: unknown)."""
    if step.out_type is not None:
        return step.out_type
    if step.kind in ("filter", "tap"):
        return produced
    if produced is not None and step.kind == "batch":
        return list[produced]
    if step.kind == "flat_map" and step.fn is iter and typing.get_origin(produced) in (list, tuple, set, frozenset):
        args = typing.get_args(produced)  # unbatch(): the items of the lists that arrive
        return args[0] if len(args) == 1 or (len(args) == 2 and args[1] is Ellipsis) else None
    return None


class _Planner:
    def __init__(self, fuse: bool) -> None:
        self.fuse = fuse

    def steps(self, steps: tuple[Step, ...], then: PlanStage, in_type: Any) -> PlanStage:
        """Stages for ``steps`` feeding ``then``; returns the entry stage."""
        groups: list[tuple[Step, ...]] = []
        for step in steps:
            if self.fuse and step.kind in SYNC_KINDS and groups and groups[-1][-1].kind in SYNC_KINDS:
                groups[-1] += (step,)
            else:
                groups.append((step,))
        types = [in_type]
        for g in groups:
            t = types[-1]
            for s in g:
                t = _produced(s, t)
            types.append(t)
        entry = then
        for i in range(len(groups) - 1, -1, -1):
            g = groups[i]
            kind = g[0].kind
            stage_kind: StageKind = "fused" if kind in SYNC_KINDS else kind  # type: ignore[assignment]
            boundary = stage_kind != "fused" or not self.fuse
            label = " >> ".join(s.label for s in g)
            entry = self._link(
                PlanStage(
                    stage_kind,
                    label,
                    g,
                    in_type=types[i],
                    out_type=types[i + 1],
                    channel=CHANNEL_CAPACITY if boundary else None,
                ),
                entry,
            )
        return entry

    @staticmethod
    def _link(stage: PlanStage, nxt: PlanStage) -> PlanStage:
        stage.next.append(nxt)
        nxt.producers += 1
        return stage

    def sink(self, sink: Sink[Any], in_type: Any) -> PlanStage:
        terminal = sink.terminal
        if isinstance(terminal, tuple):
            tee = PlanStage("tee", sink.label, in_type=None)
            for branch in terminal:
                self._link_entry(tee, self.sink(branch, None))
            end = tee
        else:
            is_async = getattr(terminal, "is_async", False)
            end = PlanStage(
                "sink",
                terminal.label,
                sink=terminal,
                in_type=None,
                channel=CHANNEL_CAPACITY if (is_async or not self.fuse) else None,
            )
        entry = self.steps(sink.steps, end, in_type) if sink.steps else end
        entry.in_type = entry.in_type if entry.in_type is not None else in_type
        return entry

    def _link_entry(self, up: PlanStage, entry: PlanStage) -> None:
        up.next.append(entry)
        entry.producers += 1

    def flow(self, flow: Flow[Any], then: PlanStage, roots: list[PlanStage]) -> None:
        origin = flow.origin
        steps = flow.steps
        if isinstance(origin, tuple):
            in_type = _common_type([f.out_type for f in origin])
            entry = self.steps(steps, then, in_type) if steps else then
            merge = PlanStage(
                "merge",
                flow.label if not steps else "merge",
                channel=CHANNEL_CAPACITY,
                in_type=in_type,
                out_type=in_type,
            )
            self._link_entry(merge, entry)
            for sub in origin:
                self.flow(sub, merge, roots)
            return
        src = PlanStage("source", origin.label, source=origin, out_type=origin.out_type)
        entry = self.steps(steps, then, origin.out_type) if steps else then
        self._link_entry(src, entry)
        roots.append(src)


def plan(pipeline: Pipeline, *, fuse: bool = True) -> Plan:
    """Build the execution plan of ``pipeline``."""
    planner = _Planner(fuse)
    roots: list[PlanStage] = []
    sink_entry = planner.sink(pipeline.sink, pipeline.flow.out_type)
    planner.flow(pipeline.flow, sink_entry, roots)
    errors = None
    if pipeline.errors is not None:
        from .._errors import DeadLetter

        errors = planner.sink(pipeline.errors, DeadLetter)
        errors.producers = max(errors.producers, 1)
        if errors.channel is None:
            # Dead letters arrive from every task; a channel serialises them.
            errors.channel = CHANNEL_CAPACITY
        _mark_errors(errors)
    return Plan(roots, errors, fuse)


def _mark_errors(stage: PlanStage) -> None:
    stage.errors = True
    for n in stage.next:
        _mark_errors(n)
