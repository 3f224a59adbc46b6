"""The anchor workload: JSON lines -> typed events -> map -> filter -> JSON lines file.

flowpump against, in the same run, a plain hand-written msgspec loop (line by line) and a batched
hand-written loop (decode_lines/encode_lines), all three with the same user functions; the three
output files must be byte for byte the same.
"""

from __future__ import annotations

from pathlib import Path

from _harness import Scale, compare
from _workload import Click, batched_loop, keep, plain_loop, score

import flowpump as fp


def test_anchor_jsonl_decode_map_filter_encode(benchmark, scale: Scale, anchor_input: Path, tmp_path: Path) -> None:
    out = {side: tmp_path / f"{side}.jsonl" for side in ("flowpump", "plain", "batched")}
    pipeline = fp.read_jsonl(anchor_input, Click) >> fp.map(score) >> fp.filter(keep) >> fp.write_jsonl(out["flowpump"])
    result = compare(
        benchmark,
        "anchor: read_jsonl >> map >> filter >> write_jsonl",
        scale.anchor_events,
        pipeline.run,
        {
            "plain hand loop": lambda: plain_loop(anchor_input, out["plain"]),
            "batched hand loop": lambda: batched_loop(anchor_input, out["batched"]),
        },
        scale.anchor_rounds,
    )
    expected = out["plain"].read_bytes()
    assert out["batched"].read_bytes() == expected
    assert out["flowpump"].read_bytes() == expected
    report = pipeline.run()
    assert report.events_in == scale.anchor_events
    assert report.events_in == report.events_out + report.filtered + report.dead_lettered
    if scale.check_targets:
        assert result.ratio("plain hand loop") >= 1.2, "target: >= 1.2x the plain hand loop"
        assert result.ratio("batched hand loop") >= 0.95, "target: >= 0.95x the batched hand loop"
