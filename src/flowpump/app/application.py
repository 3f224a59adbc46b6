"""``fp.Application``: pipelines, connections, lookups and triggers run as one service.

Lifecycle of ``run()``/``arun()``: read settings -> open connections (health-checked) -> load
lookups -> start pipelines (each under a supervisor) and lookup refreshes -> wait until every
pipeline has ended, or until ``stop()`` / SIGINT / SIGTERM -> drain -> close connections.

Drain: sources are asked to stop; events already read go through, sinks flush and sources are
acknowledged. A pipeline still running after ``drain_timeout`` seconds is cancelled (its
unacknowledged input stays unacknowledged). A second signal cancels at once.

Supervision: a pipeline whose run raises (a sink that kept failing, a source that broke) is
restarted after a delay that doubles from ``restart_delay`` up to ``max_restart_delay``; after
``max_restarts`` restarts in a row it is marked ``failed``. A restart resumes: its sources go on
after what they had acknowledged (a file source from its acknowledged line), so what was written
is not read again (only the batch in flight, at least once). A run stopped by an error that
cannot pass on a retry (``fp.PermanentSinkError``: a missing table, an SQL syntax error) is
marked ``failed`` at once. Its state is in ``app.status()``.

Background pipelines (``app.add(..., background=True)``: a heartbeat, a poll) do not keep the
application alive: once every other pipeline has ended, they are stopped the way ``stop()``
stops them (sources stop, in-flight events are written) and end as ``finished`` (``stopped`` if
one was waiting to restart after a failure). An application of bounded pipelines and background
ones therefore runs to completion by itself. When every pipeline is a background one, they run
until stopped.

``run()`` draws a progress bar on stderr when it is a terminal (``progress=True`` forces it,
``False`` turns it off): the counts of the pipelines whose sources are bounded (files, lists),
and how far they have read.

>>> import flowpump as fp
>>> app = fp.Application()
>>> out = fp.collect[int]()
>>> _ = app.add("squares", fp.from_iterable([1, 2, 3]) >> fp.map(lambda x: x * x) >> out)
>>> app.run().pipelines["squares"].state, out.items
('finished', [1, 4, 9])
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

import msgspec
from typing_extensions import TypeVar as TypeVarD

from .._errors import FlowpumpError, PermanentSinkError, PipelineDefinitionError
from .._graph import Pipeline
from .._live import DELAY, SourceTotal, TerminalBar, Ticker
from ..runtime._executor import Progress, execute
from ..runtime._report import Latency, RunReport, StageReport, Totals
from ..runtime._run import Background, _in_running_loop
from .clock import Clock, SystemClock, use_clock
from .config import load_settings
from .connections import Connection
from .lookups import Lookup, LookupRefreshError
from .poll import wait_tick
from .triggers import Hub, Trigger, use_hub

__all__ = ["AppStatus", "Application", "ApplicationError", "PipelineStatus"]

logger = logging.getLogger("flowpump.app")

C = TypeVarD("C", default=None)
CN = TypeVar("CN", bound=Connection)
K = TypeVar("K")
V = TypeVar("V")

PipelineState = Literal["pending", "running", "restarting", "finished", "failed", "stopped"]
AppState = Literal["created", "starting", "running", "draining", "stopped", "failed"]


class ApplicationError(FlowpumpError):
    """The application could not start (a connection or a lookup failed) or was misdefined."""


class StageTotals(msgspec.Struct):
    """Counts of one stage, summed over every run of its pipeline.

    ``group`` is the plan stage (task) that ran it and ``role`` what it is (source, step, sink,
    errors); ``(group, label)`` names a stage uniquely (a label repeated within one group gets
    `` #2``, `` #3`` ...), as ``/metrics`` does with its ``group`` and ``role`` labels.
    """

    label: str
    events_in: int = 0
    events_out: int = 0
    filtered: int = 0
    dead_lettered: int = 0
    seconds: float = 0.0
    blocked_seconds: float = 0.0
    group: int = 0
    role: str = ""


class PipelineStatus(msgspec.Struct):
    """What one pipeline is doing: ``state``, restarts, the last error, and counts over all runs.

    ``latency`` is the histogram of seconds from a source reading an event to the sinks having
    written it (``latency_p50``/``latency_p99`` read from it); ``blocked_seconds`` the time its
    stages waited for room downstream (backpressure).
    """

    name: str
    state: PipelineState = "pending"
    background: bool = False
    restarts: int = 0
    last_error: str | None = None
    runs: int = 0
    events_in: int = 0
    events_out: int = 0
    filtered: int = 0
    dead_lettered: int = 0
    blocked_seconds: float = 0.0
    latency_p50: float | None = None
    latency_p99: float | None = None
    latency: Latency = msgspec.field(default_factory=Latency)
    stages: list[StageTotals] = msgspec.field(default_factory=list)


class LookupStatus(msgspec.Struct):
    """A lookup's size, version, last load time (epoch seconds) and last refresh error."""

    name: str
    size: int
    version: int
    loaded_at: float | None
    last_error: str | None
    failures: int


class ConnectionStatus(msgspec.Struct):
    """Whether a connection is open."""

    name: str
    label: str
    open: bool


class AppStatus(msgspec.Struct):
    """The whole application, as ``/status`` serves it (``msgspec.json.encode(app.status())``)."""

    state: AppState
    pipelines: dict[str, PipelineStatus]
    lookups: dict[str, LookupStatus]
    connections: dict[str, ConnectionStatus]


@dataclass
class _Entry:
    """The supervisor's record of one pipeline."""

    name: str
    pipeline: Pipeline
    restart: bool
    background: bool = False
    state: PipelineState = "pending"
    restarts: int = 0
    runs: int = 0
    last_error: str | None = None
    #: Stage counts of the runs that have ended, by "[group] label".
    done: dict[str, StageTotals] = field(default_factory=dict)
    #: Latency of the runs that have ended.
    latency: Latency = field(default_factory=Latency)
    last_report: RunReport | None = None
    progress: Progress | None = None
    stop: asyncio.Event | None = None
    #: Set (per ``arun``) when a background pipeline is released: its last run ends as finished.
    release: asyncio.Event | None = None

    @staticmethod
    def _fold(into: dict[str, StageTotals], report: RunReport | None) -> None:
        if report is None:
            return
        seen: dict[str, int] = {}
        for s in report.stages:
            key = f"[{s.group}] {s.label}"
            seen[key] = n = seen.get(key, 0) + 1
            label = s.label if n == 1 else f"{s.label} #{n}"  # fused steps with one label
            if n > 1:
                key = f"[{s.group}] {label}"
            t = into.setdefault(key, StageTotals(label, group=s.group, role=s.role))
            t.events_in += s.events_in
            t.events_out += s.events_out
            t.filtered += s.filtered
            t.dead_lettered += s.dead_lettered
            t.seconds += s.seconds
            t.blocked_seconds += s.blocked_seconds

    def ended(self, report: RunReport | None) -> None:
        """Fold the counts of a run that ended into the totals."""
        self._fold(self.done, report)
        if report is not None:
            self.latency = self.latency + report.latency
            self.last_report = report
        self.progress = None

    def status(self) -> PipelineStatus:
        stages = {k: msgspec.structs.replace(t) for k, t in self.done.items()}
        latency = self.latency
        if self.progress is not None and not self.progress.finished:
            live = self.progress.snapshot()
            self._fold(stages, live)
            if live is not None:
                latency = latency + live.latency
        totals = Totals.of(stages.values())
        return PipelineStatus(
            name=self.name,
            state=self.state,
            background=self.background,
            restarts=self.restarts,
            last_error=self.last_error,
            runs=self.runs,
            events_in=totals.events_in,
            events_out=totals.events_out,
            filtered=totals.filtered,
            dead_lettered=totals.dead_lettered,
            blocked_seconds=totals.blocked_seconds,
            latency_p50=latency.p50,
            latency_p99=latency.p99,
            latency=latency,
            stages=list(stages.values()),
        )


@dataclass
class _LookupEntry:
    name: str
    lookup: Lookup[Any, Any]
    refresh: Trigger | None


class Application(Generic[C]):
    """A service: named pipelines beside shared connections, lookups and triggers.

    ``config`` is a msgspec Struct type: ``app.settings`` is decoded from the TOML file given as
    ``config_file`` (or the ``FLOWPUMP_CONFIG`` environment variable, which ``flowpump run
    --config`` sets) with ``FLOWPUMP_*`` environment overrides.
    """

    def __init__(
        self,
        config: type[C] | None = None,
        *,
        config_file: str | os.PathLike[str] | None = None,
        env_prefix: str = "FLOWPUMP_",
        drain_timeout: float = 30.0,
        restart_delay: float = 0.5,
        max_restart_delay: float = 30.0,
        max_restarts: int | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self.config_file = config_file
        self.env_prefix = env_prefix
        self.drain_timeout = drain_timeout
        self.restart_delay = restart_delay
        self.max_restart_delay = max_restart_delay
        self.max_restarts = max_restarts
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.hub = Hub()
        self._settings: Any = None
        self._settings_loaded = False
        self._connections: dict[str, Connection] = {}
        self._lookups: dict[str, _LookupEntry] = {}
        self._pipelines: dict[str, _Entry] = {}
        self._state: AppState = "created"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._stop_requested = False
        self._force: asyncio.Event | None = None
        self._started = 0.0
        #: The pipelines the progress bar counts (those with bounded sources).
        self._bar: list[_Entry] = []

    # -- settings ---------------------------------------------------------------------------
    @property
    def settings(self) -> C:
        """The settings (read on first use; None when the application has no ``config``)."""
        if not self._settings_loaded:
            self.load_settings()
        return self._settings  # type: ignore[no-any-return]

    def load_settings(self, path: str | os.PathLike[str] | None = None) -> C:
        """(Re)read the settings, from ``path`` if given; raise ``ConfigError`` if they do not fit."""
        if path is not None:
            self.config_file = path
        if self.config is None:
            self._settings = None
        else:
            file = self.config_file if self.config_file is not None else os.environ.get("FLOWPUMP_CONFIG")
            self._settings = load_settings(self.config, file, prefix=self.env_prefix)
        self._settings_loaded = True
        return self._settings  # type: ignore[no-any-return]

    # -- definition -------------------------------------------------------------------------
    def _check_name(self, name: str, kind: str, taken: dict[str, Any]) -> None:
        if not isinstance(name, str) or not name:
            msg = f"app.{kind}(name, ...): the name must be a non-empty string, got {name!r}"
            raise PipelineDefinitionError(msg)
        if name in taken:
            msg = f"app.{kind}({name!r}, ...): the name {name!r} is already used"
            raise PipelineDefinitionError(msg)
        if self._state != "created":
            msg = f"app.{kind}({name!r}, ...) must be called before the application starts"
            raise PipelineDefinitionError(msg)

    def connection(self, name: str, conn: CN) -> CN:
        """Register a connection: opened at start, closed at shutdown. Returns ``conn``."""
        self._check_name(name, "connection", self._connections)
        if not isinstance(conn, Connection):
            msg = f"app.connection({name!r}, ...) expects fp.SQLite, fp.Postgres or fp.HTTPClient, got {conn!r}"
            raise PipelineDefinitionError(msg)
        self._connections[name] = conn
        return conn

    def lookup(self, name: str, lookup: Lookup[K, V], *, refresh: Trigger | None = None) -> Lookup[K, V]:
        """Register a lookup: loaded at start (before any pipeline), then on each ``refresh`` firing."""
        self._check_name(name, "lookup", self._lookups)
        if not isinstance(lookup, Lookup):
            msg = f"app.lookup({name!r}, ...) expects a fp.Lookup, got {lookup!r}"
            raise PipelineDefinitionError(msg)
        if refresh is not None and not isinstance(refresh, Trigger):
            msg = f"app.lookup({name!r}, refresh={refresh!r}) expects a trigger such as fp.every(60)"
            raise PipelineDefinitionError(msg)
        lookup.name = name
        self._lookups[name] = _LookupEntry(name, lookup, refresh)
        return lookup

    def add(self, name: str, pipeline: Pipeline, *, restart: bool = True, background: bool = False) -> Pipeline:
        """Register a pipeline, supervised (restarted with backoff when it fails, unless ``restart=False``).

        ``background=True``: the pipeline does not keep the application running; it is stopped
        (drained) once every other pipeline has ended. For heartbeats and polls beside bounded work.
        """
        self._check_name(name, "add", self._pipelines)
        if not isinstance(pipeline, Pipeline):
            msg = f"app.add({name!r}, ...) expects a pipeline (flow >> sink), got {pipeline!r}"
            raise PipelineDefinitionError(msg)
        self._pipelines[name] = _Entry(name, pipeline, restart, background)
        return pipeline

    def publish(self, topic: str) -> None:
        """Fire the ``fp.on(topic)`` triggers of this application (safe from any thread)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            self.hub.publish(topic)
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self.hub.publish(topic)
        else:
            loop.call_soon_threadsafe(self.hub.publish, topic)

    # -- status -----------------------------------------------------------------------------
    @property
    def state(self) -> AppState:
        """``created``, ``starting``, ``running``, ``draining``, ``stopped`` or ``failed``."""
        return self._state

    def status(self) -> AppStatus:
        """Pipelines (state, restarts, last error, counts), lookups and connections, now."""
        return AppStatus(
            state=self._state,
            pipelines={n: e.status() for n, e in self._pipelines.items()},
            lookups={
                n: LookupStatus(
                    n, len(e.lookup), e.lookup.version, e.lookup.loaded_at, e.lookup.last_error, e.lookup.failures
                )
                for n, e in self._lookups.items()
            },
            connections={n: ConnectionStatus(n, c.label, c.is_open) for n, c in self._connections.items()},
        )

    @property
    def reports(self) -> dict[str, RunReport]:
        """The report of each pipeline's last run that has ended, by pipeline name."""
        return {n: e.last_report for n, e in self._pipelines.items() if e.last_report is not None}

    # -- running ----------------------------------------------------------------------------
    def stop(self) -> None:
        """Begin the drain (safe from any thread and from signal handlers); a second call forces."""
        loop = self._loop
        if loop is None or loop.is_closed():
            self._stop_requested = True
            return
        loop.call_soon_threadsafe(self._request_stop)

    def _request_stop(self) -> None:
        assert self._stopping is not None
        assert self._force is not None
        if self._stopping.is_set():
            logger.warning("second stop request: cancelling the pipelines now")
            self._force.set()
        self._stopping.set()
        # Stop the sources right here, not when the supervisor task next runs: a source busy
        # with CPU-heavy batches gives the loop one turn per batch, and waking the supervisor
        # takes several turns.
        for entry in self._pipelines.values():
            if entry.stop is not None:
                entry.stop.set()

    def run(self, *, http: str | None = None, progress: bool | None = None) -> AppStatus:
        """Run until every pipeline ends or a signal stops it; return the final status.

        ``progress``: a bar on stderr for the pipelines with bounded sources (None: when stderr
        is a terminal, after a second).
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.arun(http=http, progress=progress))
        msg = "app.run() cannot run inside a running event loop: use `await app.arun()` or `app.start()`"
        raise ApplicationError(msg)

    async def arun(
        self, *, http: str | None = None, handle_signals: bool = True, progress: bool | None = False
    ) -> AppStatus:
        """Run in the current event loop (see ``run``). ``http="host:port"`` serves /metrics and /status."""
        if self._state not in ("created", "stopped", "failed"):
            msg = "this application is already running"
            raise ApplicationError(msg)
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._force = asyncio.Event()
        if self._stop_requested:
            self._stopping.set()
        self._state = "starting"
        self._started = time.perf_counter()
        with use_clock(self.clock), use_hub(self.hub):
            try:
                await self._run(http, handle_signals, progress)
            except BaseException:
                self._state = "failed"
                raise
            finally:
                self._stop_requested = False
        return self.status()

    async def _run(self, http: str | None, handle_signals: bool, progress: bool | None) -> None:
        assert self._stopping is not None
        self.settings  # noqa: B018 - bad settings fail before any I/O
        opened: list[Connection] = []
        tasks: list[asyncio.Task[None]] = []
        server: Any = None
        signals: list[signal.Signals] = []
        try:
            for name, conn in self._connections.items():
                try:
                    await conn.open()
                except Exception as exc:
                    msg = f"connection {name!r} ({conn.label}) failed to open: {exc}"
                    raise ApplicationError(msg) from exc
                opened.append(conn)
            for name, entry in self._lookups.items():
                try:
                    await entry.lookup.refresh()
                except LookupRefreshError as exc:
                    msg = f"lookup {name!r} could not be loaded at start: {exc}"
                    raise ApplicationError(msg) from exc
            tasks.extend(
                asyncio.create_task(self._refresh_loop(e), name=f"flowpump-refresh-{e.name}")
                for e in self._lookups.values()
                if e.refresh is not None
            )
            if http is not None:
                from .metrics import serve

                server = await serve(self, http)
            if handle_signals:
                signals = self._install_signals()
            supervisors = [
                asyncio.create_task(self._supervise(e), name=f"flowpump-pipeline-{e.name}")
                for e in self._pipelines.values()
            ]
            self._state = "running"
            ticker = self._ticker(progress)
            try:
                await self._wait(supervisors)
            except BaseException as exc:
                if ticker is not None:
                    ticker.close(None, exc)
                raise
            if ticker is not None:
                ticker.close(self._progress_report(), None)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for sig in signals:
                with contextlib.suppress(Exception):
                    asyncio.get_running_loop().remove_signal_handler(sig)
            if server is not None:
                await server.cleanup()
            for conn in reversed(opened):
                try:
                    await conn.close()
                except Exception:  # one connection failing to close must not keep the others open
                    logger.exception("closing connection %s failed", conn.label)
            if self._state != "failed":
                self._state = "stopped"

    # -- progress bar -----------------------------------------------------------------------
    def _ticker(self, progress: bool | None) -> Ticker | None:
        """A progress bar on stderr over the main pipelines with bounded sources, if wanted."""
        if progress is False or not (progress or (sys.stderr is not None and sys.stderr.isatty())):
            return None
        self._bar = [e for e in self._pipelines.values() if not e.background and SourceTotal(e.pipeline).bounded]
        if not self._bar:
            return None  # nothing bounded: a service's counts are in /status and /metrics
        title = "flowpump " + ", ".join(e.name for e in self._bar)
        view = TerminalBar([e.pipeline for e in self._bar], always=progress is True, title=title)
        return Ticker(view, self._progress_report, delay=0.0 if progress else DELAY).in_loop()

    def _progress_report(self) -> RunReport | None:
        """The counts of the pipelines under the progress bar, summed, as one report."""
        if not self._bar:
            return None
        sts = [e.status() for e in self._bar]
        n_in = sum(p.events_in for p in sts)
        source = StageReport("sources", "source", "source", 1, n_in, n_in, 0, 0, 0.0)
        latency = Latency()
        for p in sts:
            latency = latency + p.latency
        return RunReport(
            events_in=n_in,
            events_out=sum(p.events_out for p in sts),
            filtered=sum(p.filtered for p in sts),
            dead_lettered=sum(p.dead_lettered for p in sts),
            seconds=time.perf_counter() - self._started,
            stages=[source],
            stopped_early=self._stopping is not None and self._stopping.is_set(),
            latency=latency,
        )

    def _install_signals(self) -> list[signal.Signals]:
        if threading.current_thread() is not threading.main_thread():
            return []
        loop = asyncio.get_running_loop()
        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self._request_stop)
            except (NotImplementedError, RuntimeError):  # pragma: no cover - e.g. Windows
                continue
            installed.append(sig)
        return installed

    async def _wait(self, supervisors: list[asyncio.Task[None]]) -> None:
        assert self._stopping is not None
        assert self._force is not None
        stopping: asyncio.Future[Any] = asyncio.ensure_future(self._stopping.wait())
        # Supervisors are made in the order of ``self._pipelines``.
        main = {t for t, e in zip(supervisors, self._pipelines.values(), strict=True) if not e.background}
        try:
            pending: set[asyncio.Future[Any]] = set(supervisors)
            while pending and not self._stopping.is_set() and not (main and main.isdisjoint(pending)):
                _, pending = await asyncio.wait({*pending, stopping}, return_when=asyncio.FIRST_COMPLETED)
                pending.discard(stopping)
            if not pending:
                return
            if self._stopping.is_set():
                self._state = "draining"
                logger.info("draining %d pipeline(s) (deadline %.1fs)", len(pending), self.drain_timeout)
                for entry in self._pipelines.values():
                    if entry.stop is not None:
                        entry.stop.set()
            else:
                logger.info("every main pipeline has ended: stopping %d background pipeline(s)", len(pending))
                for entry in self._pipelines.values():
                    if entry.background:
                        self._release(entry)
            force: asyncio.Future[Any] = asyncio.ensure_future(self._force.wait())
            deadline = asyncio.get_running_loop().time() + self.drain_timeout
            try:
                while pending and not force.done():
                    left = deadline - asyncio.get_running_loop().time()
                    if left <= 0:
                        break
                    _, pending = await asyncio.wait(
                        {*pending, force}, timeout=left, return_when=asyncio.FIRST_COMPLETED
                    )
                    pending.discard(force)
            finally:
                force.cancel()
            late = {t for t in pending if not t.done()}
            if late:
                logger.error("drain deadline passed: cancelling %d pipeline(s)", len(late))
                for t in late:
                    t.cancel()
                await asyncio.gather(*late, return_exceptions=True)
        finally:
            stopping.cancel()
            for t in supervisors:
                t.cancel()
            await asyncio.gather(*supervisors, return_exceptions=True)

    @staticmethod
    def _release(entry: _Entry) -> None:
        """Stop a background pipeline because the main ones have ended."""
        if entry.release is not None:
            entry.release.set()
        if entry.stop is not None:
            entry.stop.set()

    async def _supervise(self, entry: _Entry) -> None:
        assert self._stopping is not None
        delay = self.restart_delay
        clock = self.clock
        entry.release = release = asyncio.Event()
        resume = False  # a restart continues after what the sources had acknowledged
        while True:
            entry.stop = asyncio.Event()
            if self._stopping.is_set() or release.is_set():
                # Released while waiting to restart after a failure: stopped, not finished.
                entry.state = "stopped" if self._stopping.is_set() or entry.state == "restarting" else "finished"
                return
            entry.progress = Progress()
            entry.state = "running"
            entry.runs += 1
            started = clock.monotonic()
            try:
                report = await execute(entry.pipeline, stop=entry.stop, progress=entry.progress, resume=resume)
            except asyncio.CancelledError:
                entry.ended(entry.progress.snapshot())
                entry.state = "stopped"
                raise
            except Exception as exc:  # noqa: BLE001 - any failure of a run is supervised
                entry.ended(getattr(exc, "report", None))
                entry.last_error = f"{type(exc).__name__}: {exc}"
                if self._stopping.is_set():
                    entry.state = "stopped"
                    return
                # Retrying a permanent error only repeats it; a released pipeline is not wanted any more.
                permanent = isinstance(exc.__cause__, PermanentSinkError)
                exhausted = self.max_restarts is not None and entry.restarts >= self.max_restarts
                if permanent or release.is_set() or not entry.restart or exhausted:
                    entry.state = "failed"
                    why = " (an error no retry can fix)" if permanent else ""
                    logger.error("pipeline %r failed and is not restarted%s: %s", entry.name, why, entry.last_error)
                    return
                if clock.monotonic() - started >= self.max_restart_delay:
                    delay = self.restart_delay  # it ran well for a while: start the backoff over
                entry.state = "restarting"
                entry.restarts += 1
                logger.warning(
                    "pipeline %r failed (%s); restart %d in %.2fs", entry.name, entry.last_error, entry.restarts, delay
                )
                await self._sleep_unless_stopping(delay, release)
                delay = min(delay * 2, self.max_restart_delay)
                resume = True
                continue
            entry.ended(report)
            if self._stopping.is_set():
                entry.state = "stopped"
            else:
                # A released background pipeline was stopped because the work is done.
                entry.state = "stopped" if report.stopped_early and not release.is_set() else "finished"
            return

    async def _sleep_unless_stopping(self, seconds: float, release: asyncio.Event | None = None) -> None:
        assert self._stopping is not None
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        stoppers = [asyncio.ensure_future(self._stopping.wait())]
        if release is not None:
            stoppers.append(asyncio.ensure_future(release.wait()))
        try:
            await asyncio.wait({sleeper, *stoppers}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            for stopper in stoppers:
                stopper.cancel()
            await asyncio.gather(sleeper, *stoppers, return_exceptions=True)

    async def _refresh_loop(self, entry: _LookupEntry) -> None:
        assert entry.refresh is not None
        assert self._stopping is not None
        ticks = entry.refresh.ticks(self.clock)
        try:
            while await wait_tick(ticks, self._stopping):
                try:
                    await entry.lookup.refresh()
                except LookupRefreshError as exc:
                    logger.warning("%s", exc)
        finally:
            aclose = getattr(ticks, "aclose", None)
            if aclose is not None:
                await aclose()

    def start(self, *, http: str | None = None) -> AppHandle:
        """Run in the background: in the current loop if there is one, else on its own thread."""
        return AppHandle(self, http)

    def __repr__(self) -> str:
        return (
            f"<Application {self._state}: {len(self._pipelines)} pipeline(s), "
            f"{len(self._connections)} connection(s), {len(self._lookups)} lookup(s)>"
        )


class AppHandle:
    """A running application: ``stop()``, ``await wait()`` / ``result()``, ``status()``."""

    def __init__(self, app: Application[Any], http: str | None) -> None:
        self.app = app
        self._bg = Background(
            lambda: app.arun(http=http, handle_signals=False), thread=not _in_running_loop(), name="flowpump-app"
        )

    def status(self) -> AppStatus:
        """``app.status()``."""
        return self.app.status()

    def stop(self) -> None:
        """Begin the drain."""
        self.app.stop()

    @property
    def done(self) -> bool:
        """True once the application has stopped."""
        return self._bg.done

    async def wait(self) -> AppStatus:
        """Wait until the application stops; return its final status."""
        return await self._bg.wait()

    def result(self, timeout: float | None = None) -> AppStatus:
        """Block until the application (on its own thread) stops."""
        return self._bg.result(timeout)

    def wait_until(self, predicate: Callable[[AppStatus], bool], timeout: float = 10.0) -> AppStatus:
        """Poll ``status()`` (from another thread) until ``predicate`` holds; for tests and scripts."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.app.status()
            if predicate(st):
                return st
            if time.monotonic() > deadline or self.done:
                msg = f"condition not met within {timeout}s; status: {st}"
                raise TimeoutError(msg)
            time.sleep(0.01)
