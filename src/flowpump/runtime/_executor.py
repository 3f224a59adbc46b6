"""The executor: turns a plan into tasks, channels and outlets, and runs it.

An *outlet* is where a stage hands a batch: ``await outlet.push(events, envelope)``. Inline
stages (fused loops, synchronous sinks, tee) are outlets called directly by the task upstream;
a stage behind a channel gets a consumer task. Invariants:
- every pushed envelope is released exactly once downstream (acks complete, nothing is lost);
- every channel is bounded, so a slow stage holds back the tasks upstream of it;
- every task and writer the run creates is finished, cancelled or closed before ``execute``
  returns or raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from .._connector import RunContext, SinkWriter
from .._errors import DeadLetter, PermanentSinkError, PipelineDefinitionError, PipelineError
from .._graph import Pipeline, Step
from ..compiler._fuse import FusedGroup, compile_group
from ..compiler._plan import Plan, PlanStage, plan
from ._acks import AckTracker, Envelope
from ._channel import Channel, blocked_stats
from ._report import LatencyHistogram, RunReport, StageStats, build_report

logger = logging.getLogger("flowpump")

#: Dead letters kept in the report for display.
SAMPLE_DEAD_LETTERS = 20
#: First retry delay of a failing sink, doubled after each attempt, capped at MAX_BACKOFF.
BACKOFF = 0.05
MAX_BACKOFF = 2.0


class Outlet:
    """Where a stage hands its output."""

    #: Loop time at which a stage holding a partial batch wants ``on_timeout`` (None: never).
    deadline: float | None = None

    async def push(self, events: list[Any], env: Envelope) -> None:
        """Take ownership of one hold of ``env`` along with ``events``."""
        raise NotImplementedError

    async def finish(self) -> None:
        """End of stream from one upstream producer."""
        raise NotImplementedError

    async def on_timeout(self) -> None:
        """``deadline`` passed with no new batch (only stages that set a deadline get this)."""


class _Rejected(Exception):
    """A record rejected by a connector (undecodable, unencodable); its text already names the error."""


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, _Rejected):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class DeadRouter(Outlet):
    """Sends dead letters to the error sink, or counts and samples them when there is none."""

    def __init__(self, run: _Run, target: Outlet | None) -> None:
        self.run = run
        self.target = target

    async def push(self, events: list[Any], env: Envelope) -> None:
        run = self.run
        room = SAMPLE_DEAD_LETTERS - len(run.samples)
        if room > 0:
            run.samples.extend(events[:room])
        if self.target is not None:
            await self.target.push(events, env)
        else:
            run.unrouted_dead += len(events)
            env.release()

    async def finish(self) -> None:
        if self.target is not None:
            await self.target.finish()


async def _hand_on(nxt: Outlet, router: DeadRouter, out: list[Any], dead: list[DeadLetter], env: Envelope) -> None:
    """Pass a stage's output on and its dead letters aside; ``env``'s hold goes with them."""
    if dead:
        env.hold()
        await router.push(dead, env)
    if out:
        await nxt.push(out, env)
    else:
        env.release()


class FusedOutlet(Outlet):
    """Runs a compiled loop of synchronous steps over each batch."""

    def __init__(self, group: FusedGroup, stats: list[StageStats], nxt: Outlet, dead: DeadRouter) -> None:
        self.group = group
        self.fn = group.fn
        self.stats = stats
        self.filters = [s.kind == "filter" for s in group.steps]
        self.next = nxt
        self.dead_router = dead
        self._dead: list[DeadLetter] = []
        self._dead_steps = [0] * len(stats)
        self._env: Envelope | None = None
        self._batch: list[Any] = []

    def _on_dead(self, exc: BaseException, k: int, event: Any, index: int) -> None:
        self._dead_steps[k] += 1
        label = self.group.steps[k].label
        self.dead_router.run.note_exception(exc, label)
        env = self._env
        pos = None
        if env is not None and (origin := env.origin) is not None:
            if origin.events is self._batch and origin.positions is not None:
                pos = origin.positions.at(index)  # exact, even when equal objects repeat in a batch
            else:
                pos = env.position_of(self._batch[index])
        self._dead.append(DeadLetter(stage=label, error=_error_text(exc), event=event, position=pos))

    async def push(self, events: list[Any], env: Envelope) -> None:
        self._env = env
        self._batch = events
        t0 = time.perf_counter()
        out, lengths = self.fn(events, self._on_dead)
        elapsed = time.perf_counter() - t0
        self._env = None
        self._batch = []
        n = len(events)
        filters = self.filters
        dead_steps = self._dead_steps
        # Per step: in = out + filtered + dead (a flat_map's out is what it emitted).
        for k, st in enumerate(self.stats):
            m = lengths[k]
            d = dead_steps[k]
            st.seconds += elapsed
            st.events_in += n
            st.events_out += m
            st.dead_lettered += d
            if filters[k]:
                st.filtered += n - m - d
            n = m
        dead: list[DeadLetter] = []
        if self._dead:
            dead, self._dead = self._dead, []
            self._dead_steps = [0] * len(self.stats)
        await _hand_on(self.next, self.dead_router, out, dead, env)

    async def finish(self) -> None:
        await self.next.finish()


class MapAsyncOutlet(Outlet):
    """Awaits the user's coroutine function on each event with bounded concurrency."""

    def __init__(self, step: Step, stats: StageStats, nxt: Outlet, dead: DeadRouter) -> None:
        self.step = step
        self.fn = step.fn
        self.concurrency: int = step.options["concurrency"]
        self.ordered: bool = step.options["ordered"]
        self.stats = stats
        self.next = nxt
        self.dead_router = dead

    async def push(self, events: list[Any], env: Envelope) -> None:
        fn = self.fn
        n = len(events)
        results: list[Any] = [None] * n if self.ordered else []
        ok = [False] * n
        failures: list[tuple[int, BaseException]] = []
        indices = iter(range(n))
        ordered = self.ordered

        async def worker() -> None:
            for i in indices:
                try:
                    value = await fn(events[i])
                except Exception as exc:  # noqa: BLE001 - becomes a dead letter
                    failures.append((i, exc))
                    continue
                ok[i] = True
                if ordered:
                    results[i] = value
                else:
                    results.append(value)

        t0 = time.perf_counter()
        workers = min(self.concurrency, n)
        if workers == 1:
            await worker()
        else:
            await asyncio.gather(*(worker() for _ in range(workers)))
        self.stats.seconds += time.perf_counter() - t0
        out = [r for r, good in zip(results, ok, strict=True) if good] if ordered and failures else results
        self.stats.events_in += n
        self.stats.events_out += len(out)
        self.stats.dead_lettered += len(failures)
        dead: list[DeadLetter] = []
        if failures:
            run = self.dead_router.run
            label = self.step.label
            for i, exc in sorted(failures, key=lambda f: f[0]):
                run.note_exception(exc, label)
                pos = env.position_of(events[i])
                dead.append(DeadLetter(stage=label, error=_error_text(exc), event=events[i], position=pos))
        await _hand_on(self.next, self.dead_router, out, dead, env)

    async def finish(self) -> None:
        await self.next.finish()


