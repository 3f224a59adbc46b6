"""``Pipeline.explain()``: the plan shown the way a database shows a query plan.

One block per stage, in the order the data flows (the dead-letter branch last)::

    plan (fused): 4 stages, 2 tasks, 1 channel of 8 batches
    [1] source    read_jsonl(clicks.jsonl)  (task)
          ──▶ [2]  `Click`
    [2] fused     map(score) >> filter(keep)  (inline: 2 steps, one loop)
          ├ map(score)    `Click` → `Scored`
          └ filter(keep)  `Scored`
          ──▶ [3]  `Scored`
    [3] sink      write_jsonl(out.jsonl)  (inline)
    dead letters, from every stage:
    [4] sink      write_jsonl(dead.jsonl)  (task, channel(8))

A stage runs in its own task behind a bounded channel (backpressure) or inline in the task
upstream of it; a fused stage runs its steps in one generated loop over each batch. Types come
from annotations and from sources that know theirs; `?` is unknown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._typecheck import type_name
from ._plan import Plan, PlanStage, _produced, plan

if TYPE_CHECKING:
    from .._graph import Pipeline


def _steps(stage: PlanStage) -> list[str]:
    steps = stage.steps
    width = max(len(s.label) for s in steps)
    arriving = stage.in_type
    lines = []
    for k, step in enumerate(steps):
        leaving = _produced(step, arriving)
        types = f"`{type_name(arriving)}`"
        if step.kind not in ("filter", "tap"):
            types += f" → `{type_name(leaving)}`"
        mark = "└" if k == len(steps) - 1 else "├"
        lines.append(f"      {mark} {step.label:<{width}}  {types}")
        arriving = leaving
    return lines


def _where(stage: PlanStage) -> str:
    if stage.kind == "source":
        return "task"
    where = f"task, channel({stage.channel})" if stage.channel is not None else "inline"
    if stage.kind == "fused" and len(stage.steps) > 1:
        where += f": {len(stage.steps)} steps, one loop"
    return where


def _describe(stage: PlanStage, number: int) -> list[str]:
    lines = [f"[{number}] {stage.kind:<9} {stage.label}  ({_where(stage)})"]
    if stage.kind == "fused" and len(stage.steps) > 1:
        lines.extend(_steps(stage))
    if stage.kind == "map_async":
        opts = stage.steps[0].options
        lines.append(f"      concurrency={opts['concurrency']}, ordered={opts['ordered']}")
    if stage.kind == "batch":
        opts = stage.steps[0].options
        lines.append(f"      size={opts['size']}, timeout={opts['timeout']}")
    return lines


def render(the_plan: Plan) -> str:
    """Text of the plan: one block per stage, the element type on every edge."""
    stages = the_plan.stages()
    numbers = {id(s): i for i, s in enumerate(stages, 1)}
    mode = "fused" if the_plan.fused else "unfused"
    channels = [s.channel for s in stages if s.channel is not None]
    tasks = len(channels) + len(the_plan.roots)
    head = f"plan ({mode}): {len(stages)} stages, {tasks} tasks"
    if channels:
        sizes = sorted(set(channels))
        of = f"{sizes[0]} batches" if len(sizes) == 1 else "batches"
        head += f", {len(channels)} channel{'s' if len(channels) > 1 else ''} of {of}"
    out = [head]
    for s in stages:
        if s is the_plan.errors:
            out.append("dead letters, from every stage:")
        out.extend(_describe(s, numbers[id(s)]))
        edge_type = s.in_type if s.kind == "tee" else s.out_type
        for n in s.next:
            out.append(f"      ──▶ [{numbers[id(n)]}]  `{type_name(edge_type)}`")
    return "\n".join(out)


def explain(pipeline: Pipeline, *, fuse: bool = True) -> str:
    """The execution plan of ``pipeline`` as text."""
    return render(plan(pipeline, fuse=fuse))
