"""Per-stage statistics collected during a run, and the ``RunReport`` built from them.

Besides the counts, a run measures two things:

- **latency**: for every batch a sink writes, the time since its source batch was read (an
  envelope carries the read time; joined batches keep the oldest), recorded once per batch and
  weighted by its number of events into a histogram of fixed buckets (``LATENCY_BUCKETS``, the
  Prometheus style, 0.5 ms to 10 s). ``RunReport.latency_p50``/``latency_p99`` read it.
- **blocked time**: how long each stage's task waited for room in a full channel downstream
  (backpressure), in ``StageStats.blocked_seconds``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, Protocol

import msgspec

from .._errors import DeadLetter

Role = Literal["source", "step", "sink", "errors"]

#: Upper bounds (seconds) of the latency buckets; a last, unbounded bucket follows.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class Latency(msgspec.Struct, frozen=True):
    """A latency histogram (seconds per event), frozen: what ``RunReport.latency`` holds.

    ``counts[i]`` events took at most ``bounds[i]`` seconds and more than the bound before;
    the last count is of events above the last bound.

    >>> from flowpump.runtime._report import LatencyHistogram
    >>> h = LatencyHistogram()
    >>> h.observe(0.003, 99)
    >>> h.observe(0.2, 1)
    >>> lat = h.snapshot()
    >>> lat.count, round(lat.p50 * 1000, 2), round(lat.p99 * 1000, 2)
    (100, 3.76, 5.0)
    """

    bounds: tuple[float, ...] = LATENCY_BUCKETS
    counts: tuple[int, ...] = (0,) * (len(LATENCY_BUCKETS) + 1)
    #: Events observed, the sum of their latencies, and the largest latency seen.
    count: int = 0
    sum: float = 0.0
    max: float = 0.0

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (0..1), interpolated inside its bucket as Prometheus does; None if empty."""
        if self.count == 0:
            return None
        rank = q * self.count
        seen = 0
        for i, n in enumerate(self.counts):
            if n and seen + n >= rank:
                # Nothing took longer than ``max``: interpolate up to it, not past it.
                lower = self.bounds[i - 1] if i > 0 else 0.0
                upper = min(self.bounds[i], self.max) if i < len(self.bounds) else self.max
                return min(lower + (upper - lower) * (rank - seen) / n, self.max)
            seen += n
        return self.max

    @property
    def p50(self) -> float | None:
        """The median latency in seconds (None before any event was written)."""
        return self.quantile(0.5)

    @property
    def p99(self) -> float | None:
        """The 99th percentile latency in seconds (None before any event was written)."""
        return self.quantile(0.99)

    @property
    def mean(self) -> float | None:
        """The mean latency in seconds (None before any event was written)."""
        return self.sum / self.count if self.count else None

    def __add__(self, other: Latency) -> Latency:
        return Latency(
            self.bounds,
            tuple(a + b for a, b in zip(self.counts, other.counts, strict=True)),
            self.count + other.count,
            self.sum + other.sum,
            max(self.max, other.max),
        )


