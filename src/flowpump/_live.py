"""Live views of a running pipeline: a table updated in place in a notebook, a bar in a terminal.

A *view* is told the counts so far (``update``) every ``interval`` seconds and the outcome once
(``finish``). A ``Ticker`` drives it from a thread, a task, or the thread that waits for the run;
views are never called from two threads at once.

Which view a run gets (``choose_view``): in a Jupyter kernel the notebook view; elsewhere the
terminal bar on stderr when it is a TTY, or when asked with ``progress=True``; none with
``progress=False``. A foreground run shows its view only once it has lasted ``DELAY`` seconds,
so quick runs and ``take()`` leave no trace.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Sequence, Sized
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._connector import SourceSpec
    from ._graph import Flow, Pipeline
    from .notebook import State
    from .runtime._report import RunReport

__all__ = [
    "NotebookView",
    "SourceTotal",
    "TerminalBar",
    "Ticker",
    "View",
    "choose_view",
    "display",
    "html_output",
    "in_notebook",
]

#: A foreground run shows a live view only after this many seconds.
DELAY = 1.0
#: Bytes sampled at the start of a file to estimate its number of lines.
SAMPLE_BYTES = 64 * 1024


def display(obj: object, **options: Any) -> Any:
    """``IPython.display.display`` (typed here: IPython leaves it unannotated)."""
    from IPython import display as ipd

    show: Callable[..., Any] = ipd.display
    return show(obj, **options)


def html_output(text: str) -> object:
    """An ``IPython.display.HTML`` object for ``text``."""
    from IPython import display as ipd

    make: Callable[[str], object] = ipd.HTML
    return make(text)


def in_notebook() -> bool:
    """True inside a Jupyter kernel (not a terminal IPython, not plain Python)."""
    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


# -- how far a bounded source has got -----------------------------------------------------------


def _sources(flow: Flow[Any]) -> list[SourceSpec]:
    if isinstance(flow.origin, tuple):
        return [s for f in flow.origin for s in _sources(f)]
    return [flow.origin]


class SourceTotal:
    """How many events the sources of a pipeline (or of several) will produce, when that can be known.

    A source may say so itself with ``progress() -> (done, total)`` in events; a sized iterable
    is counted exactly; an uncompressed file is estimated from its size and the line length of
    its first ``SAMPLE_BYTES`` (``exact`` is then False). Anything else is unbounded or unknown.
    """

    def __init__(self, pipeline: Pipeline | Sequence[Pipeline]) -> None:
        pipelines = pipeline if isinstance(pipeline, Sequence) else [pipeline]
        self.specs = [s for p in pipelines for s in _sources(p.flow)]
        self.exact = True
        self.total: float | None = 0.0
        for spec in self.specs:
            n = self._size(spec)
            if n is None:
                self.total = None
                break
            self.total = (self.total or 0.0) + n

    def _size(self, spec: SourceSpec) -> float | None:
        own = getattr(spec, "progress", None)
        if callable(own):
            return None  # asked at each update instead, see fraction()
        xs = getattr(spec, "xs", None)
        if isinstance(xs, Sized):
            return float(len(xs))
        path = getattr(spec, "path", None)
        if isinstance(path, (str, os.PathLike)):
            return self._estimate_lines(os.fspath(path))
        return None

    def _estimate_lines(self, path: str) -> float | None:
        if path.endswith(".gz"):
            return None
        try:
            size = os.path.getsize(path)
            with open(path, "rb") as f:
                head = f.read(SAMPLE_BYTES)
        except OSError:
            return None
        self.exact = False
        lines = head.count(b"\n")
        if size == 0 or not head:
            return 0.0
        return size / (len(head) / lines) if lines else 1.0

    @property
    def bounded(self) -> bool:
        """True when the input's size is known (or estimated), so a fraction can be shown."""
        if self.specs and all(callable(getattr(s, "progress", None)) for s in self.specs):
            return True
        return self.total is not None

    def fraction(self, events_in: int) -> float | None:
        """The part of the input read so far, in [0, 1], or None when unknown."""
        own = [getattr(s, "progress", None) for s in self.specs]
        if self.specs and all(callable(p) for p in own):
            done = total = 0.0
            for p in own:
                assert callable(p)
                d, t = p()
                done, total = done + d, total + t
            return min(done / total, 1.0) if total else None
        if self.total is None or self.total <= 0:
            return None
        return min(events_in / self.total, 1.0 if self.exact else 0.99)


