"""Run ``n`` events through a pipeline with a slow sink; print the peak RSS as JSON.

Started by ``test_memory.py`` in a fresh interpreter per size, so each peak is its own. Events
are made lazily by a generator: what stays in memory is only what the pipeline holds.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from collections.abc import Iterator

from _workload import Click, keep, score

import flowpump as fp


def peak_rss_mb() -> float:
    """This process's peak resident set size, in MB.

    On Linux, VmHWM of /proc/self/status: ``getrusage().ru_maxrss`` keeps the high-water mark of
    the parent image the child was forked from (the benchmark's pytest process), across exec.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    # ru_maxrss is in KiB on Linux, bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 1e6


def clicks(n: int) -> Iterator[Click]:
    kinds = ("view", "click", "buy", "share")
    for i in range(n):
        yield Click(i, f"u{i % 10_000}", kinds[i % 4], float(i % 100), 1_700_000_000.0 + i)


def main(n: int) -> None:
    written = 0

    async def slow(s: object) -> None:
        # A sink slower than the source: a 1 ms round trip every 1024 events.
        nonlocal written
        written += 1
        if written % 1024 == 0:
            await asyncio.sleep(0.001)

    before = peak_rss_mb()
    t0 = time.perf_counter()
    report = (fp.from_iterable(clicks(n)) >> fp.map(score) >> fp.filter(keep) >> fp.sink(slow)).run()
    seconds = time.perf_counter() - t0
    assert report.events_in == n
    assert written == report.events_out
    print(json.dumps({"events": n, "peak_rss_mb": peak_rss_mb(), "before_run_mb": before, "seconds": seconds}))


if __name__ == "__main__":
    main(int(sys.argv[1]))