class BatchOutlet(Outlet):
    """Groups events into lists of ``size``; flushes a partial list after ``timeout``."""

    def __init__(self, step: Step, stats: StageStats, nxt: Outlet) -> None:
        self.size: int = step.options["size"]
        self.timeout: float | None = step.options["timeout"]
        self.stats = stats
        self.next = nxt
        self.buffer: list[Any] = []
        self.owners: list[Envelope] = []
        self.deadline: float | None = None

    async def push(self, events: list[Any], env: Envelope) -> None:
        self.stats.events_in += len(events)
        if not self.buffer and self.timeout is not None:
            self.deadline = asyncio.get_running_loop().time() + self.timeout
        self.buffer.extend(events)
        self.owners.append(env)
        if len(self.buffer) >= self.size:
            await self._emit(whole_only=True)

    async def _emit(self, *, whole_only: bool) -> None:
        size, buf = self.size, self.buffer
        cut = len(buf) - len(buf) % size if whole_only else len(buf)
        if cut == 0:
            return
        out = [buf[i : i + size] for i in range(0, cut, size)]
        rest = buf[cut:]
        owners = self.owners
        if rest:
            # The last owner still has events in the buffer: it keeps a hold for them.
            owners[-1].hold()
            self.owners = [owners[-1]]
        else:
            self.owners = []
        self.buffer = rest
        self.deadline = None if not rest or self.timeout is None else self.deadline
        self.stats.events_out += len(out)
        await self.next.push(out, Envelope.merged(owners))

    async def on_timeout(self) -> None:
        """The partial batch waited ``timeout`` seconds: send it."""
        await self._emit(whole_only=False)

    async def finish(self) -> None:
        await self._emit(whole_only=False)
        await self.next.finish()


