"""Pictures of flows, fragments and pipelines: what the diagram holds, and both renderers' SVG."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

import flowpump as fp
from flowpump import cli
from flowpump._picture import Diagram, Renderer, diagram, dot_available, to_svg
from flowpump.notebook import picture

SVG = "{http://www.w3.org/2000/svg}"
needs_dot = pytest.mark.skipif(not dot_available(), reason="Graphviz's `dot` (Debian package `graphviz`) is missing")


class Click(msgspec.Struct):
    user: str
    value: float


class Scored(msgspec.Struct):
    user: str
    score: float


def score(c: Click) -> Scored:
    return Scored(c.user, c.value * 2)


def keep(s: Scored) -> bool:
    return s.score > 1


async def enrich(s: Scored) -> Scored:
    await asyncio.sleep(0)
    return s


def demo(tmp: Path = Path("x")) -> fp.Pipeline:
    return (
        fp.read_jsonl(tmp / "clicks.jsonl", Click)
        >> fp.map(score)
        >> fp.filter(keep)
        >> fp.write_jsonl(tmp / "o.jsonl")
    ).on_error(fp.write_jsonl(tmp / "dead.jsonl"))


def fan() -> fp.Pipeline:
    a = fp.read_jsonl("a.jsonl", Click)
    b = fp.read_jsonl("b.jsonl", Click)
    return (
        fp.merge(a, b)
        >> fp.map(score)
        >> fp.map_async(enrich, concurrency=4)
        >> fp.batch(10)
        >> fp.unbatch()
        >> fp.tee(fp.write_jsonl("all.jsonl"), fp.filter(keep) >> fp.write_jsonl("kept.jsonl"))
    )


def labels(d: Diagram) -> list[str]:
    return [n.label for n in d.nodes]


def edge(d: Diagram, src: str, dst: str) -> str:
    by = {n.id: n.label for n in d.nodes}
    found = [e.label for e in d.edges if by[e.src] == src and by[e.dst] == dst]
    assert len(found) == 1, (src, dst, [(by[e.src], by[e.dst]) for e in d.edges])
    return found[0]


def test_pipeline_shows_the_fused_plan_with_types_and_dead_letters() -> None:
    d = diagram(demo())
    assert sorted(labels(d)) == [
        "dead letters",
        "filter(keep)",
        "map(score)",
        "read_jsonl(clicks.jsonl)",
        "write_jsonl(dead.jsonl)",
        "write_jsonl(o.jsonl)",
    ]
    assert edge(d, "read_jsonl(clicks.jsonl)", "map(score)") == "Click"
    assert edge(d, "map(score)", "filter(keep)") == "Scored"
    assert edge(d, "filter(keep)", "write_jsonl(o.jsonl)") == "Scored"
    assert edge(d, "dead letters", "write_jsonl(dead.jsonl)") == "DeadLetter"
    [group] = d.groups
    assert [n.label for n in d.nodes if n.id in group.nodes] == ["map(score)", "filter(keep)"]
    junction = next(n.id for n in d.nodes if n.kind == "dead")
    into_dead = {e.src for e in d.edges if e.dead and e.dst == junction}
    assert {n.label for n in d.nodes if n.id in into_dead} == {
        "read_jsonl(clicks.jsonl)",
        "filter(keep)",
        "write_jsonl(o.jsonl)",
    }
    assert d.title == "pipeline: 4 stages (fused plan)"


def test_unfused_plan_has_no_groups() -> None:
    d = diagram(demo(), fuse=False)
    assert d.groups == []
    assert d.title.endswith("(unfused plan)")


def test_fan_in_and_fan_out() -> None:
    d = diagram(fan())
    kinds = {n.label: n.kind for n in d.nodes}
    assert kinds["merge"] == "merge"
    assert kinds["tee"] == "tee"
    assert kinds["map_async(enrich)"] == "async"
    assert next(n.detail for n in d.nodes if n.kind == "async") == "concurrency=4"
    assert edge(d, "read_jsonl(a.jsonl)", "merge") == "Click"
    assert edge(d, "read_jsonl(b.jsonl)", "merge") == "Click"
    assert edge(d, "batch(10)", "unbatch()") == "list[Scored]"
    assert edge(d, "unbatch()", "tee") == "Scored"
    assert edge(d, "tee", "write_jsonl(all.jsonl)") == "Scored"
    assert edge(d, "tee", "filter(keep)") == "Scored"
    assert edge(d, "filter(keep)", "write_jsonl(kept.jsonl)") == "Scored"
    assert not any(e.dead for e in d.edges)


def test_unknown_types_show_as_question_marks() -> None:
    d = diagram(fp.from_iterable([1, 2]) >> fp.map(lambda x: x + 1))
    assert [e.label for e in d.edges] == ["?", "?"]
    assert d.nodes[-1].kind == "open"


def test_fragments_draw_with_open_ends() -> None:
    d = diagram(fp.map(score) >> fp.filter(keep))
    assert labels(d) == ["input", "map(score)", "filter(keep)", "output"]
    assert [e.label for e in d.edges] == ["Click", "Scored", "Scored"]
    assert d.title == "processor: 2 stages"
    sink = diagram(fp.map(score) >> fp.write_jsonl("o.jsonl"))
    assert labels(sink) == ["input", "map(score)", "write_jsonl(o.jsonl)"]


def test_long_labels_are_cut_with_the_whole_label_in_the_tooltip() -> None:
    def a_function_with_a_rather_long_and_descriptive_name(x: int) -> int:
        return x

    d = diagram(fp.from_iterable([1]) >> fp.map(a_function_with_a_rather_long_and_descriptive_name))
    node = d.nodes[1]
    assert node.label.endswith("…")
    assert len(node.label) <= 44
    assert "a_function_with_a_rather_long_and_descriptive_name" in node.tooltip


def test_not_a_graph() -> None:
    with pytest.raises(TypeError, match="cannot draw int"):
        diagram(3)


def _texts(svg: str) -> list[str]:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return ["".join(t.itertext()).strip() for t in root.iter(f"{SVG}text")]


@pytest.mark.parametrize("renderer", ["builtin", pytest.param("graphviz", marks=needs_dot)])
@pytest.mark.parametrize("make", [demo, fan], ids=["demo", "fan"])
def test_svg_has_every_label_and_type(renderer: Renderer, make: Callable[[], fp.Pipeline]) -> None:
    d = diagram(make())
    svg = to_svg(d, renderer=renderer)
    assert svg.startswith("<svg")
    assert "<script" not in svg
    assert "http://" not in svg.replace("http://www.w3.org/", "")
    texts = _texts(svg)
    for n in d.nodes:
        assert n.label in texts
    for e in d.edges:
        if e.label:
            assert e.label in texts
    if d.groups:
        assert "fused" in texts


def test_builtin_escapes_labels() -> None:
    svg = to_svg(fp.from_iterable([1]) >> fp.filter(lambda x: x < 3) >> fp.collect(), renderer="builtin")
    assert any(t.startswith("filter(<lambda> at") for t in _texts(svg))


def test_auto_falls_back_to_the_builtin_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("flowpump._picture.dot_available", lambda: False)
    assert 'role="img"' in to_svg(demo())  # only the built-in layout sets it


def test_objects_display_as_svg() -> None:
    flow = fp.read_jsonl("c.jsonl", Click) >> fp.map(score)
    for obj in (flow, fp.map(score), fp.write_jsonl("o.jsonl"), demo()):
        svg = obj._repr_svg_()
        assert svg.startswith("<svg"), obj
    pic = picture(demo(), fuse=False, renderer="builtin")
    assert pic._repr_svg_() == str(pic)
    assert repr(pic) == "<Picture pipeline: 5 stages (unfused plan)>"


def test_cli_graph_writes_the_same_picture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = tmp_path / "app.py"
    app.write_text(
        "import flowpump as fp\n"
        "pipeline = fp.from_iterable([1]) >> fp.map(str) >> fp.filter(bool) >> fp.collect()\n"
        "number = 3\n"
    )
    out = tmp_path / "graph.svg"
    assert cli.main(["graph", f"{app}:pipeline", "-o", str(out), "--renderer", "builtin"]) == 0
    from flowpump.cli import load_target

    assert out.read_text() == to_svg(load_target(f"{app}:pipeline"), renderer="builtin")
    assert cli.main(["graph", f"{app}:pipeline", "--no-fuse", "--renderer", "builtin"]) == 0
    assert "unfused plan" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="is a int, not a flowpump Pipeline"):
        cli.main(["graph", f"{app}:number"])
