"""Entry points: blocking ``run`` (also inside a running loop), ``arun`` and background ``start``.

Inside a running loop (a notebook cell) ``run()`` must not start a second loop on the loop's own
thread, so the run goes to a helper thread and the caller's thread waits for it, drawing the live
view meanwhile. Every entry point takes ``progress``: None picks a live view automatically,
True asks for one, False turns it off (see ``flowpump._live``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .._errors import PipelineDefinitionError
from .._live import DELAY, NotebookView, Ticker, View, choose_view
from ._executor import Progress, execute
from ._report import RunReport

if TYPE_CHECKING:
    from .._connector import SourceSpec
    from .._graph import Flow, Pipeline

T = TypeVar("T")

#: Seconds an interrupted blocking run gets to drain after its sources were stopped.
STOP_GRACE = 5.0


def _in_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _delay(progress: bool | None) -> float:
    return 0.0 if progress else DELAY


def _source_specs(flow: Flow[Any]) -> Iterator[SourceSpec]:
    if isinstance(flow.origin, tuple):
        for f in flow.origin:
            yield from _source_specs(f)
    else:
        yield flow.origin


def _check_not_loop_bound(pipeline: Pipeline) -> None:
    """Refuse a blocking run inside a running loop when a source is an async iterable.

    The run would go to a helper thread while the caller's loop waits for it; an async iterable
    made in that loop (a queue, a client) could then only produce while the loop is blocked.
    """
    from ..connectors.memory import _IterableSource

    for spec in _source_specs(pipeline.flow):
        if spec.is_async and isinstance(spec, _IterableSource):
            msg = (
                f"run()/take() was called inside a running event loop and the source "
                f"'{spec.label}' is an async iterable, which needs that loop while run() blocks it; "
                f"use `await pipeline.arun()` (or `await flow.atake(n)`) instead"
            )
            raise PipelineDefinitionError(msg)


def run_blocking(pipeline: Pipeline, *, fuse: bool, progress: bool | None = None) -> RunReport:
    """Run to completion. Inside a running loop (a notebook cell), run on a helper thread."""
    view = choose_view(pipeline, progress, keep_table=False, tty=True)
    if not _in_running_loop():
        if view is None:
            return asyncio.run(execute(pipeline, fuse=fuse))
        watch = Progress()
        ticker = Ticker(view, watch.snapshot, delay=_delay(progress)).in_thread()
        try:
            report = asyncio.run(execute(pipeline, fuse=fuse, progress=watch))
        except BaseException as exc:
            ticker.close(None, exc)
            raise
        ticker.close(report, None)
        return report
    _check_not_loop_bound(pipeline)
    handle = RunHandle(pipeline, fuse=fuse, thread=True)
    return handle.block(None if view is None else Ticker(view, handle.snapshot, delay=_delay(progress)))


async def run_async(pipeline: Pipeline, *, fuse: bool, progress: bool | None = None) -> RunReport:
    """Run to completion in the current loop."""
    view = choose_view(pipeline, progress, keep_table=False, tty=False)
    if view is None:
        return await execute(pipeline, fuse=fuse)
    watch = Progress()
    ticker = Ticker(view, watch.snapshot, delay=_delay(progress)).in_loop()
    try:
        report = await execute(pipeline, fuse=fuse, progress=watch)
    except BaseException as exc:
        ticker.close(None, exc)
        raise
    ticker.close(report, None)
    return report


class Background(Generic[T]):
    """A coroutine running in the background: a task in the current loop, or (``thread=True``) on
    its own thread with its own loop. ``make`` is called inside the loop that will run it.

    Shared by ``RunHandle`` and the application's handle: ``done``, ``await wait()``,
    ``result()``; ``loop`` is the loop it runs on, ``thread`` its thread (None for a task).
    """

    def __init__(self, make: Callable[[], Coroutine[Any, Any, T]], *, thread: bool, name: str) -> None:
        self.loop: asyncio.AbstractEventLoop
        self.future: concurrent.futures.Future[T] | asyncio.Task[T]
        self.thread: threading.Thread | None = None
        if not thread:
            self.loop = asyncio.get_running_loop()
            self.future = self.loop.create_task(make())
            return
        ready = threading.Event()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        async def main() -> T:
            self.loop = asyncio.get_running_loop()
            coro = make()
            ready.set()
            return await coro

        def target() -> None:
            try:
                future.set_result(asyncio.run(main()))
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting side
                future.set_exception(exc)
            finally:
                ready.set()

        self.future = future
        self.thread = threading.Thread(target=target, name=name, daemon=True)
        self.thread.start()
        ready.wait()  # ``loop`` is set, and whatever ``make`` prepared, before the caller goes on

    @property
    def done(self) -> bool:
        """True once the coroutine has ended (normally or not)."""
        return self.future.done()

    async def wait(self) -> T:
        """Wait for the end and return the result (raises what the coroutine raised)."""
        if isinstance(self.future, asyncio.Task):
            return await asyncio.shield(self.future)
        return await asyncio.wrap_future(self.future)

    def result(self, timeout: float | None = None) -> T:
        """Block until the end (only for a coroutine on its own thread)."""
        if isinstance(self.future, asyncio.Task):
            msg = "result() would block the event loop this runs on; use `await handle.wait()`"
            raise RuntimeError(msg)
        result = self.future.result(timeout)
        if self.thread is not None:
            # The result is set just before the thread ends: no thread outlives the run.
            self.thread.join(1.0)
        return result


class RunHandle:
    """A pipeline running in the background.

    ``stop()`` asks the sources to stop (in-flight events still reach the sinks);
    ``await wait()`` or ``result()`` returns the report; ``snapshot()`` gives the counts so far.
    In a notebook the handle shows a live table of the run, updated in place until it ends.
    """

    def __init__(self, pipeline: Pipeline, *, fuse: bool, thread: bool) -> None:
        self.pipeline = pipeline
        self.progress = Progress()
        self._views: list[View] = []
        #: set once every view has shown the outcome of the run
        self._settled = threading.Event()
        self._loop: asyncio.AbstractEventLoop
        self._stop: asyncio.Event

        def make() -> Coroutine[Any, Any, RunReport]:
            self._stop = asyncio.Event()
            return execute(pipeline, fuse=fuse, stop=self._stop, progress=self.progress)

        self._bg = Background(make, thread=thread, name="flowpump-run")
        self._loop = self._bg.loop
        self._thread = self._bg.thread
        self._future = self._bg.future

    def snapshot(self) -> RunReport | None:
        """The counts so far, for live displays (None until the run has started)."""
        return self.progress.snapshot()

    @property
    def done(self) -> bool:
        """True once the run has ended (normally or not)."""
        return self._bg.done

    def stop(self) -> None:
        """Ask the sources to stop; safe to call from any thread, more than once."""
        if self._thread is None:
            try:
                running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is self._loop:
                self._stop.set()
            else:
                # asyncio.Event is not thread-safe: set it on its loop's thread.
                with contextlib.suppress(RuntimeError):  # the loop may be closed already
                    self._loop.call_soon_threadsafe(self._stop.set)
        elif not self._future.done():
            # The run may end (and close its loop) between the check and the call.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)

    async def wait(self) -> RunReport:
        """Wait for the end of the run and return its report (raises what the run raised)."""
        return await self._bg.wait()

    def result(self, timeout: float | None = None) -> RunReport:
        """Block until the run ends (only for runs on their own thread)."""
        try:
            return self._bg.result(timeout)
        finally:
            if self._views and self._future.done():
                # The views finish in a callback of the run's thread: let them draw the outcome
                # before the caller goes on (or the interpreter exits under them).
                self._settled.wait(1.0)

    # -- live views ---------------------------------------------------------------------------
    def watch(self, view: View, *, delay: float = 0.0) -> None:
        """Feed ``view`` the counts of this run until it ends, then its outcome."""
        ticker = Ticker(view, self.snapshot, delay=delay)
        if self._thread is None:
            ticker.in_loop()
        else:
            ticker.in_thread()
        self._views.append(view)
        self._settled.clear()

        def finished(future: Any) -> None:
            try:
                report = future.result()
            except BaseException as exc:  # noqa: BLE001 - shown by the view; raised by wait()
                ticker.close(None, exc)
            else:
                ticker.close(report, None)
            finally:
                self._settled.set()

        self._future.add_done_callback(finished)

    def block(self, ticker: Ticker | None = None) -> RunReport:
        """Wait here for a run on its own thread, polling ``ticker`` meanwhile; Ctrl-C stops the run."""
        future = self._future
        assert isinstance(future, concurrent.futures.Future)
        interval = ticker.view.interval if ticker is not None else None
        try:
            while not concurrent.futures.wait([future], timeout=interval).done:
                if ticker is not None:
                    ticker.poll()
            report = future.result()
        except KeyboardInterrupt as exc:
            # Interrupting the cell stops the run: the sources stop and in-flight events drain.
            self.stop()
            with contextlib.suppress(BaseException):
                future.result(STOP_GRACE)
            if ticker is not None:
                ticker.close(None, exc)
            raise
        except BaseException as exc:
            if ticker is not None:
                ticker.close(None, exc)
            raise
        if ticker is not None:
            ticker.close(report, None)
        return report

    def _ipython_display_(self) -> None:
        from IPython import get_ipython

        from .._live import display

        cell = getattr(get_ipython(), "execution_count", None)
        for view in self._views:
            if isinstance(view, NotebookView) and view.cell == cell:
                # `pipeline.start()` as the last line of its cell: its live view is this display.
                if not view.shown:
                    view.show_now(self.snapshot())
                return
        if self.done:
            try:
                display(self._future.result())
            except BaseException as exc:  # noqa: BLE001 - displaying must not raise
                display(f"run failed: {type(exc).__name__}: {exc}")
            return
        view = NotebookView(self.pipeline, keep_table=True)
        self.watch(view)
        view.show_now(self.snapshot())

    def __repr__(self) -> str:
        state = "done" if self.done else "running"
        return f"<RunHandle {state}: {self.pipeline!r}>"


def start(pipeline: Pipeline, *, fuse: bool, thread: bool | None = None, progress: bool | None = None) -> RunHandle:
    """Start in the current loop if there is one, else on a background thread."""
    handle = RunHandle(pipeline, fuse=fuse, thread=not _in_running_loop() if thread is None else thread)
    view = choose_view(pipeline, progress, keep_table=True, tty=False)
    if view is not None:
        handle.watch(view)
    return handle