# -- views ------------------------------------------------------------------------------------


class View:
    """Shows the progress of one run."""

    #: seconds between updates
    interval = 0.5

    def __init__(self, pipeline: Pipeline | Sequence[Pipeline], *, always: bool = False) -> None:
        self.bounds = SourceTotal(pipeline)
        #: show the outcome even of a run too short to have shown any progress
        self.always = always
        self._last: tuple[float, list[int]] | None = None
        self.rates: list[float] = []
        self.rate = 0.0

    def _rates(self, report: RunReport) -> None:
        """Recent events/s per stage and at the sources, smoothed over a few updates."""
        now = time.perf_counter()
        counts = [s.events_in for s in report.stages]
        if self._last is None or len(self._last[1]) != len(counts):
            self.rates = [c / report.seconds if report.seconds > 0 else 0.0 for c in counts]
            self.rate = report.events_per_second
        else:
            t0, before = self._last
            dt = max(now - t0, 1e-6)
            fresh = [(c - b) / dt for c, b in zip(counts, before, strict=True)]
            self.rates = [0.5 * r + 0.5 * f for r, f in zip(self.rates, fresh, strict=True)]
            src = sum(c - b for c, b, s in zip(counts, before, report.stages, strict=True) if s.role == "source")
            self.rate = 0.5 * self.rate + 0.5 * src / dt
        self._last = (now, counts)

    def update(self, report: RunReport) -> None:
        """Show the counts so far."""
        raise NotImplementedError

    def finish(self, report: RunReport | None, error: BaseException | None) -> None:
        """Show the outcome: the final report, or the error that ended the run."""
        raise NotImplementedError


class NotebookView(View):
    """A table in the cell output, replaced in place through an IPython display handle.

    ``keep_table``: at the end, leave the final table (for a background run, whose report is
    not displayed otherwise) rather than a one-line summary (``run()`` returns the report, which
    the cell shows itself).
    """

    def __init__(self, pipeline: Pipeline, *, keep_table: bool, always: bool = False) -> None:
        super().__init__(pipeline, always=always)
        self.keep_table = keep_table
        self.handle: Any = None
        self._lock = threading.Lock()
        from IPython import get_ipython

        shell = get_ipython()
        #: the execution count of the cell this view belongs to
        self.cell = getattr(shell, "execution_count", None)

    @property
    def shown(self) -> bool:
        """True once the view is in a cell's output."""
        return self.handle is not None

    def _show(self, html: str) -> None:
        with self._lock:
            if self.handle is None:
                self.handle = display(html_output(html), display_id=True)
            else:
                self.handle.update(html_output(html))

    def show_now(self, report: RunReport | None) -> None:
        """Put the view in the output at once (counts so far, or "starting" before any)."""
        from .notebook import live_html

        if report is None:
            self._show(live_html(None, "starting"))
        else:
            self.update(report)

    def update(self, report: RunReport) -> None:
        from .notebook import live_html

        self._rates(report)
        fraction = self.bounds.fraction(report.events_in)
        self._show(live_html(report, "running", rates=self.rates, rate=self.rate, fraction=fraction))

    def finish(self, report: RunReport | None, error: BaseException | None) -> None:
        from .notebook import live_html

        if self.handle is None and not (self.keep_table or self.always):
            return  # a quick run: nothing was shown, nothing to close
        if report is None:
            report = getattr(error, "report", None)
        state: State = "failed" if error is not None else "finished"
        if error is None and report is not None and report.stopped_early:
            state = "stopped"
        self._show(live_html(report, state, error=error, table=self.keep_table or error is not None))


