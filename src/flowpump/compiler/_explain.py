"""``Pipeline.explain()``: the plan shown the way a database shows a query plan."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._typecheck import type_name
from ._plan import Plan, PlanStage, plan

if TYPE_CHECKING:
    from .._graph import Pipeline


def _describe(stage: PlanStage, number: int) -> list[str]:
    where = f"task, channel({stage.channel})" if stage.channel is not None else "inline"
    head = f"[{number}] {stage.kind:<9} {stage.label}  ({where})"
    lines = [head]
    if stage.kind == "fused" and len(stage.steps) > 1:
        lines.extend(f"      ├ {s.label}" for s in stage.steps[:-1])
        lines.append(f"      └ {stage.steps[-1].label}")
    if stage.kind == "map_async":
        opts = stage.steps[0].options
        lines.append(f"      concurrency={opts['concurrency']}, ordered={opts['ordered']}")
    return lines


def render(the_plan: Plan) -> str:
    """Text of the plan: one block per stage, the element type on every edge."""
    stages = the_plan.stages()
    numbers = {id(s): i for i, s in enumerate(stages, 1)}
    mode = "fused" if the_plan.fused else "unfused"
    tasks = sum(1 for s in stages if s.channel is not None) + len(the_plan.roots)
    out = [f"plan ({mode}): {len(stages)} stages, {tasks} tasks"]
    for s in stages:
        if s.errors and (s is the_plan.errors):
            out.append("dead letters:")
        out.extend(_describe(s, numbers[id(s)]))
        edge_type = s.out_type if s.kind not in ("sink", "tee") else None
        for n in s.next:
            out.append(f"      ──▶ [{numbers[id(n)]}]  `{type_name(edge_type)}`")
    return "\n".join(out)


def explain(pipeline: Pipeline, *, fuse: bool = True) -> str:
    """The execution plan of ``pipeline`` as text."""
    return render(plan(pipeline, fuse=fuse))
