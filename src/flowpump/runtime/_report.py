"""Per-stage statistics collected during a run, and the ``RunReport`` built from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .._errors import DeadLetter

Role = Literal["source", "step", "sink", "errors"]


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


@dataclass(frozen=True)
class RunReport:
    """What a run did: totals, and where every event went, stage by stage.

    ``events_in`` counts events read by sources (including undecodable ones), ``events_out``
    events written by the sinks (each sink of a tee counts its own writes), ``filtered`` and
    ``dead_lettered`` are summed over all stages. ``dead_letter_samples`` keeps the first few.
    """

    events_in: int
    events_out: int
    filtered: int
    dead_lettered: int
    seconds: float
    stages: list[StageReport]
    dead_letter_samples: list[DeadLetter] = field(default_factory=list)
    stopped_early: bool = False

    @property
    def events_per_second(self) -> float:
        """Source events per second of wall time."""
        return self.events_in / self.seconds if self.seconds > 0 else 0.0

    def __str__(self) -> str:
        head = ("stage", "in", "out", "filtered", "dead", "seconds")
        rows = [head] + [
            (
                f"[{s.group}] {s.label}",
                str(s.events_in),
                str(s.events_out),
                str(s.filtered),
                str(s.dead_lettered),
                f"{s.seconds:.3f}",
            )
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
        if self.stopped_early:
            total += ", stopped early"
        return "\n".join([*lines, total])

    def _repr_html_(self) -> str:
        from ..notebook import report_html

        return report_html(self)


def build_report(
    stats: list[StageStats], seconds: float, samples: list[DeadLetter], *, stopped_early: bool
) -> RunReport:
    """Freeze live counters into a report."""
    stages = [
        StageReport(s.label, s.kind, s.role, s.group, s.events_in, s.events_out, s.filtered, s.dead_lettered, s.seconds)
        for s in sorted(stats, key=lambda s: s.group)
    ]
    main = [s for s in stages if s.role != "errors"]
    return RunReport(
        events_in=sum(s.events_in for s in main if s.role == "source"),
        events_out=sum(s.events_out for s in main if s.role == "sink"),
        filtered=sum(s.filtered for s in main),
        dead_lettered=sum(s.dead_lettered for s in main),
        seconds=seconds,
        stages=stages,
        dead_letter_samples=list(samples),
        stopped_early=stopped_early,
    )