class LatencyHistogram:
    """The live histogram of a run: ``observe`` once per written batch (no per-event work)."""

    __slots__ = ("count", "counts", "max", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.count = 0
        self.sum = 0.0
        self.max = 0.0

    def observe(self, seconds: float, events: int) -> None:
        """``events`` events took ``seconds`` each."""
        self.counts[bisect_left(LATENCY_BUCKETS, seconds)] += events
        self.count += events
        self.sum += seconds * events
        if seconds > self.max:
            self.max = seconds

    def snapshot(self) -> Latency:
        """The histogram as it is now, frozen."""
        return Latency(LATENCY_BUCKETS, tuple(self.counts), self.count, self.sum, self.max)


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"


@dataclass(slots=True)
class StageStats:
    """Live counters of one stage; the runtime adds to them once per batch.

    Invariant for one-to-one stages: ``events_in == events_out + filtered + dead_lettered``.
    A splitting stage (flat_map, batch, tee) reports what it emitted as ``events_out``.
    """

    label: str
    kind: str
    role: Role
    group: int = 0
    events_in: int = 0
    events_out: int = 0
    filtered: int = 0
    dead_lettered: int = 0
    seconds: float = 0.0
    blocked_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class StageReport:
    """The final counts and time of one stage.

    ``group`` is the plan stage that ran it; fused steps share one group and its ``seconds``.
    """

    label: str
    kind: str
    role: Role
    group: int
    events_in: int
    events_out: int
    filtered: int
    dead_lettered: int
    seconds: float
    #: Seconds the stage's task waited for room downstream (set on the first stage of a task).
    blocked_seconds: float = 0.0


@dataclass(frozen=True)
class RunReport:
    """What a run did: totals, and where every event went, stage by stage.

    ``events_in`` counts events read by sources (including undecodable ones), ``events_out``
    events written by the sinks (each sink of a tee counts its own writes), ``filtered`` and
    ``dead_lettered`` are summed over all stages. ``dead_letter_samples`` keeps the first few.
    ``latency`` is the histogram of read-to-written times (``latency_p50``, ``latency_p99``);
    ``blocked_seconds`` the time stages waited on backpressure, summed.
    """

    events_in: int
    events_out: int
    filtered: int
    dead_lettered: int
    seconds: float
    stages: list[StageReport]
    dead_letter_samples: list[DeadLetter] = field(default_factory=list)
    stopped_early: bool = False
    latency: Latency = field(default_factory=Latency)

    @property
    def events_per_second(self) -> float:
        """Source events per second of wall time."""
        return self.events_in / self.seconds if self.seconds > 0 else 0.0

    @property
    def latency_p50(self) -> float | None:
        """Median seconds from a source reading an event to the sinks having written it."""
        return self.latency.p50

    @property
    def latency_p99(self) -> float | None:
        """99th percentile of the seconds from a source reading an event to the sinks having written it."""
        return self.latency.p99

    @property
    def blocked_seconds(self) -> float:
        """Seconds the stages' tasks waited for room downstream (backpressure), summed."""
        return sum(s.blocked_seconds for s in self.stages)

    def __str__(self) -> str:
        # The "blocked" column appears only when some stage was held back by backpressure.
        blocked = any(s.blocked_seconds >= 0.0005 for s in self.stages)
        head = ("stage", "in", "out", "filtered", "dead", "seconds") + (("blocked",) if blocked else ())
        rows = [head] + [
            (
                f"[{s.group}] {s.label}",
                str(s.events_in),
                str(s.events_out),
                str(s.filtered),
                str(s.dead_lettered),
                f"{s.seconds:.3f}",
            )
            + ((f"{s.blocked_seconds:.3f}",) if blocked else ())
            for s in self.stages
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = [
            "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
            for r in rows
        ]
        total = (
            f"events in {self.events_in}, out {self.events_out}, filtered {self.filtered}, "
            f"dead-lettered {self.dead_lettered} in {self.seconds:.3f}s "
            f"({self.events_per_second:,.0f} events/s)"
        )
        if self.latency.count:
            total += f", latency p50 {_ms(self.latency_p50)} p99 {_ms(self.latency_p99)}"
        if self.stopped_early:
            total += ", stopped early"
        return "\n".join([*lines, total])

    def _repr_html_(self) -> str:
        from ..notebook import report_html

        return report_html(self)


class _Counts(Protocol):
    # Read-only members, so frozen reports and mutable totals both qualify.
    @property
    def role(self) -> str: ...
    @property
    def events_in(self) -> int: ...
    @property
    def events_out(self) -> int: ...
    @property
    def filtered(self) -> int: ...
    @property
    def dead_lettered(self) -> int: ...
    @property
    def blocked_seconds(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Totals:
    """A pipeline's totals, derived from its stages by the one rule reports and statuses share.

    ``events_in`` is what sources read, ``events_out`` what sinks wrote (each sink of a tee
    counts its own writes), ``filtered``/``dead_lettered``/``blocked_seconds`` are summed over
    stages; the dead-letter branch (role ``errors``) is left out.
    """

    events_in: int
    events_out: int
    filtered: int
    dead_lettered: int
    blocked_seconds: float

    @classmethod
    def of(cls, stages: Iterable[_Counts]) -> Totals:
        """The totals of ``stages``."""
        main = [s for s in stages if s.role != "errors"]
        return cls(
            events_in=sum(s.events_in for s in main if s.role == "source"),
            events_out=sum(s.events_out for s in main if s.role == "sink"),
            filtered=sum(s.filtered for s in main),
            dead_lettered=sum(s.dead_lettered for s in main),
            blocked_seconds=sum(s.blocked_seconds for s in main),
        )


def build_report(
    stats: list[StageStats],
    seconds: float,
    samples: list[DeadLetter],
    *,
    stopped_early: bool,
    latency: Latency | None = None,
) -> RunReport:
    """Freeze live counters into a report."""
    stages = [
        StageReport(
            s.label,
            s.kind,
            s.role,
            s.group,
            s.events_in,
            s.events_out,
            s.filtered,
            s.dead_lettered,
            s.seconds,
            s.blocked_seconds,
        )
        for s in sorted(stats, key=lambda s: s.group)
    ]
    totals = Totals.of(stages)
    return RunReport(
        events_in=totals.events_in,
        events_out=totals.events_out,
        filtered=totals.filtered,
        dead_lettered=totals.dead_lettered,
        seconds=seconds,
        stages=stages,
        dead_letter_samples=list(samples),
        stopped_early=stopped_early,
        latency=latency if latency is not None else Latency(),
    )
