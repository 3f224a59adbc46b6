"""fp.tap: a side effect per event; the event passes on unchanged."""

from __future__ import annotations

import flowpump as fp


def test_tap_sees_every_event_in_order_and_passes_it_on(drain, fuse):
    seen: list[int] = []
    got = drain(fp.from_iterable(range(300)) >> fp.tap(seen.append) >> fp.map(lambda x: -x), fuse=fuse)
    assert seen == list(range(300))
    assert got.items == [-x for x in range(300)]


def test_tap_return_value_is_ignored(drain, fuse):
    got = drain(fp.from_iterable([1, 2]) >> fp.tap(lambda x: x * 100), fuse=fuse)
    assert got.items == [1, 2]


def test_tap_passes_the_same_object(drain, fuse):
    events = [{"k": 1}, {"k": 2}]
    got = drain(fp.from_iterable(events) >> fp.tap(lambda e: e.setdefault("seen", True)), fuse=fuse)
    assert got.items == [{"k": 1, "seen": True}, {"k": 2, "seen": True}]
    assert all(a is b for a, b in zip(got.items, events, strict=True))


def test_tap_that_raises_dead_letters_the_event(drain, fuse, stage_of):
    def audit(x: int) -> None:
        if x == 2:
            raise RuntimeError("audit log full")

    got = drain(fp.from_iterable([1, 2, 3]) >> fp.tap(audit), fuse=fuse)
    assert got.items == [1, 3]
    assert [(d.stage, d.error, d.event) for d in got.dead] == [("tap(audit)", "RuntimeError: audit log full", 2)]
    st = stage_of(got.report, "tap(audit)")
    assert (st.events_in, st.events_out, st.dead_lettered) == (3, 2, 1)