class TerminalBar(View):
    """One line on stderr, redrawn with ``\\r``: percent (when known), counts and events/s.

    ``title`` starts the line (an application names its pipelines there).
    """

    interval = 0.2

    def __init__(
        self,
        pipeline: Pipeline | Sequence[Pipeline],
        stream: IO[str] | None = None,
        *,
        always: bool = False,
        title: str = "flowpump",
    ) -> None:
        super().__init__(pipeline, always=always)
        self.title = title
        self.stream = stream if stream is not None else sys.stderr
        self.width = 0
        encoding = getattr(self.stream, "encoding", None) or "ascii"
        try:
            "█▏".encode(encoding)
            self.blocks = "█"
        except (UnicodeEncodeError, LookupError):
            self.blocks = "#"

    def _columns(self) -> int:
        return max(shutil.get_terminal_size((100, 24)).columns - 1, 40)

    def line(self, report: RunReport, fraction: float | None) -> str:
        """The text of the bar for ``report``."""
        parts = [
            f"{report.events_in:,} in",
            f"{report.events_out:,} out",
        ]
        if report.filtered:
            parts.append(f"{report.filtered:,} filtered")
        if report.dead_lettered:
            parts.append(f"{report.dead_lettered:,} dead")
        parts.append(f"{_si(self.rate)} ev/s")
        parts.append(_clock(report.seconds))
        counts = " · ".join(parts)
        if fraction is None:
            return f"{self.title} {counts}"
        approx = "" if self.bounds.exact else "~"
        cells = 20
        filled = int(fraction * cells)
        bar = self.blocks * filled + " " * (cells - filled)
        return f"{self.title} {approx}{fraction * 100:3.0f}% |{bar}| {counts}"

    def _write(self, text: str, end: str = "") -> None:
        text = text[: self._columns()]
        pad = " " * max(self.width - len(text), 0)
        self.width = len(text)
        self.stream.write("\r" + text + pad + end)
        self.stream.flush()

    def update(self, report: RunReport) -> None:
        self._rates(report)
        self._write(self.line(report, self.bounds.fraction(report.events_in)))

    def finish(self, report: RunReport | None, error: BaseException | None) -> None:
        if not (self.width or self.always):
            return  # a quick run: nothing was shown
        if report is None:
            report = getattr(error, "report", None)
        if report is None:
            if self.width:
                self._write(f"{self.title} failed: {type(error).__name__}", "\n")
            return
        self.rate = report.events_per_second
        fraction = 1.0 if error is None and not report.stopped_early else self.bounds.fraction(report.events_in)
        if error is not None:
            fraction = None
        text = self.line(report, fraction)
        if error is not None:
            text += f" · failed: {type(error).__name__}"
        elif report.stopped_early:
            text += " · stopped"
        self._write(text, "\n")


def _si(x: float) -> str:
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if x >= scale:
            return f"{x / scale:.1f}{unit}"
    return f"{x:.0f}"


def _clock(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(int(seconds), 60)
    return f"{m}:{s:02d}"


def choose_view(pipeline: Pipeline, progress: bool | None, *, keep_table: bool, tty: bool) -> View | None:
    """The view a run gets (see the module docstring).

    ``keep_table``: the notebook view ends on the final table (a background run);
    ``tty``: with ``progress=None``, draw the bar when stderr is a terminal (``run()`` does;
    ``arun()`` and ``start()``, used inside applications, draw it only when asked).
    """
    if progress is False:
        return None
    always = progress is True
    if in_notebook():
        return NotebookView(pipeline, keep_table=keep_table, always=always)
    if progress or (tty and sys.stderr is not None and sys.stderr.isatty()):
        return TerminalBar(pipeline, always=always)
    return None


class Ticker:
    """Feeds a view the counts of a run at its interval, after an initial ``delay``."""

    def __init__(self, view: View, snapshot: Callable[[], RunReport | None], *, delay: float) -> None:
        self.view = view
        self.snapshot = snapshot
        self.delay = delay
        self.started = time.perf_counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def poll(self) -> None:
        """Update the view if the delay has passed and the run has started."""
        if time.perf_counter() - self.started < self.delay:
            return
        report = self.snapshot()
        if report is not None:
            self.view.update(report)

    def in_thread(self) -> Ticker:
        """Poll from a daemon thread (in the caller's context, so notebook output finds its cell)."""
        ctx = contextvars.copy_context()

        def loop() -> None:
            while not self._stop.wait(self._next_wait()):
                ctx.run(self.poll)

        self._thread = threading.Thread(target=loop, name="flowpump-live", daemon=True)
        self._thread.start()
        return self

    def in_loop(self) -> Ticker:
        """Poll from a task in the running loop."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(self._next_wait())
                self.poll()

        self._task = asyncio.get_running_loop().create_task(loop())
        return self

    def _next_wait(self) -> float:
        left = self.delay - (time.perf_counter() - self.started)
        return max(left, self.view.interval) if left > 0 else self.view.interval

    def close(self, report: RunReport | None, error: BaseException | None) -> None:
        """Stop polling and show the outcome (once)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self.view.finish(report, error)
