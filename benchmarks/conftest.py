"""pytest wiring of the benchmarks: the size option, the input file, the summary table.

Sizes: ``FLOWPUMP_BENCH_SCALE=smoke`` (or ``--bench-scale=smoke``) runs tiny inputs in a few
seconds so CI keeps the suite alive; ``full`` (the default) runs the sizes of issue 3 and checks
its targets. The harness itself is in ``_harness.py``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from _harness import RESULTS, SCALES, Scale, summary_lines
from _workload import write_clicks


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--bench-scale",
        choices=sorted(SCALES),
        default=None,
        help="benchmark sizes (default: $FLOWPUMP_BENCH_SCALE or 'full')",
    )


@pytest.fixture(scope="session")
def scale(request: pytest.FixtureRequest) -> Scale:
    name = request.config.getoption("--bench-scale") or os.environ.get("FLOWPUMP_BENCH_SCALE", "full")
    if name not in SCALES:
        msg = f"FLOWPUMP_BENCH_SCALE={name!r}: use one of {sorted(SCALES)}"
        raise pytest.UsageError(msg)
    return SCALES[name]


@pytest.fixture(scope="session")
def anchor_input(scale: Scale, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("anchor") / "clicks.jsonl"
    write_clicks(path, scale.anchor_events)
    return path


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if RESULTS:
        terminalreporter.section("flowpump vs hand-written baselines")
        for line in summary_lines():
            terminalreporter.write_line(line)
