"""Pictures of graphs and plans: one box per stage, the element type on every edge.

A ``Flow``, ``Processor`` or ``Sink`` is drawn as written (one box per step); a ``Pipeline`` as
its execution plan, with the steps fused into one loop grouped in a dashed frame and the
dead-letter branch in red. The picture is a ``Diagram`` (plain data), drawn to SVG by Graphviz's
``dot`` when the ``graphviz`` package and the ``dot`` binary are both there, and otherwise by
``flowpump._layout``, which needs neither. Both produce self-contained SVG: no script, no fonts or
styles from the network, so it shows the same in JupyterLab, in exported HTML and on disk.
"""

from __future__ import annotations

import builtins
import importlib.util
import re
import shutil
import subprocess
import typing
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

from ._connector import RunContext, SinkSpec, SinkWriter, SourceBatch, SourceSpec
from ._graph import Flow, Pipeline, Processor, Sink, Step, _common_type
from ._typecheck import type_name
from .compiler._plan import PlanStage

__all__ = ["Diagram", "Edge", "Group", "Node", "Picture", "diagram", "dot_available", "to_svg"]

Renderer = Literal["auto", "graphviz", "builtin"]
NodeKind = Literal["source", "step", "async", "batch", "sink", "tee", "merge", "dead", "open"]

#: Labels longer than this are cut with an ellipsis in the box; the full text is in the tooltip.
MAX_LABEL = 44
FONT = "DejaVu Sans,Helvetica,Arial,sans-serif"
MONO = "DejaVu Sans Mono,Menlo,Consolas,monospace"

#: (fill, stroke) per kind; shared by both renderers so they look alike.
PALETTE: dict[str, tuple[str, str]] = {
    "source": ("#e4f3e2", "#3b7d3b"),
    "step": ("#e8f0fb", "#3a6ea5"),
    "async": ("#f1e8fa", "#7a4fa0"),
    "batch": ("#fcf2df", "#a0782a"),
    "sink": ("#fce8df", "#b0522f"),
    "tee": ("#eeeeee", "#555555"),
    "merge": ("#eeeeee", "#555555"),
    "dead": ("#fbe3e1", "#c0392b"),
    "open": ("#ffffff", "#888888"),
}
GROUP_COLOURS = ("#f5f8fd", "#3a6ea5")
DEAD_COLOUR = "#c0392b"
EDGE_COLOUR = "#555555"


@dataclass(slots=True)
class Node:
    """One box."""

    id: str
    label: str
    kind: NodeKind
    detail: str = ""
    tooltip: str = ""


@dataclass(slots=True)
class Edge:
    """An arrow from ``src`` to ``dst``; ``dead`` for the dead-letter branch."""

    src: str
    dst: str
    label: str = ""
    dead: bool = False
    #: Draw the arrow from the frame of this group rather than from ``src`` (Graphviz only).
    from_group: str | None = None


@dataclass(slots=True)
class Group:
    """Boxes drawn in one frame: the steps of one fused stage."""

    id: str
    label: str
    nodes: list[str]
    tooltip: str = ""


@dataclass(slots=True)
class Diagram:
    """What a picture shows, independent of how it is laid out."""

    title: str
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)


# -- from graph objects to a diagram ------------------------------------------------------------


class _OpenStart(SourceSpec):
    """Stands for the input of a fragment (a Processor or Sink) when it is drawn alone."""

    label = "input"

    def __init__(self, out_type: Any) -> None:
        self.out_type = out_type

    def batches(self, ctx: RunContext) -> AsyncIterator[SourceBatch]:  # pragma: no cover - never run
        msg = "a fragment's picture is not runnable"
        raise RuntimeError(msg)


class _OpenEnd(SinkSpec):
    """Stands for the output of a Flow or Processor when it is drawn alone."""

    label = "output"

    async def open(self, ctx: RunContext) -> SinkWriter:  # pragma: no cover - never run
        msg = "a fragment's picture is not runnable"
        raise RuntimeError(msg)


def _as_pipeline(obj: object) -> tuple[Pipeline, bool, str]:
    """A pipeline standing for ``obj``, whether to fuse it by default, and a title."""
    if isinstance(obj, Pipeline):
        return obj, True, "pipeline"
    if isinstance(obj, Flow):
        return Pipeline(obj, Sink(_OpenEnd())), False, "flow"
    if isinstance(obj, Processor):
        flow: Flow[Any] = Flow(_OpenStart(obj.in_type), obj.steps)
        return Pipeline(flow, Sink(_OpenEnd())), False, "processor"
    if isinstance(obj, Sink):
        return Pipeline(Flow(_OpenStart(obj.in_type)), obj), False, "sink"
    msg = f"cannot draw {type(obj).__name__}: expected a flowpump Flow, Processor, Sink or Pipeline"
    raise TypeError(msg)


