"""The plan: which steps fuse, where the task and channel boundaries are, and explain()."""

from __future__ import annotations

import flowpump as fp
from flowpump.compiler import plan
from flowpump.compiler._plan import CHANNEL_CAPACITY


async def fetch(x: str) -> int:
    return len(x)


def name(x: int) -> str:
    return str(x)


def pipeline() -> fp.Pipeline:
    return (
        fp.from_iterable([1, 2])
        >> fp.map(name)
        >> fp.filter(bool)
        >> fp.map_async(fetch, concurrency=3)
        >> fp.batch(2)
        >> fp.collect()
    ).on_error(fp.collect())


def test_consecutive_sync_steps_fuse_and_boundaries_get_channels():
    stages = plan(pipeline(), fuse=True).stages()
    assert [(s.kind, s.label, s.channel) for s in stages] == [
        ("source", "from_iterable(list)", None),
        ("fused", "map(name) >> filter(bool)", None),
        ("map_async", "map_async(fetch)", CHANNEL_CAPACITY),
        ("batch", "batch(2)", CHANNEL_CAPACITY),
        ("sink", "collect()", None),
        ("sink", "collect()", CHANNEL_CAPACITY),  # dead letters come from every task
    ]
    assert [s.errors for s in stages] == [False] * 5 + [True]


def test_unfused_gives_every_step_its_own_stage_and_channel():
    stages = plan(pipeline(), fuse=False).stages()
    assert [(s.kind, s.label) for s in stages] == [
        ("source", "from_iterable(list)"),
        ("fused", "map(name)"),
        ("fused", "filter(bool)"),
        ("map_async", "map_async(fetch)"),
        ("batch", "batch(2)"),
        ("sink", "collect()"),
        ("sink", "collect()"),
    ]
    assert all(s.channel == CHANNEL_CAPACITY for s in stages[1:])


def test_explain_shows_stages_types_and_the_dead_letter_branch_last():
    text = pipeline().explain()
    assert text.splitlines() == [
        f"plan (fused): 6 stages, 4 tasks, 3 channels of {CHANNEL_CAPACITY} batches",
        "[1] source    from_iterable(list)  (task)",
        "      ──▶ [2]  `?`",
        "[2] fused     map(name) >> filter(bool)  (inline: 2 steps, one loop)",
        "      ├ map(name)     `?` → `str`",
        "      └ filter(bool)  `str`",
        "      ──▶ [3]  `str`",
        f"[3] map_async map_async(fetch)  (task, channel({CHANNEL_CAPACITY}))",
        "      concurrency=3, ordered=True",
        "      ──▶ [4]  `int`",
        f"[4] batch     batch(2)  (task, channel({CHANNEL_CAPACITY}))",
        "      size=2, timeout=None",
        "      ──▶ [5]  `list[int]`",
        "[5] sink      collect()  (inline)",
        "dead letters, from every stage:",
        f"[6] sink      collect()  (task, channel({CHANNEL_CAPACITY}))",
    ]


def shout(s: str) -> str:
    return s + "!"


def test_explain_shows_the_type_each_fused_step_takes_and_gives():
    flow = fp.from_iterable([1]) >> fp.map(name) >> fp.map(str.upper) >> fp.map(shout) >> fp.filter(str.isalpha)
    lines = (flow >> fp.collect()).explain().splitlines()
    assert lines[3:8] == [
        "[2] fused     map(name) >> map(upper) >> map(shout) >> filter(isalpha)  (inline: 4 steps, one loop)",
        "      ├ map(name)        `?` → `str`",
        "      ├ map(upper)       `str` → `?`",
        "      ├ map(shout)       `?` → `str`",
        "      └ filter(isalpha)  `str`",
    ]


def test_explain_unfused():
    text = pipeline().explain(fuse=False)
    assert text.startswith(f"plan (unfused): 7 stages, 7 tasks, 6 channels of {CHANNEL_CAPACITY} batches\n")
    assert "dead letters, from every stage:\n[7] sink      collect()" in text


def test_async_sink_gets_a_task_and_a_sync_sink_runs_inline():
    async def store(x: int) -> None:
        return None

    sync_stage = plan(fp.from_iterable([1]) >> fp.sink(print), fuse=True).stages()[-1]
    async_stage = plan(fp.from_iterable([1]) >> fp.sink(store), fuse=True).stages()[-1]
    assert (sync_stage.kind, sync_stage.channel) == ("sink", None)
    assert (async_stage.kind, async_stage.channel) == ("sink", CHANNEL_CAPACITY)


def test_merge_point_has_one_channel_for_all_producers():
    flow = fp.merge(fp.from_iterable([1]), fp.from_iterable([2]).map(name), fp.from_iterable([3]))
    the_plan = plan(flow >> fp.collect(), fuse=True)
    assert len(the_plan.roots) == 3
    [merge] = [s for s in the_plan.stages() if s.kind == "merge"]
    assert merge.producers == 3
    assert merge.channel == CHANNEL_CAPACITY


def test_tee_branches_each_get_their_own_stages():
    sink = fp.tee(fp.collect(), fp.map(name) >> fp.collect())
    stages = plan(fp.from_iterable([1]) >> sink, fuse=True).stages()
    assert [s.kind for s in stages] == ["source", "tee", "sink", "fused", "sink"]


def test_a_dead_letter_branch_of_several_stages_comes_after_the_whole_main_dag():
    errors = fp.map(lambda d: d.error) >> fp.map_async(fetch) >> fp.collect()
    flow = fp.merge(fp.from_iterable(["a"]), fp.from_iterable(["b"]).map(len).map(name))
    the_plan = plan((flow >> fp.map_async(fetch) >> fp.collect()).on_error(errors), fuse=True)
    stages = the_plan.stages()
    flags = [s.errors for s in stages]
    assert flags == sorted(flags), "every main stage first, then the dead-letter branch"
    assert sum(flags) == 3
    assert stages[flags.index(True)] is the_plan.errors