class SinkOutlet(Outlet):
    """Writes batches through a connector's writer, retrying a failing write with backoff."""

    def __init__(
        self,
        stage: PlanStage,
        writer: SinkWriter,
        stats: StageStats,
        dead: DeadRouter,
        latency: LatencyHistogram | None = None,
    ) -> None:
        assert stage.sink is not None
        self.dead_router = dead
        #: Where the read-to-written time of each batch goes (None for the dead-letter sink).
        self.latency = latency
        # Writers that can reject single events (e.g. unencodable) expose a ``rejects`` list.
        self.rejects: list[DeadLetter] | None = getattr(writer, "rejects", None)
        self.label = stage.sink.label
        self.attempts = max(stage.sink.attempts, 1)
        self.writer = writer
        self.stats = stats
        self.closed = False

    async def push(self, events: list[Any], env: Envelope) -> None:
        t0 = time.perf_counter()
        delay = BACKOFF
        for attempt in range(1, self.attempts + 1):
            try:
                pending = self.writer.write(events)
                if pending is not None:
                    await pending
                break
            except PermanentSinkError as exc:
                msg = (
                    f"sink '{self.label}' failed with an error that retrying cannot fix: {exc}; "
                    f"the run stopped at once and the unwritten input was not acknowledged."
                )
                raise PipelineError(msg, stage=self.label) from exc
            except Exception as exc:
                if attempt == self.attempts:
                    msg = (
                        f"sink '{self.label}' failed {attempt} times in a row, last with "
                        f"{_error_text(exc)}; the run stopped and the unwritten input was not "
                        f"acknowledged. Fix the sink (or its target) and run again."
                    )
                    raise PipelineError(msg, stage=self.label) from exc
                logger.warning(
                    "sink %r failed (attempt %d of %d): %s; retrying in %.2fs",
                    self.label,
                    attempt,
                    self.attempts,
                    _error_text(exc),
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF)
        st = self.stats
        t1 = time.perf_counter()
        st.seconds += t1 - t0
        st.events_in += len(events)
        if self.latency is not None:
            self.latency.observe(t1 - env.read_at, len(events))
        rejects = self.rejects
        if rejects:
            dead = list(rejects)
            rejects.clear()
            st.events_out += len(events) - len(dead)
            st.dead_lettered += len(dead)
            self.dead_router.run.note_exception(_Rejected(dead[0].error), self.label)
            if st.role != "errors":
                env.hold()
                await self.dead_router.push(dead, env)
        else:
            st.events_out += len(events)
        env.release()

    async def finish(self) -> None:
        await self.close()

    async def close(self) -> None:
        """Flush and close the writer once."""
        if self.closed:
            return
        self.closed = True
        pending = self.writer.close()
        if pending is not None:
            await pending


class TeeOutlet(Outlet):
    """Sends each batch to every branch."""

    def __init__(self, branches: list[Outlet]) -> None:
        self.branches = branches

    async def push(self, events: list[Any], env: Envelope) -> None:
        env.hold(len(self.branches) - 1)
        for b in self.branches:
            await b.push(events, env)

    async def finish(self) -> None:
        for b in self.branches:
            await b.finish()