def _after(step: Step, tp: Any) -> Any:
    """The type ``step`` produces from ``tp`` (None when unknown)."""
    if step.out_type is not None:
        return step.out_type
    if step.kind in ("filter", "tap"):
        return tp
    if step.kind == "batch":
        return None if tp is None else list[tp]
    if step.kind == "flat_map" and step.fn is builtins.iter:  # unbatch()
        args = typing.get_args(tp)
        return args[0] if len(args) == 1 else None
    return None


def _declared_input(stage: PlanStage) -> Any:
    """The input type a stage's own function or connector declares (None when it declares none)."""
    if stage.steps:
        return stage.steps[0].in_type
    return stage.sink.in_type if stage.sink is not None else None


def _short(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def diagram(obj: object, *, fuse: bool | None = None) -> Diagram:
    """The diagram of a Flow, Processor, Sink or Pipeline.

    A Pipeline is shown as its plan, fused unless ``fuse=False``; the others step by step
    (``fuse=True`` shows how their steps would be fused).
    """
    from .compiler._plan import plan

    pipeline, default_fuse, what = _as_pipeline(obj)
    fuse = default_fuse if fuse is None else fuse
    the_plan = plan(pipeline, fuse=fuse)
    stages = the_plan.stages()
    d = Diagram(title="")
    entry: dict[int, str] = {}
    exit_: dict[int, str] = {}
    out: dict[int, Any] = {}
    group_of: dict[int, str] = {}
    incoming: dict[int, list[Any]] = {}

    def add(label: str, kind: NodeKind, tooltip: str, detail: str = "") -> str:
        node = Node(f"n{len(d.nodes)}", _short(label), kind, detail, tooltip)
        d.nodes.append(node)
        return node.id

    # Invariant: stages come in topological order, so every producer of a stage has recorded
    # the type it sends (``incoming``) before the stage itself is drawn.
    for number, s in enumerate(stages, 1):
        tp = s.in_type if s.in_type is not None else _common_type(incoming.get(id(s), []))
        if tp is None and s.steps:
            tp = s.steps[0].in_type  # unknown upstream: what the stage's function declares
        where = f"own task, channel({s.channel})" if s.channel is not None else "inline"
        tip = f"{s.label}\n[{number}] {s.kind} · {where}"
        produced: Any = None
        if s.kind == "fused":
            ids: list[str] = []
            for step in s.steps:
                nid = add(step.label, "step", f"{step.label}\n[{number}] {step.kind} · {where}")
                tp = tp if tp is not None else step.in_type
                if ids:
                    d.edges.append(Edge(ids[-1], nid, type_name(tp), dead=s.errors))
                ids.append(nid)
                tp = _after(step, tp)
            produced = tp
            entry[id(s)], exit_[id(s)] = ids[0], ids[-1]
            if fuse and len(ids) > 1:
                gid = f"cluster_{len(d.groups)}"
                d.groups.append(Group(gid, "fused", ids, f"{len(ids)} steps fused into one loop over each batch"))
                group_of[id(s)] = gid
        else:
            if s.kind == "source":
                nid = add(s.label, "open" if isinstance(s.source, _OpenStart) else "source", tip)
                produced = s.out_type
            elif s.kind == "map_async":
                opts = s.steps[0].options
                detail = f"concurrency={opts['concurrency']}" + ("" if opts["ordered"] else ", unordered")
                nid = add(s.label, "async", tip, detail)
                produced = _after(s.steps[0], tp)
            elif s.kind == "batch":
                nid = add(s.label, "batch", tip)
                produced = _after(s.steps[0], tp)
            elif s.kind == "tee":
                nid = add("tee", "tee", tip)
                produced = tp
            elif s.kind == "merge":
                nid = add("merge", "merge", tip)
                produced = s.out_type if s.out_type is not None else tp
            else:
                nid = add(s.label, "open" if isinstance(s.sink, _OpenEnd) else "sink", tip)
            entry[id(s)] = exit_[id(s)] = nid
        out[id(s)] = produced
        for n in s.next:
            incoming.setdefault(id(n), []).append(produced)

    for s in stages:
        for n in s.next:
            tp = out[id(s)] if out[id(s)] is not None else _declared_input(n)
            d.edges.append(Edge(exit_[id(s)], entry[id(n)], type_name(tp), dead=s.errors))

    if the_plan.errors is not None:
        junction = add("dead letters", "dead", "dead letters of every stage go to the on_error sink")
        for s in stages:
            if s.errors or s.kind in ("tee", "merge", "batch") or isinstance(s.source, _OpenStart):
                continue
            d.edges.append(Edge(exit_[id(s)], junction, dead=True, from_group=group_of.get(id(s))))
        d.edges.append(Edge(junction, entry[id(the_plan.errors)], "DeadLetter", dead=True))

    shown = [s for s in stages if not isinstance(s.source, _OpenStart) and not isinstance(s.sink, _OpenEnd)]
    d.title = f"{what}: {len(shown)} stage{'s' if len(shown) != 1 else ''}"
    if what == "pipeline" or fuse:
        d.title += f" ({'fused' if fuse else 'unfused'} plan)"
    return d


# -- rendering ----------------------------------------------------------------------------------


def dot_available() -> bool:
    """True when Graphviz can draw: the ``graphviz`` package and the ``dot`` binary are there."""
    return shutil.which("dot") is not None and importlib.util.find_spec("graphviz") is not None


def _dot_source(d: Diagram) -> Any:
    import graphviz

    g = graphviz.Digraph(
        "flowpump",
        graph_attr={
            "rankdir": "TB",
            "fontname": FONT,
            "fontsize": "10",
            "fontcolor": "#666666",
            "label": d.title,
            "labelloc": "b",
            "labeljust": "l",
            "nodesep": "0.3",
            "ranksep": "0.35",
            "compound": "true",
            "bgcolor": "white",
            "pad": "0.12",
        },
        node_attr={"fontname": FONT, "fontsize": "11", "shape": "box", "style": "rounded,filled", "height": "0.36"},
        edge_attr={"fontname": MONO, "fontsize": "9", "color": EDGE_COLOUR, "fontcolor": "#444444", "arrowsize": "0.7"},
    )
    grouped = {n for grp in d.groups for n in grp.nodes}
    by_id = {n.id: n for n in d.nodes}

    def node(target: Any, n: Node) -> None:
        fill, stroke = PALETTE[n.kind]
        attrs = {"fillcolor": fill, "color": stroke, "tooltip": n.tooltip}
        label = n.label if not n.detail else f"{n.label}\n{n.detail}"
        if n.kind in ("tee", "merge", "dead"):
            attrs.update(shape="ellipse", style="filled", fontsize="10", height="0.3")
        if n.kind == "open":
            attrs.update(style="rounded,dashed", fontcolor="#666666")
        if n.kind == "step":
            attrs.update(style="filled")
        target.node(n.id, label, **attrs)

    for grp in d.groups:
        with g.subgraph(name=grp.id) as sub:
            sub.attr(
                label=grp.label,
                tooltip=grp.tooltip,
                style="rounded,dashed,filled",
                fillcolor=GROUP_COLOURS[0],
                color=GROUP_COLOURS[1],
                fontcolor=GROUP_COLOURS[1],
                fontsize="9",
                labeljust="l",
                margin="10",
            )
            for nid in grp.nodes:
                node(sub, by_id[nid])
    for n in d.nodes:
        if n.id not in grouped:
            node(g, n)
    for e in d.edges:
        attrs = {}
        if e.label:
            attrs["label"] = " " + e.label
        if e.dead:
            attrs.update(color=DEAD_COLOUR + "c0", style="dashed", fontcolor=DEAD_COLOUR, arrowsize="0.6")
        if e.from_group is not None:
            attrs["ltail"] = e.from_group
        g.edge(e.src, e.dst, **attrs)
    return g


_PROLOG = re.compile(r"^.*?(?=<svg\b)", re.DOTALL)


def render_graphviz(d: Diagram) -> str:
    """SVG drawn by Graphviz's ``dot`` (raises when it is missing or fails)."""
    raw: str = _dot_source(d).pipe(format="svg", encoding="utf-8")
    # Only the <svg> element: an XML prolog or DOCTYPE is not allowed inside HTML.
    return _PROLOG.sub("", raw, count=1)


def to_svg(obj: object, *, fuse: bool | None = None, renderer: Renderer = "auto") -> str:
    """An SVG picture of a Flow, Processor, Sink or Pipeline (see ``diagram``).

    ``renderer="auto"`` uses Graphviz when ``dot_available()``, else the built-in layout.

    >>> import flowpump as fp
    >>> svg = to_svg(fp.from_iterable([1, 2]) >> fp.map(str) >> fp.collect(), renderer="builtin")
    >>> svg.startswith("<svg") and "map(str)" in svg
    True
    """
    d = obj if isinstance(obj, Diagram) else diagram(obj, fuse=fuse)
    if renderer == "graphviz" or (renderer == "auto" and dot_available()):
        try:
            return render_graphviz(d)
        except (OSError, subprocess.CalledProcessError, ImportError):
            if renderer == "graphviz":
                raise
    from ._layout import render_builtin

    return render_builtin(d)


class Picture:
    """An SVG that displays itself in a notebook; ``str(picture)`` is the SVG text."""

    def __init__(self, svg: str, title: str = "") -> None:
        self.svg = svg
        self.title = title

    def __repr__(self) -> str:
        return f"<Picture {self.title}>" if self.title else "<Picture>"

    def _repr_svg_(self) -> str:
        return self.svg

    def __str__(self) -> str:
        return self.svg

    def save(self, path: str) -> None:
        """Write the SVG to ``path``."""
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.svg)
