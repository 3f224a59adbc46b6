"""The tutorial notebooks run top to bottom in a real kernel, and their pictures really draw.

The browser tests render in headless Chromium, offline, and look at the pixels: a page holding
only the graph picture must show its boxes (their fill colours) and text (dark pixels) where the
SVG is, and nothing outside it.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest

from flowpump._picture import PALETTE, Renderer
from flowpump.notebook import to_svg

from .conftest import CELL_TIMEOUT, NOTEBOOKS, screenshot
from .test_picture import demo

nbformat = pytest.importorskip("nbformat", reason="the notebook tests need the test extra (nbformat)")
nbclient = pytest.importorskip("nbclient", reason="the notebook tests need the test extra (nbclient)")
Image = pytest.importorskip("PIL.Image", reason="the browser tests need the test extra (pillow)")

NAMES = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
_executed: dict[str, Any] = {}


def test_the_three_tutorials_are_there() -> None:
    assert NAMES == ["performance.ipynb", "quickstart.ipynb", "typed-events-and-errors.ipynb"]


def executed(name: str, kernel_name: str, workdir: Path) -> Any:
    """The notebook ``name`` after a run in a fresh kernel (run once per test session)."""
    if name not in _executed:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        client = nbclient.NotebookClient(
            nb, timeout=CELL_TIMEOUT, kernel_name=kernel_name, resources={"metadata": {"path": str(workdir)}}
        )
        client.execute()
        _executed[name] = nb
    return _executed[name]


def outputs(nb: Any) -> list[Any]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def texts(nb: Any, mime: str) -> list[str]:
    out = []
    for o in outputs(nb):
        if o.output_type == "stream":
            out.append(o.text) if mime == "stream" else None
        elif mime in o.get("data", {}):
            out.append(o.data[mime])
    return out


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_without_errors(name: str, kernel_env: str, tmp_path: Path) -> None:
    nb = executed(name, kernel_env, tmp_path)
    assert not [o for o in outputs(nb) if o.output_type == "error"]
    # Every picture and table is a rich output, not a repr.
    assert texts(nb, "image/svg+xml")
    assert all(svg.startswith("<svg") for svg in texts(nb, "image/svg+xml"))


def test_quickstart_shows_pictures_tables_and_live_counts(kernel_env: str, tmp_path: Path) -> None:
    nb = executed("quickstart.ipynb", kernel_env, tmp_path)
    html = "\n".join(texts(nb, "text/html"))
    assert "read_jsonl(clicks.jsonl): first 5 events" in html
    assert "flowpump-live" in html  # the background run's live view
    assert "clicks.jsonl:10001" in html  # the bad line, dead-lettered with its position
    svgs = texts(nb, "image/svg+xml")
    assert any("fused" in s and "dead letters" in s for s in svgs)
    assert any(">tee<" in s and ">merge<" in s for s in svgs)
    assert not [s for s in texts(nb, "stream") if "dead-lettered and no error sink" in s]


def test_errors_notebook_catches_the_mismatch_and_keeps_the_bad_records(kernel_env: str, tmp_path: Path) -> None:
    nb = executed("typed-events-and-errors.ipynb", kernel_env, tmp_path)
    printed = "".join(texts(nb, "stream"))
    assert "stage 'map(describe)' expects `Order`, but 'map(invoice)' produces `Invoice`" in printed
    html = "\n".join(texts(nb, "text/html"))
    for position in ("orders.jsonl:2", "orders.jsonl:3", "orders.jsonl:4"):
        assert position in html
    assert "negative amount -4.0" in html


def test_performance_notebook_compares_the_plans(kernel_env: str, tmp_path: Path) -> None:
    nb = executed("performance.ipynb", kernel_env, tmp_path)
    printed = "".join(texts(nb, "stream"))
    assert "plan (fused)" in printed
    assert "plan (unfused)" in printed
    html = "\n".join(texts(nb, "text/html"))
    assert "identical in both plans" in html
    assert "live (small batches)" in html


def _size(svg: str) -> tuple[int, int]:
    """The CSS pixel size of an SVG from its width and height (``pt`` as Graphviz writes them)."""
    head = svg[: svg.index(">")]
    out = []
    for attr in ("width", "height"):
        m = re.search(rf'{attr}="([\d.]+)(pt|px)?"', head)
        assert m, head
        out.append(round(float(m.group(1)) * (4 / 3 if m.group(2) == "pt" else 1)))
    return out[0], out[1]


def _hex(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def _check_drawn(png: Path, width: int, height: int) -> None:
    image = Image.open(png).convert("RGB")
    inside = image.crop((0, 0, width, height))
    raw = inside.tobytes()  # RGB triples; getdata() is deprecated in current Pillow
    pixels = [tuple(raw[i : i + 3]) for i in range(0, len(raw), 3)]
    for kind in ("source", "sink", "step"):
        fill = _hex(PALETTE[kind][0])
        count = sum(1 for p in pixels if all(abs(a - b) <= 6 for a, b in zip(p, fill, strict=True)))
        assert count > 500, f"no {kind} box drawn ({count} pixels of {PALETTE[kind][0]})"
    dark = sum(1 for p in pixels if sum(p) < 200)
    assert dark > 300, f"no text or lines drawn ({dark} dark pixels)"
    # Outside the picture the page is blank: what was counted is the SVG.
    right = image.crop((width + 10, 0, image.width, image.height))
    below = image.crop((0, height + 10, image.width, image.height))
    for part in (right, below):
        if part.width > 0 and part.height > 0:
            assert part.getextrema() == ((255, 255), (255, 255), (255, 255))


_ISOLATE = """
<style>
  body::after {content: ""; position: fixed; inset: 0; background: #fff; z-index: 2147483646}
  #fp-target {position: fixed; left: 0; top: 0; margin: 0; z-index: 2147483647; background: #fff}
</style>
"""


def test_exported_quickstart_draws_the_pipeline_in_a_browser(kernel_env: str, tmp_path: Path) -> None:
    nbconvert = pytest.importorskip("nbconvert", reason="the browser test needs the test extra (nbconvert)")
    nb = executed("quickstart.ipynb", kernel_env, tmp_path)
    body, _ = nbconvert.HTMLExporter().from_notebook_node(nb)
    # The first picture of a whole pipeline (with its dead-letter branch) is the one looked at.
    # nbconvert embeds an SVG output as an <img> with a base64 data URI (no script involved).
    images = re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', body)
    svgs = [base64.b64decode(m).decode() for m in images]
    assert len(svgs) == len(texts(nb, "image/svg+xml")), "a picture is missing from the exported page"
    k = next(i for i, svg in enumerate(svgs) if "dead letters" in svg)
    target = f'src="data:image/svg+xml;base64,{images[k]}"'
    page = body.replace(target, f'id="fp-target" {target}', 1)
    svgs = svgs[k:]
    page = page.replace("</head>", _ISOLATE + "</head>", 1)
    html_file = tmp_path / "quickstart.html"
    html_file.write_text(page, encoding="utf-8")
    width, height = _size(svgs[0])
    png = tmp_path / "quickstart.png"
    screenshot(html_file, png, width + 200, height + 200)
    _check_drawn(png, width, height)


@pytest.mark.parametrize("renderer", ["builtin", "graphviz"])
def test_svg_alone_draws_in_a_browser(renderer: Renderer, tmp_path: Path) -> None:
    from flowpump._picture import dot_available

    if renderer == "graphviz" and not dot_available():
        pytest.skip("Graphviz's `dot` (Debian package `graphviz`) is missing")
    svg = to_svg(demo(tmp_path), renderer=renderer)
    html_file = tmp_path / "graph.html"
    html_file.write_text(f'<!doctype html><html><body style="margin:0;background:#fff">{svg}</body></html>')
    width, height = _size(svg)
    png = tmp_path / "graph.png"
    screenshot(html_file, png, width + 150, height + 150)
    _check_drawn(png, width, height)
