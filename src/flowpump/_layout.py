"""The built-in drawing of a ``Diagram`` as SVG, for machines without Graphviz.

Pipelines are small, mostly linear DAGs, so a plain layered (Sugiyama-style) layout, top to
bottom, is enough: longest-path layers, dummy points where an edge skips layers, a few
barycentre sweeps to order each layer with the fewest crossings, then x positions that keep each
box over its neighbours with at least the needed gap between boxes (a weighted isotonic
regression, so boxes stay aligned and edge dummies give way). No pure-Python layout library on
PyPI is both small and maintained; Graphviz is used instead whenever it is installed.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from itertools import pairwise

from ._picture import DEAD_COLOUR, EDGE_COLOUR, FONT, GROUP_COLOURS, MONO, PALETTE, Diagram, Edge, Node

__all__ = ["render_builtin"]

FONT_SIZE = 12.0
DETAIL_SIZE = 10.0
LABEL_SIZE = 10.0
MARGIN = 12.0
H_GAP = 28.0  # between boxes in one layer
V_GAP = 40.0  # between layers
FRAME_PAD = 10.0
FRAME_LABEL = 14.0  # room under a frame's boxes for its label
ARROW = 7.0
SWEEPS = 4
PLACEMENTS = 6
DUMMY_WEIGHT = 0.01  # how little an edge's bend point insists on its ideal x

_NARROW = set("iljtf.,:;()[]{}!|' ")
_WIDE = set("mwMW@%")


def text_width(text: str, size: float, *, mono: bool = False) -> float:
    """A conservative estimate of the rendered width of ``text`` (DejaVu metrics)."""
    if mono:
        return len(text) * size * 0.61
    em = 0.0
    for c in text:
        if c in _NARROW:
            em += 0.34
        elif c in _WIDE or c.isupper():
            em += 0.74
        else:
            em += 0.6
    return em * size


@dataclass(eq=False)
class _Vertex:
    """A box, or a dummy point an edge bends through."""

    id: str
    node: Node | None
    width: float
    height: float
    layer: int = 0
    x: float = 0.0
    y: float = 0.0  # top of the box
    preds: list[_Vertex] = field(default_factory=list)
    succs: list[_Vertex] = field(default_factory=list)
    #: width of the labels of the edges leaving this vertex (centred on the edge, below it)
    label_room: float = 0.0

    @property
    def dummy(self) -> bool:
        return self.node is None


def _size(n: Node) -> tuple[float, float]:
    w = max(text_width(n.label, FONT_SIZE), text_width(n.detail, DETAIL_SIZE))
    if n.kind in ("tee", "merge", "dead"):
        return w + 32, 26.0
    return w + 24, 30.0 + (13.0 if n.detail else 0.0)


@dataclass(eq=False)
class _Layout:
    d: Diagram
    vertices: dict[str, _Vertex] = field(default_factory=dict)
    layers: list[list[_Vertex]] = field(default_factory=list)
    chains: list[tuple[Edge, list[_Vertex]]] = field(default_factory=list)
    group_of: dict[str, int] = field(default_factory=dict)
    #: half the width of each group's frame; the frame is as wide as its widest box or its label
    frame_half: list[float] = field(default_factory=list)
    #: (upper id, lower id) of the links that belong to dead-letter edges
    dead_links: set[tuple[str, str]] = field(default_factory=set)

    def build(self) -> None:
        for n in self.d.nodes:
            w, h = _size(n)
            self.vertices[n.id] = _Vertex(n.id, n, w, h)
        for gi, g in enumerate(self.d.groups):
            for nid in g.nodes:
                self.group_of[nid] = gi
            widest = max(self.vertices[nid].width for nid in g.nodes)
            # The label sits bottom left, clear of the edges that leave the frame's centre.
            self.frame_half.append(max(widest / 2 + FRAME_PAD, text_width(g.label, 10) + 16))
        self._layer()
        self._split_long_edges()
        self._order()
        self._place_y()
        self._place_x()

    def _layer(self) -> None:
        # Longest path from the roots; nodes come in topological order from the diagram except
        # the dead-letter junction, so relax until nothing changes (the graph is a DAG).
        vs = self.vertices
        changed = True
        while changed:
            changed = False
            for e in self.d.edges:
                a, b = vs[e.src], vs[e.dst]
                if b.layer < a.layer + 1:
                    b.layer = a.layer + 1
                    changed = True

    def _split_long_edges(self) -> None:
        vs = self.vertices
        for k, e in enumerate(self.d.edges):
            a, b = vs[e.src], vs[e.dst]
            chain = [a]
            for layer in range(a.layer + 1, b.layer):
                dummy = _Vertex(f"d{k}_{layer}", None, 6.0, 0.0, layer)
                vs[dummy.id] = dummy
                chain.append(dummy)
            chain.append(b)
            for u, v in pairwise(chain):
                u.succs.append(v)
                v.preds.append(u)
                if e.dead:
                    self.dead_links.add((u.id, v.id))
            if e.label:
                chain[0].label_room = max(chain[0].label_room, text_width(e.label, LABEL_SIZE, mono=True))
            self.chains.append((e, chain))

    def _order(self) -> None:
        depth = max(v.layer for v in self.vertices.values()) + 1
        layers: list[list[_Vertex]] = [[] for _ in range(depth)]
        seen: set[str] = set()

        def visit(v: _Vertex) -> None:
            if v.id in seen:
                return
            seen.add(v.id)
            layers[v.layer].append(v)
            for s in v.succs:
                visit(s)

        # Depth first, main edges before dead-letter ones (they were added last), so the main
        # line starts on the left and dead-letter edges run down its right side.
        for v in list(self.vertices.values()):
            if not v.preds:
                visit(v)
        best = [list(layer) for layer in layers]
        best_crossings = _crossings(best)
        for sweep in range(SWEEPS):
            down = sweep % 2 == 0
            rng = range(1, depth) if down else range(depth - 2, -1, -1)
            for r in rng:
                ref = {v.id: i for i, v in enumerate(layers[r - 1 if down else r + 1])}
                cur = {v.id: i for i, v in enumerate(layers[r])}

                def key(v: _Vertex, ref: dict[str, int] = ref, cur: dict[str, int] = cur, down: bool = down) -> float:
                    near = [ref[n.id] for n in (v.preds if down else v.succs) if n.id in ref]
                    return sum(near) / len(near) if near else float(cur[v.id])

                layers[r].sort(key=key)
            crossings = _crossings(layers)
            if crossings < best_crossings:
                best, best_crossings = [list(layer) for layer in layers], crossings
        self.layers = best

    def _half(self, v: _Vertex) -> float:
        g = self.group_of.get(v.id)
        return v.width / 2 if g is None else self.frame_half[g]

    def _sep(self, a: _Vertex, b: _Vertex) -> float:
        """Least distance between the centres of ``a`` and its right neighbour ``b``."""
        gap = H_GAP if not (a.dummy or b.dummy) else H_GAP / 2
        # Edge labels are centred on their edge, so two neighbours' labels must fit side by side.
        return max(self._half(a) + self._half(b) + gap, (a.label_room + b.label_room) / 2 + 12)

    def _place_x(self) -> None:
        for layer in self.layers:
            x = 0.0
            for i, v in enumerate(layer):
                if i:
                    x += self._sep(layer[i - 1], v)
                v.x = x
        depth = len(self.layers)
        for _ in range(PLACEMENTS):
            for r in range(1, depth):
                self._align(self.layers[r], up=False)
            for r in range(depth - 2, -1, -1):
                self._align(self.layers[r], up=True)
        left = min(v.x - v.width / 2 for v in self.vertices.values())
        for v in self.vertices.values():
            v.x += MARGIN + FRAME_PAD - left

    def _align(self, layer: list[_Vertex], *, up: bool) -> None:
        desired = []
        weights = []
        for v in layer:
            near = v.succs if up else v.preds
            # A box lines up with its main-line neighbours; dead-letter edges bend around it.
            main = [n for n in near if ((v.id, n.id) if up else (n.id, v.id)) not in self.dead_links]
            near = main or near
            desired.append(sum(n.x for n in near) / len(near) if near else v.x)
            weights.append(DUMMY_WEIGHT if v.dummy else 1.0)
        seps = [self._sep(a, b) for a, b in pairwise(layer)]
        for v, x in zip(layer, _isotonic(desired, weights, seps), strict=True):
            v.x = x

    def _place_y(self) -> None:
        y = MARGIN
        for r, layer in enumerate(self.layers):
            tall = max((v.height for v in layer), default=0.0)
            if any(self._starts_group(v) for v in layer):
                y += FRAME_PAD
            for v in layer:
                v.y = y + (tall - v.height) / 2
                if v.dummy:
                    v.y, v.height = y, tall
            y += tall + V_GAP
            if r + 1 < len(self.layers) and any(self._ends_group(v) for v in layer):
                y += FRAME_PAD + FRAME_LABEL

    def _starts_group(self, v: _Vertex) -> bool:
        g = self.group_of.get(v.id)
        return g is not None and self.d.groups[g].nodes[0] == v.id

    def _ends_group(self, v: _Vertex) -> bool:
        g = self.group_of.get(v.id)
        return g is not None and self.d.groups[g].nodes[-1] == v.id


def _crossings(layers: list[list[_Vertex]]) -> int:
    total = 0
    for upper, lower in pairwise(layers):
        pos = {v.id: i for i, v in enumerate(lower)}
        edges = [(i, pos[s.id]) for i, v in enumerate(upper) for s in v.succs if s.id in pos]
        for k, (a1, b1) in enumerate(edges):
            for a2, b2 in edges[k + 1 :]:
                if (a1 - a2) * (b1 - b2) < 0:
                    total += 1
    return total


def _isotonic(desired: list[float], weights: list[float], seps: list[float]) -> list[float]:
    """x closest to ``desired`` (weighted least squares) with ``x[i+1] - x[i] >= seps[i]``.

    Shifting by the running sum of the gaps turns the constraint into "non-decreasing", which
    pool-adjacent-violators solves exactly.
    """
    offsets = [0.0]
    for s in seps:
        offsets.append(offsets[-1] + s)
    blocks: list[list[float]] = []  # [mean, weight, count]
    for d, w, o in zip(desired, weights, offsets, strict=True):
        blocks.append([d - o, w, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, c2 = blocks.pop()
            m1, w1, c1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    out: list[float] = []
    for mean, _, count in blocks:
        out.extend([mean] * int(count))
    return [y + o for y, o in zip(out, offsets, strict=True)]


# -- SVG ----------------------------------------------------------------------------------------


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _num(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _node_svg(v: _Vertex) -> str:
    n = v.node
    assert n is not None
    fill, stroke = PALETTE[n.kind]
    x0, y0, cx = v.x - v.width / 2, v.y, v.x
    parts = [f'<g class="node"><title>{_esc(n.tooltip)}</title>']
    if n.kind in ("tee", "merge", "dead"):
        parts.append(
            f'<ellipse cx="{_num(cx)}" cy="{_num(y0 + v.height / 2)}" rx="{_num(v.width / 2)}" '
            f'ry="{_num(v.height / 2)}" fill="{fill}" stroke="{stroke}"/>'
        )
    else:
        rx = 3 if n.kind == "step" else 8
        dash = ' stroke-dasharray="4,3"' if n.kind == "open" else ""
        parts.append(
            f'<rect x="{_num(x0)}" y="{_num(y0)}" width="{_num(v.width)}" height="{_num(v.height)}" '
            f'rx="{rx}" fill="{fill}" stroke="{stroke}"{dash}/>'
        )
    colour = "#666666" if n.kind == "open" else "#111111"
    size = FONT_SIZE if n.kind not in ("tee", "merge", "dead") else FONT_SIZE - 1
    text_y = y0 + (19.5 if not n.detail else 18.0)
    if n.kind in ("tee", "merge", "dead"):
        text_y = y0 + v.height / 2 + 4
    parts.append(
        f'<text x="{_num(cx)}" y="{_num(text_y)}" text-anchor="middle" font-size="{_num(size)}" '
        f'fill="{colour}">{_esc(n.label)}</text>'
    )
    if n.detail:
        parts.append(
            f'<text x="{_num(cx)}" y="{_num(y0 + 32)}" text-anchor="middle" font-size="{_num(DETAIL_SIZE)}" '
            f'fill="#555555">{_esc(n.detail)}</text>'
        )
    parts.append("</g>")
    return "".join(parts)


def _ports(vs: list[_Vertex], centre: float, width: float) -> dict[str, float]:
    """Spread the ends of several edges along one side of a box, ordered by the other end's x."""
    k = len(vs)
    step = min(14.0, width / (k + 1))
    ordered = sorted(vs, key=lambda v: v.x)
    return {v.id: centre + (i - (k - 1) / 2) * step for i, v in enumerate(ordered)}