class ChannelOutlet(Outlet):
    """The producer side of a channel in front of a stage that runs in its own task."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    async def push(self, events: list[Any], env: Envelope) -> None:
        await self.channel.put(events, env)

    async def finish(self) -> None:
        await self.channel.close()


class _Run:
    """One execution of a plan."""

    def __init__(self, the_plan: Plan, ctx: RunContext) -> None:
        self.plan = the_plan
        self.ctx = ctx
        self.stats: list[StageStats] = []
        self.samples: list[DeadLetter] = []
        self.unrouted_dead = 0
        #: Seconds from a source batch being read to a sink having written it, per event.
        self.latency = LatencyHistogram()
        self.first_exception: tuple[BaseException, str] | None = None
        self.sinks: list[SinkOutlet] = []
        self.consumers: list[tuple[Channel, Outlet, bool]] = []
        self.sources: list[tuple[PlanStage, Outlet, StageStats]] = []
        self._outlets: dict[int, Outlet] = {}
        self._numbers = {id(s): i for i, s in enumerate(the_plan.stages(), 1)}
        self.dead = DeadRouter(self, None)
        # The dead-letter branch's own failures are counted, never sent back into that branch:
        # a failing step there would otherwise feed itself forever.
        self.dead_of_errors = DeadRouter(self, None)

    def note_exception(self, exc: BaseException, label: str) -> None:
        if self.first_exception is None:
            self.first_exception = (exc, label)

    def _stats(self, stage: PlanStage, label: str, kind: str, role: Any) -> StageStats:
        st = StageStats(label, kind, role, self._numbers[id(stage)])
        self.stats.append(st)
        return st

    async def build(self) -> None:
        # Pre-flight: every source is checked before any sink is opened (opening may truncate).
        for root in self.plan.roots:
            assert root.source is not None
            try:
                root.source.check()
            except (PipelineError, PipelineDefinitionError):
                raise
            except Exception as exc:
                msg = f"source '{root.label}' cannot be read: {_error_text(exc)}; no sink was opened"
                raise PipelineError(msg, stage=root.label) from exc
        if self.plan.errors is not None:
            self.dead.target = await self.outlet(self.plan.errors)
        for root in self.plan.roots:
            assert root.source is not None
            st = self._stats(root, root.label, "source", "source")
            self.sources.append((root, await self.outlet(root.next[0]), st))

    async def outlet(self, stage: PlanStage) -> Outlet:
        """The outlet for ``stage`` (built once; a merge point is shared)."""
        key = id(stage)
        if key in self._outlets:
            return self._outlets[key]
        if stage.channel is not None:
            channel = Channel(stage.channel, stage.producers, self.ctx.max_batch)
            outer: Outlet = ChannelOutlet(channel)
            self._outlets[key] = outer
            inner = await self._inner(stage)
            self.consumers.append((channel, inner, stage.errors))
            return outer
        inner = await self._inner(stage)
        self._outlets[key] = inner
        return inner

    async def _inner(self, stage: PlanStage) -> Outlet:
        role = "errors" if stage.errors else "step"
        dead = self.dead_of_errors if stage.errors else self.dead
        nxt = [await self.outlet(n) for n in stage.next]
        if stage.kind == "fused":
            stats = [self._stats(stage, s.label, s.kind, role) for s in stage.steps]
            return FusedOutlet(compile_group(stage.steps), stats, nxt[0], dead)
        if stage.kind == "map_async":
            return MapAsyncOutlet(stage.steps[0], self._stats(stage, stage.label, "map_async", role), nxt[0], dead)
        if stage.kind == "batch":
            return BatchOutlet(stage.steps[0], self._stats(stage, stage.label, "batch", role), nxt[0])
        if stage.kind == "tee":
            return TeeOutlet(nxt)
        if stage.kind == "merge":
            return nxt[0]
        assert stage.sink is not None
        try:
            writer = await stage.sink.open(self.ctx)
        except Exception as exc:
            msg = f"sink '{stage.label}' could not be opened: {_error_text(exc)}; nothing was read"
            raise PipelineError(msg, stage=stage.label) from exc
        role = "errors" if stage.errors else "sink"
        latency = None if stage.errors else self.latency
        out = SinkOutlet(stage, writer, self._stats(stage, stage.label, "sink", role), dead, latency)
        self.sinks.append(out)
        return out

    async def source_task(self, stage: PlanStage, nxt: Outlet, st: StageStats) -> None:
        assert stage.source is not None
        ctx = self.ctx
        tracker = AckTracker()
        batches = stage.source.batches(ctx)
        close = getattr(batches, "aclose", None)
        dead = self.dead
        blocked_stats.set(st)  # time this task waits on a full channel is the source's
        try:
            while not ctx.stopping:
                t0 = time.perf_counter()
                try:
                    b = await anext(batches)
                except StopAsyncIteration:
                    break
                except (PipelineError, asyncio.CancelledError):
                    raise
                except Exception as exc:
                    msg = (
                        f"source '{stage.label}' failed: {_error_text(exc)}; events it had already "
                        f"produced were processed, the rest of its input was not read"
                    )
                    raise PipelineError(msg, stage=stage.label) from exc
                read_at = time.perf_counter()
                st.seconds += read_at - t0
                st.events_in += len(b.events) + len(b.dead)
                st.events_out += len(b.events)
                env = Envelope([tracker.ticket(b.on_done)], b, read_at)
                if b.dead:
                    st.dead_lettered += len(b.dead)
                    self.note_exception(_Rejected(b.dead[0].error), stage.label)
                await _hand_on(nxt, dead, b.events, b.dead, env)
                # Drop this batch before the next is read: an inline pipeline is done with it, and
                # the next batch then reuses its memory while it is still in the cache.
                del b, env
                # Let other tasks run even when nothing above had to wait (a file source
                # feeding a synchronous sink never suspends otherwise).
                await asyncio.sleep(0)
        finally:
            if close is not None:
                await close()
        await nxt.finish()

    async def consumer_task(self, channel: Channel, inner: Outlet) -> None:
        head = getattr(inner, "stats", None)
        # Time this task waits on a full channel further down goes to the stage it runs.
        blocked_stats.set(head[0] if isinstance(head, list) else head)
        while True:
            if inner.deadline is not None:
                remaining = inner.deadline - asyncio.get_running_loop().time()
                try:
                    async with asyncio.timeout(max(remaining, 0)):
                        item = await channel.get()
                except TimeoutError:
                    await inner.on_timeout()
                    continue
            else:
                item = await channel.get()
            if item is None:
                break
            await inner.push(*item)
        await inner.finish()


async def _wait_all(
    tasks: list[asyncio.Task[None]], watch: list[asyncio.Task[None]] | None = None
) -> BaseException | None:
    """Wait for ``tasks``; on the first failure cancel the rest and return the error.

    A failure of a ``watch`` task counts too, but ``watch`` tasks need not end: the dead-letter
    tasks end only after the main ones, yet if one fails meanwhile, a main task waiting for room
    in its channel would otherwise wait forever.
    """
    pending: set[asyncio.Task[None]] = {*tasks, *(watch or ())}
    while not all(t.done() for t in tasks):
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        failed = next((t.exception() for t in done if not t.cancelled() and t.exception() is not None), None)
        if failed is not None:
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            return failed
    return None


class Progress:
    """A live view of a run in progress: ``snapshot()`` gives a report of the counts so far."""

    def __init__(self) -> None:
        self._run: _Run | None = None
        self._started = time.perf_counter()
        self.finished = False

    def snapshot(self) -> RunReport | None:
        """The counts so far (None before the run has built its plan)."""
        run = self._run
        if run is None:
            return None
        return build_report(
            run.stats,
            time.perf_counter() - self._started,
            run.samples,
            stopped_early=run.ctx.stopping,
            latency=run.latency.snapshot(),
        )


async def execute(
    pipeline: Pipeline,
    *,
    fuse: bool = True,
    stop: asyncio.Event | None = None,
    progress: Progress | None = None,
    resume: bool = False,
) -> RunReport:
    """Run ``pipeline`` in the current loop and return its report.

    ``progress``, if given, is attached to the run so another task or thread can watch it.
    ``resume``: a restart of a failed run; sources that can continue after their acknowledged position.
    """
    ctx = RunContext(stop=stop if stop is not None else asyncio.Event(), resume=resume)
    run = _Run(plan(pipeline, fuse=fuse), ctx)
    started = time.perf_counter()
    if progress is not None:
        progress._run = run  # noqa: SLF001 - the executor owns Progress
        progress._started = started  # noqa: SLF001
    main: list[asyncio.Task[None]] = []
    errors: list[asyncio.Task[None]] = []
    failure: BaseException | None = None
    try:
        try:
            await run.build()
        except PipelineError as exc:
            failure = exc
            return _finish(run, started, progress, failure)
        for channel, inner, is_errors in run.consumers:
            (errors if is_errors else main).append(asyncio.create_task(run.consumer_task(channel, inner)))
        for stage, nxt, st in run.sources:
            main.append(asyncio.create_task(run.source_task(stage, nxt, st)))
        failure = await _wait_all(main, watch=errors)
        if failure is None:
            await run.dead.finish()
            failure = await _wait_all(errors)
    finally:
        for t in main + errors:
            t.cancel()
        await asyncio.gather(*main, *errors, return_exceptions=True)
        for sink in run.sinks:
            with contextlib.suppress(Exception):
                await sink.close()
    return _finish(run, started, progress, failure)


def _finish(run: _Run, started: float, progress: Progress | None, failure: BaseException | None) -> RunReport:
    """The report of a run that has ended; raises PipelineError (report attached) if it failed."""
    report = build_report(
        run.stats,
        time.perf_counter() - started,
        run.samples,
        stopped_early=run.ctx.stopping,
        latency=run.latency.snapshot(),
    )
    if progress is not None:
        progress.finished = True
    _log_dead(run, report)
    if failure is not None:
        if isinstance(failure, PipelineError):
            failure.report = report
            raise failure
        msg = f"pipeline stopped: {_error_text(failure)}"
        raise PipelineError(msg, stage=str(getattr(failure, "stage", "?")), report=report) from failure
    return report


def _log_dead(run: _Run, report: RunReport) -> None:
    if run.unrouted_dead and run.first_exception is not None:
        exc, label = run.first_exception
        first = run.samples[0] if run.samples else None
        where = f" at {first.position}" if first is not None and first.position else ""
        logger.warning(
            "%d event(s) were dead-lettered and no error sink is set (add "
            ".on_error(fp.write_jsonl('dead.jsonl')) to keep them); the first, in stage %r%s: %s",
            run.unrouted_dead,
            label,
            where,
            _error_text(exc),
            exc_info=(type(exc), exc, exc.__traceback__) if exc.__traceback__ is not None else None,
        )
