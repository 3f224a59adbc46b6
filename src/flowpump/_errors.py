"""Errors and dead letters.

Exception hierarchy::

    FlowpumpError
    ├── PipelineTypeError     build time: two stages disagree about the element type
    ├── PipelineDefinitionError  build time: a graph that cannot run (bad argument, reused sink)
    ├── PipelineError         run time: the pipeline stopped (a sink kept failing, a source broke)
    └── PermanentSinkError    run time, raised by a sink: retrying cannot help (the run stops at once)

Per-event failures are never exceptions that stop a run: they become `DeadLetter` records.
"""

from typing import Any

import msgspec

__all__ = [
    "DeadLetter",
    "FlowpumpError",
    "PermanentSinkError",
    "PipelineDefinitionError",
    "PipelineError",
    "PipelineTypeError",
]


class FlowpumpError(Exception):
    """Base class of every error flowpump raises on its own account."""


class PipelineTypeError(FlowpumpError, TypeError):
    """Two connected stages disagree about the type of the events between them.

    Raised while the pipeline expression is built, before anything runs::

        fp.read_lines("a.txt") >> fp.map(parse_click)   # parse_click(c: Click) -> ...
        # PipelineTypeError: stage 'map(parse_click)' expects `Click`, but
        # 'read_lines(a.txt)' produces `str`
    """

    def __init__(
        self,
        message: str,
        *,
        upstream: str,
        downstream: str,
        produced: object,
        expected: object,
    ) -> None:
        super().__init__(message)
        self.upstream = upstream
        self.downstream = downstream
        self.produced = produced
        self.expected = expected


class PipelineDefinitionError(FlowpumpError, ValueError):
    """A pipeline or operator was given arguments it cannot run with."""


class PipelineError(FlowpumpError):
    """A run stopped before its sources were exhausted.

    ``stage`` names the stage that failed; ``report`` holds the counts up to the failure.
    The cause (for example the sink's last exception) is chained as ``__cause__``.
    """

    def __init__(self, message: str, *, stage: str, report: "Any" = None) -> None:
        super().__init__(message)
        self.stage = stage
        self.report = report


class PermanentSinkError(FlowpumpError):
    """A sink's write failed in a way that no retry can fix; the run stops at once.

    A failing write is normally retried with backoff (a database restarting, a full disk being
    cleared). A sink raises this instead, chaining the underlying error with ``from``, when the
    same batch is bound to fail again: an SQL syntax error, a table that does not exist, an upsert
    without the unique constraint it needs. The runtime then stops the run with a
    ``PipelineError`` whose ``__cause__`` is this error, and an application does not restart
    the pipeline (its state becomes ``failed``). A user's own ``fp.sink(f)`` may raise it too:

    >>> import flowpump as fp
    >>> def store(x: int) -> None:
    ...     raise fp.PermanentSinkError("the archive is read-only")
    >>> try:
    ...     (fp.from_iterable([1]) >> fp.sink(store)).run()
    ... except fp.PipelineError as exc:
    ...     print(type(exc.__cause__).__name__)
    PermanentSinkError
    """


class DeadLetter(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An event that could not be processed, with the reason and where it came from.

    ``stage`` is the label of the stage that rejected it, ``error`` the error text,
    ``event`` the event as that stage received it (or ``raw``, the undecodable bytes),
    and ``position`` where it came from in the source, such as ``clicks.jsonl:17``.

    >>> DeadLetter(stage="map(parse)", error="ValueError: bad", raw=b"x", position="a.jsonl:3")
    DeadLetter(stage='map(parse)', error='ValueError: bad', event=None, raw=b'x', position='a.jsonl:3')
    """

    stage: str
    error: str
    event: Any = None
    raw: bytes | None = None
    position: str | None = None