class _Frames:
    def __init__(self, layout: _Layout) -> None:
        self.boxes: list[tuple[float, float, float, float]] = []
        for g, half in zip(layout.d.groups, layout.frame_half, strict=True):
            vs = [layout.vertices[n] for n in g.nodes]
            x0 = min(v.x for v in vs) - half
            x1 = max(v.x for v in vs) + half
            y0 = min(v.y for v in vs) - FRAME_PAD
            y1 = max(v.y + v.height for v in vs) + FRAME_PAD + FRAME_LABEL
            self.boxes.append((x0, y0, x1, y1))


def render_builtin(d: Diagram) -> str:
    """The diagram as a self-contained SVG document (no scripts, no external resources)."""
    lay = _Layout(d)
    lay.build()
    frames = _Frames(lay)
    out: list[str] = []
    for (x0, y0, x1, y1), g in zip(frames.boxes, d.groups, strict=True):
        fill, stroke = GROUP_COLOURS
        out.append(
            f'<g class="cluster"><title>{_esc(g.tooltip or g.label)}</title><rect x="{_num(x0)}" y="{_num(y0)}" '
            f'width="{_num(x1 - x0)}" height="{_num(y1 - y0)}" rx="8" fill="{fill}" stroke="{stroke}" '
            f'stroke-dasharray="5,3"/><text x="{_num(x0 + 8)}" y="{_num(y1 - 7)}" font-size="10" '
            f'fill="{stroke}">{_esc(g.label)}</text></g>'
        )
    outs: dict[str, list[_Vertex]] = {}
    ins: dict[str, list[_Vertex]] = {}

    def into_junction(e: Edge, b: _Vertex) -> bool:
        return e.dead and b.node is not None and b.node.kind == "dead"

    for e, chain in lay.chains:
        if not into_junction(e, chain[-1]):
            outs.setdefault(chain[0].id, []).append(chain[1])
            ins.setdefault(chain[-1].id, []).append(chain[-2])
    frame_of = {nid: frames.boxes[g] for nid, g in lay.group_of.items()}
    labels: list[str] = []
    for e, chain in lay.chains:
        a, b = chain[0], chain[-1]
        if into_junction(e, b):
            # Dead-letter edges leave from the right of a box, clear of the main line, and meet
            # in one point: many arrowheads side by side read as noise.
            sx, ex = a.x + max(a.width / 2 - 12, 0), b.x
        else:
            sx = _ports(outs[a.id], a.x, a.width)[chain[1].id]
            ex = _ports(ins[b.id], b.x, b.width)[chain[-2].id]
        points = [(sx, a.y + a.height)]
        for dummy in chain[1:-1]:
            points += [(dummy.x, dummy.y), (dummy.x, dummy.y + dummy.height)]
        points.append((ex, b.y - ARROW))
        path = [f"M{_num(points[0][0])},{_num(points[0][1])}"]
        for (x1, y1), (x2, y2) in pairwise(points):
            if x1 == x2:
                path.append(f"L{_num(x2)},{_num(y2)}")
            else:
                my = (y1 + y2) / 2
                path.append(f"C{_num(x1)},{_num(my)} {_num(x2)},{_num(my)} {_num(x2)},{_num(y2)}")
        colour = DEAD_COLOUR if e.dead else EDGE_COLOUR
        dash = ' stroke-dasharray="5,3" stroke-opacity="0.75"' if e.dead else ""
        out.append(
            f'<g class="edge"><path d="{" ".join(path)}" fill="none" stroke="{colour}" stroke-width="1.1"{dash}/>'
            f'<polygon points="{_num(ex - 4)},{_num(b.y - ARROW)} {_num(ex + 4)},{_num(b.y - ARROW)} '
            f'{_num(ex)},{_num(b.y)}" fill="{colour}"/></g>'
        )
        if e.label:
            # Between the visible ends of the first segment: outside any frame the edge crosses.
            (x1, y1), (x2, y2) = points[0], points[1]
            same = lay.group_of.get(a.id) is not None and lay.group_of.get(a.id) == lay.group_of.get(chain[1].id)
            if a.id in frame_of and not same:
                y1 = frame_of[a.id][3]
            if chain[1].id in frame_of and not same:
                y2 = frame_of[chain[1].id][1]
            lx, ly = (x1 + x2) / 2, (y1 + y2) / 2
            lw = text_width(e.label, LABEL_SIZE, mono=True) + 6
            labels.append(
                f'<g class="label"><rect x="{_num(lx - lw / 2)}" y="{_num(ly - 7)}" width="{_num(lw)}" height="14" '
                f'rx="3" fill="#ffffff" fill-opacity="0.92"/><text x="{_num(lx)}" y="{_num(ly + 3.5)}" '
                f'text-anchor="middle" font-family="{MONO}" font-size="{_num(LABEL_SIZE)}" '
                f'fill="{colour}">{_esc(e.label)}</text></g>'
            )
    for v in lay.vertices.values():
        if not v.dummy:
            out.append(_node_svg(v))
    out.extend(labels)
    right = max([v.x + max(v.width, v.label_room) / 2 for v in lay.vertices.values()] + [b[2] for b in frames.boxes])
    bottom = max([v.y + v.height for v in lay.vertices.values()] + [b[3] for b in frames.boxes])
    width = max(right + MARGIN, text_width(d.title, 10) + 2 * MARGIN)
    height = bottom + MARGIN + 16
    out.append(
        f'<text x="{_num(MARGIN)}" y="{_num(height - MARGIN + 2)}" font-size="10" fill="#666666">{_esc(d.title)}</text>'
    )
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_num(width)}" height="{_num(height)}" '
        f'viewBox="0 0 {_num(width)} {_num(height)}" font-family="{FONT}" role="img">'
        f"<title>{_esc(d.title)}</title>"
        f'<rect width="100%" height="100%" fill="#ffffff"/>'
    )
    return head + "".join(out) + "</svg>"
