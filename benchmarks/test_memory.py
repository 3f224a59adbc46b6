"""Peak memory through a slow sink: bounded channels hold the source back, so RSS stays flat.

Each size runs in a fresh interpreter (``_rss_worker.py``); the peak RSS of the bigger run must
be under 100 MB and no more than a few MB above the smaller run's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from _harness import Scale, record

HERE = Path(__file__).parent


def _peak(n: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(
        [sys.executable, str(HERE / "_rss_worker.py"), str(n)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=600,
    ).stdout
    result: dict[str, Any] = json.loads(out.splitlines()[-1])
    return result


def test_peak_rss_is_flat_in_the_input_size(benchmark: Any, scale: Scale) -> None:
    small_n, big_n = scale.rss_events
    got: dict[str, dict[str, Any]] = {}

    def measure() -> None:
        got["small"] = _peak(small_n)
        got["big"] = _peak(big_n)

    benchmark.pedantic(measure, rounds=1, iterations=1)
    small, big = got["small"], got["big"]
    growth = big["peak_rss_mb"] - small["peak_rss_mb"]
    notes = {
        f"peak RSS at {small_n:,}": f"{small['peak_rss_mb']:.1f} MB",
        f"peak RSS at {big_n:,}": f"{big['peak_rss_mb']:.1f} MB",
        "before the run": f"{big['before_run_mb']:.1f} MB",
        f"{big_n:,} events in": f"{big['seconds']:.1f} s",
    }
    benchmark.extra_info.update(small=small, big=big, growth_mb=round(growth, 2))
    record("memory: from_iterable(generator) >> map >> filter >> slow async sink", big_n, notes)
    print("\nmemory: " + ", ".join(f"{k} {v}" for k, v in notes.items()))
    # Flat: the bigger input may not cost more than a few MB (allocator noise) over the smaller one.
    assert growth < max(5.0, 0.05 * small["peak_rss_mb"]), f"peak RSS grew by {growth:.1f} MB with the input"
    if scale.check_targets:
        assert big["peak_rss_mb"] < 100, "target: peak RSS < 100 MB at 10M events"
