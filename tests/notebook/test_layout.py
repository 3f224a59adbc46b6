"""The built-in layered layout: boxes do not overlap, edges point down, weighted placement."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

import flowpump as fp
from flowpump._layout import _isotonic, _Layout, text_width
from flowpump._picture import diagram

from .test_picture import demo, fan


@given(
    st.lists(
        st.tuples(st.floats(-500, 500), st.floats(0.01, 5), st.floats(1, 100)),
        min_size=1,
        max_size=12,
    )
)
def test_isotonic_keeps_the_gaps(rows: list[tuple[float, float, float]]) -> None:
    desired = [r[0] for r in rows]
    weights = [r[1] for r in rows]
    seps = [r[2] for r in rows[1:]]
    xs = _isotonic(desired, weights, seps)
    for (a, b), s in zip(itertools.pairwise(xs), seps, strict=True):
        assert b - a >= s - 1e-6


def test_isotonic_leaves_feasible_positions_alone() -> None:
    assert _isotonic([0.0, 50.0, 200.0], [1, 1, 1], [20.0, 20.0]) == pytest.approx([0.0, 50.0, 200.0])
    # A heavy box stays put; the light one gives way.
    assert _isotonic([0.0, 0.0], [1.0, 0.01], [30.0]) == pytest.approx([-30 * 0.01 / 1.01, 30 - 30 * 0.01 / 1.01])


@pytest.mark.parametrize(
    "obj",
    [demo(), fan(), fp.map(str) >> fp.filter(bool), fp.from_iterable([1]).map(str)],
    ids=["demo", "fan", "fragment", "flow"],
)
def test_layout_is_layered_without_overlaps(obj: object) -> None:
    lay = _Layout(diagram(obj))
    lay.build()
    boxes = [v for v in lay.vertices.values() if not v.dummy]
    for a, b in itertools.combinations(boxes, 2):
        apart_x = abs(a.x - b.x) >= (a.width + b.width) / 2
        apart_y = a.y + a.height <= b.y or b.y + b.height <= a.y
        assert apart_x or apart_y, (a.id, b.id)
    for _, chain in lay.chains:
        for u, v in itertools.pairwise(chain):
            assert v.layer == u.layer + 1
            assert v.y >= u.y


def test_a_straight_chain_is_straight() -> None:
    lay = _Layout(diagram(demo()))
    lay.build()
    main = [lay.vertices[n.id] for n in lay.d.nodes if n.label in ("map(score)", "filter(keep)")]
    assert main[0].x == pytest.approx(main[1].x)


def test_text_width_grows_with_text() -> None:
    assert text_width("", 12) == 0
    assert text_width("mmmm", 12) > text_width("iiii", 12)
    assert text_width("abc", 10, mono=True) == pytest.approx(3 * 6.1)
